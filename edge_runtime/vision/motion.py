"""Motion gate: a cheap frame-differencing test that says whether a frame needs the detector.

Shape legend: input frames are (H, W, 3) uint8 BGR; the gate works on a (h, ``width_px``) float32 grey
copy (h keeps the aspect ratio): one area-filtered resize of the frame, then work on ~20 k pixels —
a small fraction of a detector pass.

Per frame: downscale (area filter), grey, Gaussian blur (sensor noise and JPEG blocks), absolute
difference against a running-average background, count the pixels that changed by more than
``pixel_delta`` grey levels, and compare that fraction of the picture with ``threshold``. The
background then moves toward the frame (``background_rate``), so a parked car or a person who stopped
stops counting as motion after a few seconds, while a moving one keeps differing from it.

Whatever the pixels say, the detector runs at least every ``max_skip`` frames, so an object that stands
still in view (no motion) is still re-detected and its track kept alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import InputError

__all__ = ["MotionGate", "MotionDecision"]


@dataclass(frozen=True)
class MotionDecision:
    """The gate's verdict on one frame.

    Attributes:
        run: True if the detector should run on this frame.
        motion: True if the changed fraction exceeded the threshold.
        changed_fraction: fraction of the (downscaled) picture that changed, in [0, 1].
        reason: why ``run`` is what it is: "first frame", "motion", "max skip" or "still".
    """

    run: bool
    motion: bool
    changed_fraction: float
    reason: str


class MotionGate:
    """Decides, frame by frame, whether inference is needed.

    Args:
        threshold: fraction of the picture that must change to count as motion, in [0, 1]
            (0.002 = 0.2 %: one walker far away at 160 px wide is ~0.5 %).
        max_skip: run the detector at least every this many frames anyway (1 = every frame).
        width_px: width of the grey copy the test runs on (8..4096).
        blur_px: Gaussian kernel size in grey-copy pixels (odd, 1 = no blur).
        pixel_delta: a pixel changed if it differs from the background by more than this (grey levels).
        background_rate: weight of the new frame in the running background, in (0, 1].

    Raises:
        InputError: on an argument out of range.

    Example::

        gate = MotionGate(threshold=0.002, max_skip=10)
        for frame in source:
            if gate.update(frame.image).run:
                detections = detector(frame.image)
    """

    def __init__(self, threshold: float = 0.002, max_skip: int = 10, *, width_px: int = 160,
                 blur_px: int = 5, pixel_delta: int = 20, background_rate: float = 0.1) -> None:
        if not (0.0 <= threshold <= 1.0):
            raise InputError(f"MotionGate: threshold must be in [0, 1], got {threshold!r}")
        if isinstance(max_skip, bool) or not isinstance(max_skip, int) or max_skip < 1:
            raise InputError(f"MotionGate: max_skip must be an integer >= 1, got {max_skip!r}")
        if isinstance(width_px, bool) or not isinstance(width_px, int) or not 8 <= width_px <= 4096:
            raise InputError(f"MotionGate: width_px must be an integer in [8, 4096], got {width_px!r}")
        if isinstance(blur_px, bool) or not isinstance(blur_px, int) or blur_px < 1 or blur_px % 2 == 0:
            raise InputError(f"MotionGate: blur_px must be an odd integer >= 1, got {blur_px!r}")
        if not (0 <= pixel_delta <= 255):
            raise InputError(f"MotionGate: pixel_delta must be in [0, 255], got {pixel_delta!r}")
        if not (0.0 < background_rate <= 1.0):
            raise InputError(f"MotionGate: background_rate must be in (0, 1], got {background_rate!r}")
        self.threshold = float(threshold)
        self.max_skip = max_skip
        self.width_px = width_px
        self.blur_px = blur_px
        self.pixel_delta = float(pixel_delta)
        self.background_rate = float(background_rate)
        self.frames = 0  # frames seen
        self.runs = 0  # frames the gate let through
        self._background: Optional[np.ndarray] = None  # (h, width_px) float32
        self._shape: Optional[tuple] = None
        self._since_run = 0

    def reset(self) -> None:
        """Forget the background (after a reconnect or a camera move); the next frame runs."""
        self._background = None
        self._shape = None

    def update(self, image: np.ndarray) -> MotionDecision:
        """Test one frame and fold it into the background.

        Args:
            image: (H, W, 3) uint8 BGR.

        Returns:
            A :class:`MotionDecision`.

        Raises:
            InputError: if the image is not (H, W, 3) uint8 with H, W >= 1.
        """
        import cv2

        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
                or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise InputError(f"MotionGate.update: expected an (H, W, 3) uint8 BGR image, got {got}")
        h, w = image.shape[:2]
        if self._shape != (h, w):  # first frame, or the stream came back at another resolution
            self.reset()
            self._shape = (h, w)
        small_w = min(self.width_px, w)
        small_h = max(1, round(h * small_w / w))
        small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        if self.blur_px > 1:
            grey = cv2.GaussianBlur(grey, (self.blur_px, self.blur_px), 0)
        self.frames += 1
        if self._background is None:
            self._background = grey
            return self._decide(True, False, 0.0, "first frame")
        diff = cv2.absdiff(grey, self._background)
        changed = float(np.count_nonzero(diff > self.pixel_delta)) / diff.size
        cv2.accumulateWeighted(grey, self._background, self.background_rate)
        motion = changed > self.threshold
        if motion:
            return self._decide(True, True, changed, "motion")
        if self._since_run + 1 >= self.max_skip:
            return self._decide(True, False, changed, "max skip")
        return self._decide(False, False, changed, "still")

    def _decide(self, run: bool, motion: bool, changed: float, reason: str) -> MotionDecision:
        if run:
            self.runs += 1
            self._since_run = 0
        else:
            self._since_run += 1
        return MotionDecision(run=run, motion=motion, changed_fraction=changed, reason=reason)
