"""The tracker's per-frame bookkeeping in C++ (gates, commit) against the NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime import _native, reference


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 12), st.sampled_from([0.0, 0.2]), st.sampled_from([0.0, 0.25]))
def test_gates_match_the_reference(seed, t, buffer_rel, max_jump_rel):
    rng = np.random.default_rng(seed)
    now = float(rng.uniform(0, 100))
    last_s = now - rng.choice([0.0, 0.1, 0.3, 2.5, 7.0], t) * rng.random(t) ** 0.5
    track_id = np.where(rng.random(t) < 0.7, rng.integers(0, 50, t), -1).astype(np.int64)
    got = _native.bytetrack_gates(last_s, track_id, now, 10.0, buffer_rel, 1.0, max_jump_rel)
    want = reference.bytetrack_gates(last_s, track_id, now, 10.0, buffer_rel, 1.0, max_jump_rel)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[0].dtype == got[1].dtype == np.float32
    assert got[2] == want[2]  # the median of float32 values, averaged in float64: exactly


def _book(rng: np.random.Generator, t: int, c: int):
    boxes = rng.uniform(0, 300, (t, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(5, 120, (t, 2))], axis=1).astype(np.float32)
    mean, cov = reference.kalman_initiate(boxes)
    uid = rng.permutation(100)[:t].astype(np.int64)
    track_id = np.where(rng.random(t) < 0.6, uid, -1).astype(np.int64)
    hits = rng.integers(0, 4, t).astype(np.int64)
    miss = np.where(rng.random(t) < 0.5, 0, rng.integers(1, 40, t)).astype(np.int64)
    last_s = 10.0 - miss * 0.1
    votes = rng.integers(0, 5, (t, c)).astype(np.int32)
    cls = rng.integers(0, c, t).astype(np.int32)
    return [mean, cov, track_id, uid, hits, miss, last_s, cls, votes]


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 10), st.integers(0, 10), st.integers(1, 3), st.integers(1, 3))
def test_commit_matches_the_reference(seed, t, n, c, min_hits):
    rng = np.random.default_rng(seed)
    book = _book(rng, t, c)
    det_track = np.full(n, -1, np.int32)
    m = min(t, n, int(rng.integers(0, n + 1)))
    det_track[rng.permutation(n)[:m]] = rng.permutation(t)[:m]
    det_boxes = rng.uniform(0, 300, (n, 2))
    det_boxes = np.concatenate([det_boxes, det_boxes + rng.uniform(5, 120, (n, 2))], axis=1).astype(np.float32)
    det_class = rng.integers(0, c, n).astype(np.int32)
    mine = [a.copy() for a in book]
    theirs = [a.copy() for a in book]
    args = (10.0, 3.0, min_hits)
    got = _native.bytetrack_commit(det_track, det_boxes, det_class, *mine, 1 / 20, *args)
    want = reference.bytetrack_commit(det_track, det_boxes, det_class, *theirs, 1 / 20, *args)
    assert got[0] == want[0]
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_allclose(mine[0], theirs[0], rtol=1e-12, atol=1e-9)  # Kalman mean
    np.testing.assert_allclose(mine[1], theirs[1], rtol=1e-12, atol=1e-9)  # and covariance
    for g, w in zip(mine[2:], theirs[2:]):
        np.testing.assert_array_equal(g, w)


def test_commit_confirms_votes_and_drops():
    rng = np.random.default_rng(1)
    mean, cov, track_id, uid, hits, miss, last_s, cls, votes = _book(rng, 3, 2)
    track_id[:] = [-1, 7, -1]
    uid[:] = [4, 7, 9]
    hits[:] = [2, 5, 0]
    last_s[:] = [9.9, 6.0, 9.9]  # track 1 last seen 4 s ago, track 2 tentative
    cls[:] = [0, 0, 0]
    votes[:] = [[1, 1], [2, 0], [0, 0]]
    miss_before = miss.copy()
    det_track = np.array([0, -1], np.int32)
    det_class = np.array([1, 0], np.int32)
    boxes = np.array([[10, 10, 40, 90], [200, 10, 230, 90]], np.float32)
    confirmed, out_id, out_class, keep, all_kept = _native.bytetrack_commit(
        det_track, boxes, det_class, mean, cov, track_id, uid, hits, miss, last_s, cls, votes, 1 / 20, 10.0, 3.0, 3)
    assert confirmed == 1 and track_id.tolist() == [4, 7, -1]  # the third hit confirms track 0 as id 4
    assert out_id.tolist() == [4, -1] and out_class.tolist() == [1, 0]  # class 1 now leads its votes
    assert cls[0] == 1 and votes[0].tolist() == [1, 2]
    assert keep.tolist() == [True, False, False] and not all_kept  # lost for 4 s > 3 s; tentative and unmatched
    assert miss.tolist() == [0, miss_before[1] + 1, miss_before[2] + 1] and hits.tolist() == [3, 0, 0]


@given(st.integers(0, 2**32 - 1), st.integers(0, 12))
def test_split_matches_the_reference(seed, n):
    rng = np.random.default_rng(seed)
    det_track = rng.integers(-1, 4, n).astype(np.int32)
    score = rng.choice(np.array([0.1, 0.5, 0.6, 0.7, 0.95], np.float32), n)
    take, start = _native.bytetrack_split(det_track, score, 0.5, 0.6)
    want_take, want_start = reference.bytetrack_split(det_track, score, 0.5, 0.6)
    assert take.dtype == np.bool_ and start.dtype == np.int64
    np.testing.assert_array_equal(take, want_take)
    np.testing.assert_array_equal(start, want_start)
    with pytest.raises(ValueError, match=r"det_score must be \(%d,\)" % n):
        _native.bytetrack_split(det_track, np.zeros(n + 1, np.float32), 0.5, 0.6)


def test_commit_refuses_inconsistent_input_before_writing():
    rng = np.random.default_rng(2)
    book = _book(rng, 2, 1)
    boxes = np.zeros((2, 4), np.float32)
    before = [a.copy() for a in book]
    cases = [
        (np.array([0, 0], np.int32), np.zeros(2, np.int32), "matched to two detections"),
        (np.array([2, -1], np.int32), np.zeros(2, np.int32), r"outside \[-1, 2\)"),
        (np.array([-1, 1], np.int32), np.array([0, 1], np.int32), r"det_class\[1\] = 1 is outside"),
    ]
    for det_track, det_class, message in cases:
        with pytest.raises(ValueError, match=message):
            _native.bytetrack_commit(det_track, boxes, det_class, *book, 1 / 20, 10.0, 3.0, 3)
    for a, b in zip(book, before):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="det_class must be"):
        _native.bytetrack_commit(np.array([-1, -1], np.int32), boxes, np.zeros(3, np.int32), *book, 1 / 20, 10.0,
                                 3.0, 3)
    frozen = [a.copy() for a in book]
    frozen[4].flags.writeable = False  # hits
    with pytest.raises(ValueError, match="hits is updated in place"):
        _native.bytetrack_commit(np.array([-1, -1], np.int32), boxes, np.zeros(2, np.int32), *frozen, 1 / 20, 10.0,
                                 3.0, 3)
    with pytest.raises(ValueError, match="finite"):
        _native.bytetrack_gates(np.zeros(2), np.zeros(2, np.int64), float("nan"), 10.0, 0.2, 1.0, 0.25)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 8), st.integers(0, 8), st.sampled_from([2.0, 5.99, 13.82]))
def test_position_gate_matches_the_reference(seed, t, n, threshold):
    rng = np.random.default_rng(seed)
    mean, cov, track_id = _book(rng, t, 1)[:3]
    for _ in range(int(rng.integers(0, 4))):  # some tracks predicted ahead: wider, correlated covariances
        mean[:, 4:6] = rng.normal(0, 4, (t, 2))
        reference.kalman_predict(mean, cov, np.zeros(t, np.int64), dt=float(rng.uniform(0.5, 3)))
    boxes = rng.uniform(0, 300, (n, 2))
    boxes = np.concatenate([boxes, boxes + rng.uniform(5, 120, (n, 2))], axis=1).astype(np.float32)
    want = reference.position_gate(mean, cov, track_id, boxes, 1 / 20, threshold)
    got = _native.position_gate(mean, cov, track_id, boxes, 1 / 20, threshold)
    assert got.shape == (t, n) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, want)
    prior = (rng.random((t, n)) < 0.3).astype(np.uint8)  # ORed into a mask already set (the appearance gate)
    out = _native.position_gate(mean, cov, track_id, boxes, 1 / 20, threshold, prior.copy())
    np.testing.assert_array_equal(out, want | prior)


def test_position_gate_follows_the_filter_uncertainty():
    """A box one box-width off a steady walker's prediction is refused; the same offset for a track
    predicted 3 s ahead (lost, or a low frame rate) is allowed."""
    boxes = np.array([[100, 100, 130, 180]], np.float32)
    mean, cov = reference.kalman_initiate(boxes)
    for _ in range(20):  # seen on every frame, standing still: a confident filter
        reference.kalman_predict(mean, cov, np.zeros(1, np.int64))
        reference.kalman_update(mean, cov, np.array([0], np.int64), boxes)
    track_id = np.array([3], np.int64)
    off = boxes + np.array([30, 0, 30, 0], np.float32)
    steady = mean.copy(), cov.copy()
    reference.kalman_predict(*steady, np.zeros(1, np.int64))
    assert _native.position_gate(*steady, track_id, off, 1 / 20, 5.99).tolist() == [[1]]
    assert _native.position_gate(*steady, track_id, boxes, 1 / 20, 5.99).tolist() == [[0]]
    assert _native.position_gate(*steady, np.array([-1], np.int64), off, 1 / 20, 5.99).tolist() == [[0]]  # tentative
    reference.kalman_predict(mean, cov, np.zeros(1, np.int64), dt=30.0)
    assert _native.position_gate(mean, cov, track_id, off, 1 / 20, 5.99).tolist() == [[0]]
    with pytest.raises(ValueError, match="threshold"):
        _native.position_gate(mean, cov, track_id, off, 1 / 20, 0.0)
    with pytest.raises(ValueError, match="forbid must be"):
        _native.position_gate(mean, cov, track_id, off, 1 / 20, 5.99, np.zeros((2, 1), np.uint8))
