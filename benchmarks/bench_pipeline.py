"""The whole job vs the stack users assemble today, on the real detector and all 795 frames of vtest.avi.

Peer: onnxruntime + the pre/post-processing of Ultralytics' ONNX Runtime example (cv2 letterbox, NumPy
decode, cv2.dnn.NMSBoxes) + the ``trackers`` package's ByteTrack + supervision's LineZone.
Ours: edge_runtime's Pipeline (native letterbox/decode/NMS, native-assisted ByteTracker, LineCounter).
Same model file, same onnxruntime session options and thread count, every frame, same line. Both sides'
onnxruntime workers spin between operators: the peer keeps onnxruntime's defaults as users write them
(its workers also spin on for a while after each call), ours spins with ``model.spin = "auto"`` when no
chat model is configured and lets its workers sleep once a call returns. Ours is
built from a config as ``edge-runtime run`` builds it (every tracker and counter default). With
``--int8 MODEL`` ours also runs on the int8 detector, against the peer's fp32. ``--rect`` runs ours (both
models) with rectangular inference (``model.rect``: 640x480 for these 4:3 frames, the peer keeps its
square 640x640): a different amount of work, so its result goes to its own file. Both stacks' line counts
are scored against the by-eye truth of the walkway line.

Each side runs in its own process (so CPU time and peak RSS are its own), alternating order over
``--rounds`` rounds; the ratio is taken per round. Line in/out counts of both are reported and must agree
within +-1 (the trackers differ, so ids and the odd crossing may too; see the JSON for per-side events).

    python -m benchmarks.bench_pipeline [--threads 2] [--rounds 5] [--model builtin:yolov8s-person] [--int8 M.onnx]
        [--rect --name pipeline_rect]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

LINE_START, LINE_END = (400, 400), (400, 150)  # the built-in walkway line ("in" = walking left to right)
CONF, IOU = 0.1, 0.45  # ByteTrack uses low-score boxes in its second stage: both sides detect down to 0.1


def _session(model: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")  # onnxruntime's default
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _run_peer(model: str, video: str, threads: int) -> Dict:
    import cv2
    import supervision as sv
    from trackers import ByteTrackTracker

    from benchmarks.bench_kernels import _cv2_letterbox

    session = _session(model, threads)
    name_in, name_out = session.get_inputs()[0].name, session.get_outputs()[0].name
    tracker = ByteTrackTracker(lost_track_buffer=90, frame_rate=10, track_activation_threshold=0.6,
                               minimum_consecutive_frames=3, minimum_iou_threshold=0.2, high_conf_det_threshold=0.5)
    line = sv.LineZone(start=sv.Point(*LINE_START), end=sv.Point(*LINE_END),
                       triggering_anchors=[sv.Position.BOTTOM_CENTER], minimum_crossing_threshold=2)
    cap = cv2.VideoCapture(video)
    latencies, infer_ms, events, stages = [], [], [], []
    t_start = time.perf_counter()
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t0 = time.perf_counter()
        h, w = frame.shape[:2]
        r = min(640 / h, 640 / w)
        pad_x, pad_y = round((640 - round(w * r)) / 2 - 0.1), round((640 - round(h * r)) / 2 - 0.1)
        x = _cv2_letterbox(frame)
        t1 = time.perf_counter()
        out = session.run([name_out], {name_in: x})[0][0].T
        t2 = time.perf_counter()
        scores = out[:, 4:]
        best = scores.max(axis=1)
        cls = scores.argmax(axis=1)
        keep = (best >= CONF) & (cls == 0)
        out, best, cls = out[keep], best[keep], cls[keep]
        xywh = np.stack([(out[:, 0] - out[:, 2] / 2 - pad_x) / r, (out[:, 1] - out[:, 3] / 2 - pad_y) / r,
                         out[:, 2] / r, out[:, 3] / r], axis=1)
        idx = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), best.tolist(), CONF, IOU), np.int64).reshape(-1)
        xyxy = np.concatenate([xywh[idx, :2], xywh[idx, :2] + xywh[idx, 2:]], axis=1)
        xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, w)
        xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, h)
        dets = sv.Detections(xyxy=xyxy.astype(np.float32), confidence=best[idx].astype(np.float32),
                             class_id=cls[idx].astype(int))
        dets = tracker.update(dets)
        confirmed = dets[dets.tracker_id >= 0] if len(dets) else dets  # unconfirmed tracks share id -1
        crossed_in, crossed_out = line.trigger(confirmed)
        if len(confirmed):
            events.extend((index, int(t), "out") for t in confirmed.tracker_id[crossed_in])  # their in = our out
            events.extend((index, int(t), "in") for t in confirmed.tracker_id[crossed_out])
        t3 = time.perf_counter()
        latencies.append((t3 - t0) * 1e3)
        infer_ms.append((t2 - t1) * 1e3)
        stages.append({"letterbox": (t1 - t0) * 1e3, "decode_nms_track_count": (t3 - t2) * 1e3})
        index += 1
    wall = time.perf_counter() - t_start
    # supervision's "in" is the other side of the line from ours: report in our convention.
    return {"frames": index, "wall_s": wall, "latency_ms": latencies, "inference_ms": infer_ms, "stages_ms": stages,
            "line_in": int(line.out_count), "line_out": int(line.in_count), "events": events}


def _run_ours(model: str, video: str, threads: int, motion_gate: bool = False, rect: bool = False) -> Dict:
    """The job as shipped: built from a config with every tracker and counter default (only the source,
    model, thread count and the walkway line are set), as ``edge-runtime run`` builds it."""
    from edge_runtime.runtime.build import build_pipeline
    from edge_runtime.runtime.config import config_from_dict

    config = config_from_dict({
        "source": {"uri": video, "mode": "every", "motion_gate": motion_gate},
        "model": {"path": model, "classes": [0], "threads": threads, "rect": rect},
        "lines": [{"name": "walkway", "start": list(LINE_START), "end": list(LINE_END)}],
        "output": {"db": "", "print_every_s": 0.0},
    })
    pipeline = build_pipeline(config, quiet=True)
    line = pipeline.counters[0]
    latencies, infer_ms, events, stages = [], [], [], []
    t_start = time.perf_counter()
    for result in pipeline:
        # Frame latency = decode (inside the source's iterator) is excluded on both sides: from the frame
        # in hand to counts out. Here that is the pipeline's own total for the frame.
        latencies.append(result.timings.total_ms)
        infer_ms.append(result.timings.inference_ms)
        t = result.timings
        stages.append({"letterbox": t.preprocess_ms, "decode_nms": t.postprocess_ms, "track": t.track_ms,
                       "count": t.count_ms})
        events.extend((e.frame_index, e.track_id, e.direction.value) for e in result.events)
    wall = time.perf_counter() - t_start
    events.extend((e.frame_index, e.track_id, e.direction.value) for e in pipeline.final_events)
    return {"frames": pipeline.summary.frames, "wall_s": wall, "latency_ms": latencies, "inference_ms": infer_ms,
            "stages_ms": stages, "line_in": line.in_total, "line_out": line.out_total, "events": events,
            "dropped": pipeline.summary.dropped_frames, "inferred_frames": pipeline.summary.inferred_frames}


def _walkway_truth() -> Dict[str, int]:
    """By-eye in/out crossings of the built-in walkway line (``benchmarks/truth/vtest/walkway.json``)."""
    truth = json.loads((Path(__file__).resolve().parent / "truth" / "vtest" / "walkway.json").read_text())
    events = truth["events"]
    return {"in": sum(e["direction"] == "in" for e in events), "out": sum(e["direction"] == "out" for e in events)}


def _worker(args: argparse.Namespace) -> None:
    run = {"ours": lambda *a: _run_ours(*a, rect=args.rect), "ours-int8": lambda *a: _run_ours(*a, rect=args.rect),
           "peer": _run_peer, "ours-gated": lambda *a: _run_ours(*a, motion_gate=True, rect=args.rect)}[args.worker]
    t_cpu = time.process_time()
    result = run(args.model, args.video, args.threads)
    result["cpu_s"] = time.process_time() - t_cpu
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(result))


def _summarise(runs: List[Dict]) -> Dict:
    lat = [v for r in runs for v in r["latency_ms"]]
    inf = [v for r in runs for v in r["inference_ms"]]
    fps = [r["frames"] / r["wall_s"] for r in runs]
    overhead = [(l - i) / i for l, i in zip(lat, inf) if i > 0]
    return {
        "frames": runs[0]["frames"],
        "fps_median": statistics.median(fps),
        "latency_ms_p50": float(np.percentile(lat, 50)),
        "latency_ms_p95": float(np.percentile(lat, 95)),
        "inference_ms_p50": float(np.percentile(inf, 50)),
        "non_inference_share_p50": float(np.percentile(overhead, 50)),
        # Each stage's median per frame (ms): where the non-inference time goes. "track" includes the
        # scene-cut check; the peer's decode, NMS, tracker and line run as one block.
        "stages_ms_p50": {k: float(np.percentile([s[k] for r in runs for s in r["stages_ms"]], 50))
                          for k in runs[0]["stages_ms"][0]},
        "cpu_percent": statistics.median(100 * r["cpu_s"] / r["wall_s"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "dropped_frames": max(r.get("dropped", 0) for r in runs),
        "line_in": runs[0]["line_in"],
        "line_out": runs[0]["line_out"],
        "events": runs[0]["events"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--model", default="builtin:yolov8s-person")
    parser.add_argument("--name", default="pipeline", help="result file name under benchmarks/results")
    parser.add_argument("--motion-gate", action="store_true",
                        help="also run ours with the motion gate, to measure its effect on CPU time and counts")
    parser.add_argument("--int8", help="also run ours with this int8 model (e.g. the one bench_int8 converts) "
                                       "against the peer's fp32")
    parser.add_argument("--rect", action="store_true",
                        help="ours with rectangular inference (model.rect); use with --name pipeline_rect")
    parser.add_argument("--worker", choices=["ours", "ours-int8", "peer", "ours-gated"], help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    from benchmarks.harness import write_result
    from edge_runtime.assets import ensure, resolve

    model, video = str(resolve(args.model)), str(ensure("vtest-video"))
    int8 = str(resolve(args.int8)) if args.int8 else None
    runs: Dict[str, List[Dict]] = {"ours": [], "peer": [], "ours-gated": [], "ours-int8": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.rounds):
            sides = ["ours", "peer"] + (["ours-int8"] if int8 else [])
            sides = sides[k % len(sides):] + sides[:k % len(sides)]  # rotate: each side goes first in turn
            for side in sides + (["ours-gated"] if args.motion_gate and k == 0 else []):
                out = Path(tmp) / f"{side}{k}.json"
                side_model = int8 if side == "ours-int8" else model
                subprocess.run([sys.executable, "-m", "benchmarks.bench_pipeline", "--worker", side, "--model",
                                side_model, "--video", video, "--threads", str(args.threads), "--out", str(out)]
                               + (["--rect"] if args.rect else []), check=True)
                runs[side].append(json.loads(out.read_text()))
                print(f"round {k} {side}: {runs[side][-1]['frames'] / runs[side][-1]['wall_s']:.2f} fps", flush=True)
    ours, peer = _summarise(runs["ours"]), _summarise(runs["peer"])
    ratios = [(o["frames"] / o["wall_s"]) / (p["frames"] / p["wall_s"]) for o, p in zip(runs["ours"], runs["peer"])]
    counts_agree = abs(ours["line_in"] - peer["line_in"]) <= 1 and abs(ours["line_out"] - peer["line_out"]) <= 1
    truth = _walkway_truth()
    payload = {
        "question": "whole-job FPS and counts: edge-runtime Pipeline vs onnxruntime + Ultralytics example "
                    "pre/post + trackers ByteTrack + supervision LineZone, same model and threads",
        "model": Path(model).name, "frames": ours["frames"], "threads": args.threads, "rounds": args.rounds,
        "ours_rect": args.rect,
        "session_options": {"intra_op_threads": args.threads, "inter_op_threads": 1, "graph_optimization": "all",
                            "idle_workers_spin": {"ours": "model.spin = auto: on (no chat configured), "
                                                          "stopped at the end of each call",
                                                  "peer": "on, also after each call (onnxruntime's default)"}},
        "fps_ratio_median": statistics.median(ratios), "fps_ratio_per_round": ratios,
        "line_counts_within_1": counts_agree, "ours": ours, "peer": peer,
        "walkway_truth": truth,
        "count_error_vs_truth": {side: {"in": s["line_in"] - truth["in"], "out": s["line_out"] - truth["out"]}
                                 for side, s in (("ours", ours), ("peer", peer))},
    }
    if runs["ours-int8"]:
        q8 = _summarise(runs["ours-int8"])
        r8 = [(o["frames"] / o["wall_s"]) / (p["frames"] / p["wall_s"]) for o, p in zip(runs["ours-int8"], runs["peer"])]
        payload["int8"] = {"model": Path(int8).name, "summary": q8, "fps_ratio_vs_peer_fp32_median": statistics.median(r8),
                           "fps_ratio_vs_peer_fp32_per_round": r8}
        payload["count_error_vs_truth"]["ours-int8"] = {"in": q8["line_in"] - truth["in"],
                                                        "out": q8["line_out"] - truth["out"]}
    if runs["ours-gated"]:
        gated = _summarise(runs["ours-gated"])
        g, o = runs["ours-gated"][0], runs["ours"][0]
        payload["motion_gate"] = {
            "inferred_frames": g["inferred_frames"], "frames": g["frames"],
            "cpu_s": g["cpu_s"], "cpu_s_without_gate": o["cpu_s"],
            "line_in": gated["line_in"], "line_out": gated["line_out"],
            "line_in_without_gate": o["line_in"], "line_out_without_gate": o["line_out"],
        }
    path = write_result(args.name, payload, threads=args.threads)
    for side, s in (("ours", ours), ("peer", peer)):
        print(f"{side:>4}: {s['fps_median']:.2f} fps, latency p50 {s['latency_ms_p50']:.1f} ms p95 "
              f"{s['latency_ms_p95']:.1f} ms, non-inference {s['non_inference_share_p50'] * 100:.2f}% of inference, "
              f"CPU {s['cpu_percent']:.0f}%, peak RSS {s['peak_rss_mb']:.0f} MB, line in {s['line_in']} out {s['line_out']}")
    print(f"FPS ratio ours/peer: x{payload['fps_ratio_median']:.3f}; line counts within +-1: {counts_agree}")
    if "motion_gate" in payload:
        m = payload["motion_gate"]
        print(f"motion gate: inferred {m['inferred_frames']}/{m['frames']} frames, CPU {m['cpu_s']:.0f} s vs "
              f"{m['cpu_s_without_gate']:.0f} s, line in/out {m['line_in']}/{m['line_out']} vs "
              f"{m['line_in_without_gate']}/{m['line_out_without_gate']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
