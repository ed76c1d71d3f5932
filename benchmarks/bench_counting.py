"""Counting against by-eye truth: ours vs the peer stack, on every truth line and zone, at board frame rates.

Question: on real video, do the counts match what a person sees happen, at every detector stride a
board reaches (every frame ... every 4th frame of a 10 fps camera), and never worse than the peer stack
(``trackers`` ByteTrack + supervision ``LineZone`` / ``PolygonZone``)?

For every truth line and zone (``benchmarks/truth/``, made by looking at frames; see its README), on the
same frozen detections of each model (``benchmarks/frozen.py``), four stacks are replayed so that the
tracker and the counter are judged separately: ours, the peer's, supervision's counter on our tracks,
our counter on the peer's tracks (see :mod:`benchmarks.counting_eval`). Reported per line, stride and
stack: event precision and recall (a match = same direction within ±5 frames) and the per-direction
count error; summaries per half of the truth ("tune": the half the defaults were chosen on, "report":
the other half). ``--live`` also runs the real pipeline in 'latest' mode (newest frame wins, paced at
the video's 10 fps, then faster, so that the detector keeps up with every 2nd, 3rd and 4th frame as a slower
board would) with one detector thread, and scores its events the same way. Which frames a live run keeps up
with depends on timing, so its figures change from run to run: ``--live-runs N`` (default 3) runs each replay
rate N times, in turn. ``--irregular N`` gives the repeatable
version: the frozen detections replayed at strides 2-4 with the gaps of a live run (each gap stride - 1,
stride or stride + 1, N seeds; :func:`benchmarks.counting_eval.irregular_frames`), ours and the peer's,
judged by the stride's target. ``--rect`` instead
judges rectangular inference (``model.rect``): the fp32 detector's frozen output at 640x480, and the live
run with it, which processes more of the frames.

Run: ``python -m benchmarks.bench_counting [--strides 1 2 3 4] [--int8] [--live [--live-runs N]] [--irregular N]
[--rect --name counting_rect]``
Writes ``benchmarks/results/counting.json`` (or ``NAME.json``) and ``counting.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from benchmarks.counting_eval import STACKS, VIDEOS, Truth, irregular_frames, load_truth, replay, score
from benchmarks.frozen import frozen_for
from benchmarks.harness import RESULTS_DIR, write_result

STRIDES = (1, 2, 3, 4)


def targets_for(stride: int) -> Dict[str, float]:
    """The per-line targets: count error bound per direction, or (stride 4) recall and precision floors."""
    if stride <= 2:
        return {"max_abs_count_error": 1}
    if stride == 3:
        return {"max_abs_count_error": 2}
    return {"min_recall": 0.8, "min_precision": 0.95}


def meets(result: dict, stride: int) -> bool:
    t = targets_for(stride)
    if "max_abs_count_error" in t:
        return result["max_abs_count_error"] <= t["max_abs_count_error"]
    return result["recall"] >= t["min_recall"] and result["precision"] >= t["min_precision"]


def evaluate(truth: Truth, model_name: str, model: Optional[Path], strides: Sequence[int],
             rect: bool = False, irregular_seeds: int = 0) -> List[dict]:
    """One row per (item, stride, stack); with ``irregular_seeds``, also one per (item, stride >= 2, seed)
    for ours and the peer on the irregular frames of a live run, under model ``MODEL-irregular``."""
    frozen = frozen_for(truth.video, model, rect=rect)
    rows = []
    for stride in strides:
        events = replay(frozen, truth.items, stride, video=truth.video)
        for item in truth.items:
            for stack in STACKS:
                s = score(events[stack][item.name], item.events, undecidable=item.undecidable)
                rows.append({"video": truth.video, "model": model_name, "item": item.name, "kind": item.kind,
                             "split": item.split, "stride": stride, "stack": stack, **s,
                             "meets_target": meets(s, stride)})
    for stride in (k for k in strides if k >= 2):
        for seed in range(irregular_seeds):
            frames = irregular_frames(frozen.num_frames, stride, seed)
            events = replay(frozen, truth.items, stride, stacks=("ours", "peer"), video=truth.video, frames=frames)
            for item in truth.items:
                for stack in ("ours", "peer"):
                    s = score(events[stack][item.name], item.events, undecidable=item.undecidable)
                    rows.append({"video": truth.video, "model": f"{model_name}-irregular", "item": item.name,
                                 "kind": item.kind, "split": item.split, "stride": stride, "seed": seed,
                                 "stack": stack, **s, "meets_target": meets(s, stride)})
    return rows


def summarise(rows: List[dict]) -> dict:
    """Totals per model, stride, stack and split: pooled precision/recall, lines meeting their target."""
    out: Dict[str, dict] = {}
    keys = sorted({(r["model"], r["stride"], r["stack"]) for r in rows})
    for model, stride, stack in keys:
        for split in ("tune", "report", "all"):
            sel = [r for r in rows if r["model"] == model and r["stride"] == stride and r["stack"] == stack
                   and (split == "all" or r["split"] == split)]
            if not sel:
                continue
            tp, fp, fn, ignored = (sum(r[k] for r in sel) for k in ("tp", "fp", "fn", "ignored"))
            out[f"{model}/stride{stride}/{stack}/{split}"] = {
                "items": len(sel), "tp": tp, "fp": fp, "fn": fn, "ignored": ignored,
                "precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
                # the undecidable passes counted as false events (see counting_eval.score)
                "precision_strict": tp / (tp + fp + ignored) if tp + fp + ignored else 1.0,
                "items_meeting_target": sum(r["meets_target"] for r in sel),
                "sum_abs_count_error": sum(sum(abs(v) for v in r["count_error"].values()) for r in sel)}
    return out


def worse_than_peer(rows: List[dict]) -> List[dict]:
    """Lines and strides where ours has a larger worst per-direction count error than the peer stack
    (the count is what a user sees; event F1 is recorded beside it)."""
    index = {(r["video"], r["model"], r["item"], r["stride"], r.get("seed"), r["stack"]): r for r in rows}
    found = []
    for (video, model, item, stride, seed, stack), r in index.items():
        if stack != "ours":
            continue
        peer = index[(video, model, item, stride, seed, "peer")]
        f1 = lambda x: 2 * x["tp"] / (2 * x["tp"] + x["fp"] + x["fn"]) if x["tp"] + x["fp"] + x["fn"] else 1.0
        if r["max_abs_count_error"] > peer["max_abs_count_error"]:
            found.append({"video": video, "model": model, "item": item, "stride": stride,
                          **({} if seed is None else {"seed": seed}),
                          "ours_err": r["max_abs_count_error"], "peer_err": peer["max_abs_count_error"],
                          "ours_f1": f1(r), "peer_f1": f1(peer)})
    return found


def _repo_relative(path: object) -> str:
    """A path as the repository names it (no machine's directories in a committed result)."""
    root = RESULTS_DIR.parent.parent
    try:  # not resolved: build/bench_cache may be a link to another checkout's cache
        return Path(os.path.abspath(path)).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


def judged_stride(rate: float) -> int:
    """The stride whose target a live run processing every ``rate``-th frame is judged by: the nearest of
    STRIDES, the stricter (larger) one at a tie."""
    nearest = min(STRIDES, key=lambda k: abs(k - rate))
    return max(nearest, min(int(rate + 0.5), STRIDES[-1]))


def gap_summary(frames: Sequence[int]) -> dict:
    """How far apart the processed video frames ``frames`` (increasing) were: ``gap_counts`` {gap: how many
    times} and ``longest_gap`` [the frame before it, gap] (None with fewer than two frames)."""
    gaps = [b - a for a, b in zip(frames, frames[1:])]
    counts = {str(g): gaps.count(g) for g in sorted(set(gaps))}
    longest = max(range(len(gaps)), key=lambda k: (gaps[k], -k), default=None)
    return {"gap_counts": counts, "longest_gap": None if longest is None else [frames[longest], gaps[longest]]}


def live_run(truth: Truth, threads: int = 1, rect: bool = False, replay_fps: float = 0.0,
             frames_out: Optional[List[dict]] = None) -> List[dict]:
    """The real pipeline in 'latest' mode on the video paced at ``replay_fps`` (0 = its own rate); events
    scored per item. Frame timestamps stay the video's clock, so a replay faster than the video's own rate
    is what a slower board sees from a camera at that rate: the newest frame wins, and the detector keeps
    up with every k-th frame, irregularly. Each row carries the run's gaps (:func:`gap_summary`); the frames it
    processed are appended to ``frames_out`` (``model``, ``stride``, ``replay_fps``, ``frames``), so that the
    run can be replayed on the frozen detections (``counting_eval.replay(..., frames=...)``)."""
    from edge_runtime.assets import ensure
    from edge_runtime.runtime.build import build_pipeline
    from edge_runtime.runtime.config import config_from_dict

    lines = [{"name": i.name, **i.geometry} for i in truth.items if i.kind == "line"]
    zones = [{"name": i.name, "polygon": i.geometry["polygon"]} for i in truth.items if i.kind == "zone"]
    source = {"uri": str(ensure(truth.video)), "mode": "latest"}
    source.update({"replay_fps": replay_fps} if replay_fps else {"fps_cap": truth.fps})
    config = config_from_dict({
        "source": source,
        "model": {"path": "builtin:yolov8s-person", "classes": [0], "threads": threads, "rect": rect},
        "lines": lines, "zones": zones, "output": {"db": "", "print_every_s": 0}})
    pipeline = build_pipeline(config, quiet=True)
    events: Dict[str, list] = {i.name: [] for i in truth.items}
    processed: List[int] = []
    for result in pipeline:
        if result.inferred:
            processed.append(result.frame.index)
        for e in result.events:
            events[e.name].append((e.crossed_frame, e.direction.value))
    for e in pipeline.final_events:
        events[e.name].append((e.crossed_frame, e.direction.value))
    s = pipeline.summary
    stride = truth.frames / max(s.inferred_frames, 1)
    busy_s = (s.inference_ms_total + s.overhead_ms_total) / 1e3
    model = "fp32-rect-live" if rect else "fp32-live"
    gaps = gap_summary(processed)
    rows = []
    for item in truth.items:
        r = score(sorted(events[item.name]), item.events, undecidable=item.undecidable)
        rows.append({"video": truth.video, "model": model, "item": item.name,
                     "kind": item.kind, "split": item.split, "stride": round(stride, 2), "stack": "ours-live", **r,
                     "replay_fps": round(replay_fps or truth.fps, 2),
                     "processed_fps": round(s.inferred_frames / busy_s, 2) if busy_s > 0 else None,
                     **gaps, "meets_target": meets(r, judged_stride(stride))})
    if frames_out is not None:
        frames_out.append({"model": model, "stride": round(stride, 2), "replay_fps": round(replay_fps or truth.fps, 2),
                           "frames": processed})
    return rows


def live_runs(truth: Truth, threads: int = 1, rect: bool = False, repeats: int = 1,
              frames_out: Optional[List[dict]] = None) -> List[dict]:
    """Live runs that land at every stride: first at the video's own rate; then, for each stride k in 1..4
    at least half a frame from the one that run landed at, replayed at k times the rate the pipeline
    processed frames in it: faster than the video for a board k times slower, slower than the video for
    the strides below the one a slow machine lands at on its own. Each run's rows carry the stride it
    actually reached, which is what it is judged by. With ``repeats`` > 1 the same replay rates are run
    again, in turn (which frames a live run keeps depends on timing); rows, and the records appended to
    ``frames_out`` (see :func:`live_run`), carry ``run`` (0, 1, ...)."""
    frames: List[dict] = []
    first = live_run(truth, threads, rect, frames_out=frames)
    native_stride, rate = first[0]["stride"], first[0]["processed_fps"]
    rates = [0.0] + [round(k * rate, 2) for k in STRIDES if rate and abs(k - native_stride) >= 0.5]
    rows = [{**r, "run": 0} for r in first]
    runs = [0]
    for run in range(repeats):
        for replay_fps in rates[1:] if run == 0 else rates:
            rows += [{**r, "run": run} for r in live_run(truth, threads, rect, replay_fps=replay_fps,
                                                          frames_out=frames)]
            runs.append(run)
    if frames_out is not None:
        frames_out += [{**f, "run": run} for f, run in zip(frames, runs)]
    return rows


def plot(rows: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in rows if r["stack"] == "ours" and not r["model"].endswith(("-live", "-irregular"))})
    strides = sorted({r["stride"] for r in rows if r["stack"] == "ours"})
    fig, axes = plt.subplots(len(models), len(strides), figsize=(4.2 * len(strides), 3.6 * len(models)),
                             squeeze=False, sharey=True)
    for mi, model in enumerate(models):
        for si, stride in enumerate(strides):
            ax = axes[mi][si]
            sel = {(r["item"], r["stack"]): r for r in rows if r["model"] == model and r["stride"] == stride}
            items = sorted({k[0] for k in sel})
            for offset, stack, colour in ((-0.2, "ours", "tab:blue"), (0.2, "peer", "tab:orange")):
                ax.bar([i + offset for i in range(len(items))],
                       [sum(abs(v) for v in sel[(it, stack)]["count_error"].values()) for it in items],
                       width=0.4, label=stack, color=colour)
            ax.set_xticks(range(len(items)))
            ax.set_xticklabels(items, rotation=70, fontsize=7)
            ax.set_title(f"{model}, every {stride}{'st' if stride == 1 else 'th' if stride > 3 else 'nd' if stride == 2 else 'rd'} frame",
                         fontsize=9)
            if si == 0:
                ax.set_ylabel("|count error|, both directions")
            ax.legend(fontsize=7)
    fig.suptitle("Counting error against by-eye truth per line/zone (lower is better)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strides", type=int, nargs="+", default=list(STRIDES))
    parser.add_argument("--videos", nargs="+", default=list(VIDEOS))
    parser.add_argument("--int8", action="store_true", help="also the int8 model the converter produces")
    parser.add_argument("--live", action="store_true", help="also a live 'latest'-mode run of the pipeline")
    parser.add_argument("--live-runs", type=int, default=3, metavar="N",
                        help="with --live: run the live replays this many times each (their frames vary)")
    parser.add_argument("--irregular", type=int, default=4, metavar="N",
                        help="seeds of the replays at a live run's irregular gaps, strides 2-4 (0 = none)")
    parser.add_argument("--rect", action="store_true",
                        help="judge rectangular inference (model.rect) instead: fp32 only, and the live run with it")
    parser.add_argument("--name", default="counting")
    args = parser.parse_args(argv)
    if args.rect and args.int8:
        parser.error("--rect judges the fp32 detector only; run --int8 without it")

    rows: List[dict] = []
    live_frames: List[dict] = []
    models: List[tuple] = [("fp32-rect" if args.rect else "fp32", None)]
    int8_info = None
    if args.int8:
        from benchmarks.bench_int8 import converted_model
        from edge_runtime.assets import ensure

        int8_info = converted_model(ensure("yolov8s-person"), ensure("vtest-video"), False)
        models.append(("int8", int8_info["path"]))
    for video in args.videos:
        truth = load_truth(video)
        for name, path in models:
            rows += evaluate(truth, name, path, args.strides, rect=args.rect, irregular_seeds=args.irregular)
        if args.live and video == "vtest-video":
            # rect's live run shows how much more of the frames it keeps up with: at the video's own rate only
            rows += (live_run(truth, rect=True, frames_out=live_frames) if args.rect
                     else live_runs(truth, repeats=max(args.live_runs, 1), frames_out=live_frames))
    summary = summarise(rows)
    losses = worse_than_peer(rows)
    for key, s in summary.items():
        if key.endswith("/all"):
            print(f"{key:40s} P {s['precision']:.3f} R {s['recall']:.3f}  items meeting target "
                  f"{s['items_meeting_target']}/{s['items']}  sum|err| {s['sum_abs_count_error']}")
    print(f"lines where ours is worse than the peer: {len(losses)}")
    for loss in losses:
        print(f"  {loss}")
    payload = {
        "question": "counts vs by-eye truth on every truth line/zone, ours vs trackers ByteTrack + supervision, "
                    "at detector strides 1-4",
        "match_rule": "same direction within +-5 video frames, one-to-one, the most pairs (then the least total frame "
                      "difference; scipy linear_sum_assignment); an unmatched event "
                      "within +-5 frames of a pass the truth marks undecidable is left out (\"ignored\"; "
                      "precision_strict counts it as false)",
        "targets": {f"stride{k}": targets_for(k) for k in STRIDES},
        "int8_model": None if int8_info is None else {k: _repo_relative(v) if k == "path" else str(v)
                                                      for k, v in int8_info.items()},
        "rect": args.rect,
        "summary": summary, "worse_than_peer": losses,
        "live_frames": [{**f, "frames": " ".join(map(str, f["frames"]))} for f in live_frames], "rows": rows}
    path = write_result(args.name, payload)
    plot(rows, RESULTS_DIR / f"{args.name}.png")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
