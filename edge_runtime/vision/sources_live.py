"""Live sources: a grabber thread keeps only the newest frame and gets the stream back when it fails.

Shape legend: frames are (H, W, 3) uint8 BGR. Threads: the consumer (``read``/iteration), one
supervisor per source and one worker per connection. The worker makes every blocking backend call
(open, read, release); the supervisor watches it. A call that blocks past its timeout (OpenCV's FFmpeg
interrupt callback does not cover every protocol: a read on a stalled pipe or an unresponsive device
never returns) is abandoned: the worker is left to finish in the background, owning and releasing its
own capture, and a fresh connection is made. Nothing a backend does can make ``read()`` or ``close()``
wait forever.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable, List, Optional, Protocol, Tuple

import numpy as np

from ..errors import BackendUnavailableError, EdgeRuntimeError, SourceError
from .sources_base import Frame, FrameSource, Gap, ReconnectPolicy, as_bgr

__all__ = ["Reader", "LiveSource", "CaptureReader"]

log = logging.getLogger("edge_runtime.sources")

_MAX_STUCK_CALLS = 4  # abandoned backend calls still blocked at once before we call the device dead


class Reader(Protocol):
    """One connection to a backend, used only by the worker thread that created it.

    ``read()`` returns the next image (any layout :func:`as_bgr` accepts) or None when the stream
    failed or ended; ``eof`` says the end was normal and final (a replayed file); ``position`` is the
    (index, timestamp_s) of the last image when the reader knows them (files), else None.
    """

    eof: bool
    position: Optional[Tuple[int, float]]

    def read(self) -> Optional[np.ndarray]: ...

    def release(self) -> None: ...


class CaptureReader:
    """A cv2.VideoCapture as a :class:`Reader` (cameras, streams, GStreamer pipelines)."""

    eof = False
    position = None

    def __init__(self, cap: "object") -> None:
        self._cap = cap

    def read(self) -> Optional[np.ndarray]:
        ok, image = self._cap.read()
        return image if ok and image is not None and image.size > 0 else None

    def release(self) -> None:
        self._cap.release()


class _Session:
    """One connection attempt and the worker thread that runs it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.abandoned = False
        self.phase = "open"
        self.busy_since: Optional[float] = None  # monotonic start of the blocking call in progress
        self.connected = False
        self.frames = 0
        self.failure: Optional[str] = None
        self.error: Optional[BaseException] = None  # the exception behind ``failure``, if one was raised
        self.fatal: Optional[BaseException] = None
        self.done = threading.Event()
        self.thread: Optional[threading.Thread] = None


class LiveSource(FrameSource):
    """Latest-frame-wins source over a :class:`Reader` factory, with watchdog and reconnection.

    Args:
        spec: what to show in messages and logs (credentials already redacted).
        connect: makes a new :class:`Reader`; called in the worker thread. It raises
            BackendUnavailableError (fatal) or any other exception (a failed attempt).
        fps_cap: deliver at most this many frames per second (None = as fast as they come).
        reconnect: the :class:`ReconnectPolicy` (``finite`` sources never reconnect).
        read_timeout_s: a read that delivers nothing for this long is a loss; a backend call blocked
            for ``1.5 * timeout + 0.5 s`` is abandoned.
        open_timeout_s: the same for opening a connection.
        finite: a replayed file: the first failed read ends the source instead of reconnecting.
        check_available: called in open() in the caller's thread (raise BackendUnavailableError there).
        clock: capture-time clock for frames whose reader has no position (default: Unix time).
        seed: seeds the backoff jitter (tests).
    """

    def __init__(self, spec: str, connect: Callable[[], Reader], *, fps_cap: Optional[float] = None,
                 reconnect: Optional[ReconnectPolicy] = None, read_timeout_s: float = 5.0,
                 open_timeout_s: Optional[float] = None, finite: bool = False,
                 check_available: Optional[Callable[[], None]] = None,
                 clock: Callable[[], float] = time.time, seed: Optional[int] = None) -> None:
        super().__init__(spec, mode="latest", fps_cap=fps_cap)
        if not read_timeout_s > 0:
            raise SourceError(f"source {spec!r}: read_timeout_s must be > 0, got {read_timeout_s}")
        self._connect = connect
        self.policy = reconnect if reconnect is not None else ReconnectPolicy()
        self.read_timeout_s = float(read_timeout_s)
        self.open_timeout_s = float(open_timeout_s if open_timeout_s is not None else max(read_timeout_s, 5.0))
        self._finite = finite
        self._check_available = check_available
        self._clock = clock
        self._rng = random.Random(seed)
        self._cond = threading.Condition()
        self.first_index = 0  # index of the first frame a finite source delivers (so skipped starts at 0)
        self._reset()

    def _reset(self) -> None:
        self._slot: Optional[Tuple[np.ndarray, int, float]] = None
        self._index = -1
        self._last_delivered = self.first_index - 1
        self._last_ts: Optional[float] = None
        self._error: Optional[BaseException] = None
        self._gap_start: Optional[float] = None
        self._gap_reason = ""
        self._gap_attempts = 0
        self._pending_gap: Optional[Gap] = None
        self._first = threading.Event()  # the first connection succeeded or failed for good
        self._stuck: List[_Session] = []
        self._supervisor: Optional[threading.Thread] = None
        self._session: Optional[_Session] = None

    @property
    def connected(self) -> bool:
        """True while a connection is delivering (False during an outage)."""
        s = self._session
        return bool(self._opened and s is not None and s.connected and not s.done.is_set())

    # -- lifecycle ---------------------------------------------------------------------------------
    def _open(self) -> None:
        if self._check_available is not None:
            self._check_available()
        self._reset()
        self._supervisor = threading.Thread(target=self._supervise, name=f"edge-source:{self.spec[:40]}",
                                            daemon=True)
        self._supervisor.start()
        if self.policy.retry_on_open and not self._finite:
            return
        # The supervisor abandons an open blocked past its timeout, so this wait always ends; the bound
        # is a second line of defence.
        if not self._first.wait(self._watchdog_s(self.open_timeout_s) + 2.0):
            self._closed.set()
            raise SourceError(f"{self.spec}: opening did not finish within {self.open_timeout_s:.1f} s")
        if self._error is not None and self._last_ts is None:  # failed before any frame (else: after them)
            self._closed.set()
            self._join(timeout_s=1.0)
            raise self._error

    def _close(self) -> None:
        with self._cond:
            self._cond.notify_all()
        self._join(timeout_s=min(2.0, self.read_timeout_s) + 0.5)

    def _join(self, timeout_s: float) -> None:
        sup = self._supervisor
        if sup is not None and sup is not threading.current_thread():
            sup.join(timeout_s)

    def _watchdog_s(self, limit_s: float) -> float:
        # Later than the backend's own timeout (which we also set), so the backend normally wins.
        return 1.5 * limit_s + 0.5

    # -- worker ------------------------------------------------------------------------------------
    def _run_session(self, sess: _Session) -> None:
        reader: Optional[Reader] = None
        try:
            sess.busy_since = time.monotonic()
            try:
                reader = self._connect()
            except BackendUnavailableError as exc:
                sess.fatal = exc
                return
            except Exception as exc:  # any backend failure is one failed attempt; recorded, not dropped
                sess.failure = f"open failed: {exc}" if str(exc) else f"open failed: {type(exc).__name__}"
                sess.error = exc
                return
            finally:
                sess.busy_since = None
            sess.connected = True
            sess.phase = "read"
            while not sess.abandoned and not self._closed.is_set():
                started = sess.busy_since = time.monotonic()
                image = reader.read()
                sess.busy_since = None
                if sess.abandoned or self._closed.is_set():
                    break
                stalled = time.monotonic() - started >= 0.9 * self.read_timeout_s and not self._finite
                if image is not None and stalled:
                    # A read that blocked for the whole timeout and still "succeeded" returned a frame the
                    # decoder was holding back (FFmpeg's frame threads keep a few; each interrupted read
                    # drains one): an old picture, not a new one. Publishing it would stamp it with the
                    # wrong time and hide the stall for one timeout per held frame.
                    image = None
                if image is None:
                    if reader.eof or self._finite:
                        sess.failure = "end of file"
                    elif time.monotonic() - started >= 0.9 * self.read_timeout_s:
                        sess.failure = f"no frame within the {self.read_timeout_s:g} s read timeout"
                    else:
                        sess.failure = "stream ended or read failed"
                    break
                self._publish(sess, as_bgr(image), reader.position)
        except Exception as exc:  # a frame in a layout we can't use, a backend raising: end this session
            sess.failure = f"{type(exc).__name__}: {exc}"
            sess.error = exc
        finally:
            if reader is not None:
                try:
                    reader.release()
                except Exception as exc:  # releasing a broken capture can itself fail; nothing to do
                    log.debug("%s: release failed: %s", self.spec, exc)
            if sess.frames > 0 and not (sess.abandoned or self._closed.is_set() or self._finite):
                # A delivering stream ended: the outage starts now, before ``connected`` turns False, so
                # anyone reading the two (the /metrics gauges) never sees a disconnection without its gap.
                with self._cond, self._stats_lock:
                    if self._gap_start is None:
                        self._begin_gap(sess.failure or "stream lost")
            sess.done.set()
            with self._cond:
                self._cond.notify_all()

    def _publish(self, sess: _Session, image: np.ndarray, position: Optional[Tuple[int, float]]) -> None:
        ts = self._clock() if position is None else position[1]
        with self._cond:
            if sess.abandoned:
                return
            self._index = self._index + 1 if position is None else position[0]
            sess.frames += 1
            with self._stats_lock:
                self.stats.grabbed += 1
                if self._slot is not None:
                    self.stats.dropped += 1
                if self._gap_start is not None:
                    self._end_gap(ts)
            self._slot = (image, self._index, ts)
            self._last_ts = ts
            self._cond.notify_all()
        self._first.set()

    # -- gaps (called with the locks held) ---------------------------------------------------------
    def _begin_gap(self, reason: str) -> None:
        start = self._last_ts if self._last_ts is not None else self._clock()
        self._gap_start, self._gap_reason, self._gap_attempts = start, reason, 0
        self.stats.in_gap_since = start
        self.stats.gap_count += 1
        log.warning("%s: stream lost (%s); reconnecting with backoff up to %.0f s", self.spec, reason,
                    self.policy.max_delay_s)

    def _end_gap(self, now: float) -> None:
        gap = Gap(start_s=self._gap_start, end_s=now, reason=self._gap_reason, attempts=self._gap_attempts)
        self.stats.gaps.append(gap)
        self.stats.in_gap_since = None
        if self._gap_attempts > 0:
            self.stats.reconnects += 1
        self._gap_start = None
        prev = self._pending_gap  # two outages before the consumer read a frame: report their span
        self._pending_gap = gap if prev is None else Gap(prev.start_s, gap.end_s, prev.reason,
                                                         prev.attempts + gap.attempts)
        log.warning("%s: frames again after %.1f s without (%s; %d attempt%s)", self.spec, gap.duration_s,
                    gap.reason, gap.attempts, "" if gap.attempts == 1 else "s")

    # -- supervisor --------------------------------------------------------------------------------
    def _supervise(self) -> None:
        attempt = 0
        number = 0
        try:
            while not self._closed.is_set():
                sess = _Session(number)
                number += 1
                sess.thread = threading.Thread(target=self._run_session, args=(sess,), daemon=True,
                                               name=f"edge-source-io:{number}")
                self._session = sess
                sess.thread.start()
                reason = self._watch(sess)
                if self._closed.is_set():
                    break
                if sess.fatal is not None:
                    self._fail(sess.fatal)
                    return
                if sess.frames > 0:
                    attempt = 0
                failure = sess.error if isinstance(sess.error, EdgeRuntimeError) else \
                    SourceError(f"{self.spec}: {reason or 'could not open'}")
                if self._finite:  # a file: its end is the end; any other failure reaches the consumer
                    if reason != "end of file":
                        self._fail(failure)
                    with self._cond:
                        self._ended = True
                        self._cond.notify_all()
                    self._first.set()
                    return
                first_failed = not self._first.is_set()
                if first_failed and not self.policy.retry_on_open:
                    self._fail(failure)
                    return
                with self._cond, self._stats_lock:
                    if self._gap_start is None:
                        self._begin_gap(reason or "stream lost")
                if not self.policy.enabled:
                    self._fail(SourceError(f"{self.spec}: stream lost ({reason}) and reconnect is disabled"))
                    return
                if self.policy.max_attempts is not None and attempt >= self.policy.max_attempts:
                    self._fail(SourceError(f"{self.spec}: gave up after {attempt} reconnect attempts; "
                                           f"last failure: {reason}"))
                    return
                self._stuck = [s for s in self._stuck if not s.done.is_set()]
                if len(self._stuck) >= _MAX_STUCK_CALLS:
                    self._fail(SourceError(f"{self.spec}: {len(self._stuck)} backend calls are blocked and "
                                           f"never returned; the device or driver is hung"))
                    return
                delay_s = self.policy.delay_s(attempt, self._rng.random())
                attempt += 1
                if self._closed.wait(delay_s):
                    break
                with self._cond, self._stats_lock:
                    self.stats.reconnect_attempts += 1
                    self._gap_attempts += 1
        except BaseException as exc:  # a bug here must reach the consumer, not die silently in a thread
            self._fail(SourceError(f"{self.spec}: source supervisor failed: {type(exc).__name__}: {exc}"))
            raise
        finally:
            self._finish()

    def _watch(self, sess: _Session) -> Optional[str]:
        """Wait for the session to end; abandon it if a backend call blocks too long. -> failure reason."""
        tick_s = min(0.25, self.read_timeout_s / 4)
        while not sess.done.wait(tick_s):
            if self._closed.is_set():
                return None
            busy = sess.busy_since
            limit_s = self.open_timeout_s if sess.phase == "open" else self.read_timeout_s
            if busy is not None and time.monotonic() - busy > self._watchdog_s(limit_s):
                with self._cond:
                    sess.abandoned = True
                self._stuck.append(sess)
                with self._stats_lock:
                    self.stats.stuck_reads += 1
                log.warning("%s: backend %s blocked for over %.1f s; abandoning that connection", self.spec,
                            sess.phase, self._watchdog_s(limit_s))
                return f"{sess.phase} blocked past the {limit_s:g} s timeout"
        return sess.failure

    def _fail(self, exc: BaseException) -> None:
        if not isinstance(exc, EdgeRuntimeError):
            exc = SourceError(f"{self.spec}: {exc}")
        with self._cond:
            self._error = exc
            self._cond.notify_all()
        self._first.set()

    def _finish(self) -> None:
        sess = self._session
        if sess is None:
            return
        with self._cond:  # whatever it is doing, it must not publish into a later open()
            was_abandoned, sess.abandoned = sess.abandoned, True
        if sess.thread is not None and not was_abandoned:
            sess.thread.join(min(2.0, self.read_timeout_s))
            if sess.thread.is_alive():
                log.info("%s: a backend call is still blocked; it will release its capture when it returns",
                         self.spec)

    # -- consumer ----------------------------------------------------------------------------------
    def _take(self, timeout_s: Optional[float]) -> Optional[Frame]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._slot is None:
                if self._error is not None:
                    raise self._error
                if self._closed.is_set():
                    return None
                if self._ended:
                    return None
                if deadline is None:
                    self._cond.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
            image, index, ts = self._slot
            self._slot = None
            skipped = max(0, index - self._last_delivered - 1)
            self._last_delivered = index
            gap, self._pending_gap = self._pending_gap, None
        return Frame(image=image, index=index, timestamp_s=ts, skipped=skipped, gap=gap)
