// YOLO output decoding: raw model output -> boxes in source-image pixels, scores and class ids.
//
// Shape legend: the raw output is a row-major float32 matrix of rows x cols (a leading batch of 1 is
// stripped by the caller); nc classes; M decoded boxes; xyxy (M, 4) float32 source pixels.
//
// Layouts (boxes in input-tensor pixels):
//   V5  (YOLOv5 / YOLOv7): (N, 5 + nc) rows of cx cy w h obj cls...; score = obj * max(cls) (float32
//       product), class = first argmax of cls.
//   V8  (YOLOv8 / YOLO11, anchor-free): (4 + nc, N), channel-major: row c holds channel c of every anchor;
//       read in place (no transpose). score = max(cls), class = first argmax.
//   E2E (end-to-end exports, YOLOv10 / YOLO26 style): (K, 6) rows of x1 y1 x2 y2 score class, already
//       suppressed; class must be a whole number >= 0 (and < nc when nc is given).
// A box is kept when double(score) >= conf. Corners are computed in double, mapped back with the
// letterbox (x_src = (x - pad_x) / scale_x), ordered (x1 <= x2) and clipped to [0, W] x [0, H].
// Output order: row (anchor) order of the raw output.
#pragma once

#include <cstdint>
#include <vector>

namespace edge {

enum class YoloLayout : int32_t { V5 = 0, V8 = 1, E2E = 2 };

// Input-tensor pixels -> source-image pixels.
struct BoxMap {
    double pad_x = 0.0, pad_y = 0.0;      // content offset in the tensor
    double scale_x = 1.0, scale_y = 1.0;  // tensor pixels per source pixel (resized / source size)
    double src_w = 0.0, src_h = 0.0;      // clip bounds
};

struct Decoded {
    std::vector<float> xyxy;       // M * 4
    std::vector<float> score;      // M
    std::vector<int32_t> class_id; // M
    int64_t size() const { return static_cast<int64_t>(score.size()); }
};

enum class DecodeStatus : int32_t {
    Ok = 0,
    BadShape,   // rows/cols don't fit the layout (or num_classes)
    NonFinite,  // NaN or +-inf at (row, col)
    BadClass,   // E2E class value at (row, 5) is negative, fractional, or >= num_classes
};

struct DecodeError {
    DecodeStatus status = DecodeStatus::Ok;
    int64_t row = -1, col = -1;  // position in the rows x cols matrix
    float value = 0.0f;
    bool ok() const { return status == DecodeStatus::Ok; }
};

// Number of classes the layout implies for a rows x cols output (V5: cols - 5, V8: rows - 4), or -1 for E2E
// or when the shape doesn't fit the layout.
int64_t yolo_num_classes(YoloLayout layout, int64_t rows, int64_t cols);

// Decodes into *out (cleared first). num_classes bounds E2E class ids (<= 0: unbounded). allowed, when
// not null, is a mask of allowed_size bytes: a box of class c is kept only if c < allowed_size and
// allowed[c] != 0. Any non-finite value anywhere in the output is an error, whatever its score.
DecodeError decode_yolo(const float* raw, int64_t rows, int64_t cols, YoloLayout layout, double conf,
                        const BoxMap& map, int64_t num_classes, const uint8_t* allowed, int64_t allowed_size,
                        Decoded* out);

// decode_yolo, then nms (per class unless agnostic) for V5/V8; for E2E the boxes are only ordered by
// descending score (stable). At most max_det boxes, in descending score order.
DecodeError postprocess(const float* raw, int64_t rows, int64_t cols, YoloLayout layout, double conf,
                        const BoxMap& map, int64_t num_classes, const uint8_t* allowed, int64_t allowed_size,
                        double iou_threshold, int64_t max_det, bool agnostic, Decoded* out);

}  // namespace edge
