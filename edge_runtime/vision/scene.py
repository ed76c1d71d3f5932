"""Scene cuts: the picture changed as a whole (an edited clip's cut, a PTZ camera moving to a preset, a
camera knocked or re-aimed), so positions before and after it have nothing to do with each other.

A tracker that carries a box across a cut moves it across the picture in one frame, and a counter
would count that as a crossing. On a cut the pipeline resets the tracker and the counters' per-track
state (crossings already made are still reported).

Shape legend: frames are (H, W, 3) uint8 BGR.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _native
from ..errors import ConfigError, InputError

__all__ = ["SceneCutDetector"]


class SceneCutDetector:
    """Flags a frame whose small grey thumbnail differs from the previous processed frame's by more than
    ``threshold`` grey levels on average.

    People walking through a fixed camera's view change a few percent of the picture; a cut changes
    nearly every pixel. The comparison is between *processed* frames, so at a low rate the threshold
    still holds: walkers move further, but stay small.

    The thumbnail averages a grid of about 128x72 samples of the frame (16 per thumbnail pixel, grey as
    OpenCV converts it), not every pixel: a mean over 576 thumbnail pixels is as steady either way, and
    the samples are about a fiftieth of a 768x576 frame (less of a larger one).

    Args:
        threshold: mean absolute difference of the 32x18 grey thumbnails (0-255) that makes a cut.

    Raises:
        ConfigError: threshold not in (0, 255].

    Example:
        >>> cut = SceneCutDetector()
        >>> dark, light = np.zeros((72, 128, 3), np.uint8), np.full((72, 128, 3), 200, np.uint8)
        >>> [cut.update(f) for f in (dark, dark, light, light)]
        [False, False, True, False]
    """

    SIZE = (32, 18)

    def __init__(self, threshold: float = 30.0) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 255:
            raise ConfigError(f"SceneCutDetector: threshold must be in (0, 255], got {threshold!r}")
        self.threshold = float(threshold)
        self._previous: Optional[np.ndarray] = None
        #: The mean absolute difference measured on the last frame (0 on the first).
        self.last_difference = 0.0

    def thumbnail(self, frame: np.ndarray) -> np.ndarray:
        """The frame's (18, 32) float32 grey thumbnail (native kernel; see :meth:`update`).

        Raises:
            InputError: the frame is not (H, W, 3) uint8 BGR.
        """
        if isinstance(frame, np.ndarray) and not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)  # e.g. a crop: one copy
        try:
            return _native.grey_thumbnail(frame, self.SIZE[1], self.SIZE[0], 4)
        except (ValueError, TypeError):
            raise InputError(f"SceneCutDetector: expected an (H, W, 3) uint8 BGR frame, got "
                             f"{getattr(frame, 'shape', type(frame))}") from None

    def update(self, frame: np.ndarray) -> bool:
        """Whether ``frame`` starts a new scene (never the first frame)."""
        return self.compare(self.thumbnail(frame))

    def _bad_thumbnail(self, small: object) -> InputError:
        return InputError(f"SceneCutDetector.compare: expected an ({self.SIZE[1]}, {self.SIZE[0]}) float32 C-contiguous "
                          f"thumbnail, got {getattr(small, 'shape', type(small).__name__)} "
                          f"{getattr(small, 'dtype', '')}".rstrip())

    def compare(self, small: np.ndarray) -> bool:
        """As :meth:`update`, for a frame's :meth:`thumbnail` taken earlier (e.g. while the frame was still in
        the CPU's caches, before the detector ran).

        Raises:
            InputError: ``small`` is not an (18, 32) float32 C-contiguous array (a thumbnail of this class).
        """
        previous = self._previous
        if previous is None:
            if not (isinstance(small, np.ndarray) and small.dtype == np.float32 and small.shape == self.SIZE[::-1]
                    and small.flags.c_contiguous):
                raise self._bad_thumbnail(small)
            difference = 0.0
        else:
            try:
                difference = _native.mean_abs_difference(small, previous)  # same shape as the checked previous
            except (ValueError, TypeError):
                raise self._bad_thumbnail(small) from None
        self._previous, self.last_difference = small, difference
        if previous is None:
            return False
        return self.last_difference > self.threshold
