"""PyTorch module -> ONNX fp32, verified against PyTorch before the file is published.

Exporter and opset, chosen on purpose:

* **Exporter: ``torch.onnx.export(..., dynamo=True)``** (``torch.export`` + ONNX Script). It is PyTorch's
  supported path (the TorchScript exporter is deprecated), it records dynamic dimensions as named
  symbols with stated ranges (``torch.export.Dim``) instead of tracing one shape and hoping, and it
  refuses graphs it cannot capture soundly rather than baking in a traced branch. It is slower to run
  (seconds, not fractions of one), which a one-off conversion can afford.
* **Opset 18** by default: every operator these models need exists there (LayerNormalization since 17,
  ReduceMean with axes as input since 18), ONNX Runtime has supported it since 1.14 (older than any
  onnxruntime wheel for the Pi we care about), and ORT's quantization tools handle it. Newer opsets buy
  nothing for these graphs and would shut out older runtimes on boards.

Verification: the exported model runs in ONNX Runtime on the example inputs, on extra inputs the caller
gives, and on random inputs whose dynamic dimensions are drawn from the declared ranges; the worst error
against the PyTorch module must meet ``bound`` (default ``max |err| <= 1e-4``), else
:class:`~edge_runtime.converters.verify.AccuracyError` and no file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

import numpy as np

from edge_runtime.errors import BackendUnavailableError, InputError, ModelFormatError

from ._io import atomic_output, file_size
from .quantize import load_onnx
from .verify import Bound, MetricsAccumulator, OutputMetrics, check_bound, compare_outputs, open_session, run_session

__all__ = ["DEFAULT_OPSET", "Axis", "ExportResult", "export_torch", "load_state_dict"]

DEFAULT_OPSET = 18
_EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf's 2 GiB limit, with margin for the graph itself

ModuleSpec = Union["torch.nn.Module", Tuple[Union[Mapping[str, Any], str, Path], Union[Type, Callable[[], Any]]]]


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError("PyTorch is needed to export models; install the CPU build of torch, "
                                      "then pip install 'edge-runtime[convert]'") from exc
    return torch


@contextlib.contextmanager
def _quiet_torch_onnx():
    """The exporter logs a warning per missing torchvision op on every call; mute it for this call."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass(frozen=True)
class Axis:
    """A dynamic dimension: its symbol name and the sizes the exported model must accept.

    Args:
        name: symbol (axes sharing a name always have equal sizes, e.g. ``batch``).
        min: smallest size (>= 1).
        max: largest size, or None for no stated maximum.
    """

    name: str
    min: int = 1
    max: Optional[int] = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise InputError(f"Axis: name must be an identifier, got {self.name!r}")
        if self.min < 1 or (self.max is not None and self.max <= self.min):
            raise InputError(f"Axis {self.name!r}: need 1 <= min < max, got min={self.min}, max={self.max}")


@dataclass
class ExportResult:
    """What :func:`export_torch` produced and proved.

    Attributes:
        path: the published ONNX file.
        size_bytes: its size on disk.
        metrics: worst-case error per output against PyTorch over every verification input.
        bound: the bound those metrics met.
        checked_shapes: input shapes of every verification run (example first).
        input_names, output_names: the ONNX graph's names.
        opset: the ONNX opset.
    """

    path: Path
    size_bytes: int
    metrics: List[OutputMetrics]
    bound: Bound
    checked_shapes: List[Tuple[Tuple[int, ...], ...]] = field(default_factory=list)
    input_names: List[str] = field(default_factory=list)
    output_names: List[str] = field(default_factory=list)
    opset: int = DEFAULT_OPSET


def load_state_dict(path: Union[str, Path]) -> Dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that say what is wrong.

    Raises:
        ModelFormatError: missing file, not a PyTorch file, a pickle needing arbitrary code, or not a
            mapping of tensors.
    """
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{str(path)!r}: no such weights file; pass a state dict saved with torch.save")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError (bad zip), EOFError on truncation
        raise ModelFormatError(f"{str(path)!r}: not a loadable PyTorch state dict ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); expected a file written by "
                               "torch.save(module.state_dict()) (weights_only loading refuses arbitrary "
                               "pickles)") from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFormatError(f"{str(path)!r}: expected a mapping of parameter names to tensors, got "
                               f"{type(state).__name__}")
    return dict(state)


def _resolve_module(model: ModuleSpec):
    torch = _torch()
    if isinstance(model, torch.nn.Module):
        return model
    if not (isinstance(model, tuple) and len(model) == 2):
        raise InputError("export_torch: model must be an nn.Module or a (state_dict or path, module class) pair, "
                         f"got {type(model).__name__}")
    state, factory = model
    if isinstance(state, (str, Path)):
        state = load_state_dict(state)
    try:
        module = factory()
    except Exception as exc:
        raise InputError(f"export_torch: could not build the module with {getattr(factory, '__name__', factory)}(): "
                         f"{exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"export_torch: {getattr(factory, '__name__', factory)}() returned "
                         f"{type(module).__name__}, not an nn.Module")
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(s for s in (
            f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
            "shape mismatch " + ", ".join(f"{k}: file {tuple(state[k].shape)} vs module {tuple(expected[k].shape)}"
                                          for k in wrong[:5]) if wrong else "") if s)
        raise ModelFormatError(f"export_torch: the state dict does not fit {type(module).__name__}: {detail}; "
                               "pass the module class these weights were saved from")
    module.load_state_dict(state, strict=True)
    return module


def _as_tensors(inputs: Any, where: str) -> Tuple[Any, ...]:
    torch = _torch()
    if isinstance(inputs, (torch.Tensor, np.ndarray)):
        inputs = (inputs,)
    if not isinstance(inputs, (tuple, list)) or not inputs:
        raise InputError(f"{where}: expected a tuple of tensors, got {type(inputs).__name__}")
    out = []
    for i, t in enumerate(inputs):
        if isinstance(t, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(t))
        if not isinstance(t, torch.Tensor):
            raise InputError(f"{where}: input #{i} is {type(t).__name__}; only tensors can be ONNX inputs")
        out.append(t.detach().cpu().contiguous())
    return tuple(out)


def _flatten(outputs: Any) -> List[np.ndarray]:
    torch = _torch()
    if isinstance(outputs, torch.Tensor):
        return [outputs.detach().cpu().numpy()]
    if isinstance(outputs, Mapping):
        outputs = list(outputs.values())
    if hasattr(outputs, "to_tuple"):  # transformers ModelOutput
        outputs = outputs.to_tuple()
    flat: List[np.ndarray] = []
    for o in outputs:
        flat.extend(_flatten(o))
    return flat


def _normalize_axes(dynamic_axes: Optional[Mapping[str, Mapping[int, Any]]], names: Sequence[str],
                    example: Sequence[Any]) -> Dict[str, Dict[int, Axis]]:
    if not dynamic_axes:
        return {}
    out: Dict[str, Dict[int, Axis]] = {}
    by_name: Dict[str, Axis] = {}
    for input_name, axes in dynamic_axes.items():
        if input_name not in names:
            raise InputError(f"export_torch: dynamic_axes names input {input_name!r}; inputs are {list(names)}")
        tensor = example[list(names).index(input_name)]
        out[input_name] = {}
        for dim, spec in axes.items():
            axis = spec if isinstance(spec, Axis) else Axis(spec) if isinstance(spec, str) else Axis(*spec)
            if not 0 <= dim < tensor.dim():
                raise InputError(f"export_torch: dynamic axis {dim} of {input_name!r} is out of range for "
                                 f"its {tensor.dim()}-d example")
            size = int(tensor.shape[dim])
            if size < axis.min or (axis.max is not None and size > axis.max):
                raise InputError(f"export_torch: example {input_name!r} has size {size} on axis {dim}, outside "
                                 f"{axis.name}'s range [{axis.min}, {axis.max}]")
            if by_name.setdefault(axis.name, axis) != axis:
                raise InputError(f"export_torch: axis {axis.name!r} is declared with different ranges")
            out[input_name][dim] = axis
    return out


def _random_inputs(example: Sequence[Any], names: Sequence[str], axes: Dict[str, Dict[int, Axis]], n: int,
                   rng: np.random.Generator) -> List[Tuple[Any, ...]]:
    """``n`` random input tuples: dynamic sizes drawn per symbol, values like the example's."""
    torch = _torch()
    symbols: Dict[str, Tuple[int, int]] = {}
    for name, dims in axes.items():
        t = example[list(names).index(name)]
        for dim, axis in dims.items():
            hi = max(2 * int(t.shape[dim]), axis.min + 1)
            if axis.max is not None:
                hi = min(hi, axis.max)
            symbols[axis.name] = (axis.min, hi)
    out = []
    for _ in range(n):
        sizes = {s: int(rng.integers(lo, hi + 1)) for s, (lo, hi) in symbols.items()}
        tup = []
        for name, t in zip(names, example):
            shape = [sizes[axes[name][d].name] if d in axes.get(name, {}) else s for d, s in enumerate(t.shape)]
            ref = t.detach().cpu().numpy()
            if t.is_floating_point():
                mean = float(ref.mean()) if ref.size else 0.0
                std = float(ref.std()) if ref.size > 1 else 1.0
                arr = rng.normal(mean, std or 1.0, size=shape).astype(ref.dtype)
            elif t.dtype == torch.bool:
                arr = rng.integers(0, 2, size=shape).astype(bool)
            else:
                lo, hi = (int(ref.min()), int(ref.max())) if ref.size else (0, 1)
                arr = rng.integers(lo, hi + 1, size=shape).astype(ref.dtype)
            tup.append(torch.from_numpy(arr))
        out.append(tuple(tup))
    return out


def _summary(exc: BaseException) -> str:
    """The informative line of an exporter error (its own summary section when it has one)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "## Exception summary" in lines:
        rest = lines[lines.index("## Exception summary") + 1:]
        if rest:
            return rest[0]
    return lines[0] if lines else type(exc).__name__


def export_torch(model: ModuleSpec, example_inputs: Any, out_path: Union[str, Path], *,
                 input_names: Optional[Sequence[str]] = None, output_names: Optional[Sequence[str]] = None,
                 opset: int = DEFAULT_OPSET, dynamic_axes: Optional[Mapping[str, Mapping[int, Any]]] = None,
                 bound: Bound = Bound(max_abs_err=1e-4), verify_inputs: Sequence[Any] = (), n_random: int = 4,
                 seed: int = 0, threads: int = 1) -> ExportResult:
    """Export a PyTorch module to ONNX fp32 and prove it matches PyTorch.

    Args:
        model: an ``nn.Module``, or ``(state_dict or path to one, module class or factory)``; the state
            dict is loaded strictly (``torch.load(weights_only=True)`` for paths).
        example_inputs: a tensor or tuple of tensors (NumPy arrays are accepted) for ``forward``.
        out_path: the ``.onnx`` file to write; it appears only after verification passed.
        input_names, output_names: graph names (default ``input_0``..., ``output_0``...).
        opset: ONNX opset (default 18; see the module docstring).
        dynamic_axes: ``{input name: {axis: Axis | name | (name, min, max)}}``; unlisted axes are fixed.
            Output shapes follow from the graph.
        bound: accuracy against PyTorch that every verification input must meet.
        verify_inputs: extra input tuples to verify on (e.g. real data), beyond the example.
        n_random: random input tuples to verify on, sizes drawn from the dynamic ranges (capped at twice
            the example's size to keep it quick).
        seed: for the random inputs. threads: ONNX Runtime intra-op threads.

    Returns:
        :class:`ExportResult`.

    Raises:
        InputError: bad arguments (inputs, names, axes). ModelFormatError: weights that do not fit the
            module, or a module the exporter cannot capture. AccuracyError: the bound is not met.
        BackendUnavailableError: torch/onnx missing.

    Example:
        >>> from edge_runtime.converters.models.mtcnn import PNet
        >>> r = export_torch((\"pnet.pt\", PNet), torch.zeros(1, 3, 24, 24), \"pnet.onnx\",
        ...                  input_names=[\"image\"], output_names=[\"reg\", \"prob\"],
        ...                  dynamic_axes={\"image\": {0: \"batch\", 2: (\"height\", 12, 4096)}})  # doctest: +SKIP
    """
    torch = _torch()
    out_path = Path(out_path)
    if not isinstance(opset, int) or not 13 <= opset <= 23:
        raise InputError(f"export_torch: opset must be an integer in [13, 23], got {opset!r}")
    example = _as_tensors(example_inputs, "export_torch: example_inputs")
    names = list(input_names) if input_names else [f"input_{i}" for i in range(len(example))]
    if len(names) != len(example) or len(set(names)) != len(names):
        raise InputError(f"export_torch: {len(names)} distinct input names needed for {len(example)} inputs, "
                         f"got {names}")
    axes = _normalize_axes(dynamic_axes, names, example)
    module = _resolve_module(model).eval()
    extra = [_as_tensors(v, f"export_torch: verify_inputs[{i}]") for i, v in enumerate(verify_inputs)]
    rng = np.random.default_rng(seed)
    checks = [example, *extra, *_random_inputs(example, names, axes, n_random, rng)]
    with torch.no_grad():
        try:
            references = [_flatten(module(*c)) for c in checks]
        except Exception as exc:
            raise InputError(f"export_torch: {type(module).__name__}.forward failed on the inputs: "
                             f"{type(exc).__name__}: {exc}") from exc
    n_out = len(references[0])
    outs = list(output_names) if output_names else [f"output_{i}" for i in range(n_out)]
    if len(outs) != n_out:
        raise InputError(f"export_torch: {len(outs)} output names for {n_out} outputs")

    dims: Dict[str, Any] = {}
    shapes = []
    for name in names:
        spec = {}
        for d, axis in axes.get(name, {}).items():
            if axis.name not in dims:
                kw = {"min": axis.min} | ({"max": axis.max} if axis.max is not None else {})
                dims[axis.name] = torch.export.Dim(axis.name, **kw)
            spec[d] = dims[axis.name]
        shapes.append(spec or None)
    dynamic_shapes = tuple(shapes) if axes else None

    with atomic_output(out_path, where="export_torch") as tmp:
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet_torch_onnx():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(module, example, dynamo=True, input_names=names, output_names=outs,
                                            dynamic_shapes=dynamic_shapes, opset_version=opset, verbose=False)
        except Exception as exc:  # torch.export / ONNX translation errors come in many types
            first = _summary(exc)
            raise ModelFormatError(
                f"export_torch: {type(module).__name__} could not be exported to ONNX (dynamo exporter, opset "
                f"{opset}): {type(exc).__name__}: {first[:300]}. Make forward() capturable by torch.export: "
                "tensors in and out, no Python control flow on tensor values, no unsupported ops") from exc
        params = sum(p.numel() * p.element_size() for p in module.parameters())
        program.save(str(tmp), external_data=params > _EXTERNAL_DATA_BYTES)
        load_onnx(tmp, where="export_torch")
        session = open_session(tmp, threads=threads)
        acc = MetricsAccumulator(outs)
        for c, ref in zip(checks, references):
            got = run_session(session, {n: t.numpy() for n, t in zip(names, c)})
            acc.add(compare_outputs(ref, got, outs))
        metrics = acc.result()
        check_bound(metrics, bound, what=f"{out_path.name} vs PyTorch",
                    hint="the export is not faithful: check for ops with training-mode behaviour (call "
                         "module.eval()), nondeterminism, or a bound tighter than fp32 rounding allows")
        del session
    return ExportResult(out_path, file_size(out_path), metrics, bound,
                        [tuple(tuple(t.shape) for t in c) for c in checks], names, outs, opset)
