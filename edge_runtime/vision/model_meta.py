"""Read what a YOLO ONNX file says about itself: class names, input size, stride, end-to-end export.

Ultralytics writes these as strings in the ONNX ``metadata_props`` (``names`` is a Python dict literal,
``imgsz`` a list literal, ``args`` a dict literal). The values come from a file we don't trust, so they
are parsed with ``ast.literal_eval`` (literals only, no code), size-bounded and type-checked.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from ..errors import ModelFormatError

__all__ = ["ModelMeta", "parse_model_meta"]

_MAX_LITERAL_CHARS = 1 << 20  # a names dict of a few thousand classes fits easily
_MAX_CLASSES = 100_000


@dataclass(frozen=True)
class ModelMeta:
    """Facts from a detector's metadata; fields are None when the file doesn't say."""

    names: Optional[Dict[int, str]] = None
    imgsz_hw: Optional[Tuple[int, int]] = None
    stride: Optional[int] = None
    task: Optional[str] = None
    end2end: Optional[bool] = None
    raw: Mapping[str, str] = field(default_factory=dict)


def _literal(path: Path, key: str, text: str) -> object:
    if len(text) > _MAX_LITERAL_CHARS:
        raise ModelFormatError(f"{path}: metadata {key!r} is {len(text)} characters, max {_MAX_LITERAL_CHARS}")
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:  # TypeError: {[1]: 2}
        raise ModelFormatError(f"{path}: metadata {key!r} is not a literal ({exc.__class__.__name__}): {text[:80]!r}")


def _names(path: Path, text: str) -> Dict[int, str]:
    value = _literal(path, "names", text)
    if isinstance(value, (list, tuple)):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value or len(value) > _MAX_CLASSES:
        raise ModelFormatError(f"{path}: metadata 'names' must be a non-empty dict of class id -> name, got {text[:80]!r}")
    names: Dict[int, str] = {}
    for key, name in value.items():
        if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key < _MAX_CLASSES or not isinstance(name, str):
            raise ModelFormatError(f"{path}: metadata 'names' entry {key!r}: {name!r} is not int -> str")
        names[key] = name
    if sorted(names) != list(range(len(names))):
        raise ModelFormatError(f"{path}: metadata 'names' ids must be 0..{len(names) - 1}, got {sorted(names)[:10]}")
    return names


def _imgsz(path: Path, text: str) -> Tuple[int, int]:
    value = _literal(path, "imgsz", text)
    if isinstance(value, int):
        value = [value, value]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and 16 <= v <= 8192 for v in value)):
        raise ModelFormatError(f"{path}: metadata 'imgsz' must be [h, w] with 16..8192 pixels, got {text!r}")
    return int(value[0]), int(value[1])


def parse_model_meta(path: Path, props: Mapping[str, str]) -> ModelMeta:
    """Parse the detector-relevant keys of an ONNX ``custom_metadata_map``.

    Raises:
        ModelFormatError: a key is present but malformed (a wrong value is never silently ignored).
    """
    names = _names(path, props["names"]) if "names" in props else None
    imgsz = _imgsz(path, props["imgsz"]) if "imgsz" in props else None
    stride = None
    if "stride" in props:
        try:
            stride = int(props["stride"])
        except ValueError:
            raise ModelFormatError(f"{path}: metadata 'stride' must be an integer, got {props['stride']!r}")
        if not 1 <= stride <= 256:
            raise ModelFormatError(f"{path}: metadata 'stride' must be 1..256, got {stride}")
    end2end: Optional[bool] = None
    if "end2end" in props:
        end2end = props["end2end"].strip().lower() in ("true", "1")
    elif "args" in props:
        args = _literal(path, "args", props["args"])
        if isinstance(args, dict) and isinstance(args.get("nms"), bool):
            end2end = args["nms"]
    task = props.get("task")
    return ModelMeta(names=names, imgsz_hw=imgsz, stride=stride, task=task, end2end=end2end, raw=dict(props))
