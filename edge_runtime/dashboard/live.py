"""The live view: annotated JPEG frames, made only while somebody watches.

:class:`LiveView` is a pipeline sink. With no viewer its ``write`` returns at once (no copy, no
drawing, no encoding). While viewers are connected it keeps (a reference to) at most ``fps`` frames per
second; each is drawn (boxes, track ids, lines with their "in" arrow, zones) and JPEG-encoded once, on
the first viewer's request, and shared by every viewer. Frames are (H, W, 3) uint8 BGR.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Optional, Tuple

import numpy as np

__all__ = ["LiveView"]


class LiveView:
    """Latest annotated frame as JPEG, for the MJPEG stream.

    Args:
        class_names: {class_id: label} drawn on the boxes.
        fps: most frames per second kept and encoded.
        width: frames are scaled down to this width (0 = the source's).
        quality: JPEG quality 10..100.
    """

    def __init__(self, class_names: Dict[int, str], *, fps: float = 5.0, width: int = 640, quality: int = 70) -> None:
        self.class_names = dict(class_names)
        self.period_s = 1.0 / fps
        self.width = int(width)
        self.quality = int(quality)
        #: Frames JPEG-encoded since start (tests and the benchmark watch it stop with no viewer).
        self.frames_encoded = 0
        #: (width, height) of the source's frames, once one was seen.
        self.frame_size: Optional[Tuple[int, int]] = None
        self._viewers = 0
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._next_grab = 0.0
        self._seq = 0
        self._latest: Optional[Tuple[int, np.ndarray, Any, tuple, tuple]] = None
        self._jpeg: Tuple[int, bytes] = (0, b"")

    # ----------------------------------------------------------------------------- viewers

    @property
    def viewers(self) -> int:
        return self._viewers

    def add_viewer(self) -> None:
        with self._lock:
            self._viewers += 1
            self._next_grab = 0.0

    def remove_viewer(self) -> None:
        with self._lock:
            self._viewers = max(0, self._viewers - 1)
            if self._viewers == 0:  # drop the kept frame: nothing is held for nobody
                self._latest = None
                self._jpeg = (self._jpeg[0], b"")

    # -------------------------------------------------------------------------- sink protocol

    def write(self, result: Any, pipeline: Any) -> None:
        """Keep this frame if someone watches and one is due (pipeline thread)."""
        if self.frame_size is None:
            h, w = result.frame.image.shape[:2]
            self.frame_size = (int(w), int(h))
        if self._viewers == 0:
            return
        now = time.monotonic()
        if now < self._next_grab:
            return
        image = result.frame.image  # the consumer's own: a source never writes to a delivered frame again
        with self._lock:
            # On a fixed cadence (not "period after the last grab"), so frames arriving between two due
            # times do not stretch the period; after a pause the next frame is due at once.
            self._next_grab = max(self._next_grab + self.period_s, now)
            self._seq += 1
            self._latest = (self._seq, image, result.detections, tuple(pipeline.lines), tuple(pipeline.zones))

    def close(self, pipeline: Any) -> None:
        pass

    # ------------------------------------------------------------------------------ reading

    def jpeg(self) -> Tuple[int, bytes]:
        """(sequence number, JPEG bytes) of the newest kept frame, encoding it if not done yet.
        (0, b"") before any frame was kept."""
        with self._encode_lock:
            with self._lock:
                latest = self._latest
                cached = self._jpeg
            if latest is None or latest[0] == cached[0]:
                return cached
            seq, image, detections, lines, zones = latest
            data = self._encode(image, detections, lines, zones)
            with self._lock:
                self._jpeg = (seq, data)
                self.frames_encoded += 1
            return seq, data

    def _encode(self, image: np.ndarray, detections: Any, lines: tuple, zones: tuple) -> bytes:
        import cv2

        from ..vision.draw import annotate

        out = annotate(image, detections, self.class_names, lines=lines, zones=zones)
        if self.width and out.shape[1] > self.width:
            h = max(1, round(out.shape[0] * self.width / out.shape[1]))
            # Linear, not area: for a ratio like 768 -> 640 INTER_AREA costs about 6x more (it dominated the
            # per-frame cost in bench_dashboard) for no visible difference at this scale.
            out = cv2.resize(out, (self.width, h), interpolation=cv2.INTER_LINEAR)
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        return buf.tobytes() if ok else b""
