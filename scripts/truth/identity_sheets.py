"""Build the hand-checked identity truth of vtest.avi and render the sheets it was checked on.

The truth (``benchmarks/truth/vtest_identity.csv``, described in ``benchmarks/truth/IDENTITY.md``) is
made in three steps, all reproduced by ``build``:

1. proposal: the frozen YOLOv8s detections of the clip (``benchmarks/truth/detections/``) with score
   >= ``MIN_SCORE`` are linked into proposal tracks by a cautious IoU linker (:func:`propose`);
2. corrections, decided by looking at the sheets below and recorded in ``PEOPLE``: each truth person
   is a list of proposal-track segments (proposal id, first frame, last frame); proposal boxes that
   are in no segment are dropped (the reasons are in ``DROPPED``); ``FILLS`` lists frames where the
   detector missed a visible person, filled by linear interpolation between that person's nearest
   boxes; ``EXTENDS`` continues a person's run of boxes into frames with nothing to interpolate from
   (entering, leaving, the clip's first frame) with the detector's own lower-scoring boxes;
3. output in MOTChallenge gt format: ``frame,id,x,y,w,h,conf,class,visibility`` with frame = video
   frame index + 1; pedestrians are class 1, conf 1, and the visibility column tells where a box
   came from: 1 detector box >= ``MIN_SCORE``, 0.75 lower-scoring detector box (``EXTENDS``), 0.5
   interpolated (``FILLS``); the one static non-person the detector keeps finding (a yellow garment on the
   lawn) is written as a distractor region: class 8, conf 0, id ``DISTRACTOR_ID``, so that MOTChallenge
   evaluation (TrackEval, ``trackers.eval``) neither rewards nor penalises a track on it.

Sheets (PNG) for checking, written by ``sheets`` from a truth or draft CSV:

- ``id_XXX.png``: one strip per id, a crop of that id every ``--every`` frames with the frame index
  (video frame index, 0-based) printed under it; interpolated boxes framed in orange, lower-scoring
  detector boxes in blue; every such box and the boxes either side of a gap are always shown;
- ``frame_NNN.png``: full frames every ``--frame-step`` frames with boxes and ids drawn.

Usage (from the repository root)::

    python scripts/truth/identity_sheets.py propose --out build/identity/draft.csv
    python scripts/truth/identity_sheets.py build            # writes benchmarks/truth/vtest_identity.csv
    python scripts/truth/identity_sheets.py sheets --csv benchmarks/truth/vtest_identity.csv --out build/identity/sheets

Shape legend: boxes are x1, y1, x2, y2 float pixels of the 768x576 video unless a name says xywh.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.frozen import committed_path, load_frozen  # noqa: E402

FIRST_FRAME = 200  # video frame index (0-based) of the clip's first frame
LAST_FRAME = 399  # ... and of its last, inclusive
MIN_SCORE = 0.3  # detector boxes proposed as people
TRUTH_CSV = ROOT / "benchmarks" / "truth" / "vtest_identity.csv"

# The yellow garment lying on the lawn, bottom left: detected on every frame (as "fallen person" mostly)
# at the same place; checked by eye to be clothing, not a person. Median detector box over the clip.
DISTRACTOR_XYXY = (62.0, 490.0, 167.0, 533.0)
DISTRACTOR_ID = 100
DISTRACTOR_CLASS = 8  # MOTChallenge "distractor"
INTERPOLATED_VISIBILITY = 0.5
FRAME_ROWS_PX = (60, 440)  # full-frame sheets show these image rows (where the clip's people walk) ...
FRAME_SCALE = 1.5  # ... enlarged by this factor

# The people of the clip, numbered in order of first appearance (ties left to right), with what they
# look like; each is a list of segments (proposal id, first frame, last frame) of `propose`'s output.
# Decided by looking at the id strips and full frames of the proposal and, at every break or meeting of
# two proposal tracks, at frame-by-frame crops of the place.
PEOPLE: Dict[int, List[Tuple[int, int, int]]] = {
    1: [(4, 200, 219)],  # woman, white hood, light-blue coat, dark bag; leaves at the left edge
    2: [(3, 200, 204), (7, 205, 285)],  # man, navy striped jumper, jeans; leaves at the left edge
    3: [(1, 200, 210), (9, 214, 225), (12, 226, 337), (21, 341, 361), (23, 362, 394)],  # bald man,
    #    black jacket, jeans; walks left, turns back, passes behind the sign twice, leaves right
    4: [(0, 200, 315), (19, 320, 323), (20, 325, 348), (18, 356, 399)],  # man, dark-brown jacket, jeans
    5: [(5, 200, 369), (25, 370, 370)],  # man, red-and-navy anorak, carries a white bag; leaves right
    6: [(6, 203, 205), (8, 213, 217), (11, 224, 252), (14, 257, 360), (24, 362, 362)],  # fair-haired
    #    woman, long black coat; walks beside person 5, mostly missed by the detector before frame 224
    7: [(2, 200, 206), (13, 228, 399)],  # man, glasses, black jacket and trousers, white paper in hand;
    #    leaves at the right edge on frame 207 and comes back in at the bottom right on frame 228
    8: [(10, 221, 293), (15, 299, 302), (17, 306, 308), (18, 309, 354), (22, 359, 399)],  # man, long
    #    black coat, black trousers; enters at the right edge, crosses people 4 and 3, comes back right
}

# Proposal boxes left out of the truth on purpose, (proposal id, first frame, last frame) -> reason.
DROPPED: Dict[Tuple[int, int, int], str] = {
    (16, 299, 299): "second, half-height box on the legs of person 7",
    (25, 369, 369): "second box on person 5 (the proposal's track 5 has the first)",
    (26, 390, 391): "second box on person 8",
    (27, 398, 399): "second box on person 8",
}

# (person, first frame, last frame): the person is visible (at most about half hidden) but has no
# detector box (>= MIN_SCORE) on these frames; boxes are interpolated between the person's nearest
# detector boxes before and after. Each range was looked at; the comment says what hides or confuses.
# A person more than about half hidden behind another gets no box (person 4 behind person 3 on
# 344-345 and person 8 behind person 4 on 294-295 and behind person 3 on 304).
FILLS: List[Tuple[int, int, int]] = [
    (1, 212, 212),  # plain miss
    (2, 206, 206),  # plain miss
    (3, 211, 213), (3, 338, 340),  # behind the lamp post and the sign
    (3, 312, 314),  # behind person 7, head and shoulders visible
    (4, 316, 319),  # behind the lamp post
    (4, 324, 324),  # plain miss
    (4, 349, 355),  # passes person 8 by the lamp post; the detector's boxes there are person 8's
    (4, 373, 373),  # plain miss
    (6, 206, 212), (6, 218, 223), (6, 227, 228), (6, 253, 256), (6, 342, 342), (6, 361, 361),  # beside 5
    (7, 326, 326), (7, 341, 341), (7, 352, 352), (7, 361, 361), (7, 364, 364), (7, 373, 373),  # misses
    (8, 224, 224),  # just in from the right edge
    (8, 270, 272),  # behind the sign, upper body visible
    (8, 296, 298),  # past person 4, low boxes only (on 294-295 he is hidden behind 4: no box)
    (8, 303, 303), (8, 305, 305),  # passing behind person 3 (on 304 hidden behind 3: no box)
    (8, 350, 350),  # plain miss (the detector's box scores just under MIN_SCORE)
    (8, 355, 358),  # behind person 4, then behind the sign
]

# (person, first frame, last frame): just before or after a run of a person's detector boxes, where
# there is nothing to interpolate from (entering, leaving, the clip's first frame), the detector's own
# lower-scoring boxes (see _extend). Used where the person is at least about half visible and the box
# was checked by eye to fit: a person half out of the picture at an image edge, and person 6, beside
# person 5, from the clip's first frame. A person less than about half in the picture gets no box.
EXTENDS: List[Tuple[int, int, int]] = [
    (1, 220, 220),  # half out at the left edge (box 0.06)
    (2, 286, 286),  # half out at the left edge (0.10)
    (5, 371, 371),  # half out at the right edge (0.28)
    (6, 200, 202),  # fully visible beside person 5 (0.15-0.27)
    (7, 207, 208),  # leaving at the right edge (0.29, 0.27)
    (8, 220, 220),  # coming in at the right edge (0.24)
]
MIN_LOW_SCORE = 0.05
EXTEND_MIN_IOU = 0.3
LOW_SCORE_VISIBILITY = 0.75

Row = Tuple[int, int, np.ndarray, float]  # (video frame index, id, xyxy (4,), visibility)


# -------------------------------------------------------------------------------------------- proposal


def _is_distractor(xyxy: np.ndarray) -> np.ndarray:
    """(N,) bool: boxes whose centre lies inside the distractor region (the garment on the lawn)."""
    x1, y1, x2, y2 = DISTRACTOR_XYXY
    cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2
    return (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, N) IoU of boxes a (M, 4) against boxes b (N, 4)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def propose(link_iou: float = 0.3, max_gap_frames: int = 3) -> List[Row]:
    """Proposal tracks: detector boxes >= MIN_SCORE (distractor removed), linked frame to frame.

    A plain, deliberately cautious IoU linker: each track's box is predicted at constant velocity (from
    its last two boxes), tracks and boxes are paired by optimal assignment on IoU >= ``link_iou``, and a
    track unseen for more than ``max_gap_frames`` frames ends. It breaks a person into several tracks
    more often than it swaps two people, and merging fragments by eye is the easier correction.
    """
    from scipy.optimize import linear_sum_assignment

    frozen = load_frozen(committed_path("vtest-video"))
    tracks: List[dict] = []  # {"id", "frames": [..], "boxes": [..]}
    rows: List[Row] = []
    for f in range(FIRST_FRAME, LAST_FRAME + 1):
        det = frozen.frame(f, MIN_SCORE)
        xyxy = det.xyxy[~_is_distractor(det.xyxy)].astype(np.float64)
        live = [t for t in tracks if f - t["frames"][-1] <= max_gap_frames + 1]
        predicted = np.zeros((len(live), 4))
        for k, t in enumerate(live):
            last = t["boxes"][-1]
            if len(t["frames"]) > 1:
                step = (last - t["boxes"][-2]) / (t["frames"][-1] - t["frames"][-2])
                last = last + step * (f - t["frames"][-1])
            predicted[k] = last
        owner = [-1] * len(xyxy)
        if len(live) and len(xyxy):
            iou = _iou(predicted, xyxy)
            for k, j in zip(*linear_sum_assignment(-iou)):
                if iou[k, j] >= link_iou:
                    owner[j] = k
        for j, box in enumerate(xyxy):
            if owner[j] >= 0:
                track = live[owner[j]]
            else:
                track = {"id": len(tracks), "frames": [], "boxes": []}
                tracks.append(track)
            track["frames"].append(f)
            track["boxes"].append(box)
            rows.append((f, track["id"], box, 1.0))
    return rows


# ------------------------------------------------------------------------------------- corrections


def _interpolate(track: Dict[int, np.ndarray], first: int, last: int) -> Dict[int, np.ndarray]:
    """Boxes on frames first..last, linear between the track's nearest boxes before first and after last."""
    before = max((f for f in track if f < first), default=None)
    after = min((f for f in track if f > last), default=None)
    if before is None or after is None:
        raise ValueError(f"fill {first}..{last}: the person needs a box before and after")
    if any(first <= f <= last for f in track):
        raise ValueError(f"fill {first}..{last}: the person already has a box in the range")
    a, b = track[before], track[after]
    return {f: a + (b - a) * (f - before) / (after - before) for f in range(first, last + 1)}


def _extend(track: Dict[int, np.ndarray], first: int, last: int, frozen) -> Dict[int, np.ndarray]:
    """The detector's lower-score boxes continuing a run of a person's boxes backwards or forwards.

    Frame by frame away from the track, each frame's box is the lower-score box (MIN_LOW_SCORE <= score <
    MIN_SCORE) overlapping the previous frame's box most (IoU >= EXTEND_MIN_IOU); see EXTENDS.
    """
    if any(first <= f <= last for f in track):
        raise ValueError(f"extend {first}..{last}: the person already has a box in the range")
    if last + 1 in track and first - 1 not in track:
        order, ref = range(last, first - 1, -1), track[last + 1]
    elif first - 1 in track and last + 1 not in track:
        order, ref = range(first, last + 1), track[first - 1]
    else:
        raise ValueError(f"extend {first}..{last} must continue a run of boxes on one side only")
    out: Dict[int, np.ndarray] = {}
    for f in order:
        det = frozen.frame(f, MIN_LOW_SCORE)
        low = det.xyxy[det.score < MIN_SCORE].astype(np.float64)
        iou = _iou(ref[None], low)[0] if len(low) else np.zeros(0)
        if not len(iou) or iou.max() < EXTEND_MIN_IOU:
            raise ValueError(f"extend frame {f}: no lower-score box overlaps the person's box enough")
        out[f] = ref = low[int(iou.argmax())]
    return out


def apply_corrections(proposal: Sequence[Row]) -> Tuple[List[Row], Dict[str, int]]:
    """Truth rows (frame, person, xyxy, visibility) from the proposal, PEOPLE, DROPPED, FILLS and EXTENDS."""
    by_pid: Dict[int, Dict[int, np.ndarray]] = defaultdict(dict)
    for f, pid, xyxy, _ in proposal:
        if f in by_pid[pid]:
            raise ValueError(f"proposal id {pid} has two boxes on frame {f}")
        by_pid[pid][f] = xyxy
    used: Dict[Tuple[int, int], int] = {}  # (proposal id, frame) -> person
    people: Dict[int, Dict[int, np.ndarray]] = defaultdict(dict)
    for person, segments in PEOPLE.items():
        for pid, a, b in segments:
            for f, xyxy in by_pid[pid].items():
                if a <= f <= b:
                    if (pid, f) in used:
                        raise ValueError(f"proposal box ({pid}, frame {f}) given to {used[pid, f]} and {person}")
                    if f in people[person]:
                        raise ValueError(f"person {person} gets two boxes on frame {f}")
                    used[pid, f] = person
                    people[person][f] = xyxy
    dropped = {(pid, f) for pid, track in by_pid.items() for f in track if (pid, f) not in used}
    explained = {(pid, f) for (pid, a, b) in DROPPED for f in by_pid.get(pid, {}) if a <= f <= b}
    if PEOPLE and dropped - explained:
        raise ValueError(f"proposal boxes in no person and not in DROPPED: {sorted(dropped - explained)[:20]}")
    if explained - dropped:
        raise ValueError(f"DROPPED names boxes that a person uses: {sorted(explained - dropped)[:20]}")
    rows: List[Row] = [(f, person, xyxy, 1.0) for person, track in people.items() for f, xyxy in track.items()]
    added: Dict[int, Dict[int, Tuple[np.ndarray, float]]] = defaultdict(dict)
    for person, a, b in FILLS:
        for f, xyxy in _interpolate(people[person], a, b).items():
            added[person][f] = (xyxy, INTERPOLATED_VISIBILITY)
    frozen = load_frozen(committed_path("vtest-video")) if EXTENDS else None
    for person, a, b in EXTENDS:
        for f, xyxy in _extend(people[person], a, b, frozen).items():
            if f in people[person]:
                raise ValueError(f"extend of person {person} on frame {f}, which has a detector box")
            added[person][f] = (xyxy, LOW_SCORE_VISIBILITY)
    for person, boxes in added.items():
        for f, (xyxy, vis) in boxes.items():
            rows.append((f, person, xyxy, vis))
    rows.sort(key=lambda r: (r[0], r[1]))
    counts = {"people": len(people), "detector_boxes": len(used),
              "interpolated_boxes": sum(1 for r in rows if r[3] == INTERPOLATED_VISIBILITY),
              "lower_score_detector_boxes": sum(1 for r in rows if r[3] == LOW_SCORE_VISIBILITY),
              "proposal_boxes_dropped": len(dropped)}
    return rows, counts


# ------------------------------------------------------------------------------------------------ csv


def write_csv(path: Path, rows: Sequence[Row], distractor: bool = True) -> None:
    """MOTChallenge gt rows: frame (1-based = video index + 1), id, x, y, w, h, conf, class, visibility."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for f, pid, xyxy, vis in rows:
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        lines.append((f, pid, f"{f + 1},{pid},{x1:.1f},{y1:.1f},{x2 - x1:.1f},{y2 - y1:.1f},1,1,{vis:g}"))
    if distractor:
        x1, y1, x2, y2 = DISTRACTOR_XYXY
        for f in range(FIRST_FRAME, LAST_FRAME + 1):
            lines.append((f, DISTRACTOR_ID, f"{f + 1},{DISTRACTOR_ID},{x1:.1f},{y1:.1f},{x2 - x1:.1f},"
                                            f"{y2 - y1:.1f},0,{DISTRACTOR_CLASS},1"))
    lines.sort(key=lambda t: (t[0], t[1]))
    path.write_text("".join(line + "\n" for _, _, line in lines))


def read_csv(path: Path) -> List[Row]:
    """Pedestrian rows of a CSV written by write_csv (video frame index, id, xyxy, visibility)."""
    rows: List[Row] = []
    with open(path, newline="") as f:
        for rec in csv.reader(f):
            frame, pid, x, y, w, h, conf, cls, vis = (float(v) for v in rec[:9])
            if conf == 0 or int(cls) != 1:
                continue
            rows.append((int(frame) - 1, int(pid), np.array([x, y, x + w, y + h]), vis))
    return rows


# --------------------------------------------------------------------------------------------- sheets


def _read_frames(frames: Sequence[int]) -> Dict[int, np.ndarray]:
    import cv2

    from edge_runtime.assets import ensure

    wanted = set(frames)
    images: Dict[int, np.ndarray] = {}
    capture = cv2.VideoCapture(str(ensure("vtest-video")))
    index = 0
    while wanted and index <= max(wanted):
        ok, image = capture.read()
        if not ok:
            break
        if index in wanted:
            images[index] = image
        index += 1
    capture.release()
    return images


def _colour(pid: int) -> Tuple[int, int, int]:
    rng = np.random.default_rng(pid * 7919 + 1)
    return tuple(int(v) for v in rng.integers(60, 256, 3))  # type: ignore[return-value]


def render_sheets(rows: Sequence[Row], out: Path, every: int = 4, frame_step: int = 10,
                  crop_height_px: int = 120, per_line: int = 13) -> List[Path]:
    """Write id strips and full frames (PNG) for checking ``rows`` by eye; returns the files written."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    frames = sorted({r[0] for r in rows})
    images = _read_frames(range(frames[0], frames[-1] + 1))
    written: List[Path] = []
    by_id: Dict[int, List[Row]] = defaultdict(list)
    for r in rows:
        by_id[r[1]].append(r)
    for pid, track in sorted(by_id.items()):
        track.sort(key=lambda r: r[0])
        # Every `every`-th box, plus the first and last, plus every box next to a gap or a fill.
        keep = {0, len(track) - 1} | set(range(0, len(track), every))
        for k in range(1, len(track)):
            if track[k][0] - track[k - 1][0] > 1 or track[k][3] != track[k - 1][3]:
                keep |= {k - 1, k}
        keep |= {k for k, r in enumerate(track) if r[3] < 1}  # every box added by hand
        tiles = []
        for k in sorted(keep):
            f, _, xyxy, vis = track[k]
            x1, y1, x2, y2 = (int(round(v)) for v in xyxy)
            pad = 4
            crop = images[f][max(0, y1 - pad):y2 + pad, max(0, x1 - pad):x2 + pad]
            scale = crop_height_px / max(1, crop.shape[0])
            crop = cv2.resize(crop, (max(1, int(crop.shape[1] * scale)), crop_height_px))
            width = 72
            tile = np.full((crop_height_px + 18, width, 3), 255, np.uint8)
            cw = min(width, crop.shape[1])
            tile[:crop_height_px, (width - cw) // 2:(width - cw) // 2 + cw] = crop[:, :cw]
            if vis < 1:  # orange: interpolated, blue: a lower-score detector box
                colour = (0, 140, 255) if vis == INTERPOLATED_VISIBILITY else (255, 120, 0)
                cv2.rectangle(tile, (0, 0), (width - 1, crop_height_px - 1), colour, 3)
            cv2.putText(tile, str(f), (3, crop_height_px + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
            tiles.append(tile)
        while len(tiles) % per_line:
            tiles.append(np.full_like(tiles[0], 255))
        grid = np.vstack([np.hstack(tiles[i:i + per_line]) for i in range(0, len(tiles), per_line)])
        head = np.full((24, grid.shape[1], 3), 255, np.uint8)
        cv2.putText(head, f"id {pid}: frames {track[0][0]}-{track[-1][0]}, {len(track)} boxes", (4, 17),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
        path = out / f"id_{pid:03d}.png"
        cv2.imwrite(str(path), np.vstack([head, grid]))
        written.append(path)
    by_frame: Dict[int, List[Row]] = defaultdict(list)
    for r in rows:
        by_frame[r[0]].append(r)
    y_top, y_bottom = FRAME_ROWS_PX
    for f in range(frames[0], frames[-1] + 1, frame_step):
        image = cv2.resize(images[f][y_top:y_bottom], None, fx=FRAME_SCALE, fy=FRAME_SCALE)
        for _, pid, xyxy, vis in by_frame.get(f, []):
            x1, y1, x2, y2 = (int(round(v * FRAME_SCALE)) for v in xyxy - [0, y_top, 0, y_top])
            colour = _colour(pid)
            cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
            if vis < 1:  # interpolated: a second, dashed-looking inner frame
                cv2.rectangle(image, (x1 + 4, y1 + 4), (x2 - 4, y2 - 4), (0, 140, 255), 1)
            label = str(pid)
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.7, 2)
            cv2.rectangle(image, (x1, y1 - th - 6), (x1 + tw + 4, y1), (0, 0, 0), -1)
            cv2.putText(image, label, (x1 + 2, y1 - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2)
        cv2.putText(image, f"frame {f}", (5, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 255, 255), 2)
        path = out / f"frame_{f:03d}.png"
        cv2.imwrite(str(path), image)
        written.append(path)
    return written


# ----------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("propose", help="write the uncorrected proposal as a CSV")
    p.add_argument("--out", type=Path, required=True)
    b = sub.add_parser("build", help="proposal + recorded corrections -> the truth CSV")
    b.add_argument("--out", type=Path, default=TRUTH_CSV)
    s = sub.add_parser("sheets", help="render id strips and full frames of a CSV")
    s.add_argument("--csv", type=Path, default=TRUTH_CSV)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--every", type=int, default=4, help="one crop every N boxes of an id")
    s.add_argument("--frame-step", type=int, default=10, help="one full frame every N frames")
    s.add_argument("--ids", type=int, nargs="*", help="only these ids (strips only)")
    args = parser.parse_args(list(argv))
    if args.cmd == "propose":
        rows = [r for r in propose() if r[1] >= 0]
        write_csv(args.out, rows, distractor=False)
        print(f"{len(rows)} boxes, {len({r[1] for r in rows})} proposal ids -> {args.out}")
    elif args.cmd == "build":
        rows, counts = apply_corrections(propose())
        write_csv(args.out, rows)
        print(f"{counts} -> {args.out}")
    else:
        rows = read_csv(args.csv)
        if args.ids:
            rows = [r for r in rows if r[1] in set(args.ids)]
        written = render_sheets(rows, args.out, every=args.every, frame_step=args.frame_step)
        print(f"{len(written)} sheets -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
