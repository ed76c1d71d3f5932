"""A Hugging Face checkpoint folder, validated and opened without loading it: config, weights, tokenizer.

The converters that read HF weights themselves (GGUF export, the LLM ONNX export) start here, so a
folder missing ``config.json``, its safetensors weights or ``tokenizer.json``, or holding an unsupported
architecture, is refused with one clear :class:`~edge_runtime.errors.ModelFormatError` before any work.

Weights are read with a small bounds-checked safetensors reader (format: huggingface/safetensors
README) over a read-only memory map: a tensor is a zero-copy view until it is widened to float32,
BF16 included (NumPy has no bfloat16, the safetensors library's NumPy loader refuses it).

Shape legend: tensors keep their NumPy/PyTorch shapes (a linear weight is ``(out_features, in_features)``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple, Union

import numpy as np

from edge_runtime.errors import InputError, ModelFormatError

__all__ = ["HFCheckpoint", "SafetensorsIndex", "read_hf_checkpoint"]

PathLike = Union[str, Path]
_MAX_CONFIG_BYTES = 1 << 22


def _read_json(path: Path, what: str) -> Any:
    if path.stat().st_size > _MAX_CONFIG_BYTES and path.name != "tokenizer.json":
        raise ModelFormatError(f"{path}: {what} is {path.stat().st_size} bytes; expected a small JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: {what} is not valid JSON ({exc})") from None


# -------------------------------------------------------------------------------------- safetensors

_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "u1"}
_MAX_ST_HEADER = 100 << 20  # the safetensors library's own limit


class SafetensorsIndex:
    """Zero-copy, bounds-checked reader of one checkpoint's safetensors files (single or sharded).

    Format (huggingface/safetensors README): u64 little-endian header size N, N bytes of JSON
    ``{name: {dtype, shape, data_offsets: [begin, end]}}`` (offsets relative to the end of the header),
    then the data. Every size and offset is checked against the file before a view is made.
    """

    def __init__(self, entries: Dict[str, Tuple[Path, str, Tuple[int, ...], int]]):
        self._entries = entries  # name -> (file, dtype code, shape, absolute offset)
        self._maps: Dict[Path, np.memmap] = {}

    @classmethod
    def open(cls, directory: PathLike) -> "SafetensorsIndex":
        """Index every ``*.safetensors`` file of ``directory``.

        Raises:
            ModelFormatError: no safetensors file (a ``pytorch_model.bin`` is named as unsupported),
                a malformed header, a tensor outside its file or listed twice.
        """
        d = Path(directory)
        files = sorted(d.glob("*.safetensors"))
        if not files:
            other = [p.name for p in d.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".h5", ".msgpack")]
            raise ModelFormatError(f"{d}: no *.safetensors weights" + (
                f" (found {other}; re-save with save_pretrained(safe_serialization=True))" if other else ""))
        entries: Dict[str, Tuple[Path, str, Tuple[int, ...], int]] = {}
        for f in files:
            for name, entry in cls._read_header(f).items():
                if name in entries:
                    raise ModelFormatError(f"{f}: tensor {name!r} also appears in {entries[name][0].name}")
                entries[name] = entry
        return cls(entries)

    @staticmethod
    def _read_header(path: Path) -> Dict[str, Tuple[Path, str, Tuple[int, ...], int]]:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 2 <= n <= min(_MAX_ST_HEADER, size - 8):
                raise ModelFormatError(f"{path}: header size {n} at offset 0; "
                                       f"expected 2..{min(_MAX_ST_HEADER, size - 8)}")
            try:
                header = json.loads(fh.read(n))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelFormatError(f"{path}: header is not JSON ({exc})") from None
        if not isinstance(header, dict):
            raise ModelFormatError(f"{path}: header must be a JSON object")
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            try:
                code = _ST_DTYPES[info["dtype"]]
                shape = tuple(int(x) for x in info["shape"])
                begin, end = (int(x) for x in info["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise ModelFormatError(f"{path}: tensor {name!r}: entry {str(info)[:120]} lacks a known dtype, "
                                       "a shape or data_offsets") from None
            want = int(np.prod(shape, dtype=np.int64)) * np.dtype(code).itemsize
            if min(shape, default=0) < 0 or begin < 0 or end - begin != want or 8 + n + end > size:
                raise ModelFormatError(f"{path}: tensor {name!r}: bytes [{begin}, {end}) for shape {shape} "
                                       f"{info['dtype']} (expected {want} bytes inside a {size}-byte file)")
            out[name] = (path, info["dtype"], shape, 8 + n + begin)
        return out

    def names(self) -> List[str]:
        """Tensor names, sorted (shards merged)."""
        return sorted(self._entries)

    def shape(self, name: str) -> Tuple[int, ...]:
        return self._entries[name][2]

    def load(self, name: str) -> np.ndarray:
        """The tensor as float32 when it holds floats (BF16/F16/F64 widened), else its own dtype.

        Raises:
            InputError: no such tensor.
        """
        if name not in self._entries:
            raise InputError(f"safetensors: no tensor {name!r}")
        path, dtype, shape, offset = self._entries[name]
        mm = self._maps.get(path)
        if mm is None:
            mm = self._maps[path] = np.memmap(path, dtype=np.uint8, mode="r")
        count = int(np.prod(shape, dtype=np.int64))
        raw = np.frombuffer(mm, dtype=_ST_DTYPES[dtype], count=count, offset=offset).reshape(shape)
        if dtype == "BF16":  # bfloat16 = the high half of a float32
            return (raw.astype(np.uint32) << 16).view(np.float32)
        if dtype in ("F16", "F64"):
            return raw.astype(np.float32)
        return raw


# ------------------------------------------------------------------------------------- checkpoint

@dataclass
class HFCheckpoint:
    """A validated HF checkpoint directory: config, architecture, weights, tokenizer file.

    Attributes:
        directory: the checkpoint folder.
        config: config.json as a dict.
        hf_arch: its ``architectures[0]``.
        arch: the gguf architecture (``llama``, ``qwen2``, ``bert``).
        weights: the safetensors tensors (zero-copy).
        tokenizer_path: tokenizer.json.
    """

    directory: Path
    config: Dict[str, Any]
    hf_arch: str
    arch: str
    weights: SafetensorsIndex
    tokenizer_path: Path

    def hparam(self, *keys: str, default: Any = None, required: bool = True) -> Any:
        """The first of ``keys`` present in config.json (ModelFormatError if required and none is)."""
        for k in keys:
            if k in self.config and self.config[k] is not None:
                return self.config[k]
        if required and default is None:
            raise ModelFormatError(f"{self.directory / 'config.json'}: missing {' / '.join(keys)}")
        return default

    @property
    def rope(self) -> Dict[str, Any]:
        """RoPE parameters: transformers >= 5 ``rope_parameters``, else ``rope_theta`` + ``rope_scaling``."""
        params = dict(self.config.get("rope_parameters") or {})
        params.update({k: v for k, v in (self.config.get("rope_scaling") or {}).items() if k not in params})
        if "rope_theta" not in params and "rope_theta" in self.config:
            params["rope_theta"] = self.config["rope_theta"]
        if "type" in params and "rope_type" not in params:
            params["rope_type"] = params["type"]
        return params


def read_hf_checkpoint(directory: PathLike, supported: Mapping[str, str], *, where: str = "convert") -> HFCheckpoint:
    """Check that ``directory`` is a convertible HF checkpoint and open its weights.

    Args:
        directory: the checkpoint folder.
        supported: HF architecture name (``config.architectures[0]``) -> target architecture name.
        where: prefix for error messages.

    Raises:
        InputError: ``directory`` is not a directory.
        ModelFormatError: config.json, the safetensors weights or tokenizer.json missing or malformed,
            or an architecture this converter does not handle (the message lists those it does).
    """
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"{where}: {str(d)!r} is not a directory; pass a Hugging Face checkpoint folder")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise ModelFormatError(f"{d}: no config.json; expected a Hugging Face checkpoint folder "
                               "(config.json + *.safetensors + tokenizer.json)")
    config = _read_json(cfg_path, "config.json")
    if not isinstance(config, dict):
        raise ModelFormatError(f"{cfg_path}: expected a JSON object, got {type(config).__name__}")
    archs = config.get("architectures") or []
    hf_arch = archs[0] if isinstance(archs, list) and archs and isinstance(archs[0], str) else None
    if hf_arch not in supported:
        raise ModelFormatError(f"{cfg_path}: architecture {hf_arch!r} (model_type {config.get('model_type')!r}) "
                               f"is not supported by {where}; supported: {sorted(supported)}")
    weights = SafetensorsIndex.open(d)
    tok = d / "tokenizer.json"
    if not tok.is_file():
        raise ModelFormatError(f"{d}: no tokenizer.json; the GGUF must carry the vocabulary "
                               "(save the fast tokenizer with tokenizer.save_pretrained)")
    return HFCheckpoint(d, config, hf_arch, supported[hf_arch], weights, tok)
