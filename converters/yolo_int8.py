"""A YOLO detector (ONNX) -> calibrated static int8 ONNX, with a float fallback chosen by measurement.

Pipeline (every number in the report is measured in this run, on this CPU):

1. Load and check the fp32 model with :class:`~edge_runtime.vision.detector.Detector` (the runtime's
   own loader: layout, input size, stride, class names) and infer shapes. ONNX Runtime's
   ``quant_pre_process`` optimizer pass is not run: on YOLOv8s it left the graph unchanged (233 nodes)
   and cost ~13 s on 2 cores; only its shape inference matters to QDQ, and that is done directly.
2. Frames: calibration frames and, disjoint from them in the same range, the search's validation
   frames; held-out evaluation frames from a disjoint range. All letterboxed exactly as at run time.
3. Activation ranges collected once (MinMax / Entropy / Percentile) and reused by every trial.
4. Structural float: the decode tail (:func:`~.sensitivity.find_postprocess_tail`).
5. Precision by measurement: uint8 vs int8 activations and 7-bit (``reduce_range``) vs 8-bit weights
   are each quantized, timed against each other and scored on the validation frames; the fastest
   whose score error is within 15 % of the best wins. On x86 without VNNI, u8 x s8 products go through
   ``vpmaddubsw``, whose int16 pair sums saturate with 8-bit weights: measured on vtest.avi, u8 with
   8-bit weights lost a third of the per-frame counts, 7-bit weights fixed it; s8 activations were
   slower than fp32 there.
   Then one quantization for every tensor a Concat joins (:mod:`.qdq_align`), kept where it is faster
   and its score error stays within the same 15 %: re-quantizing Concats run on one thread.
6. Float fallback by measurement (:class:`~.sensitivity.FallbackSearch`) to the accuracy budget on the
   validation frames.
7. Confirmation on the held-out frames (mAP@0.5 vs fp32, per-frame count agreement, score error) and
   fp32 vs int8 latency, interleaved, same session options and threads, frame to detections.
8. The model and its report (``OUT.report.json`` / ``.md``) are published together, atomically: a
   failed conversion (budget missed, bad input) leaves nothing at ``OUT``.

Shape legend: frames (H, W, 3) uint8 BGR; model input (1, 3, h, w) float32; detections per frame as
:class:`~edge_runtime.vision.detections.Detections`.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_runtime.errors import BackendUnavailableError, ConfigError, InputError, ModelFormatError
from edge_runtime.vision.detections import Detections

from ._io import atomic_output, file_size, progress
from .calibration import CalibrationMethod, FrameRange, FrameSet, Preprocessor, collect_ranges, load_frames, \
    split_interleaved
from .det_metrics import AgreementReport, agreement_at
from .sensitivity import Budget, FallbackSearch, GraphIndex, SearchResult, TrialScore, boundary_blocks, \
    find_postprocess_tail, group_blocks

__all__ = ["Precision", "YoloInt8Options", "YoloInt8Result", "configure_yolo_parser", "convert_yolo_int8",
           "export_ultralytics_onnx", "run_yolo_command"]

log = logging.getLogger(__name__)
PathLike = Union[str, os.PathLike]
SPEED_TOLERANCE = 1.15  # a precision whose score error is within 15 % of the best may win on speed


@dataclass(frozen=True)
class Precision:
    """Activation type and weight width of a static int8 model (weights are always per-channel s8)."""

    activations: str  # "u8" | "s8"
    reduce_range: bool  # 7-bit weights

    @property
    def label(self) -> str:
        return f"{self.activations} activations, {'7' if self.reduce_range else '8'}-bit s8 weights"


@dataclass(frozen=True)
class YoloInt8Options:
    """Settings of :func:`convert_yolo_int8`.

    Attributes:
        calib_frames: frame range of the calibration source used for calibration and validation.
        calib_count: frames calibrated on (sampled evenly over the range).
        val_count: frames of the same range, disjoint from the calibration frames, on which the
            fallback search checks the budget.
        eval_frames: held-out range (default: everything after ``calib_frames``).
        eval_source: where held-out frames come from (default: the calibration source).
        eval_count: held-out frames evaluated (sampled evenly).
        method: calibration method.
        percentile: kept mass for the percentile method.
        precision: a fixed :class:`Precision`, or None to choose by measurement.
        align_concat: give every tensor a Concat joins one quantization (:mod:`.qdq_align`): True, False, or
            None to decide by measurement (kept where faster at a score error within ``SPEED_TOLERANCE``).
        budget: accuracy the int8 model must keep vs fp32, on validation and held-out frames.
        search_margin: the search aims this much above the budget's count agreement on the validation
            frames (capped at 100 %), because per-frame counts flip on borderline boxes and a handful of
            validation frames overstates how often they agree on new ones; when that stricter aim can't
            be met, the cheapest trial meeting the plain budget is kept, and the held-out check decides.
        conf_threshold: the operating threshold (counts, score errors), as deployed.
        map_conf_threshold: the low threshold for mAP predictions.
        iou_threshold: NMS IoU, as deployed.
        count_classes: class ids counted (None = all; both classes of the person model are people).
        threads: ONNX Runtime intra-op threads for every session (latency is measured with these).
        rect: run fp32 and int8 with rectangular inference (``model.rect``) for the search, the held-out
            agreement and the latency, as a job with ``rect = true`` will; calibration stays at the model's
            own size (the activation ranges are those of the same pictures).
        max_trials: bound on trial quantizations in the fallback search.
        latency_repeats: interleaved timed rounds for the final latency.
        quiet: no progress bars.
    """

    calib_frames: FrameRange = FrameRange(0, None)
    calib_count: int = 16
    val_count: int = 32
    eval_frames: Optional[FrameRange] = None
    eval_source: Optional[PathLike] = None
    eval_count: int = 40
    method: CalibrationMethod = CalibrationMethod.PERCENTILE
    percentile: float = 99.999
    precision: Optional[Precision] = None
    align_concat: Optional[bool] = None
    budget: Budget = Budget()
    search_margin: float = 0.03
    conf_threshold: float = 0.25
    map_conf_threshold: float = 0.01
    iou_threshold: float = 0.45
    count_classes: Optional[Tuple[int, ...]] = None
    threads: int = 2
    rect: bool = False
    max_trials: int = 14
    latency_repeats: int = 10
    quiet: bool = False

    def check(self) -> None:
        """Raises ConfigError on an out-of-range setting."""
        for name in ("calib_count", "val_count", "eval_count", "threads", "max_trials", "latency_repeats"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"yolo int8: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("conf_threshold", "map_conf_threshold", "iou_threshold"):
            if not 0.0 < float(getattr(self, name)) < 1.0:
                raise ConfigError(f"yolo int8: {name} must be in (0, 1), got {getattr(self, name)}")
        if self.map_conf_threshold > self.conf_threshold:
            raise ConfigError(f"yolo int8: map_conf_threshold ({self.map_conf_threshold}) must be <= "
                              f"conf_threshold ({self.conf_threshold})")
        if not 0.0 <= self.search_margin <= 1.0:
            raise ConfigError(f"yolo int8: search_margin must be in [0, 1], got {self.search_margin}")
        for name in ("min_map50", "min_count_agreement"):
            value = getattr(self.budget, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"yolo int8: budget {name} must be in [0, 1], got {value}")
        if self.precision is not None and self.precision.activations not in ("u8", "s8"):
            raise ConfigError(f"yolo int8: activations must be 'u8' or 's8', got {self.precision.activations!r}")


@dataclass
class YoloInt8Result:
    """What :func:`convert_yolo_int8` produced and measured.

    Attributes:
        path: the int8 model.
        report: the :class:`~.report.ConversionReport` (also written next to ``path``).
        heldout: agreement with fp32 on the held-out frames.
        validation: agreement on the validation frames (the search's last accepted trial).
        precision: the chosen precision.
        float_nodes: nodes kept in float, with the reason for each.
        search: the fallback search with every trial.
        speedup: fp32 median latency / int8 median latency, frame to detections.
    """

    path: Path
    report: object
    heldout: AgreementReport
    precision: Precision
    float_nodes: Dict[str, str]
    search: SearchResult
    speedup: float
    latency_ms: Dict[str, float] = field(default_factory=dict)


# -- helpers -------------------------------------------------------------------------------------------


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailableError("converting needs the onnx package: pip install 'edge-runtime[convert]'") from exc
    return onnx


def _detector(path: Path, opts: YoloInt8Options):
    from edge_runtime.vision.detector import Detector

    return Detector(path, threads=opts.threads, conf_threshold=opts.map_conf_threshold,
                    iou_threshold=opts.iou_threshold, rect=opts.rect)


def _detect_all(detector, frames: FrameSet, opts: YoloInt8Options, desc: str) -> List[Detections]:
    """Low-threshold detections per frame (operating-threshold ones are a score filter of these: NMS
    never lets a lower score suppress a higher one, so filtering after NMS equals NMS after filtering)."""
    return [detector(f.bgr) for f in progress(frames.frames, desc=desc, total=len(frames), quiet=opts.quiet)]


def export_ultralytics_onnx(weights: Path, out_dir: Path, *, imgsz: int = 640) -> Path:
    """Export an Ultralytics ``.pt`` detector to ONNX (opset 13, static shape) with ultralytics itself.

    Untested here: ``ultralytics`` cannot be imported on this project's CI (it needs torchvision, which has
    no CPU build there). The pipeline after this export is the one tested on the ONNX model.

    Raises:
        BackendUnavailableError: ultralytics is not importable.
        ModelFormatError: the export failed.
    """
    try:
        from ultralytics import YOLO  # type: ignore[import-not-found]
    except Exception as exc:  # ImportError, or torchvision failing inside ultralytics' import
        raise BackendUnavailableError(
            f"{weights}: a .pt detector needs the 'ultralytics' package to export it to ONNX "
            f"({type(exc).__name__}: {exc}); install ultralytics, or export to ONNX elsewhere "
            f"(yolo export model={weights.name} format=onnx opset=13) and pass the .onnx") from exc
    try:
        exported = Path(YOLO(str(weights)).export(format="onnx", opset=13, imgsz=imgsz, dynamic=False,
                                                  simplify=True, project=str(out_dir)))
    except Exception as exc:
        raise ModelFormatError(f"{weights}: ultralytics export to ONNX failed: {exc}") from exc
    return exported


class _Quantizer:
    """QDQ quantization of one shape-inferred model with activation ranges computed once.

    ONNX Runtime's ``quantize_static`` re-runs calibration on every call; the fallback search quantizes
    a dozen times with the same ranges, so this drives its ``QDQQuantizer`` directly, as
    ``quantize_static`` itself does after calibrating.
    """

    def __init__(self, model, ranges):
        from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

        self.model = model
        self.ranges = ranges
        # quantize_static's default: every operator ONNX Runtime can quantize.
        self.op_types = sorted(set(QLinearOpsRegistry) | set(QDQRegistry))
        self.last_align = None  # the AlignReport of the last aligned model

    def __call__(self, exclude: Sequence[str], precision: Precision, align: bool = False):
        from onnxruntime.quantization import QuantType
        from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

        from .qdq_align import align_concat_scales
        from .quantize import _quiet_logging

        act = QuantType.QUInt8 if precision.activations == "u8" else QuantType.QInt8
        with _quiet_logging():
            quantizer = QDQQuantizer(copy.deepcopy(self.model), True, precision.reduce_range, QuantType.QInt8,
                                     act, self.ranges, [], list(exclude), self.op_types, {})
            model = quantizer.quantize_model()
        if align:
            self.last_align = align_concat_scales(model)
        return model


# -- the conversion ------------------------------------------------------------------------------------


class _Run:
    """State of one conversion (kept out of the public function to keep it readable)."""

    def __init__(self, model_path: Path, calib_source: Path, opts: YoloInt8Options, tmp: Path):
        self.opts = opts
        self.tmp = tmp
        self.model_path = model_path
        self.calib_source = calib_source
        self.trial_no = 0
        self.align = False  # one quantization per Concat group in every model built from here on

    def load(self) -> None:
        onnx = _onnx()
        self.fp32 = _detector(self.model_path, self.opts)  # ModelFormatError if it doesn't load
        self.pre = Preprocessor.for_detector(self.fp32)
        from .quantize import load_onnx

        model = load_onnx(self.model_path, where="yolo int8")
        try:
            self.model = onnx.shape_inference.infer_shapes(model)
        except Exception as exc:
            raise ModelFormatError(f"{self.model_path}: ONNX shape inference failed: {exc}") from exc
        self.float_path = self.tmp / "float-inferred.onnx"
        onnx.save(self.model, str(self.float_path))
        self.index = GraphIndex(self.model)

    def frames(self) -> None:
        o = self.opts
        both = load_frames(self.calib_source, o.calib_frames, o.calib_count + o.val_count)
        if len(both) < 2:
            raise InputError(f"{self.calib_source}: range {o.calib_frames} gave {len(both)} frame(s); calibration "
                             f"and validation need at least 2")
        self.calib, self.val = split_interleaved(both, min(o.val_count, len(both) // 2))
        eval_source = Path(o.eval_source) if o.eval_source is not None else self.calib_source
        eval_range = o.eval_frames
        if eval_range is None:
            if o.calib_frames.stop is None:
                raise InputError(f"{self.calib_source}: calibration range {o.calib_frames} runs to the end, leaving "
                                 f"no held-out frames; pass eval frames (e.g. --eval-frames 400:) or end the "
                                 f"calibration range (e.g. --calib-frames 0:400)")
            eval_range = FrameRange(o.calib_frames.stop, None)
        if eval_source.resolve() == Path(self.calib_source).resolve() and eval_range.overlaps(o.calib_frames):
            raise InputError(f"{eval_source}: held-out range {eval_range} overlaps the calibration range "
                             f"{o.calib_frames}; evaluation frames must be disjoint from calibration")
        self.eval = load_frames(eval_source, eval_range, o.eval_count)
        if self.eval.hw != self.calib.hw:
            raise InputError(f"{eval_source}: held-out frames are {self.eval.hw[1]}x{self.eval.hw[0]} but the "
                             f"calibration frames are {self.calib.hw[1]}x{self.calib.hw[0]}; both must come from "
                             f"the camera the model will see")

    def references(self) -> None:
        self.ref_val = _detect_all(self.fp32, self.val, self.opts, "fp32 on validation frames")
        self.ref_eval = _detect_all(self.fp32, self.eval, self.opts, "fp32 on held-out frames")

    def quantized(self, exclude: Sequence[str], precision: Precision, name: str) -> Path:
        onnx = _onnx()
        path = self.tmp / f"{name}.onnx"
        onnx.save(self.quantizer(exclude, precision, self.align), str(path))
        return path

    def trial(self, exclude: Sequence[str], precision: Precision) -> Tuple[TrialScore, AgreementReport]:
        self.trial_no += 1
        path = self.quantized(exclude, precision, f"trial-{self.trial_no}")
        try:
            detector = _detector(path, self.opts)
            dets = _detect_all(detector, self.val, self.opts, f"trial {self.trial_no}")
            if detector.input_hw != self.fp32.input_hw:  # rect: a quantized head the rewrite refused
                raise ModelFormatError(f"yolo int8: trial {self.trial_no} runs at {detector.input_hw} but fp32 at "
                                       f"{self.fp32.input_hw} (rect); cannot compare them: "
                                       f"{detector.rect_refused}")
        finally:
            path.unlink(missing_ok=True)
        rep = agreement_at(dets, self.ref_val, self.opts.conf_threshold, self.opts.count_classes)
        return TrialScore(rep.map50, rep.count_agreement, rep.low_score_err_mean), rep


def _latency(paths: Dict[str, Path], frames: FrameSet, opts: YoloInt8Options, repeats: int):
    from .verify import measure_latency

    detectors = {name: _detector(p, opts) for name, p in paths.items()}
    feeds = [{"frame": f.bgr} for f in frames.frames[: min(4, len(frames))]]
    runners = {name: (lambda feed, d=d: d(feed["frame"])) for name, d in detectors.items()}
    return measure_latency(runners, feeds, repeats=repeats, warmup=2, quiet=opts.quiet)


def _choose_precision(run: _Run, exclude: Sequence[str], opts: YoloInt8Options) -> Tuple[Precision, List[str]]:
    """Quantize each precision, score it on the validation frames and time it against fp32; pick by measurement.

    Only precisions that keep mAP@0.5 within the budget are considered (8-bit weights with u8 activations
    saturate without VNNI and lose boxes); among them, those faster than fp32 come first (an int8 model
    slower than its float original is no conversion worth having), and of those the fastest within
    ``SPEED_TOLERANCE`` of the best score error. The fallback search then buys back the accuracy.
    """
    candidates = [Precision("u8", True), Precision("u8", False), Precision("s8", False)]
    scores, paths = {}, {"fp32": run.model_path}
    for p in candidates:
        scores[p], _ = run.trial(exclude, p)
        paths[p.label] = run.quantized(exclude, p, f"precision-{p.activations}-{int(p.reduce_range)}")
    lat = _latency(paths, run.val, opts, repeats=3)
    for name, path in paths.items():
        if name != "fp32":
            path.unlink(missing_ok=True)
    fp32_ms = lat["fp32"].median_ms
    usable = [p for p in candidates if scores[p].map50 >= opts.budget.min_map50] or candidates
    faster = [p for p in usable if lat[p.label].median_ms < fp32_ms]
    pool = faster or usable
    best_err = min(scores[p].score_err for p in pool)
    ok = [p for p in pool if scores[p].score_err <= best_err * SPEED_TOLERANCE + 1e-9]
    chosen = min(ok, key=lambda p: lat[p.label].median_ms)
    notes = [f"precision trial: {p.label}: score err {scores[p].score_err:.4f}, counts "
             f"{scores[p].count_agreement:.1%}, mAP50 {scores[p].map50:.4f}, {lat[p.label].median_ms:.0f} ms/frame "
             f"(fp32 {fp32_ms:.0f} ms)" for p in candidates]
    if faster:
        notes.append(f"chosen: {chosen.label} (faster than fp32; fastest within {SPEED_TOLERANCE - 1:.0%} of the "
                     f"best score error among those)")
    else:
        notes.append(f"chosen: {chosen.label}: no int8 precision was faster than fp32 on this CPU; kept the most "
                     f"accurate fast one")
    return chosen, notes


def _choose_alignment(run: _Run, exclude: Sequence[str], precision: Precision, opts: YoloInt8Options
                      ) -> Tuple[bool, List[str]]:
    """Quantize with and without one quantization per Concat group, score both on the validation frames and
    time them against each other; keep the aligned model where it is faster and its score error is within
    ``SPEED_TOLERANCE`` of the other's (and mAP@0.5 within the budget)."""
    scores, paths = {}, {}
    for align in (False, True):
        run.align = align
        scores[align], _ = run.trial(exclude, precision)
        paths[str(align)] = run.quantized(exclude, precision, f"align-{int(align)}")
    report = run.quantizer.last_align
    run.align = False
    lat = _latency(paths, run.val, opts, repeats=3)
    for path in paths.values():
        path.unlink(missing_ok=True)
    ms = {align: lat[str(align)].median_ms for align in (False, True)}
    chosen = (ms[True] < ms[False] and scores[True].map50 >= opts.budget.min_map50
              and scores[True].score_err <= scores[False].score_err * SPEED_TOLERANCE + 1e-9)
    notes = [f"concat alignment: {report.describe()}",
             *(f"concat alignment trial: {'aligned' if a else 'as calibrated'}: score err {scores[a].score_err:.4f}, "
               f"counts {scores[a].count_agreement:.1%}, mAP50 {scores[a].map50:.4f}, {ms[a]:.1f} ms/frame"
               for a in (False, True)),
             f"concat alignment {'kept' if chosen else 'not kept'} "
             f"({'faster, score error within' if chosen else 'needs to be faster with a score error within'} "
             f"{SPEED_TOLERANCE - 1:.0%} of the other)"]
    return chosen, notes


def _unmet_error(what: str, score, budget: Budget, float_share: float, cpu_note: str) -> ConfigError:
    return ConfigError(
        f"yolo int8: {what}: the budget ({budget.describe()}) was not met; best achieved mAP@0.5 "
        f"{score.map50:.4f}, counts identical on {score.count_agreement:.1%} of frames (mean score error "
        f"{score.score_err:.4f}) with {float_share:.0%} of the compute in float. To change: calibrate on more "
        f"frames from the deployment camera (--calib-count), try another --method (percentile, entropy, "
        f"minmax), allow more trials (--max-trials), or lower the budget (--budget-map / --budget-count). "
        f"{cpu_note}No model was written.")


def _float_rows(tail, tail_score, search: SearchResult, blocks_by_name, index) -> Tuple[list, Dict[str, str]]:
    """Report rows: every float node with its measured reason, then the runs tried and left int8."""
    from .report import FallbackRow

    rows, reasons = [], {}
    if tail.nodes:
        drop = (1.0 - tail_score.map50) if tail_score is not None else float("nan")
        for name in tail.nodes:
            node = index.by_name[name]
            reason = "decode tail: " + tail.reason.split(": ", 1)[-1]
            reasons[name] = reason
            rows.append(FallbackRow(name, node.op_type, drop, "mAP50 lost when the tail is int8 too (measured)",
                                    True))
    accepted = [t for t in search.trials if t.accepted and t.changed]
    previous = search.trials[0].score if search.trials else None
    chosen = set(search.float_blocks)
    for t in accepted:
        gained = (previous.score_err - t.score.score_err) if previous is not None else float("nan")
        for block in t.changed:
            if block not in chosen:
                continue
            for name in blocks_by_name[block].nodes:
                reasons[name] = (f"measured: '{t.step}' cut the mean score error by {gained:.4f} "
                                 f"(counts {t.score.count_agreement:.1%}, mAP50 {t.score.map50:.4f})")
                rows.append(FallbackRow(name, index.by_name[name].op_type, gained,
                                        "mean score error removed by keeping it float (trial)", True))
        previous = t.score
    start = search.trials[0].score if search.trials else None
    for t in search.trials:
        if t.accepted or not t.step.startswith("float run") or start is None:
            continue
        rows.append(FallbackRow(t.step, "run", start.score_err - t.score.score_err,
                                f"mean score error removed (counts {t.score.count_agreement:.1%}); tried, left int8", False))
    return rows, reasons


def convert_yolo_int8(model: PathLike, calib_source: PathLike, out: PathLike,
                      options: YoloInt8Options = YoloInt8Options()) -> YoloInt8Result:
    """Convert a YOLO detector to static int8 (QDQ), calibrated and checked on the user's own frames.

    Args:
        model: the fp32 YOLO ``.onnx`` (any layout :class:`Detector` reads), or an Ultralytics ``.pt``
            (exported to ONNX with ultralytics first; untested here, see :func:`export_ultralytics_onnx`).
        calib_source: an image folder or a video from the deployment camera.
        out: the int8 ``.onnx`` to write; the report goes next to it (``OUT.report.json`` / ``.md``).
        options: frame ranges, calibration method, budget, thresholds, threads.

    Returns:
        :class:`YoloInt8Result` with the held-out agreement, the chosen precision, the float nodes and
        why, every search trial and the measured speed-up.

    Raises:
        ModelFormatError: the model does not load or is not a detector.
        InputError: the calibration/evaluation frames are missing, unreadable, empty, overlapping or of
            mixed sizes; the output directory does not exist.
        ConfigError: a setting is out of range, or the accuracy budget cannot be met (the message names
            the best achieved and what to change).
        BackendUnavailableError: onnx is missing, or a ``.pt`` was given without ultralytics.

    Example:
        >>> from edge_runtime.assets import ensure
        >>> opts = YoloInt8Options(calib_frames=FrameRange(0, 400), eval_frames=FrameRange(400, None))
        >>> result = convert_yolo_int8(ensure("yolov8s-person"), ensure("vtest-video"), "person-int8.onnx",
        ...                            opts)                                   # doctest: +SKIP
        >>> result.heldout.count_agreement >= 0.95                            # doctest: +SKIP
        True
    """
    from .cpu_features import detect_cpu
    from .report import ConversionReport, DetectionMetrics, ModelEntry, QuantScheme

    opts = options
    opts.check()
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"yolo int8: output directory {str(out.parent)!r} does not exist; create it first")
    if out.suffix.lower() != ".onnx":
        raise InputError(f"yolo int8: output {str(out)!r} must end in .onnx")
    model_path = Path(model)
    calib_source = Path(calib_source)
    cpu = detect_cpu()
    cpu_note = "" if cpu.has_int8_dot else (f"This CPU ({cpu.model}) has no int8 dot-product instruction, so "
                                            f"weights are limited to 7 bits by the u8 x s8 kernels. ")
    with tempfile.TemporaryDirectory(prefix="edge-yolo-int8-") as tmp_name:
        tmp = Path(tmp_name)
        if model_path.suffix.lower() == ".pt":
            model_path = export_ultralytics_onnx(model_path, tmp)
        run = _Run(model_path, calib_source, opts, tmp)
        run.load()
        run.frames()
        run.references()
        ranges = collect_ranges(run.float_path, run.calib, run.pre, method=opts.method,
                                percentile=opts.percentile, quiet=opts.quiet)
        run.quantizer = _Quantizer(run.model, ranges)
        tail = find_postprocess_tail(run.index)
        blocks = group_blocks(run.index, tail.nodes)
        by_name = {b.name: b for b in blocks}
        notes = [f"calibration: {len(run.calib)} frames of {calib_source.name} {opts.calib_frames} "
                 f"({opts.method.value}); validation: {len(run.val)} other frames of that range; held-out: "
                 f"{len(run.eval)} frames {run.eval.indices[0]}..{run.eval.indices[-1]}",
                 f"thresholds: conf {opts.conf_threshold} for counts and score errors, {opts.map_conf_threshold} for "
                 f"mAP predictions, NMS IoU {opts.iou_threshold}",
                 f"tail: {tail.reason}"]
        if opts.precision is None:
            precision, precision_notes = _choose_precision(run, tail.nodes, opts)
            notes += precision_notes
        else:
            precision = opts.precision
            notes.append(f"precision fixed by the caller: {precision.label}")
        if opts.align_concat is None:
            run.align, align_notes = _choose_alignment(run, tail.nodes, precision, opts)
            notes += align_notes
        else:
            run.align = bool(opts.align_concat)
            notes.append(f"concat alignment {'on' if run.align else 'off'}, as the caller set it")
        # A quantized decode tail holds its anchor table as int8, which rect cannot re-specialise: that one
        # demonstration trial is left out under rect (the tail stays float either way).
        tail_score = run.trial([], precision)[0] if tail.nodes and not opts.rect else None
        if tail.nodes and opts.rect:
            notes.append("whole graph int8 (decode tail too) not measured: under rect the tail must stay float "
                         "(its quantized anchor table cannot be re-specialised)")
        if tail_score is not None:
            notes.append(f"whole graph int8 (decode tail too): mAP50 {tail_score.map50:.4f}, counts "
                         f"{tail_score.count_agreement:.1%}: why the tail stays float")

        def evaluate(float_blocks: Sequence[str]) -> TrialScore:
            exclude = list(tail.nodes) + [n for b in float_blocks for n in by_name[b].nodes]
            return run.trial(exclude, precision)[0]

        aim = Budget(opts.budget.min_map50, min(1.0, opts.budget.min_count_agreement + opts.search_margin))
        search = FallbackSearch(blocks, evaluate, budget=aim, max_trials=opts.max_trials)
        result = search.run(first=boundary_blocks(run.index, blocks, tail))
        if not result.met:
            plain = [t for t in result.trials if t.score.meets(opts.budget)]
            if plain:
                kept = min(plain, key=lambda t: (t.mac_share, t.score.score_err))
                notes.append(f"the search's aim ({aim.describe()}) was not met on the validation frames; kept "
                             f"'{kept.step}', which meets the budget ({kept.mac_share:.1%} of MACs float)")
                result = SearchResult(list(kept.float_blocks), kept.score, True, result.trials)
        notes += [f"search trial {i + 1}: {t.step}: mAP50 {t.score.map50:.4f}, counts {t.score.count_agreement:.1%}, "
                  f"score err {t.score.score_err:.4f}, {t.mac_share:.1%} of MACs float"
                  f"{' (kept)' if t.accepted else ''}" for i, t in enumerate(result.trials)]
        if not result.met:
            best = min(result.trials, key=lambda t: t.score.key(opts.budget))
            raise _unmet_error(f"on {len(run.val)} validation frames after {len(result.trials)} trials",
                               best.score, opts.budget, best.mac_share, cpu_note)
        float_block_nodes = [n for b in result.float_blocks for n in by_name[b].nodes]
        final = run.quantized(list(tail.nodes) + float_block_nodes, precision, "final")
        int8_dets = _detect_all(_detector(final, opts), run.eval, opts, "int8 on held-out frames")
        heldout = agreement_at(int8_dets, run.ref_eval, opts.conf_threshold, opts.count_classes)
        if not heldout.meets(opts.budget.min_map50, opts.budget.min_count_agreement):
            score = TrialScore(heldout.map50, heldout.count_agreement, heldout.low_score_err_mean)
            share = result.trials[-1].mac_share if result.trials else 0.0
            raise _unmet_error(f"confirmation on {heldout.frames} held-out frames (validation had passed)",
                               score, opts.budget, share, cpu_note)
        paths = {"fp32": model_path, "int8": final}
        if float_block_nodes:
            paths["int8-no-fallback"] = run.quantized(list(tail.nodes), precision, "no-fallback")
        lat = _latency(paths, run.eval, opts, repeats=opts.latency_repeats)
        speedup = lat["fp32"].median_ms / lat["int8"].median_ms
        if "int8-no-fallback" in lat:
            notes.append(f"float fallback cost: {lat['int8'].median_ms - lat['int8-no-fallback'].median_ms:+.1f} "
                         f"ms/frame (int8 without it: {lat['int8-no-fallback'].median_ms:.1f} ms)")
        if not cpu.has_int8_dot:
            notes.append(f"measured speed-up here: {speedup:.2f}x; CPUs with VNNI / ARM dot product gain more")
        rows, reasons = _float_rows(tail, tail_score, result, by_name, run.index)
        settings = {"precision": precision.label, "align_concat": run.align, "calibration": opts.method.value,
                    "per_channel": True,
                    "format": "QDQ", "float_nodes": len(reasons), "calib_frames": len(run.calib),
                    "measured_at": "x".join(str(v) for v in run.fp32.input_hw)}
        if opts.method is CalibrationMethod.PERCENTILE:
            settings["percentile"] = opts.percentile
        report = ConversionReport(
            title=f"{model_path.name} -> static int8 (QDQ)", source=str(model_path), threads=opts.threads, cpu=cpu,
            models=[ModelEntry("fp32", str(model_path), QuantScheme.FP32, file_size(model_path), reference="-",
                               latency=lat["fp32"]),
                    ModelEntry("int8", out.name, QuantScheme.INT8_STATIC_QDQ, file_size(final), latency=lat["int8"],
                               task_metrics={"map50_vs_fp32": heldout.map50, "count_agreement": heldout.count_agreement,
                                             "score_err_max": heldout.score_err_max,
                                             "score_err_mean": heldout.score_err_mean},
                               settings=settings)],
            notes=notes,
            detection={"int8": DetectionMetrics(heldout.map50, heldout.count_agreement, heldout.frames)},
            float_fallback={"int8": rows})
        with atomic_output(out, where="yolo int8") as staged:
            os.replace(final, staged)
            report.write(staged.parent, out.stem)
        log.info("%s: int8, %.2fx fp32 speed here, held-out mAP50 %.4f, counts %.1f%%", out, speedup,
                 heldout.map50, 100 * heldout.count_agreement)
        return YoloInt8Result(out, report, heldout, precision, reasons, result, speedup,
                              {k: v.median_ms for k, v in lat.items()})


# -- command line (registered by converters/cli.py as `edge-runtime convert yolo`) ------------------------


def configure_yolo_parser(sub) -> None:
    """Add the ``yolo`` sub-command to the ``convert`` sub-parsers."""
    d = YoloInt8Options()
    y = sub.add_parser(
        "yolo", help="a YOLO detector (.onnx) -> calibrated static int8 with a measured float fallback",
        description="Calibrate on frames from your camera, keep in float what measurement says must stay float, "
                    "check mAP@0.5 and per-frame counts against fp32 on held-out frames, time both. A .pt "
                    "needs the ultralytics package to export it first (that path is untested here).")
    y.add_argument("model", type=Path, help="the fp32 detector .onnx (or an Ultralytics .pt, see above)")
    y.add_argument("--calib", required=True, type=Path, help="video file or image folder from the deployment camera")
    y.add_argument("--calib-frames", default="0:", help="frame range START:STOP used for calibration + validation (default %(default)s)")
    y.add_argument("--eval-frames", default=None, help="held-out range (default: after --calib-frames)")
    y.add_argument("--eval-source", type=Path, default=None, help="held-out frames from another video/folder")
    y.add_argument("--out", required=True, type=Path, help="the int8 .onnx to write (report next to it)")
    y.add_argument("--method", default=d.method.value, choices=[m.value for m in CalibrationMethod],
                   help="activation-range calibration (default %(default)s)")
    y.add_argument("--budget-map", type=float, default=d.budget.min_map50, help="min mAP@0.5 vs fp32 (default %(default)s)")
    y.add_argument("--budget-count", type=float, default=d.budget.min_count_agreement,
                   help="min fraction of frames with the same count as fp32 (default %(default)s)")
    y.add_argument("--calib-count", type=int, default=d.calib_count, help="calibration frames (default %(default)s)")
    y.add_argument("--val-count", type=int, default=d.val_count, help="validation frames for the search (default %(default)s)")
    y.add_argument("--eval-count", type=int, default=d.eval_count, help="held-out frames (default %(default)s)")
    y.add_argument("--conf", type=float, default=d.conf_threshold, help="operating confidence threshold (default %(default)s)")
    y.add_argument("--activations", default="auto", choices=("auto", "u8", "s8"),
                   help="activation type; auto = measured (with the weight width)")
    y.add_argument("--weight-bits", default="auto", choices=("auto", "7", "8"), help="s8 weight width")
    y.add_argument("--align-concat", default="auto", choices=("auto", "on", "off"),
                   help="one quantization for every tensor a Concat joins; auto = kept where measured faster "
                        "at no worse score error")
    y.add_argument("--max-trials", type=int, default=d.max_trials, help="bound on trial quantizations (default %(default)s)")
    y.add_argument("--threads", type=int, default=d.threads, help="ONNX Runtime threads; latency is measured with these (default %(default)s)")
    y.add_argument("--rect", action="store_true", help="measure as a job with model.rect = true runs: frames padded "
                                                       "only to a multiple of 32 (e.g. 640x480 for 4:3)")


def run_yolo_command(args) -> int:
    """Run ``edge-runtime convert yolo``; print the outcome. Errors propagate as EdgeRuntimeError."""
    from .calibration import parse_frame_range

    precision = None
    if args.activations != "auto" or args.weight_bits != "auto":
        if args.activations == "auto" or args.weight_bits == "auto":
            raise ConfigError("convert yolo: give both --activations and --weight-bits, or neither (measured)")
        precision = Precision(args.activations, args.weight_bits == "7")
    opts = YoloInt8Options(
        calib_frames=parse_frame_range(args.calib_frames), calib_count=args.calib_count, val_count=args.val_count,
        eval_frames=parse_frame_range(args.eval_frames) if args.eval_frames else None, eval_source=args.eval_source,
        eval_count=args.eval_count, method=CalibrationMethod(args.method), precision=precision,
        align_concat={"auto": None, "on": True, "off": False}[getattr(args, "align_concat", "auto")],
        budget=Budget(args.budget_map, args.budget_count), conf_threshold=args.conf, threads=args.threads,
        rect=args.rect, max_trials=args.max_trials, quiet=getattr(args, "quiet", False))
    result = convert_yolo_int8(args.model, args.calib, args.out, opts)
    h = result.heldout
    print(f"{result.path}: {result.precision.label}, {len(result.float_nodes)} nodes float; held-out "
          f"{h.frames} frames: mAP@0.5 vs fp32 {h.map50:.4f}, counts identical on {h.count_agreement:.1%}, "
          f"max score error {h.score_err_max:.3f}; {result.speedup:.2f}x fp32 speed here")
    for warning in result.report.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    print(f"report: {result.path.with_name(result.path.stem + '.report.md')}")
    return 0
