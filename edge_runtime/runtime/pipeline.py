"""The main job as composable objects: source -> detector -> tracker -> counters -> sinks.

Iterate a :class:`Pipeline` to get one :class:`FrameResult` per delivered frame, or call
:meth:`Pipeline.run` to drive it to the end. Every stage is an ordinary object you can build yourself
(see the example), or :func:`build_pipeline` makes them all from a validated :class:`Config`.

Example:
    >>> from edge_runtime.assets import ensure
    >>> from edge_runtime.vision.sources import open_source
    >>> from edge_runtime.vision.tracking import ByteTracker
    >>> from edge_runtime.vision.counting import LineCounter
    >>> pipe = Pipeline(open_source(ensure("vtest-video")), Detector(ensure("yolov8s-person"), classes=[0]),
    ...                 tracker=ByteTracker.for_video(10.0),
    ...                 counters=[LineCounter("walkway", (400, 400), (400, 150))])   # doctest: +SKIP
    >>> for result in pipe:                                                         # doctest: +SKIP
    ...     print(result.frame.index, len(result.detections), result.events)
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Protocol, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError
from ..vision.counting import CountEvent, LineCounter, ZoneCounter
from ..vision.detections import Detections
from ..vision.detector import Detector
from ..vision.motion import MotionGate
from ..vision.scene import SceneCutDetector
from ..vision.sources_base import Frame, FrameSource, Gap
from ..vision.tracking import ByteTracker

__all__ = ["FrameResult", "FrameTimings", "Pipeline", "RunSummary", "Sink", "Counter"]

log = logging.getLogger(__name__)

Counter = Union[LineCounter, ZoneCounter]
RECENT_EVENTS_MAX = 100_000  # Pipeline.recent_events' cap (counted in the memory budget)
HELD_GAPS_MAX = 1000  # Pipeline.held_gaps' cap (a camera flapping for days while the job is paused)


@dataclass(frozen=True)
class FrameTimings:
    """Milliseconds per stage for one frame. ``inference_ms`` is the model alone."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    track_ms: float = 0.0
    count_ms: float = 0.0
    sinks_ms: float = 0.0
    total_ms: float = 0.0

    @property
    def overhead_ms(self) -> float:
        """Everything we add around the model: pre/post-processing, tracking, counting."""
        return self.preprocess_ms + self.postprocess_ms + self.track_ms + self.count_ms


@dataclass(frozen=True)
class FrameResult:
    """What one frame produced.

    Attributes:
        frame: the source frame (image, index, timestamp, gap notice).
        detections: this frame's detections, tracked when a tracker runs (negative track_id = not a confirmed track).
        events: crossings / zone entries and exits accepted on this frame.
        inferred: False when the motion gate skipped inference (detections are then the last ones).
        timings: per-stage milliseconds.
        carried_gaps: outages the source reported on frames the pipeline read but did not process (while
            paused), oldest first; this result is the first one after them.
    """

    frame: Frame
    detections: Detections
    events: List[CountEvent]
    inferred: bool
    timings: FrameTimings
    carried_gaps: Tuple[Gap, ...] = ()

    @property
    def gaps(self) -> Tuple[Gap, ...]:
        """Every outage reported since the previous result: the carried ones, then ``frame.gap``."""
        return self.carried_gaps + ((self.frame.gap,) if self.frame.gap is not None else ())


class Sink(Protocol):
    """Receives every FrameResult (persist, print, draw). ``close`` is called once at the end.

    Every frame the pipeline processes reaches the sinks, also those the motion gate kept from the
    detector (``inferred`` False). Frames read while paused are not processed; an outage one of them
    reported comes with the next result (:attr:`FrameResult.gaps`).
    """

    def write(self, result: FrameResult, pipeline: "Pipeline") -> None: ...

    def close(self, pipeline: "Pipeline") -> None: ...


@dataclass
class RunSummary:
    """Totals of a run (or of a resumed series of runs, when counters were seeded from the store)."""

    frames: int = 0
    inferred_frames: int = 0
    events: int = 0
    wall_s: float = 0.0
    inference_ms_total: float = 0.0
    overhead_ms_total: float = 0.0
    lines: Dict[str, Dict[str, Dict[int, int]]] = field(default_factory=dict)  # name -> in/out -> class -> n
    zones: Dict[str, Dict[str, Dict[int, int]]] = field(default_factory=dict)  # name -> enter/exit -> ...
    dropped_frames: int = 0
    gaps: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


class Pipeline:
    """Run detection, tracking and counting over a frame source, feeding each result to the sinks.

    Args:
        source: a FrameSource (not yet opened; the pipeline opens and closes it).
        detector: the object detector.
        tracker: assigns track ids; None = no tracking (then counters can't be used).
        counters: line and zone counters, fed tracked detections every inferred frame.
        sinks: receive every FrameResult, in order.
        motion_gate: skips inference while nothing moves (None = infer every frame).
        scene_cut: on a frame it flags, the tracker and the counters' per-track state are reset (a cut
            or a camera moved: positions on either side of it have nothing to do with each other).
        min_score: detections scoring below this are reported only when they extend a confirmed track
            (a detector run at a lower threshold feeds the tracker's low-score association; see
            ``model.conf`` and ``tracker.low_score`` in the config).

    Raises:
        InputError: counters without a tracker.
    """

    def __init__(self, source: FrameSource, detector: Detector, *, tracker: Optional[ByteTracker] = None,
                 counters: Sequence[Counter] = (), sinks: Sequence[Sink] = (),
                 motion_gate: Optional[MotionGate] = None, scene_cut: Optional[SceneCutDetector] = None,
                 min_score: float = 0.0) -> None:
        if counters and tracker is None:
            raise InputError("Pipeline: counters need tracked detections; pass a tracker")
        self.source = source
        self.detector = detector
        self.tracker = tracker
        self.counters = list(counters)
        self.sinks = list(sinks)
        self.motion_gate = motion_gate
        self.min_score = min_score
        self.scene_cut = scene_cut
        #: Scene cuts seen so far.
        self.scene_cuts = 0
        self.summary = RunSummary()
        #: Events the counters still held when the stream ended (crossings waiting out ``return_s``),
        #: reported by :meth:`frames` on its way out; sinks receive them in ``close``.
        self.final_events: List[CountEvent] = []
        #: The last frame processed.
        self.last_frame: Optional[Frame] = None
        #: Outages the source reported on frames read but not processed (paused, or the frame a stop came
        #: in on), oldest first: the next result carries them (:attr:`FrameResult.carried_gaps`); sinks
        #: may store those still held at ``close``.
        self.held_gaps: List[Gap] = []
        self._last = Detections.empty(with_track_id=tracker is not None)
        self._cut_pending = False  # the source flagged a cut (Frame.cut) not yet applied to the tracks
        self._stop = threading.Event()
        self._paused = threading.Event()
        #: The latest counting events (bounded), for questions about "the last N minutes" without a database.
        self.recent_events: "deque[CountEvent]" = deque(maxlen=RECENT_EVENTS_MAX)
        #: Source-clock time of the latest processed frame.
        self.now_s: Optional[float] = None

    @property
    def min_score(self) -> float:
        """Detections scoring below this are kept only when they extend a confirmed track."""
        return self._min_score

    @min_score.setter
    def min_score(self, value: float) -> None:
        self._min_score = float(value)
        # As the detector's float32 scores compare with it (a frame's few scores are compared as Python floats).
        self._min_score32 = float(np.float32(value))

    def stop(self) -> None:
        """Ask the run to end after the frame in flight (safe from a signal handler or another thread)."""
        self._stop.set()

    def pause(self) -> None:
        """Stop detecting: frames still arrive and are dropped, nothing is counted, until :meth:`resume`."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    @property
    def lines(self) -> List[LineCounter]:
        return [c for c in self.counters if isinstance(c, LineCounter)]

    @property
    def zones(self) -> List[ZoneCounter]:
        return [c for c in self.counters if isinstance(c, ZoneCounter)]

    def in_view(self) -> Dict[int, int]:
        """{class_id: confirmed tracks} in the latest processed frame (what is in view now)."""
        d = self._last
        if not len(d) or d.track_id is None:
            return {}
        ids, counts = np.unique(d.class_id[d.track_id >= 0], return_counts=True)
        return {int(i): int(n) for i, n in zip(ids, counts)}

    def process(self, frame: Frame) -> FrameResult:
        """Run one frame through detector, tracker and counters (sinks are not called)."""
        t0 = time.perf_counter()
        if frame.cut:  # applied at the next inferred frame (the motion gate may skip this one)
            self._cut_pending = True
        inferred = self.motion_gate is None or self.motion_gate.update(frame.image).run
        pre = inf = post = track = count = 0.0
        events: List[CountEvent] = []
        if inferred:
            # The scene-cut check runs before the model, while the frame and the code that reads it are still
            # in the CPU's caches (after the model has streamed its weights through them, the same work takes
            # several times as long).
            ts = time.perf_counter()
            scene_cut = self.scene_cut is not None and self.tracker is not None and self.scene_cut.update(frame.image)
            scene_cut_ms = (time.perf_counter() - ts) * 1e3
            detections = self.detector(frame.image)
            dt = self.detector.timings
            pre, inf, post = dt.preprocess_ms, dt.inference_ms, dt.postprocess_ms
            if self.tracker is not None:
                t1 = time.perf_counter()
                if scene_cut:
                    self.scene_cuts += 1
                    log.info("scene cut at frame %d (picture changed by %.0f grey levels): tracks reset",
                             frame.index, self.scene_cut.last_difference)
                elif self._cut_pending:
                    log.info("the source started over at frame %d: tracks reset", frame.index)
                if scene_cut or self._cut_pending:
                    # Crossings still waiting out return_s are reported on this frame (the store records
                    # events with the frame they come out on).
                    self._cut_pending = False
                    self.tracker.reset()
                    for counter in self.counters:
                        events.extend(counter.reset_tracks(frame.index, frame.timestamp_s))
                detections = self.tracker.update(detections, timestamp_s=frame.timestamp_s, frame=frame.image)
                look = self.tracker.last_appearance  # the boxes' colours, for the counters' stitching
                size = (frame.image.shape[1], frame.image.shape[0])
                if self._min_score > 0.0 and len(detections):
                    floor = self._min_score32
                    keep = [k for k, (s, t) in enumerate(zip(detections.score.tolist(), detections.track_id.tolist()))
                            if s >= floor or t >= 0]
                    if len(keep) < len(detections):
                        detections = detections[keep]
                        look = None if look is None else look[keep]
                t2 = time.perf_counter()
                for counter in self.counters:
                    events.extend(counter.update(detections, frame_index=frame.index, timestamp_s=frame.timestamp_s,
                                                 frame_size=size, appearance=look))
                t3 = time.perf_counter()
                track, count = (t2 - t1) * 1e3 + scene_cut_ms, (t3 - t2) * 1e3
            self._last = detections
        else:
            detections = self._last
        total = (time.perf_counter() - t0) * 1e3
        return FrameResult(frame, detections, events, inferred,
                           FrameTimings(pre, inf, post, track, count, 0.0, total))

    def __iter__(self) -> Iterator[FrameResult]:
        """Open the source and yield a FrameResult per delivered frame; sinks see each one first."""
        return self.frames()

    def frames(self, max_frames: int = 0) -> Iterator[FrameResult]:
        """As iterating the pipeline, stopping after ``max_frames`` frames (0 = until the source ends)."""
        start = time.perf_counter()
        try:
            yield from self._frames(max_frames, start)
        finally:  # also when the consumer stops early (the generator is closed at its yield)
            stats = getattr(self.source, "stats", None)
            if stats is not None:
                self.summary.dropped_frames = int(stats.dropped)
                self.summary.gaps = int(stats.gap_count)
            self._flush()

    def _flush(self) -> None:
        """Collect what the counters still hold (crossings waiting out return_s) into final_events."""
        events: List[CountEvent] = []
        for counter in self.counters:
            events.extend(counter.flush())
        if events:
            self.final_events.extend(events)
            self.recent_events.extend(events)
            self.summary.events += len(events)

    def _frames(self, max_frames: int, start: float) -> Iterator[FrameResult]:
        with self.source:
            for frame in self.source:
                if self._stop.is_set() or (max_frames and self.summary.frames >= max_frames):
                    self._hold_gap(frame)
                    break
                if self._paused.is_set():  # paused (MQTT .../set): the frame is read and dropped
                    self._hold_gap(frame)
                    continue
                result = self.process(frame)
                if self.held_gaps:
                    result = dataclasses.replace(result, carried_gaps=tuple(self.held_gaps))
                    self.held_gaps.clear()
                t0 = time.perf_counter()
                for sink in self.sinks:
                    sink.write(result, self)
                sinks_ms = (time.perf_counter() - t0) * 1e3
                if sinks_ms:
                    result = dataclasses.replace(
                        result, timings=dataclasses.replace(result.timings, sinks_ms=sinks_ms))
                self._account(result)
                self.summary.wall_s = time.perf_counter() - start
                yield result
                if self._stop.is_set() or (max_frames and self.summary.frames >= max_frames):
                    break

    def _hold_gap(self, frame: Frame) -> None:
        """Keep the outage a frame that is not processed reports, for the next result (and the sinks)."""
        if frame.gap is None:
            return
        if len(self.held_gaps) >= HELD_GAPS_MAX:
            del self.held_gaps[0]
        self.held_gaps.append(frame.gap)

    def _account(self, result: FrameResult) -> None:
        self.last_frame = result.frame
        self.recent_events.extend(result.events)
        self.now_s = result.frame.timestamp_s
        s = self.summary
        s.frames += 1
        s.inferred_frames += int(result.inferred)
        s.events += len(result.events)
        s.inference_ms_total += result.timings.inference_ms
        s.overhead_ms_total += result.timings.overhead_ms

    def totals(self) -> RunSummary:
        """The summary with the counters' current totals filled in."""
        s = self.summary
        s.lines = {c.name: {"in": dict(c.in_counts), "out": dict(c.out_counts)} for c in self.lines}
        s.zones = {z.name: {"enter": dict(z.entries), "exit": dict(z.exits)} for z in self.zones}
        return s

    def run(self, max_frames: int = 0) -> RunSummary:
        """Process the source to its end (or ``max_frames`` frames), close the sinks, return the totals."""
        try:
            for _ in self.frames(max_frames):
                pass
        finally:
            for sink in self.sinks:
                try:
                    sink.close(self)
                except Exception:  # one failing sink must not hide the others' close or the run's error
                    log.exception("closing sink %r failed", sink)
        return self.totals()
