"""Co-scheduling: camera detection and local chat on one small CPU, managed vs unmanaged.

Question: while a fixed script of chat questions runs, does detection hold its target, and what does chat
keep of its solo speed — with the runtime's scheduler, and with both libraries left at their defaults?

Set-up (one process, same inputs for every run): the real YOLOv8s person detector on vtest.avi replayed
as a camera ("latest" mode, paced at the file's 10 fps, newest frame wins), ByteTrack and a line counter;
SmolLM2-135M-Instruct answering a fixed list of questions back to back (greedy, 48 tokens each).

Runs (2, 3 and 4 repeated ``--rounds`` times, interleaved, the order rotated each round; the median round
is reported with the range):
1. ``solo-detection``: the pipeline alone with all cores -> solo frame time ``d`` (once, for the target).
2. ``solo-chat``: the chat script alone with every core it could have, back to back for as long as a
   co-scheduled run's chat -> solo decode tokens/s. Every round has its own, and a round's co-scheduled
   runs are judged against that round's solo speed, so a machine that drifts (other tenants, clocks)
   moves both sides of each ratio alike.
3. ``unmanaged``: both free-running at the libraries' defaults (onnxruntime: all cores, spinning
   workers; llama-cpp-python: cpu_count // 2 threads), side by side.
4. ``managed-<policy>``: :class:`~edge_runtime.runtime.supervisor.Supervisor` with the chat server,
   chat through HTTP, for each policy in ``--policies`` ("auto" records what the start-up measurement
   chose).

The detection target is picked from step 1, honestly: time slicing gives chat ``1 - fps * d`` of the
machine, so for chat to keep >= 0.8x its solo speed the target is ``0.2 / d`` (rounded down to 0.05 fps),
unless ``--target-fps`` is given. "Holds the target at p95" means the 95th percentile of the intervals
between completed frames is <= 1 / target.

Writes benchmarks/results/cosched.json and cosched.png (fps and tokens/s over time, every run).

Limits (``benchmarks/cpu_limits.py``): ``--cpus N`` pins the process to N CPUs; ``--cpu-quota 1.5`` runs it in
a new cgroup with 1.5 cores of bandwidth (root). The result then records ``auto``: whether ``auto`` met both
targets wherever ``fair`` or ``detection-first`` did.

Run: ``python -m benchmarks.bench_cosched [--seconds 40] [--rounds 3] [--policies auto,detection-first,fair] [--model M.onnx
--name cosched-int8] [--cpus 1] [--cpu-quota 1.5] [--rect --target-fps 1.3]`` (``--model``: another detector, e.g. the
int8 model ``bench_int8`` converts; ``--rect``: every detector with rectangular inference, ``model.rect``, 640x480 for
these 4:3 frames; with ``--target-fps`` the square run's target, to ask whether the smaller frame lets chat keep its
share at the same detection rate).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import threading
import time
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from benchmarks.cpu_limits import limit_cpus, quota_group
from benchmarks.harness import RESULTS_DIR, machine_info, percentile, write_result
from edge_runtime.assets import ensure
from edge_runtime.llm.chat import Chat
from edge_runtime.runtime.config import config_from_dict
from edge_runtime.runtime.metrics import Metrics
from edge_runtime.runtime.pipeline import Pipeline
from edge_runtime.runtime.cpus import available_cores
from edge_runtime.runtime.supervisor import Supervisor
from edge_runtime.vision.counting import LineCounter
from edge_runtime.vision.detector import Detector
from edge_runtime.vision.sources import open_source
from edge_runtime.vision.tracking import ByteTracker

QUESTIONS = (
    "Explain in two sentences what a line-crossing counter does.",
    "Give three tips for placing a security camera at a shop entrance.",
    "What is the difference between a person walking in and walking out?",
    "Describe a busy pedestrian street in the morning.",
    "Why do small computers get hot when they run AI models?",
    "Write a short note asking a colleague to check the camera.",
)
MAX_TOKENS = 48
LINE = ("walkway", (400, 150), (400, 400))


class Trace:
    """Frame completion times and per-generation chat figures of one run (monotonic seconds)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.frames: List[float] = []
        self.gens: List[Dict[str, float]] = []
        self.metrics = Metrics(window_s=1e9)

    def frame(self, result: Any, arrival_s: float) -> None:
        now = time.monotonic()
        self.frames.append(now - self.t0)
        self.metrics.frame_done(timestamp_s=result.frame.timestamp_s, arrival_s=arrival_s, done_s=now,
                                inference_ms=result.timings.inference_ms)

    def gen(self, stats: Dict[str, Any]) -> None:
        self.gens.append({"t_s": time.monotonic() - self.t0, "tokens_per_s": float(stats["tokens_per_s"]),
                          "ttft_s": float(stats["ttft_s"] or 0.0), "tokens": int(stats["completion_tokens"])})

    def summary(self, target_fps: Optional[float]) -> Dict[str, Any]:
        intervals = [b - a for a, b in zip(self.frames, self.frames[1:])]
        snap = self.metrics.snapshot()
        out: Dict[str, Any] = {"frames": len(self.frames), "generations": len(self.gens)}
        if intervals:
            p95 = percentile(intervals, 95)
            out.update({"fps_mean": len(intervals) / (self.frames[-1] - self.frames[0]),
                        "frame_interval_p50_s": percentile(intervals, 50), "frame_interval_p95_s": p95,
                        "fps_at_p95": 1.0 / p95 if p95 > 0 else math.inf,
                        "frame_age_p50_s": snap["frame_age_p50_s"], "frame_age_p95_s": snap["frame_age_p95_s"],
                        "inference_ms_p50": snap["inference_ms_p50"]})
            if target_fps:
                out["holds_target_at_p95"] = bool(p95 <= 1.0 / target_fps)
        if self.gens:
            rates = [g["tokens_per_s"] for g in self.gens if g["tokens_per_s"] > 0]
            out.update({"tokens_per_s_median": statistics.median(rates) if rates else 0.0,
                        "ttft_s_median": statistics.median(g["ttft_s"] for g in self.gens)})
        return out


def _pipeline(detector: Detector) -> Pipeline:
    return Pipeline(open_source(ensure("vtest-video"), mode="latest"), detector, tracker=ByteTracker.for_video(10.0),
                    counters=[LineCounter(*LINE)])


def _drive(pipe: Pipeline, trace: Trace, stop: threading.Event) -> None:
    with pipe.source:
        for frame in pipe.source:
            arrival = time.monotonic()
            result = pipe.process(frame)
            trace.frame(result, arrival)
            if stop.is_set():
                return


def _chat_script(ask, trace: Trace, stop: threading.Event) -> None:
    i = 0
    while not stop.is_set():
        trace.gen(ask(QUESTIONS[i % len(QUESTIONS)]))
        i += 1


def _local_ask(chat: Chat):
    def ask(question: str) -> Dict[str, Any]:
        chat.ask(question, temperature=0.0, max_tokens=MAX_TOKENS)
        return chat.last_stats.as_dict()
    return ask


def _http_ask(base: str):
    def ask(question: str) -> Dict[str, Any]:
        body = {"messages": [{"role": "user", "content": question}], "max_tokens": MAX_TOKENS, "temperature": 0.0}
        req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.loads(resp.read())["stats"]
    return ask


#: The detector every run uses: "builtin:NAME" (a cached asset) or a path; set from ``--model``.
MODEL = "builtin:yolov8s-person"
#: Rectangular inference (``model.rect``) for every detector; set from ``--rect``.
RECT = False


def _model_path() -> Any:
    return ensure(MODEL.split(":", 1)[1]) if MODEL.startswith("builtin:") else MODEL


def run_solo_detection(seconds: float, cores: int) -> Trace:
    trace, stop = Trace(), threading.Event()
    pipe = _pipeline(Detector(_model_path(), threads=cores, classes=[0], rect=RECT))
    t = threading.Thread(target=_drive, args=(pipe, trace, stop))
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    return trace


def run_solo_chat(seconds: float, threads: int) -> Trace:
    """The chat script alone for ``seconds`` (at least one pass over the questions), ``threads`` threads.

    It runs on a thread of its own that ends with the run, as the chat server's worker does. llama.cpp
    here is built with OpenMP, and libgomp keeps a pool of workers for every live thread that has
    decoded; once its pools hold more threads than there are CPUs it stops spin-waiting at barriers. A
    pool left on the main thread would slow every later two-thread chat in this process.
    """
    trace = Trace()

    def work() -> None:
        chat = Chat(ensure("smollm2-135m"), n_ctx=1024, n_threads=threads)
        trace.t0 = time.monotonic()
        i = 0
        try:
            while i < len(QUESTIONS) or time.monotonic() - trace.t0 < seconds:
                trace.gen(_local_ask(chat)(QUESTIONS[i % len(QUESTIONS)]))
                i += 1
        finally:
            chat.close()

    worker = threading.Thread(target=work, name="solo-chat")
    worker.start()
    worker.join()
    return trace


def run_unmanaged(seconds: float) -> Trace:
    """Both libraries at their defaults, side by side."""
    trace, stop = Trace(), threading.Event()
    detector = Detector(_model_path(), threads=None, spin=True, classes=[0], rect=RECT)  # onnxruntime defaults
    chat = Chat(ensure("smollm2-135m"), n_ctx=1024)  # n_threads default: cpu_count // 2, as llama-cpp-python
    trace.t0 = time.monotonic()  # the clock starts once both models are loaded, as in the managed runs
    threads = [threading.Thread(target=_drive, args=(_pipeline(detector), trace, stop)),
               threading.Thread(target=_chat_script, args=(_local_ask(chat), trace, stop))]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    chat.close()
    return trace


def run_managed(seconds: float, policy: str, target_fps: float, cores: int) -> Tuple[Trace, Dict[str, Any]]:
    config = config_from_dict({
        "source": {"uri": "builtin:vtest-video", "mode": "latest"},
        "model": {"path": str(MODEL), "classes": [0], "rect": RECT},
        "lines": [{"name": LINE[0], "start": list(LINE[1]), "end": list(LINE[2])}],
        "output": {"db": "", "print_every_s": 0.0},
        "budget": {"cores": cores, "policy": policy, "min_fps": target_fps},
        "chat": {"enabled": True, "port": 0, "ctx": 1024},
    })
    trace, stop = Trace(), threading.Event()
    sup = Supervisor(config, quiet=True, chat=Chat(ensure("smollm2-135m"), n_ctx=1024, n_threads=cores))

    class FrameSink:
        def write(self, result: Any, pipeline: Any) -> None:
            trace.frame(result, sup._clock.arrival_s)

        def close(self, pipeline: Any) -> None:
            pass

    sup.pipeline.sinks.append(FrameSink())
    trace.t0 = time.monotonic()
    sup.start()
    base = f"http://{sup.address[0]}:{sup.address[1]}"
    t = threading.Thread(target=_chat_script, args=(_http_ask(base), trace, stop))
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    info = {"budget": sup.scheduler.describe(), "yields": sup.scheduler.stats["yields"],
            "policy_choice": getattr(sup, "policy_choice", None),
            "cpu_percent": sup.metrics_snapshot()["cpu_percent"]}
    sup.shutdown()
    sup.chat.close()
    return trace, info


def _sliding_fps(frames: List[float], window_s: float = 5.0, step_s: float = 1.0) -> Tuple[List[float], List[float]]:
    if not frames:
        return [], []
    xs, ys = [], []
    t = window_s
    while t <= frames[-1] + 1e-9:
        n = sum(1 for f in frames if t - window_s < f <= t)
        xs.append(t)
        ys.append(n / window_s)
        t += step_s
    return xs, ys


def plot(traces: Dict[str, Trace], target_fps: float, solo_tps: float, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for name, trace in traces.items():
        if trace.frames:
            ax1.plot(*_sliding_fps(trace.frames), label=name)
        if trace.gens:
            ax2.plot([g["t_s"] for g in trace.gens], [g["tokens_per_s"] for g in trace.gens], marker="o", label=name)
    ax1.axhline(target_fps, color="k", linestyle="--", linewidth=1, label=f"target {target_fps:g} fps")
    ax1.set_ylabel("detection fps (5 s window)")
    ax1.legend(fontsize=8)
    ax2.axhline(0.8 * solo_tps, color="k", linestyle="--", linewidth=1, label="0.8 x solo chat")
    ax2.set_ylabel("chat decode tokens/s (per answer)")
    ax2.set_xlabel("seconds into the run")
    ax2.legend(fontsize=8)
    fig.suptitle("YOLOv8s on vtest.avi (10 fps camera replay) + SmolLM2-135M chat on one CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv: Optional[List[str]] = None) -> None:
    global MODEL, RECT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="length of each co-scheduled run")
    parser.add_argument("--policies", default="auto,detection-first,fair", help="managed runs, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="each run this many times, interleaved")
    parser.add_argument("--target-fps", type=float, default=None, help="detection target (default: from solo)")
    parser.add_argument("--model", default="builtin:yolov8s-person", help="detector: builtin:NAME or an .onnx path")
    parser.add_argument("--name", default=None,
                        help="result name under benchmarks/results (.json, .png; default cosched, with the limits)")
    parser.add_argument("--cpus", type=int, default=None, help="run on this process's first N CPUs (affinity)")
    parser.add_argument("--cpu-quota", type=float, default=None,
                        help="run inside a new cgroup with this CPU bandwidth in cores, e.g. 1.5 (needs root)")
    parser.add_argument("--rect", action="store_true",
                        help="rectangular inference (model.rect) for every detector: a smaller frame for 4:3 video")
    args = parser.parse_args(argv)
    MODEL, RECT = args.model, args.rect
    if args.name is None:
        args.name = "cosched" + ("-rect" if args.rect else "") + (f"-cpus{args.cpus}" if args.cpus else "") + (
            f"-quota{args.cpu_quota:g}" if args.cpu_quota else "")
    with contextlib.ExitStack() as limits:
        if args.cpus:
            print(f"pinned to CPUs {limit_cpus(args.cpus)}")
        if args.cpu_quota:
            print(f"in cgroup {limits.enter_context(quota_group(args.cpu_quota))} ({args.cpu_quota:g} cores)")
        _run(args)


def _auto_verdict(results: Dict[str, Any]) -> Dict[str, Any]:
    """Whether ``auto`` met both targets wherever ``fair`` or ``detection-first`` did (median rounds)."""
    auto = results.get("managed-auto")
    others = {p: results[f"managed-{p}"]["meets_both"] for p in ("fair", "detection-first")
              if f"managed-{p}" in results}
    if auto is None or not others:
        return {}
    possible = any(others.values())
    return {"auto_chose": (auto.get("policy_choice") or {}).get("policy"), "meets_both_possible": possible,
            "auto_meets_both": auto["meets_both"], "policies_meeting_both": sorted(p for p, ok in others.items() if ok),
            "auto_ok": auto["meets_both"] or not possible}


def _run(args: argparse.Namespace) -> None:
    cores = available_cores()

    solo_det = run_solo_detection(min(args.seconds, 20.0), cores)
    d_s = solo_det.summary(None)["inference_ms_p50"] / 1e3
    solo_frame_s = solo_det.summary(None)["frame_interval_p50_s"]
    target = args.target_fps or max(0.05, math.floor(0.2 / solo_frame_s / 0.05) * 0.05)
    print(f"solo detection: {1 / solo_frame_s:.2f} fps (inference {d_s * 1e3:.0f} ms) -> target {target:g} fps")

    chat_threads = cores  # solo: chat alone with every core it could have
    traces: Dict[str, Trace] = {}
    results: Dict[str, Any] = {"solo_detection": solo_det.summary(None)}
    names = ["unmanaged"] + [f"managed-{p.strip()}" for p in args.policies.split(",") if p.strip()]
    solo_rounds: List[Dict[str, Any]] = []
    per_round: Dict[str, List[Dict[str, Any]]] = {n: [] for n in names}
    for k in range(args.rounds):
        runs = names + ["solo-chat"]
        order = runs[k % len(runs):] + runs[:k % len(runs)]  # rotate: each run goes first once
        done: Dict[str, Tuple[Trace, Dict[str, Any]]] = {}
        for name in order:
            if name == "solo-chat":
                trace, info = run_solo_chat(args.seconds, chat_threads), {}
                print(f"round {k + 1} solo chat ({chat_threads} threads): "
                      f"{trace.summary(None)['tokens_per_s_median']:.1f} tokens/s")
            elif name == "unmanaged":
                trace, info = run_unmanaged(args.seconds), {}
            else:
                trace, info = run_managed(args.seconds, name.removeprefix("managed-"), target, cores)
            done[name] = (trace, info)
        solo = done["solo-chat"][0].summary(None)
        solo_rounds.append(solo)
        round_tps = solo["tokens_per_s_median"]
        for name in names:
            trace, info = done[name]
            summary = {**trace.summary(target), **info, "solo_tokens_per_s": round_tps}
            tps = summary.get("tokens_per_s_median", 0.0)
            summary["chat_vs_solo"] = tps / round_tps if round_tps else None
            summary["meets_both"] = bool(summary.get("holds_target_at_p95")) and tps >= 0.8 * round_tps
            per_round[name].append(summary)
            traces[name] = trace  # the plot shows the last round
            print(f"round {k + 1} {name}: fps at p95 {summary.get('fps_at_p95', 0):.2f}, chat "
                  f"{summary['chat_vs_solo'] or 0:.2f}x that round's solo, meets both: {summary['meets_both']}")
    solo_values = sorted(r["tokens_per_s_median"] for r in solo_rounds)
    solo_tps = solo_values[len(solo_values) // 2]
    results["solo_chat"] = {**solo_rounds[-1], "tokens_per_s_median": solo_tps,
                            "tokens_per_s_median_range": [solo_values[0], solo_values[-1]], "rounds": solo_rounds}
    for name, rounds in per_round.items():
        last = dict(rounds[-1])
        for key in ("fps_at_p95", "chat_vs_solo", "tokens_per_s_median"):
            values = sorted(r.get(key) or 0.0 for r in rounds)
            last[key] = values[len(values) // 2]  # the median round
            last[f"{key}_range"] = [values[0], values[-1]]
        last["holds_target_at_p95"] = last["fps_at_p95"] >= target
        last["meets_both"] = last["holds_target_at_p95"] and last["chat_vs_solo"] >= 0.8
        last["rounds_meeting_both"] = sum(bool(r["meets_both"]) for r in rounds)
        last["rounds"] = rounds
        results[name] = last

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    png = RESULTS_DIR / f"{args.name}.png"
    plot(traces, target, solo_tps, png)
    path = write_result(args.name, {
        "question": "detection target at p95 and chat decode vs solo, managed vs unmanaged, one CPU",
        "model": str(MODEL), "rect": RECT, "cores": cores, "target_fps": target, "solo_frame_s": solo_frame_s,
        "solo_inference_s": d_s,
        "solo_tokens_per_s": solo_tps, "solo_chat_threads": chat_threads, "seconds_per_run": args.seconds,
        "rounds": args.rounds, "max_tokens": MAX_TOKENS,
        "runs": results, "limits": {"cpus": args.cpus, "cpu_quota": args.cpu_quota}, "auto": _auto_verdict(results),
        "series": {name: {"frames_s": [round(f, 3) for f in t.frames], "generations": t.gens}
                   for name, t in traces.items()},
        "load_average_at_end": list(__import__("os").getloadavg()),
    }, threads=cores)
    print(f"wrote {path} and {png}")


if __name__ == "__main__":
    main()
