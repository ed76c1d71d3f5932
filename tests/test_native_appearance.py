"""The tracker's appearance gate and running appearance in C++, against the NumPy expressions they replace."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime import _native
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
    distance = appearance_distance(tracks, dets)
    want = (distance > gate) & track_has[:, None] & has_appearance(dets)[None, :]
    assert got.shape == (t, n) and got.dtype == np.uint8
    decided = np.abs(distance - gate) > 1e-5  # summation order may differ in the last bit at the gate itself
    np.testing.assert_array_equal(got.astype(bool)[decided], want[decided])


def _numpy_blend(tracks, track_has, track_rows, dets, det_rows, ema):
    tracks, track_has = tracks.copy(), track_has.copy()
    ok = has_appearance(dets[det_rows])
    rows, vectors = track_rows[ok], dets[det_rows][ok]
    fresh = ~track_has[rows]
    blended = ema * tracks[rows] + (1.0 - ema) * vectors
    tracks[rows] = normalise_bands(np.where(fresh[:, None], vectors, blended).astype(np.float32))
    track_has[rows] = True
    return tracks, track_has


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12), st.integers(1, 12),
       st.sampled_from([0.0, 1.0]) | st.floats(0.01, 0.99))  # (an ema of 1e-38 leaves float32 denormals)
def test_blend_matches_the_numpy_running_appearance(seed, t, n, ema):
    rng = np.random.default_rng(seed)
    tracks, dets = _vectors(rng, t), _vectors(rng, n)
    track_has = has_appearance(tracks)
    m = int(rng.integers(0, min(t, n) + 1))
    track_rows = rng.permutation(t)[:m].astype(np.int64)
    det_rows = rng.permutation(n)[:m].astype(np.int64)
    want_tracks, want_has = _numpy_blend(tracks, track_has, track_rows, dets, det_rows, ema)
    _native.blend_appearance(tracks, track_has, track_rows, dets, det_rows, ema)
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
    with pytest.raises(ValueError, match="appears twice"):
        _native.blend_appearance(tracks, has, np.array([1, 1], np.int64), dets, rows, 0.9)
    with pytest.raises(ValueError, match="outside"):
        _native.blend_appearance(tracks, has, rows, dets, np.array([0, 3], np.int64), 0.9)
    with pytest.raises(ValueError, match="same length"):
        _native.blend_appearance(tracks, has, rows, dets, rows[:1], 0.9)
    with pytest.raises(ValueError, match="det_rows must be int64"):
        _native.blend_appearance(tracks, has, rows, dets, rows.astype(np.int32), 0.9)
    frozen = tracks.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="tracks must be writeable"):
        _native.blend_appearance(frozen, has, rows, dets, rows, 0.9)
    with pytest.raises(ValueError, match="share memory"):
        _native.blend_appearance(tracks, has, rows[:1], tracks, rows[:1], 0.9)
    with pytest.raises(ValueError, match="ema"):
        _native.blend_appearance(tracks, has, rows, dets, rows, 1.5)
