#pragma once
// Association kernels of the multi-object tracker: box IoU and rectangular linear assignment.
// Plain C++17 over pointers and sizes; the NumPy references are edge_runtime/reference.py
// (iou_matrix, linear_assignment) and the assignment oracle in the tests is scipy's linear_sum_assignment.
//
// Shape legend: M rows (tracks), N columns (detections); boxes are row-major (count, 4) float32
// x1, y1, x2, y2; matrices are row-major (M, N).
#include <cstddef>
#include <cstdint>

namespace edge {

// IoU of every box in `a` (m, 4) against every box in `b` (n, 4), written to out (m, n).
// A box with x2 < x1 or y2 < y1 has zero area; a pair whose union is zero has IoU 0.
// Throws std::invalid_argument if any coordinate is NaN or infinite (nothing is written then).
void iou_matrix(const float* a, std::size_t m, const float* b, std::size_t n, float* out);

// Optimal rectangular assignment of rows to columns for the (rows, cols) cost matrix; writes
// row_to_col (rows,) with the matched column of each row or -1.
//
// max_cost = +inf: the classic problem (scipy.optimize.linear_sum_assignment): min(rows, cols) pairs of
//   minimum total cost. Every entry must be finite.
// max_cost finite: a pair (i, j) may be matched only if cost[i, j] < max_cost, and the matching
//   maximises the total gain sum(max_cost - cost[i, j]) over matched pairs, so a row stays unmatched
//   rather than take a pair at or beyond the limit (the `cost_limit` semantics of lapjv used by
//   ByteTrack). Entries may be +inf (never matched).
// Throws std::invalid_argument on NaN or -inf entries, on +inf entries when max_cost is +inf, or on a
// NaN max_cost. Solved by the shortest augmenting path method (Crouse 2016, as in scipy), O(r^2 c)
// with r = min(rows, cols).
void linear_assignment(const float* cost, std::size_t rows, std::size_t cols, double max_cost,
                       std::int32_t* row_to_col);

}  // namespace edge
