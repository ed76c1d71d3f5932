"""Optical flow between detections: does moving tracks on the skipped frames save counts at strides 3-4?

Question: when the detector runs on every 3rd / 4th frame only, does moving each track by sparse
optical flow (:class:`edge_runtime.vision.flow.BoxFlow`) on the frames in between — so the counters see
every frame and the tracker associates against flow-moved boxes — make more (item, stride) pairs meet
the counting targets (:func:`benchmarks.bench_counting.meets`), without losing any at strides 1-2?

Same frozen detections, truth and scoring as ``bench_counting`` / ``tune_counting``; our stack only.
Choose on ``--split tune``; ``--split report`` is for information.

Run: ``python -m benchmarks.bench_flow [--split tune] [--variants none flow ...] [--json PATH]``
Prints a Markdown table; with ``--json`` (e.g. ``benchmarks/results/flow.json``) also writes the variants'
settings, per split and stride the pairs meeting targets and pooled precision / recall, the per-item rows,
the machine (:func:`benchmarks.harness.machine_info`: CPU, ISA flags, git sha, versions) and a conclusion.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.bench_counting import STRIDES, meets, targets_for
from benchmarks.counting_eval import VIDEOS, load_truth, replay, score
from benchmarks.frozen import frozen_for
from benchmarks.harness import machine_info
from edge_runtime.vision.flow import BoxFlow
from edge_runtime.vision.tracking import ByteTracker

# name -> (BoxFlow kwargs or None for no flow, replay kwargs)
VARIANTS: Dict[str, tuple] = {
    "none": (None, {}),
    "flow": ({}, {}),
    "flow_measure": ({}, {"flow_measure": True}),
    "flow_gate03": ({}, {"flow_gate": 0.03}),
    "flow_gate05": ({}, {"flow_gate": 0.05}),
    "flow_gate08": ({}, {"flow_gate": 0.08}),
    "flow_gate12": ({}, {"flow_gate": 0.12}),
    "flow_measure_gate05": ({}, {"flow_measure": True, "flow_gate": 0.05}),
    "all": ({}, {"flow_output_all": True}),
    "all_gate05": ({}, {"flow_output_all": True, "flow_gate": 0.05}),
    "all_gate08": ({}, {"flow_output_all": True, "flow_gate": 0.08}),
    "all_measure": ({}, {"flow_output_all": True, "flow_measure": True}),
    "all_measure_gate05": ({}, {"flow_output_all": True, "flow_measure": True, "flow_gate": 0.05}),
    "kalman_only": ({"min_points": 10**6, "max_points": 10**6}, {"flow_output_all": True}),
    "det": ({}, {"flow_from_detections": True}),
    "det_gate05": ({}, {"flow_from_detections": True, "flow_gate": 0.05}),
    "det_all": ({}, {"flow_from_detections": True, "flow_output_all": True}),
    "det_all_gate05": ({}, {"flow_from_detections": True, "flow_output_all": True, "flow_gate": 0.05}),
    "none_buf0": (None, {"tracker": {"buffer_rel": 0.0}}),
    "det_gate05_buf0": ({}, {"flow_from_detections": True, "flow_gate": 0.05, "tracker": {"buffer_rel": 0.0}}),
    "det_gate05_buf01": ({}, {"flow_from_detections": True, "flow_gate": 0.05, "tracker": {"buffer_rel": 0.1}}),
    "det_gate05_jump15": ({}, {"flow_from_detections": True, "flow_gate": 0.05, "tracker": {"max_jump_rel": 0.15}}),
    "det_gate05_hits2": ({}, {"flow_from_detections": True, "flow_gate": 0.05, "tracker": {"min_hits": 2}}),
    "none_hits2": (None, {"tracker": {"min_hits": 2}}),
    "flow_scale": ({"estimate_scale": True}, {}),
    "flow_full": ({"scale": 1.0}, {}),
    "flow_fb2": ({"fb_max_px": 2.0}, {}),
    "flow_inner0": ({"inner_rel": (0.1, 0.05, 0.1, 0.2)}, {}),
}


def evaluate(variant: str, split: str, strides: Sequence[int] = STRIDES) -> dict:
    flow_kwargs, replay_kwargs = VARIANTS[variant]
    replay_kwargs = dict(replay_kwargs)
    tracker_kwargs = replay_kwargs.pop("tracker", None)
    rows = []
    for video in VIDEOS:
        truth = load_truth(video)
        items = [i for i in truth.items if split == "all" or i.split == split]
        if not items:
            continue
        frozen = frozen_for(video)
        flow = None if flow_kwargs is None else BoxFlow(**flow_kwargs)
        if tracker_kwargs is not None:
            replay_kwargs["make_tracker"] = lambda: ByteTracker.for_video(frozen.fps, **tracker_kwargs)
        for stride in strides:
            events = replay(frozen, items, stride, stacks=("ours",), video=video, flow=flow, **replay_kwargs)["ours"]
            for item in items:
                s = score(events[item.name], item.events, undecidable=item.undecidable)
                rows.append({"video": video, "item": item.name, "split": item.split, "stride": stride,
                             "met": meets(s, stride), **s})
    return {"variant": variant, "split": split, "rows": rows}


def pooled(rows: Sequence[dict]) -> dict:
    """Pairs meeting target and pooled event precision / recall over some (item, stride) rows."""
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    return {"pairs_met": sum(bool(r["met"]) for r in rows), "pairs": len(rows),
            "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
            "tp": tp, "fp": fp, "fn": fn,
            "sum_abs_count_error": sum(sum(abs(v) for v in r["count_error"].values()) for r in rows),
            "failing": [r["item"] for r in rows if not r["met"]]}


def summarise(result: dict, strides: Sequence[int] = STRIDES) -> Dict[str, Dict[str, dict]]:
    """{split: {"stride<k>": pooled(...)}} for each half of the truth present (and "all" when both are)."""
    splits = sorted({r["split"] for r in result["rows"]})
    if len(splits) > 1:
        splits.append("all")
    return {split: {f"stride{k}": pooled([r for r in result["rows"] if r["stride"] == k
                                          and split in ("all", r["split"])]) for k in strides}
            for split in splits}


def table(result: dict, strides: Sequence[int] = STRIDES) -> str:
    lines = []
    for stride in strides:
        s = pooled([r for r in result["rows"] if r["stride"] == stride])
        lines.append(f"| {result['variant']} | {result['split']} | {stride} | {s['pairs_met']}/{s['pairs']} "
                     f"| {s['precision']:.3f} | {s['recall']:.3f} | {s['tp']}/{s['fp']}/{s['fn']} "
                     f"| {s['sum_abs_count_error']} | {','.join(s['failing'])} |")
    return "\n".join(lines)


def conclusion(results: Sequence[dict], split: str, strides: Sequence[int]) -> str:
    """The answer to the question in words, from these results: a flow variant is better than ``none`` if
    it makes more pairs meet their targets at strides 3-4 without fewer at strides 1-2."""
    by_name = {r["variant"]: r for r in results}
    if "none" not in by_name:
        return "no conclusion: the baseline variant 'none' was not run, so flow cannot be compared with it"

    def met(variant: str, chosen: Sequence[int]) -> int:
        return sum(bool(r["met"]) for r in by_name[variant]["rows"] if r["stride"] in chosen)

    low, high = [k for k in strides if k <= 2], [k for k in strides if k >= 3]
    parts, better = [], []
    for name in by_name:
        if name == "none":
            continue
        d_low, d_high = met(name, low) - met("none", low), met(name, high) - met("none", high)
        parts.append(f"{name} {d_high:+d} at strides {','.join(map(str, high)) or '-'}, "
                     f"{d_low:+d} at strides {','.join(map(str, low)) or '-'}")
        if d_high > 0 and d_low >= 0:
            better.append(name)
    if not parts:
        return "no conclusion: only the baseline 'none' was run"
    scope = f"split '{split}'" + ("" if split == "tune" else " (information only: choices are made on 'tune')")
    head = (f"pairs meeting targets vs 'none' on {scope}: " + "; ".join(parts) + ". ")
    if better:
        then = ("read the 'report' split before adopting" if split == "tune"
                else "decide on the 'tune' split before adopting")
        return head + f"Better than 'none' on these results: {', '.join(better)}; {then}."
    return head + ("No flow variant makes more (item, stride) pairs meet the counting targets at strides 3-4 "
                   "without losing any at strides 1-2: optical flow between detections is measured and not "
                   "adopted (BoxFlow, ByteTracker.coast and the replay flow= option stay as measurement tools, "
                   "off by default).")


def variant_settings(name: str) -> dict:
    """A variant's full BoxFlow settings (defaults resolved) and its replay options, for the record."""
    flow_kwargs, replay_kwargs = VARIANTS[name]
    flow = None
    if flow_kwargs is not None:
        box_flow = BoxFlow(**flow_kwargs)
        flow = {k: getattr(box_flow, k) for k in ("scale", "max_points", "min_points", "fb_max_px", "win_px",
                                                   "levels", "inner_rel", "quality", "min_distance_px",
                                                   "estimate_scale")}
        flow["inner_rel"] = list(flow["inner_rel"])
    return {"flow": flow, "replay": replay_kwargs}


def write_json(path: Path, results: Sequence[dict], split: str, strides: Sequence[int],
               seconds: Dict[str, float]) -> Path:
    """Write the results as JSON (atomically) with the machine they were measured on."""
    import cv2

    document = {
        "benchmark": "flow",
        "machine": machine_info(),
        "question": __doc__.splitlines()[0],
        "decision_rule": "a variant is better than 'none' if more (item, stride) pairs meet the counting "
                         "targets (benchmarks.bench_counting.meets) at strides 3-4 and none fewer at strides "
                         "1-2; chosen on split 'tune', 'report' is for information",
        "split": split,
        "strides": list(strides),
        "targets": {f"stride{k}": targets_for(k) for k in strides},
        "opencv_threads": cv2.getNumThreads(),
        "variants": {r["variant"]: {**variant_settings(r["variant"]), "seconds": round(seconds[r["variant"]], 1)}
                     for r in results},
        "summary": {r["variant"]: summarise(r, strides) for r in results},
        "rows": {r["variant"]: r["rows"] for r in results},
        "conclusion": conclusion(results, split, strides),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, default=float) + "\n")
    os.replace(tmp, path)
    return path


HEADER = ("| variant | split | stride | pairs meeting target | P | R | tp/fp/fn | sum abs count err | failing |\n"
          "|---|---|---|---|---|---|---|---|---|")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="tune", choices=("tune", "report", "all"))
    parser.add_argument("--variants", nargs="+", default=["none", "flow"], choices=tuple(VARIANTS))
    parser.add_argument("--strides", type=int, nargs="+", default=list(STRIDES))
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the results as JSON here (e.g. benchmarks/results/flow.json)")
    args = parser.parse_args(argv)
    print(HEADER)
    results: List[dict] = []
    seconds: Dict[str, float] = {}
    for variant in args.variants:
        t0 = time.perf_counter()
        results.append(evaluate(variant, args.split, args.strides))
        seconds[variant] = time.perf_counter() - t0
        print(table(results[-1], args.strides), flush=True)
        print(f"<!-- {variant}: {seconds[variant]:.0f} s -->", file=sys.stderr)
    print(conclusion(results, args.split, args.strides), file=sys.stderr)
    if args.json is not None:
        print(f"wrote {write_json(args.json, results, args.split, args.strides, seconds)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
