"""Int8 speed: the converted YOLOv8s person detector vs its fp32 original, on this CPU.

Question: how much faster per frame is the static int8 model the converter produces (calibrated on
vtest.avi frames 0-399, float fallback chosen by measurement) than the fp32 model, with the same
session options and thread count, and does it still count the same people?

The issue asked for >= 2.5x "here"; that figure assumed a CPU with AVX-512 VNNI, where int8 products
have a dot-product instruction. Without VNNI (AVX2 only) ONNX Runtime's u8 x s8 kernels use 16-bit
multiply-adds and need 7-bit weights to avoid saturation, so the gain is smaller and the accuracy lower;
this script measures both on the machine it runs on and records the ISA flags with the result. The
conversion uses the budget such a CPU keeps (counts identical on >= 80 % of held-out frames, mAP@0.5 vs
fp32 >= 0.95, see tests/test_convert_yolo.py); the agreement measured here is reported, not assumed.

Measured, per thread count (default 1 and 2):
- ``frame``: the runtime path, frame in -> Detections out (letterbox, model, decode + NMS);
- ``model``: the ONNX Runtime session alone on the letterboxed tensor.
Before any timing, both models run over the held-out frames 400-794 (40 sampled) and the per-frame
people counts must agree on at least the converter's budget share of them; the timed calls then check
that every confident fp32 person (score >= 0.4) has an int8 box.

The converted model is cached under ``build/bench_cache/`` (keyed by the model's sha256 head and the
conversion settings); ``--reconvert`` rebuilds it.

Run: ``python -m benchmarks.bench_int8 [--threads 1 2] [--repeats 20] [--reconvert]``
Writes ``benchmarks/results/int8.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

from benchmarks.harness import compare, write_result

CACHE_DIR = Path(__file__).resolve().parent.parent / "build" / "bench_cache" / "int8"
CONF = 0.25
COUNT_BUDGET = 0.80


def _key(model: Path, settings: str) -> str:
    digest = hashlib.sha256()
    with open(model, "rb") as f:
        digest.update(f.read(1 << 20))
    digest.update(str(model.stat().st_size).encode())
    digest.update(settings.encode())
    return digest.hexdigest()[:12]


def converted_model(model: Path, video: Path, reconvert: bool) -> Dict[str, object]:
    """The int8 model (converted once, cached) and the converter's own held-out figures."""
    from edge_runtime.converters.calibration import FrameRange
    from edge_runtime.converters.sensitivity import Budget
    from edge_runtime.converters.yolo_int8 import YoloInt8Options, convert_yolo_int8

    opts = YoloInt8Options(calib_frames=FrameRange(0, 400), eval_frames=FrameRange(400, None), threads=2,
                           latency_repeats=5, budget=Budget(min_map50=0.95, min_count_agreement=COUNT_BUDGET))
    out = CACHE_DIR / f"person-int8-{_key(model, repr(opts))}.onnx"
    report = out.with_name(out.stem + ".report.json")
    if reconvert or not (out.is_file() and report.is_file()):
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        print(f"converting {model.name} -> {out.name} (a few minutes) ...", file=sys.stderr)
        convert_yolo_int8(model, video, out, opts)
    doc = json.loads(report.read_text())
    int8 = next(m for m in doc["models"] if m["name"] == "int8")
    return {"path": out, "precision": int8["settings"].get("precision"), "heldout": doc["detection"]["int8"],
            "float_nodes": sum(1 for r in doc["float_fallback"]["int8"] if r["kept_float"]),
            "score_err_max": int8["task_metrics"].get("score_err_max"), "int8_dot": doc["cpu"]["int8_dot"]}


def _frames(video: Path, indices: List[int]) -> List[np.ndarray]:
    import cv2

    wanted, out, i = set(indices), {}, 0
    cap = cv2.VideoCapture(str(video))
    while len(out) < len(wanted):
        ok, frame = cap.read()
        if not ok:
            raise RuntimeError(f"{video} ended at frame {i}")
        if i in wanted:
            out[i] = frame
        i += 1
    cap.release()
    return [out[k] for k in indices]


def _count(dets) -> int:
    return int((dets.score >= CONF).sum())


def _same_people(candidate, baseline) -> None:
    from edge_runtime.converters.det_metrics import match_frame

    confident = baseline[baseline.score >= 0.4]
    if (match_frame(confident, candidate, 0.5) < 0).any():
        raise AssertionError(f"int8 missed a confident fp32 person: fp32 {_count(baseline)}, int8 {_count(candidate)}")


def check_counts(fp32, int8, frames: List[np.ndarray]) -> float:
    """Per-frame count agreement on the held-out frames; raises if below the converter's budget."""
    same = [_count(fp32(f)) == _count(int8(f)) for f in frames]
    agreement = float(np.mean(same))
    if agreement < COUNT_BUDGET:
        raise AssertionError(f"int8 counts match fp32 on only {agreement:.1%} of held-out frames")
    return agreement


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--reconvert", action="store_true")
    args = parser.parse_args(argv)

    from edge_runtime.assets import ensure
    from edge_runtime.converters.verify import open_session
    from edge_runtime.vision import ops
    from edge_runtime.vision.detector import Detector

    model, video = ensure("yolov8s-person"), ensure("vtest-video")
    conv = converted_model(model, video, args.reconvert)
    heldout = _frames(video, list(range(400, 795, 10)))
    results = []
    for threads in args.threads:
        # Workers spinning within a call and sleeping after it, as a job without chat runs the detector
        # (model.spin = "auto"); the two sessions take turns without taking each other's cores.
        fp32 = Detector(model, threads=threads, conf_threshold=CONF, spin=True)
        int8 = Detector(conv["path"], threads=threads, conf_threshold=CONF, spin=True)
        agreement = check_counts(fp32, int8, heldout)
        # Each timed call handles the next frame of the same cycle on both sides.
        cand_frames, base_frames = itertools.cycle(heldout), itertools.cycle(heldout)
        frame = compare(f"frame time, {threads} thread(s)", lambda: int8(next(cand_frames)),
                        lambda: fp32(next(base_frames)),
                        check=_same_people, repeats=args.repeats,
                        compared="on the first frame: every fp32 person at confidence >= 0.4 has an int8 box at IoU "
                                 ">= 0.5; the count agreement on held-out frames is measured separately")
        tensor, _ = ops.letterbox(heldout[0], fp32.input_hw, stride=fp32.stride)
        s32 = open_session(model, threads=threads, spin=True)
        s8 = open_session(conv["path"], threads=threads, spin=True)
        name32, name8 = s32.get_inputs()[0].name, s8.get_inputs()[0].name
        model_only = compare(f"model only, {threads} thread(s)", lambda: s8.run(None, {name8: tensor})[0],
                             lambda: s32.run(None, {name32: tensor})[0],
                             check=lambda c, b: np.testing.assert_equal(c.shape, b.shape), repeats=args.repeats,
                             compared="output tensor shapes only (the frame-level row above checks detections)")
        results.append({"threads": threads, "count_agreement_heldout": agreement, "frame": frame, "model": model_only})
        print(f"{threads} thread(s): frame {frame['speedup_median']:.2f}x (p10 {frame['speedup_p10']:.2f}, "
              f"p90 {frame['speedup_p90']:.2f}), int8 {frame['candidate_ms_median']:.0f} ms vs fp32 "
              f"{frame['baseline_ms_median']:.0f} ms; model only {model_only['speedup_median']:.2f}x; "
              f"counts agree on {agreement:.0%} of 40 held-out frames")
    note = ("no int8 dot-product instruction on this CPU (no VNNI): the >= 2.5x asked for assumed a VNNI CPU"
            if not conv["int8_dot"] else f"int8 dot product available ({conv['int8_dot']})")
    path = write_result("int8", {
        "question": "static int8 (converter output) vs fp32 YOLOv8s person detector, same session options",
        "model": model.name, "int8_precision": conv["precision"], "float_nodes": conv["float_nodes"],
        "converter_heldout": conv["heldout"], "converter_score_err_max": conv["score_err_max"],
        "session_options": "both sides: intra-op threads as in each row, workers spin within a call and stop at "
                           "its end (as a job without chat runs the detector)",
        "note": note, "results": results}, threads=max(args.threads))
    print(f"{note}\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
