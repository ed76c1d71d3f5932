"""Re-quantize a GGUF file: to Q8_0/Q4_0/Q4_1/F16/F32 with our native quantizers, or to K-quants via llama.cpp.

Two paths, one contract (validated input, all-or-nothing output re-parsed by the hardened reader):

* :func:`requantize` - any GGUF whose tensors gguf-py can dequantize (F32, F16, BF16, Q4_0 ... Q8_0,
  the K-quants) -> the block types edge-runtime encodes itself, bit-exact with gguf-py. Metadata is
  copied key by key with its original value types (llama.cpp's loader checks them), ``general.file_type``
  is updated, and tensor types follow the same rules as :mod:`converters.gguf_export` (norms, biases,
  1-D tensors F32; the output or tied embedding Q8_0 in a Q4 file). A tensor already of the target type
  is copied byte for byte, as llama-quantize does.
* :func:`quantize_k` - an F32/F16/BF16 GGUF -> Q4_K_M, Q5_K_M, Q6_K (and the other llama.cpp ftypes
  listed in :class:`KQuant`) through ``llama_model_quantize`` (llama.cpp's src/llama-quant.cpp, reached
  via llama-cpp-python's low-level bindings). The mixes (which tensors get more bits, fallbacks for rows
  that are not a multiple of 256) are llama.cpp's own. llama.cpp writes into a temporary file in the
  destination folder that is renamed over ``dst`` only when it succeeded and parses.

Example:
    >>> from converters.gguf_requant import KQuant, quantize_k, requantize
    >>> requantize("smollm2-q4_1.gguf", "smollm2-q8_0.gguf", "q8_0")          # doctest: +SKIP
    >>> quantize_k("tiny-f16.gguf", "tiny-q4_k_m.gguf", KQuant.Q4_K_M)           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Union

import numpy as np

from edge_runtime.errors import BackendUnavailableError, InputError, ModelFormatError

from ._io import atomic_output, progress
from .gguf_export import OutType, encode_tensor, tensor_type

__all__ = ["KQuant", "RequantResult", "requantize", "quantize_k", "convert_gguf"]

PathLike = Union[str, Path]

# Keys the writer owns: the architecture is written by GGUFWriter itself; the data alignment is
# the writer's (default 32), so a source's custom alignment must not be copied over it.
_WRITER_KEYS = ("general.architecture", "general.alignment", "general.file_type")


class KQuant(str, enum.Enum):
    """llama.cpp file types reached through its quantize API (``LLAMA_FTYPE_MOSTLY_*``)."""

    Q4_K_M = "Q4_K_M"
    Q4_K_S = "Q4_K_S"
    Q5_K_M = "Q5_K_M"
    Q5_K_S = "Q5_K_S"
    Q6_K = "Q6_K"
    Q3_K_M = "Q3_K_M"
    Q2_K = "Q2_K"

    def ftype(self, llama_cpp) -> int:
        return int(getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{self.value}"))


@dataclass
class RequantResult:
    """What a re-quantization wrote: ``tensor_types`` maps ggml type names to tensor counts;
    ``copied`` counts tensors whose bytes were kept as they were."""

    path: Path
    size_bytes: int
    tensor_types: Dict[str, int] = field(default_factory=dict)
    copied: int = 0


def _dequantize(data: np.ndarray, ggml_type: int, shape) -> np.ndarray:
    """Float32 values of a stored tensor: our native kernels for our block types, gguf-py otherwise."""
    import gguf

    from edge_runtime.llm.quant import QuantType, dequantize

    T = gguf.GGMLQuantizationType
    if ggml_type == T.F32:
        return np.asarray(data, dtype=np.float32)
    if ggml_type == T.F16:
        return np.asarray(data).astype(np.float32)
    if ggml_type == T.BF16:
        return (np.asarray(data).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if ggml_type in (T.Q8_0, T.Q4_0, T.Q4_1):  # bit-identical to gguf.quants.dequantize, native speed
        return dequantize(np.ascontiguousarray(data), QuantType(int(ggml_type)))
    try:
        return gguf.quants.dequantize(np.asarray(data), T(ggml_type)).reshape(shape)
    except NotImplementedError:
        raise ModelFormatError(f"tensor type {T(ggml_type).name} cannot be dequantized by gguf-py") from None


def requantize(src: PathLike, dst: PathLike, out_type: Union[OutType, str], *, threads: int = 1,
               quiet: bool = True) -> RequantResult:
    """Rewrite a GGUF with its weights in ``out_type``, metadata and tensor order unchanged.

    Args:
        src: input .gguf (validated with the hardened reader first).
        dst: output .gguf (its folder must exist); written all-or-nothing. Must differ from ``src``.
        out_type: ``f32``, ``f16``, ``q8_0``, ``q4_0`` or ``q4_1``.
        threads: quantizer threads.
        quiet: no progress bar.

    Raises:
        InputError: bad ``out_type`` or ``dst`` is ``src``. ModelFormatError: malformed input, or a tensor
        whose type cannot be dequantized / whose values cannot be encoded.
    """
    import gguf

    from edge_runtime.llm.gguf_file import GGUFFile, GGUFValueType, validate

    try:
        out = OutType(str(getattr(out_type, "value", out_type)).lower())
    except ValueError:
        raise InputError(f"requantize: out_type must be one of {[t.value for t in OutType]}, "
                         f"got {out_type!r}") from None
    src, dst = Path(src), Path(dst)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise InputError(f"requantize: dst {str(dst)!r} is the input file; write to a new path")
    if not src.is_file():
        raise ModelFormatError(f"requantize: {str(src)!r} does not exist; pass a .gguf file")
    validate(src)
    result = RequantResult(dst, 0)
    ftype = {OutType.F32: gguf.LlamaFileType.ALL_F32, OutType.F16: gguf.LlamaFileType.MOSTLY_F16,
             OutType.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0, OutType.Q4_0: gguf.LlamaFileType.MOSTLY_Q4_0,
             OutType.Q4_1: gguf.LlamaFileType.MOSTLY_Q4_1}[out]
    with GGUFFile.open(src) as f, atomic_output(dst, where="requantize") as tmp:
        w = gguf.GGUFWriter(str(tmp), f.architecture)
        try:
            for key, fld in f.fields.items():
                if key in _WRITER_KEYS:
                    continue
                value = fld.value.tolist() if isinstance(fld.value, np.ndarray) else fld.value
                sub = gguf.GGUFValueType(int(fld.element_type)) if fld.type == GGUFValueType.ARRAY else None
                w.add_key_value(key, value, gguf.GGUFValueType(int(fld.type)), sub_type=sub)
            w.add_file_type(int(ftype))
            tied = "output.weight" not in f.tensors
            plan = []
            for name, info in f.tensors.items():
                qtype = tensor_type(name, info.shape, out, tied_output=tied)
                plan.append((name, info, qtype))
                block, type_size = gguf.GGML_QUANT_SIZES[qtype]
                nbytes = int(np.prod(info.shape[:-1], dtype=np.int64)) * (info.shape[-1] // block) * type_size
                w.add_tensor_info(name, info.shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
            for name, info, qtype in progress(plan, desc=f"requantize {out.value}", total=len(plan), quiet=quiet):
                stored = f.tensor(name)
                if int(info.ggml_type) == int(qtype):  # already the target type: bytes copied as they are
                    data = np.ascontiguousarray(stored)
                    result.copied += 1
                else:
                    values = _dequantize(stored, int(info.ggml_type), info.shape)
                    data = encode_tensor(values, qtype, name, threads=threads)
                w.write_tensor_data(data.view(np.uint8).reshape(-1) if data.dtype != np.uint8 else data.reshape(-1))
                result.tensor_types[qtype.name] = result.tensor_types.get(qtype.name, 0) + 1
        finally:
            w.close()
        validate(tmp)
    result.size_bytes = dst.stat().st_size
    return result


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendUnavailableError("K-quants need llama-cpp-python: pip install 'edge-runtime[llm]' "
                                      f"(import failed: {exc})") from exc
    return llama_cpp


@contextlib.contextmanager
def _captured_stderr(enabled: bool) -> Iterator[Callable[[], str]]:
    """Send file descriptor 2 (where llama.cpp logs) to a temporary file for the block; yields a
    function returning the captured text's tail. Process-wide while it lasts: a conversion step."""
    if not enabled:
        yield lambda: ""
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)

        def tail() -> str:
            log.seek(0)
            lines = log.read().decode("utf-8", "replace").strip().splitlines()
            return " | ".join(lines[-4:])
        try:
            yield tail
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def quantize_k(src: PathLike, dst: PathLike, qtype: Union[KQuant, str] = KQuant.Q4_K_M, *,
               threads: Optional[int] = None, allow_requantize: bool = False, verbose: bool = False) -> Path:
    """Quantize an F32/F16/BF16 GGUF to a llama.cpp K-quant mix with llama.cpp's own quantizer.

    Args:
        src: input .gguf; its weights must be float (re-quantizing quantized weights compounds the
            error: pass ``allow_requantize=True`` to do it anyway, as llama-quantize's flag does).
        dst: output .gguf (its folder must exist); replaced only on success.
        qtype: a :class:`KQuant` (``Q4_K_M``, ``Q5_K_M``, ``Q6_K``, ...).
        threads: llama.cpp worker threads (default: all CPUs).
        allow_requantize: accept already-quantized weights.
        verbose: let llama.cpp's per-tensor log through to stderr (by default it is captured and only
            its last lines are quoted in an error).

    Returns:
        ``dst``.

    Raises:
        InputError: unknown ``qtype``, bad ``threads`` or ``dst`` is ``src``. ModelFormatError: malformed
        input, quantized input without ``allow_requantize``, or llama.cpp reported a failure.
        BackendUnavailableError: llama-cpp-python missing.
    """
    from edge_runtime.llm.gguf_file import GGMLType, GGUFFile, validate

    try:
        kq = KQuant(str(getattr(qtype, "value", qtype)).upper())
    except ValueError:
        raise InputError(f"quantize_k: qtype must be one of {[k.value for k in KQuant]}, got {qtype!r}") from None
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 1024):
        raise InputError(f"quantize_k: threads must be an int in [1, 1024], got {threads!r}")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise ModelFormatError(f"quantize_k: {str(src)!r} does not exist; pass an F16/F32 .gguf file")
    if dst.exists() and dst.resolve() == src.resolve():
        raise InputError(f"quantize_k: dst {str(dst)!r} is the input file; write to a new path")
    validate(src)  # nothing malformed reaches llama.cpp's parser
    with GGUFFile.open(src) as f:
        quantized = sorted({t.ggml_type.name for t in f.tensors.values()
                            if t.ggml_type not in (GGMLType.F32, GGMLType.F16, GGMLType.BF16)})
    if quantized and not allow_requantize:
        raise ModelFormatError(f"quantize_k: {src} already holds quantized tensors ({', '.join(quantized)}); "
                               "start from an F16/F32 export, or pass allow_requantize=True")
    llama_cpp = _llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = kq.ftype(llama_cpp)
    params.nthread = threads or (os.cpu_count() or 1)
    params.allow_requantize = bool(allow_requantize)
    with atomic_output(dst, where="quantize_k") as tmp:
        with _captured_stderr(not verbose) as log_tail:
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
            log = log_tail()
        if rc != 0 or not tmp.is_file():
            raise ModelFormatError(f"quantize_k: llama.cpp failed to quantize {src} to {kq.value} (status {rc}): "
                                   f"{log or 'see its log on stderr'}")
        validate(tmp)
    return dst


def convert_gguf(src: PathLike, dst: PathLike, qtype: str, *, threads: int = 1, tokenizer_pre: Optional[str] = None,
                 allow_requantize: bool = False) -> Dict[str, object]:
    """One entry for every GGUF route: HF folder or GGUF in, any supported type out.

    * HF folder -> f32/f16/q8_0/q4_0/q4_1: :func:`converters.gguf_export.export_gguf`;
      -> a K-quant: an F16 export (temporary, next to ``dst``) then :func:`quantize_k`.
    * GGUF -> f32/f16/q8_0/q4_0/q4_1: :func:`requantize`; -> a K-quant: :func:`quantize_k`.

    Returns:
        ``{"path", "type", "route", "size_bytes"}``.

    Raises:
        InputError: ``qtype`` is neither an :class:`OutType` nor a :class:`KQuant`, or ``src`` is missing.
        ModelFormatError / BackendUnavailableError: from the route taken.
    """
    from .gguf_export import export_gguf

    src, dst = Path(src), Path(dst)
    name = str(qtype)
    is_k = name.upper() in KQuant.__members__
    if not is_k and name.lower() not in [t.value for t in OutType]:
        raise InputError(f"convert_gguf: type must be one of {[t.value for t in OutType] + [k.value for k in KQuant]}, "
                         f"got {qtype!r}")
    if src.is_dir():
        if not is_k:
            export_gguf(src, dst, name, tokenizer_pre=tokenizer_pre, threads=threads)
            route = "hf -> gguf (edge-runtime)"
        else:
            if not dst.parent.is_dir():
                raise InputError(f"convert_gguf: output directory {str(dst.parent)!r} does not exist; create it first")
            with tempfile.TemporaryDirectory(prefix=".f16-", dir=dst.parent) as tmp:
                f16 = export_gguf(src, Path(tmp) / "model-f16.gguf", OutType.F16, tokenizer_pre=tokenizer_pre,
                                  threads=threads).path
                quantize_k(f16, dst, name, threads=threads)
            route = "hf -> gguf f16 (edge-runtime) -> llama.cpp quantize"
    elif src.is_file():
        if is_k:
            quantize_k(src, dst, name, threads=threads, allow_requantize=allow_requantize)
            route = "gguf -> llama.cpp quantize"
        else:
            requantize(src, dst, name, threads=threads)
            route = "gguf -> gguf (edge-runtime)"
    else:
        raise InputError(f"convert_gguf: {str(src)!r} does not exist; pass a HF checkpoint folder or a .gguf file")
    return {"path": str(dst), "type": name, "route": route, "size_bytes": dst.stat().st_size}
