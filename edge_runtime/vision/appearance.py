"""What a tracked person looks like: colour histograms of three bands of the box, for the tracker's identity gate.

Shape legend: frames are (H, W, 3) uint8 BGR; N boxes xyxy (N, 4) float32 in source pixels; an appearance is
a (DIM,) float32 vector, (N, DIM) for N boxes.

Two people who pass each other, or one who walks behind another, leave a motion-only tracker with boxes
that overlap and move alike; their clothes usually differ. Each box is cut into three horizontal bands
(head and shoulders, waist and thighs, legs and feet; the outer fifth on each side is left out, as it is
mostly background) and each band gets a hue x saturation x value histogram, normalised to sum 1 and
stored as its square root, so the dot product of two bands is their Bhattacharyya coefficient.
:func:`appearance_distance` is one minus the mean coefficient over the bands: 0 for identical colour
distributions, 1 for disjoint ones. A box too small to cut (or all outside the frame) gets a zero vector,
which :func:`has_appearance` reports, so the gate can ignore it.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .. import _native
from ..errors import InputError

__all__ = ["BANDS", "BINS", "DIM", "appearance_distance", "box_appearance", "has_appearance", "normalise_bands"]

BANDS: Tuple[Tuple[float, float], ...] = ((0.10, 0.40), (0.40, 0.70), (0.70, 0.95))  # fractions of the height
BINS: Tuple[int, int, int] = (8, 4, 4)  # hue, saturation, value
_BAND_DIM = BINS[0] * BINS[1] * BINS[2]
DIM = len(BANDS) * _BAND_DIM


def box_appearance(frame_bgr: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """The appearance vector of every box in a frame (native kernel; reference in :mod:`edge_runtime.reference`).

    Args:
        frame_bgr: (H, W, 3) uint8 BGR image.
        xyxy: (N, 4) boxes in its pixels (clipped to the frame; a box with a non-finite coordinate gets zeros).

    Returns:
        (N, DIM) float32; each band's part has unit L2 norm, or is zero where the band is under 2 x 2 pixels.
        Pixels are converted as OpenCV's 8-bit BGR to HSV and binned as ``cv2.calcHist``.

    Raises:
        InputError: the frame is not (H, W, 3) uint8 or the boxes are not (N, 4).
    """
    boxes = np.ascontiguousarray(xyxy, np.float32)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    try:
        return _native.box_appearance(np.ascontiguousarray(frame_bgr), boxes)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def has_appearance(vectors: np.ndarray) -> np.ndarray:
    """(N,) bool: the vectors that hold at least one band (not the zero vector of a box too small)."""
    v = np.asarray(vectors)
    return v.any(axis=tuple(range(1, v.ndim)))


def appearance_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, N) float32 distance in [0, 1] between every vector of ``a`` (M, DIM) and of ``b`` (N, DIM).

    One minus the Bhattacharyya coefficient averaged over the bands (a band missing in either counts as
    coefficient 0).
    """
    return (1.0 - (np.asarray(a, np.float32) @ np.asarray(b, np.float32).T) / len(BANDS)).astype(np.float32)


def normalise_bands(vectors: np.ndarray) -> np.ndarray:
    """Each band's part of each vector scaled to unit L2 norm (zero parts stay zero), in place; returned."""
    parts = vectors.reshape(vectors.shape[0], len(BANDS), _BAND_DIM)
    norm = np.linalg.norm(parts, axis=2, keepdims=True)
    np.divide(parts, norm, out=parts, where=norm > 0)
    return vectors
