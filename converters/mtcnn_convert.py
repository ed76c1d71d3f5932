"""MTCNN (facenet-pytorch state dicts) -> ONNX fp32 (verified to 1e-4) -> static int8 QDQ, with a report.

Why static QDQ and not dynamic int8 for these nets: they are small CNNs. Dynamic quantization turns Conv
into ``ConvInteger``, which ONNX Runtime runs without fused int8 kernels and with a per-run activation
range pass, and PNet runs on a dozen pyramid levels per frame; with calibrated ranges the QDQ graph is
fused into ``QLinearConv``/``QLinearMatMul`` and activations never take a float detour. Weights are
quantized per output channel (MTCNN's first convs have channels of very different ranges).

Calibration data are what each net sees in the cascade, made by running the fp32 cascade on the
calibration photos: PNet gets the image pyramids, RNet the 24x24 crops of PNet's candidates, ONet
48x48 crops of the same candidates (a superset of what RNet passes, so more varied). Evaluation photos
are kept apart from calibration photos; errors are measured on their cascade inputs.

Output, in ``out_dir``: ``{pnet,rnet,onet}.onnx``, ``{pnet,rnet,onet}.int8.onnx`` and
``mtcnn.report.json`` / ``.md``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence, Union

import numpy as np

from edge_runtime.errors import InputError, ModelFormatError

from ._io import atomic_output, file_size
from .quantize import CalibrationMethod, quantize_static_qdq
from .report import ConversionReport, ModelEntry, QuantScheme
from .torch_export import Axis, export_torch
from .verify import Bound, MetricsAccumulator, check_bound, compare_outputs, measure_latency, open_session, run_session

__all__ = ["NET_NAMES", "INT8_BOUNDS", "convert_mtcnn", "cascade_inputs"]

PathLike = Union[str, Path]
NET_NAMES = ("pnet", "rnet", "onet")
# Bounds on the int8 models' outputs against fp32 on held-out cascade inputs. Measured (MinMax,
# calibrated on camera/chelsea/coffee, evaluated on astronaut): mean |err| 0.02-0.06 and cosine
# 0.86-0.99 per output. Single elements can be far off (PNet prob up to ~1 at one pyramid cell; box
# regressions of rejected windows are noise), so the bound is on mean error and cosine, and the
# cascade's result (the faces found) is checked separately.
INT8_BOUNDS = {name: Bound(max_mean_abs_err=0.1, min_cosine=0.8) for name in ("pnet", "rnet", "onet")}
_BATCH = 32


def _read_rgb(path: Path):
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"convert_mtcnn: {str(path)!r} is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def cascade_inputs(paths: Dict[str, Path], images: Sequence[PathLike], threads: int = 1) -> Dict[str, List[np.ndarray]]:
    """Inputs each net receives when the fp32 cascade runs on ``images``.

    Returns:
        ``{"pnet": [(1, 3, h, w) per pyramid level], "rnet": [(<=32, 3, 24, 24) batches],
        "onet": [(<=32, 3, 48, 48) batches]}``.
    """
    from edge_runtime.vision.faces import FaceDetector, crop_patches

    detector = FaceDetector(paths["pnet"], paths["rnet"], paths["onet"], threads=threads)
    pnet: List[np.ndarray] = []
    crops: Dict[str, List[np.ndarray]] = {"rnet": [], "onet": []}
    for image_path in images:
        rgb = _read_rgb(Path(image_path))
        record: dict = {}
        detector.detect(rgb, rgb=True, _record=record)
        pnet.extend(record.get("pnet", []))
        for boxes in record.get("stage1", []):
            crops["rnet"].append(crop_patches(rgb, boxes, 24))
            crops["onet"].append(crop_patches(rgb, boxes, 48))
    out: Dict[str, List[np.ndarray]] = {"pnet": pnet}
    for name, parts in crops.items():
        size = 24 if name == "rnet" else 48
        allc = np.concatenate(parts) if parts else np.zeros((0, 3, size, size), np.float32)
        out[name] = [allc[i:i + _BATCH] for i in range(0, len(allc), _BATCH)]
    return out


def convert_mtcnn(weights_dir: PathLike, out_dir: PathLike, *, calibration_images: Sequence[PathLike],
                  eval_images: Sequence[PathLike], method: CalibrationMethod = CalibrationMethod.MINMAX,
                  bounds: Dict[str, Bound] = INT8_BOUNDS, threads: int = 1, latency_repeats: int = 20,
                  quiet: bool = False) -> ConversionReport:
    """Export PNet/RNet/ONet to fp32 ONNX and calibrated int8, verified, with a report.

    Args:
        weights_dir: directory with ``pnet.pt``, ``rnet.pt``, ``onet.pt`` (facenet-pytorch's state dicts).
        out_dir: existing output directory.
        calibration_images: photos whose cascade inputs calibrate the int8 ranges.
        eval_images: other photos, for the error bounds, latency and faces-found metrics.
        method: calibration method. bounds: per-net bound of int8 vs fp32 (every output).
        threads: ORT threads. latency_repeats: interleaved rounds. quiet: no progress bars.

    Raises:
        ModelFormatError: missing or mismatched weights. InputError: no images, unreadable images, a
            missing output directory. AccuracyError: fp32 export or an int8 bound not met (nothing of
            that net is published).
    """
    from edge_runtime.vision.faces import FaceDetector

    from .models.mtcnn import NETS

    weights_dir, out_dir = Path(weights_dir), Path(out_dir)
    if not out_dir.is_dir():
        raise InputError(f"convert_mtcnn: output directory {str(out_dir)!r} does not exist")
    if not calibration_images or not eval_images:
        raise InputError("convert_mtcnn: pass at least one calibration image and one evaluation image")
    for name in NET_NAMES:
        if not (weights_dir / f"{name}.pt").is_file():
            raise ModelFormatError(f"convert_mtcnn: {str(weights_dir / (name + '.pt'))!r} is missing; "
                                   "expected facenet-pytorch's data directory (pnet.pt, rnet.pt, onet.pt)")
    report = ConversionReport(title="MTCNN (PNet, RNet, ONet) -> ONNX fp32 + static int8", source=str(weights_dir),
                              threads=threads)
    fp32: Dict[str, Path] = {}
    exported = {}
    rng = np.random.default_rng(0)
    for name in NET_NAMES:
        cls, side, outputs = NETS[name]
        axes = {0: Axis("batch", 1, 4096)}
        if side is None:
            axes.update({2: Axis("height", 12, 8192), 3: Axis("width", 12, 8192)})
        s = side or 48
        example = rng.uniform(-1, 1, size=(2, 3, s, s)).astype(np.float32)
        fp32[name] = out_dir / f"{name}.onnx"
        exported[name] = export_torch((weights_dir / f"{name}.pt", cls), example, fp32[name], input_names=["image"],
                                      output_names=list(outputs), dynamic_axes={"image": axes},
                                      bound=Bound(max_abs_err=1e-4), n_random=4, threads=threads)
    calib = cascade_inputs(fp32, calibration_images, threads)
    evals = cascade_inputs(fp32, eval_images, threads)
    int8: Dict[str, Path] = {}
    # int8 models are built and checked in a private directory and published together at the end.
    work = tempfile.TemporaryDirectory(prefix=".mtcnn.work-", dir=out_dir)
    try:
        report = _quantize_all(report, fp32, exported, calib, evals, int8, work, method, bounds, threads,
                               latency_repeats, quiet)
        for name in NET_NAMES:
            final = out_dir / f"{name}.int8.onnx"
            with atomic_output(final, where="convert_mtcnn") as tmp:
                shutil.move(str(int8[name]), str(tmp))
            int8[name] = final
    finally:
        work.cleanup()
    for entry in report.models:
        if entry.scheme is QuantScheme.INT8_STATIC_QDQ:
            entry.path = str(out_dir / Path(entry.path).name)
    report.notes.append(f"calibration photos: {[Path(p).name for p in calibration_images]}; evaluation photos: "
                        f"{[Path(p).name for p in eval_images]}")
    return _finish(report, fp32, int8, eval_images, out_dir, threads, latency_repeats, quiet)


def _quantize_all(report, fp32, exported, calib, evals, int8, work, method, bounds, threads, latency_repeats, quiet):
    from .models.mtcnn import NETS

    for name in NET_NAMES:
        if not calib[name]:
            raise InputError(f"convert_mtcnn: the calibration images gave no {name} inputs (no face candidates); "
                             "add photos with people")
        final = fp32[name].parent / f"{name}.int8.onnx"
        int8[name] = Path(work.name) / final.name
        feeds = [{"image": x} for x in calib[name]]
        quantize_static_qdq(fp32[name], int8[name], feeds, method=method, per_channel=True, quiet=quiet,
                            total=len(feeds))
        outputs = list(NETS[name][2])
        acc = MetricsAccumulator(outputs)
        s32, s8 = open_session(fp32[name], threads=threads), open_session(int8[name], threads=threads)
        eval_feeds = [{"image": x} for x in evals[name]] or [{"image": calib[name][0]}]
        for feed in eval_feeds:
            acc.add(compare_outputs(run_session(s32, feed), run_session(s8, feed), outputs))
        metrics = acc.result()
        check_bound(metrics, bounds[name], what=f"{final.name} vs fp32",
                    hint="calibrate on more representative photos, try method='percentile' or 'entropy', "
                         "or relax the bound")
        latency = measure_latency({"fp32": lambda f, s=s32: s.run(None, f), "int8": lambda f, s=s8: s.run(None, f)},
                                  eval_feeds[:8], repeats=latency_repeats, quiet=quiet)
        report.models.append(ModelEntry(f"{name}-fp32", str(fp32[name]), QuantScheme.FP32, exported[name].size_bytes,
                                        reference="torch", metrics=exported[name].metrics, bound=exported[name].bound,
                                        latency=latency["fp32"], settings={"opset": exported[name].opset}))
        report.models.append(ModelEntry(f"{name}-int8", str(int8[name]), QuantScheme.INT8_STATIC_QDQ,
                                        file_size(int8[name]), reference=f"{name}-fp32", metrics=metrics,
                                        bound=bounds[name], latency=latency["int8"],
                                        settings={"calibration": CalibrationMethod(method).value, "per_channel": True,
                                                  "calibration_batches": len(feeds), "eval_batches": len(eval_feeds)}))
    return report


def _finish(report, fp32, int8, eval_images, out_dir, threads, latency_repeats, quiet):
    from edge_runtime.vision.faces import FaceDetector

    det32 = FaceDetector(fp32["pnet"], fp32["rnet"], fp32["onet"], threads=threads)
    det8 = FaceDetector(int8["pnet"], int8["rnet"], int8["onet"], threads=threads)
    frames = [_read_rgb(Path(p)) for p in eval_images]
    for label, det in (("fp32", det32), ("int8", det8)):
        found = [det.detect(f, rgb=True) for f in frames]
        entry = report.model(f"onet-{label}")
        entry.task_metrics["faces_found_eval"] = float(sum(len(f) for f in found))
    cascade = measure_latency({"cascade-fp32": lambda f: det32.detect(f, rgb=True),
                               "cascade-int8": lambda f: det8.detect(f, rgb=True)},
                              frames, repeats=max(3, latency_repeats // 4), quiet=quiet)
    report.notes.append("exporter: torch.onnx dynamo, opset 18; fp32 verified against PyTorch on random inputs "
                        "(PNet at random sizes) to max |err| <= 1e-4")
    report.notes.append("whole cascade per evaluation photo: fp32 median "
                        f"{cascade['cascade-fp32'].median_ms:.1f} ms, int8 {cascade['cascade-int8'].median_ms:.1f} ms")
    report.write(out_dir, "mtcnn")
    return report
