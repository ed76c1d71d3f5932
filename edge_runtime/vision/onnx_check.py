"""Check an ONNX file before onnxruntime reads it: well-formed protobuf, a known opset, and external data
that stays inside the model's folder.

An ONNX model may keep tensor bytes in other files ("external data", onnx/onnx.proto ``TensorProto
.external_data``: ``location``, ``offset``, ``length``, relative to the model's folder). A hostile model
could name ``../../etc/passwd`` or an absolute path; onnxruntime 1.32 refuses those itself, older releases
(which the ``onnxruntime>=1.17`` requirement allows on a board) did not. So the runtime walks the protobuf
wire format itself (no ``onnx`` package on a board) and refuses, before any read, a location that is
absolute, climbs out with ``..``, or resolves (symlinks followed) outside the folder, and one whose
offset + length runs past its file.

Wire format: https://protobuf.dev/programming-guides/encoding/ ; field numbers from onnx/onnx.proto
(ModelProto.graph = 7, GraphProto.initializer = 5, TensorProto.external_data = 13, ...).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

from ..errors import ModelFormatError

__all__ = ["OnnxSummary", "check_onnx_file", "MAX_OPSET"]

#: Default-domain ("ai.onnx") opsets accepted: onnxruntime guarantees 7 and up; 1.32 loads up to 28 (an
#: older onnxruntime refuses what it does not know itself, also as ModelFormatError).
MIN_OPSET = 7
MAX_OPSET = 28
MAX_MODEL_BYTES = 2 << 30  # protobuf's own hard limit on one message
_MAX_DEPTH = 48  # messages nested deeper (about 15 levels of If/Loop bodies) are refused
_MAX_EXTERNAL = 1 << 16  # tensors with external data

# Which length-delimited fields are sub-messages we must enter, per message kind (onnx/onnx.proto).
_MODEL, _GRAPH, _NODE, _ATTRIBUTE, _FUNCTION, _TRAINING, _SPARSE, _TENSOR, _ENTRY, _OPSET = range(10)
_CHILDREN: Dict[int, Dict[int, int]] = {
    _MODEL: {7: _GRAPH, 25: _FUNCTION, 20: _TRAINING, 8: _OPSET},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},
    _TRAINING: {1: _GRAPH, 2: _GRAPH},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
    _TENSOR: {13: _ENTRY},
    _ENTRY: {},
    _OPSET: {},
}
_NAMES = {_MODEL: "model", _GRAPH: "graph", _NODE: "node", _ATTRIBUTE: "attribute", _FUNCTION: "function",
          _TRAINING: "training info", _SPARSE: "sparse tensor", _TENSOR: "tensor", _ENTRY: "external data entry",
          _OPSET: "opset import"}


@dataclass(frozen=True)
class OnnxSummary:
    """What the check read: the IR version, opsets by domain ("" = ai.onnx), external data files used."""

    ir_version: int
    opsets: Dict[str, int]
    external_files: Tuple[Path, ...]


class _Fields:
    """The fields of one protobuf message in ``buf[start:end]``; errors name the file and byte offset."""

    def __init__(self, buf: memoryview, start: int, end: int, where: str) -> None:
        self.buf, self.pos, self.end, self.where = buf, start, end, where

    def fail(self, what: str) -> ModelFormatError:
        return ModelFormatError(f"{self.where}: not a valid ONNX protobuf: {what} at byte {self.pos}")

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            if self.pos >= self.end:
                raise self.fail("truncated varint")
            byte = self.buf[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift >= 70:
                raise self.fail("varint longer than 10 bytes")

    def __iter__(self):
        """Yields (field number, wire type, value): an int for scalars, (start, end) for length-delimited."""
        while self.pos < self.end:
            key = self.varint()
            number, wire = key >> 3, key & 7
            if number == 0:
                raise self.fail("field number 0")
            if wire == 0:
                yield number, wire, self.varint()
            elif wire in (1, 5):
                size = 8 if wire == 1 else 4
                if self.pos + size > self.end:
                    raise self.fail("truncated fixed-width field")
                self.pos += size
                yield number, wire, None
            elif wire == 2:
                n = self.varint()
                if n > self.end - self.pos:
                    raise self.fail(f"field {number} of {n} bytes past the end of its message (truncated file?)")
                start = self.pos
                self.pos += n
                yield number, wire, (start, start + n)
            else:
                raise self.fail(f"wire type {wire} (groups are not used by ONNX)")


def _text(buf: memoryview, span: Tuple[int, int], where: str, what: str) -> str:
    try:
        return bytes(buf[span[0]:span[1]]).decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(f"{where}: {what} at byte {span[0]} is not UTF-8") from None


def _external_file(folder: Path, entries: Dict[str, str], where: str) -> Path:
    """Resolve and bound one tensor's external data; refuses anything outside ``folder``."""
    location = entries.get("location")
    if not location:
        raise ModelFormatError(f"{where}: a tensor stores its data externally but names no location")
    if "\x00" in location or os.path.isabs(location) or location.startswith(("\\", "/")) or ":" in location[:3]:
        raise ModelFormatError(f"{where}: external data location {location!r} is absolute; "
                               f"expected a file inside the model's folder")
    parts = location.replace("\\", "/").split("/")
    if ".." in parts:
        raise ModelFormatError(f"{where}: external data location {location!r} climbs out with '..'; "
                               f"expected a file inside the model's folder")
    root = folder.resolve()
    target = (root / location).resolve()
    if target != root and root not in target.parents:
        raise ModelFormatError(f"{where}: external data location {location!r} resolves to {target}, outside the "
                               f"model's folder {root} (a symlink?)")
    try:
        size = target.stat().st_size if target.is_file() else None
    except OSError:
        size = None
    if size is None:
        raise ModelFormatError(f"{where}: external data file {location!r} is missing or not a regular file")
    numbers = {}
    for key in ("offset", "length"):
        raw = entries.get(key)
        if raw is not None:
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 20:
                raise ModelFormatError(f"{where}: external data {key} {raw!r} is not a byte count")
            numbers[key] = int(raw)
    offset = numbers.get("offset", 0)
    end = offset + numbers.get("length", max(size - offset, 0))
    if offset > size or end > size:
        raise ModelFormatError(f"{where}: external data {location!r} bytes {offset}..{end} run past its end "
                               f"({size} bytes)")
    return target


def _walk(buf: memoryview, folder: Path, where: str) -> OnnxSummary:
    ir_version: Optional[int] = None
    opsets: Dict[str, int] = {}
    files: Dict[Path, None] = {}
    external = 0
    has_graph = False
    # An explicit stack (no recursion): (kind, start, end, depth).
    stack: List[Tuple[int, int, int, int]] = [(_MODEL, 0, len(buf), 0)]
    while stack:
        kind, start, end, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ModelFormatError(f"{where}: messages nested more than {_MAX_DEPTH} deep at byte {start}")
        children = _CHILDREN[kind]
        entry: Dict[int, str] = {}
        opset: Dict[int, object] = {}
        entries: List[Dict[str, str]] = []
        is_external = False
        fields = _Fields(buf, start, end, where)
        for number, wire, value in fields:
            if kind == _MODEL and number == 1 and wire == 0:
                ir_version = value
            if kind == _MODEL and number == 7 and wire == 2:
                has_graph = True
            if kind == _TENSOR and number == 14 and wire == 0:
                is_external = value == 1  # TensorProto.DataLocation.EXTERNAL
            if kind == _ENTRY and wire == 2 and number in (1, 2):
                entry[number] = _text(buf, value, where, "an external data entry")
            if kind == _OPSET and number == 1 and wire == 2:
                opset[1] = _text(buf, value, where, "an opset domain")
            if kind == _OPSET and number == 2 and wire == 0:
                opset[2] = value
            child = children.get(number)
            if child is None or wire != 2:
                continue
            if child == _ENTRY:
                sub: Dict[int, str] = {}
                for n2, w2, v2 in _Fields(buf, value[0], value[1], where):
                    if w2 == 2 and n2 in (1, 2):
                        sub[n2] = _text(buf, v2, where, "an external data entry")
                entries.append({sub.get(1, ""): sub.get(2, "")})
            else:
                stack.append((child, value[0], value[1], depth + 1))
        if kind == _OPSET:
            domain = opset.get(1, "")
            domain = "" if domain == "ai.onnx" else domain
            version = opset.get(2)
            if not isinstance(version, int) or version > (1 << 31):
                raise ModelFormatError(f"{where}: opset import of domain {domain!r} has no valid version")
            opsets[str(domain)] = version
        if kind == _TENSOR and is_external:
            external += 1
            if external > _MAX_EXTERNAL:
                raise ModelFormatError(f"{where}: more than {_MAX_EXTERNAL} tensors with external data")
            merged: Dict[str, str] = {}
            for e in entries:
                merged.update(e)
            files[_external_file(folder, merged, where)] = None
    if ir_version is None or not has_graph:
        raise ModelFormatError(f"{where}: not an ONNX model (no IR version or no graph)")
    if "" not in opsets:
        raise ModelFormatError(f"{where}: the model imports no ai.onnx opset")
    if not MIN_OPSET <= opsets[""] <= MAX_OPSET:
        raise ModelFormatError(f"{where}: ai.onnx opset {opsets['']} is not supported; expected {MIN_OPSET}.."
                               f"{MAX_OPSET} (re-export the model with an opset in that range)")
    return OnnxSummary(ir_version, opsets, tuple(files))


def check_onnx_file(path: Union[str, os.PathLike]) -> OnnxSummary:
    """Check that ``path`` is a well-formed ONNX model that reads nothing outside its folder.

    Reads the file's protobuf structure only (tensor bytes are skipped); no other file is opened, only
    ``stat``-ed. Runs in time linear in the file size, without recursion.

    Args:
        path: the ``.onnx`` file.

    Returns:
        An :class:`OnnxSummary`.

    Raises:
        ModelFormatError: missing or unreadable; truncated or malformed protobuf; no graph; an ai.onnx
            opset outside ``MIN_OPSET..MAX_OPSET``; external data that is absolute, climbs out of the
            folder, resolves outside it, is missing, or is shorter than the tensor's offset + length.

    Example:
        >>> from edge_runtime.assets import ensure
        >>> check_onnx_file(ensure("yolov8s-person")).opsets[""]           # doctest: +SKIP
        17
    """
    path = Path(path)
    where = str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                raise ModelFormatError(f"{where}: empty file; expected an ONNX model")
            if size > MAX_MODEL_BYTES:
                raise ModelFormatError(f"{where}: {size} bytes; an ONNX protobuf holds at most {MAX_MODEL_BYTES}")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return _walk(view, path.parent, where)
                finally:
                    view.release()
    except OSError as exc:
        raise ModelFormatError(f"{where}: cannot read model file: {exc.strerror or exc}") from None
    except (ValueError, OverflowError) as exc:  # mmap of a file emptied meanwhile, or too big to map
        raise ModelFormatError(f"{where}: cannot map model file: {exc}") from None
