"""NMS: native kept indices == reference.nms exactly, plus properties and hand-made edge cases.

Shape legend: N boxes, xyxy (N, 4) float32, score (N,) float32, class_id (N,) int32 or None.
Both sides compute IoU in float64 with the same operation order (and no FMA contraction), so the kept
index lists must be identical, including at thresholds hit exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime import _native
from edge_runtime import reference as ref
from edge_runtime.errors import InputError
from edge_runtime.vision import ops


def iou_pair(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@st.composite
def nms_cases(draw):
    n = draw(st.integers(0, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # integer grid: exact IoU ties like 1/2, 1/3, 0 against exact thresholds
        x1y1 = rng.integers(0, 8, (n, 2)).astype(np.float32)
        wh = rng.integers(0, 5, (n, 2)).astype(np.float32)  # zero-size boxes included
    else:
        x1y1 = rng.uniform(0, 100, (n, 2)).astype(np.float32)
        wh = (rng.uniform(0, 60, (n, 2)) * (rng.random((n, 2)) > 0.05)).astype(np.float32)
    xyxy = np.concatenate([x1y1, x1y1 + wh], axis=1)
    if n and draw(st.booleans()):  # exact duplicates
        dup = rng.integers(0, n, n // 3)
        xyxy[rng.integers(0, n, n // 3)] = xyxy[dup]
    score = (rng.choice([0.1, 0.5, 0.9], n) if draw(st.booleans()) else rng.random(n)).astype(np.float32)
    num_classes = draw(st.sampled_from([0, 1, 3, 50]))  # 0: agnostic
    class_id = rng.integers(0, num_classes, n).astype(np.int32) if num_classes else None
    iou = draw(st.sampled_from([0.0, 1 / 3, 0.5, 0.7, 1.0]) | st.floats(0, 1))
    if n >= 2 and draw(st.booleans()):
        # The threshold at the exact float64 IoU of a pair: any rounding drift in the kernel flips a decision.
        a, b = rng.integers(0, n, 2)
        iou = iou_pair(xyxy[a], xyxy[b])
    return xyxy, score, class_id, iou, draw(st.integers(1, 70))


@given(nms_cases())
def test_nms_matches_reference_exactly(case):
    xyxy, score, class_id, iou, max_det = case
    keep = ops.nms(xyxy, score, class_id, iou, max_det)
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, ref.nms(xyxy, score, class_id, iou, max_det))


@given(nms_cases())
def test_nms_properties(case):
    xyxy, score, class_id, iou, max_det = case
    keep = ops.nms(xyxy, score, class_id, iou, max_det)
    assert len(keep) <= max_det and len(set(keep.tolist())) == len(keep)
    assert len(xyxy) == 0 or len(keep) >= 1
    # best first; equal scores in index order
    pairs = list(zip((-score[keep]).tolist(), keep.tolist()))
    assert pairs == sorted(pairs)
    # no two kept boxes of one class overlap by more than the threshold
    for i, a in enumerate(keep):
        for b in keep[i + 1:]:
            if class_id is None or class_id[a] == class_id[b]:
                assert iou_pair(xyxy[a], xyxy[b]) <= iou


@given(nms_cases())
def test_class_aware_is_per_class_agnostic_merged_by_rank(case):
    """An oracle independent of reference.nms: suppress each class alone, merge by visiting rank."""
    xyxy, score, class_id, iou, max_det = case
    if class_id is None:
        class_id = np.zeros(len(score), np.int32)
    rank = np.empty(len(score), np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(len(score))
    kept = []
    for c in np.unique(class_id):
        members = np.flatnonzero(class_id == c)
        local = ops.nms(np.ascontiguousarray(xyxy[members]), np.ascontiguousarray(score[members]), None, iou, max_det)
        kept.extend(members[local].tolist())
    expected = sorted(kept, key=lambda i: rank[i])[:max_det]
    np.testing.assert_array_equal(ops.nms(xyxy, score, class_id, iou, max_det), expected)


def test_threshold_is_strict():
    boxes = np.array([[0, 0, 1, 1], [0, 0, 2, 1]], np.float32)  # IoU exactly 0.5
    score = np.array([0.9, 0.8], np.float32)
    assert ops.nms(boxes, score, None, 0.5).tolist() == [0, 1]
    assert ops.nms(boxes, score, None, 0.4999).tolist() == [0]


def test_ties_keep_the_lower_index_first():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [50, 50, 60, 60]], np.float32)
    score = np.float32([0.5, 0.5, 0.7, 0.7])
    assert ops.nms(boxes, score, None, 0.5).tolist() == [2, 0]


def test_zero_area_boxes_neither_suppress_nor_get_suppressed():
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5], [0, 0, 10, 10], [3, 3, 3, 8]], np.float32)
    score = np.float32([0.9, 0.8, 0.7, 0.6])
    assert ops.nms(boxes, score, None, 0.0).tolist() == [0, 1, 2, 3]


def test_classes_do_not_suppress_each_other_and_agnostic_does():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    score = np.float32([0.9, 0.8, 0.7])
    cls = np.int32([0, 1, 0])
    assert ops.nms(boxes, score, cls, 0.5).tolist() == [0, 1]
    assert ops.nms(boxes, score, None, 0.5).tolist() == [0]


def test_max_det_caps_the_merged_result():
    rng = np.random.default_rng(0)
    boxes = np.repeat(np.arange(20, dtype=np.float32)[:, None] * 20, 4, axis=1) + np.float32([0, 0, 10, 10])
    score = rng.random(20).astype(np.float32)
    cls = (np.arange(20) % 4).astype(np.int32)
    full = ops.nms(boxes, score, cls, 0.5, 300)
    assert len(full) == 20
    np.testing.assert_array_equal(ops.nms(boxes, score, cls, 0.5, 7), full[:7])


@pytest.mark.parametrize("n", [0, 1])
def test_zero_and_one_box(n):
    keep = ops.nms(np.zeros((n, 4), np.float32), np.ones(n, np.float32), np.zeros(n, np.int32), 0.5, 10)
    assert keep.dtype == np.int64 and keep.tolist() == list(range(n))


def test_many_classes_many_boxes_stay_exact():
    rng = np.random.default_rng(5)
    n = 2000
    x1y1 = rng.uniform(0, 600, (n, 2))
    xyxy = np.concatenate([x1y1, x1y1 + rng.uniform(1, 80, (n, 2))], axis=1).astype(np.float32)
    score = rng.random(n).astype(np.float32)
    cls = rng.integers(0, 80, n).astype(np.int32)
    np.testing.assert_array_equal(ops.nms(xyxy, score, cls, 0.45, 300), ref.nms(xyxy, score, cls, 0.45, 300))


# -- errors -------------------------------------------------------------------------------------------

BOXES = np.array([[0, 0, 10, 10], [5, 5, 15, 15]], np.float32)
SCORE = np.float32([0.9, 0.8])
CLS = np.int32([0, 1])


def _with(array: np.ndarray, row: int, col: int, value: float) -> np.ndarray:
    array = array.copy()
    if array.ndim == 1:
        array[row] = value
    else:
        array[row, col] = value
    return array


@pytest.mark.parametrize("args, match", [
    ((BOXES.astype(np.float64), SCORE, CLS), "xyxy must be float32, got float64"),
    ((BOXES[:, :3].copy(), SCORE, CLS), r"xyxy must be \(N, 4\) with N = 2, got shape \(2, 3\)"),
    ((BOXES, SCORE[:1].copy(), CLS), r"score must be \(N\) with N = 2, got shape \(1,\)"),
    ((BOXES, SCORE, CLS.astype(np.int64)), "class_id must be int32, got int64"),
    ((np.asfortranarray(np.zeros((3, 4), np.float32)), np.zeros(3, np.float32), None), "xyxy must be C-contiguous"),
    ((_with(BOXES, 1, 2, np.nan), SCORE, CLS), "xyxy has NaN or inf at row 1"),
    ((_with(BOXES, 0, 0, np.inf), SCORE, CLS), "xyxy has NaN or inf at row 0"),
    ((BOXES, _with(SCORE, 1, 0, np.nan), CLS), "score has NaN or inf at index 1"),
    ((_with(BOXES, 1, 2, 1.0), SCORE, CLS), "xyxy row 1 has x2 < x1 or y2 < y1"),
    ((BOXES.tolist(), SCORE, CLS), "xyxy must be a numpy array, got list"),
])
def test_bad_inputs_raise_input_error(args, match):
    with pytest.raises(InputError, match=match):
        ops.nms(*args)


@pytest.mark.parametrize("iou, max_det, match", [
    (1.5, 10, r"iou_threshold must be in \[0, 1\], got 1.5"), (float("nan"), 10, "iou_threshold must be in"),
    (0.5, 0, "max_det must be an integer >= 1, got 0"), (0.5, 2.5, "max_det must be an integer"),
])
def test_bad_parameters_raise_input_error(iou, max_det, match):
    with pytest.raises(InputError, match=match):
        ops.nms(BOXES, SCORE, CLS, iou, max_det)


@pytest.mark.parametrize("args, match", [
    ((BOXES.astype(np.float64), SCORE, None, 0.5, 10), "xyxy must be float32, got float64"),
    ((BOXES, SCORE[:1].copy(), None, 0.5, 10), r"score must be \(N,\) = \(2,\), got shape \(1,\)"),
    ((BOXES, SCORE, CLS[:1].copy(), 0.5, 10), r"class_id must be \(N,\) = \(2,\)"),
    ((BOXES, SCORE, CLS.astype(np.uint32), 0.5, 10), "class_id must be int32, got uint32"),
    ((np.zeros((4, 4), np.float32)[::2], SCORE, None, 0.5, 10), "xyxy must be C-contiguous"),
    ((BOXES, SCORE, None, -0.5, 10), r"iou_threshold must be in \[0, 1\]"),
    ((BOXES, SCORE, None, 0.5, 0), "max_det must be >= 1"),
])
def test_binding_checks_its_own_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        _native.nms(*args)


def test_binding_does_not_convert_lists():
    with pytest.raises(TypeError):
        _native.nms(BOXES.tolist(), SCORE, None, 0.5, 10)
