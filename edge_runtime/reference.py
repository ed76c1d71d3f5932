"""NumPy references for the native kernels: the oracle of the tests and the baseline of the benchmarks.

Each function here has the same name and contract as its counterpart in ``edge_runtime._native``
(``edge::NAME`` in C++). They are written for clarity, not speed. Each kernel family keeps its own
section below.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------------
# tracking: iou_matrix, linear_assignment  (native/src/track.cpp)
# Shape legend: M rows (tracks), N columns (detections); boxes are (count, 4) float32 x1, y1, x2, y2.
# ---------------------------------------------------------------------------------------------------


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (M, N) float32 of boxes ``a`` (M, 4) against ``b`` (N, 4), computed in float64.

    A box with x2 < x1 or y2 < y1 has zero area; a pair whose union is zero has IoU 0.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return iou.astype(np.float32)


def linear_assignment(cost: np.ndarray, max_cost: float = float("inf")) -> np.ndarray:
    """Optimal assignment of the (M, N) cost matrix: row_to_col (M,) int32, -1 = unmatched.

    ``max_cost = inf``: min(M, N) pairs of minimum total cost (scipy's linear_sum_assignment).
    Finite ``max_cost``: only pairs with cost < max_cost are matched, maximising sum(max_cost - cost);
    solved as the full problem on min(cost - max_cost, 0), whose zero-valued pairs are then dropped.
    Needs scipy (a dev dependency; this module is an oracle, not a runtime path).
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.asarray(cost, np.float64)
    row_to_col = np.full(cost.shape[0], -1, np.int32)
    if cost.size == 0:
        return row_to_col
    limited = np.isfinite(max_cost)
    work = np.where(cost < max_cost, cost - max_cost, 0.0) if limited else cost
    rows, cols = linear_sum_assignment(work)
    keep = cost[rows, cols] < max_cost if limited else np.ones(rows.shape, bool)
    row_to_col[rows[keep]] = cols[keep]
    return row_to_col
