"""Identity quality of trackers against the hand-checked identity truth of vtest.avi.

Question: on the same frozen detections, how well does each tracker keep one id per person through
crossings and occlusions (IDF1, ID switches), and how much of the truth does it cover (MOTA)?

Truth: ``benchmarks/truth/vtest_identity.csv``, MOTChallenge gt format, 8 people on video frames 200-399
(MOT frame = video frame index + 1); how it was made and checked is in ``benchmarks/truth/IDENTITY.md``.
Detections: the committed YOLOv8s output (``benchmarks/truth/detections/``, scores down to 0.05), fed
unfiltered to every tracker, which applies its own thresholds. Each tracker starts cold on the clip's
first frame.

Metrics: ``trackers.eval`` (Roboflow ``trackers``, installed for the peer trackers), whose CLEAR and
Identity code is a re-implementation of TrackEval's, matched at IoU >= 0.5. ``motmetrics`` was the other
candidate but its latest release (1.4.0) calls ``np.asfarray``, removed in NumPy 2, and needs pandas.
As in TrackEval's MOT17 preprocessing, predicted boxes paired (optimal assignment, IoU >= 0.5) with a
distractor region of the truth (class 8 rows: a garment on the lawn that the detector reports on every
frame) are removed before scoring, so they count neither as false positives nor as ids.

Trackers: ours, ``ByteTracker.for_video(fps)`` with its defaults; the ``trackers`` package's ByteTrack,
SORT, OC-SORT, BoT-SORT, C-BIoU and McByte with their documented defaults except ``frame_rate``, plus
camera-motion compensation off for BoT-SORT and McByte (the camera is fixed and only detections are
fed, no frames; neither has a ReID model in this package; McByte's mask manager is off by default).
Their defaults expect higher detector scores (new tracks at >= 0.7, high stage at >= 0.6) than this
detector gives the people of the clip (median 0.48; 14 % of the truth boxes have a detection scoring
>= 0.6, 1 % >= 0.7), so ``main`` also runs each peer with the score thresholds set to ours ("@ours").

Stride: with stride s only every s-th frame is fed (as when the detector runs on every s-th frame) and
only those frames are scored; each tracker is then built for the rate it is called at, fps / s, so that
time-based settings (lost-track buffers) keep their meaning in seconds.

Frag is TrackEval's: a truth id matched again after any unmatched stretch, including stretches where
the person is hidden or out of the picture and has no truth box, so the truth itself scores Frag 4.

Run: ``python -m benchmarks.identity [--strides 1 3] [--cross-check] [--switches]``

Shape legend: K boxes of one frame; ids (K,) int64, boxes (K, 4) float64 x1, y1, x2, y2 in pixels.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

TRUTH_CSV = Path(__file__).resolve().parent / "truth" / "vtest_identity.csv"
IOU_THRESHOLD = 0.5
PEDESTRIAN_CLASS = 1
DISTRACTOR_CLASSES = (2, 7, 8, 12)  # as TrackEval's MOT17: person on vehicle, static person, distractor, reflection

FrameBoxes = Tuple[np.ndarray, np.ndarray]  # (ids (K,), xyxy (K, 4))
TrackOutputs = Dict[int, FrameBoxes]  # video frame index -> confirmed tracks output on that frame
Truth = Tuple[int, int, Dict[int, FrameBoxes]]  # (first frame, last frame, video frame index -> truth)
TrackerFactory = Callable[[float], object]  # fps of the calls -> a fresh tracker

__all__ = ["load_identity_truth", "load_ignore_regions", "evaluate_identity", "id_switches",
           "run_tracker_on_frozen", "make_ours", "PEERS", "peer_with_our_thresholds", "TRUTH_CSV"]


# ---------------------------------------------------------------------------------------------- truth


def _read_mot_gt(path: Path) -> List[Tuple[int, int, np.ndarray, float, int]]:
    """Rows (video frame index, id, xyxy (4,), conf, class) of a MOTChallenge gt file."""
    rows = []
    with open(path, newline="") as f:
        for rec in csv.reader(f):
            if not rec or rec[0].startswith("#"):
                continue
            frame, tid, x, y, w, h, conf, cls = (float(v) for v in rec[:8])
            rows.append((int(frame) - 1, int(tid), np.array([x, y, x + w, y + h]), conf, int(cls)))
    return rows


def load_identity_truth(path: Path = TRUTH_CSV) -> Truth:
    """The scored truth boxes of a MOTChallenge gt file: pedestrian rows (class 1) with conf != 0.

    Returns ``(first_frame, last_frame, frames)``: the clip's first and last video frame index (0-based,
    inclusive; the file's frame column is this + 1) and, for every frame of the clip, its truth as
    ``(ids (K,) int64, xyxy (K, 4) float64)`` (K may be 0). Distractor regions (conf 0 rows) are not
    in it: pass :func:`load_ignore_regions` to :func:`evaluate_identity` to score as MOTChallenge does.
    """
    rows = _read_mot_gt(Path(path))
    if not rows:
        raise ValueError(f"{path}: no rows")
    first, last = min(r[0] for r in rows), max(r[0] for r in rows)
    frames: Dict[int, FrameBoxes] = {}
    for f in range(first, last + 1):
        keep = [r for r in rows if r[0] == f and r[3] != 0 and r[4] == PEDESTRIAN_CLASS]
        frames[f] = (np.array([r[1] for r in keep], np.int64),
                     np.array([r[2] for r in keep], np.float64).reshape(-1, 4))
    return first, last, frames


def load_ignore_regions(path: Path = TRUTH_CSV) -> Dict[int, np.ndarray]:
    """Video frame index -> (M, 4) xyxy distractor regions (rows of a distractor class) of a gt file."""
    out: Dict[int, List[np.ndarray]] = {}
    for f, _, xyxy, _, cls in _read_mot_gt(Path(path)):
        if cls in DISTRACTOR_CLASSES:
            out.setdefault(f, []).append(xyxy)
    return {f: np.array(v, np.float64).reshape(-1, 4) for f, v in out.items()}


# ------------------------------------------------------------------------------------------ scoring


def _drop_ignored(pred_ids: np.ndarray, pred_xyxy: np.ndarray, truth_xyxy: np.ndarray,
                  ignore_xyxy: np.ndarray) -> FrameBoxes:
    """Remove predictions that the optimal assignment against truth + ignore boxes pairs with an ignore box.

    TrackEval, MotChallenge2DBox.get_preprocessed_seq_data: IoU below the threshold does not pair.
    """
    from scipy.optimize import linear_sum_assignment
    from trackers.eval import box_iou

    if not len(ignore_xyxy) or not len(pred_ids):
        return pred_ids, pred_xyxy
    all_xyxy = np.concatenate([truth_xyxy.reshape(-1, 4), ignore_xyxy])
    iou = box_iou(all_xyxy, pred_xyxy)
    iou[iou < IOU_THRESHOLD - np.finfo(float).eps] = 0
    rows, cols = linear_sum_assignment(-iou)
    paired = iou[rows, cols] > np.finfo(float).eps
    is_ignore = rows[paired] >= len(truth_xyxy)
    keep = np.ones(len(pred_ids), bool)
    keep[cols[paired][is_ignore]] = False
    return pred_ids[keep], pred_xyxy[keep]


def evaluate_identity(track_outputs: TrackOutputs, truth: Truth,
                      ignore: Optional[Dict[int, np.ndarray]] = None,
                      frames: Optional[Iterable[int]] = None) -> Dict[str, float]:
    """Identity (IDF1, IDP, IDR) and CLEAR (MOTA, MOTP, ID switches, ...) scores of a tracker's output.

    Args:
        track_outputs: video frame index -> (ids (K,), xyxy (K, 4)) of the confirmed tracks the tracker
            output on that frame (as made by :func:`run_tracker_on_frozen`; negative ids are ignored).
        truth: as returned by :func:`load_identity_truth`.
        ignore: video frame index -> (M, 4) distractor regions (:func:`load_ignore_regions`), or None.
        frames: the video frames to score; default the keys of ``track_outputs`` inside the clip (every
            frame that was fed to the tracker).

    Returns:
        IDF1, IDP, IDR (fractions), IDTP/IDFP/IDFN, MOTA, MOTP (mean IoU of matches), TP, FP, FN, IDSW,
        Frag, MT/PT/ML, ``ids`` (distinct predicted ids scored), ``truth_ids``, ``frames``,
        ``truth_boxes``, ``predicted_boxes``, ``ignored_boxes``.
    """
    from trackers.eval import box_iou, compute_clear_metrics, compute_identity_metrics

    first, last, truth_frames = truth
    scored = sorted(f for f in (track_outputs if frames is None else frames) if first <= f <= last)
    if not scored:
        raise ValueError("no frame of the truth's clip to score")
    gt_ids, tr_ids, sims = [], [], []
    ignored = 0
    empty = (np.zeros(0, np.int64), np.zeros((0, 4)))
    for f in scored:
        t_ids, t_xyxy = truth_frames.get(f, empty)
        p_ids, p_xyxy = track_outputs.get(f, empty)
        p_ids = np.asarray(p_ids, np.int64).reshape(-1)
        p_xyxy = np.asarray(p_xyxy, np.float64).reshape(-1, 4)
        valid = p_ids >= 0
        p_ids, p_xyxy = p_ids[valid], p_xyxy[valid]
        if ignore is not None and f in ignore:
            n = len(p_ids)
            p_ids, p_xyxy = _drop_ignored(p_ids, p_xyxy, t_xyxy, ignore[f])
            ignored += n - len(p_ids)
        gt_ids.append(t_ids)
        tr_ids.append(p_ids)
        sims.append(box_iou(t_xyxy, p_xyxy) if len(t_ids) and len(p_ids) else np.zeros((len(t_ids), len(p_ids))))
    clear = compute_clear_metrics(gt_ids, tr_ids, sims, threshold=IOU_THRESHOLD)
    ident = compute_identity_metrics(gt_ids, tr_ids, sims, threshold=IOU_THRESHOLD)
    scored_ids = np.concatenate(tr_ids) if tr_ids else np.zeros(0, np.int64)
    return {
        "IDF1": ident["IDF1"], "IDP": ident["IDP"], "IDR": ident["IDR"],
        "IDTP": ident["IDTP"], "IDFP": ident["IDFP"], "IDFN": ident["IDFN"],
        "MOTA": clear["MOTA"], "MOTP": clear["MOTP"], "TP": clear["CLR_TP"], "FP": clear["CLR_FP"],
        "FN": clear["CLR_FN"], "IDSW": clear["IDSW"], "Frag": clear["Frag"],
        "MT": clear["MT"], "PT": clear["PT"], "ML": clear["ML"],
        "ids": int(len(np.unique(scored_ids))), "truth_ids": int(len(np.unique(np.concatenate(gt_ids)))),
        "frames": len(scored), "truth_boxes": int(sum(len(g) for g in gt_ids)),
        "predicted_boxes": int(sum(len(t) for t in tr_ids)), "ignored_boxes": ignored,
    }


# ----------------------------------------------------------------------------------------- trackers


def make_ours(fps: float):
    """Our tracker as the pipeline builds it: ``ByteTracker.for_video(fps)`` with its defaults, ``fps``
    being the camera's rate (it is fed each frame's timestamp, so it knows how much time passed)."""
    from edge_runtime.vision.tracking import ByteTracker

    return ByteTracker.for_video(fps)


make_ours.camera_fps = True  # type: ignore[attr-defined]


def _peer_classes() -> Dict[str, Callable[..., object]]:
    import trackers

    return {"bytetrack": trackers.ByteTrackTracker, "sort": trackers.SORTTracker,
            "ocsort": trackers.OCSORTTracker, "botsort": trackers.BoTSORTTracker,
            "cbiou": trackers.CBIoUTracker, "mcbyte": trackers.McByteTracker}


# Settings that differ from the peers' documented defaults (besides frame_rate): camera-motion
# compensation needs the frames, which are not fed, and the camera does not move.
_PEER_FIXED: Dict[str, Dict[str, object]] = {"botsort": {"enable_cmc": False}, "mcbyte": {"enable_cmc": False}}


def _peer(name: str, **overrides: object) -> TrackerFactory:
    def make(fps: float) -> object:
        return _peer_classes()[name](frame_rate=fps, **_PEER_FIXED.get(name, {}), **overrides)

    make.__name__ = f"make_{name}"
    return make


PEERS: Dict[str, TrackerFactory] = {name: _peer(name) for name in
                                    ("bytetrack", "sort", "ocsort", "botsort", "cbiou", "mcbyte")}


def _our_default(name: str, fallback: float) -> float:
    from edge_runtime.vision.tracking import ByteTracker

    param = inspect.signature(ByteTracker.__init__).parameters.get(name)
    return float(param.default) if param is not None and param.default is not inspect.Parameter.empty else fallback


def peer_with_our_thresholds(name: str) -> TrackerFactory:
    """A peer with its detection-score thresholds set to ours (new track, high stage); all else default."""
    new_track, high = _our_default("new_track_score", 0.6), _our_default("high_score", 0.5)
    params = inspect.signature(_peer_classes()[name].__init__).parameters
    overrides = {k: v for k, v in (("track_activation_threshold", new_track), ("high_conf_det_threshold", high))
                 if k in params}
    return _peer(name, **overrides)


def _is_peer(tracker: object) -> bool:
    return type(tracker).__module__.split(".")[0] == "trackers"


def run_tracker_on_frozen(make_tracker: TrackerFactory, frozen, first: int, last: int,
                          stride: int = 1, video: Optional[str] = None) -> TrackOutputs:
    """Feed frames first, first + stride, ... <= last of frozen detections to a fresh tracker.

    Args:
        make_tracker: called once with the rate of the calls, ``frozen.fps / stride``, returns either our
            ``ByteTracker`` (``update(Detections, timestamp_s=...) -> Detections`` with ``track_id``, negative = not
            confirmed) or
            a ``trackers`` tracker (``update(sv.Detections) -> sv.Detections`` with ``tracker_id``).
        frozen: :class:`benchmarks.frozen.FrozenDetections`, all boxes (no score filter).
        first, last: video frame indices (0-based, inclusive).
        stride: feed every stride-th frame only.
        video: the built-in video the detections are of: our tracker then also gets the boxes' appearance
            from its frames, as in the pipeline (None: motion only).

    Returns:
        For every frame fed (also those with no output): ids (K,) int64 >= 0 and xyxy (K, 4) float64 of
        the confirmed tracks the tracker output on it.
    """
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    tracker = make_tracker(frozen.fps if getattr(make_tracker, "camera_fps", False) else frozen.fps / stride)
    peer = _is_peer(tracker)
    if peer:
        import supervision as sv
    looks = None
    if not peer and video is not None and getattr(tracker, "appearance_gate", 1.0) < 1.0:
        from benchmarks.counting_eval import appearances

        looks = appearances(video, frozen, 0.0)
    out: TrackOutputs = {}
    for f in range(first, last + 1, stride):
        det = frozen.frame(f)
        if peer:
            res = tracker.update(sv.Detections(xyxy=det.xyxy.astype(np.float64), confidence=det.score.copy(),
                                               class_id=det.class_id.astype(int)))
            ids = np.asarray(res.tracker_id, np.int64).reshape(-1)
            xyxy = np.asarray(res.xyxy, np.float64).reshape(-1, 4)
        else:
            res = tracker.update(det, timestamp_s=f / frozen.fps, appearance=None if looks is None else looks[f],
                                 frame_size=frozen.frame_size)
            ids = np.asarray(res.track_id, np.int64).reshape(-1)
            xyxy = np.asarray(res.xyxy, np.float64).reshape(-1, 4)
        keep = ids >= 0
        out[f] = (ids[keep], xyxy[keep])
    return out


def id_switches(track_outputs: TrackOutputs, truth: Truth, ignore: Optional[Dict[int, np.ndarray]] = None,
                frames: Optional[Iterable[int]] = None) -> List[Tuple[int, int, int, int]]:
    """Where the ID switches counted by :func:`evaluate_identity` happen: (frame, truth id, old id, new id).

    Replays TrackEval's CLEAR matching (optimal assignment on IoU >= 0.5, continuing the previous
    frame's pairs first); a switch is a truth id matched to an id other than the one it was last matched to.
    """
    from scipy.optimize import linear_sum_assignment
    from trackers.eval import box_iou

    first, last, truth_frames = truth
    scored = sorted(f for f in (track_outputs if frames is None else frames) if first <= f <= last)
    empty = (np.zeros(0, np.int64), np.zeros((0, 4)))
    last_match: Dict[int, int] = {}  # truth id -> predicted id it was last matched to
    previous: Dict[int, int] = {}  # the same, for the previous scored frame only
    events: List[Tuple[int, int, int, int]] = []
    for f in scored:
        t_ids, t_xyxy = truth_frames.get(f, empty)
        p_ids, p_xyxy = (np.asarray(a) for a in track_outputs.get(f, empty))
        valid = p_ids >= 0
        p_ids, p_xyxy = p_ids[valid], p_xyxy[valid].reshape(-1, 4)
        if ignore is not None and f in ignore:
            p_ids, p_xyxy = _drop_ignored(p_ids, p_xyxy, t_xyxy, ignore[f])
        current: Dict[int, int] = {}
        if len(t_ids) and len(p_ids):
            iou = box_iou(t_xyxy, p_xyxy)
            cont = np.array([[previous.get(int(t)) == int(p) for p in p_ids] for t in t_ids])
            score = 1000.0 * cont + iou
            score[iou < IOU_THRESHOLD - np.finfo(float).eps] = 0
            for r, c in zip(*linear_sum_assignment(-score)):
                if score[r, c] > np.finfo(float).eps:
                    t, p = int(t_ids[r]), int(p_ids[c])
                    if t in last_match and last_match[t] != p:
                        events.append((f, t, last_match[t], p))
                    last_match[t] = current[t] = p
        previous = current
    return events


# ------------------------------------------------------------------------------------------- checks


def cross_check_with_mot_files(track_outputs: TrackOutputs, truth_csv: Path = TRUTH_CSV) -> Dict[str, float]:
    """The same scores from ``trackers.eval.evaluate_mot_sequence`` on MOT files (stride 1 outputs only).

    An independent path through the library's own MOT reader and distractor handling: writes the
    outputs as a MOT results file and evaluates it against the gt file as is.
    """
    from trackers.eval import evaluate_mot_sequence

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "tracker.txt"
        with open(results, "w") as f:
            for frame, (ids, xyxy) in sorted(track_outputs.items()):
                for tid, (x1, y1, x2, y2) in zip(ids.tolist(), xyxy.tolist()):
                    f.write(f"{frame + 1},{tid},{x1:.3f},{y1:.3f},{x2 - x1:.3f},{y2 - y1:.3f},1,-1,-1,-1\n")
        res = evaluate_mot_sequence(truth_csv, results, metrics=["CLEAR", "Identity"], threshold=IOU_THRESHOLD)
    return {"IDF1": res.Identity.IDF1, "IDSW": res.CLEAR.IDSW, "MOTA": res.CLEAR.MOTA, "FP": res.CLEAR.CLR_FP,
            "FN": res.CLEAR.CLR_FN}


# --------------------------------------------------------------------------------------------- main


def _trackers_to_run() -> List[Tuple[str, TrackerFactory]]:
    runs: List[Tuple[str, TrackerFactory]] = [("ours", make_ours)]
    runs += list(PEERS.items())
    runs += [(f"{name}@ours", peer_with_our_thresholds(name)) for name in PEERS]
    return runs


def main(argv: Optional[Sequence[str]] = None) -> int:
    import warnings

    from benchmarks.frozen import committed_path, load_frozen

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--truth", type=Path, default=TRUTH_CSV)
    parser.add_argument("--switches", action="store_true", help="list where each ID switch happens")
    parser.add_argument("--cross-check", action="store_true",
                        help="also score stride-1 outputs through trackers.eval's MOT-file path and compare")
    args = parser.parse_args(argv)

    truth = load_identity_truth(args.truth)
    ignore = load_ignore_regions(args.truth)
    first, last, frames = truth
    frozen = load_frozen(committed_path("vtest-video"))
    print(f"truth: {args.truth.name}, video frames {first}-{last}, "
          f"{len(np.unique(np.concatenate([ids for ids, _ in frames.values()])))} people, "
          f"{sum(len(ids) for ids, _ in frames.values())} boxes; IoU >= {IOU_THRESHOLD}")
    header = f"{'tracker':16s} {'stride':>6s} {'IDF1':>6s} {'IDP':>6s} {'IDR':>6s} {'IDSW':>5s} {'Frag':>5s} " \
             f"{'MOTA':>7s} {'FP':>5s} {'FN':>5s} {'ids':>4s}"
    rows = []
    for stride in args.strides:
        print()
        print(header)
        for name, make in _trackers_to_run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outputs = run_tracker_on_frozen(make, frozen, first, last, stride, video="vtest-video")
            m = evaluate_identity(outputs, truth, ignore)
            rows.append({"tracker": name, "stride": stride, **{k: (float(v) if isinstance(v, float) else v)
                                                                  for k, v in m.items()}})
            print(f"{name:16s} {stride:6d} {m['IDF1']:6.3f} {m['IDP']:6.3f} {m['IDR']:6.3f} {m['IDSW']:5d} "
                  f"{m['Frag']:5d} {m['MOTA']:7.3f} {m['FP']:5d} {m['FN']:5d} {m['ids']:4d}")
            if args.switches:
                events = id_switches(outputs, truth, ignore)
                assert len(events) == m["IDSW"], (len(events), m["IDSW"])
                for f, t, old, new in events:
                    print(f"{'':16s} switch: frame {f}, person {t}: id {old} -> {new}")
            if args.cross_check and stride == 1:
                c = cross_check_with_mot_files(outputs, args.truth)
                same = all(abs(float(c[k]) - float(m[k])) < 1e-9 for k in c)
                print(f"{'':16s} cross-check via MOT files: {'same' if same else 'DIFFERENT: ' + str(c)}")
    from benchmarks.harness import write_result

    path = write_result("identity", {
        "question": "identity quality on the hand-checked truth (vtest frames 200-399, 8 people), ours vs the "
                    "trackers package's trackers on the same frozen detections",
        "truth": args.truth.name, "iou_threshold": IOU_THRESHOLD, "rows": rows})
    print(f"wrote {path}")
    print()
    print("IDF1/IDP/IDR: identity F1/precision/recall; IDSW: id switches; Frag: track interruptions; "
          "ids: distinct predicted ids; @ours: peer with our score thresholds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
