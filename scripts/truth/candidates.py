"""Propose crossing candidates for a truth file and render them as pictures to be judged by eye.

A truth file (``benchmarks/truth/<video>.json``) names lines and zones. This script runs several
trackers and counter settings over the video's frozen detections, each as permissive as it can be
(every side change counts, bottom-centre and centre anchors, ours and the ``trackers`` peers,
supervision's ``LineZone``), and gathers every event any of them reports. Events of one line within a
few frames of each other and close on the image become one candidate. For each candidate it renders
frames -12 / -6 / 0 / +6 / +12 around it, cropped around the place, with the line or zone drawn (an
arrow points to the 'in' side) and the detector's boxes; the person deciding looks at the pictures and
writes the verdict into the truth file. No proposer's output is copied into the truth.

Because every proposer may miss the same crossing, it also renders *sweep sheets*: the region around
each line or zone every 4 frames over the whole video, so a crossing no tool proposed can still be seen.

Usage::

    python scripts/truth/candidates.py benchmarks/truth/vtest.json [--out build/truth] [--only NAME]

Writes ``<out>/<video>/<name>/cand_###_f<frame>.png``, ``sweep_###.png`` and ``candidates.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.frozen import frozen_for  # noqa: E402
from edge_runtime.assets import ensure  # noqa: E402
from edge_runtime.vision.counting import LineCounter, ZoneCounter  # noqa: E402
from edge_runtime.vision.detections import Detections  # noqa: E402
from edge_runtime.vision.tracking import ByteTracker  # noqa: E402

CROP = 280  # crop side in source pixels
SCALE = 1.3
OFFSETS = (-12, -6, 0, 6, 12)


def read_frames(video: Path) -> List[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    return frames


# ------------------------------------------------------------------------------------------ proposers


def run_ours(frozen, min_score: float = 0.1) -> List[Detections]:
    tracker = ByteTracker.for_video(frozen.fps)
    return [tracker.update(frozen.frame(f, min_score)) for f in range(frozen.num_frames)]


def run_peer(frozen, name: str) -> List[Detections]:
    import supervision as sv
    import trackers

    make = {"bytetrack": lambda: trackers.ByteTrackTracker(frame_rate=frozen.fps),
            "sort": lambda: trackers.SORTTracker(frame_rate=frozen.fps),
            "ocsort": lambda: trackers.OCSORTTracker(frame_rate=frozen.fps)}[name]
    tracker = make()
    out = []
    for f in range(frozen.num_frames):
        d = frozen.frame(f, 0.1)
        svd = sv.Detections(xyxy=d.xyxy.astype(np.float32), confidence=d.score, class_id=d.class_id)
        r = tracker.update(svd)
        tid = np.asarray(r.tracker_id if r.tracker_id is not None else np.full(len(r), -1), np.int32)
        out.append(Detections(np.asarray(r.xyxy, np.float32), np.asarray(r.confidence, np.float32),
                              np.asarray(r.class_id, np.int32), tid))
    return out


def dedupe(d: Detections) -> Detections:
    ids = d.track_id
    keep = np.ones(len(d), bool)
    seen = set()
    for i, t in enumerate(ids.tolist()):
        if t >= 0 and t in seen:
            keep[i] = False
        seen.add(t)
    return d[keep]


def events_of(tracked: Sequence[Detections], item: dict, is_zone: bool, anchor: str) -> List[Tuple[int, str, float, float, int]]:
    """(frame, direction, x, y, track id) for every side change of every track (hysteresis 1)."""
    # As permissive as a counter can be: no dead band, no touch-and-return delay, no hysteresis.
    options = {"hysteresis_frames": 1, "anchor": anchor, "margin_rel": 0.0, "return_s": 0.0}
    counter = (ZoneCounter(item["name"], item["polygon"], **options) if is_zone else
               LineCounter(item["name"], item["start"], item["end"], **options))
    found = []
    last_seen: Dict[int, Tuple[float, float]] = {}
    for f, d in enumerate(tracked):
        d = dedupe(d)
        pts = d.anchor(anchor)
        for k, tid in enumerate(d.track_id.tolist()):
            last_seen[tid] = (float(pts[k, 0]), float(pts[k, 1]))
        for e in counter.update(d, frame_index=f):
            x, y = last_seen[e.track_id]
            found.append((f, e.direction.value, x, y, e.track_id))
    return found


def supervision_events(tracked: Sequence[Detections], item: dict) -> List[Tuple[int, str, float, float, int]]:
    import supervision as sv

    zone = sv.LineZone(start=sv.Point(*item["start"]), end=sv.Point(*item["end"]))
    found = []
    for f, d in enumerate(tracked):
        d = dedupe(d)
        svd = sv.Detections(xyxy=d.xyxy, confidence=d.score, class_id=d.class_id, tracker_id=d.track_id)
        cin, cout = zone.trigger(svd)
        for k in np.flatnonzero(cin | cout):
            b = d.xyxy[k]
            # supervision names the directions the other way round from ours (see benchmarks/counting_eval.py)
            found.append((f, "out" if cin[k] else "in", float((b[0] + b[2]) / 2), float(b[3]), int(d.track_id[k])))
    return found


def cluster(events: List[Tuple[str, Tuple[int, str, float, float, int]]], gap: int = 15,
            dist: float = 80.0) -> List[dict]:
    """Events (proposer, event) close in time and place -> candidates."""
    events = sorted(events, key=lambda e: e[1][0])
    groups: List[dict] = []
    for proposer, (f, direction, x, y, tid) in events:
        for g in groups:
            if abs(g["frame"] - f) <= gap and np.hypot(g["x"] - x, g["y"] - y) <= dist:
                g["reports"].append({"by": proposer, "frame": f, "direction": direction, "track": tid})
                break
        else:
            groups.append({"frame": f, "x": x, "y": y,
                           "reports": [{"by": proposer, "frame": f, "direction": direction, "track": tid}]})
    return groups


# ------------------------------------------------------------------------------------------- drawing


def draw_item(image: np.ndarray, item: dict, is_zone: bool) -> None:
    if is_zone:
        cv2.polylines(image, [np.array(item["polygon"], np.int32)], True, (255, 255, 0), 2)
        return
    s, e = np.array(item["start"], float), np.array(item["end"], float)
    cv2.line(image, tuple(int(v) for v in s), tuple(int(v) for v in e), (255, 0, 255), 2)
    mid = (s + e) / 2
    d = e - s
    normal = np.array([-d[1], d[0]]) / np.hypot(*d)  # points to the 'in' side (cross > 0)
    tip = mid + 40 * normal
    cv2.arrowedLine(image, tuple(int(v) for v in mid), tuple(int(v) for v in tip), (255, 0, 255), 2, tipLength=0.3)
    cv2.putText(image, "in", tuple(int(v) for v in tip + 5 * normal), 0, 0.6, (255, 0, 255), 2)


def crop_at(image: np.ndarray, x: float, y: float) -> np.ndarray:
    h, w = image.shape[:2]
    cw, ch = min(CROP, w), min(CROP, h)
    x0 = int(min(max(x - cw / 2, 0), w - cw))
    y0 = int(min(max(y - ch / 2, 0), h - ch))
    tile = image[y0:y0 + ch, x0:x0 + cw]
    return cv2.resize(tile, None, fx=SCALE, fy=SCALE)


def annotated(frames, frozen, tracked_by: Dict[str, List[Detections]], f: int, item: dict, is_zone: bool) -> np.ndarray:
    image = frames[f].copy()
    draw_item(image, item, is_zone)
    d = frozen.frame(f, 0.3)
    for b in d.xyxy.astype(int):
        cv2.rectangle(image, (b[0], b[1]), (b[2], b[3]), (0, 255, 0), 1)
        cv2.circle(image, (int((b[0] + b[2]) / 2), int(b[3])), 3, (0, 0, 255), -1)
    ours = tracked_by.get("ours")
    if ours is not None:
        t = ours[f]
        for b, tid in zip(t.xyxy.astype(int), t.track_id.tolist()):
            if tid >= 0:
                cv2.putText(image, str(tid), (b[0], b[1] - 3), 0, 0.45, (0, 255, 255), 1)
    return image


def render_candidate(frames, frozen, tracked_by, item, is_zone, cand, path: Path) -> None:
    tiles = []
    for off in OFFSETS:
        f = min(max(cand["frame"] + off, 0), len(frames) - 1)
        tile = crop_at(annotated(frames, frozen, tracked_by, f, item, is_zone), cand["x"], cand["y"])
        cv2.putText(tile, f"f{f} ({off:+d})", (5, 20), 0, 0.6, (255, 255, 255), 2)
        tiles.append(tile)
    strip = np.hstack(tiles)
    header = np.zeros((40, strip.shape[1], 3), np.uint8)
    summary = ", ".join(sorted({f"{r['by']}:{r['direction']}@{r['frame']}" for r in cand["reports"]}))[:180]
    cv2.putText(header, f"{item['name']} #{cand['id']} near f{cand['frame']}: {summary}", (5, 25), 0, 0.5,
                (255, 255, 255), 1)
    cv2.imwrite(str(path), np.vstack([header, strip]))


def render_sweeps(frames, frozen, tracked_by, item, is_zone, out: Path, step: int = 4, per_sheet: int = 30) -> None:
    pts = np.array(item["polygon"] if is_zone else [item["start"], item["end"]], float)
    lo, hi = pts.min(0) - 60, pts.max(0) + 60
    centre = (lo + hi) / 2
    half = np.maximum((hi - lo) / 2, 130)  # a thin line still gets a square-ish view
    lo, hi = centre - half, centre + half
    h, w = frames[0].shape[:2]
    x0, y0 = int(max(lo[0], 0)), int(max(lo[1], 0))
    x1, y1 = int(min(hi[0], w)), int(min(hi[1], h))
    scale = min(1.0, 300.0 / max(x1 - x0, y1 - y0))
    indices = list(range(0, len(frames), step))
    for sheet, start in enumerate(range(0, len(indices), per_sheet)):
        tiles = []
        for f in indices[start:start + per_sheet]:
            tile = annotated(frames, frozen, tracked_by, f, item, is_zone)[y0:y1, x0:x1]
            tile = cv2.resize(tile, None, fx=scale, fy=scale)
            cv2.putText(tile, f"f{f}", (3, 15), 0, 0.5, (255, 255, 255), 2)
            tiles.append(tile)
        while len(tiles) % 6:
            tiles.append(np.zeros_like(tiles[0]))
        rows = [np.hstack(tiles[r:r + 6]) for r in range(0, len(tiles), 6)]
        cv2.imwrite(str(out / f"sweep_{sheet:03d}.png"), np.vstack(rows))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truth", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "truth")
    parser.add_argument("--only", action="append", help="only these line/zone names")
    parser.add_argument("--no-sweeps", action="store_true")
    args = parser.parse_args(argv)
    spec = json.loads(args.truth.read_text())
    frozen = frozen_for(spec["video"])
    frames = read_frames(ensure(spec["video"]))
    tracked_by = {"ours": run_ours(frozen)}
    for peer in ("bytetrack", "sort", "ocsort"):
        tracked_by[peer] = run_peer(frozen, peer)
    items = [(l, False) for l in spec["lines"]] + [(z, True) for z in spec.get("zones", [])]
    for item, is_zone in items:
        if args.only and item["name"] not in args.only:
            continue
        kind = "zone" if is_zone else "line"
        out = args.out / spec["video"] / f"{kind}_{item['name']}"
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("*.png"):
            old.unlink()
        reports = []
        for name, tracked in tracked_by.items():
            for anchor in ("bottom_center", "center"):
                reports += [(f"{name}/{anchor[:6]}", e) for e in events_of(tracked, item, is_zone, anchor)]
            if not is_zone:
                reports += [(f"{name}/sv", e) for e in supervision_events(tracked, item)]
        cands = cluster(reports)
        for i, cand in enumerate(cands):
            cand["id"] = i
            render_candidate(frames, frozen, tracked_by, item, is_zone, cand, out / f"cand_{i:03d}_f{cand['frame']:03d}.png")
        (out / "candidates.json").write_text(json.dumps(cands, indent=1))
        if not args.no_sweeps:
            render_sweeps(frames, frozen, tracked_by, item, is_zone, out)
        print(f"{kind} {item['name']}: {len(cands)} candidates -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
