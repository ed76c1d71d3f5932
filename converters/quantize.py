"""ONNX Runtime quantization behind one validated interface: dynamic int8, static QDQ int8, 4-bit weights.

Which to use (see also ``cpu_features`` for when int8 pays off):

* :func:`quantize_dynamic_int8` — transformers and other MatMul-heavy models: int8 weights (per output
  channel by default), activations quantized on the fly per run (``DynamicQuantizeLinear`` +
  ``MatMulInteger``). No calibration data needed.
* :func:`quantize_static_qdq` — CNNs (and the YOLO path): int8 weights per channel and activations with
  scales calibrated on representative inputs (MinMax, Entropy or Percentile), in QDQ format so ONNX
  Runtime fuses ``DequantizeLinear -> Conv -> QuantizeLinear`` into int8 kernels.
* :func:`quantize_weight_only` — 4-bit (or 8-bit) block-wise weights in ``MatMulNBits`` (blocks along K,
  one scale, and for asymmetric a zero point, per block); ``accuracy_level`` picks the compute type
  (4 = int8 activations, the fastest on CPUs with int8 dot products).

Each function reads ``src`` (checked to be ONNX first), writes ``dst`` all-or-nothing, and takes
``nodes_to_exclude`` — the nodes a measured float fallback (``fallback.py``) keeps in float.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np

from edge_runtime.errors import BackendUnavailableError, ConfigError, ModelFormatError

from ._io import atomic_output, progress

__all__ = [
    "AccuracyLevel",
    "CalibrationMethod",
    "WeightOnlyAlgorithm",
    "load_onnx",
    "quantize_dynamic_int8",
    "quantize_static_qdq",
    "quantize_weight_only",
]

PathLike = Union[str, Path]
Feed = Dict[str, np.ndarray]


class CalibrationMethod(str, enum.Enum):
    """How static quantization picks activation ranges from calibration runs."""

    MINMAX = "minmax"          # observed min/max: no clipping, coarse steps when outliers exist
    ENTROPY = "entropy"        # KL-divergence-optimal clipping of the histogram (TensorRT's method)
    PERCENTILE = "percentile"  # clip to a percentile of |x| (``percentile`` argument)


class AccuracyLevel(enum.IntEnum):
    """``MatMulNBits`` compute type (ONNX Runtime contrib op attribute ``accuracy_level``)."""

    UNSET = 0  # let the kernel choose (fp32 on CPU)
    FP32 = 1
    FP16 = 2
    BF16 = 3
    INT8 = 4   # activations quantized to int8 per block: fastest with VNNI / ARM dot product


class WeightOnlyAlgorithm(str, enum.Enum):
    """How block scales are chosen for weight-only quantization."""

    RTN = "rtn"  # round to nearest with the block's absolute max (or min/max for asymmetric)
    HQQ = "hqq"  # half-quadratic optimisation of scale and zero point per block (asymmetric, no data)


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """Silence ONNX Runtime's quantization chatter (it logs every node at INFO) for one call.

    ``matmul_nbits_quantizer`` also calls ``logging.basicConfig`` at import, which would change the
    caller's root logger; the root handlers and level are restored afterwards.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)
        root.handlers[:] = handlers
        root.setLevel(level)


def _ort_quantization():
    try:
        with _quiet_logging():
            from onnxruntime import quantization
            from onnxruntime.quantization import matmul_nbits_quantizer
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise BackendUnavailableError(f"onnxruntime.quantization is unavailable: {exc}; "
                                      "pip install onnxruntime") from exc
    return quantization, matmul_nbits_quantizer


def _onnx():
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailableError("the onnx package is needed to convert models; "
                                      "pip install 'edge-runtime[convert]'") from exc
    return onnx


def load_onnx(path: PathLike, *, where: str = "load"):
    """Load and check an ONNX model file.

    Raises:
        ModelFormatError: missing file, bytes that are not an ONNX model, an empty graph, or a model
            the ONNX checker rejects.
    """
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{where}: {str(path)!r} does not exist; pass an .onnx file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, truncated files, unreadable external data
        raise ModelFormatError(f"{where}: {str(path)!r} is not a readable ONNX model "
                               f"({type(exc).__name__}: {str(exc)[:200]}); expected an .onnx file") from exc
    if model.ir_version <= 0 or len(model.graph.node) == 0:
        raise ModelFormatError(f"{where}: {str(path)!r} parsed as protobuf but holds no ONNX graph "
                               f"(ir_version {model.ir_version}, {len(model.graph.node)} nodes); "
                               "expected an .onnx file")
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError and friends
        raise ModelFormatError(f"{where}: {str(path)!r} fails the ONNX checker: {str(exc)[:300]}") from exc
    return model


def _check_exclude(model, nodes: Sequence[str], where: str) -> List[str]:
    names = {n.name for n in model.graph.node}
    unknown = [n for n in nodes if n not in names]
    if unknown:
        raise ConfigError(f"{where}: nodes_to_exclude names nodes not in the model: {unknown[:5]}"
                          f"{' ...' if len(unknown) > 5 else ''}")
    return list(nodes)


def quantize_dynamic_int8(src: PathLike, dst: PathLike, *, per_channel: bool = True, reduce_range: bool = False,
                          op_types: Optional[Sequence[str]] = None,
                          nodes_to_exclude: Sequence[str] = ()) -> Path:
    """Dynamic int8: int8 weights, activations quantized per run.

    Args:
        src: fp32 ONNX model.
        dst: output path (written only on success).
        per_channel: one weight scale per output channel (much better accuracy on transformers: measured
            min sentence cosine 0.986 vs 0.936 per tensor on all-MiniLM-L6-v2).
        reduce_range: 7-bit weights, which avoids ``vpmaddubsw`` saturation on x86 without VNNI at some
            accuracy cost (it measured worse on all-MiniLM-L6-v2 with AVX2).
        op_types: operator types to quantize (None: ONNX Runtime's default set: MatMul, Gather, Conv, ...).
        nodes_to_exclude: node names kept in float.

    Raises:
        ModelFormatError: ``src`` is not a valid ONNX model. ConfigError: unknown excluded node names.
    """
    model = load_onnx(src, where="quantize_dynamic_int8")
    exclude = _check_exclude(model, nodes_to_exclude, "quantize_dynamic_int8")
    quantization, _ = _ort_quantization()
    with atomic_output(dst, where="quantize_dynamic_int8") as tmp, _quiet_logging():
        quantization.quantize_dynamic(str(src), str(tmp), per_channel=per_channel, reduce_range=reduce_range,
                                      weight_type=quantization.QuantType.QInt8,
                                      op_types_to_quantize=list(op_types) if op_types else None,
                                      nodes_to_exclude=exclude)
    return Path(dst)


class _FeedReader:
    """ORT ``CalibrationDataReader`` over an iterable of feeds, with a progress bar."""

    def __init__(self, feeds: Iterable[Feed], input_names: Sequence[str], quiet: bool, total: Optional[int]):
        self._names = list(input_names)
        self._it = iter(progress(feeds, desc="calibrate", total=total, quiet=quiet))
        self.count = 0

    def get_next(self) -> Optional[Feed]:
        feed = next(self._it, None)
        if feed is None:
            return None
        missing = [n for n in self._names if n not in feed]
        if missing:
            raise ConfigError(f"quantize_static_qdq: calibration feed #{self.count} lacks inputs {missing}; "
                              f"the model takes {self._names}")
        self.count += 1
        return {n: np.ascontiguousarray(feed[n]) for n in self._names}

    def rewind(self) -> None:  # part of the reader protocol; a single pass is all we use
        return None


def quantize_static_qdq(src: PathLike, dst: PathLike, feeds: Iterable[Feed], *,
                        method: CalibrationMethod = CalibrationMethod.MINMAX, per_channel: bool = True,
                        percentile: float = 99.999, op_types: Optional[Sequence[str]] = None,
                        nodes_to_exclude: Sequence[str] = (), quiet: bool = False,
                        total: Optional[int] = None) -> Path:
    """Static int8 in QDQ format: u8 activations calibrated on ``feeds``, s8 weights (per channel).

    Args:
        src: fp32 ONNX model.
        dst: output path (written only on success).
        feeds: calibration inputs, each ``{input name: array}``; representative of deployment data.
        method: activation-range method.
        per_channel: one weight scale per output channel.
        percentile: for ``PERCENTILE``, the percentile of |x| kept (e.g. 99.999).
        op_types: operator types to quantize (None: all ONNX Runtime supports).
        nodes_to_exclude: node names kept in float.
        quiet: no progress bar. total: number of feeds, for the bar.

    Raises:
        ModelFormatError: ``src`` is not valid ONNX. ConfigError: bad method/percentile, no calibration
            feed, a feed missing inputs, or unknown excluded nodes.
    """
    model = load_onnx(src, where="quantize_static_qdq")
    exclude = _check_exclude(model, nodes_to_exclude, "quantize_static_qdq")
    try:
        method = CalibrationMethod(method)
    except ValueError as exc:
        raise ConfigError(f"quantize_static_qdq: method must be one of "
                          f"{[m.value for m in CalibrationMethod]}, got {method!r}") from exc
    if not 50.0 < percentile <= 100.0:
        raise ConfigError(f"quantize_static_qdq: percentile must be in (50, 100], got {percentile}")
    quantization, _ = _ort_quantization()
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    if method is not CalibrationMethod.MINMAX:
        feeds = list(feeds)
        shapes = {tuple(np.shape(f[n])) for f in feeds for n in inputs if n in f}
        if len(shapes) > len(inputs):
            raise ConfigError(f"quantize_static_qdq: {method.value} calibration builds one histogram per tensor "
                              f"and needs equal-shape feeds, got {len(shapes)} shapes; use method='minmax' or "
                              "tile/resize the calibration inputs to one shape")
    feeds = iter(feeds)
    first = next(feeds, None)
    if first is None:
        raise ConfigError("quantize_static_qdq: the calibration feeds were empty; pass at least one input")
    reader = _FeedReader(itertools.chain([first], feeds), inputs, quiet, total)
    ort_method = {CalibrationMethod.MINMAX: quantization.CalibrationMethod.MinMax,
                  CalibrationMethod.ENTROPY: quantization.CalibrationMethod.Entropy,
                  CalibrationMethod.PERCENTILE: quantization.CalibrationMethod.Percentile}[method]
    extra = {"CalibPercentile": float(percentile)} if method is CalibrationMethod.PERCENTILE else {}
    with atomic_output(dst, where="quantize_static_qdq") as tmp, _quiet_logging():
        quantization.quantize_static(str(src), str(tmp), reader, quant_format=quantization.QuantFormat.QDQ,
                                     per_channel=per_channel, activation_type=quantization.QuantType.QUInt8,
                                     weight_type=quantization.QuantType.QInt8, calibrate_method=ort_method,
                                     op_types_to_quantize=list(op_types) if op_types else None,
                                     nodes_to_exclude=exclude, extra_options=extra)
    return Path(dst)


def quantize_weight_only(src: PathLike, dst: PathLike, *, bits: int = 4, block_size: int = 32,
                         accuracy_level: AccuracyLevel = AccuracyLevel.INT8, symmetric: bool = True,
                         algorithm: WeightOnlyAlgorithm = WeightOnlyAlgorithm.RTN,
                         nodes_to_exclude: Sequence[str] = ()) -> Path:
    """Weight-only block quantization of MatMul weights into ``MatMulNBits`` (4 or 8 bits).

    Args:
        src: fp32 ONNX model.
        dst: output path (written only on success).
        bits: 4 or 8.
        block_size: weights per block along K: a power of two >= 16 (smaller = more accurate, larger file).
        accuracy_level: compute type of the kernel (see :class:`AccuracyLevel`).
        symmetric: no zero point (RTN only; HQQ is always asymmetric).
        algorithm: RTN or HQQ scale selection.
        nodes_to_exclude: MatMul node names kept in float.

    Raises:
        ModelFormatError: ``src`` is not valid ONNX. ConfigError: bits, block size, accuracy level or
            algorithm out of range, or unknown excluded nodes.
    """
    if bits not in (4, 8):
        raise ConfigError(f"quantize_weight_only: bits must be 4 or 8, got {bits!r}")
    if not isinstance(block_size, int) or block_size < 16 or block_size & (block_size - 1):
        raise ConfigError(f"quantize_weight_only: block_size must be a power of two >= 16, got {block_size!r}")
    try:
        level = AccuracyLevel(accuracy_level)
        algo = WeightOnlyAlgorithm(algorithm)
    except ValueError as exc:
        raise ConfigError(f"quantize_weight_only: accuracy_level must be 0..4 and algorithm one of "
                          f"{[a.value for a in WeightOnlyAlgorithm]}, got {accuracy_level!r}, {algorithm!r}") from exc
    model = load_onnx(src, where="quantize_weight_only")
    exclude = _check_exclude(model, nodes_to_exclude, "quantize_weight_only")
    _, nbits = _ort_quantization()
    with atomic_output(dst, where="quantize_weight_only") as tmp, _quiet_logging():
        if algo is WeightOnlyAlgorithm.HQQ:
            config = nbits.HQQWeightOnlyQuantConfig(block_size=block_size, bits=bits)
            quantizer = nbits.MatMulNBitsQuantizer(model, bits=bits, block_size=block_size,
                                                   nodes_to_exclude=exclude, algo_config=config)
        else:
            quantizer = nbits.MatMulNBitsQuantizer(model, bits=bits, block_size=block_size, is_symmetric=symmetric,
                                                   accuracy_level=int(level), nodes_to_exclude=exclude)
        quantizer.process()
        if algo is WeightOnlyAlgorithm.HQQ:  # HQQ's config has no accuracy level: set it on the new nodes
            for node in quantizer.model.model.graph.node:
                if node.op_type == "MatMulNBits" and int(level):
                    _set_int_attr(node, "accuracy_level", int(level))
        quantizer.model.save_model_to_file(str(tmp), use_external_data_format=False)
    return Path(dst)


def _set_int_attr(node, name: str, value: int) -> None:
    onnx = _onnx()
    for attr in node.attribute:
        if attr.name == name:
            attr.i = value
            return
    node.attribute.append(onnx.helper.make_attribute(name, value))
