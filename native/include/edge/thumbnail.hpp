// Grey thumbnail of a camera frame from a sparse grid of samples (for scene-cut detection).
//
// Shape legend: a frame is (H, W, 3) uint8 BGR, C-contiguous; the thumbnail is (out_h, out_w) float32 grey
// levels in [0, 255], row-major.
//
// The frame is sampled on a grid: every step_y-th row from row step_y / 2 and every step_x-th column from
// column step_x / 2, with step_y = max(H / (samples * out_h), 1) and step_x = max(W / (samples * out_w), 1)
// (integer division), so about samples x samples grid points fall in each thumbnail pixel. A sample's grey
// level is 8-bit BGR -> GRAY as OpenCV 5 converts it: (3735 B + 19235 G + 9798 R + 16384) >> 15. The gh x gw grid of grey
// levels is then area-averaged onto the thumbnail (as OpenCV's INTER_AREA shrinks an image): grid point i
// covers [i, i + 1), thumbnail pixel c covers [c gh / out_h, (c + 1) gh / out_h) (likewise across), and each
// thumbnail pixel is the mean over its area, the grid points weighted by how much of them it covers, rounded
// to a whole grey level (half to even), as an 8-bit thumbnail holds it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edge {

// Writes out_h * out_w floats to out. Returns false, writing nothing, when a side is outside
// 1..kMaxImageSide (see image.hpp), out_h or out_w is outside 1..4096, or samples is outside 1..64.
bool grey_thumbnail(const uint8_t* src, int h, int w, int out_h, int out_w, int samples, float* out);

// Mean of |a[k] - b[k]| over n floats (n >= 1), summed in double in index order: exact for thumbnails, whose
// values are whole grey levels.
double mean_abs_difference(const float* a, const float* b, size_t n);

}  // namespace edge
