"""Choose the tracker's and counters' defaults on the "tune" half of the by-eye truth only.

Each candidate setting is replayed on the frozen detections at detector strides 1-4 over the truth
items marked ``"split": "tune"``; the score is the number of (item, stride) pairs that meet the
counting targets (see :func:`benchmarks.bench_counting.meets`), then the pooled event F1. The "report"
half is never looked at here; ``bench_counting`` reports on it with whatever defaults were chosen.

Run: ``python -m benchmarks.tune_counting [--split tune] [--part PART] [--fixed JSON] [--model M.onnx]
[--irregular N]``, PART one of tracker, appearance, motion, tentative, tentative_iou, low, low_fit, tentative_fit,
low_look, buffer, edge, backtrack, stitch, line_stitch, commit, keep, settle, shrink_low, counter.

With ``--irregular N`` each setting is also replayed at a live run's irregular gaps (strides 2-4, N seeds; see
:func:`benchmarks.counting_eval.irregular_frames`), and those (item, stride, seed) runs count as pairs too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.bench_counting import STRIDES, meets
from benchmarks.counting_eval import VIDEOS, irregular_frames, load_truth, replay, score
from benchmarks.frozen import frozen_for
from edge_runtime.vision.tracking import ByteTracker

GRIDS = {
    "tracker": {
        "high_score": [0.3, 0.4, 0.5],
        "new_track_score": [0.4, 0.5, 0.6],
        "std_velocity": [1 / 160, 1 / 80, 1 / 40, 1 / 20],
        "min_hits": [2, 3],
        "fuse_score": [False, True],
        "buffer_rel": [0.0, 0.035],  # the fine grid is the "buffer" part
        "max_jump_rel": [0.0, 0.15, 0.25],
    },
    # With everything else at its defaults: how much a track's association box widens per nominal frame it went
    # unmatched, and at most. Re-chosen after the motion gate and tentative_low came in: 0.2 / 1.0 (chosen before
    # them) met 19 of 24 pairs at event F1 0.928; no widening 21 at 0.924.
    "buffer": {
        "buffer_rel": [0.0, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2],
        "max_buffer_rel": [0.2, 0.3, 0.5, 1.0],
    },
    # Chosen after the tracker's other settings, with them at their defaults: the colour distance beyond which
    # a track never takes a box (1.0 = motion only; see edge_runtime.vision.appearance).
    "appearance": {
        "appearance_gate": [0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 1.0],
    },
    # Chosen last among the tracker's settings, with the others at their defaults: the squared Mahalanobis
    # distance of a box's centre from a confirmed track's predicted centre (the Kalman filter's own uncertainty)
    # beyond which they are never matched; chi-square quantiles of 2 degrees of freedom, 80 % to 99.9 % (0 = off).
    # Ranked by event F1 first, as commit: a gate changes which boxes a track takes, and a false event created
    # can offset a miss in the per-direction counts that the pairs-meeting count looks at.
    "motion": {
        "motion_gate": [0.0, 3.22, 4.61, 5.99, 9.21, 13.82],
    },
    # With everything else at its defaults: whether a tentative track no high-score box matched may take a
    # low-score one. Ranked by event F1 first, as motion (it changes which boxes a track takes).
    "tentative": {
        "tentative_low": [False, True],
    },
    # With everything else at its defaults: how much taller than a track's predicted box a low-score box may be
    # and still extend it (0 = no limit). Ranked by event F1 first, as motion. Chosen with both detectors' boxes
    # (``--model``): the fp32 replays are the same from 1.4 up as without the limit.
    "low": {
        "low_max_growth": [0.0, 1.2, 1.3, 1.4, 1.5, 1.6, 2.0],
    },
    # With everything else at its defaults: how much better (in IoU) a low-score box must fit a confirmed track's
    # prediction than a high-score box for the first association to leave the track to it (0 = off). Ranked by
    # event F1 first, as motion; chosen with both detectors' boxes and --irregular 4.
    "low_fit": {
        "low_fit_margin": [0.0, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5],
    },
    # With everything else at its defaults: how much better (in IoU) a tentative track must fit a high-score box
    # than a confirmed track seen last frame for the first association to leave the box to it (0 = off). Ranked
    # by event F1 first; chosen with both detectors' boxes and --irregular 4.
    "tentative_fit": {
        "tentative_fit_margin": [0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5],
    },
    # With everything else at its defaults: the IoU a tentative track's predicted box needs with a box to take it in
    # ByteTrack's last association. A person who just stepped in has no velocity yet, and at a few processed frames
    # a second walks most of a box width between them. Ranked by event F1 first; run with both detectors' boxes and
    # --irregular 4 (see TENTATIVE_MATCH_IOU in edge_runtime.vision.tracking for what it gave).
    "tentative_iou": {
        "tentative_match_iou": [0.3, 0.25, 0.2, 0.15, 0.1, 0.05],
    },
    # With everything else at its defaults: how much more like a confirmed track (in appearance distance) the
    # low-score box fitting it best must look than a high-score box that fits it less well, for the first
    # association to leave the track to it (0 = off). Ranked by event F1 first; chosen with both detectors' boxes
    # and --irregular 4.
    "low_look": {
        "low_look_margin": [0.0, 0.05, 0.1, 0.15, 0.2],
    },
    # Lines only, with everything else at its defaults: how far inside the picture a track first seen after a
    # gap between processed frames still counts as having come in through the border.
    "edge": {
        "edge_rel": [0.0, 0.05, 0.1, 0.15, 0.2, 0.3],
    },
    # Lines only, with everything else at its defaults: how far back a track first seen mid-picture may be led to
    # the picture's left or right border by confident boxes the tracker gave no track (0 = off). Ranked by event F1
    # first; chosen with both detectors' boxes and --irregular 4.
    "backtrack": {
        "backtrack_s": [0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
    },
    # With everything else at its defaults: how long and how far a track gone mid-picture may be continued by a
    # new track first seen mid-picture on the other side (stitch_s 0 = off), the colour gate (1 = not used), and
    # whether zones stitch too (with the same settings) or only lines.
    "stitch": {
        "stitch_s": [0.0, 1.0, 2.0, 3.0, 4.0],
        "stitch_rel": [0.25, 0.5, 1.0],
        "stitch_appearance": [0.3, 0.4, 1.0],
        "zones": [False, True],
    },
    # Lines only, with everything else at its defaults (zones keep theirs): how far, in box heights per second
    # between the two sightings, a new track may be first seen from where a gone one was last seen and continue
    # it. Re-chosen for lines after the tracker's later changes; chosen with both detectors' boxes and
    # --irregular 4.
    "line_stitch": {
        "stitch_rel": [0.25, 0.5, 0.625, 0.75, 1.0],
    },
    # With everything else at its defaults: how far past the line, or from where it crossed (box heights), a
    # crossing must get before a return no longer undoes it (0 = the band's edge: every crossing is complete at
    # once), lines and zones alike or lines only. Ranked by event F1 first: the part exists to drop the false
    # events of people standing just over a line, which the pairs-meeting count can reward (a false enter/exit
    # pair can offset two misses in a per-direction count).
    "commit": {
        "commit_rel": [0.0, 0.25, 0.35, 0.5, 0.75, 1.0],
        "zones": [False, True],
    },
    # With everything else at its defaults: whether a complete crossing (see commit) is kept when its track comes
    # back within return_s, for lines and for zones. Ranked by event F1 first, as commit.
    "keep": {
        "keep_complete": [False, True],
        "zones": [False, True],
    },
    # With everything else at its defaults: how much a young track's box height may change between two
    # observations before its side is taken again without a crossing (0 = off), lines and zones alike. Ranked by
    # event F1 first, as commit. Chosen with both detectors' boxes (``--model``).
    "settle": {
        "settle_ratio": [0.0, 1.05, 1.1, 1.15, 1.2, 1.25, 1.3, 1.5],
    },
    # With everything else at its defaults: how much shorter than its track's previous box a box the detector is
    # unsure of (below the tracker's high_score) may be and still be used by the counters (0 = no check for them).
    # Ranked by event F1 first, as settle; chosen with both detectors' boxes and --irregular 4 (at fixed strides
    # alone, 1.45 and up count as 1.6 does).
    "shrink_low": {
        "max_shrink_low": [0.0, 1.2, 1.3, 1.35, 1.4, 1.45, 1.5, 1.6],
    },
    "counter": {
        "margin_rel": [0.05, 0.1, 0.15],
        "return_s": [1.0, 2.0, 3.0],
        "zone_return_s": [0.0, 0.5, 1.0],
        "hysteresis_frames": [1, 2],
    },
}


def evaluate(tracker_options: dict, line_options: dict, zone_options: dict, split: str,
             strides: Sequence[int] = STRIDES, model: Optional[Path] = None, irregular_seeds: int = 0) -> dict:
    """Pairs meeting the targets and pooled event counts of ours on one half; ``model``: replay that detector's
    frozen boxes (e.g. the int8 one) instead of the built-in fp32 detector's; ``irregular_seeds``: also replay
    strides 2-4 at a live run's irregular gaps, with this many seeds."""
    met = total = tp = fp = fn = 0
    for video in VIDEOS:
        truth = load_truth(video)
        items = [i for i in truth.items if split == "all" or i.split == split]
        if not items:
            continue
        frozen = frozen_for(video, model)
        runs = [(stride, None) for stride in strides]
        runs += [(stride, irregular_frames(frozen.num_frames, stride, seed))
                 for stride in (2, 3, 4) for seed in range(irregular_seeds)]
        for stride, frames in runs:
            events = replay(frozen, items, stride, stacks=("ours",), video=video,
                            make_tracker=lambda: ByteTracker.for_video(frozen.fps, **tracker_options),
                            counter_options={"line": line_options, "zone": zone_options}, frames=frames)["ours"]
            for item in items:
                s = score(events[item.name], item.events, undecidable=item.undecidable)
                met += meets(s, stride)
                total += 1
                tp, fp, fn = tp + s["tp"], fp + s["fp"], fn + s["fn"]
    return {"met": met, "total": total, "f1": 2 * tp / max(2 * tp + fp + fn, 1), "tp": tp, "fp": fp, "fn": fn}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="tune", choices=("tune", "report", "all"))
    parser.add_argument("--part", default="tracker", choices=tuple(GRIDS))
    parser.add_argument("--fixed", default="{}", help="JSON options held fixed for the other part")
    parser.add_argument("--irregular", type=int, default=0, metavar="N",
                        help="also replay strides 2-4 at a live run's irregular gaps, N seeds")
    parser.add_argument("--model", type=Path, help="replay this detector's boxes (e.g. the int8 model bench_int8 "
                                                   "converts) instead of the built-in fp32 detector's")
    args = parser.parse_args(argv)
    grid = GRIDS[args.part]
    fixed = json.loads(args.fixed)
    results: List[tuple] = []
    for values in itertools.product(*grid.values()):
        options: Dict[str, float] = dict(zip(grid, values))
        if args.part == "stitch" and options["stitch_s"] == 0 and any(options[k] != grid[k][0] for k in list(grid)[1:]):
            continue  # off: the other settings do nothing
        if args.part in ("tracker", "appearance", "motion", "tentative", "tentative_iou", "buffer", "low", "low_fit",
                         "tentative_fit", "low_look"):
            if options.get("new_track_score", 1.0) < options.get("high_score", 0.0):
                continue
            r = evaluate(options, fixed, {k: v for k, v in fixed.items() if k != "return_s"}, args.split,
                         model=args.model, irregular_seeds=args.irregular)
        elif args.part in ("edge", "line_stitch", "backtrack"):
            r = evaluate(fixed, options, {}, args.split, model=args.model, irregular_seeds=args.irregular)
        elif args.part == "commit":
            line = {k: v for k, v in options.items() if k != "zones"}
            r = evaluate(fixed, line, line if options["zones"] else {"commit_rel": 0.0}, args.split, model=args.model,
                         irregular_seeds=args.irregular)
        elif args.part == "keep":
            r = evaluate(fixed, {"keep_complete": options["keep_complete"]}, {"keep_complete": options["zones"]},
                         args.split, model=args.model, irregular_seeds=args.irregular)
        elif args.part == "stitch":
            line = {k: v for k, v in options.items() if k != "zones"}
            r = evaluate(fixed, line, line if options["zones"] else {"stitch_s": 0.0}, args.split, model=args.model,
                         irregular_seeds=args.irregular)
        elif args.part in ("settle", "shrink_low"):
            r = evaluate(fixed, options, options, args.split, model=args.model, irregular_seeds=args.irregular)
        else:
            line = {k: v for k, v in options.items() if k != "zone_return_s"}
            zone = {**{k: v for k, v in line.items() if k != "return_s"}, "return_s": options["zone_return_s"]}
            r = evaluate(fixed, line, zone, args.split, model=args.model, irregular_seeds=args.irregular)
        results.append((r["met"], r["f1"], options, r))
        print(f"{options}: met {r['met']}/{r['total']} F1 {r['f1']:.3f} (tp {r['tp']} fp {r['fp']} fn {r['fn']})",
              flush=True)
    f1_first = args.part in ("commit", "keep", "motion", "tentative", "tentative_iou", "low", "low_fit",
                             "tentative_fit", "low_look", "settle", "shrink_low", "backtrack")
    results.sort(key=(lambda x: (x[1], x[0])) if f1_first else (lambda x: (x[0], x[1])), reverse=True)
    print("best:", results[0][2], results[0][3])
    return 0


if __name__ == "__main__":
    sys.exit(main())
