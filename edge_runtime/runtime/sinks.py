"""Where frame results go besides the results database: the console, a JSON-lines stream, a video file."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from ..errors import InputError, SourceError, StoreError
from ..vision.counting import CountEvent, count_by_class
from ..vision.draw import annotate, counts_text

if TYPE_CHECKING:  # pragma: no cover
    from ..vision.sources_base import Gap
    from .pipeline import FrameResult, Pipeline
    from .store import Store

__all__ = ["ConsoleSink", "JsonlSink", "VideoSink", "StoreSink"]

log = logging.getLogger(__name__)

BACKLOG_EVENTS_MAX = 100_000  # StoreSink's default cap on events waiting for a full disk (memory budget)
BACKLOG_OUTAGES_MAX = 1000  # StoreSink's cap on source outages waiting for a full disk (~0.2 KB each)


class ConsoleSink:
    """Live counts every ``every_s`` seconds of wall time on ``stream`` (stderr), and a final summary."""

    def __init__(self, every_s: float = 2.0, stream: Optional[IO[str]] = None) -> None:
        self.every_s = every_s
        self.stream = stream or sys.stderr
        self._next = 0.0

    def write(self, result: "FrameResult", pipeline: "Pipeline") -> None:
        now = time.monotonic()
        if self.every_s <= 0 or now < self._next:
            return
        self._next = now + self.every_s
        names = pipeline.detector.class_names
        in_view = count_by_class(result.detections) if result.detections.track_id is not None else \
            {int(c): int(n) for c, n in enumerate(result.detections.counts_by_class()) if n}
        parts = [f"frame {result.frame.index:>6}", f"in view: {counts_text(in_view, names)}"]
        for line in pipeline.lines:
            parts.append(f"{line.name}: in {line.in_total} out {line.out_total}")
        for zone in pipeline.zones:
            parts.append(f"{zone.name}: {zone.occupancy_total} inside")
        s = pipeline.summary
        if s.wall_s > 0:
            parts.append(f"{s.fps:.1f} fps")
        print(" | ".join(parts), file=self.stream, flush=True)

    def close(self, pipeline: "Pipeline") -> None:
        s = pipeline.totals()
        names = pipeline.detector.class_names
        out = self.stream
        print(f"\nprocessed {s.frames} frames in {s.wall_s:.1f} s ({s.fps:.1f} fps); "
              f"inference {s.inference_ms_total / max(s.inferred_frames, 1):.1f} ms/frame, "
              f"everything else {s.overhead_ms_total / max(s.inferred_frames, 1):.2f} ms/frame"
              + (f"; {s.dropped_frames} frames dropped" if s.dropped_frames else "")
              + (f"; {s.gaps} source gaps" if s.gaps else ""), file=out)
        for name, d in s.lines.items():
            print(f"line {name!r}: in {sum(d['in'].values())} ({counts_text(d['in'], names)}), "
                  f"out {sum(d['out'].values())} ({counts_text(d['out'], names)})", file=out)
        for name, d in s.zones.items():
            print(f"zone {name!r}: entered {sum(d['enter'].values())}, left {sum(d['exit'].values())}", file=out)
        out.flush()


class JsonlSink:
    """One JSON object per line on ``stream`` (stdout) for every counting event, as it happens."""

    def __init__(self, stream: Optional[IO[str]] = None) -> None:
        self.stream = stream or sys.stdout

    def write(self, result: "FrameResult", pipeline: "Pipeline") -> None:
        self._emit(result.events, pipeline)

    def _emit(self, events, pipeline: "Pipeline") -> None:
        names = pipeline.detector.class_names
        for e in events:
            record = {"frame": e.frame_index, "t_s": e.timestamp_s, "crossed_frame": e.crossed_frame,
                      "crossed_s": e.crossed_s, "track_id": e.track_id, "class_id": e.class_id,
                      "class": names.get(e.class_id, str(e.class_id)), "event": e.direction.value, "name": e.name}
            self.stream.write(json.dumps(record) + "\n")
        if events:
            self.stream.flush()

    def close(self, pipeline: "Pipeline") -> None:
        self._emit(pipeline.final_events, pipeline)
        self.stream.flush()


class VideoSink:
    """Writes an annotated video (boxes, ids, lines, zones, counts) at the source's frame rate."""

    def __init__(self, path: str, fps: float = 10.0, fourcc: str = "mp4v") -> None:
        self.path = Path(path)
        self.fps = fps
        self.fourcc = fourcc
        self._writer = None

    def write(self, result: "FrameResult", pipeline: "Pipeline") -> None:
        import cv2

        image = annotate(result.frame.image, result.detections, pipeline.detector.class_names,
                         lines=pipeline.lines, zones=pipeline.zones)
        if self._writer is None:
            h, w = image.shape[:2]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self._writer.isOpened():
                raise SourceError(f"{self.path}: cannot open a video writer ({self.fourcc}, {w}x{h})")
        self._writer.write(image)

    def close(self, pipeline: "Pipeline") -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class StoreSink:
    """Persists each frame's events, totals, interval counts and checkpoint to the results database, and
    the source's outages.

    A result whose frame reports an outage of the source (``frame.gap``, or gaps the pipeline carried
    from frames it did not process: :attr:`FrameResult.gaps`) has each outage stored with
    :meth:`Store.add_outage` before the frame itself. Outages the pipeline still holds at the end (read
    on the frame a stop came in on) are stored at :meth:`close`.

    One transaction per frame (see :mod:`edge_runtime.runtime.store`). When a write fails (full disk:
    SQLITE_FULL / ENOSPC, or an I/O error) nothing is lost and the run goes on counting in memory:

    - the failure is logged once per outage (the store's message names the file and says to free space);
    - the frames not stored wait in memory, in order: every frame with events or a change of zone
      occupancy, and the newest frame for the resume checkpoint (frames with nothing in them are not kept);
    - the outages not stored wait in memory too (at most ``BACKLOG_OUTAGES_MAX``; past that the oldest
      are given up and counted in ``lost_outages``);
    - every ``retry_every_s`` the store is probed (:meth:`Store.retry`, a 64 KiB write); once it takes
      writes again the waiting outages and then the waiting frames are written in order, each in its own
      transaction as it would have been, and the recovery is logged. The database then holds exactly
      what it would have held.

    Memory is bounded: at most ``max_backlog_events`` events wait (about 0.2 KB each; 100 000 is hours of a
    busy gate). Past that the oldest waiting frames are given up, logged once and counted in
    ``lost_events``; the counters' totals in memory (and so MQTT, the console, the chat) stay right.

    A run whose database was already full when it started (``run_id`` None) begins its run row with
    ``begin_run`` at the first write that succeeds, then writes what waited.

    Attributes:
        backlog_frames, backlog_events: waiting in memory now.
        lost_events: events given up because the backlog was full (0 unless the disk stayed full that long).
        backlog_outages: source outages waiting in memory now.
        lost_outages: outages given up (a backlog past ``BACKLOG_OUTAGES_MAX``, or a disk full to the end).
        unsaved_frames, unsaved_events: frames and events that went through the backlog since the start.
    """

    def __init__(self, store: "Store", run_id: Optional[int], retry_every_s: float = 30.0,
                 max_backlog_events: int = BACKLOG_EVENTS_MAX, begin_run: Optional[Callable[[], int]] = None) -> None:
        if run_id is None and begin_run is None:
            raise InputError("StoreSink: pass a run_id, or begin_run to start the run once the store takes writes")
        self.store = store
        self.run_id = run_id
        self._begin_run = begin_run
        self.retry_every_s = retry_every_s
        self.max_backlog_events = max_backlog_events
        self.unsaved_frames = 0
        self.unsaved_events = 0
        self.lost_events = 0
        self.backlog_events = 0
        # (frame_index, timestamp_s, events, occupancy or None); the last entry may be event-less (checkpoint)
        self._backlog: "deque[Tuple[int, float, List[CountEvent], Optional[Dict[str, Dict[int, int]]]]]" = deque()
        self._last_occupancy: Optional[Dict[str, Dict[int, int]]] = None
        self._outages: "deque[Gap]" = deque()  # reported by the source, not stored yet (oldest first)
        self.lost_outages = 0
        self._next_retry = 0.0
        self._overflowed = False  # the backlog gave up frames in this outage (logged once)

    @property
    def backlog_frames(self) -> int:
        return len(self._backlog)

    @property
    def backlog_outages(self) -> int:
        return len(self._outages)

    def write(self, result: "FrameResult", pipeline: "Pipeline") -> None:
        occupancy = {z.name: dict(z.occupancy) for z in pipeline.zones} if result.inferred else None
        frame = result.frame
        for gap in result.gaps:
            self._keep_outage(gap)
        if self._backlog or not self.store.healthy or self.run_id is None:
            self._keep(frame.index, frame.timestamp_s, list(result.events), occupancy)
            self._drain()
            return
        try:
            self._write_outages()
            self.store.record_frame(self.run_id, frame.index, frame.timestamp_s, result.events, occupancy=occupancy)
        except StoreError:  # the store has logged what failed, once per outage
            log.warning("results database %s: counting continues in memory; frames wait there and are written "
                        "when it takes writes again (checked every %g s)", self.store.path, self.retry_every_s)
            self._next_retry = time.monotonic() + self.retry_every_s
            self._keep(frame.index, frame.timestamp_s, list(result.events), occupancy)

    def _keep(self, index: int, ts: float, events: List[CountEvent],
              occupancy: Optional[Dict[str, Dict[int, int]]]) -> None:
        self.unsaved_frames += 1
        self.unsaved_events += len(events)
        changed = occupancy is not None and occupancy != self._last_occupancy
        if changed:
            self._last_occupancy = occupancy
        if self._backlog:
            last = self._backlog[-1]
            if not last[2] and last[3] is None:  # the previous entry was only a checkpoint: replace it
                self._backlog.pop()
        self._backlog.append((index, ts, events, occupancy if changed else None))
        self.backlog_events += len(events)
        while self.backlog_events > self.max_backlog_events and len(self._backlog) > 1:
            dropped = self._backlog.popleft()
            self.backlog_events -= len(dropped[2])
            if not self._overflowed:
                self._overflowed = True
                log.error("results database %s: more than %d events are waiting for the disk; the oldest are "
                          "given up (the totals in memory stay right)", self.store.path, self.max_backlog_events)
            self.lost_events += len(dropped[2])

    def _keep_outage(self, gap: "Gap") -> None:
        """Queue an outage for :meth:`_write_outages`; past ``BACKLOG_OUTAGES_MAX`` the oldest is given up."""
        self._outages.append(gap)
        if len(self._outages) > BACKLOG_OUTAGES_MAX:
            self._outages.popleft()
            if not self.lost_outages:
                log.error("results database %s: more than %d source outages are waiting for the disk; the oldest "
                          "are given up", self.store.path, BACKLOG_OUTAGES_MAX)
            self.lost_outages += 1

    def _write_outages(self) -> int:
        """Store the queued outages, oldest first; each leaves the queue once committed. One the store
        refuses as malformed (an end before its start: the wall clock stepped back during the outage) is
        logged and given up, not retried. Returns how many were stored.

        Raises:
            StoreError: a write failed; it and the rest stay queued.
        """
        stored = 0
        while self._outages:
            gap = self._outages[0]
            try:
                self.store.add_outage(self.run_id, gap.start_s, gap.end_s, gap.reason, gap.attempts)
                stored += 1
            except InputError as exc:
                log.warning("source outage not stored: %s", exc)
                self.lost_outages += 1
            self._outages.popleft()
        return stored

    def _drain(self, force: bool = False) -> None:
        """Write the waiting frames once the store takes writes again (probed every ``retry_every_s``)."""
        now = time.monotonic()
        if not force and now < self._next_retry:
            return
        if not self.store.healthy and not self.store.retry():
            self._next_retry = now + self.retry_every_s
            return
        if self.run_id is None:
            assert self._begin_run is not None  # __init__ requires one of the two
            try:
                self.run_id = self._begin_run()
            except StoreError:
                self._next_retry = time.monotonic() + self.retry_every_s
                return
        try:
            outages = self._write_outages()
        except StoreError as exc:
            log.debug("writing the waiting outages stopped: %s", exc)
            self._next_retry = time.monotonic() + self.retry_every_s
            return
        written = written_events = 0
        while self._backlog:
            index, ts, events, occupancy = self._backlog[0]
            try:
                self.store.record_frame(self.run_id, index, ts, events, occupancy=occupancy)
            except StoreError as exc:
                log.debug("writing the waiting frames stopped at frame %d: %s", index, exc)
                self._next_retry = time.monotonic() + self.retry_every_s
                return
            self._backlog.popleft()
            self.backlog_events -= len(events)
            written += 1
            written_events += len(events)
        self._overflowed = False
        log.warning("results database %s takes writes again; wrote %d frames (%d events) and %d source outages "
                    "kept in memory during the outage", self.store.path, written, written_events, outages)

    def close(self, pipeline: "Pipeline") -> None:
        for gap in getattr(pipeline, "held_gaps", ()):  # read on frames the pipeline did not process
            self._keep_outage(gap)
        if self._backlog:
            self._drain(force=True)
        elif self._outages and self.run_id is not None:
            try:
                self._write_outages()
            except StoreError:  # the store has logged it; counted as lost below
                pass
        final = pipeline.final_events
        if final and pipeline.last_frame is not None:
            frame = pipeline.last_frame
            try:
                if self._backlog:
                    raise StoreError(f"{self.store.path}: the disk is still full")
                self.store.record_frame(self.run_id, frame.index, frame.timestamp_s, final, again=True)
            except StoreError as exc:
                log.error("%s; %d events reported at the end of the stream were not stored", exc, len(final))
                self.unsaved_events += len(final)
                self.lost_events += len(final)
        if self._outages:
            log.error("%d source outages could not be stored in %s: the disk stayed full until the end",
                      len(self._outages), self.store.path)
            self.lost_outages += len(self._outages)
        if self._backlog or self.run_id is None:
            log.error("%d frames with %d events could not be stored in %s: the disk stayed full until the end",
                      len(self._backlog), self.backlog_events, self.store.path)
            self.lost_events += self.backlog_events
            return
        try:
            self.store.end_run(self.run_id)
        except StoreError as exc:
            log.error("could not close run %d cleanly: %s", self.run_id, exc)
