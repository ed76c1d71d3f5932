"""Draw detections, track ids, lines (with an arrow to their "in" side), zones and counts onto a BGR frame
(the annotated video, the dashboard's live view)."""

from __future__ import annotations

from typing import Dict, Mapping, Sequence

import numpy as np

from .counting import LineCounter, ZoneCounter
from .detections import Detections

__all__ = ["annotate"]

_PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
            (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0)]


def _colour(key: int) -> tuple:
    return _PALETTE[key % len(_PALETTE)]


def annotate(image: np.ndarray, detections: Detections, class_names: Mapping[int, str], *,
             lines: Sequence[LineCounter] = (), zones: Sequence[ZoneCounter] = ()) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) uint8 BGR with boxes, ids, lines/zones and their counts drawn."""
    import cv2

    out = image.copy()
    for zone in zones:
        pts = zone.polygon.astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], True, (255, 200, 0), 2)
        x, y = pts[0, 0]
        cv2.putText(out, f"{zone.name}: {zone.occupancy_total}", (int(x), int(y) - 6),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 200, 0), 1, cv2.LINE_AA)
    for line in lines:
        p0 = tuple(int(v) for v in line.start)
        p1 = tuple(int(v) for v in line.end)
        cv2.line(out, p0, p1, (0, 255, 255), 2)
        # The "in" side: facing from start to end, your right; on the image (y down) that is (-dy, dx).
        dx, dy = line.end[0] - line.start[0], line.end[1] - line.start[1]
        norm = max((dx * dx + dy * dy) ** 0.5, 1e-9)
        mid = ((line.start[0] + line.end[0]) / 2, (line.start[1] + line.end[1]) / 2)
        tip = (int(mid[0] - dy / norm * 24), int(mid[1] + dx / norm * 24))
        cv2.arrowedLine(out, (int(mid[0]), int(mid[1])), tip, (0, 255, 255), 2, cv2.LINE_AA, tipLength=0.4)
        cv2.putText(out, "in", (tip[0] + 3, tip[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1,
                    cv2.LINE_AA)
        cv2.putText(out, f"{line.name} in {line.in_total} out {line.out_total}", (p1[0] + 4, p1[1] - 6),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 255, 255), 1, cv2.LINE_AA)
    track_ids = detections.track_id if detections.track_id is not None else np.full(len(detections), -1)
    for box, cls, score, tid in zip(detections.xyxy.astype(int), detections.class_id, detections.score, track_ids):
        colour = _colour(int(tid)) if tid >= 0 else (160, 160, 160)
        cv2.rectangle(out, (box[0], box[1]), (box[2], box[3]), colour, 2)
        label = f"{class_names.get(int(cls), cls)} {score:.2f}" + (f" #{tid}" if tid >= 0 else "")
        cv2.putText(out, label, (box[0], max(box[1] - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1,
                    cv2.LINE_AA)
    return out


def counts_text(counts: Dict[int, int], class_names: Mapping[int, str]) -> str:
    """'Normal=3 Fall=1' for a class-id -> count mapping (empty mapping -> '0')."""
    return " ".join(f"{class_names.get(c, c)}={n}" for c, n in sorted(counts.items())) or "0"
