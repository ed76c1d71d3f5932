// Appearance of boxes in a frame: hue x saturation x value histograms of three horizontal bands per box,
// the identity cue of the tracker (see edge_runtime/vision/appearance.py for the why).
//
// Shape legend: a frame is (H, W, 3) uint8 BGR, C-contiguous; boxes (n, 4) float32 x1, y1, x2, y2 in its
// pixels; out (n, kAppearanceDim) float32.
//
// Per box: the columns [int(x1 + 0.2 w), int(x2 - 0.2 w)) and, per band (a, b) in kAppearanceBands, the rows
// [int(y1 + a h), int(y1 + b h)), clipped to the frame (int() truncates toward zero, as Python's), of which every
// kAppearanceStep-th pixel of every kAppearanceStep-th row counts (a quarter of the work, same colours). Pixels are
// converted exactly as OpenCV's 8-bit COLOR_BGR2HSV (hue 0..179, fixed point with 12 fraction bits) and
// binned as cv2.calcHist with uniform ranges [0, 180) x [0, 256) x [0, 256) into 8 x 4 x 4 bins; a band's
// part of the vector is sqrt(count / total) (unit L2 norm), or zero when the band is under 2 x 2 pixels.
// A box with a non-finite coordinate gets a zero vector. Integer arithmetic: the same vectors on every
// architecture (OpenCV's own NEON build converts a few colours differently from its scalar path).
#pragma once

#include <cstddef>
#include <cstdint>

namespace edge {

constexpr int kAppearanceBands = 3;
constexpr int kAppearanceStep = 2;  // every 2nd pixel of every 2nd row (from the band's first) is binned
constexpr int kAppearanceBins[3] = {8, 4, 4};
constexpr int kAppearanceBandDim = 8 * 4 * 4;
constexpr int kAppearanceDim = kAppearanceBands * kAppearanceBandDim;

// Writes n * kAppearanceDim floats. height, width in 1..kMaxImageSide (see image.hpp).
void box_appearance(const std::uint8_t* bgr, int height, int width, const float* boxes, std::size_t n, float* out);

// The tracker's appearance distances. tracks (t, kAppearanceDim) and dets (n, kAppearanceDim) are appearance
// vectors; a vector "has appearance" when any element is non-zero (track_has says it for the tracks).
// distance (t, n) gets, where track i and detection j both have appearance, 1 minus their dot product over
// kAppearanceBands (the mean Bhattacharyya coefficient of the bands, so 0 for equal vectors); else NaN.
void appearance_distances(const float* tracks, const std::uint8_t* track_has, std::size_t t, const float* dets,
                          std::size_t n, float* distance);

// Folds detections into their tracks' running appearance: detection j into track det_track[j] where
// det_track[j] >= 0 and take[j] (each track at most once; the caller checks the rows). A detection without
// appearance is skipped; a track without appearance takes the detection's vector; otherwise the track
// becomes ema * track + (1 - ema) * detection with each band rescaled to unit L2 norm (a zero band stays
// zero). track_has is set for every track that took a vector.
void blend_appearance(float* tracks, std::uint8_t* track_has, const std::int32_t* det_track, const float* dets,
                      const std::uint8_t* take, std::size_t n, float ema);

}  // namespace edge
