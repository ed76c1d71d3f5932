"""ByteTrack-class multi-object tracker: two-stage IoU association, Kalman motion, confirmed ids only.

Shape legend: N detections in the current frame, T live tracks; boxes are (count, 4) float32 x1, y1,
x2, y2 in source-image pixels. Frames are counted in calls to :meth:`ByteTracker.update`.

The algorithm follows ByteTrack (Zhang et al., ECCV 2022; github.com/ifzhang/ByteTrack,
yolox/tracker/byte_tracker.py): confirmed tracks are matched first to high-score detections, then the
confirmed tracks left over are matched to low-score detections (boxes a plain score threshold would
have thrown away, typically occluded people), then tentative tracks to the remaining high-score boxes;
unmatched high-score boxes start tentative tracks. Differences that matter to counting:

- a track is confirmed after ``min_hits`` consecutive matched frames (also on the first frame of a
  video). Its id ``k`` is allocated when it starts (ids count up from 0 and are never reused while the
  tracker lives, not even across :meth:`ByteTracker.reset`; tracks that are never confirmed leave gaps);
  while tentative its detections carry ``-2 - k``, so a counter can follow it from its first sighting
  and count a crossing it made before confirmation once, and only if, it is confirmed as ``k``;
  ``-1`` means "no track";
- a track's class is the majority class over its matched detections (ties keep the current class), so
  one mislabelled frame can't flip it;
- every input detection is returned, in input order: matched to a confirmed track it carries that
  track's id and class, otherwise a negative track id and its own class;
- a tentative track left unmatched may take a low-score box too (``tentative_low``): someone coming into
  view partly hidden, or at the picture's edge, scores low on the frames after the one confident box that
  started their track, and ByteTrack would drop the track at once and start it again further on — after
  the line they were crossing;
- by default low-score boxes may also re-find tracks lost for a few frames (``revive_lost``), and the
  second stage needs IoU > 0.2 rather than 0.5: tuned for small edge models whose person scores hover
  around the high threshold (see ``benchmarks/bench_tracker.py``);
- time is real time: :meth:`ByteTracker.update` takes the frame's timestamp, the Kalman filter predicts
  over the time that passed since the last processed frame (velocities are per frame of the nominal
  ``fps``), and the lost buffer is in seconds. A board that processes every 3rd frame, or whatever
  frame was newest ("latest" mode), tracks with the same settings as one that processes every frame;
- identity by appearance: given the frame (or precomputed vectors), each detection's colour histograms
  (:mod:`edge_runtime.vision.appearance`) are compared with the track's running average, and a confirmed
  track is never matched to a box that looks too different (``appearance_gate``). Two people passing each
  other, or one walking behind another, otherwise swap ids: their boxes overlap and move alike;
- association boxes grow with the time since a track was last matched (``buffer_rel`` of the box size
  per nominal frame, the "buffered IoU" of C-BIoU), so a person who moved more than their own width
  between two processed frames is still found, and a pair whose centres are further apart than
  ``max_jump_rel`` box heights per nominal frame (after the prediction) is never matched;
- the motion gate: a confirmed track is never matched to a box whose centre is unlikely under the Kalman
  filter's own uncertainty (squared Mahalanobis distance over ``motion_gate``, as DeepSORT gates). A track
  seen on every frame walking steadily gets a tight gate, one lost for a while or seen at a low frame rate
  a wide one; two people who pass each other, and whose boxes both stall while they overlap, stay apart;
- low-score boxes extend a track only if they are at most ``low_max_growth`` times as tall as its predicted
  box. ByteTrack's second association is for the same person, partly hidden: their box stays the size it
  was or shrinks. A low-score box much taller than the track is a merge with someone beside them, or a
  half-hidden person whose legs are all at once joined to a bike below them; following it would carry the
  track's feet (the counters' anchor) across a line nobody crossed.

Each frame runs in a few C++ calls (``edge_runtime._native``, GIL released) over track state kept in NumPy
arrays: Kalman predict; the association gates; the appearance gate; the IoU + optimal-assignment
stages; then the bookkeeping (Kalman update, hits and misses, class votes, confirmation, output ids, which
tracks to drop) and the running appearance. Python starts and drops tracks, and takes back the matches of
low-score boxes that are too tall (``low_max_growth``). The NumPy references are in
:mod:`edge_runtime.reference` and :mod:`edge_runtime.vision.kalman`.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from .. import _native
from ..errors import ConfigError, InputError
from .appearance import DIM as APPEARANCE_DIM
from .appearance import box_appearance, has_appearance
from .detections import Detections
from .kalman import KalmanXYAH, xyah_to_xyxy, xyxy_to_xyah

__all__ = ["ByteTracker", "iou_matrix", "linear_assignment"]

_NO_MATCH = np.zeros(0, np.int32)
# The motion gate's default (the chi-square 90 % quantile of 2 degrees of freedom), chosen on the "tune" half of
# the by-eye truth with ``python -m benchmarks.tune_counting --part motion``: event F1 0.907 -> 0.920 (fn 41 -> 34,
# fp 21 -> 20), (item, stride) pairs meeting the counting target 18 -> 19 of 24; 3.22 met 21 but with 24 false
# events, 5.99 met 19 at F1 0.917, 9.21 and over changed little.
MOTION_GATE = 4.61
# How much association boxes widen per nominal frame a track went unmatched, and at most; chosen on the "tune" half
# with ``python -m benchmarks.tune_counting --part buffer``: 0.2 / 1.0 (chosen before the motion gate and
# tentative_low) met 19 of 24 (item, stride) pairs at event F1 0.928; 0.035 / 1.0 meets 22 at 0.949 (fn 29 -> 20,
# fp 20 -> 15); no widening 21 at 0.924; 0.02-0.05 with any cap 22 at 0.944-0.949.
BUFFER_REL = 0.035
MAX_BUFFER_REL = 1.0
# A low-score box is not matched to a track whose predicted box it is more than this many times as tall. Chosen on
# the "tune" half with ``python -m benchmarks.tune_counting --part low`` (event F1 first): the fp32 replays are the
# same with any limit from 1.2 up as without one; on the int8 detector's boxes (``--model``) 1.2 keeps 5 false
# events of 13 out (F1 0.942 -> 0.951; 1.5: 0.945), among them the waiting cyclist's at stride 3, whose half-hidden
# box took a low-score box reaching down to his bike's wheels. 1.1 loses a true event on the fp32 boxes.
LOW_MAX_GROWTH = 1.2
# A track started by a box at the picture's border starts moving into the picture at this many box heights per
# second. Chosen on the "tune" half (``right_edge``, where people step in behind one another at a low processed
# rate): 0.5, 0.75 and 1.0 gave the same events on every tune and report item, fp32 and int8; 0.75 is a walker's
# pace in this video.
ENTRY_SPEED_REL = 0.75
# A confirmed track is not given a high-score box in ByteTrack's first association when a low-score box fits its
# predicted box by at least this much more IoU (and fits no other track better). Chosen on the "tune" half with
# ``python -m benchmarks.tune_counting --part low_fit --irregular 4``, both detectors, event F1 first: over the fp32
# and int8 detectors' boxes, 0.3 gives 2554 true, 81 false and 198 missed events (off: 2548, 87, 204; 0.2: 2552, 82,
# 200; 0.4: 2552, 85, 200) and meets one more (item, stride) pair (178 of 192). Checked again with
# tentative_fit_margin at its default: 0.3 is still best (2562, 74, 190; off: 2558, 74, 194).
LOW_FIT_MARGIN = 0.3
# A confirmed track seen on the last frame is not given a high-score box in the first association when a tentative
# track fits that box by at least this much more IoU (and the box is the tentative track's best fit): two people
# were seen apart on the last frame, and the box is the newcomer's. Chosen on the "tune" half (with low_fit_margin
# at its default) with ``python -m benchmarks.tune_counting --part tentative_fit --irregular 4``, both detectors,
# event F1 first: over the fp32 and int8 detectors' boxes, 0.1 gives 2562 true, 74 false and 190 missed events
# (off: 2554, 81, 198; 0.05: 2561, 74, 191; 0.2: 2562, 77, 190; 0.3: 2558, 77, 194) and meets one more (item,
# stride) pair (179 of 192).
TENTATIVE_FIT_MARGIN = 0.1
# A confirmed track is not given a high-score box in the first association when the low-score box fitting it best
# fits it better in IoU and looks more like it by at least this much appearance distance (and is no other track's).
# Chosen on the "tune" half with ``python -m benchmarks.tune_counting --part low_look --irregular 4``, both
# detectors, event F1 first: over the fp32 and int8 detectors' boxes, 0.1 gives 2583 true, 69 false and 169 missed
# events (off: 2581, 72, 171; 0.05 and 0.15: 2583, 70, 169; 0.2 as off) and meets as many (item, stride) pairs.
# A neighbour whose own confident box fits him better does not take the rule from the track (the man standing at
# `walkway`'s lamp post, every 3rd frame, f60, kept his own unsure box instead of taking a walker's). On the tune
# half with the fp32 detector's boxes: the same events bar that one. With the int8 detector's (as a CPU with
# AVX-512 VNNI computes them): 329 true, 8 false and 15 missed events at fixed strides (before: 328, 7, 16) and
# 962, 36, 70 at 4 irregular seeds (963, 36, 69).
LOW_LOOK_MARGIN = 0.1
# The IoU a tentative track needs with a box in the last association (ByteTrack's 0.3). A person who just stepped in
# has little velocity in the Kalman filter yet; at a few processed frames a second they walk most of a box width
# between two of them, and their track can break into a new tentative one on every frame. Lower values were tried on
# the "tune" half with ``python -m benchmarks.tune_counting --part tentative_iou --irregular 4``, both detectors:
# over the fp32 and int8 detectors' boxes 0.1 gave 2602 true, 70 false and 150 missed events and met 182 of 192
# (item, stride) pairs, against 2583, 69, 169 and 179 at 0.3. The "report" half, checked once after that, did not
# bear it out: there 0.1 met 4 fewer of its 256 pairs (with both detectors, a walker already crossing `lawn_edge` as
# the video starts counts at stride 4; with the int8 one, two events near the video's end come 12-17 frames late at
# irregular gaps) for 3 more true events. ByteTrack's value stays; the setting is ``tracker.tentative_match_iou``.
TENTATIVE_MATCH_IOU = 0.3
# "At the border": the box's side is within this many pixels of the picture's edge (the counters' default edge_px),
# or this fraction of the box's own width (left / right) or height (top / bottom), whichever is more.
ENTRY_EDGE_PX = 4.0
ENTRY_EDGE_REL = 0.2


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` against every box in ``b`` (native kernel).

    Args:
        a: (M, 4) boxes x1, y1, x2, y2 (converted to float32).
        b: (N, 4) boxes.

    Returns:
        (M, N) float32 IoU; a box with x2 < x1 or y2 < y1 has zero area, a zero-area union gives 0.

    Raises:
        InputError: a shape is not (count, 4) or a coordinate is NaN or infinite.

    Example:
        >>> round(float(iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0]), 4)
        0.3333
    """
    a32 = _as_boxes("a", a)
    b32 = _as_boxes("b", b)
    try:
        return _native.iou_matrix(a32, b32)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def linear_assignment(cost: np.ndarray, max_cost: float = math.inf) -> np.ndarray:
    """Optimal assignment of rows (tracks) to columns (detections) (native kernel).

    Args:
        cost: (M, N) cost matrix (converted to float32). With a finite ``max_cost`` entries may be +inf
            (pair never matched); otherwise every entry must be finite.
        max_cost: only pairs with cost < max_cost are matched, maximising sum(max_cost - cost) over the
            matched pairs (a row stays unmatched rather than take a pair at or beyond the limit). With
            +inf: the classic problem, min(M, N) pairs of minimum total cost, as
            ``scipy.optimize.linear_sum_assignment``.

    Returns:
        row_to_col (M,) int32: the column matched to each row, or -1.

    Raises:
        InputError: cost is not 2-D, holds NaN or -inf (or +inf with an infinite max_cost), or
            max_cost is NaN.

    Example:
        >>> linear_assignment([[0.1, 0.9], [0.2, 0.95]], max_cost=0.5).tolist()
        [0, -1]
    """
    matrix = np.asarray(cost)
    if matrix.ndim != 2:
        raise InputError(f"linear_assignment: cost must be a 2-D (M, N) matrix, got shape {matrix.shape}")
    try:
        return _native.linear_assignment(np.ascontiguousarray(matrix, np.float32), float(max_cost))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    except TypeError as exc:
        raise InputError(f"linear_assignment: max_cost must be a number, got {max_cost!r}") from exc


def _as_boxes(name: str, boxes: object) -> np.ndarray:
    array = np.asarray(boxes)
    if array.size == 0 and array.ndim <= 2:
        return np.zeros((0, 4), np.float32)
    if array.ndim != 2 or array.shape[1] != 4:
        raise InputError(f"iou_matrix: {name} must be (N, 4) boxes x1, y1, x2, y2, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"iou_matrix: {name} must be numeric, got dtype {array.dtype}")
    return np.ascontiguousarray(array, np.float32)


def _check_nonneg(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"ByteTracker: {name} must be a number >= 0, got {value!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"ByteTracker: {name} must be finite and >= 0, got {value!r}")
    return value


def _check_unit(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"ByteTracker: {name} must be a number in [0, 1], got {value!r}") from None
    if not (0.0 <= value <= 1.0):
        raise ConfigError(f"ByteTracker: {name} must be in [0, 1], got {value!r}")
    return value


def _entry_velocity(xyxy: np.ndarray, frame_size: Tuple[int, int], speed: np.ndarray) -> np.ndarray:
    """(N, 2) velocity (x, y) into the picture, ``speed`` (N,) per axis, of boxes (N, 4) at its border; zero
    on an axis where a box touches neither or both borders (see ``entry_speed_rel``)."""
    width, height = float(frame_size[0]), float(frame_size[1])
    x1, y1, x2, y2 = (xyxy[:, k].astype(np.float64) for k in range(4))
    near_x = np.maximum(ENTRY_EDGE_PX, ENTRY_EDGE_REL * (x2 - x1))
    near_y = np.maximum(ENTRY_EDGE_PX, ENTRY_EDGE_REL * (y2 - y1))
    into_x = (x1 <= near_x).astype(np.float64) - (x2 >= width - near_x)  # +1 from the left, -1 from the right
    into_y = (y1 <= near_y).astype(np.float64) - (y2 >= height - near_y)
    return np.stack([into_x * speed, into_y * speed], axis=1)


class ByteTracker:
    """Assign persistent ids to per-frame detections (ByteTrack two-stage association).

    The defaults were chosen for the built-in person detector (whose people mostly score 0.3-0.6) on the
    "tune" half of the by-eye counting truth (``benchmarks/tune_counting.py``); ByteTrack's own MOT17
    settings (0.5 / 0.6, fused scores, 1/160 velocity noise) lose most people of such a model, worst
    when only every 3rd or 4th frame is processed.

    Args:
        high_score: detections scoring at least this take part in the first association and may start
            tracks.
        low_score: detections scoring in [low_score, high_score) are used only to extend confirmed
            tracks (second association); lower ones are returned untracked.
        new_track_score: minimum score of an unmatched detection to start a tentative track
            (>= high_score makes sense; ByteTrack uses high_score + 0.1).
        match_iou: first association: a pair needs IoU (times the detection score if ``fuse_score``)
            strictly above this.
        low_match_iou: second association (low-score boxes): IoU strictly above this (ByteTrack: 0.5).
        tentative_match_iou: tentative tracks: IoU (times score if ``fuse_score``) strictly above this
            (ByteTrack's 0.3).
        min_hits: consecutive matched frames before a track is confirmed and gets an id (1 = at once).
        lost_s: seconds a confirmed track survives without a match (its id is kept if it is found
            again within them).
        fps: the nominal frame rate: the unit of the Kalman velocities and of ``buffer_rel`` /
            ``max_jump_rel``, and the clock when :meth:`update` gets no timestamps.
        buffer_rel: association boxes are widened on every side by this fraction of their width and
            height per nominal frame since the track was last matched, beyond the first (0 = plain
            IoU; a track matched on the previous frame of the camera's rate is never widened).
        max_buffer_rel: the widening stops at this fraction. Only the track's box grows (detections get
            the median of the tracks' widening, nearly none when most tracks were seen last frame), so a
            wide box lowers the IoU of a lost track with a box right on its prediction: both are kept small
            and the motion gate does the distance-aware part.
        max_jump_rel: a confirmed track is never matched to a box whose centre is more than this many box
            heights per nominal frame since its last match away from where the Kalman filter predicted it
            (0 = no gate). The gate undoes such a match after the assignment. It keeps a standing person's track from jumping onto someone walking past; an
            object moving steadily, however fast, is where its prediction says.
        fuse_score: weight IoU by detection score in the high-score associations (as ByteTrack on MOT17).
        revive_lost: low-score detections may also re-find confirmed tracks lost before the last frame,
            not only extend tracks seen in it. Small edge models score people around the high
            threshold, so a walker flickers between high and low.
        tentative_low: a tentative track no high-score box matched may take a low-score one (plain IoU above
            ``tentative_match_iou``) after the confirmed tracks have had theirs; it still needs ``min_hits``
            matched frames to be confirmed, and only high-score boxes start tracks.
        low_max_growth: a box scoring below ``high_score`` matched to a track whose predicted box it is more than
            this many times as tall is unmatched again after the assignment (>= 1; 0 = off).
        motion_gate: a confirmed track and a detection whose centre is further than this from the track's
            predicted centre, in squared Mahalanobis distance under the Kalman covariance plus the measurement
            noise, are never matched in the first two associations (a chi-square quantile of 2 degrees of
            freedom: 5.99 = 95 %; 0 = off).
        appearance_gate: a confirmed track and a detection whose appearance distance (0 = same colours, 1 =
            disjoint; see :func:`~edge_runtime.vision.appearance.appearance_distance`) exceeds this are never
            matched. Used only when :meth:`update` gets the frame or appearance vectors; 1 = off.
        appearance_ema: weight of a track's running appearance against a new detection's (updated with
            detections scoring at least ``high_score``).
        std_position, std_velocity: the Kalman filter's noise, as fractions of the box height per
            nominal frame (ByteTrack's 1/20 and 1/160 were set on 30 fps video; at 10 fps a walker's
            velocity changes more from one frame to the next).
        entry_speed_rel: a track started by a box at the picture's border (its side within 4 px, or a fifth
            of the box's width or height, of the edge) starts moving into the picture at this many box heights
            per second, instead of at rest: what appears at a border is coming in. At a low processed rate a
            track at rest is predicted where it was first seen, and someone stepping in behind takes it
            there. 0 = at rest (as ByteTrack). Needs the picture's size: :meth:`update` gets it from
            ``frame`` or ``frame_size``; without either, every track starts at rest.
        low_fit_margin: ByteTrack gives confirmed tracks the high-score boxes first, so where two people part,
            the track of the one the detector is unsure of can take the other's confident box, which only
            half covers it, while a low-score box right on its prediction is left over. A confirmed track is
            therefore not matched to a high-score box in the first association when a low-score box (at least
            ``low_score``) has an IoU with its predicted box at least this much higher and has no higher IoU
            with any other track; it takes its low-score box in the second association instead. 0 = off.
        tentative_fit_margin: likewise, confirmed tracks come before tentative ones, so where someone stands
            beside a newcomer and his own box is missed for a frame (behind a sign), his track takes the
            newcomer's. A confirmed track seen on the last frame is not matched to a high-score box in the
            first association when a tentative track has an IoU with the box at least this much higher and
            fits no other box better; the tentative track takes it. A track missed on the last frame is not
            held back: a tentative track started on its own shifted box there is the same person. 0 = off.
        low_look_margin: the appearance version of ``low_fit_margin``, for a man standing still behind a
            walker: the walker's confident box covers part of him, his own box is unsure. A confirmed track is
            not matched to a high-score box in the first association when the low-score box with the highest
            IoU with its predicted box has a higher IoU than the high-score box and an appearance distance to
            the track at least this much smaller, and no other track has a higher IoU with the low-score box
            (nor an equal IoU and a smaller distance); a track that some high-score box fits better than the
            low-score one is not after it and does not count here. Used only when :meth:`update` gets the
            frame or appearance vectors. 0 = off.

    Raises:
        ConfigError: a threshold outside [0, 1], low_score > high_score, min_hits < 1, or a negative or
            non-finite time setting.

    Example:
        >>> tracker = ByteTracker(min_hits=2)
        >>> frame = lambda x: Detections(np.array([[x, 0, x + 20, 40]], np.float32),
        ...                              np.array([0.9], np.float32), np.array([0], np.int32))
        >>> [tracker.update(frame(x)).track_id.tolist() for x in (0, 2, 4)]   # tentative 0 is -2 - 0
        [[-2], [0], [0]]
    """

    def __init__(
        self,
        *,
        high_score: float = 0.3,
        low_score: float = 0.1,
        new_track_score: float = 0.4,
        match_iou: float = 0.2,
        low_match_iou: float = 0.2,
        tentative_match_iou: float = TENTATIVE_MATCH_IOU,
        min_hits: int = 3,
        lost_s: float = 3.0,
        fps: float = 10.0,
        buffer_rel: float = BUFFER_REL,
        max_buffer_rel: float = MAX_BUFFER_REL,
        max_jump_rel: float = 0.25,
        fuse_score: bool = False,
        revive_lost: bool = True,
        tentative_low: bool = True,
        low_max_growth: float = LOW_MAX_GROWTH,
        std_position: float = 1.0 / 20,
        std_velocity: float = 1.0 / 40,
        motion_gate: float = MOTION_GATE,
        appearance_gate: float = 0.4,
        appearance_ema: float = 0.9,
        entry_speed_rel: float = ENTRY_SPEED_REL,
        low_fit_margin: float = LOW_FIT_MARGIN,
        tentative_fit_margin: float = TENTATIVE_FIT_MARGIN,
        low_look_margin: float = LOW_LOOK_MARGIN,
    ) -> None:
        self.high_score = _check_unit("high_score", high_score)
        self.low_score = _check_unit("low_score", low_score)
        self.new_track_score = _check_unit("new_track_score", new_track_score)
        if self.low_score > self.high_score:
            raise ConfigError(f"ByteTracker: low_score {low_score} must be <= high_score {high_score}")
        # Costs are 1 - similarity; a pair matches only if cost < max_cost, i.e. similarity > threshold.
        self._max_cost_high = 1.0 - _check_unit("match_iou", match_iou)
        self._max_cost_low = 1.0 - _check_unit("low_match_iou", low_match_iou)
        self._max_cost_tentative = 1.0 - _check_unit("tentative_match_iou", tentative_match_iou)
        if isinstance(min_hits, bool) or int(min_hits) != min_hits or min_hits < 1:
            raise ConfigError(f"ByteTracker: min_hits must be an integer >= 1, got {min_hits!r}")
        self.min_hits = int(min_hits)
        self.lost_s = _check_nonneg("lost_s", lost_s)
        self.fps = _check_nonneg("fps", fps)
        if self.fps == 0:
            raise ConfigError("ByteTracker: fps must be > 0, got 0")
        self.buffer_rel = _check_nonneg("buffer_rel", buffer_rel)
        self.max_buffer_rel = _check_nonneg("max_buffer_rel", max_buffer_rel)
        self.max_jump_rel = _check_nonneg("max_jump_rel", max_jump_rel)
        self.fuse_score = bool(fuse_score)
        self.revive_lost = bool(revive_lost)
        self.tentative_low = bool(tentative_low)
        self.low_max_growth = _check_nonneg("low_max_growth", low_max_growth)
        if 0 < self.low_max_growth < 1:
            raise ConfigError(f"ByteTracker: low_max_growth must be 0 (off) or >= 1, got {low_max_growth!r}")
        self.motion_gate = _check_nonneg("motion_gate", motion_gate)
        self.appearance_gate = _check_unit("appearance_gate", appearance_gate)
        self.appearance_ema = _check_unit("appearance_ema", appearance_ema)
        self.entry_speed_rel = _check_nonneg("entry_speed_rel", entry_speed_rel)
        self.low_fit_margin = _check_unit("low_fit_margin", low_fit_margin)
        self.tentative_fit_margin = _check_unit("tentative_fit_margin", tentative_fit_margin)
        self.low_look_margin = _check_unit("low_look_margin", low_look_margin)
        self._kf = KalmanXYAH(_check_nonneg("std_position", std_position), _check_nonneg("std_velocity", std_velocity))
        self._next_id = 0
        self._confirmed_count = 0
        self.reset()

    @classmethod
    def for_video(cls, fps: float, **kwargs: object) -> "ByteTracker":
        """A tracker for a stream of nominal rate ``fps``; other args as __init__."""
        return cls(fps=fps, **kwargs)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget every track (e.g. on a scene cut). Ids keep counting up, so none is ever reused."""
        self._mean = np.zeros((0, 8))
        self._cov = np.zeros((0, 8, 8))
        self._tid = np.zeros(0, np.int64)  # -1 while tentative, then = _uid
        self._uid = np.zeros(0, np.int64)  # the id allocated when the track was started
        self._hits = np.zeros(0, np.int64)  # consecutive matched frames
        self._miss = np.zeros(0, np.int64)  # consecutive missed frames
        self._last_s = np.zeros(0, np.float64)  # time of the last match
        self._cls = np.zeros(0, np.int32)  # majority class
        self._votes = np.zeros((0, 1), np.int32)  # (T, C) matched detections per class
        self._app = np.zeros((0, APPEARANCE_DIM), np.float32)  # running appearance
        self._has_app = np.zeros(0, bool)
        self._last_app: Optional[np.ndarray] = None
        self.frame_index = -1
        self._now_s: Optional[float] = None

    @property
    def last_appearance(self) -> Optional[np.ndarray]:
        """(N, DIM) float32 appearance vectors of the detections of the last :meth:`update`, in their order
        (what the counters' stitching compares), or None when that update used none (gate off, or neither
        a frame nor vectors given). Read-only; replaced by the next update."""
        return self._last_app

    @property
    def ids_issued(self) -> int:
        """How many tracks were confirmed (and so revealed their id) so far."""
        return self._confirmed_count

    @property
    def num_tracks(self) -> int:
        """Live tracks, tentative and confirmed (lost ones included until dropped)."""
        return int(self._tid.shape[0])

    def confirmed_tracks(self) -> Detections:
        """Confirmed tracks seen in the last frame: their Kalman boxes, id and majority class.

        Score is 1.0 (the filter has no score). For drawing and debugging.
        """
        keep = (self._tid >= 0) & (self._miss == 0)
        boxes = xyah_to_xyxy(self._mean[keep])
        boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        return Detections(
            boxes,
            np.ones(int(keep.sum()), np.float32),
            self._cls[keep],
            self._tid[keep].astype(np.int32),
        )

    def _next_time(self, timestamp_s: Optional[float], caller: str) -> float:
        """The time of the frame being processed: ``timestamp_s``, or one nominal frame after the last."""
        previous = self._now_s
        if timestamp_s is None:
            return 0.0 if previous is None else previous + 1.0 / self.fps
        now = float(timestamp_s)
        if not math.isfinite(now) or (previous is not None and now < previous):
            raise InputError(f"ByteTracker.{caller}: timestamp_s must be finite and not go backwards, got "
                             f"{timestamp_s!r} after {previous!r}")
        return now

    def update(self, detections: Detections, *, timestamp_s: Optional[float] = None,
               frame: Optional[np.ndarray] = None, appearance: Optional[np.ndarray] = None,
               frame_size: Optional[Tuple[int, int]] = None) -> Detections:
        """Advance to this frame: predict, associate, confirm, age and drop tracks.

        Args:
            detections: this frame's detections (any score; see the thresholds of the constructor).
            timestamp_s: the frame's time in seconds (increasing); default: one nominal frame
                (1 / fps) after the previous call.
            frame: the (H, W, 3) uint8 BGR image the detections came from, for the appearance gate.
            appearance: instead of ``frame``, the detections' appearance vectors (N, DIM) float32 as
                :func:`~edge_runtime.vision.appearance.box_appearance` makes them. Without either, tracks
                are matched by motion alone.
            frame_size: (width, height) of the picture in pixels, for ``entry_speed_rel`` when ``frame`` is
                not given (with ``frame``, its size is used). Checked when a track starts.

        Returns:
            The same N detections in the same order, with ``track_id`` set: the id of the confirmed
            track it was matched to; ``-2 - k`` if matched to (or starting) tentative track ``k``; -1 if
            no track. ``class_id`` is replaced by the track's majority class where matched to a
            confirmed track.

        Raises:
            InputError: detections is not a :class:`Detections`, the timestamp is not finite or goes
                backwards, the appearance vectors are not (N, DIM), or frame_size is not two positive sizes.
        """
        if not isinstance(detections, Detections):
            raise InputError(f"ByteTracker.update: expected Detections, got {type(detections).__name__}")
        app = self._appearance_of(detections, frame, appearance)
        previous = self._now_s
        now = self._next_time(timestamp_s, "update")
        self._last_app = app
        dt_frames = 1.0 if previous is None else (now - previous) * self.fps
        self._now_s = now
        self.frame_index += 1
        xyxy, score, class_id = detections.xyxy, detections.score, detections.class_id
        num_tracks = self._tid.shape[0]

        # Predict (in place) and associate in C++; det_track[j] = index of the matched track or -1.
        track_boxes = _native.kalman_predict(self._mean, self._cov, self._miss, self._kf.std_position,
                                             self._kf.std_velocity, dt_frames)
        grow = jump = None
        det_grow = 0.0
        if num_tracks and (self.buffer_rel > 0 or self.max_jump_rel > 0):
            # Detections get the tracks' median widening, so a pair keeps its IoU scale; the jump gate
            # applies to confirmed tracks only (a tentative one has no velocity yet).
            grow, jump, det_grow = _native.bytetrack_gates(self._last_s, self._tid, now, self.fps, self.buffer_rel,
                                                           self.max_buffer_rel, self.max_jump_rel)
            if self.buffer_rel <= 0:
                grow, det_grow = None, 0.0
            if self.max_jump_rel <= 0:
                jump = None
        forbid = look = None
        if app is not None and num_tracks and xyxy.shape[0]:
            look = _native.appearance_distances(self._app, self._has_app, app)  # NaN where either has none
            forbid = (look > np.float32(self.appearance_gate)).view(np.uint8)
        if self.motion_gate > 0 and num_tracks and xyxy.shape[0]:
            forbid = _native.position_gate(self._mean, self._cov, self._tid, xyxy, self._kf.std_position,
                                           self.motion_gate, forbid)
        det_track = _native.associate_bytetrack(
            track_boxes, self._tid, self._miss, xyxy, score, self.high_score, self.low_score,
            self._max_cost_high, self._max_cost_low, self._max_cost_tentative, self.fuse_score, self.revive_lost,
            grow, det_grow, jump, forbid, self.tentative_low, self.low_max_growth, self.low_fit_margin,
            self.tentative_fit_margin, look, self.low_look_margin)
        # Kalman update, hits, misses, class votes, confirmation and the output ids, in C++.
        try:
            committed = self._commit(det_track, xyxy, class_id, now)
        except ValueError:
            # The kernel checks every argument before it changes anything; a class id beyond the votes'
            # columns (the first box of a new class) is the one refusal that is ours to mend.
            if not class_id.shape[0] or int(class_id.max()) < self._votes.shape[1]:
                raise
            self._grow_votes(int(class_id.max()) + 1)
            committed = self._commit(det_track, xyxy, class_id, now)
        confirmed, track_id, out_class, keep, all_kept = committed
        self._confirmed_count += confirmed
        # High-score detections give their tracks their appearance; unmatched ones start tracks.
        take, new = _native.bytetrack_split(det_track, score, self.high_score,
                                            max(self.high_score, self.new_track_score))
        if app is not None:
            _native.blend_appearance(self._app, self._has_app, det_track, app, take, self.appearance_ema)
        if not all_kept:
            self._keep_only(keep)
        if new.size:
            size = (frame.shape[1], frame.shape[0]) if isinstance(frame, np.ndarray) and frame.ndim == 3 else frame_size
            if size is not None and not (len(size) == 2 and all(isinstance(v, (int, float, np.integer, np.floating))
                                                                 and 0 < v < math.inf for v in size)):
                raise InputError(f"ByteTracker.update: frame_size must be (width, height) in pixels, got {size!r}")
            track_id[new] = self._start(xyxy[new], class_id[new], now, None if app is None else app[new], size)
        return Detections._trusted(xyxy, score, out_class, track_id)  # the checked input, with ids

    def _appearance_of(self, detections: Detections, frame: Optional[np.ndarray],
                       appearance: Optional[np.ndarray]) -> Optional[np.ndarray]:
        """The detections' appearance vectors, or None when the gate is off or nothing was given."""
        if self.appearance_gate >= 1.0:
            return None
        if appearance is not None:
            app = np.ascontiguousarray(appearance, np.float32)
            if app.shape != (len(detections), APPEARANCE_DIM):
                raise InputError(f"ByteTracker.update: appearance must be ({len(detections)}, {APPEARANCE_DIM}) "
                                 f"float32, got shape {app.shape}")
            return app
        if frame is None:
            return None
        return box_appearance(frame, detections.xyxy)

    def live_boxes(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the tracker holds its live tracks now, for a motion measurement before :meth:`coast`.

        Returns:
            boxes (T, 4) float32 x1, y1, x2, y2 (the Kalman state, source pixels), track_id (T,) int32 as
            :meth:`update` outputs them (``-2 - k`` while tentative) and seen (T,) bool: the track was
            matched on the last detector frame (only those are moved and output by :meth:`coast`). Rows
            are in the tracker's internal order, which holds until the next :meth:`update`.
        """
        ids = np.where(self._tid >= 0, self._tid, -2 - self._uid).astype(np.int32)
        return xyah_to_xyxy(self._mean), ids, self._miss == 0

    def coast(self, moved_xyxy: Optional[np.ndarray] = None, valid: Optional[np.ndarray] = None, *,
              timestamp_s: Optional[float] = None, measure: bool = False,
              gate: Optional[float] = None, output_all: bool = False) -> Detections:
        """Advance to a frame the detector skipped, moving tracks by a measured motion (e.g. optical flow).

        Every track is predicted by its Kalman filter to this frame's time; then a track seen on the last
        detector frame whose row of ``valid`` is True is put where ``moved_xyxy`` says instead (its centre
        and height; velocity and aspect are kept), or, with ``measure``, that box is fed to the filter as
        a measurement (which also corrects the velocity). The next :meth:`update` associates detections
        against these positions. Nothing else changes: no track is confirmed, aged or dropped, and
        ``frame_index`` still counts :meth:`update` calls.

        Args:
            moved_xyxy: (T, 4) boxes in the rows of :meth:`live_boxes` (None: Kalman prediction only).
            valid: (T,) bool, which rows of ``moved_xyxy`` to use (None: all).
            timestamp_s: this frame's time (increasing); default one nominal frame after the last call.
            measure: apply the moved boxes as Kalman measurements rather than overwriting the position.
            gate: if set, a moved box whose centre is further than this many box heights per nominal
                frame (since the last call) from the Kalman prediction is not used: the track keeps its
                prediction and is not output. It rejects flow that followed someone walking past, or
                the background, instead of the track.
            output_all: return every track seen on the last detector frame, moved or only predicted.

        Returns:
            The moved tracks (seen on the last detector frame, valid and within the gate; with
            ``output_all`` every track seen on the last detector frame) as detections: their boxes,
            score 1.0, the track's class and id (``-2 - k`` while tentative, see :meth:`update`), so
            counters can follow them on every frame.

        Raises:
            InputError: wrong shapes, or a timestamp that is not finite or goes backwards.
        """
        previous = self._now_s
        now = self._next_time(timestamp_s, "coast")
        num_tracks = self._tid.shape[0]
        use = self._miss == 0
        if moved_xyxy is not None:
            moved = np.asarray(moved_xyxy, np.float32)
            if moved.shape != (num_tracks, 4) or not np.isfinite(moved).all():
                raise InputError(f"ByteTracker.coast: moved_xyxy must be finite ({num_tracks}, 4), got {moved.shape}")
            if valid is not None:
                valid = np.asarray(valid, bool)
                if valid.shape != (num_tracks,):
                    raise InputError(f"ByteTracker.coast: valid must be ({num_tracks},), got {valid.shape}")
                use = use & valid
        else:
            use = np.zeros(num_tracks, bool)
        dt_frames = 0.0 if previous is None else (now - previous) * self.fps
        self._now_s = now
        _native.kalman_predict(self._mean, self._cov, self._miss, self._kf.std_position, self._kf.std_velocity,
                               dt_frames)
        rows = np.nonzero(use)[0]
        if rows.size and gate is not None:
            centre = 0.5 * (moved[rows, :2] + moved[rows, 2:])
            deviation = np.hypot(*(centre - self._mean[rows, :2]).T)
            rows = rows[deviation <= float(gate) * max(dt_frames, 1e-9) * np.maximum(self._mean[rows, 3], 1.0)]
        if rows.size:
            if measure:
                _native.kalman_update(self._mean, self._cov, rows.astype(np.int64), moved[rows],
                                      self._kf.std_position)
            else:
                xyah = xyxy_to_xyah(moved[rows])
                self._mean[rows, 0:2] = xyah[:, 0:2]
                self._mean[rows, 3] = xyah[:, 3]
        if output_all:
            rows = np.nonzero(self._miss == 0)[0]
        boxes = xyah_to_xyxy(self._mean[rows])
        boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]), np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        ids = self._tid[rows]
        return Detections(boxes, np.ones(rows.size, np.float32), self._cls[rows],
                          np.where(ids >= 0, ids, -2 - self._uid[rows]).astype(np.int32))

    def _commit(self, det_track: np.ndarray, xyxy: np.ndarray, class_id: np.ndarray, now: float) -> tuple:
        return _native.bytetrack_commit(det_track, xyxy, class_id, self._mean, self._cov, self._tid, self._uid,
                                        self._hits, self._miss, self._last_s, self._cls, self._votes,
                                        self._kf.std_position, now, self.lost_s, self.min_hits)

    def _grow_votes(self, num_classes: int) -> None:
        if num_classes > self._votes.shape[1]:
            grown = np.zeros((self._votes.shape[0], num_classes), np.int32)
            grown[:, : self._votes.shape[1]] = self._votes
            self._votes = grown

    def _keep_only(self, keep: np.ndarray) -> None:
        """Forget every track not marked in ``keep`` (T,) bool."""
        self._mean, self._cov = self._mean[keep], self._cov[keep]
        self._tid, self._hits, self._miss = self._tid[keep], self._hits[keep], self._miss[keep]
        self._uid = self._uid[keep]
        self._last_s = self._last_s[keep]
        self._cls, self._votes = self._cls[keep], self._votes[keep]
        self._app, self._has_app = self._app[keep], self._has_app[keep]

    def _start(self, xyxy: np.ndarray, class_id: np.ndarray, now: float, app: Optional[np.ndarray],
               frame_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """Append tracks (confirmed at once if min_hits == 1); returns their output ids (see update)."""
        count = xyxy.shape[0]
        mean, cov = _native.kalman_initiate(xyxy, self._kf.std_position, self._kf.std_velocity)
        if self.entry_speed_rel > 0 and frame_size is not None:
            mean[:, 4:6] = _entry_velocity(xyxy, frame_size, self.entry_speed_rel / self.fps * mean[:, 3])
        uids = np.arange(self._next_id, self._next_id + count, dtype=np.int64)
        self._next_id += count
        if self.min_hits <= 1:
            ids = uids
            self._confirmed_count += count
        else:
            ids = np.full(count, -1, np.int64)
        self._grow_votes(int(class_id.max()) + 1)
        votes = np.zeros((count, self._votes.shape[1]), np.int32)
        votes[np.arange(count), class_id] = 1
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        self._tid = np.concatenate([self._tid, ids])
        self._uid = np.concatenate([self._uid, uids])
        self._hits = np.concatenate([self._hits, np.ones(count, np.int64)])
        self._miss = np.concatenate([self._miss, np.zeros(count, np.int64)])
        self._last_s = np.concatenate([self._last_s, np.full(count, now)])
        self._cls = np.concatenate([self._cls, class_id.astype(np.int32)])
        self._votes = np.concatenate([self._votes, votes])
        if app is None:
            app = np.zeros((count, APPEARANCE_DIM), np.float32)
        self._app = np.concatenate([self._app, app.astype(np.float32)])
        self._has_app = np.concatenate([self._has_app, has_appearance(app)])
        return np.where(ids >= 0, ids, -2 - uids).astype(np.int32)

