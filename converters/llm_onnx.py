"""Llama-architecture LLM -> ONNX with a KV cache -> 4-bit weights (MatMulNBits), compared with GGUF.

Chosen path: our own PyTorch forward of the Llama architecture, exported with ``torch.onnx.export``
(dynamo, through :func:`converters.torch_export.export_torch`, which verifies the ONNX against PyTorch),
then ONNX Runtime's ``MatMulNBitsQuantizer`` (through :func:`converters.quantize.quantize_weight_only`).
onnxruntime-genai's model builder was the alternative; it was not taken because its wheel pins its own
onnxruntime (it would replace the runtime the camera pipeline is tested with), has no wheel for the Pi
(ANCHORS.md) and rebuilds the graph from transformers internals that change between releases - our
graph is ~80 lines we can read, and the same code takes weights from a HF folder or straight from a GGUF.

The graph (batch 1; S new tokens, P cached positions, L layers, KV heads ``n_kv``, head size ``hd``):

    inputs   input_ids (1, S) int64, past_key_{i} / past_value_{i} (1, n_kv, P, hd) float32, i < L
    outputs  logits (1, S, vocab) float32, present_key_{i} / present_value_{i} (1, n_kv, P + S, hd)

Positions are ``P .. P + S - 1`` (read from the past's shape), the causal mask is built in the graph, so
prefill (P = 0) and decoding (S = 1) are the same model. Every projection is ``x @ W`` with ``W`` a
``(in, out)`` initializer, the form the 4-bit quantizer rewrites. The LM head is quantized separately
(8-bit by default): llama.cpp keeps it at Q8_0/Q6_K for the same reason - it is the most sensitive
matrix - so the comparison with a Q4 GGUF is like for like.

Weights from a GGUF are dequantized (gguf-py or our native kernels) and Q/K rows are put back from
ggml's interleaved RoPE order to HF's rotate-half order, so a GGUF and its ONNX run the same numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_runtime.errors import BackendUnavailableError, InputError, ModelFormatError

from ._io import atomic_output
from .quantize import AccuracyLevel, load_onnx, quantize_weight_only
from .verify import Bound

__all__ = ["LlamaWeights", "load_llama_weights", "export_llm_onnx", "quantize_llm_onnx", "convert_llm_onnx", "OnnxLlm",
           "compare_with_gguf", "unpermute_qk"]

PathLike = Union[str, Path]
_HF_ARCHS = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama"}


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError("the LLM ONNX export needs torch: pip install 'edge-runtime[convert]'") from exc
    return torch


@dataclass
class LlamaWeights:
    """Hyper-parameters and float32 weights of a Llama model, HF names and layouts.

    Attributes:
        hidden, n_layers, n_head, n_kv, head_dim, ffn, vocab, context: sizes.
        rms_eps: RMSNorm epsilon. rope_theta: RoPE base.
        tensors: HF name (``model.layers.0.self_attn.q_proj.weight``...) -> (out, in) float32 array;
            ``lm_head.weight`` absent when tied to the embedding.
        source: where they came from.
    """

    hidden: int
    n_layers: int
    n_head: int
    n_kv: int
    head_dim: int
    ffn: int
    vocab: int
    context: int
    rms_eps: float
    rope_theta: float
    tensors: Dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    source: str = ""

    @property
    def lm_head(self) -> np.ndarray:
        return self.tensors.get("lm_head.weight", self.tensors["model.embed_tokens.weight"])


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of :func:`converters.gguf_export.permute_qk`: ggml RoPE row order -> HF rotate-half."""
    if w.shape[0] % (2 * n_head):
        raise ModelFormatError(f"Q/K tensor of shape {w.shape}: rows not divisible by 2 x {n_head} heads")
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


_GGUF_TO_HF = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
               "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
               "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
               "ffn_down": "mlp.down_proj"}


def _from_gguf(path: Path) -> LlamaWeights:
    from edge_runtime.llm.gguf_file import GGUFFile, validate

    from .gguf_requant import _dequantize

    validate(path)
    with GGUFFile.open(path) as f:
        arch, meta = f.architecture, f.metadata
        if arch != "llama":
            raise ModelFormatError(f"{path}: architecture {arch!r}; the LLM ONNX export handles 'llama' only")

        def key(k: str, cast=int):
            v = meta.get(f"llama.{k}")
            if v is None:
                raise ModelFormatError(f"{path}: metadata llama.{k} is missing")
            return cast(v)

        scaling = meta.get("llama.rope.scaling.type")
        if scaling not in (None, "none") or "rope_freqs.weight" in f.tensors:
            raise ModelFormatError(f"{path}: RoPE scaling ({scaling or 'rope_freqs'}) is not supported "
                                   "by the ONNX export")
        hidden, n_head = key("embedding_length"), key("attention.head_count")
        n_kv = int(meta.get("llama.attention.head_count_kv", n_head))
        head_dim = int(meta.get("llama.rope.dimension_count", hidden // n_head))
        tensors: Dict[str, np.ndarray] = {}
        for name, info in f.tensors.items():
            w = _dequantize(f.tensor(name), int(info.ggml_type), info.shape).reshape(info.shape)
            if name == "token_embd.weight":
                tensors["model.embed_tokens.weight"] = w
            elif name == "output.weight":
                tensors["lm_head.weight"] = w
            elif name == "output_norm.weight":
                tensors["model.norm.weight"] = w
            elif name.startswith("blk."):
                _, bid, kind, _ = name.split(".", 3)
                if kind not in _GGUF_TO_HF:
                    raise ModelFormatError(f"{path}: tensor {name!r} is not part of a plain Llama block")
                if kind == "attn_q":
                    w = unpermute_qk(w, n_head)
                elif kind == "attn_k":
                    w = unpermute_qk(w, n_kv)
                tensors[f"model.layers.{bid}.{_GGUF_TO_HF[kind]}.weight"] = w
            else:
                raise ModelFormatError(f"{path}: unexpected tensor {name!r} for a Llama model")
        emb = tensors.get("model.embed_tokens.weight")
        if emb is None:
            raise ModelFormatError(f"{path}: no token_embd.weight")
        return LlamaWeights(hidden, key("block_count"), n_head, n_kv, head_dim, key("feed_forward_length"),
                            emb.shape[0], key("context_length"), key("attention.layer_norm_rms_epsilon", float),
                            float(meta.get("llama.rope.freq_base", 10000.0)), tensors, str(path))


def load_llama_weights(source: PathLike) -> LlamaWeights:
    """Llama weights from a HF checkpoint folder or a ``llama`` GGUF file (dequantized).

    Raises:
        ModelFormatError: not a Llama model, RoPE scaling, missing tensors or metadata, or a folder
            without config.json / safetensors / tokenizer.json.
    """
    from .hf_checkpoint import read_hf_checkpoint

    p = Path(source)
    if p.is_file():
        w = _from_gguf(p)
    else:
        ck = read_hf_checkpoint(p, _HF_ARCHS, where="llm_onnx")
        rope = ck.rope
        if str(rope.get("rope_type") or "default") != "default":
            raise ModelFormatError(f"{p}: RoPE type {rope.get('rope_type')!r} is not supported by the ONNX export")
        if ck.config.get("attention_bias") or ck.config.get("mlp_bias"):
            raise ModelFormatError(f"{p}: attention/MLP biases are not supported by the ONNX export")
        hidden, n_head = int(ck.hparam("hidden_size")), int(ck.hparam("num_attention_heads"))
        tensors = {n: np.ascontiguousarray(ck.weights.load(n), dtype=np.float32) for n in ck.weights.names()
                   if not n.endswith("rotary_emb.inv_freq")}
        w = LlamaWeights(hidden, int(ck.hparam("num_hidden_layers")), n_head,
                         int(ck.hparam("num_key_value_heads", default=n_head, required=False)),
                         int(ck.config.get("head_dim") or hidden // n_head), int(ck.hparam("intermediate_size")),
                         int(ck.hparam("vocab_size")), int(ck.hparam("max_position_embeddings")),
                         float(ck.hparam("rms_norm_eps")), float(rope.get("rope_theta", 10000.0)), tensors, str(p))
    need = ["model.embed_tokens.weight", "model.norm.weight"] + [
        f"model.layers.{i}.{v}.weight" for i in range(w.n_layers) for v in _GGUF_TO_HF.values()]
    missing = [n for n in need if n not in w.tensors]
    if missing:
        raise ModelFormatError(f"{source}: {len(missing)} Llama tensor(s) missing, e.g. {missing[:3]}")
    return w


def _decoder_module(w: LlamaWeights):
    """The PyTorch forward the ONNX graph is exported from (see the module docstring for its I/O)."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional
    t = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in w.tensors.items()}  # writable copies

    def param(x):
        return nn.Parameter(x.contiguous(), requires_grad=False)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = param(t["model.embed_tokens.weight"])
            self.lm_head = param(torch.from_numpy(np.ascontiguousarray(w.lm_head.T)))  # (hidden, vocab)
            self.norm = param(t["model.norm.weight"])
            self.layers = nn.ParameterList()
            for i in range(w.n_layers):
                pre = f"model.layers.{i}."
                for name in ("input_layernorm", "post_attention_layernorm"):
                    self.layers.append(param(t[pre + name + ".weight"]))
                for name in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
                    self.layers.append(param(t[pre + name + ".weight"].T))  # (in, out): x @ W
            inv = 1.0 / (w.rope_theta ** (torch.arange(0, w.head_dim, 2, dtype=torch.float64) / w.head_dim))
            self.register_buffer("inv_freq", inv.float(), persistent=False)

        def rms(self, x, g):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + w.rms_eps) * g

        def run(self, input_ids, past):
            S, P = input_ids.shape[1], past[0].shape[2]
            x = F.embedding(input_ids, self.embed)
            pos = torch.arange(S, device=x.device, dtype=torch.float32) + P
            freqs = pos[:, None] * self.inv_freq[None, :]
            emb = torch.cat([freqs, freqs], dim=-1)
            cos, sin = emb.cos()[None, None], emb.sin()[None, None]
            keys = torch.arange(P + S, device=x.device)[None, :]
            allowed = keys <= (torch.arange(S, device=x.device)[:, None] + P)
            mask = torch.where(allowed, 0.0, torch.finfo(torch.float32).min)
            group, hd, outs = w.n_head // w.n_kv, w.head_dim, []
            for i in range(w.n_layers):
                g1, g2, wq, wk, wv, wo, wg, wu, wd = self.layers[9 * i: 9 * i + 9]
                h = self.rms(x, g1)
                q = (h @ wq).view(1, S, w.n_head, hd).transpose(1, 2)
                k = (h @ wk).view(1, S, w.n_kv, hd).transpose(1, 2)
                v = (h @ wv).view(1, S, w.n_kv, hd).transpose(1, 2)
                q = q * cos + torch.cat([-q[..., hd // 2:], q[..., :hd // 2]], dim=-1) * sin
                k = k * cos + torch.cat([-k[..., hd // 2:], k[..., :hd // 2]], dim=-1) * sin
                k = torch.cat([past[2 * i], k], dim=2)
                v = torch.cat([past[2 * i + 1], v], dim=2)
                outs += [k, v]
                kk = k.repeat_interleave(group, dim=1) if group > 1 else k
                vv = v.repeat_interleave(group, dim=1) if group > 1 else v
                att = torch.softmax((q @ kk.transpose(-1, -2)) * (1.0 / math.sqrt(hd)) + mask, dim=-1)
                x = x + (att @ vv).transpose(1, 2).reshape(1, S, w.n_head * hd) @ wo
                h = self.rms(x, g2)
                x = x + (F.silu(h @ wg) * (h @ wu)) @ wd
            return (self.rms(x, self.norm) @ self.lm_head, *outs)

    # torch.export needs one named parameter per graph input (a *past tuple would become one input).
    names = _io_names(w.n_layers)[0]
    namespace: Dict[str, Any] = {}
    exec(f"def forward(self, {', '.join(names)}):\n"
         f"    return self.run(input_ids, ({', '.join(names[1:])},))\n", namespace)
    Decoder.forward = namespace["forward"]
    return Decoder().eval()


def _io_names(n_layers: int) -> Tuple[List[str], List[str]]:
    past = [f"past_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]
    present = [f"present_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]
    return ["input_ids", *past], ["logits", *present]


def export_llm_onnx(source: PathLike, dst: PathLike, *, bound: Bound = Bound(max_abs_err=1e-3), threads: int = 1):
    """Export a Llama model (HF folder or GGUF) to an fp32 ONNX decoder with a KV cache, verified.

    The ONNX is checked against the PyTorch forward on a prefill and on random cached steps
    (:func:`converters.torch_export.export_torch`), to ``bound`` on the logits and caches.

    Returns:
        ``converters.torch_export.ExportResult``.

    Raises:
        ModelFormatError: see :func:`load_llama_weights`; AccuracyError: the export is not faithful.
    """
    torch = _torch()
    from .torch_export import Axis, export_torch

    w = load_llama_weights(source)
    module = _decoder_module(w)
    ins, outs = _io_names(w.n_layers)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(0, w.vocab, size=(1, 3)).astype(np.int64))
    past = [torch.zeros(1, w.n_kv, 2, w.head_dim) for _ in range(2 * w.n_layers)]
    axes = {"input_ids": {1: Axis("seq", 1, w.context)}}
    axes.update({n: {2: Axis("past", 1, w.context)} for n in ins[1:]})
    # The example has P = 2: torch.export specializes sizes 0 and 1, so an empty cache (prefill, P = 0)
    # cannot be the example; ONNX Runtime runs P = 0 through the same graph (tested).
    return export_torch(module, (ids, *past), dst, input_names=ins, output_names=outs, dynamic_axes=axes,
                        bound=bound, threads=threads, n_random=2)


def quantize_llm_onnx(src: PathLike, dst: PathLike, *, block_size: int = 32,
                      accuracy_level: AccuracyLevel = AccuracyLevel.INT8, lm_head_bits: int = 8) -> Path:
    """4-bit block weights for every projection, ``lm_head_bits`` (8, 4 or 32 = float) for the LM head.

    Raises:
        ConfigError: bad block size / accuracy level / bits. ModelFormatError: ``src`` is not an LLM
        exported by :func:`export_llm_onnx` (no MatMul feeding ``logits``).
    """
    if lm_head_bits not in (4, 8, 32):
        raise InputError(f"quantize_llm_onnx: lm_head_bits must be 4, 8 or 32, got {lm_head_bits!r}")
    model = load_onnx(src, where="quantize_llm_onnx")
    head = [n.name for n in model.graph.node if n.op_type == "MatMul" and "logits" in n.output]
    if not head:
        producers = {o: n for n in model.graph.node for o in n.output}
        node = producers.get("logits")
        if node is None or node.op_type != "MatMul":
            raise ModelFormatError(f"quantize_llm_onnx: {src}: no MatMul produces 'logits'; "
                                   "export it with export_llm_onnx")
        head = [node.name]
    del model
    if lm_head_bits == 4:
        return quantize_weight_only(src, dst, bits=4, block_size=block_size, accuracy_level=accuracy_level)
    with atomic_output(dst, where="quantize_llm_onnx") as tmp:
        mid = tmp.with_name(tmp.stem + ".body.onnx")
        quantize_weight_only(src, mid, bits=4, block_size=block_size, accuracy_level=accuracy_level,
                             nodes_to_exclude=head)
        if lm_head_bits == 8:
            quantize_weight_only(mid, tmp, bits=8, block_size=block_size, accuracy_level=accuracy_level)
        else:
            mid.replace(tmp)
        mid.unlink(missing_ok=True)
    return Path(dst)


class OnnxLlm:
    """Greedy decoding with an ONNX decoder from :func:`export_llm_onnx` (fp32 or quantized).

    Args:
        path: the .onnx file. threads: ONNX Runtime intra-op threads.
    """

    def __init__(self, path: PathLike, *, threads: int = 1):
        from .verify import open_session

        self.session = open_session(path, threads=threads)
        self.inputs = [i.name for i in self.session.get_inputs()]
        shape = self.session.get_inputs()[1].shape if len(self.inputs) > 1 else None
        if self.inputs[0] != "input_ids" or shape is None or len(shape) != 4:
            raise ModelFormatError(f"{path}: not an LLM decoder from export_llm_onnx (inputs {self.inputs[:3]}...)")
        self.n_kv, self.head_dim = int(shape[1]), int(shape[3])

    def empty_cache(self) -> List[np.ndarray]:
        return [np.zeros((1, self.n_kv, 0, self.head_dim), np.float32) for _ in self.inputs[1:]]

    def step(self, ids: Sequence[int], cache: List[np.ndarray]) -> Tuple[np.ndarray, List[np.ndarray]]:
        """Run ``ids`` after ``cache``; returns (logits (len(ids), vocab), new cache)."""
        feed = {"input_ids": np.asarray(ids, dtype=np.int64).reshape(1, -1)}
        feed.update(zip(self.inputs[1:], cache))
        out = self.session.run(None, feed)
        return out[0][0], out[1:]

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Logits (len(ids), vocab) of a whole sequence, one prefill."""
        return self.step(ids, self.empty_cache())[0]

    def greedy(self, prompt: Sequence[int], n_new: int) -> Tuple[List[int], Dict[str, float]]:
        """Greedy tokens after ``prompt`` and timings (ttft_s, decode tokens_per_s)."""
        t0 = time.perf_counter()
        logits, cache = self.step(prompt, self.empty_cache())
        tokens = [int(logits[-1].argmax())]
        t1 = time.perf_counter()
        for _ in range(n_new - 1):
            logits, cache = self.step(tokens[-1:], cache)
            tokens.append(int(logits[-1].argmax()))
        t2 = time.perf_counter()
        return tokens, {"ttft_s": t1 - t0, "tokens_per_s": (n_new - 1) / (t2 - t1) if n_new > 1 else 0.0}


def compare_with_gguf(onnx_path: PathLike, gguf_path: PathLike, prompt: Sequence[int], *, n_new: int = 32,
                      threads: int = 1) -> Dict[str, Any]:
    """Next-token logits and decode speed of an ONNX decoder vs llama.cpp on a GGUF, same prompt.

    llama.cpp decodes ``n_new`` greedy tokens; the ONNX model is then fed the same sequence (teacher
    forcing), so their logits are compared position by position; each side's own greedy decode is timed.

    Returns:
        dict with ``max_abs_logit_err``, ``mean_abs_logit_err``, ``argmax_agreement`` (over the
        ``n_new`` generated positions), ``onnx_tokens_per_s``, ``gguf_tokens_per_s``, ``logit_std``.
    """
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendUnavailableError("comparing with GGUF needs llama-cpp-python (the llm extra)") from exc
    prompt = [int(t) for t in prompt]
    if not prompt or n_new < 2:
        raise InputError(f"compare_with_gguf: need a non-empty prompt and n_new >= 2, got {len(prompt)}, {n_new}")
    llm = llama_cpp.Llama(str(gguf_path), n_ctx=len(prompt) + n_new + 8, n_threads=threads,
                          n_threads_batch=threads, logits_all=True, verbose=False)
    try:
        llm.eval(prompt)
        gen: List[int] = []
        t1 = time.perf_counter()
        for _ in range(n_new):
            gen.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
            if len(gen) < n_new:
                llm.eval(gen[-1:])
        gguf_tps = (n_new - 1) / (time.perf_counter() - t1)
        ref = np.array(llm.scores[len(prompt) - 1: len(prompt) - 1 + n_new], dtype=np.float32)
    finally:
        llm.close()
    onnx = OnnxLlm(onnx_path, threads=threads)
    got = onnx.logits(prompt + gen[:-1])[len(prompt) - 1:]
    _, timing = onnx.greedy(prompt, n_new)
    err = np.abs(got - ref)
    return {"max_abs_logit_err": float(err.max()), "mean_abs_logit_err": float(err.mean()),
            "argmax_agreement": float((got.argmax(1) == ref.argmax(1)).mean()), "logit_std": float(ref.std()),
            "onnx_tokens_per_s": timing["tokens_per_s"], "gguf_tokens_per_s": gguf_tps, "n_new": n_new,
            "prompt_tokens": len(prompt)}


_REPORT_PROMPT = ("The camera over the walkway counted the people who crossed the line this morning, and the "
                  "assistant was asked to summarise what it saw in two sentences.")


def _prompt_ids(source: Path, text: str) -> List[int]:
    if source.is_file():
        import llama_cpp

        llm = llama_cpp.Llama(str(source), vocab_only=True, verbose=False)
        try:
            return llm.tokenize(text.encode(), add_bos=False)
        finally:
            llm.close()
    from .gguf_export import _load_tokenizer

    return _load_tokenizer(source / "tokenizer.json").encode(text).ids


def convert_llm_onnx(source: PathLike, out_dir: PathLike, *, stem: Optional[str] = None, block_size: int = 32,
                     accuracy_level: AccuracyLevel = AccuracyLevel.INT8, lm_head_bits: int = 8,
                     compare_gguf: Optional[PathLike] = None, threads: int = 1):
    """The whole LLM path: fp32 ONNX (verified) -> 4-bit ONNX -> measured against fp32 and a GGUF.

    Args:
        source: HF Llama folder or a ``llama`` GGUF.
        out_dir: existing folder for ``STEM-fp32.onnx``, ``STEM-q4.onnx`` and ``STEM.report.{json,md}``.
        stem: file stem (default: the source's name).
        block_size, accuracy_level, lm_head_bits: see :func:`quantize_llm_onnx`.
        compare_gguf: a GGUF of the same weights to compare logits and tokens/s with (default: the
            source itself when it is a GGUF).
        threads: ONNX Runtime / llama.cpp threads for the measurements.

    Returns:
        the written ``converters.report.ConversionReport``.
    """
    from ._io import file_size
    from .report import ConversionReport, ModelEntry, QuantScheme
    from .verify import compare_outputs

    source, out = Path(source), Path(out_dir)
    if not out.is_dir():
        raise InputError(f"convert_llm_onnx: output folder {str(out)!r} does not exist; create it first")
    stem = stem or source.stem.split(".")[0]
    fp32 = export_llm_onnx(source, out / f"{stem}-fp32.onnx", threads=threads)
    q4 = quantize_llm_onnx(fp32.path, out / f"{stem}-q4.onnx", block_size=block_size,
                           accuracy_level=accuracy_level, lm_head_bits=lm_head_bits)
    ids = _prompt_ids(source, _REPORT_PROMPT)
    ref = OnnxLlm(fp32.path, threads=threads).logits(ids)
    got = OnnxLlm(q4, threads=threads).logits(ids)
    report = ConversionReport(title=f"{source.name} -> ONNX decoder (KV cache) fp32 + 4-bit", source=str(source),
                              threads=threads)
    report.models.append(ModelEntry("fp32", str(fp32.path), QuantScheme.FP32, fp32.size_bytes, reference="torch",
                                    metrics=fp32.metrics, bound=fp32.bound))
    entry = ModelEntry("q4", str(q4), QuantScheme.INT4_WEIGHT_ONLY, file_size(q4),
                       metrics=compare_outputs([ref], [got], ["logits"]),
                       task_metrics={"argmax_agreement_vs_fp32": float((ref.argmax(1) == got.argmax(1)).mean())},
                       settings={"block_size": block_size, "accuracy_level": int(accuracy_level),
                                 "lm_head_bits": lm_head_bits, "prompt_tokens": len(ids)})
    target = Path(compare_gguf) if compare_gguf else (source if source.is_file() else None)
    if target is not None:
        cmp = compare_with_gguf(q4, target, ids, n_new=32, threads=threads)
        entry.task_metrics.update({f"vs_gguf_{k}": float(v) for k, v in cmp.items()})
        report.notes.append(f"GGUF compared: {target.name} (teacher-forced on llama.cpp's 32 greedy tokens)")
    report.models.append(entry)
    report.notes.append("4-bit: MatMulNBits (ONNX Runtime), RTN symmetric blocks along K; the LM head "
                        f"{'kept in float' if lm_head_bits == 32 else f'at {lm_head_bits} bits'}")
    report.write(out, stem)
    return report
