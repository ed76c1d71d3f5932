"""Where frame results go besides the results database: the console, a JSON-lines stream, a video file."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Optional

from ..errors import SourceError, StoreError
from ..vision.counting import count_by_class
from ..vision.draw import annotate, counts_text

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import FrameResult, Pipeline
    from .store import Store

__all__ = ["ConsoleSink", "JsonlSink", "VideoSink", "StoreSink"]

log = logging.getLogger(__name__)


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
    """Persists each frame's events, totals, interval counts and checkpoint to the results database.

    One transaction per frame (see :mod:`edge_runtime.runtime.store`). When a write fails (full disk,
    I/O error) the run goes on counting in memory; the failure is logged once, a retry is made every
    ``retry_every_s``, and frames that could not be stored are counted in ``unsaved_frames``.
    """

    def __init__(self, store: "Store", run_id: int, retry_every_s: float = 30.0) -> None:
        self.store = store
        self.run_id = run_id
        self.retry_every_s = retry_every_s
        self.unsaved_frames = 0
        self.unsaved_events = 0
        self._next_retry = 0.0

    def write(self, result: "FrameResult", pipeline: "Pipeline") -> None:
        if not self.store.healthy:
            now = time.monotonic()
            if now < self._next_retry or not self.store.retry():
                self._next_retry = max(self._next_retry, now + self.retry_every_s)
                self.unsaved_frames += 1
                self.unsaved_events += len(result.events)
                return
            log.warning("results database %s is writable again; %d frames (%d events) were not stored",
                        self.store.path, self.unsaved_frames, self.unsaved_events)
        occupancy = {z.name: dict(z.occupancy) for z in pipeline.zones} if result.inferred else None
        try:
            self.store.record_frame(self.run_id, result.frame.index, result.frame.timestamp_s, result.events,
                                    occupancy=occupancy)
        except StoreError as exc:
            log.error("%s; counting continues in memory, retrying every %.0f s", exc, self.retry_every_s)
            self._next_retry = time.monotonic() + self.retry_every_s
            self.unsaved_frames += 1
            self.unsaved_events += len(result.events)

    def close(self, pipeline: "Pipeline") -> None:
        final = pipeline.final_events
        if final and pipeline.last_frame is not None:
            frame = pipeline.last_frame
            try:
                self.store.record_frame(self.run_id, frame.index, frame.timestamp_s, final, again=True)
            except StoreError as exc:
                log.error("%s; %d events reported at the end of the stream were not stored", exc, len(final))
                self.unsaved_events += len(final)
        try:
            self.store.end_run(self.run_id)
        except StoreError as exc:
            log.error("could not close run %d cleanly: %s", self.run_id, exc)
        if self.unsaved_frames:
            log.error("%d frames with %d events could not be stored in %s", self.unsaved_frames,
                      self.unsaved_events, self.store.path)
