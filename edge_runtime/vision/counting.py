"""Line-crossing and zone counting over tracked detections, with the fixes users ask of the peers.

Shape legend: N detections per frame with ``track_id`` (N,) int32 (-1 = no confirmed track); points are
(x, y) in source-image pixels, y pointing down; a line is two points, a zone a polygon of >= 3 points.

Semantics (each one is a bug report against a widely used counter):

- Only confirmed tracks count. Detections with track id -1 are ignored entirely, so tentative tracks
  that share -1 can never inflate a count.
- A line counts only crossings of the *segment*: the track's path between its last position on the old
  side and its first position on the new side must cut the segment itself, not its infinite extension.
- Hysteresis: a side (or inside/outside) change is accepted only after the track has been ``hysteresis_frames``
  consecutive observed frames on the new side (1 = at once). Flicker at the line never counts twice.
- State is kept per track id. The tracker's ids are never reused (see ByteTracker), so a track that is
  lost and found again under the same id keeps its state and is not counted again; crossing back
  counts one ``out``.
- A track's class is the majority class of its detections seen by the counter (ties keep the current
  one); counts and events are per class.

Every crossing, entry and exit is returned as a :class:`CountEvent`, a plain dataclass ready to be
stored (``as_row``).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ConfigError, InputError
from .detections import Detections

__all__ = [
    "Direction",
    "CountEvent",
    "LineCounter",
    "ZoneCounter",
    "count_by_class",
    "ANCHORS",
]

ANCHORS = ("bottom_center", "center")
Point = Tuple[float, float]


class Direction(str, enum.Enum):
    """What a :class:`CountEvent` records."""

    IN = "in"  # line crossed from its left to its right side (see LineCounter)
    OUT = "out"  # line crossed from its right to its left side
    ENTER = "enter"  # zone entered
    EXIT = "exit"  # zone left


@dataclass(frozen=True)
class CountEvent:
    """One counted crossing, entry or exit.

    Attributes:
        frame_index: index of the frame on which the change was accepted (after hysteresis).
        timestamp_s: that frame's timestamp in seconds, if the caller gave one.
        track_id: the confirmed track's id.
        class_id: the track's majority class at that moment.
        direction: in / out for lines, enter / exit for zones.
        name: the line's or zone's name.
    """

    frame_index: int
    timestamp_s: Optional[float]
    track_id: int
    class_id: int
    direction: Direction
    name: str

    def as_row(self) -> Tuple[int, Optional[float], int, int, str, str]:
        """Plain Python values in field order (for SQLite / JSON)."""
        return (self.frame_index, self.timestamp_s, self.track_id, self.class_id, self.direction.value, self.name)


def count_by_class(detections: Detections, *, confirmed_only: bool = True) -> Dict[int, int]:
    """Number of detections per class id in one frame.

    Args:
        detections: one frame's detections.
        confirmed_only: count only detections with a confirmed track (track_id >= 0); requires tracked
            detections.

    Raises:
        InputError: confirmed_only but the detections carry no track ids.
    """
    class_id = detections.class_id
    if confirmed_only:
        if detections.track_id is None:
            raise InputError("count_by_class: confirmed_only needs tracked detections (track_id is None)")
        class_id = class_id[detections.track_id >= 0]
    values, counts = np.unique(class_id, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def _point(name: str, where: str, value: object) -> Tuple[float, float]:
    try:
        x, y = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {name} must be an (x, y) pair of numbers, got {value!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise ConfigError(f"{where}: {name} must be finite, got {value!r}")
    return x, y


def _check_common(where: str, hysteresis_frames: int, anchor: str, forget_frames: int) -> None:
    if isinstance(hysteresis_frames, bool) or int(hysteresis_frames) != hysteresis_frames or hysteresis_frames < 1:
        raise ConfigError(f"{where}: hysteresis_frames must be an integer >= 1, got {hysteresis_frames!r}")
    if anchor not in ANCHORS:
        raise ConfigError(f"{where}: anchor must be one of {ANCHORS}, got {anchor!r}")
    if isinstance(forget_frames, bool) or int(forget_frames) != forget_frames or forget_frames < 1:
        raise ConfigError(f"{where}: forget_frames must be an integer >= 1, got {forget_frames!r}")


@dataclass
class _TrackState:
    """Hysteresis state of one track against one line or zone."""

    state: int  # committed side (-1 / +1) of a line, or 0 / 1 = outside / inside a zone
    last_seen: int
    candidate: int = 0
    streak: int = 0
    anchor_before: Point = (0.0, 0.0)  # last position in the committed state
    anchor_after: Point = (0.0, 0.0)  # first position of the current candidate streak
    votes: Dict[int, int] = field(default_factory=dict)
    class_id: int = -1

    def vote(self, class_id: int) -> int:
        self.votes[class_id] = self.votes.get(class_id, 0) + 1
        if self.class_id < 0 or self.votes[class_id] > self.votes[self.class_id]:
            self.class_id = class_id
        return self.class_id


class _HysteresisCounter:
    """Per-track binary state with N-frame hysteresis; subclasses say what the state is and what counts."""

    def __init__(self, name: str, where: str, hysteresis_frames: int, anchor: str, forget_frames: int,
                 classes: Optional[Sequence[int]]) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: name must be a non-empty string, got {name!r}")
        _check_common(f"{where} {name!r}", hysteresis_frames, anchor, forget_frames)
        self.name = name
        if classes is not None:
            try:
                classes = frozenset(int(c) for c in classes)
            except (TypeError, ValueError):
                raise ConfigError(f"{where} {name!r}: classes must be a list of class ids, got {classes!r}") from None
        self.classes: Optional[frozenset] = classes
        self.hysteresis_frames = int(hysteresis_frames)
        self.anchor = anchor
        self.forget_frames = int(forget_frames)
        self._tracks: Dict[int, _TrackState] = {}
        self._frame = -1
        self._next_prune = 0

    # Lines: state 0 means "exactly on the line", which carries no side; zones: 0 is "outside".
    _on_line_is_unknown = False

    def _states(self, points: np.ndarray) -> np.ndarray:
        """(K, 2) anchor points -> (K,) int8 states; 0 for a line means 'exactly on it' (no information)."""
        raise NotImplementedError

    def _accept(self, st: _TrackState, new_state: int) -> Optional[Direction]:
        """A change to new_state passed the hysteresis: the event direction, or None if it doesn't count."""
        raise NotImplementedError

    def _observe(self, detections: Detections, frame_index: Optional[int],
                 timestamp_s: Optional[float]) -> Tuple[List[CountEvent], np.ndarray, np.ndarray, np.ndarray]:
        if not isinstance(detections, Detections):
            raise InputError(f"{type(self).__name__}.update: expected Detections, got {type(detections).__name__}")
        if detections.track_id is None:
            raise InputError(f"{type(self).__name__}.update: detections are not tracked (track_id is None); "
                             "run them through a tracker first")
        if frame_index is None:
            frame_index = self._frame + 1
        elif int(frame_index) <= self._frame:
            raise InputError(f"{type(self).__name__}.update: frame_index must increase, got {frame_index} "
                             f"after {self._frame}")
        self._frame = frame = int(frame_index)
        confirmed = np.flatnonzero(detections.track_id >= 0)
        track_ids = detections.track_id[confirmed]
        if np.unique(track_ids).size != track_ids.size:
            raise InputError(f"{type(self).__name__}.update: a track id occurs twice in one frame: "
                             f"{track_ids.tolist()}")
        points = detections.anchor(self.anchor)[confirmed].astype(np.float64)
        states = self._states(points)
        classes = detections.class_id[confirmed]
        events: List[CountEvent] = []
        for k in range(confirmed.size):
            tid, s, p = int(track_ids[k]), int(states[k]), (float(points[k, 0]), float(points[k, 1]))
            st = self._tracks.get(tid)
            if st is None:  # first sight: learn the state, nothing to count yet
                st = self._tracks[tid] = _TrackState(state=s, last_seen=frame, anchor_before=p)
            st.last_seen = frame
            cls = st.vote(int(classes[k]))
            if self._on_line_is_unknown and s == 0:
                continue  # exactly on the line: no information, the streak neither grows nor resets
            if self._on_line_is_unknown and st.state == 0:
                st.state, st.anchor_before = s, p  # first seen on the line: adopt the first side it takes
                continue
            if s == st.state:
                st.anchor_before, st.streak = p, 0  # (back) on the accepted side: any streak is void
                continue
            if st.streak == 0 or s != st.candidate:
                st.candidate, st.streak, st.anchor_after = s, 0, p
            st.streak += 1
            if st.streak >= self.hysteresis_frames:
                direction = self._accept(st, s) if self._counts(st.class_id) else None
                st.state, st.streak, st.anchor_before = s, 0, p
                if direction is not None:
                    events.append(CountEvent(frame, timestamp_s, tid, cls, direction, self.name))
        if frame >= self._next_prune:  # bounded memory: forget tracks not seen for forget_frames
            self._next_prune = frame + 64
            for t in [t for t, st in self._tracks.items() if frame - st.last_seen > self.forget_frames]:
                del self._tracks[t]
        return events, track_ids, states, classes

    def _counts(self, class_id: int) -> bool:
        return self.classes is None or class_id in self.classes

    @property
    def num_tracks(self) -> int:
        """Tracks whose state is held (seen within forget_frames)."""
        return len(self._tracks)


def _add(counts: Dict[int, int], class_id: int) -> None:
    counts[class_id] = counts.get(class_id, 0) + 1


class LineCounter(_HysteresisCounter):
    """Count confirmed tracks crossing a line segment, per direction and class.

    ``in`` is a crossing from the left to the right of the segment as drawn from ``start`` to ``end`` on
    the image (y down): for a line drawn left to right, ``in`` is walking down the image. Swap the
    points to swap the directions.

    Args:
        name: the line's name (goes into events).
        start, end: the segment's end points (x, y) in pixels.
        hysteresis_frames: consecutive frames a track must spend on the new side before the crossing counts.
        anchor: the point of a box that must cross: 'bottom_center' (feet) or 'center'.
        forget_frames: state of a track unseen for this many frames is dropped (memory bound).
        classes: count only tracks whose majority class is one of these (None = all).

    Raises:
        ConfigError: a bad name, point, zero-length segment, hysteresis_frames < 1 or unknown anchor.

    Example:
        >>> line = LineCounter("door", (0, 100), (200, 100), hysteresis_frames=1)
        >>> walk = lambda y: Detections(np.array([[90, y - 50, 110, y]], np.float32),
        ...                             np.array([0.9], np.float32), np.array([0], np.int32), np.array([7]))
        >>> [[(e.track_id, e.direction.value) for e in line.update(walk(y))] for y in (80, 95, 105, 120)]
        [[], [], [(7, 'in')], []]
        >>> line.in_counts, line.out_counts
        ({0: 1}, {})
    """

    _on_line_is_unknown = True

    def __init__(self, name: str, start: Sequence[float], end: Sequence[float], *, hysteresis_frames: int = 2,
                 anchor: str = "bottom_center", forget_frames: int = 600,
                 classes: Optional[Sequence[int]] = None) -> None:
        super().__init__(name, "LineCounter", hysteresis_frames, anchor, forget_frames, classes)
        self.start = _point("start", f"LineCounter {name!r}", start)
        self.end = _point("end", f"LineCounter {name!r}", end)
        dx, dy = self.end[0] - self.start[0], self.end[1] - self.start[1]
        if dx == 0 and dy == 0:
            raise ConfigError(f"LineCounter {name!r}: start and end are the same point {self.start}")
        self._direction = (dx, dy)
        self.in_counts: Dict[int, int] = {}
        self.out_counts: Dict[int, int] = {}

    @property
    def in_total(self) -> int:
        return sum(self.in_counts.values())

    @property
    def out_total(self) -> int:
        return sum(self.out_counts.values())

    def _states(self, points: np.ndarray) -> np.ndarray:
        dx, dy = self._direction
        cross = dx * (points[:, 1] - self.start[1]) - dy * (points[:, 0] - self.start[0])
        return np.sign(cross).astype(np.int8)

    def _accept(self, st: _TrackState, new_state: int) -> Optional[Direction]:
        if not self._cuts_segment(st.anchor_before, st.anchor_after):
            return None  # passed beside the segment: the side changes, nothing counts
        direction = Direction.IN if new_state > 0 else Direction.OUT
        _add(self.in_counts if direction is Direction.IN else self.out_counts, st.class_id)
        return direction

    def _cuts_segment(self, p0: Point, p1: Point) -> bool:
        """Whether the path p0 -> p1 (on strictly opposite sides) meets the segment within its span."""
        (ax, ay), (dx, dy) = self.start, self._direction
        ex, ey = p1[0] - p0[0], p1[1] - p0[1]
        denom = dx * ey - dy * ex
        if denom == 0:  # cannot happen for points on opposite sides; guarded anyway
            return False
        t = ((p0[0] - ax) * ey - (p0[1] - ay) * ex) / denom
        return 0.0 <= t <= 1.0

    def update(self, detections: Detections, *, frame_index: Optional[int] = None,
               timestamp_s: Optional[float] = None) -> List[CountEvent]:
        """Feed one frame of tracked detections; returns the crossings accepted on this frame.

        Args:
            detections: tracked detections (track_id set; -1 entries are ignored).
            frame_index: this frame's index (strictly increasing); default: previous + 1.
            timestamp_s: this frame's time in seconds, copied into the events.

        Raises:
            InputError: untracked detections, a repeated track id, or a non-increasing frame_index.
        """
        return self._observe(detections, frame_index, timestamp_s)[0]


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(K, 2) points, (V, 2) polygon -> (K,) bool, even-odd rule (points exactly on an edge may go either way)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return (straddles & (x < x_cross)).sum(axis=1) % 2 == 1


class ZoneCounter(_HysteresisCounter):
    """Occupancy of a polygon zone per frame, and entries / exits of confirmed tracks per class.

    Entering (or leaving) counts once the track's anchor has been inside (outside) for ``hysteresis_frames``
    consecutive frames. A track first seen inside is part of the occupancy but is not an entry.

    Args:
        name: the zone's name (goes into events).
        polygon: (V, 2) vertices in pixels, V >= 3, in drawing order.
        hysteresis_frames, anchor, forget_frames, classes: as for :class:`LineCounter`.

    Raises:
        ConfigError: a bad name, fewer than 3 vertices, non-finite or zero-area polygon, bad options.

    Example:
        >>> zone = ZoneCounter("desk", [(0, 0), (100, 0), (100, 100), (0, 100)], hysteresis_frames=1)
        >>> at = lambda x: Detections(np.array([[x, 40, x + 10, 60]], np.float32),
        ...                           np.array([0.9], np.float32), np.array([2], np.int32), np.array([3]))
        >>> [[e.direction.value for e in zone.update(at(x))] for x in (150, 50, 60, 150)]
        [[], ['enter'], [], ['exit']]
        >>> zone.entries, zone.exits, zone.occupancy
        ({2: 1}, {2: 1}, {})
    """

    def __init__(self, name: str, polygon: Sequence[Sequence[float]], *, hysteresis_frames: int = 2,
                 anchor: str = "bottom_center", forget_frames: int = 600,
                 classes: Optional[Sequence[int]] = None) -> None:
        super().__init__(name, "ZoneCounter", hysteresis_frames, anchor, forget_frames, classes)
        try:
            vertices = np.asarray(polygon, np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"ZoneCounter {name!r}: polygon must be (V, 2) numbers, got {polygon!r}") from None
        if vertices.ndim != 2 or vertices.shape[1] != 2 or vertices.shape[0] < 3:
            raise ConfigError(f"ZoneCounter {name!r}: polygon must be (V, 2) with V >= 3, got shape {vertices.shape}")
        if not np.isfinite(vertices).all():
            raise ConfigError(f"ZoneCounter {name!r}: polygon has NaN or infinite vertices")
        x, y = vertices[:, 0], vertices[:, 1]
        if abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) == 0.0:
            raise ConfigError(f"ZoneCounter {name!r}: polygon has zero area")
        self.polygon = vertices
        self.entries: Dict[int, int] = {}
        self.exits: Dict[int, int] = {}
        self.occupancy: Dict[int, int] = {}

    @property
    def occupancy_total(self) -> int:
        return sum(self.occupancy.values())

    def _states(self, points: np.ndarray) -> np.ndarray:
        return _inside_polygon(points, self.polygon).astype(np.int8)

    def _accept(self, st: _TrackState, new_state: int) -> Optional[Direction]:
        direction = Direction.ENTER if new_state == 1 else Direction.EXIT
        _add(self.entries if direction is Direction.ENTER else self.exits, st.class_id)
        return direction

    def update(self, detections: Detections, *, frame_index: Optional[int] = None,
               timestamp_s: Optional[float] = None) -> List[CountEvent]:
        """Feed one frame; returns this frame's entries and exits and refreshes :attr:`occupancy`.

        Occupancy counts the confirmed tracks seen on this frame whose accepted state is inside, by
        their majority class.

        Args / Raises: as :meth:`LineCounter.update`.
        """
        events, track_ids, _, _ = self._observe(detections, frame_index, timestamp_s)
        occupancy: Dict[int, int] = {}
        for tid in track_ids.tolist():
            st = self._tracks[tid]
            if st.state == 1 and self._counts(st.class_id):
                _add(occupancy, st.class_id)
        self.occupancy = occupancy
        return events
