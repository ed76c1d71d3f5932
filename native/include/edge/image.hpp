// Letterbox: the fused YOLO pre-processing of one camera frame.
//
// Shape legend: a frame is (H, W, 3) uint8 BGR, C-contiguous (row stride W*3 bytes); the tensor is
// (1, 3, out_h, out_w) RGB planes, float32 in [0, 1] or uint8 in [0, 255].
//
// Geometry follows Ultralytics' LetterBox (ultralytics/data/augment.py, class LetterBox, center=True):
//   r = min(out_h / H, out_w / W)  (capped at 1 unless scale_up), new = (round(W r), round(H r)) with
//   Python's round-half-to-even, padding split as round(d/2 - 0.1) before and round(d/2 + 0.1) after;
//   auto=True shrinks the padding to the remainder modulo the stride. One deviation: a side that would
//   round to 0 pixels (a 1 x 5000 frame) is kept at 1 pixel, where Ultralytics' cv2.resize would fail.
// Resampling is bilinear with OpenCV's INTER_LINEAR convention (half-pixel centres, replicated border):
//   src_x = (u + 0.5) * W / new_w - 0.5, and likewise in y.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edge {

// Largest frame or tensor side accepted: keeps every index and row offset well inside 32/64-bit ranges.
constexpr int kMaxImageSide = 1 << 16;

struct LetterboxGeometry {
    int src_h = 0, src_w = 0;    // source frame
    int out_h = 0, out_w = 0;    // tensor (the target, or the stride-trimmed size when auto)
    int new_h = 0, new_w = 0;    // resized content inside the tensor
    int pad_top = 0, pad_left = 0;
    double scale = 0.0;          // r, Ultralytics' gain
};

// Computes the letterbox geometry of an H x W frame for a dst_h x dst_w target.
// Returns false when a size is outside 1..kMaxImageSide or stride is outside 1..kMaxImageSide.
bool letterbox_geometry(int src_h, int src_w, int dst_h, int dst_w, bool auto_pad, int stride, bool scale_up,
                        LetterboxGeometry* out);

// True when g is self-consistent (content inside the tensor, all sizes in range).
bool letterbox_geometry_valid(const LetterboxGeometry& g);

// Resize + pad + BGR->RGB + HWC->CHW in one pass over the output rows, writing 3 * out_h * out_w values.
// The float variant scales to [0, 1]; pad pixels get pad_value (/255 for float). Returns false, writing
// nothing, when g is not valid. src must hold src_h * src_w * 3 bytes, dst 3 * out_h * out_w values.
// write_pad = false leaves the padding as it is: for a dst that already holds this geometry's padding
// (the same tensor reused for frames of one size), it saves a quarter of the writes of a 4:3 frame.
// The instruction set the letterbox row kernel runs with here: "avx2+fma" or "baseline".
const char* letterbox_isa();

// threads > 1 splits the rows over that many threads (fewer for a small output; the calling thread takes
// the first run). The result does not depend on it.
bool letterbox_into(const uint8_t* src, const LetterboxGeometry& g, uint8_t pad_value, float* dst,
                    bool write_pad = true, int threads = 1);
bool letterbox_into(const uint8_t* src, const LetterboxGeometry& g, uint8_t pad_value, uint8_t* dst,
                    bool write_pad = true, int threads = 1);

}  // namespace edge
