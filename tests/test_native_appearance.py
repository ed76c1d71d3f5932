"""The tracker's appearance gate and running appearance in C++, against the NumPy expressions they replace."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime import _native, reference
from edge_runtime.vision.appearance import BANDS, DIM, appearance_distance, has_appearance, normalise_bands


def _vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Appearance-like vectors: square roots of sparse bin counts, bands of unit norm, some bands and rows
    empty (as box_appearance makes them)."""
    v = np.sqrt(rng.integers(0, 50, (n, DIM)) * (rng.random((n, DIM)) < 0.4)).astype(np.float32)
    parts = v.reshape(n, len(BANDS), DIM // len(BANDS))
    parts[rng.random((n, len(BANDS))) < 0.15] = 0.0
    v[rng.random(n) < 0.2] = 0.0
    return normalise_bands(v)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 12), st.integers(0, 12), st.floats(0.0, 1.0))
def test_forbid_matches_the_numpy_gate(seed, t, n, gate):
    rng = np.random.default_rng(seed)
    tracks, dets = _vectors(rng, t), _vectors(rng, n)
    if t and n and rng.random() < 0.5:
        tracks[0] = dets[-1]  # an identical pair (distance 0)
    track_has = has_appearance(tracks) & (rng.random(t) < 0.9)  # a track may hold a vector it has not confirmed
    got = _native.appearance_forbid(tracks, track_has, dets, gate)
    want = reference.appearance_forbid(tracks, track_has, dets, gate).astype(bool)
    distance = appearance_distance(tracks, dets)
    assert got.shape == (t, n) and got.dtype == np.uint8
    decided = np.abs(distance - gate) > 1e-5  # summation order may differ in the last bit at the gate itself
    np.testing.assert_array_equal(got.astype(bool)[decided], want[decided])


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(1, 12),
       st.sampled_from([0.0, 1.0]) | st.floats(0.01, 0.99))  # (an ema of 1e-38 leaves float32 denormals)
def test_blend_matches_the_reference(seed, t, n, ema):
    rng = np.random.default_rng(seed)
    tracks, dets = _vectors(rng, t), _vectors(rng, n)
    track_has = has_appearance(tracks)
    m = int(rng.integers(0, min(t, n) + 1))
    det_track = np.full(n, -1, np.int32)
    det_track[rng.permutation(n)[:m]] = rng.permutation(t)[:m]
    take = rng.random(n) < 0.8
    want_tracks, want_has = tracks.copy(), track_has.copy()
    reference.blend_appearance(want_tracks, want_has, det_track, dets, take, ema)
    _native.blend_appearance(tracks, track_has, det_track, dets, take, ema)
    np.testing.assert_allclose(tracks, want_tracks, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(track_has, want_has)
    norms = np.linalg.norm(tracks[track_has].reshape(-1, len(BANDS), DIM // len(BANDS)), axis=2)
    assert np.all((np.abs(norms - 1.0) < 1e-5) | (norms == 0.0))  # every band unit norm or empty


def test_bad_arguments_are_refused_with_the_argument_named():
    tracks, dets = np.zeros((2, DIM), np.float32), np.zeros((3, DIM), np.float32)
    has = np.zeros(2, bool)
    rows = np.array([0, 1], np.int64)
    with pytest.raises(ValueError, match="tracks must be"):
        _native.appearance_forbid(tracks[:, :10].copy(), has, dets, 0.4)
    with pytest.raises(ValueError, match="track_has must be"):
        _native.appearance_forbid(tracks, np.zeros(3, bool), dets, 0.4)
    with pytest.raises(ValueError, match="dets must be float32"):
        _native.appearance_forbid(tracks, has, dets.astype(np.float64), 0.4)
    with pytest.raises(ValueError, match="gate"):
        _native.appearance_forbid(tracks, has, dets, float("nan"))
    det_track = np.array([0, 1, -1], np.int32)
    take = np.ones(3, bool)
    with pytest.raises(ValueError, match="would take two detections"):
        _native.blend_appearance(tracks, has, np.array([1, 1, -1], np.int32), dets, take, 0.9)
    with pytest.raises(ValueError, match="outside"):
        _native.blend_appearance(tracks, has, np.array([0, 2, -1], np.int32), dets, take, 0.9)
    with pytest.raises(ValueError, match="det_track must be int32"):
        _native.blend_appearance(tracks, has, det_track.astype(np.int64), dets, take, 0.9)
    with pytest.raises(ValueError, match="take must be"):
        _native.blend_appearance(tracks, has, det_track, dets, take[:2], 0.9)
    frozen = tracks.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="tracks must be writeable"):
        _native.blend_appearance(frozen, has, det_track, dets, take, 0.9)
    with pytest.raises(ValueError, match="share memory"):
        _native.blend_appearance(tracks, has, det_track[:2], tracks, take[:2], 0.9)
    with pytest.raises(ValueError, match="ema"):
        _native.blend_appearance(tracks, has, det_track, dets, take, 1.5)
