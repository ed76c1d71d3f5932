// Greedy non-maximum suppression.
//
// Shape legend: N boxes; xyxy is (N, 4) float32 (x1, y1, x2, y2) row-major, score (N,) float32, class_id
// (N,) int32 or null for class-agnostic suppression.
//
// Semantics (the contract reference.nms checks bit for bit):
// - boxes are visited in descending score order, ties by lower index first (a stable sort);
// - a visited box that is not suppressed is kept, and suppresses every later box (of its class, when
//   class ids are given) whose IoU with it is strictly greater than iou_threshold;
// - IoU is computed in double from the float inputs as inter / (area_i + area_j - inter), and is 0 when
//   that union is not positive (zero-area boxes never suppress or get suppressed);
// - class-aware suppression groups boxes by class; it does not offset coordinates by class (that trick
//   changes float rounding);
// - at most max_det indices are returned, in visiting order.
#pragma once

#include <cstdint>
#include <vector>

namespace edge {

// Kept indices into the inputs, in descending score order. n may be 0; max_det <= 0 keeps nothing.
// Inputs must be finite (the callers validate); non-finite values give an unspecified but in-range result.
std::vector<int64_t> nms(const float* xyxy, const float* score, const int32_t* class_id, int64_t n,
                         double iou_threshold, int64_t max_det);

}  // namespace edge
