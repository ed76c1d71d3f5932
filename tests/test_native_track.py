"""Native tracking kernels against their references: NumPy (IoU, Kalman) and scipy (assignment)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from edge_runtime import _native, reference
from edge_runtime.errors import InputError
from edge_runtime.vision.kalman import KalmanXYAH, xyxy_to_xyah
from edge_runtime.vision.tracking import iou_matrix, linear_assignment

try:
    from scipy import optimize as scipy_optimize
except ImportError:  # armv7 test root filesystems have no scipy; the dev extra installs it everywhere else
    scipy_optimize = None
needs_scipy = pytest.mark.skipif(scipy_optimize is None, reason="scipy, the assignment oracle, is not installed here")

# M, N up to 9 boxes. Hypothesis draws the count, a seed and the kind of degeneracy; NumPy draws the
# values (element-wise hypothesis strategies would make these tests 10x slower for no extra coverage).
# Coordinates snap to a coarse grid half the time so that equal and touching edges occur.


@st.composite
def boxes(draw, max_n: int = 9, allow_inverted: bool = True) -> np.ndarray:
    n = draw(st.integers(0, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xy = rng.uniform(-50, 700, (n, 2))
    wh = rng.uniform(0, 300, (n, 2))
    if draw(st.booleans()):
        xy, wh = np.round(xy / 16) * 16, np.round(wh / 16) * 16  # shared and touching edges, duplicates
    wh[rng.random((n, 2)) < draw(st.sampled_from([0.0, 0.2]))] = 0.0  # zero-width / zero-height boxes
    if allow_inverted and draw(st.booleans()):  # degenerate predictions: x2 < x1 counts as zero area
        wh[rng.random(n) < 0.2, 0] *= -1
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


@st.composite
def cost_matrices(draw) -> np.ndarray:
    m, n = draw(st.integers(0, 8)), draw(st.integers(0, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    cost = rng.random((m, n), dtype=np.float32)
    if draw(st.booleans()):  # quantised: ties everywhere, where assignments may differ but costs may not
        cost = np.round(cost * 4).astype(np.float32) / 4
    return cost


def assignment_cost(cost: np.ndarray, row_to_col: np.ndarray) -> float:
    rows = np.flatnonzero(row_to_col >= 0)
    return float(cost.astype(np.float64)[rows, row_to_col[rows]].sum())


def assert_is_matching(row_to_col: np.ndarray, m: int, n: int) -> None:
    assert row_to_col.shape == (m,) and row_to_col.dtype == np.int32
    used = row_to_col[row_to_col >= 0]
    assert (used < n).all() and np.unique(used).size == used.size


# ---------------------------------------------------------------------------------------------- IoU


@given(boxes(), boxes())
def test_iou_matrix_matches_numpy_reference(a, b):
    got = iou_matrix(a, b)
    assert got.shape == (a.shape[0], b.shape[0]) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference.iou_matrix(a, b), rtol=0, atol=1e-6)
    assert ((got >= 0) & (got <= 1)).all()


@given(boxes(allow_inverted=False))
def test_iou_of_a_box_with_itself_is_one_unless_empty(a):
    diag = np.diag(iou_matrix(a, a)) if len(a) else np.zeros(0)
    nonempty = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    np.testing.assert_allclose(diag[nonempty], 1.0, atol=1e-6)
    assert (diag[~nonempty] == 0).all()


def test_iou_known_values_and_empty_shapes():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[5, 0, 15, 10], [10, 0, 20, 10], [0, 0, 10, 10]], np.float32)
    np.testing.assert_allclose(iou_matrix(a, b), [[1 / 3, 0, 1], [0, 0, 0]], atol=1e-7)
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)
    assert iou_matrix(a, np.zeros((0, 4))).shape == (2, 0)
    assert iou_matrix([], []).shape == (0, 0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_iou_rejects_non_finite_coordinates(bad):
    a = np.array([[0, 0, 10, 10], [0, 0, bad, 10]], np.float32)
    with pytest.raises(InputError, match=r"a\[1\]"):
        iou_matrix(a, a[:1])
    with pytest.raises(InputError, match=r"b\[1\]"):
        iou_matrix(a[:1], a)


def test_iou_rejects_wrong_shapes_and_native_refuses_silent_copies():
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        iou_matrix(np.zeros((3, 5)), np.zeros((1, 4)))
    with pytest.raises(InputError):
        iou_matrix([["a", "b", "c", "d"]], np.zeros((1, 4)))
    with pytest.raises(TypeError):  # the binding takes float32 views only; float64 would be a hidden copy
        _native.iou_matrix(np.zeros((1, 4)), np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="must be"):
        _native.iou_matrix(np.zeros((1, 3), np.float32), np.zeros((1, 4), np.float32))


# ----------------------------------------------------------------------------------------- assignment


@needs_scipy
@given(cost_matrices())
def test_assignment_is_optimal_like_scipy(cost):
    m, n = cost.shape
    got = linear_assignment(cost)
    assert_is_matching(got, m, n)
    assert (got >= 0).sum() == min(m, n)
    rows, cols = scipy_optimize.linear_sum_assignment(cost.astype(np.float64))
    assert assignment_cost(cost, got) == pytest.approx(float(cost.astype(np.float64)[rows, cols].sum()), abs=1e-9)


@needs_scipy
@given(cost_matrices(), st.one_of(st.floats(0, 1.2), st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])))
def test_thresholded_assignment_is_optimal_and_respects_the_limit(cost, max_cost):
    m, n = cost.shape
    got = linear_assignment(cost, max_cost)
    assert_is_matching(got, m, n)
    rows = np.flatnonzero(got >= 0)
    cost64 = cost.astype(np.float64)  # the limit is compared in float64 (a tiny max_cost must not round to 0)
    assert (cost64[rows, got[rows]] < max_cost).all()
    # Oracle: scipy on the gain-shaped problem, pairs at or beyond the limit worth nothing.
    shaped = np.where(cost64 < max_cost, cost64 - max_cost, 0.0)
    r, c = scipy_optimize.linear_sum_assignment(shaped) if cost.size else (np.zeros(0, int), np.zeros(0, int))
    got_value = float((cost64[rows, got[rows]] - max_cost).sum())
    assert got_value == pytest.approx(float(shaped[r, c].sum()), abs=1e-9)


@needs_scipy
@pytest.mark.parametrize("seed", range(5))
def test_assignment_pairs_equal_scipy_when_the_optimum_is_unique(seed):
    # Continuous random costs: ties have probability zero, so the optimal pairs themselves must agree.
    rng = np.random.default_rng(seed)
    for m, n in [(1, 1), (3, 7), (7, 3), (12, 12), (30, 25), (1, 40)]:
        cost = rng.random((m, n), dtype=np.float32)
        np.testing.assert_array_equal(linear_assignment(cost), reference.linear_assignment(cost))
        np.testing.assert_array_equal(linear_assignment(cost, 0.3), reference.linear_assignment(cost, 0.3))


def test_assignment_prefers_leaving_rows_unmatched_to_bad_pairs():
    cost = np.array([[0.1, 0.9], [0.2, 0.95]], np.float32)
    assert linear_assignment(cost).tolist() == [0, 1]  # 0.1 + 0.95 = 1.05 beats 0.9 + 0.2 = 1.1
    # With a limit of 0.5 only column 0 is usable; row 0 gains 0.4 there, row 1 only 0.3.
    assert linear_assignment(cost, 0.5).tolist() == [0, -1]


def test_assignment_degenerate_inputs():
    assert linear_assignment(np.zeros((0, 5), np.float32)).shape == (0,)
    assert linear_assignment(np.zeros((4, 0), np.float32)).tolist() == [-1] * 4
    assert linear_assignment(np.ones((3, 3), np.float32), 1.0).tolist() == [-1, -1, -1]  # all infeasible
    inf = np.full((2, 3), np.inf, np.float32)
    inf[1, 2] = 0.3
    assert linear_assignment(inf, 0.5).tolist() == [-1, 2]  # +inf = forbidden pair
    wide = np.array([[3, 1, 2, 0.5]], np.float32)
    assert linear_assignment(wide).tolist() == [3]
    assert linear_assignment(wide.T.copy()).tolist() == [-1, -1, -1, 0]


@pytest.mark.parametrize("bad,max_cost",
                         [(math.nan, math.inf), (math.nan, 0.5), (-math.inf, 0.5), (math.inf, math.inf)])
def test_assignment_rejects_nan_and_bad_infinities(bad, max_cost):
    cost = np.array([[0.1, bad], [0.2, 0.3]], np.float32)
    with pytest.raises(InputError, match=r"cost\[0, 1\]"):
        linear_assignment(cost, max_cost)


def test_assignment_rejects_bad_arguments():
    with pytest.raises(InputError, match="NaN"):
        linear_assignment(np.zeros((2, 2)), math.nan)
    with pytest.raises(InputError, match="2-D"):
        linear_assignment(np.zeros(3))
    with pytest.raises(TypeError):
        _native.linear_assignment(np.zeros((2, 2)), 1.0)  # float64: no hidden conversion in the binding


# ------------------------------------------------------------------------------------------- Kalman


@st.composite
def kalman_states(draw):
    t = draw(st.integers(0, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xy = rng.uniform(-100, 800, (t, 2))
    wh = rng.uniform(0, 200, (t, 2))
    wh[rng.random(t) < 0.2, 1] = 0.0  # zero-height boxes: clamped, never a division by zero
    first = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    mean, cov = KalmanXYAH().initiate(xyxy_to_xyah(first))
    mean[:, 4:] = rng.normal(0, 3, (t, 4))
    miss = rng.integers(0, 3, t).astype(np.int64)
    measured = (first + rng.normal(0, 4, (t, 4))).astype(np.float32)
    measured[:, 2:] = np.maximum(measured[:, 2:], measured[:, :2])
    rows = rng.permutation(t)[: rng.integers(0, t + 1)].astype(np.int64)
    return mean, cov, miss, measured[rows], rows


@given(kalman_states())
def test_kalman_predict_and_update_match_numpy(state):
    mean, cov, miss, measured, rows = state
    ref_mean, ref_cov = mean.copy(), cov.copy()
    for dt in (1.0, 3.0, 0.4):  # a few steps, some skipping frames, so the covariance gets off-diagonal terms
        boxes = _native.kalman_predict(mean, cov, miss, dt=dt)
        ref_boxes = reference.kalman_predict(ref_mean, ref_cov, miss, dt=dt)
        np.testing.assert_allclose(boxes, ref_boxes, rtol=1e-6, atol=1e-3)
        np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(cov, ref_cov, rtol=1e-12, atol=1e-9)
        _native.kalman_update(mean, cov, rows, measured)
        reference.kalman_update(ref_mean, ref_cov, rows, measured)
        np.testing.assert_allclose(mean, ref_mean, rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(cov, ref_cov, rtol=1e-9, atol=1e-6)
        assert np.isfinite(mean).all() and np.isfinite(cov).all()
        assert (np.linalg.eigvalsh(cov) > 0).all()  # stays a covariance


def test_kalman_follows_a_constant_velocity_box():
    mean, cov = KalmanXYAH().initiate(xyxy_to_xyah(np.array([[0, 0, 20, 40]], np.float32)))
    miss = np.zeros(1, np.int64)
    for t in range(1, 30):
        _native.kalman_predict(mean, cov, miss)
        box = np.array([[3 * t, 0, 3 * t + 20, 40]], np.float32)
        _native.kalman_update(mean, cov, np.zeros(1, np.int64), box)
    predicted = _native.kalman_predict(mean, cov, miss)
    np.testing.assert_allclose(predicted, [[90, 0, 110, 40]], atol=0.5)


def test_kalman_predict_dt_is_several_single_steps_for_the_mean():
    mean, cov = KalmanXYAH().initiate(xyxy_to_xyah(np.array([[0, 0, 20, 40]], np.float32)))
    mean[0, 4:6] = (3.0, -1.0)
    one, two = mean.copy(), mean.copy()
    cov1, cov2 = cov.copy(), cov.copy()
    miss = np.zeros(1, np.int64)
    for _ in range(3):
        _native.kalman_predict(one, cov1, miss)
    box = _native.kalman_predict(two, cov2, miss, dt=3.0)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-9)
    np.testing.assert_allclose(box, [[9, -3, 29, 37]], atol=1e-4)
    assert cov2[0, 0, 0] > cov[0, 0, 0]  # uncertainty grew with the time that passed
    with pytest.raises(ValueError, match="dt"):
        _native.kalman_predict(two, cov2, miss, dt=-1.0)


def test_kalman_binding_checks():
    mean, cov = np.zeros((2, 8)), np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match=r"\(T, 8\)"):
        _native.kalman_predict(mean, np.zeros((3, 8, 8)), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="outside"):
        _native.kalman_update(mean, cov, np.array([2], np.int64), np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="differ"):
        _native.kalman_update(mean, cov, np.array([0, 1], np.int64), np.zeros((1, 4), np.float32))
    frozen = mean.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _native.kalman_predict(frozen, cov, np.zeros(2, np.int64))


# -------------------------------------------------------------------------------- ByteTrack association


@st.composite
def association_inputs(draw):
    tracks = draw(boxes(8, allow_inverted=False))
    dets = draw(boxes(8, allow_inverted=False))
    t, n = len(tracks), len(dets)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    track_id = rng.choice(np.array([-1, 0, 5], np.int64), t)
    miss = rng.integers(0, 3, t).astype(np.int64)
    score = rng.choice(np.array([0.05, 0.1, 0.3, 0.5, 0.7, 0.95], np.float32), n)
    flags = (draw(st.booleans()), draw(st.booleans()))  # fuse_score, revive_lost
    return tracks, track_id, miss, dets, score, flags, draw(st.booleans())  # ..., tentative_low


@given(association_inputs())
def test_associate_bytetrack_matches_reference(inputs):
    tracks, track_id, miss, dets, score, (fuse, revive), tentative_low = inputs
    args = (0.5, 0.1, 0.8, 0.5, 0.7, fuse, revive)
    got = _native.associate_bytetrack(tracks, track_id, miss, dets, score, *args, tentative_low=tentative_low)
    # The reference runs the same stages in NumPy; the solver is the native one (proven optimal against
    # scipy above) so that ties break identically and the result can be compared exactly.
    want = reference.associate_bytetrack(tracks, track_id, miss, dets, score, *args, assign=_native.linear_assignment,
                                         tentative_low=tentative_low)
    np.testing.assert_array_equal(got, want)
    matched = got[got >= 0]
    assert np.unique(matched).size == matched.size
    low = (score >= 0.1) & (score < 0.5)
    low_to_confirmed = low & (got >= 0)
    low_to_confirmed[low_to_confirmed] = track_id[got[low_to_confirmed]] >= 0
    if not revive:
        assert (miss[got[low_to_confirmed]] == 0).all()  # low-score boxes only extend confirmed tracks seen last frame
    if not tentative_low:
        assert (track_id[got[low & (got >= 0)]] >= 0).all()
    assert (got[score < 0.1] == -1).all()


@given(association_inputs(), st.data())
def test_associate_bytetrack_with_widened_boxes_and_jump_gate_matches_reference(inputs, data):
    tracks, track_id, miss, dets, score, (fuse, revive), tentative_low = inputs
    t = len(tracks)
    grow = np.asarray(data.draw(st.lists(st.sampled_from([0.0, 0.1, 0.35, 1.0]), min_size=t, max_size=t)), np.float32)
    jump = np.asarray(data.draw(st.lists(st.sampled_from([0.0, 0.05, 0.3, 2.0]), min_size=t, max_size=t)), np.float32)
    det_grow = data.draw(st.sampled_from([0.0, 0.2]))
    args = (0.5, 0.1, 0.8, 0.5, 0.7, fuse, revive)
    got = _native.associate_bytetrack(tracks, track_id, miss, dets, score, *args, grow, det_grow, jump,
                                      tentative_low=tentative_low)
    want = reference.associate_bytetrack(tracks, track_id, miss, dets, score, *args, track_grow=grow,
                                         det_grow=det_grow, track_jump=jump, assign=_native.linear_assignment,
                                         tentative_low=tentative_low)
    np.testing.assert_array_equal(got, want)
    for d in np.flatnonzero(got >= 0):  # no pair left matched is further apart than its gate
        i = got[d]
        if jump[i] > 0:
            tc, dc = (tracks[i, :2] + tracks[i, 2:]) / 2, (dets[d, :2] + dets[d, 2:]) / 2
            assert np.hypot(*(tc - dc)) <= jump[i] * (dets[d, 3] - dets[d, 1]) * (1 + 1e-6) + 1e-6


@given(association_inputs(), st.sampled_from([0.0, 0.8, 1.0, 1.2, 2.0]))
def test_associate_bytetrack_with_the_low_score_growth_gate_matches_reference(inputs, growth):
    tracks, track_id, miss, dets, score, (fuse, revive), tentative_low = inputs
    args = (0.5, 0.1, 0.8, 0.5, 0.7, fuse, revive)
    got = _native.associate_bytetrack(tracks, track_id, miss, dets, score, *args, tentative_low=tentative_low,
                                      low_max_growth=growth)
    want = reference.associate_bytetrack(tracks, track_id, miss, dets, score, *args, assign=_native.linear_assignment,
                                         tentative_low=tentative_low, low_max_growth=growth)
    np.testing.assert_array_equal(got, want)
    ungated = _native.associate_bytetrack(tracks, track_id, miss, dets, score, *args, tentative_low=tentative_low)
    undone = (ungated >= 0) & (got < 0)
    assert (score[undone] < 0.5).all()  # only low-score matches are undone, and only by the gate
    if growth > 0 and undone.any():
        d, t = dets[undone], tracks[ungated[undone]]
        assert ((d[:, 3] - d[:, 1]) > np.float32(growth) * np.maximum(t[:, 3] - t[:, 1], 0)).all()


def test_the_growth_gate_leaves_a_much_taller_low_score_box_unmatched():
    track = np.array([[0, 0, 40, 100]], np.float32)
    tall = np.array([[0, 0, 40, 130]], np.float32)  # IoU 0.77 with the track; 1.3 times as tall
    args = (np.zeros(1, np.int64), np.zeros(1, np.int64), tall, np.array([0.3], np.float32), 0.5, 0.1, 0.8,
            0.8, 0.7, False, True)
    assert _native.associate_bytetrack(track, *args, low_max_growth=1.4).tolist() == [0]
    assert _native.associate_bytetrack(track, *args, low_max_growth=1.2).tolist() == [-1]
    with pytest.raises(ValueError, match="low_max_growth must be finite"):
        _native.associate_bytetrack(track, *args, low_max_growth=float("nan"))


def test_widened_boxes_find_a_box_that_moved_more_than_its_width():
    track = np.array([[0, 0, 40, 100]], np.float32)
    moved = np.array([[50, 0, 90, 100]], np.float32)  # 50 px right: no overlap with the prediction
    args = (np.zeros(1, np.int64), np.zeros(1, np.int64), moved, np.array([0.9], np.float32), 0.5, 0.1, 0.8,
            0.8, 0.7, False, True)
    assert _native.associate_bytetrack(track, *args).tolist() == [-1]
    assert _native.associate_bytetrack(track, *args, np.array([0.5], np.float32), 0.5).tolist() == [0]
    # ... unless the jump gate says 50 px is too far for a 100 px tall box in the time that passed.
    assert _native.associate_bytetrack(track, *args, np.array([0.5], np.float32), 0.5,
                                       np.array([0.4], np.float32)).tolist() == [-1]
    with pytest.raises(ValueError, match="track_grow"):
        _native.associate_bytetrack(track, *args, np.zeros(2, np.float32))


@needs_scipy
@given(association_inputs())
def test_associate_bytetrack_first_stage_value_equals_scipy(inputs):
    tracks, track_id, miss, dets, score, (fuse, revive), _ = inputs
    got = _native.associate_bytetrack(tracks, track_id, miss, dets, score, 0.5, 0.1, 0.8, 0.5, 0.7, fuse, revive)
    pool, high = np.flatnonzero(track_id >= 0), np.flatnonzero(score >= 0.5)
    assume(pool.size and high.size)
    sim = reference.iou_matrix(tracks[pool], dets[high]) * (score[high] if fuse else np.float32(1))
    cost = (np.float32(1) - sim).astype(np.float64)
    shaped = np.where(cost < 0.8, cost - 0.8, 0.0)
    r, c = scipy_optimize.linear_sum_assignment(shaped)
    position = {int(t): i for i, t in enumerate(pool)}
    value = sum(cost[position[int(got[d])], k] - 0.8 for k, d in enumerate(high) if got[d] >= 0 and got[d] in position)
    assert value == pytest.approx(float(shaped[r, c].sum()), abs=1e-6)


@given(boxes(allow_inverted=False))
def test_kalman_initiate_matches_numpy(first):
    mean, cov = _native.kalman_initiate(first)
    ref_mean, ref_cov = reference.kalman_initiate(first)
    assert mean.shape == (len(first), 8) and cov.shape == (len(first), 8, 8)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-12, atol=1e-12)


@given(association_inputs(), st.data())
def test_associate_bytetrack_with_forbidden_pairs_matches_reference(inputs, data):
    tracks, track_id, miss, dets, score, (fuse, revive), tentative_low = inputs
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    forbid = (rng.random((len(tracks), len(dets))) < data.draw(st.sampled_from([0.0, 0.3, 1.0]))).astype(np.uint8)
    args = (0.5, 0.1, 0.8, 0.5, 0.7, fuse, revive)
    got = _native.associate_bytetrack(tracks, track_id, miss, dets, score, *args, None, 0.0, None, forbid,
                                      tentative_low)
    want = reference.associate_bytetrack(tracks, track_id, miss, dets, score, *args, forbid=forbid.astype(bool),
                                         assign=_native.linear_assignment, tentative_low=tentative_low)
    np.testing.assert_array_equal(got, want)
    for d in np.flatnonzero(got >= 0):  # a confirmed track never takes a forbidden detection
        if track_id[got[d]] >= 0:
            assert not forbid[got[d], d]


def test_associate_bytetrack_rejects_a_forbid_mask_of_the_wrong_shape():
    box = np.array([[0, 0, 10, 20]], np.float32)
    args = (np.zeros(1, np.int64), np.zeros(1, np.int64), box, np.array([0.9], np.float32), 0.5, 0.1, 0.8, 0.8,
            0.7, False, True, None, 0.0, None)
    assert _native.associate_bytetrack(box, *args, np.zeros((1, 1), np.uint8)).tolist() == [0]
    assert _native.associate_bytetrack(box, *args, np.ones((1, 1), np.uint8)).tolist() == [-1]
    with pytest.raises(ValueError, match="forbid must be"):
        _native.associate_bytetrack(box, *args, np.zeros((2, 1), np.uint8))


@given(association_inputs(), st.sampled_from([0.0, 0.05, 0.3, 0.6, 1.0]), st.sampled_from([0.0, 0.1, 0.4, 1.0]),
       st.booleans())
def test_associate_bytetrack_with_the_fit_margins_matches_reference(inputs, low_margin, tentative_margin, with_forbid):
    tracks, track_id, miss, dets, score, (fuse, revive), tentative_low = inputs
    args = (0.5, 0.1, 0.8, 0.5, 0.7, fuse, revive)
    forbid = (np.arange(len(tracks) * len(dets)).reshape(len(tracks), len(dets)) % 3 == 0).astype(np.uint8) \
        if with_forbid else None
    got = _native.associate_bytetrack(tracks, track_id, miss, dets, score, *args, forbid=forbid,
                                      tentative_low=tentative_low, low_fit_margin=low_margin,
                                      tentative_fit_margin=tentative_margin)
    want = reference.associate_bytetrack(tracks, track_id, miss, dets, score, *args, forbid=forbid,
                                         assign=_native.linear_assignment, tentative_low=tentative_low,
                                         low_fit_margin=low_margin, tentative_fit_margin=tentative_margin)
    np.testing.assert_array_equal(got, want)


def _crowd(rng: np.random.Generator):
    """Tracks close together and detections jittered off them (some tracks on one spot), mixed scores, and a
    few distinct appearance distances, some unknown: the look rule's cases, ties and NaN all occur."""
    t, n = int(rng.integers(1, 7)), int(rng.integers(1, 9))
    corner, size = rng.uniform(0, 60, (t, 2)), rng.uniform(20, 50, (t, 2))
    tracks = np.concatenate([corner, corner + size], 1).astype(np.float32)
    if t > 1 and rng.random() < 0.5:
        tracks[1] = tracks[0]  # equal IoU with every box: the look decides who owns one
    dets = (tracks[rng.integers(0, t, n)] + rng.normal(0, 8, (n, 4))).astype(np.float32)
    dets[:, 2:] = np.maximum(dets[:, 2:], dets[:, :2] + 2)
    track_id = rng.choice(np.array([-1, 0, 5], np.int64), t)
    miss = rng.integers(0, 3, t).astype(np.int64)
    score = rng.choice(np.array([0.05, 0.2, 0.3, 0.6, 0.95], np.float32), n)
    look = rng.choice(np.array([0.1, 0.2, 0.3, 0.45, np.nan], np.float32), (t, n))
    return tracks, track_id, miss, dets, score, look


def test_associate_bytetrack_with_the_look_margin_matches_reference():
    changed = 0
    for seed in range(400):
        rng = np.random.default_rng(seed)
        tracks, track_id, miss, dets, score, look = _crowd(rng)
        margin = float(rng.choice([0.05, 0.1, 0.3]))
        fuse, revive, tentative_low, with_fit = (bool(v) for v in rng.integers(0, 2, 4))
        args = (0.5, 0.1, 0.8, 0.5, 0.7, fuse, revive)
        fit = {"low_fit_margin": 0.3, "tentative_fit_margin": 0.1} if with_fit else {}
        got = _native.associate_bytetrack(tracks, track_id, miss, dets, score, *args, tentative_low=tentative_low,
                                          look=look, low_look_margin=margin, **fit)
        want = reference.associate_bytetrack(tracks, track_id, miss, dets, score, *args,
                                             assign=_native.linear_assignment, tentative_low=tentative_low, look=look,
                                             low_look_margin=margin, **fit)
        np.testing.assert_array_equal(got, want, err_msg=f"seed {seed}")
        off = _native.associate_bytetrack(tracks, track_id, miss, dets, score, *args, tentative_low=tentative_low,
                                          **fit)
        changed += not np.array_equal(got, off)
    assert changed >= 10  # the rule decided some of these cases


# walkway, every 2nd frame: a man stands still at the lamp post (his track, index 0) while a walker passes in front.
# The walker's confident box covers part of him (IoU 0.27); his own box is unsure (score 0.2, IoU 0.79).
STOOD, PASSING_AND_HIS = [372, 166, 409, 262], [[356, 166, 390, 236], [374, 178, 410, 260]]


def _stood(look, tracks=(STOOD,), margin=0.1):
    t = len(tracks)
    return _native.associate_bytetrack(
        np.array(tracks, np.float32), np.arange(t, dtype=np.int64), np.zeros(t, np.int64),
        np.array(PASSING_AND_HIS, np.float32), np.array([0.6, 0.2], np.float32), 0.5, 0.1, 0.8, 0.8, 0.7, False,
        True, look=np.array(look, np.float32), low_look_margin=margin).tolist()


# walkway, every 3rd frame, f60: the man standing at the lamp post (track 0, his prediction stretched by a taller
# box) and his neighbour (track 1), whose own confident box fits him well. The neighbour fits the standing man's
# unsure box a little better (IoU 0.355 against 0.353), yet he is not after it.
NEIGHBOURS = [[358, 161, 432, 274], [386, 171, 434, 266]]
HIS_OWN_WALKER_STOOD = [[386, 179, 432, 263], [356, 166, 390, 236], [374, 178, 410, 260]]


def test_a_neighbour_with_a_better_confident_box_does_not_own_the_low_score_box():
    args = (np.array(NEIGHBOURS, np.float32), np.arange(2, dtype=np.int64), np.zeros(2, np.int64),
            np.array(HIS_OWN_WALKER_STOOD, np.float32), np.array([0.6, 0.6, 0.2], np.float32), 0.5, 0.1, 0.8, 0.8,
            0.7, False, True)
    look = np.array([[0.4, 0.36, 0.2], [0.16, np.nan, 0.33]], np.float32)
    iou = reference.iou_matrix(args[0], args[3])
    assert iou[1, 2] > iou[0, 2] and iou[1, 0] > iou[1, 2]  # the case: he fits it better, his own box better still
    got = _native.associate_bytetrack(*args, look=look, low_look_margin=0.1).tolist()
    want = reference.associate_bytetrack(*args, assign=_native.linear_assignment, look=look,
                                         low_look_margin=0.1).tolist()
    assert got == want == [1, -1, 0]  # the standing man keeps his unsure box; the walker's is left to others
    assert _native.associate_bytetrack(*args, look=look, low_look_margin=0.0).tolist() == [1, 0, -1]  # off


def test_the_look_margin_leaves_a_confident_box_that_looks_unlike_the_track_to_others():
    assert _stood([[0.34, 0.14]]) == [-1, 0]  # his own box looks 0.2 more like him
    assert _stood([[0.34, 0.14]], margin=0.0) == [0, -1]  # off
    assert _stood([[0.34, 0.14]], margin=0.25) == [0, -1]  # not by that much
    assert _stood([[0.2, 0.14]]) == [0, -1]  # the walker's box looks almost as much like him
    assert _stood([[0.34, np.nan]]) == [0, -1]  # his own box's look unknown
    # two tracks on the same spot: the low-score box is the one's it looks more like, and the rule is his
    assert _stood([[0.5, 0.14], [0.34, 0.05]], tracks=(STOOD, STOOD)) == [0, 1]
    assert _stood([[0.34, 0.05], [0.5, 0.14]], tracks=(STOOD, STOOD)) == [1, 0]
    with pytest.raises(ValueError, match="look must be"):
        _stood([[0.34, 0.14, 0.1]])
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="low_look_margin must be in"):
            _stood([[0.34, 0.14]], margin=bad)


def test_the_tentative_fit_margin_leaves_a_newcomers_box_to_his_tentative_track():
    # A confirmed track (index 0) seen last frame, and a tentative one (index 1) started beside it; one confident
    # box, right on the tentative track (IoU 1.0) and a third over the confirmed one (IoU 0.35).
    tracks = np.array([[392, 182, 428, 259], [374, 171, 414, 255]], np.float32)
    dets = np.array([[374, 171, 414, 255]], np.float32)
    base = (tracks, np.array([3, -1], np.int64), np.array([0, 0], np.int64), dets, np.array([0.6], np.float32),
            0.5, 0.1, 0.8, 0.8, 0.7, False, True)
    assert _native.associate_bytetrack(*base).tolist() == [0]
    assert _native.associate_bytetrack(*base, tentative_fit_margin=0.1).tolist() == [1]
    assert _native.associate_bytetrack(*base, tentative_fit_margin=0.7).tolist() == [0]  # 1.0 - 0.35 < 0.7
    missed = (tracks, base[1], np.array([1, 0], np.int64)) + base[3:]  # the confirmed track was not seen last frame
    assert _native.associate_bytetrack(*missed, tentative_fit_margin=0.1).tolist() == [0]
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="tentative_fit_margin must be in"):
            _native.associate_bytetrack(*base, tentative_fit_margin=bad)


def test_the_low_fit_margin_leaves_a_neighbours_confident_box_to_the_low_score_box_on_the_track():
    track = np.array([[372, 166, 409, 262]], np.float32)
    dets = np.array([[356, 166, 390, 236], [374, 178, 410, 260]], np.float32)  # IoU 0.27 (score 0.6), 0.79 (0.2)
    args = (track, np.array([0], np.int64), np.array([0], np.int64), dets, np.array([0.6, 0.2], np.float32),
            0.5, 0.1, 0.8, 0.8, 0.7, False, True)
    assert _native.associate_bytetrack(*args).tolist() == [0, -1]
    assert _native.associate_bytetrack(*args, low_fit_margin=0.3).tolist() == [-1, 0]
    assert _native.associate_bytetrack(*args, low_fit_margin=0.6).tolist() == [0, -1]  # 0.79 - 0.27 < 0.6
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="low_fit_margin must be in"):
            _native.associate_bytetrack(*args, low_fit_margin=bad)
