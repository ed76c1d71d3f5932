"""Counting judged against by-eye truth: load the truth files, replay trackers and counters, match events.

The truth of a video is ``benchmarks/truth/<video>.json`` (lines, zones, which half each belongs to) and
one file per line or zone under ``benchmarks/truth/<video>/`` with the events seen by eye (frame,
direction, note) and the non-events (see ``benchmarks/truth/README.md``). Everything here runs on frozen
detections (:mod:`benchmarks.frozen`), so every tracker and counter sees exactly the same boxes.

Four stacks are compared, so that the tracker and the counter are each judged alone:

- ``ours``: :class:`ByteTracker` + our :class:`LineCounter` / :class:`ZoneCounter`;
- ``peer``: ``trackers`` ByteTrack + supervision ``LineZone`` / ``PolygonZone`` (as their docs show);
- ``sv_on_ours``: supervision's counters on our tracks;
- ``ours_on_peer``: our counters on the peer's tracks.

A detector *stride* s processes frames 0, s, 2s, ... (what a board that manages 1/s of the camera's
rate sees); each stack gets the real time between processed frames (ours through timestamps, the peer
through its ``frame_rate``). An event matches a truth event of the same direction within ``tol_frames``
(±5 video frames), each used once, nearest first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from edge_runtime.vision.counting import LineCounter, ZoneCounter
from edge_runtime.vision.detections import Detections
from edge_runtime.vision.tracking import ByteTracker

from .frozen import TRUTH_DIR, FrozenDetections

if TYPE_CHECKING:
    from edge_runtime.vision.flow import BoxFlow

__all__ = ["TruthItem", "Truth", "load_truth", "replay", "score", "STACKS", "VIDEOS", "JOB_CLASSES",
           "make_counter", "flow_frames"]

VIDEOS = ("vtest-video", "bikes-video")
#: The classes the built-in job tracks and counts (its ``model.classes``: the detector's upright-person class;
#: its "fallen person" class also fires on passing cars in bikes.mp4). Every stack replays these.
JOB_CLASSES: Tuple[int, ...] = (0,)
_SPEC = {"vtest-video": "vtest", "bikes-video": "bikes"}
Event = Tuple[int, str]  # (frame, direction)


@dataclass
class TruthItem:
    """One line or zone with its by-eye events."""

    name: str
    kind: str  # "line" | "zone"
    geometry: dict  # {"start", "end"} or {"polygon"}
    split: str  # "tune" | "report"
    events: List[Event] = field(default_factory=list)
    non_events: List[dict] = field(default_factory=list)
    note: str = ""

    @property
    def undecidable(self) -> List[Tuple[int, int]]:
        """(first, last) frames of the passes the truth marks undecidable (``"undecidable": true``: someone
        passing exactly at a segment's end, or lost from view at the line), where a count either way is
        right: see :func:`score`."""
        return [(int(n["frames"][0]), int(n["frames"][1])) for n in self.non_events
                if n.get("undecidable") and isinstance(n.get("frames"), list) and len(n["frames"]) == 2]


@dataclass
class Truth:
    video: str
    fps: float
    frames: int
    items: List[TruthItem]


def load_truth(video: str, truth_dir: Path = TRUTH_DIR) -> Truth:
    """The spec and the by-eye events of a built-in video (items without an events file are skipped)."""
    stem = _SPEC.get(video, video)
    spec = json.loads((truth_dir / f"{stem}.json").read_text())
    items: List[TruthItem] = []
    for kind, key in (("line", "lines"), ("zone", "zones")):
        for raw in spec.get(key, []):
            path = truth_dir / stem / f"{raw['name']}.json"
            if not path.exists():
                continue
            data = json.loads(path.read_text())
            geometry = {"polygon": raw["polygon"]} if kind == "zone" else {"start": raw["start"], "end": raw["end"]}
            items.append(TruthItem(raw["name"], kind, geometry, raw.get("split", "report"),
                                   sorted((int(e["frame"]), str(e["direction"])) for e in data.get("events", [])),
                                   data.get("non_events", []), raw.get("kind", "")))
    return Truth(video, float(spec["fps"]), int(spec["frames"]), items)


# ------------------------------------------------------------------------------------------- stacks


def make_counter(item: TruthItem, fps: float, **options):
    if item.kind == "zone":
        return ZoneCounter(item.name, item.geometry["polygon"], nominal_fps=fps, **options)
    return LineCounter(item.name, item.geometry["start"], item.geometry["end"], nominal_fps=fps, **options)


def _dedupe_rows(d: Detections) -> np.ndarray:
    """(N,) bool: the rows kept when dropping rows that repeat a confirmed id in one frame."""
    keep = np.ones(len(d), bool)
    ids = d.track_id
    if ids is None or len(d) < 2:
        return keep
    seen: set = set()
    for i, t in enumerate(ids.tolist()):
        if t >= 0:
            keep[i] = t not in seen
            seen.add(t)
    return keep


def _dedupe(d: Detections) -> Detections:
    """Drop rows repeating a confirmed id in one frame (a peer may emit one box twice)."""
    keep = _dedupe_rows(d)
    return d if keep.all() else d[keep]


_THUMBS: Dict[str, np.ndarray] = {}


def scene_cuts(video: str, stride: int, threshold: float = 30.0, frames: Optional[Sequence[int]] = None) -> set:
    """Processed frames (0, stride, ..., or ``frames``) that the pipeline's :class:`SceneCutDetector` flags."""
    from edge_runtime.assets import ensure
    from edge_runtime.vision.scene import SceneCutDetector

    if video not in _THUMBS:
        import cv2

        detector = SceneCutDetector(threshold)
        capture = cv2.VideoCapture(str(ensure(video)))
        thumbs = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            thumbs.append(detector.thumbnail(image))
        capture.release()
        _THUMBS[video] = np.stack(thumbs)
    thumbs = _THUMBS[video]
    frames = list(range(0, thumbs.shape[0], stride)) if frames is None else [f for f in frames if f < thumbs.shape[0]]
    return {f for a, f in zip(frames, frames[1:]) if float(np.abs(thumbs[f] - thumbs[a]).mean()) > threshold}


def irregular_frames(num_frames: int, stride: int, seed: int) -> List[int]:
    """The frames a live 'latest' run keeps up with when it processes every ``stride``-th frame on average,
    as it does: irregularly. Gaps are drawn uniformly from stride - 1, stride and stride + 1, from a first frame
    drawn below ``stride`` (seeded, so a run is repeatable). Stride >= 2."""
    if stride < 2:
        raise ValueError(f"irregular_frames: stride must be >= 2, got {stride}")
    rng = np.random.default_rng(seed)
    frames, f = [], int(rng.integers(0, stride))
    while f < num_frames:
        frames.append(f)
        f += int(rng.integers(stride - 1, stride + 2))
    return frames


def track_ours(frozen: FrozenDetections, stride: int, make_tracker: Optional[Callable[[], ByteTracker]] = None,
               min_score: float = 0.1, cuts: Iterable[int] = (), flow: Optional["BoxFlow"] = None,
               video: Optional[str] = None, flow_measure: bool = False, flow_gate: Optional[float] = None,
               flow_output_all: bool = False, flow_from_detections: bool = False,
               looks_out: Optional[Dict[int, np.ndarray]] = None, classes: Optional[Sequence[int]] = None,
               frames: Optional[Sequence[int]] = None) -> List[Tuple[int, float, Detections, bool]]:
    """(frame, time_s, tracked detections, scene cut here) for frames 0, stride, ... through our tracker,
    reset at the scene cuts as the pipeline does.

    ``looks_out``, if given, is filled with {frame: the appearance vectors the tracker used on it, in the
    order of that frame's tracked detections} (as the pipeline hands them to the counters); frames where the
    tracker used none (gate off, or no ``video``) and frames the detector skipped are left out. ``classes``:
    only the frozen detections of these classes are tracked (as a job with ``model.classes`` sees them);
    None = all. ``frames``: the frames processed, in order, instead of 0, stride, ... (see
    :func:`irregular_frames`; not with ``flow``).

    With ``flow`` (a :class:`~edge_runtime.vision.flow.BoxFlow`; needs ``video``), the frames the detector
    skips are decoded too: on each, the tracks seen on the last detector frame are moved by optical flow
    from the previous frame (:meth:`ByteTracker.coast`) and the moved tracks are returned for that frame,
    so the counters see every frame. Flow is not run across a frame-to-frame scene cut."""
    tracker = make_tracker() if make_tracker else ByteTracker.for_video(frozen.fps)
    cuts = set(cuts)
    out = []
    looks = appearances(video, frozen, min_score) if video is not None and tracker.appearance_gate < 1 else None

    def update(f: int, t: float) -> Detections:
        boxes, look = frozen.frame(f, min_score), None if looks is None else looks[f]
        if classes is not None:
            keep = np.isin(boxes.class_id, list(classes))
            boxes, look = boxes[keep], None if look is None else look[keep]
        d = tracker.update(boxes, timestamp_s=t, appearance=look, frame_size=frozen.frame_size)
        if looks_out is not None and tracker.last_appearance is not None:
            looks_out[f] = tracker.last_appearance
        return d

    if flow is None:
        for f in (range(0, frozen.num_frames, stride) if frames is None else frames):
            t = f / frozen.fps
            if f in cuts:
                tracker.reset()
            out.append((f, t, update(f, t), f in cuts))
        return out
    if video is None:
        raise ValueError("track_ours: flow needs the video's name")
    if frames is not None:
        raise ValueError("track_ours: flow runs at a fixed stride (frames is not supported with it)")
    greys = flow_frames(video, flow)
    frame_cuts = scene_cuts(video, 1)  # between consecutive frames: flow means nothing across them
    broken = False
    shown: Dict[int, np.ndarray] = {}  # track id -> its box as last given to the counters
    for f in range(0, min(frozen.num_frames, len(greys))):
        t = f / frozen.fps
        if f % stride == 0:
            if f in cuts:
                tracker.reset()
            d = update(f, t)
            shown = {int(k): b for k, b in zip(d.track_id, d.xyxy) if k != -1}
            out.append((f, t, d, f in cuts))
            broken = False
            continue
        broken = broken or f in frame_cuts
        if broken:
            tracker.coast(timestamp_s=t)
            continue
        boxes, ids, seen = tracker.live_boxes()
        moved = boxes.copy()
        valid = np.zeros(len(boxes), bool)
        rows = np.nonzero(seen)[0]
        if rows.size:
            if flow_from_detections:  # flow the boxes the counters saw; shift the Kalman state by as much
                start = np.stack([shown.get(int(ids[r]), boxes[r]) for r in rows])
                end, valid[rows] = flow.move(greys[f - 1], greys[f], start)
                moved[rows] = boxes[rows] + (end - start)
                for r, b in zip(rows, end):
                    shown[int(ids[r])] = b
            else:
                moved[rows], valid[rows] = flow.move(greys[f - 1], greys[f], boxes[rows])
        d = tracker.coast(moved, valid, timestamp_s=t, measure=flow_measure, gate=flow_gate,
                          output_all=flow_output_all)
        if flow_from_detections and len(d):
            d = Detections(np.stack([shown[int(k)] for k in d.track_id]).astype(np.float32), d.score, d.class_id,
                           d.track_id)
        if len(d):
            out.append((f, t, d, False))
    return out


_FLOW_FRAMES: Dict[tuple, List[np.ndarray]] = {}
_APPEARANCES: Dict[tuple, List[np.ndarray]] = {}


def appearances(video: str, frozen: FrozenDetections, min_score: float) -> List[np.ndarray]:
    """Per frame, the appearance vectors of the frozen detections (as the tracker sees them), cached.

    The pipeline computes them from the frame it is tracking; replays take them from the decoded video,
    in the frozen detections' order."""
    key = (video, frozen.model_sha256, min_score)
    if key not in _APPEARANCES:
        import cv2

        from edge_runtime.assets import ensure
        from edge_runtime.vision.appearance import box_appearance

        capture = cv2.VideoCapture(str(ensure(video)))
        looks = []
        for f in range(frozen.num_frames):
            ok, image = capture.read()
            if not ok:
                raise RuntimeError(f"appearances: {video} ends at frame {f}, its frozen detections at {frozen.num_frames}")
            looks.append(box_appearance(image, frozen.frame(f, min_score).xyxy))
        capture.release()
        _APPEARANCES[key] = looks
    return _APPEARANCES[key]


def flow_frames(video: str, flow: "BoxFlow") -> List[np.ndarray]:
    """Every frame of a built-in video as a flow frame (:meth:`BoxFlow.grey`), cached per scale."""
    key = (video, flow.scale)
    if key not in _FLOW_FRAMES:
        import cv2

        from edge_runtime.assets import ensure

        capture = cv2.VideoCapture(str(ensure(video)))
        greys = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            greys.append(flow.grey(image))
        capture.release()
        _FLOW_FRAMES[key] = greys
    return _FLOW_FRAMES[key]


def track_peer(frozen: FrozenDetections, stride: int, min_score: float = 0.1,
               classes: Optional[Sequence[int]] = None, frames: Optional[Sequence[int]] = None
               ) -> List[Tuple[int, float, Detections]]:
    """The same through ``trackers`` ByteTrack at its defaults, told the processed frame rate (the mean one
    with ``frames``); ``classes``: only these classes' detections are given to it (as a supervision user
    filters ``class_id``)."""
    import supervision as sv
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker(frame_rate=frozen.fps / stride)
    out = []
    for f in (range(0, frozen.num_frames, stride) if frames is None else frames):
        d = frozen.frame(f, min_score)
        if classes is not None:
            d = d[np.isin(d.class_id, list(classes))]
        r = tracker.update(sv.Detections(xyxy=d.xyxy, confidence=d.score, class_id=d.class_id))
        tid = np.full(len(r), -1, np.int32) if r.tracker_id is None else np.asarray(r.tracker_id, np.int32)
        out.append((f, f / frozen.fps, Detections(np.asarray(r.xyxy, np.float32), np.asarray(r.confidence, np.float32),
                                                  np.asarray(r.class_id, np.int32), tid), False))
    return out


def count_ours(tracked: Sequence[Tuple[int, float, Detections]], item: TruthItem, fps: float,
               frame_size: Optional[Tuple[int, int]] = None, looks: Optional[Dict[int, np.ndarray]] = None,
               **options) -> List[Event]:
    """Our counter's (frame, direction) events over tracked frames; ``looks``: {frame: appearance vectors in
    the order of that frame's detections} (see :func:`track_ours`), for the counter's stitching."""
    counter = make_counter(item, fps, **options)
    events = []
    for f, t, d, cut in tracked:
        if cut:
            events += counter.reset_tracks(f, t)
        keep = _dedupe_rows(d)
        look = None if looks is None else looks.get(f)
        if not keep.all():
            d, look = d[keep], None if look is None else look[keep]
        events += counter.update(d, frame_index=f, timestamp_s=t, frame_size=frame_size, appearance=look)
    events += counter.flush()
    return sorted((int(e.crossed_frame), e.direction.value) for e in events)


def count_supervision(tracked: Sequence[Tuple[int, float, Detections]], item: TruthItem) -> List[Event]:
    """supervision's LineZone (all four corners, its default) or PolygonZone entries/exits per track id."""
    import supervision as sv

    events: List[Event] = []
    if item.kind == "line":
        zone = sv.LineZone(start=sv.Point(*item.geometry["start"]), end=sv.Point(*item.geometry["end"]))
        for f, _, d, _ in tracked:
            d = _dedupe(d)
            cin, cout = zone.trigger(sv.Detections(xyxy=d.xyxy, confidence=d.score, class_id=d.class_id,
                                                   tracker_id=d.track_id))
            # supervision's "in" is a move to the side where (end - start) x (p - start) > 0 counted the
            # other way round from ours (checked with a box walking right across an upward line: it
            # reports "out"); map its events onto our direction so both are judged on the same truth.
            events += [(f, "out")] * int(cin.sum()) + [(f, "in")] * int(cout.sum())
        return sorted(events)
    polygon = sv.PolygonZone(np.array(item.geometry["polygon"], np.int32))
    inside: Dict[int, bool] = {}
    for f, _, d, _ in tracked:
        d = _dedupe(d)
        confirmed = d.track_id >= 0
        d = d[confirmed]
        if not len(d):
            continue
        now = polygon.trigger(sv.Detections(xyxy=d.xyxy, confidence=d.score, class_id=d.class_id,
                                            tracker_id=d.track_id))
        for tid, is_in in zip(d.track_id.tolist(), now.tolist()):
            was = inside.get(tid)
            if was is not None and was != is_in:
                events.append((f, "enter" if is_in else "exit"))
            inside[tid] = bool(is_in)
    return sorted(events)


STACKS = ("ours", "peer", "sv_on_ours", "ours_on_peer")


def replay(frozen: FrozenDetections, items: Iterable[TruthItem], stride: int, *,
           stacks: Sequence[str] = STACKS, make_tracker: Optional[Callable[[], ByteTracker]] = None,
           counter_options: Optional[Dict[str, dict]] = None, video: Optional[str] = None,
           flow: Optional["BoxFlow"] = None, flow_measure: bool = False, flow_gate: Optional[float] = None,
           flow_output_all: bool = False, flow_from_detections: bool = False,
           classes: Optional[Sequence[int]] = JOB_CLASSES, frames: Optional[Sequence[int]] = None
           ) -> Dict[str, Dict[str, List[Event]]]:
    """{stack: {item name: events}} at one stride. counter_options: {"line"/"zone": kwargs} for ours;
    video: the built-in video's name, to find its scene cuts (None = no cut handling); flow: a
    :class:`~edge_runtime.vision.flow.BoxFlow` to move our tracks on the skipped frames (see
    :func:`track_ours`; needs ``video``; the peer stack is unchanged); classes: both trackers see only these
    classes' detections, as the job does (None = all); frames: the frames processed instead of 0, stride, ...
    (see :func:`irregular_frames`)."""
    counter_options = counter_options or {}
    items = list(items)
    cuts = scene_cuts(video, stride, frames=frames) if video else ()
    looks: Dict[int, np.ndarray] = {}
    ours = track_ours(frozen, stride, make_tracker, cuts=cuts, flow=flow, video=video,
                      flow_measure=flow_measure, flow_gate=flow_gate,
                      flow_output_all=flow_output_all, flow_from_detections=flow_from_detections,
                      looks_out=looks, classes=classes, frames=frames) if {"ours", "sv_on_ours"} & set(stacks) else None
    peer = track_peer(frozen, stride, classes=classes, frames=frames) if {"peer", "ours_on_peer"} & set(stacks) \
        else None
    result: Dict[str, Dict[str, List[Event]]] = {}
    for stack in stacks:
        tracked = ours if stack in ("ours", "sv_on_ours") else peer
        ours_counter = stack in ("ours", "ours_on_peer")
        result[stack] = {
            item.name: (count_ours(tracked, item, frozen.fps, frozen.frame_size, looks if stack == "ours" else None,
                                   **counter_options.get(item.kind, {}))
                        if ours_counter else count_supervision(tracked, item))
            for item in items}
    return result


# -------------------------------------------------------------------------------------------- scoring


def _matched(predicted: Sequence[Event], truth: Sequence[Event], tol_frames: int) -> Tuple[set, set]:
    """Indices of the predicted and true events paired: same direction within tol_frames, one-to-one, as
    many pairs as possible and, among those pairings, the least total frame difference.

    Pairing the closest pairs first can pair fewer: two people crossing together at f287 and f288, counted
    at f282 and f285, give 285-287 first and leave 282-288 (6 frames) unpaired, where 282-287 and 285-288
    pair both within 5 frames."""
    from scipy.optimize import linear_sum_assignment  # the benchmarks' dependency, not the runtime's

    if not predicted or not truth:
        return set(), set()
    gap = np.array([[abs(p[0] - t[0]) if p[1] == t[1] else tol_frames + 1 for t in truth] for p in predicted],
                   np.float64)
    feasible = gap <= tol_frames
    # Every pair is worth more than any sum of frame differences, so the most pairs win, then the closest.
    worth = np.where(feasible, (tol_frames + 1.0) * (len(predicted) + len(truth)) - gap, 0.0)
    rows, cols = linear_sum_assignment(worth, maximize=True)
    keep = feasible[rows, cols]
    return {int(i) for i in rows[keep]}, {int(j) for j in cols[keep]}


def score(predicted: Sequence[Event], truth: Sequence[Event], tol_frames: int = 5,
          undecidable: Sequence[Tuple[int, int]] = ()) -> dict:
    """Event precision / recall and per-direction count errors (predicted - true).

    ``undecidable``: (first, last) frame spans of passes the truth could not decide (someone passing
    exactly at a segment's end). A predicted event matching no true event and falling in such a span
    (widened by ``tol_frames``) is neither right nor wrong: it is left out of every figure and counted
    in ``ignored``. ``fp_strict`` / ``precision_strict`` count it as a false event.

    ``false_events`` and ``missed_events`` list the unmatched predicted (not ignored) and true events as
    [frame, direction], so a row that misses its target says which crossings it got wrong.
    """
    used_p, _ = _matched(predicted, truth, tol_frames)
    dropped = {i for i, (f, _) in enumerate(predicted) if i not in used_p
               and any(a - tol_frames <= f <= b + tol_frames for a, b in undecidable)}
    kept = [e for i, e in enumerate(predicted) if i not in dropped]
    kept_p, kept_t = _matched(kept, truth, tol_frames)
    tp, fp, fn = len(kept_p), len(kept) - len(kept_p), len(truth) - len(kept_p)
    directions = sorted({d for _, d in truth} | {d for _, d in kept})
    errors = {d: sum(1 for _, x in kept if x == d) - sum(1 for _, x in truth if x == d) for d in directions}
    return {"tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
            "count_error": errors,
            "max_abs_count_error": max((abs(v) for v in errors.values()), default=0),
            "predicted": len(kept), "truth": len(truth), "ignored": len(dropped),
            "fp_strict": fp + len(dropped),
            "precision_strict": tp / (tp + fp + len(dropped)) if tp + fp + len(dropped) else 1.0,
            "false_events": [[int(f), d] for i, (f, d) in enumerate(kept) if i not in kept_p],
            "missed_events": [[int(f), d] for j, (f, d) in enumerate(truth) if j not in kept_t]}
