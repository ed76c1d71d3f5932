"""Frame records, source statistics and the FrameSource base shared by every video source.

Shape legend: images are (H, W, 3) uint8 BGR, C-contiguous (what OpenCV delivers and the detector
takes). Times: ``timestamp_s`` is the capture time of a frame — seconds since the start of the file for
file sources (``index / fps``), Unix epoch seconds for live sources; internal pacing and timeouts use
the monotonic clock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Iterator, Optional

import numpy as np

from ..errors import InputError

__all__ = ["Frame", "Gap", "SourceStats", "ReconnectPolicy", "FrameSource", "MODES"]

MODES = ("every", "latest")
_MAX_GAPS_KEPT = 1000  # stats.gaps is a ring: a camera that flaps for months must not grow memory


@dataclass(frozen=True)
class Gap:
    """A stretch of time in which a source delivered nothing (stream lost, stalled, unplugged).

    Attributes:
        start_s: capture time of the last frame before the loss (or when the loss was seen, if no frame
            had arrived yet); same clock as ``Frame.timestamp_s``.
        end_s: capture time of the first frame after it.
        reason: what ended the stream, e.g. ``"read timed out after 5.0 s"``, ``"stream ended"``.
        attempts: connection attempts it took to get frames again.
    """

    start_s: float
    end_s: float
    reason: str
    attempts: int

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Frame:
    """One delivered frame.

    Attributes:
        image: (H, W, 3) uint8 BGR, C-contiguous; owned by the consumer (never written to again).
        index: source frame number — the position in the file for file sources, the count of frames
            grabbed since open() for live sources (so jumps show frames that were not delivered).
        timestamp_s: capture time (see the module legend).
        skipped: source frames not delivered between the previous delivered frame and this one
            (latest-frame-wins drops and fps-cap drops).
        gap: set on the first frame after an outage: how long the source delivered nothing and why.
        cut: the picture does not continue the previous delivered frame (a looped file started over):
            tracks must not be carried across it.
    """

    image: np.ndarray
    index: int
    timestamp_s: float
    skipped: int = 0
    gap: Optional[Gap] = None
    cut: bool = False


@dataclass
class SourceStats:
    """Counters of a source since open(); read them at any time (plain ints, updated under a lock).

    Attributes:
        grabbed: frames read from the backend.
        delivered: frames handed to the consumer.
        dropped: frames overwritten before the consumer took them (latest-frame-wins).
        reconnects: successful reconnections after a loss.
        reconnect_attempts: connection attempts after a loss, failed ones included.
        gaps: the most recent outages (oldest dropped after 1000), each a :class:`Gap`.
        gap_count: all outages since open(), including those no longer in ``gaps``.
        in_gap_since: capture-clock start of the outage in progress, or None while frames flow.
        stuck_reads: backend calls abandoned because they blocked past the timeout.
    """

    grabbed: int = 0
    delivered: int = 0
    dropped: int = 0
    reconnects: int = 0
    reconnect_attempts: int = 0
    gaps: Deque[Gap] = field(default_factory=lambda: deque(maxlen=_MAX_GAPS_KEPT))
    gap_count: int = 0
    in_gap_since: Optional[float] = None
    stuck_reads: int = 0


@dataclass(frozen=True)
class ReconnectPolicy:
    """How a live source gets its stream back after a loss: bounded exponential backoff with jitter.

    The n-th consecutive attempt waits ``min(max_delay_s, initial_delay_s * factor**n)`` scaled by a
    random factor in ``[1 - jitter, 1 + jitter]`` (so many cameras behind one switch don't retry in
    lock-step). A connection that delivers a frame resets n to 0.

    Args:
        enabled: False makes any loss fatal (SourceError from the iterator).
        initial_delay_s, max_delay_s, factor, jitter: the backoff curve (seconds, ratio, fraction).
        max_attempts: give up (SourceError) after this many consecutive failed attempts; None = never.
        retry_on_open: if the very first connection fails, keep retrying in the background instead of
            raising from open() (a gateway that boots before its camera).

    Raises:
        InputError: on a negative delay, ``factor < 1``, jitter outside [0, 1) or max_attempts < 1.
    """

    enabled: bool = True
    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    max_attempts: Optional[int] = None
    retry_on_open: bool = False

    def __post_init__(self) -> None:
        if not (0.0 <= self.initial_delay_s <= self.max_delay_s):
            raise InputError(f"ReconnectPolicy: need 0 <= initial_delay_s <= max_delay_s, got "
                             f"{self.initial_delay_s} and {self.max_delay_s}")
        if not self.factor >= 1.0:
            raise InputError(f"ReconnectPolicy: factor must be >= 1, got {self.factor}")
        if not (0.0 <= self.jitter < 1.0):
            raise InputError(f"ReconnectPolicy: jitter must be in [0, 1), got {self.jitter}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise InputError(f"ReconnectPolicy: max_attempts must be >= 1 or None, got {self.max_attempts}")

    def delay_s(self, attempt: int, uniform01: float) -> float:
        """Wait before attempt number ``attempt`` (0-based), given a uniform random number in [0, 1)."""
        base = min(self.max_delay_s, self.initial_delay_s * self.factor ** min(attempt, 64))
        return base * (1.0 + self.jitter * (2.0 * uniform01 - 1.0))


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Backend output -> (H, W, 3) uint8 BGR, C-contiguous (grey and BGRA frames are converted)."""
    import cv2

    if image.dtype != np.uint8:
        raise InputError(f"source frame: expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif not (image.ndim == 3 and image.shape[2] == 3):
        raise InputError(f"source frame: expected (H, W, 3), (H, W, 4) or (H, W), got shape {image.shape}")
    return np.ascontiguousarray(image)


class FrameSource:
    """Base of every source: a context manager and an iterator of :class:`Frame`.

    Nothing is opened on construction; ``open()`` (or ``with``) touches the file, device or network.
    Iteration blocks until the next frame and stops at the end of a file; live sources never end on
    their own (they reconnect) — stop them with ``close()``, from any thread. ``read(timeout_s)`` is the
    non-blocking-ish alternative: it returns None when no frame came within the timeout.

    Subclasses implement ``_open()``, ``_close()`` and ``_take(timeout_s)`` (-> Frame, or None on
    timeout; sets ``self._ended`` at the end); the fps cap is applied here, the same for all of them.
    """

    def __init__(self, spec: str, *, mode: str, fps_cap: Optional[float]) -> None:
        if mode not in MODES:
            raise InputError(f"source {spec!r}: mode must be one of {MODES}, got {mode!r}")
        if fps_cap is not None and not (fps_cap > 0.0 and np.isfinite(fps_cap)):
            raise InputError(f"source {spec!r}: fps_cap must be a positive number or None, got {fps_cap!r}")
        self.spec = spec
        self.mode = mode
        self.fps_cap = fps_cap
        self.stats = SourceStats()
        self._stats_lock = threading.Lock()
        self._closed = threading.Event()  # set by close(); wakes every wait
        self._opened = False
        self._ended = False
        self._next_due = 0.0  # monotonic time before which the fps cap holds the next delivery

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self) -> "FrameSource":
        """Open the file/device/stream. Raises SourceError (what failed, naming the spec)."""
        if self._opened:
            return self
        self._closed.clear()
        self._ended = False
        self._open()
        self._opened = True
        return self

    def close(self) -> None:
        """Stop and release everything. Returns promptly, from any thread; safe to call twice."""
        self._closed.set()
        if self._opened:
            self._opened = False
            self._close()

    def __enter__(self) -> "FrameSource":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def ended(self) -> bool:
        """True once a finite source (file, folder) has delivered its last frame."""
        return self._ended

    # -- reading -----------------------------------------------------------------------------------
    def read(self, timeout_s: Optional[float] = None) -> Optional[Frame]:
        """Next frame, or None if none came within ``timeout_s`` (None = wait), at the end, or closed.

        Raises:
            SourceError: the source failed for good (reconnect disabled or attempts exhausted).
            InputError: if the source is not open.
        """
        if not self._opened:
            if self._closed.is_set() or self._ended:
                return None
            raise InputError(f"source {self.spec!r}: read() before open() (use `with open_source(...)`)")
        now = time.monotonic()
        deadline = None if timeout_s is None else now + max(0.0, timeout_s)
        wait_s = self._next_due - now
        if self.fps_cap is not None and wait_s > 0:
            if deadline is not None and now + wait_s > deadline:
                self._closed.wait(deadline - now)
                return None
            if self._closed.wait(wait_s):
                return None
        frame = self._take(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if frame is None:
            return None
        if self.fps_cap is not None:
            period, now = 1.0 / self.fps_cap, time.monotonic()
            # Keep the cadence (small lateness is absorbed) but never burst to catch up after a stall.
            self._next_due = now + period if now - self._next_due > period else self._next_due + period
        with self._stats_lock:
            self.stats.delivered += 1
        return frame

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if not self._opened and not self._closed.is_set() and not self._ended:
            self.open()  # `for f in open_source(...)` works without `with`; close() still releases
        frame = self.read(None)
        if frame is None:
            if self._ended:
                self.close()
            raise StopIteration
        return frame

    # -- for subclasses ----------------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _take(self, timeout_s: Optional[float]) -> Optional[Frame]:
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "open" if self._opened else ("ended" if self._ended else "closed")
        return f"{type(self).__name__}({self.spec!r}, mode={self.mode!r}, {state})"

