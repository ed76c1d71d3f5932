"""Verification of converted models: run reference and converted on the same inputs, measure, enforce.

Every converter ends here. Errors are measured per output as the largest absolute difference, the mean
absolute difference and the cosine similarity of the flattened tensors, aggregated over all inputs as
worst case (max of max, min of cosine). Latencies of the models being compared are measured in the same
process, with the same session options and thread count, interleaved run by run after a warm-up, so a
slow moment of a shared machine hits every model alike.

Shape legend: a *feed* is ``{input name: array}`` for one ONNX run; *outputs* are the list of arrays
a run returns, in the model's output order.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from edge_runtime.errors import BackendUnavailableError, EdgeRuntimeError, InputError, ModelFormatError
from edge_runtime.vision.detector import set_spinning
from edge_runtime.vision.onnx_check import check_onnx_file

from ._io import progress

__all__ = [
    "AccuracyError",
    "Bound",
    "Latency",
    "OutputMetrics",
    "MetricsAccumulator",
    "check_bound",
    "compare_outputs",
    "measure_latency",
    "open_session",
    "run_session",
]

Feed = Dict[str, np.ndarray]


class AccuracyError(EdgeRuntimeError, ValueError):
    """A converted model's outputs differ from the reference's by more than the stated bound."""


@dataclass(frozen=True)
class Bound:
    """Accuracy a converted model must keep against its reference.

    Args:
        max_abs_err: largest allowed absolute difference of any output element (None: not checked).
        min_cosine: smallest allowed cosine similarity of any output, flattened (None: not checked).
        max_mean_abs_err: largest allowed mean absolute difference of any output (None: not checked).
    """

    max_abs_err: Optional[float] = None
    min_cosine: Optional[float] = None
    max_mean_abs_err: Optional[float] = None

    def __post_init__(self) -> None:
        if self.max_abs_err is not None and not (self.max_abs_err >= 0 and math.isfinite(self.max_abs_err)):
            raise InputError(f"Bound.max_abs_err: expected a finite number >= 0, got {self.max_abs_err!r}")
        mean = self.max_mean_abs_err
        if mean is not None and not (mean >= 0 and math.isfinite(mean)):
            raise InputError(f"Bound.max_mean_abs_err: expected a finite number >= 0, got {self.max_mean_abs_err!r}")
        if self.min_cosine is not None and not (-1.0 <= self.min_cosine <= 1.0):
            raise InputError(f"Bound.min_cosine: expected a number in [-1, 1], got {self.min_cosine!r}")

    def describe(self) -> str:
        parts = []
        if self.max_abs_err is not None:
            parts.append(f"max |err| <= {self.max_abs_err:g}")
        if self.max_mean_abs_err is not None:
            parts.append(f"mean |err| <= {self.max_mean_abs_err:g}")
        if self.min_cosine is not None:
            parts.append(f"cosine >= {self.min_cosine:g}")
        return " and ".join(parts) or "no bound"


@dataclass(frozen=True)
class OutputMetrics:
    """Error of one output, aggregated over ``samples`` runs (worst case, mean of means)."""

    name: str
    max_abs_err: float
    mean_abs_err: float
    cosine: float
    samples: int
    worst_sample: int = 0

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    na, nb = float(np.linalg.norm(a64)), float(np.linalg.norm(b64))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a64, b64) / (na * nb))


def compare_outputs(reference: Sequence[np.ndarray], converted: Sequence[np.ndarray],
                    names: Sequence[str]) -> List[OutputMetrics]:
    """Per-output error of one run of a converted model against its reference.

    Args:
        reference, converted: the outputs of one run each, same order and shapes.
        names: one name per output (for messages and reports).

    Returns:
        One :class:`OutputMetrics` per output (``samples`` = 1). Non-finite values count as infinite error.

    Raises:
        AccuracyError: the number of outputs or an output's shape differs.
    """
    if not (len(reference) == len(converted) == len(names)):
        raise AccuracyError(f"compare: reference has {len(reference)} outputs, converted {len(converted)}, "
                            f"names {len(names)}; the converted model must keep the reference's outputs")
    out = []
    for name, ref, got in zip(names, reference, converted):
        ref, got = np.asarray(ref), np.asarray(got)
        if ref.shape != got.shape:
            raise AccuracyError(f"compare: output {name!r} has shape {got.shape}, reference {ref.shape}")
        if ref.size == 0:
            out.append(OutputMetrics(name, 0.0, 0.0, 1.0, 1))
            continue
        diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        finite = bool(np.isfinite(diff).all())
        max_err = float(diff.max()) if finite else math.inf
        mean_err = float(diff.mean()) if finite else math.inf
        cos = _cosine(ref, got) if finite else -1.0
        out.append(OutputMetrics(name, max_err, mean_err, cos, 1))
    return out


class MetricsAccumulator:
    """Worst-case aggregation of :class:`OutputMetrics` over many runs.

    Example:
        >>> acc = MetricsAccumulator(["y"])
        >>> acc.add(compare_outputs([np.ones(3)], [np.ones(3) * 1.5], ["y"]))
        >>> acc.result()[0].max_abs_err
        0.5
    """

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self._max = [0.0] * len(names)
        self._mean_sum = [0.0] * len(names)
        self._cos = [1.0] * len(names)
        self._worst = [0] * len(names)
        self.samples = 0

    def add(self, metrics: Sequence[OutputMetrics]) -> None:
        for i, m in enumerate(metrics):
            if m.max_abs_err > self._max[i]:
                self._max[i], self._worst[i] = m.max_abs_err, self.samples
            self._mean_sum[i] += m.mean_abs_err
            self._cos[i] = min(self._cos[i], m.cosine)
        self.samples += 1

    def result(self) -> List[OutputMetrics]:
        n = max(self.samples, 1)
        return [OutputMetrics(name, self._max[i], self._mean_sum[i] / n, self._cos[i], self.samples, self._worst[i])
                for i, name in enumerate(self.names)]


def check_bound(metrics: Sequence[OutputMetrics], bound: Bound, *, what: str, hint: str = "") -> None:
    """Raise :class:`AccuracyError` when any output breaks ``bound``.

    Args:
        metrics: aggregated per-output metrics.
        bound: the accuracy required.
        what: the conversion being checked, e.g. ``"pnet.onnx vs torch"``.
        hint: what the user can change when the bound is not met.

    Raises:
        AccuracyError: naming the output, the measured value, the bound and the hint.
    """
    for m in metrics:
        problem = None
        if bound.max_abs_err is not None and not m.max_abs_err <= bound.max_abs_err:
            problem = f"max |err| {m.max_abs_err:.3g} > bound {bound.max_abs_err:g}"
        elif bound.max_mean_abs_err is not None and not m.mean_abs_err <= bound.max_mean_abs_err:
            problem = f"mean |err| {m.mean_abs_err:.3g} > bound {bound.max_mean_abs_err:g}"
        elif bound.min_cosine is not None and not m.cosine >= bound.min_cosine:
            problem = f"cosine {m.cosine:.5f} < bound {bound.min_cosine:g}"
        if problem:
            tail = f"; {hint}" if hint else ""
            raise AccuracyError(f"{what}: output {m.name!r}: {problem} (worst of {m.samples} inputs, "
                                f"input #{m.worst_sample}){tail}")


def _ort():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise BackendUnavailableError("onnxruntime is not installed; pip install onnxruntime") from exc
    return onnxruntime


def open_session(model: Union[str, Path, bytes], *, threads: int = 1, optimize: bool = True,
                 spin: bool = True):
    """An ONNX Runtime CPU session with explicit threads, for verification and latency.

    Args:
        model: path to an ``.onnx`` file, or its serialized bytes.
        threads: intra-op threads (>= 1); inter-op is 1 (sequential execution).
        optimize: enable all graph optimizations (as deployment would); False keeps the graph as is.
        spin: let worker threads spin between the operators of a call (onnxruntime's default). They
            stop at the end of each call either way (``session.force_spinning_stop``), so two sessions
            taking turns on the same cores do not take them from each other, as the runtime's detector
            runs a model.

    Raises:
        ModelFormatError: the file is missing, is not ONNX, is corrupt, or ONNX Runtime rejects it.
        InputError: ``threads`` < 1.
    """
    ort = _ort()
    if not isinstance(threads, int) or threads < 1:
        raise InputError(f"open_session: threads must be an integer >= 1, got {threads!r}")
    where = "<bytes>" if isinstance(model, bytes) else str(model)
    if not isinstance(model, bytes):
        path = Path(model)
        if not path.is_file():
            raise ModelFormatError(f"{where}: no such model file; check the path")
        check_onnx_file(path)  # before onnxruntime: no read outside the model's folder, a known opset
        model = str(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    set_spinning(options, spin)
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own pybind types (InvalidProtobuf, Fail, InvalidGraph, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFormatError(f"{where}: ONNX Runtime cannot load this model: {first[:300]}; "
                               "expected a valid .onnx file (re-export or re-download it)") from exc


def run_session(session, feed: Mapping[str, np.ndarray]) -> List[np.ndarray]:
    """Run ``session`` on one feed; a bad feed is an :class:`InputError` naming the inputs expected."""
    names = [i.name for i in session.get_inputs()]
    missing = [n for n in names if n not in feed]
    if missing:
        raise InputError(f"run: feed lacks inputs {missing}; the model takes {names}, got {sorted(feed)}")
    try:
        return session.run(None, {n: feed[n] for n in names})
    except Exception as exc:  # shape/dtype mismatches surface as ORT's own exception types
        shapes = {n: (tuple(np.shape(feed[n])), str(np.asarray(feed[n]).dtype)) for n in names}
        raise InputError(f"run: ONNX Runtime rejected the feed {shapes}: {str(exc).splitlines()[0][:300]}") from exc


@dataclass(frozen=True)
class Latency:
    """Per-run wall time of one model in milliseconds over ``runs`` interleaved runs."""

    median_ms: float
    p90_ms: float
    min_ms: float
    runs: int

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def measure_latency(runners: Mapping[str, Callable[[Feed], object]], feeds: Sequence[Feed], *,
                    repeats: int = 20, warmup: int = 3, quiet: bool = False) -> Dict[str, Latency]:
    """Median/p90 wall time of each runner, interleaved run by run on the same feeds.

    Each round runs every model once on the same feed (the feeds are cycled), in an order rotated every
    round so no model always runs first after another's cache footprint.

    Args:
        runners: name -> callable running one feed (e.g. ``lambda f: session.run(None, f)``).
        feeds: at least one feed.
        repeats: timed rounds (>= 1).
        warmup: untimed rounds first (>= 0).
        quiet: no progress bar.

    Raises:
        InputError: no runner, no feed, or a count out of range.
    """
    if not runners:
        raise InputError("measure_latency: no model to time")
    if not feeds:
        raise InputError("measure_latency: no input feed; pass at least one")
    if repeats < 1 or warmup < 0:
        raise InputError(f"measure_latency: repeats must be >= 1 and warmup >= 0, got {repeats}, {warmup}")
    names = list(runners)
    times: Dict[str, List[float]] = {n: [] for n in names}
    for r in progress(range(warmup + repeats), desc="latency", total=warmup + repeats, quiet=quiet):
        feed = feeds[r % len(feeds)]
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            t0 = time.perf_counter()
            runners[name](feed)
            dt = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(dt * 1e3)
    out = {}
    for name, ts in times.items():
        arr = np.asarray(ts)
        out[name] = Latency(float(np.median(arr)), float(np.percentile(arr, 90)), float(arr.min()), len(ts))
    return out
