"""GGUF block quantization: Q8_0, Q4_0 and Q4_1, bit-exact with gguf-py, at native speed.

The bytes are exactly those of ``gguf.quants.quantize`` (gguf-py, the reference of llama.cpp's Python
tools), so a tensor quantized here can be written into a GGUF file next to ones quantized there, and
the tests compare the two byte for byte. The work runs in C++ (``edge_runtime._native``) with the GIL
released, on SSE2 (x86-64) or NEON (aarch64) kernels, or plain C++ elsewhere.

Shape legend: a tensor is ``(..., n)`` float values, ``n`` a multiple of 32 (the block size); each row
of ``n`` values becomes ``n / 32`` blocks of :data:`BLOCK_BYTES` bytes, so quantized data is uint8
``(..., n / 32 * BLOCK_BYTES[qtype])`` - the layout of a GGUF tensor and of gguf-py's output.

Example:
    >>> import numpy as np
    >>> from edge_runtime.llm.quant import QuantType, dequantize, quantize
    >>> w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    >>> q = quantize(w, QuantType.Q8_0)
    >>> q.shape, q.dtype
    ((2, 34), dtype('uint8'))
    >>> float(np.abs(dequantize(q, QuantType.Q8_0) - w).max()) < 0.005
    True
"""

from __future__ import annotations

import enum
from typing import Any, Dict

import numpy as np

from ..errors import InputError

__all__ = ["BLOCK_SIZE", "BLOCK_BYTES", "QuantType", "quantize", "dequantize"]

#: Values per block, for all three types.
BLOCK_SIZE = 32


class QuantType(enum.IntEnum):
    """The block quantization types; values are ggml's ``ggml_type`` ids as stored in GGUF files."""

    Q4_0 = 2  # fp16 d + 16 bytes of 4-bit codes; x ~ d * (q - 8)
    Q4_1 = 3  # fp16 d + fp16 m + 16 bytes of 4-bit codes; x ~ d * q + m
    Q8_0 = 8  # fp16 d + 32 int8 codes; x ~ d * q


#: Bytes per block (ggml-common.h: block_q4_0, block_q4_1, block_q8_0).
BLOCK_BYTES: Dict[QuantType, int] = {QuantType.Q4_0: 18, QuantType.Q4_1: 20, QuantType.Q8_0: 34}

_MAX_THREADS = 256


def _quant_type(qtype: Any) -> QuantType:
    try:
        return QuantType(int(qtype))
    except (TypeError, ValueError):
        names = ", ".join(f"{t.name} ({t.value})" for t in QuantType)
        raise InputError(f"qtype must be one of {names}; got {qtype!r}") from None


def _threads(threads: Any) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= _MAX_THREADS:
        raise InputError(f"threads must be an int in [1, {_MAX_THREADS}]; got {threads!r}")
    return int(threads)


def quantize(array: Any, qtype: QuantType, *, threads: int = 1) -> np.ndarray:
    """Quantize a float tensor to GGUF blocks, byte-identical to ``gguf.quants.quantize``.

    Args:
        array: float values ``(..., n)``, ``n`` a multiple of 32. float32 C-contiguous input is read in
            place; other float dtypes are first converted to float32 (a copy), as gguf-py does.
        qtype: :class:`QuantType` (or its ggml id).
        threads: worker threads (>= 1); blocks are split among them. 1 runs on the calling thread.

    Returns:
        uint8 array ``(..., n / 32 * BLOCK_BYTES[qtype])``.

    Raises:
        InputError: not a float array, 0-d, last dimension not a multiple of 32, a NaN or an infinity
            (named by index), an unknown ``qtype`` or a bad ``threads``.
    """
    qt = _quant_type(qtype)
    n_threads = _threads(threads)
    arr = np.asarray(array)
    if arr.dtype.kind != "f":
        raise InputError(f"quantize: array must hold floats (float16/32/64); got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] % BLOCK_SIZE:
        raise InputError(
            f"quantize: array must be (..., n) with n a multiple of {BLOCK_SIZE}; got shape {arr.shape}")
    src = np.ascontiguousarray(arr, dtype=np.float32)
    from .. import _native

    try:
        return _native.quantize_blocks(src, int(qt), n_threads)
    except ValueError as exc:  # non-finite input, found while quantizing (no separate pass over the data)
        raise InputError(f"quantize to {qt.name}: {exc}") from None


def dequantize(data: Any, qtype: QuantType, *, threads: int = 1) -> np.ndarray:
    """Expand GGUF blocks back to float32, exactly as ``gguf.quants.dequantize`` does.

    Args:
        data: uint8 array ``(..., k)`` or a bytes-like object (read as ``(k,)``), ``k`` a multiple of
            ``BLOCK_BYTES[qtype]``. A C-contiguous uint8 array (e.g. a GGUF tensor view) is read in place.
        qtype: :class:`QuantType` (or its ggml id).
        threads: worker threads (>= 1).

    Returns:
        float32 array ``(..., k / BLOCK_BYTES[qtype] * 32)``.

    Raises:
        InputError: not uint8 bytes, 0-d, a last dimension that is not whole blocks, an unknown
            ``qtype`` or a bad ``threads``.
    """
    qt = _quant_type(qtype)
    n_threads = _threads(threads)
    if isinstance(data, (bytes, bytearray, memoryview)):
        arr = np.frombuffer(data, dtype=np.uint8)
    else:
        arr = np.asarray(data)
    if arr.dtype != np.uint8:
        raise InputError(f"dequantize: data must be uint8 bytes; got dtype {arr.dtype}")
    block_bytes = BLOCK_BYTES[qt]
    if arr.ndim == 0 or arr.shape[-1] % block_bytes:
        raise InputError(f"dequantize: data must be (..., k) with k a multiple of {block_bytes} "
                         f"({qt.name} block bytes); got shape {arr.shape}")
    from .. import _native

    return _native.dequantize_blocks(np.ascontiguousarray(arr), int(qt), n_threads)
