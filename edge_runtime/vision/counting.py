"""Line-crossing and zone counting over tracked detections: a crossing means the object passed.

Shape legend: N detections per frame with ``track_id`` (N,) int32 (-1 = no confirmed track); points are
(x, y) in source-image pixels, y pointing down; a line is two points, a zone a polygon of >= 3 points;
times are seconds on the frames' clock.

Direction, defined once: stand at the line's ``start`` and face its ``end``; **in** is a crossing from
your left to your right. On the image (y down) that is the side where ``(end - start) x (p - start) > 0``.
A line drawn bottom to top (start below end) therefore counts walking right as ``in``. Zones count
``enter`` and ``exit``.

What counts (each rule answers a way the common counters go wrong):

- **Dead band.** The judged point (the anchor, or every corner of the box with ``trigger="box"``) must
  reach ``margin`` pixels beyond the line on the new side, where ``margin = max(margin_px, margin_rel *
  box height)``. Inside the band nothing changes, so a person standing on the line or walking along it,
  whose feet wander a few pixels to and fro, never counts. Zones use the same band around the polygon's
  edge (inside by ``margin`` to be in, outside by ``margin`` to be out).
- **The segment, not the infinite line.** The path from the last position beyond the band on the old
  side to the first beyond it on the new side must cut the segment itself.
- **Interpolated.** That path is a straight line between processed frames however far apart they are,
  so an object that jumps over the band between two low-rate frames counts once; the event carries the
  interpolated frame and time at which the point passed the band's far edge, i.e. left the line behind
  (``crossed_frame``, ``crossed_s``).
- **Touch and return.** A crossing undone by crossing back within ``return_s`` seconds counts neither
  way. Events are therefore reported once ``return_s`` has passed since the crossing (or at
  :meth:`flush`, at the end of a stream); with ``return_s = 0`` they are reported at once. With
  ``keep_complete`` (lines' default) a crossing whose point got ``commit`` pixels past the line (see
  "Commit"; past it, not only along it) is not undone: it is reported when the return is made, and the
  return is a crossing of its own. Someone who walked half a body past a line and came back two seconds
  later crossed it twice; someone walking along a line, feet a little to either side, still counts
  nothing.
- **Commit.** A crossing is complete once the point has got ``commit`` pixels beyond the line on the new
  side, or ``commit`` away from where it crossed (walking on along a slanted line or a zone's edge), where
  ``commit = max(margin, commit_rel * box height)``; for a zone, at most half the depth of its deepest
  point, so that a small zone can be entered at all. Until then a return undoes it however long it took:
  a man who steps over the line and stands there talking for a minute before stepping back counted
  nothing. A crossing not complete is still reported once its track has not been seen for ``return_s``
  (it went out of view past the line). One still not complete, with its track seen within ``return_s``,
  when the stream ends or the scene cuts (:meth:`flush`, :meth:`reset_tracks`) is dropped: nothing shows
  the person went on rather than back (a box cut short by a passing car, someone caught mid-step by
  the end of a clip). ``commit_rel = 0`` turns this off.
- **Settling.** A new track's first box is not always where its feet are: someone coming out from
  behind a van or a crowd is first seen with their legs hidden, and their box grows down to the ground
  over the next frames. While a track first seen mid-picture is young, its side is taken again, without a
  crossing, on every observation whose box height differs from the previous one's by more than
  ``settle_ratio`` times; the first observation within that ratio ends its youth. A track that came in
  through the picture's border, or took over a gone track's side (stitching), is not young.
- **Partial views.** A box less than ``1 / max_shrink`` as tall as the same track's previous box (a walker
  behind a post or a parked car, whose box loses the legs for a frame) does not put the anchor where the
  feet are: that observation is not used. A box the detector itself is unsure of (scoring below
  ``low_score``, typically someone half hidden) is held to the tighter ``max_shrink_low``. Only once in a
  row: the next box is compared with it, so someone who stays half hidden, or sits down, is followed again
  from the next frame on. Not at the picture's border, where boxes are cut anyway (see ``edge_px``).
- **Hysteresis** (optional): the new side must also be seen on ``hysteresis_frames`` consecutive
  processed frames.
- Only confirmed tracks count; id -1 (no track) never does. A tentative track (id ``-2 - k``, see
  :class:`~edge_runtime.vision.tracking.ByteTracker`) is followed from its first sighting under key
  ``k``, so a crossing made before the tracker confirmed it (a person stepping in from the frame's edge,
  a board processing 2 frames a second) counts once the track is confirmed as ``k``, and never if it is
  not. State is per track id (the tracker never reuses an id); a track's class is the majority class of
  its detections; counts are per class.
- **The picture's border** (lines; needs ``frame_size``): a track first seen with its box at the left, right or
  bottom border came in through it, and its path starts there, at the processed frame before (it stepped in
  since); one gone while its box touched a border left through it. At a low processed rate the border reaches
  as far as a walk in the seconds between two processed frames (``edge_rel``). A track first seen mid-picture
  whose start is led back to the left or right border by confident boxes the tracker gave no track (or a
  tentative track it has dropped since) came in there too (``backtrack_s``): the tracker may start someone
  stepping in only a few steps in, already past a line near the edge.
- **Stitching** (``stitch_s`` > 0; needs ``frame_size``): a person who walks behind someone standing on
  the line may lose their track on one side and come back as a new track on the other, first seen in
  the middle of the picture, with no known origin. A confirmed track gone mid-picture (its box off the
  picture's border) on a known side is remembered for ``stitch_s`` seconds. A new track first seen
  mid-picture, out of the band on the other side (or first seen in the band, where it first leaves the
  band, if the tracker has not confirmed it by then), within ``stitch_s`` and near where the gone one was
  last seen (at most ``0.5 + stitch_rel x seconds between the two sightings`` box heights, the box
  height being the mean of the two boxes'), and, when appearance vectors are given, no further than
  ``stitch_appearance`` in colour, takes over the gone track's side: its path starts where the gone
  track was last seen. So the walk counts once, as one crossing of the new track, at the frame
  interpolated between the two sightings, only if that path cuts the segment; the new track crossing
  back within ``return_s`` undoes it. A complete crossing the gone track made itself stays its own (it is
  not undone by the new track's: that is more often someone else than the same person turning back
  unseen). On a line, one not yet complete (see "Commit") passes to the new track with the side: walking
  back undoes it, as it would have on the gone track, and walking on completes it, so a man standing just
  over a line whose track breaks and who walks back the way he came counts nothing. Zones keep such a
  crossing with the gone track: a walker cutting through a small zone is often lost inside it.
  The decision is made when the tracker confirms the new track (a tentative box that is dropped uses up
  nothing); each gone track is taken over at most once, likeliest pairs first. A pair's likelihood is that of
  a walk spread evenly in every direction as far as the reach for the seconds between the two sightings: the
  distance ``z`` in reaches scores ``z^2 / 2 + 2 ln(reach)``, the smallest first, so a track gone longer ago
  must be found nearer in proportion (at equal times, the nearest pair is the likeliest). A gone track seen
  again before that is not taken over; one seen again after it carries on from where it is then seen, with
  no origin, so a walk never counts twice.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from ..errors import ConfigError, InputError
from .appearance import DIM as APPEARANCE_DIM
from .appearance import appearance_distance, has_appearance, normalise_bands
from .detections import Detections

__all__ = [
    "Direction",
    "CountEvent",
    "LineCounter",
    "ZoneCounter",
    "count_by_class",
    "ANCHORS",
    "TRIGGERS",
]

ANCHORS = ("bottom_center", "center")
TRIGGERS = ("anchor", "box")
Point = Tuple[float, float]


class Direction(str, enum.Enum):
    """What a :class:`CountEvent` records."""

    IN = "in"  # line crossed from its left to its right (facing from start to end)
    OUT = "out"  # the other way
    ENTER = "enter"  # zone entered
    EXIT = "exit"  # zone left


@dataclass(frozen=True)
class CountEvent:
    """One counted crossing, entry or exit.

    Attributes:
        frame_index: the frame on which the event was reported (``return_s`` after the crossing).
        timestamp_s: that frame's time in seconds, if the caller gave one.
        track_id: the confirmed track's id.
        class_id: the track's majority class.
        direction: in / out for lines, enter / exit for zones.
        name: the line's or zone's name.
        crossed_frame: the (interpolated) frame at which the object crossed; = frame_index if not known.
        crossed_s: the (interpolated) time at which it crossed, if the caller gave times.
    """

    frame_index: int
    timestamp_s: Optional[float]
    track_id: int
    class_id: int
    direction: Direction
    name: str
    crossed_frame: Optional[int] = None
    crossed_s: Optional[float] = None

    def as_row(self) -> Tuple[int, Optional[float], int, int, str, str]:
        """Plain Python values (frame, time, track, class, direction, name) for SQLite / JSON."""
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


def _number(where: str, key: str, value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise ConfigError(f"{where}: {key} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


@dataclass
class _Pending:
    """A crossing waiting out ``return_s``, and to complete (``commit``), before it is reported."""

    direction: Direction
    crossed_frame: int
    crossed_s: float
    due_s: float
    committed: bool = False  # the point got ``commit`` beyond the line on the new side, or that far from ``at``
    at: Point = (0.0, 0.0)  # where the point was when the crossing was made
    deep: bool = False  # the point got ``commit`` beyond the line itself (not only along it): kept (keep_complete)


# Defaults of both counters: a crossing is complete once the point is this many box heights beyond the line or
# from where it crossed. Chosen on the "tune" half with ``python -m benchmarks.tune_counting --part commit``: event F1
# 0.887 -> 0.902 (39 -> 27 false events, none missed more), the same from 0.35 to 0.75 (0.5 is the middle); pairs
# meeting the target 19 -> 18 (the lamp zone at stride 1: a false entry/exit pair had offset two misses).
COMMIT_REL = 0.5
# Chosen on the "tune" half (``python -m benchmarks.tune_counting --part settle``, both detectors): on the fp32
# detector's boxes every ratio from 1.1 up counts as without the rule (1.05 loses a true event); on the int8
# detector's, 1.1-1.25 drop the one false crossing of the cyclist at the kerb at stride 2, whose track starts
# while a van hides his legs. The largest of those.
SETTLE_RATIO = 1.25
# Chosen on the "tune" half (replays of both detectors at strides 1-4): on the fp32 detector's boxes every ratio
# from 1.3 to 1.8 counts as without the rule; on the int8 detector's, 1.45-1.7 give the same events (4 false
# and 19 missed, against 6 and 21 without the rule: a woman passing behind the lamp post, whose box loses her
# legs for one frame, no longer undoes her entry into the lamp zone at stride 4). The middle of that range.
MAX_SHRINK = 1.6
# The same for boxes scoring below low_score (the tracker's high_score), chosen after MAX_SHRINK on the "tune" half
# with ``python -m benchmarks.tune_counting --part shrink_low --irregular 4`` (both detectors), ranked by pooled
# event F1 first: 1.45 has the fewest false events (88 over both detectors, against 92 at 1.6 and 96 with no check
# for them) with as many true ones, and meets one more (item, stride) pair than 1.6 (the int8 lamp zone at
# irregular gaps). At fixed strides alone, 1.45 and up count as 1.6 does.
MAX_SHRINK_LOW = 1.45
LOW_SCORE = 0.3  # the tracker's default high_score (tests/test_config.py holds them equal)
# Whether a crossing whose point got the commit distance past the line is kept against a return within return_s.
# Chosen on the "tune" half with ``python -m benchmarks.tune_counting --part keep`` (both detectors): lines count
# the same either way there (no tune line has such a crossing followed by a quick return); zones lose events with
# it (the lamp zone, whose small depth a corner cut reaches: more false entry/exit pairs than true quick visits).
# The tune half cannot tell for lines; they keep them by the definition: a walker who got half a body past a line
# passed it.
LINE_KEEP_COMPLETE = True
ZONE_KEEP_COMPLETE = False
# Stitching: how far a new track may be from where a gone one was last seen with no time between them, in
# box heights (a half-hidden person's box shifts by about this much as the occluder cuts it).
STITCH_SLACK_REL = 0.5
# How long a gone track may be continued (stitch_s, both counters) and the colour gate (off), chosen on the "tune"
# half of the by-eye truth with ``python -m benchmarks.tune_counting --part stitch``: 19 of 24 (item, stride) pairs
# meeting the counting target (event F1 0.863) against 17 (0.860) without stitching. The colour gate did not help
# there, so it is off.
STITCH_S = 3.0
STITCH_APPEARANCE = 1.0
# How far a new track may be first seen from where a gone one was last seen: lines re-chosen after the tracker's
# later changes with ``python -m benchmarks.tune_counting --part line_stitch --irregular 4`` (both detectors): a
# walker hidden for a second behind a group standing on the line comes out about a box height further on, past
# the reach of 0.5 per second. Zones keep 0.5: with 0.75 for zones too, the lamp zone (small, with people
# standing in it) met its target on two fewer (item, stride) pairs of the tune half.
LINE_STITCH_REL = 0.75
ZONE_STITCH_REL = 0.5
# Of the gone tracks a new one may continue, the likeliest is taken (see the module docstring), not the nearest in
# box heights. Compared on the "tune" half (strides 1-4 and 4 irregular seeds, both detectors): with the fp32
# detector's boxes 336 true, 5 false and 8 missed events at fixed strides (nearest: 335, 6, 9) and 986, 20, 46 at
# irregular gaps (985, 21, 47); with the int8 detector's, the same events. At `walkway`, every 3rd frame, the
# long-coated man who walks left behind the men at the lamp post is continued from the track that followed him
# until 1.2 s before, not from his earlier one, lost 2.1 s before on a box merged with his neighbours' and 0.4 box
# heights nearer, and his crossing is timed f57, as seen, not f49.
_STITCH_MAX_STEPS = 64  # observations of an unconfirmed new track kept for its stitch (the tracker confirms in a few)
# Lines: how far back the confident boxes the tracker gave no track may lead a track first seen mid-picture to the
# picture's left or right border (see LineCounter's backtrack_s). Chosen on the "tune" half with ``python -m
# benchmarks.tune_counting --part backtrack --irregular 4``, both detectors, event F1 first: over the fp32 and int8
# detectors' boxes 1.5 s gives 2593 true, 70 false and 159 missed events against 2583, 69 and 169 without it (1.0:
# 2591, 70, 161; 2.0 as 1.5; 3.0: 2594, 72, 158), all at `right_edge`, where people step in behind one another.
# Checked again once chains also led through dropped tentative tracks and border entries were timed from the frame
# before: 1.5 s gives 2619, 60, 133 and meets 189 of 192 (item, stride) pairs; off: 2597, 60, 155 and 187; 2.0 and
# 3.0 differ by one or two events (2620, 60, 132; 2621, 61, 131).
BACKTRACK_S = 1.5
_REACH_STEP_S = 0.1  # the border's reach grows by edge_rel box heights per this many seconds between processed frames
_LINK_RATIO = 1.5  # how much taller one box of such a chain may be than the next (boxes at the border are cut)
_LOOK_EMA = 0.9  # weight of a track's running appearance against a new detection's (as the tracker's)

_Step = Tuple[int, float, Point, int, int, float, Optional[Point], float, float]
# side, d, p, class, frame, now, edge, margin, commit
_Loose = Tuple[Point, float, Optional[Point], float, int, float, float, int]
# a box without a confirmed track: anchor, height, the border point (None: not at the left or right border), margin,
# side, d, commit, its tentative track's key (-1: untracked)


@dataclass
class _Birth:
    """A track first seen mid-picture, out of the band: where, and its observations until it is confirmed."""

    p: Point
    side: int
    height: float
    s: float
    steps: List[_Step] = field(default_factory=list)


@dataclass
class _TrackState:
    """What a counter remembers of one track."""

    side: int  # committed side: +1 / -1 (line: in side / out side; zone: inside / outside), 0 = not yet known
    last_seen_s: float
    before: Point = (0.0, 0.0)  # last position beyond the band on the committed side
    after: Point = (0.0, 0.0)  # first position beyond the band on the candidate side
    candidate: int = 0
    streak: int = 0
    prev_d: float = 0.0  # the anchor's signed distance on the previous observation
    prev_frame: int = 0
    prev_s: float = 0.0
    pending: Optional[_Pending] = None
    undone: Optional[_Pending] = None  # the last crossing undone by a return, while within return_s
    confirmed: bool = False
    edge: Optional[Point] = None  # the anchor projected onto the picture's border its last box touched
    edge_margin: float = 0.0  # the dead band of that last box
    votes: Dict[int, int] = field(default_factory=dict)
    class_id: int = -1
    # Stitching only:
    last_p: Point = (0.0, 0.0)  # the anchor when last seen
    last_h: float = 0.0  # the box height when last seen
    at_border: bool = False  # the box touched the picture's border when last seen
    look: Optional[np.ndarray] = None  # running appearance vector
    birth: Optional[_Birth] = None  # set while a stitch to a gone track is still to be decided
    unborn: bool = False  # first seen mid-picture in the band: its birth is recorded when it leaves the band
    young: bool = True  # its box height has not yet held within settle_ratio between two observations
    prev_h: float = 0.0  # the box height on the previous observation
    shrunk: bool = False  # the previous observation was a partial view, not used (see max_shrink)
    absorbed: bool = False  # a stitched track continued this one's state

    def vote(self, class_id: int) -> int:
        self.votes[class_id] = self.votes.get(class_id, 0) + 1
        if self.class_id < 0 or self.votes[class_id] > self.votes[self.class_id]:
            self.class_id = class_id
        return self.class_id


def _anchor_point(box: List[float], anchor: str) -> Point:
    """The anchor of one (x1, y1, x2, y2) box: its bottom centre (the feet of a walking person) or centre."""
    x1, y1, x2, y2 = box
    return 0.5 * (x1 + x2), (y2 if anchor == "bottom_center" else 0.5 * (y1 + y2))


def _add(counts: Dict[int, int], class_id: int) -> None:
    counts[class_id] = counts.get(class_id, 0) + 1


class _SideCounter:
    """Per-track side state with a dead band, touch-and-return and optional hysteresis.

    Subclasses give each detection a signed distance (pixels, > 0 on the in / inside side) and say
    whether a side change counts and in which direction. The defaults (band 0.05 of the box height,
    3 s to return over a line, 1 s into / out of a zone) were chosen on the "tune" half of the by-eye
    truth (``benchmarks/tune_counting.py``).
    """

    _kind = "counter"
    # Whether a stitched track carries on the gone track's crossing not yet complete (see the module docstring).
    _carry_unfinished = False

    def __init__(self, name: str, *, anchor: str, margin_rel: float, margin_px: float, return_s: float,
                 hysteresis_frames: int, forget_s: float, classes: Optional[Sequence[int]],
                 nominal_fps: float, edge_px: float = 4.0, edge_rel: float = 0.2, stitch_s: float = STITCH_S,
                 stitch_rel: float = LINE_STITCH_REL, stitch_appearance: float = STITCH_APPEARANCE,
                 commit_rel: float = COMMIT_REL, settle_ratio: float = SETTLE_RATIO,
                 max_shrink: float = MAX_SHRINK, keep_complete: bool = False,
                 max_shrink_low: float = MAX_SHRINK_LOW, low_score: float = LOW_SCORE,
                 backtrack_s: float = 0.0) -> None:
        where = f"{type(self).__name__}"
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: name must be a non-empty string, got {name!r}")
        where = f"{where} {name!r}"
        if anchor not in ANCHORS:
            raise ConfigError(f"{where}: anchor must be one of {ANCHORS}, got {anchor!r}")
        if isinstance(hysteresis_frames, bool) or not isinstance(hysteresis_frames, (int, np.integer)) \
                or hysteresis_frames < 1:
            raise ConfigError(f"{where}: hysteresis_frames must be an integer >= 1, got {hysteresis_frames!r}")
        self.name = name
        self.anchor = anchor
        self.margin_rel = _number(where, "margin_rel", margin_rel, 0.0, 10.0)
        self.margin_px = _number(where, "margin_px", margin_px, 0.0, 1e5)
        self.return_s = _number(where, "return_s", return_s, 0.0, 3600.0)
        self.commit_rel = _number(where, "commit_rel", commit_rel, 0.0, 100.0)
        self.settle_ratio = _number(where, "settle_ratio", settle_ratio, 0.0, 100.0)
        if 0.0 < self.settle_ratio < 1.0:
            raise ConfigError(f"{where}: settle_ratio must be 0 (off) or >= 1, got {settle_ratio!r}")
        self.max_shrink = _number(where, "max_shrink", max_shrink, 0.0, 100.0)
        if 0.0 < self.max_shrink < 1.0:
            raise ConfigError(f"{where}: max_shrink must be 0 (off) or >= 1, got {max_shrink!r}")
        self.max_shrink_low = _number(where, "max_shrink_low", max_shrink_low, 0.0, 100.0)
        if 0.0 < self.max_shrink_low < 1.0:
            raise ConfigError(f"{where}: max_shrink_low must be 0 (off) or >= 1, got {max_shrink_low!r}")
        self.low_score = _number(where, "low_score", low_score, 0.0, 1.0)
        self.forget_s = _number(where, "forget_s", forget_s, 0.0, 1e7)
        self.nominal_fps = _number(where, "nominal_fps", nominal_fps, 1e-3, 1e4)
        self.edge_px = _number(where, "edge_px", edge_px, 0.0, 1e4)
        self.edge_rel = _number(where, "edge_rel", edge_rel, 0.0, 100.0)
        self.stitch_s = _number(where, "stitch_s", stitch_s, 0.0, 60.0)
        self.stitch_rel = _number(where, "stitch_rel", stitch_rel, 0.0, 100.0)
        self.stitch_appearance = _number(where, "stitch_appearance", stitch_appearance, 0.0, 1.0)
        self.backtrack_s = _number(where, "backtrack_s", backtrack_s, 0.0, 60.0)
        # (frame, time, boxes, (frame, time) of the processed frame before) of the confident boxes without a
        # confirmed track, per processed frame of the last backtrack_s (lines only: see _entry_of)
        self._loose: List[Tuple[int, float, List[_Loose], Tuple[int, float]]] = []
        self.hysteresis_frames = int(hysteresis_frames)
        if not isinstance(keep_complete, (bool, np.bool_)):
            raise ConfigError(f"{where}: keep_complete must be true or false, got {keep_complete!r}")
        self.keep_complete = bool(keep_complete)
        if classes is not None:
            try:
                classes = frozenset(int(c) for c in classes)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: classes must be a list of class ids, got {classes!r}") from None
        self.classes: Optional[frozenset] = classes
        self._tracks: Dict[int, _TrackState] = {}
        self._pending: Dict[int, _TrackState] = {}
        self._frame = -1
        self._now_s = 0.0
        self._after_cut = False  # the next frame follows a scene cut: no gap to the frame before it
        self._since: Tuple[int, float] = (0, 0.0)  # (frame, time) of the processed frame before this one (or this)
        self._keys_now: Set[int] = set()  # the track keys seen on this frame
        self._next_prune_s = 0.0

    # --- what subclasses provide -------------------------------------------------------------------

    def _distance_lists(self, boxes: List[List[float]], anchors: List[Point]) -> Tuple[List[float], List[float]]:
        """For K boxes (x1, y1, x2, y2) and their anchors: the K signed distances that decide the side, and the
        K signed distances of the anchors themselves."""
        raise NotImplementedError

    def _direction(self, st: _TrackState, new_side: int) -> Optional[Direction]:
        """A side change passed the band (and hysteresis): its direction, or None if it doesn't count."""
        raise NotImplementedError

    def _tally(self, direction: Direction, class_id: int) -> None:
        raise NotImplementedError

    # --- the state machine -------------------------------------------------------------------------

    # Lines treat a box touching the picture's border as an object passing through that border (see
    # LineCounter); zones do not (someone first seen inside a zone at the border is not an entry).
    _edges = False

    def _observe(self, detections: Detections, frame_index: Optional[int], timestamp_s: Optional[float],
                 frame_size: Optional[Tuple[int, int]] = None, appearance: Optional[np.ndarray] = None
                 ) -> Tuple[List[CountEvent], List[int]]:
        name = type(self).__name__
        if not isinstance(detections, Detections):
            raise InputError(f"{name}.update: expected Detections, got {type(detections).__name__}")
        if detections.track_id is None:
            raise InputError(f"{name}.update: detections are not tracked (track_id is None); "
                             "run them through a tracker first")
        if appearance is not None:
            appearance = np.asarray(appearance, np.float32)
            if appearance.shape != (len(detections), APPEARANCE_DIM):
                raise InputError(f"{name}.update: appearance must be ({len(detections)}, {APPEARANCE_DIM}) float32 "
                                 f"(one vector per detection), got shape {appearance.shape}")
        if frame_index is None:
            frame_index = self._frame + 1
        elif int(frame_index) <= self._frame:
            raise InputError(f"{name}.update: frame_index must increase, got {frame_index} after {self._frame}")
        frame = int(frame_index)
        now = float(timestamp_s) if timestamp_s is not None else frame / self.nominal_fps
        if not math.isfinite(now):
            raise InputError(f"{name}.update: timestamp_s must be finite, got {timestamp_s!r}")
        # Seconds since the processed frame before, for the border's reach; the first frame of a stream or of a
        # new scene has no frame before it to have walked from.
        fresh = self._frame < 0 or self._after_cut
        gap_s = 0.0 if fresh else now - self._now_s
        # When someone first seen at the border on this frame may have stepped in: since the frame before.
        self._since = (frame, now) if fresh else (self._frame, self._now_s)
        self._after_cut = False
        self._frame, self._now_s, self._has_time = frame, now, timestamp_s is not None
        if frame_size is not None and frame_size != self._checked_size:
            width, height = frame_size
            if self.margin_px >= max(width, height):
                raise ConfigError(f"{name} {self.name!r}: margin_px {self.margin_px:g} is not smaller than the "
                                  f"{width}x{height} picture; expected a band of a few pixels (or margin_rel)")
            self._checked_size = frame_size
        # The few tracked boxes of a frame are handled as Python numbers: a dozen NumPy calls on arrays this small
        # cost more than the arithmetic, most of all right after the detector has evicted the CPU's caches.
        all_ids = detections.track_id.tolist()
        tracked = [k for k, t in enumerate(all_ids) if t != -1]
        raw_ids = [all_ids[k] for k in tracked]
        id_list = [t if t >= 0 else -2 - t for t in raw_ids]  # tentative -2 - k -> key k
        self._keys_now = set(id_list)
        if len(self._keys_now) != len(id_list):
            raise InputError(f"{name}.update: a track id occurs twice in one frame: {raw_ids}")
        events: List[CountEvent] = []
        stitching = self.stitch_s > 0 and frame_size is not None
        confirming: List[int] = []  # new tracks confirmed on this frame whose stitch is to be decided
        all_boxes: Optional[List[List[float]]] = None  # the frame's boxes and scores as Python numbers, made once
        all_scores: Optional[List[float]] = None
        if tracked:
            all_boxes, all_classes = detections.xyxy.tolist(), detections.class_id.tolist()
            boxes = [all_boxes[k] for k in tracked]
            classes = [all_classes[k] for k in tracked]
            all_scores = detections.score.tolist()
            scores = [all_scores[k] for k in tracked]
            anchors, anchor_d, heights, margins, commits, sides = self._judge(boxes)
            touching = self._border_flags(boxes, frame_size, gap_s) if frame_size else None
            edge_list = [self._edge_point(p, t, frame_size) for p, t in zip(anchors, touching)] \
                if self._edges and touching else None
            border = [any(t) for t in touching] if stitching and touching else None
            looks = appearance[tracked] if stitching and appearance is not None and self.stitch_appearance < 1 \
                else None
            seen_look = has_appearance(looks).tolist() if looks is not None else None
            blend: List[Tuple[_TrackState, int]] = []  # running looks to blend with this frame's, after the loop
            for k, (tid, raw_id, side, d, p, class_id, margin, commit, height) in enumerate(zip(
                    id_list, raw_ids, sides, anchor_d, anchors, classes, margins, commits, heights)):
                confirmed = raw_id >= 0
                edge = None if edge_list is None else edge_list[k]
                if edge is None and self._loose and tid not in self._tracks:
                    self._enter_from_loose(tid, p, height, class_id)
                if border is not None:  # stitching: note a new track's birth; hold its confirmation until decided
                    confirmed = self._note_birth(tid, confirmed, border[k], height,
                                                 (side, d, p, class_id, frame, now, edge, margin, commit),
                                                 confirming)
                st = self._tracks.get(tid)
                limit = self.max_shrink_low if scores[k] < self.low_score else self.max_shrink
                if st is not None and edge is None and limit > 0.0 and not st.shrunk and height * limit < st.prev_h:
                    st.last_seen_s, st.prev_h, st.shrunk = now, height, True  # a partial view: not used
                    continue
                if st is not None:
                    st.shrunk = False
                if st is not None and st.young:
                    self._settle(st, edge is not None, height, p)
                self._step(tid, confirmed, side, d, p, class_id, frame, now, events, edge, margin, commit)
                self._tracks[tid].prev_h = height
                if border is not None:
                    st = self._tracks[tid]
                    st.last_p, st.last_h, st.at_border = p, height, border[k]
                    if seen_look is not None and seen_look[k]:
                        if st.look is None:
                            st.look = looks[k].copy()
                        else:
                            blend.append((st, k))
            if blend:  # one array operation for every track's running look
                rows = [k for _, k in blend]
                mixed = normalise_bands(_LOOK_EMA * np.stack([st.look for st, _ in blend])
                                        + (1.0 - _LOOK_EMA) * looks[rows])
                for (st, _), look in zip(blend, mixed):
                    st.look = look
        if confirming:
            self._stitch(confirming)
        if self._edges and frame_size:
            seen = set(id_list)
            for tid, st in list(self._tracks.items()):
                if st.edge is not None and tid not in seen:  # gone while touching the border: it left there
                    self._leave_at_edge(tid, st, frame, now, events)
        if self._edges and self.backtrack_s > 0.0:
            self._note_loose(detections, all_ids, all_boxes, all_scores, frame, now, frame_size, gap_s)
        events.extend(self._due(frame, now))
        if now >= self._next_prune_s:  # bounded memory: forget tracks unseen for forget_s
            self._next_prune_s = now + max(self.forget_s / 8, 1.0)
            stale = [t for t, st in self._tracks.items() if now - st.last_seen_s > self.forget_s]
            for t in stale:
                if self._tracks[t].pending is not None and self._tracks[t].confirmed:
                    events.extend(self._report(t, self._tracks[t], frame, now))
                self._pending.pop(t, None)
                del self._tracks[t]
        return events, [t for t, raw_id in zip(id_list, raw_ids) if raw_id >= 0]

    def _note_loose(self, detections: Detections, all_ids: List[int], all_boxes: Optional[List[List[float]]],
                    scores: Optional[List[float]], frame: int, now: float, frame_size: Optional[Tuple[int, int]],
                    gap_s: float) -> None:
        """Remember this frame's confident boxes without a confirmed track (for backtrack_s; see
        :meth:`_entry_of`). ``all_boxes`` / ``scores``: the frame's boxes and scores as lists, if already made."""
        self._loose = [r for r in self._loose if now - r[1] <= self.backtrack_s]
        if scores is None:
            scores = detections.score.tolist()
        # Untracked boxes, and tentative tracks' (the tracker drops one it leaves unmatched: see _alive)
        loose = [k for k, t in enumerate(all_ids) if t < 0 and scores[k] >= self.low_score]
        if not loose or not frame_size:
            return
        if all_boxes is None:
            all_boxes = detections.xyxy.tolist()
        boxes = [all_boxes[k] for k in loose]
        items: List[_Loose] = []
        for k, p, d, height, margin, commit, side, touching in zip(
                loose, *self._judge(boxes), self._border_flags(boxes, frame_size, gap_s)):
            edge = self._edge_point(p, touching, frame_size) if touching[0] or touching[1] else None
            items.append((p, height, edge, margin, side, d, commit, -2 - all_ids[k] if all_ids[k] <= -2 else -1))
        self._loose.append((frame, now, items, self._since))

    def _judge(self, boxes: List[List[float]]) -> Tuple[List[Point], List[float], List[float], List[float],
                                                          List[float], List[int]]:
        """Per box: its anchor, the anchor's signed distance, the box height, the dead band, the commit distance
        and the side it is on (+1 / -1 beyond the band, 0 in it; judged by the trigger)."""
        anchors = [_anchor_point(b, self.anchor) for b in boxes]
        decide, anchor_d = self._distance_lists(boxes, anchors)
        heights = [b[3] - b[1] for b in boxes]
        margins = [max(self.margin_px, self.margin_rel * max(h, 0.0)) for h in heights]
        commits = [max(m, min(self.commit_rel * max(h, 0.0), self._commit_cap_px)) for m, h in zip(margins, heights)]
        sides = [1 if d > 0 and d >= m else -1 if d < 0 and d <= -m else 0 for d, m in zip(decide, margins)]
        return anchors, anchor_d, heights, margins, commits, sides

    def _entry_of(self, p: Point, height: float) -> List[Tuple[int, float, _Loose, Tuple[int, float]]]:
        """The boxes without a confirmed track that lead a track first seen now, mid-picture at ``p``, back to the
        picture's left or right border over the last ``backtrack_s``, earliest (at the border) first, as (frame,
        time, box, (frame, time) of the processed frame before it); empty if they lead nowhere near it.

        Someone stepping in at the border is half outside the picture, and the tracker may start their track
        only a few steps in, or start a tentative one on each of their first frames (a track with no velocity
        yet loses a walker at a few frames a second); at a few processed frames a second that is past a line near
        the border. Going back one processed frame at a time, the chain takes the nearest confident box (see
        ``low_score``) the tracker gave no track, or gave a tentative track that has been dropped since (see
        :meth:`_alive`), of a similar height (within ``_LINK_RATIO``) within the stitching reach
        (``STITCH_SLACK_REL`` plus ``stitch_rel`` box heights per second between the two); it ends at the first
        box at the border."""
        now = self._now_s
        link_p, link_h, link_s = p, height, now
        chain: List[Tuple[int, float, _Loose, Tuple[int, float]]] = []
        for frame_r, s_r, items, since_r in reversed(self._loose):
            if now - s_r > self.backtrack_s:
                break
            elapsed = link_s - s_r
            if elapsed <= 0.0:
                continue
            best = None
            for item in items:
                q, h_q = item[0], item[1]
                if item[7] >= 0 and self._alive(item[7]):
                    continue
                if h_q <= 0.0 or link_h <= 0.0 or max(h_q, link_h) > _LINK_RATIO * min(h_q, link_h):
                    continue
                distance = math.hypot(q[0] - link_p[0], q[1] - link_p[1])
                if distance <= (STITCH_SLACK_REL + self.stitch_rel * elapsed) * 0.5 * (h_q + link_h) and (
                        best is None or distance < best[0]):
                    best = (distance, item)
            if best is None:
                continue  # not seen on that frame: look further back
            item = best[1]
            chain.append((frame_r, s_r, item, since_r))
            link_p, link_h, link_s = item[0], item[1], s_r
            if item[2] is not None:
                return chain[::-1]
        return []

    def _alive(self, key: int) -> bool:
        """Whether tentative track ``key`` may still be someone: confirmed since, or seen on this frame (a
        tentative track the tracker left unmatched is dropped, so one not seen now was nobody's to keep)."""
        st = self._tracks.get(key)
        return key in self._keys_now or (st is not None and st.confirmed)

    def _enter_from_loose(self, tid: int, p: Point, height: float, class_id: int) -> None:
        """Start a new mid-picture track's state at the border it came in through, if boxes without a confirmed
        track lead there (see :meth:`_entry_of`): its path starts there, as for a track first seen at the border,
        and goes through those boxes (a crossing among them is the track's, counted once it is confirmed)."""
        chain = self._entry_of(p, height)
        if not chain:
            return
        frame, s, (_, _, edge, margin, _, _, _, _), since = chain[0]
        side, d = self._side_of(edge, margin)
        self._tracks[tid] = _TrackState(side=side, last_seen_s=s, before=edge, prev_d=d, prev_frame=since[0],
                                        prev_s=since[1], young=False)
        unreported: List[CountEvent] = []  # not confirmed while replayed: nothing is reported
        for frame, s, (q, _, _, margin, side, d, commit, _), _ in chain:
            self._step(tid, False, side, d, q, class_id, frame, s, unreported, None, margin, commit, vote=False)

    def _settle(self, st: _TrackState, at_edge: bool, height: float, p: Point) -> None:
        """Before a young track's observation is stepped: end its youth, or forget its side if its box height
        changed by more than ``settle_ratio`` since the previous observation (see "Settling")."""
        if self.settle_ratio <= 0.0 or at_edge:
            st.young = False
        elif st.prev_h > 0.0:
            if max(height, st.prev_h) > self.settle_ratio * max(min(height, st.prev_h), 1e-6):
                if st.pending is None and st.birth is None:
                    st.side, st.before, st.streak = 0, p, 0
            else:
                st.young = False

    def _edge_point(self, anchor: Point, touching: Tuple[bool, bool, bool, bool],
                    frame_size: Tuple[int, int]) -> Optional[Point]:
        """The anchor projected onto the border its box touches (None where it touches none), given which
        borders the box touches (see :meth:`_border_flags`)."""
        return None

    def _border_flags(self, boxes: List[List[float]], frame_size: Tuple[int, int], gap_s: float
                      ) -> List[Tuple[bool, bool, bool, bool]]:
        """For each box (x1, y1, x2, y2): whether it is within reach of the (left, right, top, bottom) border of
        the picture, ``gap_s`` seconds after the processed frame before.

        The reach is ``edge_px``, grown by ``edge_rel`` box heights per tenth of a second of ``gap_s`` beyond the
        first tenth (a person walks about that far between two processed frames; at most one box height: after a
        longer gap anyone could have come from anywhere). It is a walk in seconds, not in frames: every 2nd frame
        of a 25 fps camera is 0.08 s apart, no further than every frame of a 10 fps one. ``gap_s`` is 0 on the
        first frame of a stream or after :meth:`reset_tracks` (a scene cut): nobody walked there from a frame
        before it."""
        width, height = frame_size
        grow = min(self.edge_rel * max(gap_s / _REACH_STEP_S - 1.0, 0.0), 1.0)
        flags = []
        for x1, y1, x2, y2 in boxes:
            tol = self.edge_px + grow * max(y2 - y1, 0.0)
            flags.append((x1 <= tol, x2 >= width - tol, y1 <= tol, y2 >= height - tol))
        return flags

    def _note_birth(self, tid: int, confirmed: bool, at_border: bool, height: float, step: _Step,
                    confirming: List[int]) -> bool:
        """Before a track's observation is stepped: start the state of a new track first seen mid-picture out
        of the band with a birth record (a stitch to decide), keep its observations until the tracker confirms
        it (then list it in ``confirming``), and restart the side of an absorbed track seen again. Returns the
        confirmation to step with: held back while a birth is undecided."""
        side, d, p, _, frame, now, _, _, _ = step
        st = self._tracks.get(tid)
        if st is not None and st.absorbed:  # seen again after a new track took it over: carry on from here
            st.absorbed, st.side, st.before, st.streak, st.undone = False, side, p, 0, None
            st.prev_d, st.prev_frame, st.prev_s = d, frame, now
        elif st is None and not at_border and side != 0:
            st = self._tracks[tid] = _TrackState(side=side, last_seen_s=now, before=p, prev_d=d, prev_frame=frame,
                                                 prev_s=now, birth=_Birth(p, side, height, now))
        elif st is None and not at_border and step[6] is None:  # in the band: no side to stitch from yet
            st = self._tracks[tid] = _TrackState(side=0, last_seen_s=now, before=p, prev_d=d, prev_frame=frame,
                                                 prev_s=now, unborn=True)
            return confirmed
        elif st is not None and st.unborn:
            if st.confirmed or st.side != 0 or at_border:
                st.unborn = False
            elif side != 0:  # out of the band for the first time, still tentative: a birth there
                st.unborn, st.birth = False, _Birth(p, side, height, now)
        if st is None or st.birth is None:
            return confirmed
        if len(st.birth.steps) >= _STITCH_MAX_STEPS:  # not confirmed for this long: no stitch
            st.birth = None
            return confirmed
        st.birth.steps.append(step)
        if confirmed:
            confirming.append(tid)
        return False

    def _stitch(self, confirming: List[int]) -> None:
        """Decide the stitches of new tracks confirmed on this frame (see the module docstring), likeliest first.

        A stitched track's state is the gone track's side, path and class votes, and on a line its crossing not
        yet complete (other pending crossings stay the gone track's), advanced by the new track's observations
        since it was first seen; the gone track is marked absorbed. Every other new track keeps its own state."""
        pairs = []
        gone = [(tid, st) for tid, st in self._tracks.items()
                if st.confirmed and st.side != 0 and not st.at_border and not st.absorbed and st.birth is None]
        for new_tid in confirming:
            new = self._tracks[new_tid]
            birth = new.birth
            assert birth is not None
            for old_tid, old in gone:
                elapsed = birth.s - old.last_seen_s
                if not 0.0 < elapsed <= self.stitch_s or old.side != -birth.side:
                    continue  # seen since (or with) the new track, gone too long ago, or on the same side
                size = 0.5 * (old.last_h + birth.height)
                distance = math.hypot(birth.p[0] - old.last_p[0], birth.p[1] - old.last_p[1])
                reach = STITCH_SLACK_REL + self.stitch_rel * elapsed
                if size <= 0 or distance > reach * size:
                    continue
                if self.stitch_appearance < 1.0 and old.look is not None and new.look is not None \
                        and float(appearance_distance(old.look[None], new.look[None])[0, 0]) > self.stitch_appearance:
                    continue
                z = distance / (reach * size)  # in reaches
                # minus the log-density of a 2-D normal walk with spread `reach` (in box heights), less constants
                pairs.append((0.5 * z * z + 2.0 * math.log(reach), new_tid, old_tid))
        stitched: Dict[int, int] = {}
        used: set = set()
        for _, new_tid, old_tid in sorted(pairs):
            if new_tid not in stitched and old_tid not in used:
                stitched[new_tid] = old_tid
                used.add(old_tid)
        for new_tid in confirming:
            new = self._tracks[new_tid]
            birth, new.birth = new.birth, None
            assert birth is not None
            old_tid = stitched.get(new_tid)
            if old_tid is not None:
                old = self._tracks[old_tid]
                st = self._tracks[new_tid] = _TrackState(
                    side=old.side, last_seen_s=old.last_seen_s, before=old.before, after=old.after,
                    candidate=old.candidate, streak=old.streak, prev_d=old.prev_d, prev_frame=old.prev_frame,
                    prev_s=old.prev_s, votes=dict(old.votes), class_id=old.class_id, young=False)
                self._pending.pop(new_tid, None)
                old.absorbed = True
                if self._carry_unfinished and old.pending is not None and not old.pending.committed:
                    st.pending, old.pending = old.pending, None
                    self._pending.pop(old_tid, None)
                    self._pending[new_tid] = st
                replayed: List[CountEvent] = []  # unconfirmed while replayed: nothing is reported
                for side, d, p, class_id, frame, now, edge, margin, commit in birth.steps:
                    self._step(new_tid, False, side, d, p, class_id, frame, now, replayed, edge, margin, commit)
                st.last_p, st.last_h, st.at_border, st.look = new.last_p, new.last_h, new.at_border, new.look
                new = st
            new.confirmed = True

    def _side_of(self, point: Point, margin: float) -> Tuple[int, float]:
        d = float(self._distances_of_point(point))
        return (1 if d > 0 and d >= margin else -1 if d < 0 and d <= -margin else 0), d

    def _distances_of_point(self, point: Point) -> float:
        raise NotImplementedError

    def _leave_at_edge(self, tid: int, st: _TrackState, frame: int, now: float, events: List[CountEvent]) -> None:
        edge, st.edge = st.edge, None
        side, d = self._side_of(edge, st.edge_margin)
        self._step(tid, st.confirmed, side, d, edge, st.class_id, frame, now, events, None, st.edge_margin,
                   vote=False)

    def _step(self, tid: int, confirmed: bool, side: int, d: float, p: Point, class_id: int, frame: int,
              now: float, events: List[CountEvent], edge: Optional[Point] = None, margin: float = 0.0,
              commit: float = 0.0, vote: bool = True) -> None:
        st = self._tracks.get(tid)
        if st is None:  # first sight: learn the side (if out of the band), nothing to count yet
            if edge is not None:  # it came in through the picture's border: its path starts there
                edge_side, edge_d = self._side_of(edge, margin)
                st = self._tracks[tid] = _TrackState(side=edge_side, last_seen_s=now, before=edge, prev_d=edge_d,
                                                     prev_frame=self._since[0], prev_s=self._since[1], young=False)
            else:
                st = self._tracks[tid] = _TrackState(side=side, last_seen_s=now, before=p, prev_d=d,
                                                     prev_frame=frame, prev_s=now)
        st.edge, st.edge_margin = edge, margin
        prev_d, prev_frame, prev_s = st.prev_d, st.prev_frame, st.prev_s
        st.prev_d, st.prev_frame, st.prev_s, st.last_seen_s = d, frame, now, now
        st.confirmed = st.confirmed or confirmed
        if vote:
            st.vote(class_id)
        if side == 0:
            return  # in the band: no information; a hysteresis streak neither grows nor resets
        if st.side == 0:
            st.side, st.before = side, p  # first time out of the band: adopt that side
            return
        if side == st.side:
            st.before, st.streak = p, 0
            if st.pending is not None and not st.pending.committed and (
                    side * d >= commit or math.hypot(p[0] - st.pending.at[0], p[1] - st.pending.at[1])
                    >= commit):
                st.pending.committed = True
            if st.pending is not None and side * d >= commit:
                st.pending.deep = True
            return
        if st.streak == 0 or side != st.candidate:
            st.candidate, st.streak, st.after = side, 0, p
        st.streak += 1
        if st.streak < self.hysteresis_frames:
            return
        st.streak = 0
        if st.pending is not None and st.pending.deep and self.keep_complete and st.confirmed:
            events.extend(self._report(tid, st, frame, now))  # well past the line: kept, and the return counts too
        if st.pending is not None:  # back across within return_s: the earlier crossing is undone
            st.undone, st.pending = st.pending, None
            self._pending.pop(tid, None)
            st.side, st.before = side, p
            return
        direction = self._direction(st, side) if self._counts(st.class_id) else None
        st.side, st.before = side, p
        if direction is None:
            return
        # When the point passed the band's far edge, between the previous observation and this one: the
        # moment the line was left behind (for a walker a step after the line itself; for someone who
        # stood on the line, when they walked off it).
        target = side * margin
        w = 1.0 if prev_d == d else min(max((target - prev_d) / (d - prev_d), 0.0), 1.0)
        crossed_frame = int(round(prev_frame + w * (frame - prev_frame)))
        crossed_s = prev_s + w * (now - prev_s)
        undone, st.undone = st.undone, None
        if undone is not None and undone.direction is direction and crossed_s - undone.crossed_s <= self.return_s:
            # Over, back and over again within return_s (feet dithering at the edge): one crossing, at
            # the moment it first happened.
            crossed_frame, crossed_s = undone.crossed_frame, undone.crossed_s
        deep = side * d >= commit
        st.pending = _Pending(direction, crossed_frame, crossed_s, crossed_s + self.return_s, deep, p, deep)
        self._pending[tid] = st
        if self.return_s == 0.0 and st.confirmed and st.pending.committed:
            events.extend(self._report(tid, st, frame, now))

    def _gone(self, st: _TrackState, now: float) -> bool:
        """The track has not been seen for ``return_s`` (and not on this frame)."""
        return now > st.last_seen_s and now - st.last_seen_s >= self.return_s - 1e-9

    def _due(self, frame: int, now: float) -> List[CountEvent]:
        events: List[CountEvent] = []
        if self._pending:
            for tid in [t for t, st in self._pending.items()
                        if st.confirmed and st.pending is not None and st.pending.due_s <= now
                        and (st.pending.committed or self._gone(st, now))]:
                events.extend(self._report(tid, self._pending[tid], frame, now))
        return events

    def _report(self, tid: int, st: _TrackState, frame: int, now: float) -> List[CountEvent]:
        pending, st.pending = st.pending, None
        self._pending.pop(tid, None)
        if pending is None:
            return []
        self._tally(pending.direction, st.class_id)
        return [CountEvent(frame, now if self._has_time else None, tid, st.class_id, pending.direction, self.name,
                           pending.crossed_frame, pending.crossed_s if self._has_time else None)]

    def flush(self, frame_index: Optional[int] = None, timestamp_s: Optional[float] = None) -> List[CountEvent]:
        """Report every complete crossing of a confirmed track still waiting out ``return_s`` (call at the
        end of a stream), and drop the crossings not complete (see "Commit" in the module docstring). The
        events carry ``frame_index`` / ``timestamp_s`` (default: the last frame fed)."""
        if self._frame < 0:
            return []
        frame = self._frame if frame_index is None else int(frame_index)
        now = self._now_s if timestamp_s is None else float(timestamp_s)
        events: List[CountEvent] = []
        for tid in list(self._pending):
            st = self._pending[tid]
            if st.confirmed and st.pending is not None and st.pending.committed:
                events.extend(self._report(tid, st, frame, now))
            else:
                st.pending = None
                del self._pending[tid]
        return events

    def reset_tracks(self, frame_index: Optional[int] = None, timestamp_s: Optional[float] = None
                     ) -> List[CountEvent]:
        """Forget every track's state (after a scene cut: positions before it mean nothing after it).

        Complete crossings of confirmed tracks still waiting out ``return_s`` are reported now, as of
        ``frame_index`` / ``timestamp_s``, and crossings not complete are dropped (see :meth:`flush`);
        totals are kept.
        """
        events = self.flush(frame_index, timestamp_s)
        self._tracks.clear()
        self._pending.clear()
        self._loose.clear()
        self._after_cut = True
        return events

    _has_time = False
    _commit_cap_px = math.inf  # the commit distance never exceeds this (a zone: half its deepest point's depth)
    _checked_size: Optional[Tuple[int, int]] = None

    def _counts(self, class_id: int) -> bool:
        return self.classes is None or class_id in self.classes

    @property
    def num_tracks(self) -> int:
        """Tracks whose state is held (seen within forget_s)."""
        return len(self._tracks)

    @property
    def num_pending(self) -> int:
        """Crossings accepted but not yet reported (waiting out return_s, or to complete)."""
        return len(self._pending)


class LineCounter(_SideCounter):
    """Count confirmed tracks crossing a line segment, per direction and class.

    ``in``: facing from ``start`` to ``end``, a crossing from your left to your right (see the module
    docstring). For a line drawn upwards on the image, ``in`` is walking right.

    Args:
        name: the line's name (goes into events).
        start, end: the segment's end points (x, y) in pixels.
        trigger: 'anchor' (the anchor point must pass the band) or 'box' (every corner of the box must,
            as supervision's LineZone; then an object straddling the line is in the band).
        anchor: the point that must cross, and whose path must cut the segment: 'bottom_center' (feet)
            or 'center'.
        margin_rel: the dead band's half-width as a fraction of the box height.
        margin_px: a minimum half-width in pixels (the band is the larger of the two).
        return_s: a crossing undone within this many seconds counts neither way; events are reported
            this long after the crossing.
        commit_rel: a crossing is complete once the point is this many box heights beyond the line or from
            where it crossed (see "Commit" in the module docstring); until then a return undoes it.
        keep_complete: a crossing whose point got the ``commit`` distance past the line (not only along it)
            is not undone by a return within ``return_s``; the return is a crossing of its own (see "Touch
            and return"). False: a return within ``return_s`` undoes any crossing.
        settle_ratio: a young track's side is taken again, without a crossing, while its box height changes
            by more than this factor between observations (see "Settling"; >= 1, 0 = off).
        max_shrink: an observation whose box is more than this many times shorter than the track's previous
            one is not used, once in a row (see "Partial views"; >= 1, 0 = off).
        max_shrink_low, low_score: the same for a box scoring below ``low_score`` (the tracker's
            ``high_score``: a box the detector is unsure of, most often someone half hidden).
        hysteresis_frames: processed frames the new side must also be seen on, in a row (1 = no extra
            condition).
        forget_s: state of a track unseen for this long is dropped (memory bound).
        classes: count only tracks whose majority class is one of these (None = all).
        nominal_fps: the clock used when ``update`` is given no timestamps (frame index / fps).
        edge_px: with ``frame_size`` given to :meth:`update`, a box within this many pixels of the
            picture's border touches it. A track first seen touching a border came in through it (its
            path starts at the border, at the processed frame before: it stepped in since), and a track gone
            while its box touched a border left through it: a line near the edge of the picture counts people
            walking in and out of view, whose clipped boxes never carry the anchor far past the line. The left,
            right and bottom borders only: a box touching the top has its head there and its anchor well below.
        backtrack_s: with ``frame_size`` given, a track first seen mid-picture whose start is led back to the
            picture's left or right border by confident boxes (scoring at least ``low_score``) that the tracker
            gave no track, or gave a tentative track it has dropped since, over at most this many seconds, came
            in through that border: its path starts there and goes through those boxes. Someone stepping in is
            half outside the picture and the tracker may start their track only a few steps in, past a line near
            the border, or restart a tentative one on each of their first frames. Each step back takes the nearest
            such box of a similar height (at most 1.5 times taller) within the stitching reach (below); 0 = off.
        edge_rel: the border's reach grows by this fraction of the box height per tenth of a second that
            passed since the previous processed frame, beyond the first tenth: a board processing every 4th
            frame of a 10 fps camera first sees someone walking in three tenths' walk inside the picture (the
            reach stops growing at one box height).
        stitch_s: a track gone mid-picture is remembered this many seconds, for a new track first seen
            mid-picture on the other side of the line to continue it (see "Stitching" in the module
            docstring; needs ``frame_size``); 0 = off.
        stitch_rel: how far from where the gone track was last seen the new one may be first seen: box
            heights per second between the two sightings (a walker's pace), on top of half a box height.
        stitch_appearance: with appearance vectors given to :meth:`update`, a new track whose colours are
            further than this from the gone track's (0 = same, 1 = disjoint; see
            :func:`~edge_runtime.vision.appearance.appearance_distance`) does not continue it; 1 = not used.

    Raises:
        ConfigError: a bad name, point, zero-length segment or option.

    Example:
        >>> line = LineCounter("door", (0, 100), (200, 100), margin_rel=0.1, return_s=0)  # in = walking down
        >>> walk = lambda y: Detections(np.array([[90, y - 50, 110, y]], np.float32),
        ...                             np.array([0.9], np.float32), np.array([0], np.int32), np.array([7]))
        >>> # over the band at y = 105, complete at y = 125 (half a box height past the line)
        >>> [[(e.track_id, e.direction.value) for e in line.update(walk(y))] for y in (80, 97, 104, 120, 130)]
        [[], [], [], [], [(7, 'in')]]
        >>> line.in_counts, line.out_counts
        ({0: 1}, {})
    """

    # Compared on the "tune" half (strides 1-4 and 4 irregular seeds; int8 boxes as a CPU with AVX-512 VNNI
    # computes them): fp32 the same events at fixed strides, 985 true / 19 false / 47 missed at irregular gaps
    # (without: 986 / 20 / 46); int8 329 / 6 / 15 at fixed strides (329 / 8 / 15), 960 / 34 / 72 at irregular
    # gaps (962 / 36 / 70): 5 false events fewer for 3 true ones, each a pair counted for the man who stands at
    # `walkway`'s lamp post and walks back. Zones as well cost the fp32 lamp zone 4 true events of quick visits.
    _carry_unfinished = True

    def __init__(self, name: str, start: Sequence[float], end: Sequence[float], *, trigger: str = "anchor",
                 anchor: str = "bottom_center", margin_rel: float = 0.05, margin_px: float = 0.0,
                 return_s: float = 3.0, hysteresis_frames: int = 1, forget_s: float = 60.0,
                 classes: Optional[Sequence[int]] = None, nominal_fps: float = 10.0, edge_px: float = 4.0,
                 edge_rel: float = 0.2, stitch_s: float = STITCH_S, stitch_rel: float = LINE_STITCH_REL,
                 stitch_appearance: float = STITCH_APPEARANCE, commit_rel: float = COMMIT_REL,
                 settle_ratio: float = SETTLE_RATIO, max_shrink: float = MAX_SHRINK,
                 keep_complete: bool = LINE_KEEP_COMPLETE, max_shrink_low: float = MAX_SHRINK_LOW,
                 low_score: float = LOW_SCORE, backtrack_s: float = BACKTRACK_S) -> None:
        super().__init__(name, anchor=anchor, margin_rel=margin_rel, margin_px=margin_px, return_s=return_s,
                         hysteresis_frames=hysteresis_frames, forget_s=forget_s, classes=classes,
                         nominal_fps=nominal_fps, edge_px=edge_px, edge_rel=edge_rel, stitch_s=stitch_s,
                         stitch_rel=stitch_rel, stitch_appearance=stitch_appearance, commit_rel=commit_rel,
                         settle_ratio=settle_ratio, max_shrink=max_shrink, keep_complete=keep_complete,
                         max_shrink_low=max_shrink_low, low_score=low_score, backtrack_s=backtrack_s)
        where = f"LineCounter {name!r}"
        if trigger not in TRIGGERS:
            raise ConfigError(f"{where}: trigger must be one of {TRIGGERS}, got {trigger!r}")
        self.trigger = trigger
        self.start = _point("start", where, start)
        self.end = _point("end", where, end)
        dx, dy = self.end[0] - self.start[0], self.end[1] - self.start[1]
        length = math.hypot(dx, dy)
        if length == 0:
            raise ConfigError(f"{where}: start and end are the same point {self.start}; a line needs two "
                              "distinct points")
        self._unit = (dx / length, dy / length)
        self.length_px = length
        self.in_counts: Dict[int, int] = {}
        self.out_counts: Dict[int, int] = {}

    @property
    def in_total(self) -> int:
        return sum(self.in_counts.values())

    @property
    def out_total(self) -> int:
        return sum(self.out_counts.values())

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """(K, 2) points -> (K,) distance in pixels from the infinite line, > 0 on the in side."""
        ux, uy = self._unit
        return ux * (points[:, 1] - self.start[1]) - uy * (points[:, 0] - self.start[0])

    _edges = True

    def _distances_of_point(self, point: Point) -> float:
        ux, uy = self._unit
        return ux * (point[1] - self.start[1]) - uy * (point[0] - self.start[0])  # as signed_distance

    def _edge_point(self, anchor: Point, touching: Tuple[bool, bool, bool, bool],
                    frame_size: Tuple[int, int]) -> Optional[Point]:
        left, right, _, bottom = touching
        # Not the top border: a box touching it has its head there, while the anchor (the feet, or the box's
        # centre) is half a box or more below. A person leaves through the top only after their feet have
        # walked up the whole picture, in view; a box whose top a passing vehicle or the frame cuts while the
        # legs are hidden would otherwise count as walking out of the top.
        if left and right:  # wider than the picture: no border to pass through
            return None
        if right:
            return float(frame_size[0]), anchor[1]
        if left:
            return 0.0, anchor[1]
        if bottom:
            return anchor[0], float(frame_size[1])
        return None

    def _distance_lists(self, boxes: List[List[float]], anchors: List[Point]) -> Tuple[List[float], List[float]]:
        anchor_d = [self._distances_of_point(p) for p in anchors]
        if self.trigger == "anchor":
            return anchor_d, anchor_d
        decide = []
        for x1, y1, x2, y2 in boxes:
            corners = [self._distances_of_point(c) for c in ((x1, y1), (x2, y1), (x1, y2), (x2, y2))]
            lo, hi = min(corners), max(corners)
            decide.append(lo if lo > 0 else hi if hi < 0 else 0.0)  # the whole box past the line, or 0
        return decide, anchor_d

    def _direction(self, st: _TrackState, new_side: int) -> Optional[Direction]:
        if not self._cuts_segment(st.before, st.after):
            return None  # passed beside the segment: the side changes, nothing counts
        return Direction.IN if new_side > 0 else Direction.OUT

    def _tally(self, direction: Direction, class_id: int) -> None:
        _add(self.in_counts if direction is Direction.IN else self.out_counts, class_id)

    def _cuts_segment(self, p0: Point, p1: Point) -> bool:
        """Whether the straight path p0 -> p1 meets the segment within its span (ends included)."""
        (ax, ay), (dx, dy) = self.start, (self.end[0] - self.start[0], self.end[1] - self.start[1])
        ex, ey = p1[0] - p0[0], p1[1] - p0[1]
        denom = dx * ey - dy * ex
        if denom == 0:  # the path runs parallel to the line: it cannot pass it
            return False
        t = ((p0[0] - ax) * ey - (p0[1] - ay) * ex) / denom
        return 0.0 <= t <= 1.0

    def update(self, detections: Detections, *, frame_index: Optional[int] = None,
               timestamp_s: Optional[float] = None, frame_size: Optional[Tuple[int, int]] = None,
               appearance: Optional[np.ndarray] = None) -> List[CountEvent]:
        """Feed one processed frame of tracked detections; returns the crossings reported on it.

        Args:
            detections: tracked detections (track_id set; -1 entries are ignored).
            frame_index: this frame's index (strictly increasing); default: previous + 1.
            timestamp_s: this frame's time in seconds (default: frame_index / nominal_fps).
            frame_size: (width, height) of the picture in pixels, for objects passing its border (see
                ``edge_px``) and for stitching; None = neither is used.
            appearance: (N, DIM) float32, the detections' appearance vectors in their order (as
                :func:`~edge_runtime.vision.appearance.box_appearance` makes them, e.g.
                :attr:`ByteTracker.last_appearance <edge_runtime.vision.tracking.ByteTracker.last_appearance>`),
                for the colour gate of stitching; None = the gate is not used.

        Raises:
            InputError: untracked detections, a repeated track id, a non-increasing frame_index, or
                appearance vectors that are not (N, DIM).
        """
        return self._observe(detections, frame_index, timestamp_s, frame_size, appearance)[0]


def _inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(K, 2) points, (V, 2) polygon -> (K,) bool, even-odd rule."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return (straddles & (x < x_cross)).sum(axis=1) % 2 == 1


def _edge_distance(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(K, 2) points -> (K,) distance in pixels to the nearest polygon edge."""
    a = polygon[None, :, :]
    b = np.roll(polygon, -1, axis=0)[None, :, :]
    p = points[:, None, :]
    ab = b - a
    t = np.clip(((p - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    nearest = a + t[..., None] * ab
    return np.sqrt(((p - nearest) ** 2).sum(-1)).min(axis=1)


def _segments_cross(p1, p2, p3, p4) -> bool:
    """Whether segments p1-p2 and p3-p4 properly intersect (touching at a point excluded)."""
    def orient(a, b, c):
        v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        return (v > 0) - (v < 0)

    return orient(p1, p2, p3) * orient(p1, p2, p4) < 0 and orient(p3, p4, p1) * orient(p3, p4, p2) < 0


class ZoneCounter(_SideCounter):
    """Occupancy of a polygon zone, and entries / exits of confirmed tracks per class.

    A track is inside once its anchor is ``margin`` pixels inside the polygon's edge and outside once it
    is ``margin`` pixels outside; in between its state does not change. A track first seen inside is
    part of the occupancy but is not an entry.

    Args:
        name: the zone's name (goes into events).
        polygon: (V, 2) vertices in pixels, V >= 3, in drawing order, edges not crossing each other.
        anchor, margin_rel, margin_px, commit_rel, settle_ratio, max_shrink, max_shrink_low, low_score,
            hysteresis_frames, forget_s, classes, nominal_fps: as for :class:`LineCounter`.
        keep_complete: as for :class:`LineCounter`; off by default: the depth needed for an entry to be
            complete is capped at half the zone's (a small zone could not be entered otherwise), so someone
            cutting a corner gets that deep, and only the quick exit within ``return_s`` undoes the entry.
        return_s: an entry undone by leaving again within this many seconds (or an exit undone by coming
            back) counts neither way; shorter than for lines, since walking through a small zone takes
            only a few seconds.
        stitch_s, stitch_rel, stitch_appearance: as for :class:`LineCounter`, with the zone's edge in place
            of the line: a track gone outside (inside) the zone continued by a new track first seen inside
            (outside) is an entry (exit). ``stitch_rel`` defaults to less than a line's: a small zone with
            people standing in it gets fewer wrong stitches.
        edge_px, edge_rel: as for :class:`LineCounter`, used only by stitching: a track first or last seen
            with its box this near the picture's border came or went through it and is not stitched.

    Raises:
        ConfigError: a bad name, fewer than 3 vertices, non-finite, zero-area or self-intersecting
            polygon, bad options.

    Example:
        >>> zone = ZoneCounter("desk", [(0, 0), (100, 0), (100, 100), (0, 100)], margin_rel=0, return_s=0)
        >>> at = lambda x: Detections(np.array([[x, 40, x + 10, 60]], np.float32),
        ...                           np.array([0.9], np.float32), np.array([2], np.int32), np.array([3]))
        >>> [[e.direction.value for e in zone.update(at(x))] for x in (150, 50, 60, 150)]
        [[], ['enter'], [], ['exit']]
        >>> zone.entries, zone.exits, zone.occupancy
        ({2: 1}, {2: 1}, {})
    """

    def __init__(self, name: str, polygon: Sequence[Sequence[float]], *, anchor: str = "bottom_center",
                 margin_rel: float = 0.05, margin_px: float = 0.0, return_s: float = 1.0,
                 hysteresis_frames: int = 1, forget_s: float = 60.0, classes: Optional[Sequence[int]] = None,
                 nominal_fps: float = 10.0, stitch_s: float = STITCH_S, stitch_rel: float = ZONE_STITCH_REL,
                 stitch_appearance: float = STITCH_APPEARANCE, edge_px: float = 4.0, edge_rel: float = 0.2,
                 commit_rel: float = COMMIT_REL, settle_ratio: float = SETTLE_RATIO,
                 max_shrink: float = MAX_SHRINK, keep_complete: bool = ZONE_KEEP_COMPLETE,
                 max_shrink_low: float = MAX_SHRINK_LOW, low_score: float = LOW_SCORE) -> None:
        super().__init__(name, anchor=anchor, margin_rel=margin_rel, margin_px=margin_px, return_s=return_s,
                         hysteresis_frames=hysteresis_frames, forget_s=forget_s, classes=classes,
                         nominal_fps=nominal_fps, edge_px=edge_px, edge_rel=edge_rel, stitch_s=stitch_s,
                         stitch_rel=stitch_rel, stitch_appearance=stitch_appearance, commit_rel=commit_rel,
                         settle_ratio=settle_ratio, max_shrink=max_shrink, keep_complete=keep_complete,
                         max_shrink_low=max_shrink_low, low_score=low_score)
        where = f"ZoneCounter {name!r}"
        try:
            vertices = np.asarray(polygon, np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: polygon must be (V, 2) numbers, got {polygon!r}") from None
        if vertices.ndim != 2 or vertices.shape[1] != 2 or vertices.shape[0] < 3:
            raise ConfigError(f"{where}: polygon must be (V, 2) with V >= 3, got shape {vertices.shape}")
        if not np.isfinite(vertices).all():
            raise ConfigError(f"{where}: polygon has NaN or infinite vertices")
        x, y = vertices[:, 0], vertices[:, 1]
        if abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) == 0.0:
            raise ConfigError(f"{where}: polygon has zero area")
        v = [tuple(p) for p in vertices.tolist()]
        n = len(v)
        for i in range(n):
            for j in range(i + 2, n):
                if i == 0 and j == n - 1:
                    continue  # adjacent through the closing edge
                if _segments_cross(v[i], v[(i + 1) % n], v[j], v[(j + 1) % n]):
                    raise ConfigError(f"{where}: polygon edges {i} ({v[i]}->{v[(i + 1) % n]}) and {j} "
                                      f"({v[j]}->{v[(j + 1) % n]}) cross; expected a simple polygon "
                                      "(vertices in drawing order around its edge)")
        self.polygon = vertices
        self.entries: Dict[int, int] = {}
        self.exits: Dict[int, int] = {}
        self.occupancy: Dict[int, int] = {}
        lo, hi = vertices.min(axis=0), vertices.max(axis=0)
        gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 65), np.linspace(lo[1], hi[1], 65))
        self._commit_cap_px = 0.5 * max(float(self.signed_distance(np.stack([gx.ravel(), gy.ravel()], 1)).max()), 0.0)

    @property
    def occupancy_total(self) -> int:
        return sum(self.occupancy.values())

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """(K, 2) points -> (K,) distance in pixels to the polygon's edge, > 0 inside."""
        dist = _edge_distance(points, self.polygon)
        return np.where(_inside_polygon(points, self.polygon), dist, -dist)

    def _distance_lists(self, boxes: List[List[float]], anchors: List[Point]) -> Tuple[List[float], List[float]]:
        d = self.signed_distance(np.array(anchors, np.float64)).tolist()
        return d, d

    def _distances_of_point(self, point: Point) -> float:
        return float(self.signed_distance(np.array([point], np.float64))[0])

    def _direction(self, st: _TrackState, new_side: int) -> Optional[Direction]:
        return Direction.ENTER if new_side > 0 else Direction.EXIT

    def _tally(self, direction: Direction, class_id: int) -> None:
        _add(self.entries if direction is Direction.ENTER else self.exits, class_id)

    def update(self, detections: Detections, *, frame_index: Optional[int] = None,
               timestamp_s: Optional[float] = None, frame_size: Optional[Tuple[int, int]] = None,
               appearance: Optional[np.ndarray] = None) -> List[CountEvent]:
        """Feed one processed frame; returns the entries and exits reported on it and refreshes
        :attr:`occupancy` (confirmed tracks seen on this frame whose state is inside, by majority class).

        Args / Raises: as :meth:`LineCounter.update` (``frame_size`` here serves stitching only).
        """
        events, track_ids = self._observe(detections, frame_index, timestamp_s, frame_size, appearance)
        occupancy: Dict[int, int] = {}
        for tid in track_ids:
            st = self._tracks[tid]
            if st.side > 0 and self._counts(st.class_id):
                _add(occupancy, st.class_id)
        self.occupancy = occupancy
        return events
