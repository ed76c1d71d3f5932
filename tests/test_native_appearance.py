"""The tracker's appearance distances and running appearance in C++, against the NumPy expressions they replace."""

from __future__ import annotations

import importlib.util
import platform

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_runtime import _native, reference
from edge_runtime.vision.appearance import (BANDS, DIM, appearance_distance, box_appearance, has_appearance,
                                           normalise_bands)


def _vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    """Appearance-like vectors: square roots of sparse bin counts, bands of unit norm, some bands and rows
    empty (as box_appearance makes them)."""
    v = np.sqrt(rng.integers(0, 50, (n, DIM)) * (rng.random((n, DIM)) < 0.4)).astype(np.float32)
    parts = v.reshape(n, len(BANDS), DIM // len(BANDS))
    parts[rng.random((n, len(BANDS))) < 0.15] = 0.0
    v[rng.random(n) < 0.2] = 0.0
    return normalise_bands(v)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 12), st.integers(0, 12))
def test_distances_match_the_numpy_expression(seed, t, n):
    rng = np.random.default_rng(seed)
    tracks, dets = _vectors(rng, t), _vectors(rng, n)
    if t and n and rng.random() < 0.5:
        tracks[0] = dets[-1]  # an identical pair (distance 0 if it has every band)
    track_has = has_appearance(tracks) & (rng.random(t) < 0.9)  # a track may hold a vector it has not confirmed
    got = _native.appearance_distances(tracks, track_has, dets)
    want = reference.appearance_distances(tracks, track_has, dets)
    assert got.shape == (t, n) and got.dtype == np.float32
    unknown = ~(track_has[:, None] & has_appearance(dets)[None, :])
    np.testing.assert_array_equal(np.isnan(got), unknown)
    np.testing.assert_allclose(got[~unknown], want[~unknown], rtol=0, atol=1e-5)  # summation order differs
    np.testing.assert_allclose(got[~unknown], appearance_distance(tracks, dets)[~unknown], rtol=0, atol=1e-5)


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
        _native.appearance_distances(tracks[:, :10].copy(), has, dets)
    with pytest.raises(ValueError, match="track_has must be"):
        _native.appearance_distances(tracks, np.zeros(3, bool), dets)
    with pytest.raises(ValueError, match="dets must be float32"):
        _native.appearance_distances(tracks, has, dets.astype(np.float64))
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


# OpenCV's scalar (integer) colour conversion runs here: an x86-64 build. Its aarch64 build converts a few
# colours differently (found by the ARM stage), and armv7l has no OpenCV wheel.
OPENCV_IS_THE_ORACLE = platform.machine() in ("x86_64", "AMD64") and importlib.util.find_spec("cv2") is not None


def _opencv_hsv_bins(bgr: np.ndarray) -> np.ndarray:
    """(K,) bin index of each of (K, 3) uint8 BGR pixels, by OpenCV's integer BGR -> HSV (12 fraction bits)
    binned 8 x 4 x 4 as calcHist; -1 where the hue rounds to 180. NumPy, platform-independent."""
    i = np.arange(256, dtype=np.float64)
    with np.errstate(divide="ignore"):
        sdiv = np.where(i > 0, np.floor(255 * 4096 / i + 0.5), 0).astype(np.int32)
        hdiv = np.where(i > 0, np.floor(180 * 4096 / (6 * i) + 0.5), 0).astype(np.int32)
    b, g, r = (bgr[:, k].astype(np.int32) for k in range(3))
    v = np.maximum(np.maximum(b, g), r)
    diff = v - np.minimum(np.minimum(b, g), r)
    s = (diff * sdiv[v] + 2048) >> 12
    h = np.where(v == r, g - b, np.where(v == g, b - r + 2 * diff, r - g + 4 * diff))
    h = (h * hdiv[diff] + 2048) >> 12
    h = np.where(h < 0, h + 180, h)
    return np.where(h < 180, (h * 8 // 180) * 16 + (s >> 6) * 4 + (v >> 6), -1)


def _numpy_box_appearance(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """box_appearance by the contract in native/include/edge/appearance.hpp, with _opencv_hsv_bins."""
    height, width = frame.shape[:2]
    band_dim = DIM // len(BANDS)
    out = np.zeros((len(boxes), DIM), np.float32)

    def clamp(value: float, limit: int) -> int:
        return int(min(max(value, 0.0), float(limit)))

    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64)):
        if not np.isfinite((x1, y1, x2, y2)).all():
            continue
        xa, xb = clamp(x1 + 0.2 * (x2 - x1), width), clamp(x2 - 0.2 * (x2 - x1), width)
        if xb - xa < 2:
            continue
        for band, (a, b) in enumerate(BANDS):
            ya, yb = clamp(y1 + a * (y2 - y1), height), clamp(y1 + b * (y2 - y1), height)
            if yb - ya < 2:
                continue
            bins = _opencv_hsv_bins(frame[ya:yb:2, xa:xb:2].reshape(-1, 3))
            hist = np.bincount(bins[bins >= 0], minlength=band_dim).astype(np.float64)
            if hist.sum() > 0:
                out[k, band * band_dim:(band + 1) * band_dim] = np.sqrt(hist / hist.sum())
    return out


def test_the_numpy_bins_equal_opencv_on_every_colour():
    """The oracle below is OpenCV's own arithmetic: checked on all 2^24 colours where OpenCV's scalar
    integer path is the one that runs (x86-64; OpenCV's NEON build rounds a few colours differently, so
    on ARM the kernel is checked against this oracle only)."""
    if not OPENCV_IS_THE_ORACLE:
        pytest.skip("no OpenCV here (armv7l has no wheel), or its ARM build, which converts a few colours "
                    "differently; the kernel is checked against the oracle")
    import cv2

    for red in range(0, 256, 32):  # in eight slices of 2^21 colours, to keep memory small
        colours = np.arange(red << 16, (red + 32) << 16, dtype=np.uint32)
        bgr = np.stack([colours & 255, (colours >> 8) & 255, colours >> 16], 1).astype(np.uint8)
        hsv = cv2.cvtColor(bgr.reshape(2048, 1024, 3), cv2.COLOR_BGR2HSV).reshape(-1, 3).astype(np.int32)
        want = np.where(hsv[:, 0] < 180, (hsv[:, 0] * 8 // 180) * 16 + (hsv[:, 1] >> 6) * 4 + (hsv[:, 2] >> 6), -1)
        np.testing.assert_array_equal(_opencv_hsv_bins(bgr), want)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 12))
def test_kernel_equals_the_numpy_oracle_and_opencv(seed, n):
    """The same vectors on every architecture (integer arithmetic): runs in the ARM stage too. Where OpenCV's
    scalar conversion runs, also equal to the reference through cv2.cvtColor and cv2.calcHist."""
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 90, 2)
    frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if rng.random() < 0.5:  # flat colours and greys: hue and saturation edge cases
        frame[: h // 2] = rng.integers(0, 256, 3, dtype=np.uint8)
        frame[h // 2:, :, 1] = frame[h // 2:, :, 0]
    boxes = rng.uniform(-40, 130, (n, 4)).astype(np.float32)
    boxes[rng.random(n) < 0.1, 0] = np.nan
    got = box_appearance(frame, boxes)
    assert got.shape == (n, DIM) and got.dtype == np.float32
    np.testing.assert_allclose(got, _numpy_box_appearance(frame, boxes), rtol=0, atol=1e-6)
    if OPENCV_IS_THE_ORACLE:
        np.testing.assert_allclose(got, reference.box_appearance(frame, boxes), rtol=0, atol=1e-6)
