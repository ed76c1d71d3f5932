"""``edge-runtime inspect FILE.gguf``: what is in a GGUF model and how much RAM it will take.

Reads the file with the hardened reader (:mod:`edge_runtime.llm.gguf_file`; tensor data is never read)
and reports the architecture, the quantization mix (tensor count and bytes per ggml type), total size,
parameter count, context length, embedding width, layers, heads, vocabulary, the chat template, whether
llama.cpp's loader would accept it, and a RAM estimate for a chosen context::

    RAM = weights + KV cache + overhead
    KV cache = 2 (K and V) x n_layer x ctx x n_kv_heads x head_dim x 2 bytes (f16 cache)
             (exactly: n_layer x ctx x n_kv_heads x (key_length + value_length) x 2, summed per layer)

The KV figure is the full-attention upper bound (sliding-window layers, e.g. Gemma 3's, need less).
The overhead is an assumption, stated in the report: :data:`DEFAULT_OVERHEAD_MIB` for llama.cpp's
compute buffers, logits and allocator slack (``--overhead-mib`` to change it).

Example:
    $ edge-runtime inspect model.gguf --ctx 4096
    $ edge-runtime inspect model.gguf --json
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..errors import InputError, ModelFormatError
from .gguf_file import GGUFFile, validate

__all__ = ["DEFAULT_OVERHEAD_MIB", "KV_BYTES_PER_VALUE", "inspect_gguf", "format_report", "configure_parser",
           "run_command"]

#: Assumed runtime overhead on top of weights and KV cache (compute buffers, logits, allocator), MiB.
DEFAULT_OVERHEAD_MIB = 64
#: Bytes per cached K/V value (llama.cpp's default f16 cache).
KV_BYTES_PER_VALUE = 2
MIB = 1 << 20


def _scalar(meta: Dict[str, Any], key: str) -> Optional[int]:
    value = meta.get(key)
    if isinstance(value, (bool, np.bool_)) or value is None:
        return None
    if isinstance(value, np.ndarray):  # per-layer values (e.g. head_count_kv of OpenELM): the largest
        return int(value.max()) if value.size else None
    return int(value) if isinstance(value, (int, np.integer)) else None


def _per_layer(meta: Dict[str, Any], key: str, n_layer: int) -> Optional[List[int]]:
    value = meta.get(key)
    if isinstance(value, np.ndarray) and value.size == n_layer:
        return [int(v) for v in value]
    one = _scalar(meta, key)
    return None if one is None else [one] * n_layer


def _file_type_name(code: Optional[int]) -> Optional[str]:
    if code is None:
        return None
    try:
        from gguf.constants import LlamaFileType

        return LlamaFileType(code).name.removeprefix("MOSTLY_")
    except (ImportError, ValueError):
        return f"type {code}"


def inspect_gguf(path: Union[str, os.PathLike], ctx: Optional[int] = None,
                 overhead_mib: float = DEFAULT_OVERHEAD_MIB, template_lines: int = 3) -> Dict[str, Any]:
    """Describe a GGUF model (JSON-serialisable dict); tensor data is not read.

    Args:
        path: the .gguf file.
        ctx: context length (tokens) for the RAM estimate; default the model's trained context.
        overhead_mib: assumed runtime overhead in MiB, added to weights and KV cache.
        template_lines: how many leading lines of the chat template to include.

    Raises:
        ModelFormatError: the file is not a well-formed GGUF file (llama.cpp-specific problems are
            reported in ``llama_cpp_ready`` instead).
        InputError: ``ctx`` < 1, negative ``overhead_mib`` or ``template_lines``.
    """
    if ctx is not None and (not isinstance(ctx, int) or ctx < 1):
        raise InputError(f"inspect: ctx must be a positive number of tokens; got {ctx!r}")
    if overhead_mib < 0 or template_lines < 0:
        raise InputError(f"inspect: overhead_mib and template_lines must be >= 0; got {overhead_mib}, {template_lines}")
    with GGUFFile.open(path) as f:
        meta = dict(f.metadata)
        arch_value = meta.get("general.architecture")
        arch = arch_value if isinstance(arch_value, str) and arch_value else None
        types: Dict[str, Dict[str, int]] = {}
        for t in f.tensors.values():
            entry = types.setdefault(t.ggml_type.name, {"tensors": 0, "bytes": 0, "parameters": 0})
            entry["tensors"] += 1
            entry["bytes"] += t.n_bytes
            entry["parameters"] += t.n_elements
        weights = sum(t.n_bytes for t in f.tensors.values())
        params = sum(t.n_elements for t in f.tensors.values())
        version, n_tensors = f.version, len(f.tensors)
    try:
        validate(path)
        ready: Dict[str, Any] = {"ok": True, "reason": None}
    except ModelFormatError as exc:
        ready = {"ok": False, "reason": str(exc)}

    def hparam(key: str) -> Optional[int]:  # hyper-parameters are keyed by architecture: "llama.block_count"
        return _scalar(meta, f"{arch}.{key}") if arch else None

    n_layer, n_embd, n_head = hparam("block_count"), hparam("embedding_length"), hparam("attention.head_count")
    n_ctx_train = hparam("context_length")
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = len(tokens) if isinstance(tokens, list) else hparam("vocab_size")
    head_dim = n_embd // n_head if n_embd and n_head else None
    key_len = hparam("attention.key_length") or head_dim
    value_len = hparam("attention.value_length") or head_dim

    use_ctx = ctx or n_ctx_train
    kv_bytes: Optional[int] = None
    kv_heads = _per_layer(meta, f"{arch}.attention.head_count_kv", n_layer) if arch and n_layer else None
    if kv_heads is None and n_layer and n_head:
        kv_heads = [n_head] * n_layer  # no GQA key: every head has its own K/V
    if use_ctx and kv_heads and key_len and value_len:
        kv_bytes = sum(use_ctx * h * (key_len + value_len) * KV_BYTES_PER_VALUE for h in kv_heads)
    overhead = int(overhead_mib * MIB)

    template = meta.get("tokenizer.chat_template")
    template = template if isinstance(template, str) else None
    return {
        "file": str(path),
        "file_bytes": os.path.getsize(path),
        "gguf_version": version,
        "architecture": arch,
        "name": meta.get("general.name") if isinstance(meta.get("general.name"), str) else None,
        "file_type": _file_type_name(_scalar(meta, "general.file_type")),
        "tensors": n_tensors,
        "parameters": params,
        "weight_bytes": weights,
        "quant_types": dict(sorted(types.items(), key=lambda kv: -kv[1]["bytes"])),
        "context_length": n_ctx_train,
        "embedding_length": n_embd,
        "layers": n_layer,
        "heads": n_head,
        "kv_heads": max(kv_heads) if kv_heads else None,
        "head_dim": key_len,
        "vocab_size": vocab,
        "sliding_window": hparam("attention.sliding_window"),
        "chat_template": {
            "present": template is not None,
            "chars": len(template) if template else 0,
            "first_lines": template.splitlines()[:template_lines] if template else [],
        },
        "llama_cpp_ready": ready,
        "ram_estimate": {
            "ctx": use_ctx,
            "weights_bytes": weights,
            "kv_cache_bytes": kv_bytes,
            "overhead_bytes": overhead,
            "total_bytes": None if kv_bytes is None else weights + kv_bytes + overhead,
            "assumptions": (f"f16 KV cache ({KV_BYTES_PER_VALUE} B/value), full attention on every layer; "
                            f"overhead {overhead_mib:g} MiB assumed for compute buffers, logits and allocator"),
        },
    }


def _mib(n: Optional[int]) -> str:
    return "unknown" if n is None else f"{n / MIB:,.1f} MiB"


def _count(n: Optional[int]) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit} ({n:,})"
    return str(n)


def format_report(r: Dict[str, Any]) -> str:
    """The human-readable form of :func:`inspect_gguf`'s report."""
    lines = [
        f"file           {r['file']} ({_mib(r['file_bytes'])}, GGUF v{r['gguf_version']})",
        f"architecture   {r['architecture'] or 'missing'}" + (f"  ({r['name']})" if r["name"] else ""),
        f"file type      {r['file_type'] or 'not stated'}",
        f"parameters     {_count(r['parameters'])} in {r['tensors']} tensors, {_mib(r['weight_bytes'])}",
        "quantization   " + ("none" if not r["quant_types"] else ""),
    ]
    total = r["weight_bytes"] or 1
    for name, q in r["quant_types"].items():
        lines.append(f"  {name:<8} {q['tensors']:>5} tensors  {_mib(q['bytes']):>14}  {100 * q['bytes'] / total:5.1f}% of bytes")
    heads = "unknown" if r["heads"] is None else f"{r['heads']} (KV {r['kv_heads']}, head dim {r['head_dim']})"
    lines += [
        f"context        {r['context_length'] or 'unknown'} tokens (trained)"
        + (f", sliding window {r['sliding_window']}" if r["sliding_window"] else ""),
        f"embedding      {r['embedding_length'] or 'unknown'}",
        f"layers         {r['layers'] or 'unknown'}",
        f"heads          {heads}",
        f"vocabulary     {r['vocab_size'] or 'unknown'}",
    ]
    t = r["chat_template"]
    if t["present"]:
        lines.append(f"chat template  yes ({t['chars']} chars)")
        lines += [f"  | {line[:100]}" for line in t["first_lines"]]
    else:
        lines.append("chat template  none (completion only)")
    ready = r["llama_cpp_ready"]
    lines.append("llama.cpp      " + ("loadable" if ready["ok"] else f"would refuse: {ready['reason']}"))
    ram = r["ram_estimate"]
    lines += [
        f"RAM at ctx {ram['ctx'] or '?'}: {_mib(ram['total_bytes'])} = weights {_mib(ram['weights_bytes'])}"
        f" + KV cache {_mib(ram['kv_cache_bytes'])} + overhead {_mib(ram['overhead_bytes'])}",
        f"  assumes {ram['assumptions']}",
    ]
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``edge-runtime inspect``."""
    parser.add_argument("file", help="a .gguf model file")
    parser.add_argument("--ctx", type=int, default=None, help="context length for the RAM estimate (default: trained)")
    parser.add_argument("--overhead-mib", type=float, default=DEFAULT_OVERHEAD_MIB,
                        help=f"assumed runtime overhead in MiB (default {DEFAULT_OVERHEAD_MIB})")
    parser.add_argument("--template-lines", type=int, default=3, help="chat template lines to show (default 3)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run_command(args: argparse.Namespace) -> int:
    """Print the report; a malformed file raises ModelFormatError (exit status 2 from the CLI)."""
    report = inspect_gguf(args.file, ctx=args.ctx, overhead_mib=args.overhead_mib, template_lines=args.template_lines)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
