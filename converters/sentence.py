"""Sentence embeddings from an exported encoder: tokenizer.json + ONNX + pooling, no torch needed.

Pooling follows sentence-transformers: ``modules.json`` lists the pipeline (Transformer -> Pooling ->
Normalize); the Pooling module's ``config.json`` names the mode (``pooling_mode_mean_tokens`` etc.);
``sentence_bert_config.json`` gives ``max_seq_length``. all-MiniLM-L6-v2 is mean pooling over the
attention mask, then L2 normalization, 256 tokens.

Shape legend: N sentences, S tokens (padded to the longest in the batch), D hidden size;
``last_hidden_state`` (N, S, D) float32, ``attention_mask`` (N, S) int64, embeddings (N, D) float32.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from edge_runtime.errors import BackendUnavailableError, InputError, ModelFormatError

from .verify import open_session, run_session

__all__ = ["PoolingMode", "Pooling", "read_pooling", "pool", "Tokenizer", "SentenceEncoder"]

PathLike = Union[str, Path]


class PoolingMode(str, enum.Enum):
    """How token states become one sentence vector (sentence-transformers' names)."""

    MEAN = "mean"
    CLS = "cls"
    MAX = "max"
    MEAN_SQRT_LEN = "mean_sqrt_len"


@dataclass(frozen=True)
class Pooling:
    """Pooling mode, L2 normalization and the token limit of a sentence-embedding model."""

    mode: PoolingMode = PoolingMode.MEAN
    normalize: bool = False
    max_seq_length: int = 512
    from_config: bool = False  # False when no sentence-transformers files were found (defaults used)


def _read_json(path: Path, where: str) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{where}: {str(path)!r} is not readable JSON: {exc}") from exc


def read_pooling(model_dir: PathLike, default_max_len: int = 512) -> Pooling:
    """Pooling of a sentence-transformers model directory (mean, no normalization when absent).

    Raises:
        ModelFormatError: a present config file is not valid JSON or names no pooling mode.
    """
    model_dir = Path(model_dir)
    modules_path = model_dir / "modules.json"
    max_len = default_max_len
    sbert = model_dir / "sentence_bert_config.json"
    if sbert.is_file():
        cfg = _read_json(sbert, "read_pooling")
        if isinstance(cfg, dict) and isinstance(cfg.get("max_seq_length"), int) and cfg["max_seq_length"] > 0:
            max_len = min(int(cfg["max_seq_length"]), default_max_len)
    if not modules_path.is_file():
        return Pooling(PoolingMode.MEAN, False, max_len, from_config=False)
    modules = _read_json(modules_path, "read_pooling")
    if not isinstance(modules, list):
        raise ModelFormatError(f"read_pooling: {str(modules_path)!r} should hold a list of modules")
    types = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules if isinstance(m, dict)}
    normalize = "Normalize" in types
    mode = PoolingMode.MEAN
    if "Pooling" in types:
        cfg_path = model_dir / str(types["Pooling"].get("path", "")) / "config.json"
        cfg = _read_json(cfg_path, "read_pooling") if cfg_path.is_file() else {}
        flags = {PoolingMode.CLS: "pooling_mode_cls_token", PoolingMode.MAX: "pooling_mode_max_tokens",
                 PoolingMode.MEAN_SQRT_LEN: "pooling_mode_mean_sqrt_len_tokens",
                 PoolingMode.MEAN: "pooling_mode_mean_tokens"}
        chosen = [m for m, key in flags.items() if isinstance(cfg, dict) and cfg.get(key)]
        if len(chosen) > 1:
            raise ModelFormatError(f"read_pooling: {str(cfg_path)!r} enables several pooling modes "
                                   f"{[m.value for m in chosen]}; concatenated poolings are not supported")
        if chosen:
            mode = chosen[0]
    return Pooling(mode, normalize, max_len, from_config=True)


def pool(hidden: np.ndarray, mask: np.ndarray, pooling: Pooling) -> np.ndarray:
    """(N, S, D) token states + (N, S) mask -> (N, D) float32 sentence vectors."""
    hidden = np.asarray(hidden, np.float32)
    m = np.asarray(mask, np.float32)[..., None]
    if pooling.mode is PoolingMode.CLS:
        out = hidden[:, 0]
    elif pooling.mode is PoolingMode.MAX:
        out = np.where(m > 0, hidden, -1e9).max(axis=1)
    else:
        total = (hidden * m).sum(axis=1)
        count = np.maximum(m.sum(axis=1), 1e-9)
        out = total / (np.sqrt(count) if pooling.mode is PoolingMode.MEAN_SQRT_LEN else count)
    if pooling.normalize:
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


class Tokenizer:
    """A Hugging Face ``tokenizer.json`` with padding to the batch's longest and truncation.

    Args:
        path: the ``tokenizer.json`` file (or the directory holding it).
        max_length: truncate to this many tokens (special tokens included).

    Raises:
        ModelFormatError: missing or unreadable tokenizer file.
        BackendUnavailableError: the ``tokenizers`` package is missing.
    """

    def __init__(self, path: PathLike, max_length: int = 512):
        try:
            from tokenizers import Tokenizer as _HFTokenizer
        except ImportError as exc:
            raise BackendUnavailableError("the tokenizers package is needed; "
                                          "pip install 'edge-runtime[convert]'") from exc
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json"
        if not path.is_file():
            raise ModelFormatError(f"Tokenizer: {str(path)!r} not found; the model directory needs tokenizer.json")
        try:
            tok = _HFTokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on parse errors
            raise ModelFormatError(f"Tokenizer: {str(path)!r} is not a valid tokenizer.json: {exc}") from exc
        pad_token = "[PAD]"
        pad_id = tok.token_to_id(pad_token)
        if pad_id is None:
            pad_token, pad_id = "<pad>", tok.token_to_id("<pad>")
        tok.enable_padding(pad_id=pad_id or 0, pad_token=pad_token)
        tok.enable_truncation(max_length=int(max_length))
        self._tok = tok

    def __call__(self, sentences: Sequence[str]) -> Dict[str, np.ndarray]:
        """``{input_ids, attention_mask, token_type_ids}`` as (N, S) int64."""
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences):
            raise InputError("Tokenizer: expected a list of strings")
        if not sentences:
            raise InputError("Tokenizer: no sentences given")
        enc = self._tok.encode_batch(list(sentences))
        return {"input_ids": np.array([e.ids for e in enc], np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], np.int64)}


class SentenceEncoder:
    """Sentence embeddings with an ONNX encoder (fp32, int8 or 4-bit) and the model's pooling.

    Args:
        model_path: the exported ``.onnx`` (inputs input_ids, attention_mask[, token_type_ids]).
        model_dir: the Hugging Face directory it came from (tokenizer.json, pooling config).
        threads: ONNX Runtime intra-op threads.

    Example:
        >>> enc = SentenceEncoder("minilm.int8.onnx", ensure("all-minilm-l6-v2"))   # doctest: +SKIP
        >>> e = enc.encode(["That is a happy person", "That is a very happy person"])
        >>> float(e[0] @ e[1])
    """

    def __init__(self, model_path: PathLike, model_dir: PathLike, *, threads: int = 1,
                 pooling: Optional[Pooling] = None):
        self.pooling = pooling or read_pooling(model_dir)
        self.tokenizer = Tokenizer(model_dir, self.pooling.max_seq_length)
        self.session = open_session(model_path, threads=threads)
        self.input_names: List[str] = [i.name for i in self.session.get_inputs()]

    def hidden_states(self, sentences: Sequence[str]):
        """(last_hidden_state (N, S, D), attention_mask (N, S)) for one batch."""
        feed = self.tokenizer(sentences)
        return run_session(self.session, {n: feed[n] for n in self.input_names})[0], feed["attention_mask"]

    def encode(self, sentences: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(N, D) float32 embeddings, in batches of ``batch_size``."""
        if batch_size < 1:
            raise InputError(f"SentenceEncoder.encode: batch_size must be >= 1, got {batch_size}")
        sentences = list(sentences)
        if not sentences:
            raise InputError("SentenceEncoder.encode: no sentences given")
        out = []
        for i in range(0, len(sentences), batch_size):
            hidden, mask = self.hidden_states(sentences[i:i + batch_size])
            out.append(pool(hidden, mask, self.pooling))
        return np.concatenate(out, axis=0)
