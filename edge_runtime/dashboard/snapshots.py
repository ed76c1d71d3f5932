"""A thumbnail per counting event, kept on disk under a size cap.

:class:`Snapshots` is a pipeline sink: on a frame with events it takes the region around each event's
track (a small crop; the whole frame when the track is no longer in view) and hands it to its own
thread, which scales it to ``width``, encodes a JPEG and writes it atomically. When the folder holds
more than ``max_bytes``, the oldest thumbnails are deleted. The frame loop never waits: when the queue
is full, thumbnails are skipped (counted in ``skipped``).

A thumbnail's file name is derived from the event (:func:`snapshot_name`), so the events timeline
finds it from a stored event without any index.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import threading
from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np

__all__ = ["Snapshots", "snapshot_name"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[0-9]{1,12}-[0-9]{1,12}-(in|out|enter|exit)-[0-9a-f]{12}\.jpg$")


def snapshot_name(name: str, frame_index: int, track_id: int, direction: str) -> str:
    """The file name of an event's thumbnail (only digits, a direction, hex and ``.jpg``)."""
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]
    return f"{int(frame_index)}-{int(track_id)}-{direction}-{digest}.jpg"


class Snapshots:
    """Event thumbnails in ``directory``, at most ``max_bytes`` in total.

    Args:
        directory: created if missing.
        max_bytes: the cap; the oldest files go first.
        width: thumbnails are scaled to this width (never up).
        quality: JPEG quality.
    """

    def __init__(self, directory: Path, *, max_bytes: int, width: int = 240, quality: int = 70) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self.width = int(width)
        self.quality = int(quality)
        self.written = 0
        self.skipped = 0
        self._queue: "queue.Queue[Optional[Tuple[str, np.ndarray]]]" = queue.Queue(maxsize=64)
        self._files: List[Tuple[float, str, int]] = []  # (mtime, name, bytes), oldest first
        for entry in os.scandir(self.directory):
            if _NAME.match(entry.name) and entry.is_file():
                st = entry.stat()
                self._files.append((st.st_mtime, entry.name, st.st_size))
        self._files.sort()
        self._total = sum(f[2] for f in self._files)
        self._thread = threading.Thread(target=self._work, name="edge-snapshots", daemon=True)
        self._thread.start()

    @property
    def total_bytes(self) -> int:
        return self._total

    def path_for(self, name: str) -> Optional[Path]:
        """The file of a thumbnail name, or None when the name is not one of ours or is missing. Only
        names made by :func:`snapshot_name` pass, so no request can reach outside the folder."""
        if not isinstance(name, str) or not _NAME.match(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    # -------------------------------------------------------------------------- sink protocol

    def write(self, result: Any, pipeline: Any) -> None:
        if not result.events:
            return
        image = result.frame.image
        det = result.detections
        for ev in result.events:
            crop = image
            if det.track_id is not None and len(det):
                hit = np.nonzero(det.track_id == ev.track_id)[0]
                if len(hit):
                    x0, y0, x1, y1 = det.xyxy[hit[0]]
                    pad_x, pad_y = (x1 - x0) * 0.6, (y1 - y0) * 0.3
                    h, w = image.shape[:2]
                    xa, xb = int(max(0, x0 - pad_x)), int(min(w, x1 + pad_x))
                    ya, yb = int(max(0, y0 - pad_y)), int(min(h, y1 + pad_y))
                    if xb - xa >= 4 and yb - ya >= 4:
                        crop = image[ya:yb, xa:xb]
            direction = str(getattr(ev.direction, "value", ev.direction))
            try:
                # A view: a delivered frame is never written to again (see Frame), so no copy is needed.
                self._queue.put_nowait((snapshot_name(ev.name, ev.frame_index, ev.track_id, direction), crop))
            except queue.Full:
                self.skipped += 1

    def close(self, pipeline: Any = None) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(10)

    # ------------------------------------------------------------------------------ worker

    def _work(self) -> None:
        import cv2

        while True:
            item = self._queue.get()
            if item is None:
                return
            name, crop = item
            try:
                if crop.shape[1] > self.width:
                    h = max(1, round(crop.shape[0] * self.width / crop.shape[1]))
                    crop = cv2.resize(crop, (self.width, h), interpolation=cv2.INTER_AREA)
                ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    continue
                data = buf.tobytes()
                path = self.directory / name
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
                self.written += 1
                self._files.append((os.path.getmtime(path), name, len(data)))
                self._total += len(data)
                self._prune()
            except OSError as exc:  # a full card must not stop counting
                log.warning("could not write the event thumbnail %s: %s", name, exc)

    def _prune(self) -> None:
        while self._total > self.max_bytes and self._files:
            _, name, size = self._files.pop(0)
            try:
                (self.directory / name).unlink()
            except FileNotFoundError:
                pass
            self._total -= size
