"""A hardened GGUF reader: a GGUF file is untrusted input, so every count and offset is bounded first.

Layout (ggml's docs/gguf.md, versions 2 and 3, little-endian)::

    "GGUF"  u32 version  u64 n_tensors  u64 n_kv
    n_kv   x  key: string, value_type: u32, value        (string = u64 length + UTF-8 bytes;
                                                          array = u32 element type + u64 count + items)
    n_tensors x  name: string, n_dims: u32, dims: u64[n_dims], ggml_type: u32, offset: u64
    padding to `general.alignment` (default 32), then the tensor data; offsets are relative to it.

Everything is parsed at :meth:`GGUFFile.open` with ``struct`` over a read-only ``mmap``; tensor data is
never read or copied, :meth:`GGUFFile.tensor` returns a zero-copy NumPy view. A malformed, truncated or
hostile file raises :class:`~edge_runtime.errors.ModelFormatError` naming the file, the field and its
byte offset, what was expected and what was found - never another exception, a crash or a hang.
:func:`validate` adds what llama.cpp's loader needs on top (tensors packed in order, no nested
arrays, an architecture) so a file can be refused before it reaches native code.

Shape legend: ``TensorInfo.dims`` is ggml order (dims[0] = row length, innermost); ``TensorInfo.shape``
and the arrays of :meth:`GGUFFile.tensor` are NumPy order (reversed); quantized tensors are uint8
``(*shape[:-1], bytes_per_row)``.

Example:
    >>> from edge_runtime.assets import ensure
    >>> from edge_runtime.llm.gguf_file import GGUFFile
    >>> with GGUFFile.open(ensure("smollm2-135m")) as f:                     # doctest: +SKIP
    ...     print(f.architecture, len(f.tensors), f.tensor("token_embd.weight").shape)
    llama 272 (49152, 612)
"""

from __future__ import annotations

import enum
import mmap
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from ..errors import InputError, ModelFormatError

__all__ = ["GGMLType", "GGML_TYPE_SIZES", "GGUFValueType", "GGUFFile", "MetadataField", "TensorInfo", "validate"]

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
ALIGNMENT_KEY = "general.alignment"

# Bounds on what a file may declare (besides the hard bound of the bytes actually present).
MAX_TENSORS = 1 << 20
MAX_KV = 1 << 20
MAX_KEY_BYTES = (1 << 16) - 1         # gguf.md: keys are at most 2^16 - 1 bytes
MAX_STRING_BYTES = 1 << 26            # 64 MiB; the largest real values (embedded tokenizer JSON) are MBs
MAX_TENSOR_NAME_BYTES = 63            # ggml's GGML_MAX_NAME is 64 including the NUL
MAX_DIMS = 4                          # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 3                   # an array may hold arrays, which may hold arrays, and no deeper
MAX_NESTED_ARRAYS = 1 << 16           # arrays inside arrays, in the whole file
MAX_STRING_ITEMS = 1 << 23            # strings inside arrays, in the whole file (vocab, merges)
INT64_MAX = (1 << 63) - 1


class GGUFValueType(enum.IntEnum):
    """Metadata value types (gguf.md ``gguf_metadata_value_type``)."""

    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


class GGMLType(enum.IntEnum):
    """Tensor element types (ggml.h ``enum ggml_type``); ids 4, 5 and 31-33, 36-38 were removed upstream."""

    F32 = 0
    F16 = 1
    Q4_0 = 2
    Q4_1 = 3
    Q5_0 = 6
    Q5_1 = 7
    Q8_0 = 8
    Q8_1 = 9
    Q2_K = 10
    Q3_K = 11
    Q4_K = 12
    Q5_K = 13
    Q6_K = 14
    Q8_K = 15
    IQ2_XXS = 16
    IQ2_XS = 17
    IQ3_XXS = 18
    IQ1_S = 19
    IQ4_NL = 20
    IQ3_S = 21
    IQ2_S = 22
    IQ4_XS = 23
    I8 = 24
    I16 = 25
    I32 = 26
    I64 = 27
    F64 = 28
    IQ1_M = 29
    BF16 = 30
    TQ1_0 = 34
    TQ2_0 = 35
    MXFP4 = 39
    NVFP4 = 40
    Q1_0 = 41


_K = 256  # QK_K, the super-block of the k-quants
#: (values per block, bytes per block) of each type (ggml.c type_traits; gguf-py GGML_QUANT_SIZES).
GGML_TYPE_SIZES: Mapping[GGMLType, Tuple[int, int]] = MappingProxyType({
    GGMLType.F32: (1, 4), GGMLType.F16: (1, 2), GGMLType.Q4_0: (32, 18), GGMLType.Q4_1: (32, 20),
    GGMLType.Q5_0: (32, 22), GGMLType.Q5_1: (32, 24), GGMLType.Q8_0: (32, 34), GGMLType.Q8_1: (32, 40),
    GGMLType.Q2_K: (_K, 84), GGMLType.Q3_K: (_K, 110), GGMLType.Q4_K: (_K, 144), GGMLType.Q5_K: (_K, 176),
    GGMLType.Q6_K: (_K, 210), GGMLType.Q8_K: (_K, 292), GGMLType.IQ2_XXS: (_K, 66), GGMLType.IQ2_XS: (_K, 74),
    GGMLType.IQ3_XXS: (_K, 98), GGMLType.IQ1_S: (_K, 50), GGMLType.IQ4_NL: (32, 18), GGMLType.IQ3_S: (_K, 110),
    GGMLType.IQ2_S: (_K, 82), GGMLType.IQ4_XS: (_K, 136), GGMLType.I8: (1, 1), GGMLType.I16: (1, 2),
    GGMLType.I32: (1, 4), GGMLType.I64: (1, 8), GGMLType.F64: (1, 8), GGMLType.IQ1_M: (_K, 56),
    GGMLType.BF16: (1, 2), GGMLType.TQ1_0: (_K, 54), GGMLType.TQ2_0: (_K, 66), GGMLType.MXFP4: (32, 17),
    GGMLType.NVFP4: (64, 36), GGMLType.Q1_0: (128, 18),
})

# Element dtypes of the unquantized types (BF16 has no NumPy dtype: its raw uint16 bits are returned).
_PLAIN_DTYPES = {GGMLType.F32: "<f4", GGMLType.F16: "<f2", GGMLType.BF16: "<u2", GGMLType.I8: "i1",
                 GGMLType.I16: "<i2", GGMLType.I32: "<i4", GGMLType.I64: "<i8", GGMLType.F64: "<f8"}

_SCALAR_FORMATS = {GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
                   GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
                   GGUFValueType.FLOAT32: "<f", GGUFValueType.UINT64: "<Q", GGUFValueType.INT64: "<q",
                   GGUFValueType.FLOAT64: "<d", GGUFValueType.BOOL: "<B"}
_STRUCTS = {t: struct.Struct(f) for t, f in _SCALAR_FORMATS.items()}
# Fewest bytes one item of each type takes: what bounds a declared count against the bytes left.
_MIN_ITEM_BYTES = {**{t: s.size for t, s in _STRUCTS.items()}, GGUFValueType.STRING: 8, GGUFValueType.ARRAY: 12}
_MIN_KV_BYTES = 8 + 1 + 4 + 1             # key length, a 1-byte key, type, a 1-byte value
_MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 4 + 8  # name length, a 1-byte name, n_dims, type, offset
_HEADER = struct.Struct("<4sIQQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class MetadataField:
    """One key/value pair: its type (and element type for arrays), decoded value and file offset."""

    key: str
    type: GGUFValueType
    element_type: Optional[GGUFValueType]  # arrays only
    value: Any  # int / float / bool / str; arrays: np.ndarray (numbers, bools), list (strings, arrays)
    offset: int  # where the key starts


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's description; its bytes are ``n_bytes`` at absolute file offset ``offset``."""

    name: str
    dims: Tuple[int, ...]  # ggml order: dims[0] is the row length
    ggml_type: GGMLType
    offset: int  # absolute, in the file
    n_elements: int
    n_bytes: int

    @property
    def shape(self) -> Tuple[int, ...]:
        """NumPy-order shape (dims reversed)."""
        return tuple(reversed(self.dims))


class _Cursor:
    """Bounds-checked reads from the mapped file; every failure names the field and its offset."""

    def __init__(self, buf: Union[mmap.mmap, bytes], path: str):
        self.buf, self.size, self.path, self.pos = buf, len(buf), path, 0
        self.nested_arrays = 0
        self.string_items = 0

    def fail(self, field: str, offset: int, expected: str, found: str) -> ModelFormatError:
        return ModelFormatError(f"{self.path}: {field} at offset {offset}: expected {expected}, found {found}")

    @property
    def left(self) -> int:
        return self.size - self.pos

    def need(self, n: int, field: str) -> int:
        """Reserve n bytes; returns their offset."""
        if n > self.left:
            raise self.fail(field, self.pos, f"{n} bytes", f"{self.left} before the end of the file (truncated)")
        at = self.pos
        self.pos += n
        return at

    def unpack(self, st: struct.Struct, field: str) -> Any:
        return st.unpack_from(self.buf, self.need(st.size, field))[0]

    def count(self, field: str, item_bytes: int, cap: int) -> int:
        """A u64 count of items of at least item_bytes each: bounded by the cap and by the bytes left."""
        at = self.pos
        n = self.unpack(_U64, field)
        fit = self.left // item_bytes
        if n > min(cap, fit):
            why = f"at most {cap}" if cap <= fit else f"at most {fit} (items of >= {item_bytes} bytes, {self.left} left)"
            raise self.fail(field, at, why, str(n))
        return n

    def string(self, field: str, cap: int = MAX_STRING_BYTES, min_len: int = 0, index: Optional[int] = None) -> str:
        at = self.pos
        n = _U64.unpack_from(self.buf, at)[0] if self.left >= 8 else None
        if n is None or not min_len <= n <= min(cap, self.left - 8):
            name = field if index is None else f"{field}[{index}]"
            if n is None:
                self.need(8, f"{name} length")
            if not min_len <= n <= cap:
                raise self.fail(f"{name} length", at, f"{min_len}..{cap} bytes", str(n))
            raise self.fail(name, at + 8, f"{n} bytes", f"{self.left - 8} before the end of the file (truncated)")
        start = at + 8
        self.pos = start + n
        try:
            return bytes(self.buf[start:start + n]).decode("utf-8")
        except UnicodeDecodeError as exc:
            name = field if index is None else f"{field}[{index}]"
            raise self.fail(name, start + exc.start, "UTF-8 text", f"byte 0x{self.buf[start + exc.start]:02x}") from None

    def value_type(self, field: str) -> GGUFValueType:
        at = self.pos
        raw = self.unpack(_U32, field)
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise self.fail(field, at, "a GGUF value type 0..12", str(raw)) from None

    def value(self, vtype: GGUFValueType, field: str, depth: int = 0) -> Tuple[Any, Optional[GGUFValueType]]:
        """Decode one value; returns (value, element type if an array)."""
        if vtype == GGUFValueType.STRING:
            return self.string(field), None
        if vtype == GGUFValueType.BOOL:
            at = self.pos
            raw = self.unpack(_STRUCTS[vtype], field)
            if raw > 1:
                raise self.fail(field, at, "a bool (0 or 1)", str(raw))
            return bool(raw), None
        if vtype != GGUFValueType.ARRAY:
            return self.unpack(_STRUCTS[vtype], field), None
        return self.array(field, depth)

    def array(self, field: str, depth: int) -> Tuple[Any, GGUFValueType]:
        if depth >= MAX_ARRAY_DEPTH:
            raise self.fail(field, self.pos, f"arrays nested at most {MAX_ARRAY_DEPTH} deep", "deeper nesting")
        etype = self.value_type(f"{field} element type")
        n = self.count(f"{field} item count", _MIN_ITEM_BYTES[etype], INT64_MAX)
        if etype in _STRUCTS:
            at = self.need(n * _STRUCTS[etype].size, field)
            dtype = np.dtype(_SCALAR_FORMATS[etype])
            items = np.frombuffer(self.buf, dtype, count=n, offset=at).astype(dtype.newbyteorder("="))
            if etype == GGUFValueType.BOOL:
                if n and items.max() > 1:
                    bad = int(np.argmax(items > 1))
                    raise self.fail(f"{field}[{bad}]", at + bad, "a bool (0 or 1)", str(items[bad]))
                items = items.astype(bool)
            return items, etype
        if etype == GGUFValueType.STRING:
            self.string_items += n
            if self.string_items > MAX_STRING_ITEMS:
                raise self.fail(f"{field} item count", self.pos, f"at most {MAX_STRING_ITEMS} strings in arrays",
                                f"{self.string_items} so far")
            return [self.string(field, index=i) for i in range(n)], etype
        self.nested_arrays += n
        if self.nested_arrays > MAX_NESTED_ARRAYS:
            raise self.fail(f"{field} item count", self.pos, f"at most {MAX_NESTED_ARRAYS} nested arrays",
                            f"{self.nested_arrays} so far")
        return [self.array(f"{field}[{i}]", depth + 1)[0] for i in range(n)], etype


class GGUFFile:
    """A parsed, bounds-checked GGUF file with zero-copy tensor views. Use :meth:`open`.

    Attributes:
        path: the file.
        version: GGUF version (2 or 3).
        alignment: data alignment in bytes.
        data_offset: absolute offset of the tensor data section.
        fields: key -> :class:`MetadataField`, in file order.
        metadata: key -> value, in file order.
        tensors: name -> :class:`TensorInfo`, in file order.
    """

    def __init__(self, path: Path, buf: Union[mmap.mmap, bytes], version: int, alignment: int, data_offset: int,
                 fields: Dict[str, MetadataField], tensors: Dict[str, TensorInfo]):
        self.path, self._buf, self.version, self.alignment, self.data_offset = path, buf, version, alignment, data_offset
        self.fields: Mapping[str, MetadataField] = MappingProxyType(fields)
        self.metadata: Mapping[str, Any] = MappingProxyType({k: f.value for k, f in fields.items()})
        self.tensors: Mapping[str, TensorInfo] = MappingProxyType(tensors)

    @classmethod
    def open(cls, path: Union[str, os.PathLike]) -> "GGUFFile":
        """Map and parse a GGUF file (header, metadata, tensor infos); tensor data stays on disk.

        Args:
            path: the .gguf file.

        Raises:
            ModelFormatError: the file is missing, not a regular file, or not a well-formed GGUF v2/v3
                file (the message names the field, its offset, what was expected and what was found).
        """
        path = Path(path)
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise ModelFormatError(f"{path}: not a regular file; expected a .gguf model file")
            if st.st_size == 0:
                raise ModelFormatError(f"{path}: header at offset 0: expected {_HEADER.size} bytes, found an empty file")
            with open(path, "rb") as fh:
                buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise ModelFormatError(f"{path}: cannot open GGUF file: {exc.strerror or exc}") from None
        except (OverflowError, ValueError) as exc:  # larger than this process can map (32-bit), or emptied meanwhile
            raise ModelFormatError(f"{path}: cannot map GGUF file: {exc}") from None
        try:
            return cls._parse(path, buf)
        except BaseException:
            buf.close()
            raise

    @classmethod
    def _parse(cls, path: Path, buf: Union[mmap.mmap, bytes]) -> "GGUFFile":
        cur = _Cursor(buf, str(path))
        magic, version, n_tensors, n_kv = _HEADER.unpack_from(buf, cur.need(_HEADER.size, "header"))
        if magic != GGUF_MAGIC:
            raise cur.fail("magic", 0, repr(GGUF_MAGIC), repr(magic))
        if version not in SUPPORTED_VERSIONS:
            swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
            found = f"{swapped} big-endian (unsupported)" if swapped in SUPPORTED_VERSIONS else str(version)
            raise cur.fail("version", 4, "2 or 3", found)
        left = cur.left
        fit_kv, fit_tensors = min(MAX_KV, left // _MIN_KV_BYTES), min(MAX_TENSORS, left // _MIN_TENSOR_INFO_BYTES)
        if n_kv > fit_kv:
            raise cur.fail("metadata count", 16, f"at most {fit_kv} key/value pairs (>= {_MIN_KV_BYTES} bytes each, "
                           f"{left} bytes after the header, cap {MAX_KV})", str(n_kv))
        if n_tensors > fit_tensors:
            raise cur.fail("tensor count", 8, f"at most {fit_tensors} tensors (>= {_MIN_TENSOR_INFO_BYTES} bytes of info "
                           f"each, {left} bytes after the header, cap {MAX_TENSORS})", str(n_tensors))
        if n_kv * _MIN_KV_BYTES + n_tensors * _MIN_TENSOR_INFO_BYTES > left:
            raise cur.fail("tensor and metadata counts", 8, f"entries fitting in the {left} bytes after the header",
                           f"{n_tensors} tensors and {n_kv} key/value pairs")

        fields: Dict[str, MetadataField] = {}
        for i in range(n_kv):
            at = cur.pos
            key = cur.string(f"metadata key #{i}", MAX_KEY_BYTES, min_len=1)
            if key in fields:
                raise cur.fail(f"metadata key #{i}", at, "unique keys", f"{key!r} again (first at offset {fields[key].offset})")
            vtype = cur.value_type(f"type of {key!r}")
            value, etype = cur.value(vtype, f"value of {key!r}")
            fields[key] = MetadataField(key, vtype, etype, value, at)

        alignment = DEFAULT_ALIGNMENT
        if ALIGNMENT_KEY in fields:
            f = fields[ALIGNMENT_KEY]
            if f.type != GGUFValueType.UINT32 or f.value == 0 or f.value & (f.value - 1):
                found = f"{f.type.name} {f.value!r}" if f.type != GGUFValueType.ARRAY else "an array"
                raise cur.fail(ALIGNMENT_KEY, f.offset, "a UINT32 power of two", found)
            alignment = f.value

        tensors: Dict[str, TensorInfo] = {}
        raw_offsets: Dict[str, Tuple[int, int]] = {}  # name -> (relative offset, where it was read)
        for i in range(n_tensors):
            at = cur.pos
            name = cur.string(f"tensor #{i} name", MAX_TENSOR_NAME_BYTES, min_len=1)
            if name in tensors:
                raise cur.fail(f"tensor #{i} name", at, "unique tensor names", f"{name!r} again")
            what = f"tensor {name!r}"
            dims_at = cur.pos
            n_dims = cur.unpack(_U32, f"{what} n_dims")
            if n_dims > MAX_DIMS:
                raise cur.fail(f"{what} n_dims", dims_at, f"at most {MAX_DIMS}", str(n_dims))
            dims: List[int] = []
            n_elements = 1
            for d in range(n_dims):
                d_at = cur.pos
                dim = cur.unpack(_U64, f"{what} dim {d}")
                if not 0 < dim <= INT64_MAX or n_elements * dim > INT64_MAX:
                    raise cur.fail(f"{what} dim {d}", d_at, f"1..{INT64_MAX} with an element count <= 2^63-1", str(dim))
                dims.append(dim)
                n_elements *= dim
            type_at = cur.pos
            raw_type = cur.unpack(_U32, f"{what} type")
            try:
                gtype = GGMLType(raw_type)
            except ValueError:
                raise cur.fail(f"{what} type", type_at, "a known ggml type", str(raw_type)) from None
            block, block_bytes = GGML_TYPE_SIZES[gtype]
            row = dims[0] if dims else 1
            if row % block:
                raise cur.fail(f"{what} dim 0", dims_at + 4, f"a multiple of {gtype.name}'s block size {block}", str(row))
            off_at = cur.pos
            rel = cur.unpack(_U64, f"{what} offset")
            if rel % alignment:
                raise cur.fail(f"{what} offset", off_at, f"a multiple of the alignment {alignment}", str(rel))
            raw_offsets[name] = (rel, off_at)
            n_bytes = n_elements // block * block_bytes
            tensors[name] = TensorInfo(name, tuple(dims), gtype, rel, n_elements, n_bytes)

        data_offset = -(-cur.pos // alignment) * alignment
        ordered = sorted(tensors.values(), key=lambda t: t.offset)
        end_prev, prev = 0, None
        for t in ordered:
            rel, off_at = raw_offsets[t.name]
            if data_offset + rel + t.n_bytes > cur.size:
                raise cur.fail(f"tensor {t.name!r} offset", off_at,
                               f"data within the file ({cur.size} bytes; data section at {data_offset})",
                               f"bytes {data_offset + rel}..{data_offset + rel + t.n_bytes}")
            if rel < end_prev:
                raise cur.fail(f"tensor {t.name!r} offset", off_at, f"no overlap with tensor {prev!r} (ends at {end_prev})",
                               str(rel))
            end_prev, prev = rel + t.n_bytes, t.name
        tensors = {n: TensorInfo(t.name, t.dims, t.ggml_type, data_offset + t.offset, t.n_elements, t.n_bytes)
                   for n, t in tensors.items()}
        return cls(path, buf, version, alignment, data_offset, fields, tensors)

    # --- access ------------------------------------------------------------------------------------

    @property
    def architecture(self) -> str:
        """``general.architecture`` (e.g. ``"llama"``).

        Raises:
            ModelFormatError: missing or not a string.
        """
        f = self.fields.get("general.architecture")
        if f is None or f.type != GGUFValueType.STRING or not f.value:
            found = "no such key" if f is None else f"{f.type.name} {f.value!r}"
            raise ModelFormatError(f"{self.path}: general.architecture: expected a non-empty string, found {found}")
        return f.value

    def tensor(self, name: str) -> np.ndarray:
        """A read-only zero-copy view of a tensor's data.

        Plain types come typed and shaped (NumPy order; BF16 as its raw uint16 bits); block-quantized
        types as uint8 ``(*shape[:-1], bytes_per_row)``. The view keeps the mapping alive.

        Raises:
            InputError: no tensor of that name, or the file was closed.
        """
        info = self.tensors.get(name)
        if info is None:
            raise InputError(f"{self.path}: no tensor named {name!r} ({len(self.tensors)} tensors)")
        if self._buf is None:
            raise InputError(f"{self.path}: the file is closed")
        shape = info.shape
        dtype = _PLAIN_DTYPES.get(info.ggml_type)
        if dtype is None:
            block, block_bytes = GGML_TYPE_SIZES[info.ggml_type]
            dtype, shape = "u1", (*shape[:-1], shape[-1] // block * block_bytes)
        count = info.n_bytes // np.dtype(dtype).itemsize
        return np.frombuffer(self._buf, np.dtype(dtype), count=count, offset=info.offset).reshape(shape)

    def close(self) -> None:
        """Drop the mapping (it stays alive while views from :meth:`tensor` exist)."""
        buf, self._buf = self._buf, None
        if isinstance(buf, mmap.mmap):
            try:
                buf.close()
            except BufferError:  # views still export it; it is unmapped when the last one goes
                pass

    def __enter__(self) -> "GGUFFile":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GGUFFile({str(self.path)!r}, v{self.version}, {len(self.fields)} keys, {len(self.tensors)} tensors)"


def validate(path: Union[str, os.PathLike], *, require_architecture: bool = True) -> None:
    """Refuse a GGUF file that is malformed or that llama.cpp's loader would not accept cleanly.

    On top of :meth:`GGUFFile.open`'s checks: tensor data packed in file order, each tensor at the
    aligned end of the previous one (llama.cpp rejects other layouts), no nested arrays (it cannot
    read them) and, by default, a ``general.architecture`` string.

    Args:
        path: the .gguf file.
        require_architecture: also demand ``general.architecture``.

    Raises:
        ModelFormatError: what is wrong, where, what was expected and what was found.
    """
    with GGUFFile.open(path) as f:
        for field in f.fields.values():
            if field.element_type == GGUFValueType.ARRAY:
                raise ModelFormatError(f"{f.path}: value of {field.key!r} at offset {field.offset}: expected an array "
                                       f"of scalars or strings (llama.cpp reads no nested arrays), found an array of arrays")
        expected = f.data_offset
        for t in f.tensors.values():
            if t.offset != expected:
                raise ModelFormatError(f"{f.path}: tensor {t.name!r} data: expected at offset {expected} (packed in "
                                       f"file order, {f.alignment}-byte aligned, as llama.cpp requires), found {t.offset}")
            expected += -(-t.n_bytes // f.alignment) * f.alignment
        if require_architecture:
            f.architecture
