"""HF -> GGUF export, GGUF re-quantization and K-quants, checked by running the files in llama.cpp.

Real weights: all-MiniLM-L6-v2 (BERT) and SmolLM2-135M (its GGUF: the tokenizer of the tiny Llama, and
the perplexity test). The tiny Llama is built offline from a config with seeded random weights and
SmolLM2's real tokenizer, rebuilt as a tokenizer.json from the GGUF's vocab and merges.

Bounds (measured on this machine when written, with margin):
* BERT embeddings vs transformers (mean pooling): cosine >= 0.999 (F16, measured 0.999999), >= 0.99 (Q8_0, 0.9994).
* Tiny Llama next-token logits vs transformers (logit std ~1.3): F32/F16 max |err| <= 0.05 (llama.cpp keeps the
  KV cache in F16; measured 0.009 / 0.017). Q8_0 max <= 0.6, mean <= 0.08 (0.37 / 0.04). Q4_0/Q4_1 against
  transformers running the *dequantized* weights of the same file: max <= 0.6, mean <= 0.1 (what remains is
  llama.cpp's int8 activations), and against the float model mean <= 0.6 (random Gaussian weights are the worst
  case for 4 bits; real weights are proven by the perplexity test).
* SmolLM2 Q4_1 -> dequantize -> our Q8_0: perplexity within 1% of the original's (measured 0.06%).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
torch = pytest.importorskip("torch", reason="the convert extra (torch) is not installed")
pytest.importorskip("transformers", reason="the convert extra (transformers) is not installed")

from edge_runtime.converters.gguf_export import OutType, export_gguf, permute_qk, tensor_type, tokenizer_pre  # noqa: E402
from edge_runtime.converters.gguf_requant import KQuant, quantize_k, requantize  # noqa: E402
from edge_runtime.converters.llm_onnx import load_llama_weights, unpermute_qk  # noqa: E402
from edge_runtime.assets import ensure  # noqa: E402
from edge_runtime.errors import InputError, ModelFormatError  # noqa: E402
from edge_runtime.llm.gguf_file import GGUFFile  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = [
    "A man is eating food.",
    "A man is riding a horse.",
    "The new movie is awesome.",
    "Two people walk along the walkway at dusk.",
    "A cheetah chases its prey across a dry field.",
    "The quick brown fox jumps over the lazy dog.",
    "Parking is not allowed in front of the loading bay between 7 and 10 am.",
    "She counted forty-two bicycles crossing the bridge this morning.",
    "The camera on the gateway lost its connection twice during the storm.",
    "Quantization trades a little accuracy for a smaller, faster model.",
]
PROMPT = ("The walkway camera counted 12 people crossing between 08:00 and 09:30, most of them heading north "
          "towards the station; a few stopped by the café.")


# ------------------------------------------------------------------------------ fixtures (shared)

def write_smollm2_tokenizer(out: Path) -> int:
    """SmolLM2's HF tokenizer files rebuilt from its GGUF (vocab, merges, special tokens, template).

    The tokenizer.json mirrors SmolLM2's published one (byte-level BPE, digits split one by one);
    llama.cpp's pre-tokenizer hash recognising it as ``smollm`` proves the reconstruction.
    """
    with GGUFFile.open(ensure("smollm2-135m")) as f:
        meta = f.metadata
        tokens = list(meta["tokenizer.ggml.tokens"])
        types = np.asarray(meta["tokenizer.ggml.token_type"])
        merges = [m.split(" ") for m in meta["tokenizer.ggml.merges"]]
        template = meta["tokenizer.chat_template"]
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": True} for i, t in enumerate(tokens) if types[i] == 3]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    spec = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                                    byte_level]},
            "post_processor": dict(byte_level, add_prefix_space=True, trim_offsets=False),
            "decoder": dict(byte_level, add_prefix_space=True),
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                      "vocab": {t: i for i, t in enumerate(tokens)}, "merges": merges}}
    (out / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "add_prefix_space": False, "bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>", "chat_template": template,
        "model_max_length": 8192, "tokenizer_class": "GPT2Tokenizer", "clean_up_tokenization_spaces": False}))
    return len(tokens)


def build_tiny_llama(out: Path, *, seed: int = 0, tied: bool = True, layers: int = 2):
    """A Llama (hidden 256, 4 heads / 2 KV heads, seeded N(0, 0.08) weights) saved as safetensors."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out.mkdir(parents=True, exist_ok=True)
    vocab = write_smollm2_tokenizer(out)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5,
                      rope_theta=100000.0, tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.08) if p.dim() > 1 else p.uniform_(0.8, 1.2)
    model.save_pretrained(out, safe_serialization=True)
    return model


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-llama")
    return d, build_tiny_llama(d)


@pytest.fixture(scope="module")
def tiny_ids(tiny_llama):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(tiny_llama[0] / "tokenizer.json")).encode(PROMPT).ids


def llama_cpp_logits(path: Path, ids) -> np.ndarray:
    import llama_cpp

    llm = llama_cpp.Llama(str(path), logits_all=True, n_ctx=256, n_threads=1, verbose=False)
    try:
        llm.eval(list(ids))
        return np.array(llm.scores[:len(ids)], dtype=np.float32)
    finally:
        llm.close()


def hf_logits(model, ids) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([list(ids)])).logits[0].numpy()


# ------------------------------------------------------------------------------------------ BERT

@pytest.fixture(scope="module")
def minilm_reference():
    from transformers import AutoModel, AutoTokenizer

    d = ensure("all-minilm-l6-v2")
    tok, model = AutoTokenizer.from_pretrained(d), AutoModel.from_pretrained(d).eval()
    with torch.no_grad():
        batch = tok(SENTENCES, padding=True, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        emb = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    return d, tok, emb


@pytest.mark.slow
@pytest.mark.parametrize("out_type, min_cos", [("f16", 0.999), ("q8_0", 0.99)])
def test_bert_embeddings_match_transformers(minilm_reference, tmp_path, out_type, min_cos):
    import llama_cpp

    d, tok, ref = minilm_reference
    res = export_gguf(d, tmp_path / f"minilm-{out_type}.gguf", out_type)
    assert res.arch == "bert" and res.tokenizer_pre == "bert-bge"
    llm = llama_cpp.Llama(str(res.path), embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                          n_threads=1, verbose=False)
    try:
        for s in SENTENCES:  # llama.cpp's WordPiece gives the ids of the HF tokenizer
            assert llm.tokenize(s.encode()) == tok(s)["input_ids"], s
        got = np.array([llm.embed(s, normalize=False) for s in SENTENCES])
    finally:
        llm.close()
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= min_cos, cos


def test_bert_metadata_and_tensor_types(tmp_path):
    res = export_gguf(ensure("all-minilm-l6-v2"), tmp_path / "m.gguf", OutType.Q8_0)
    with GGUFFile.open(res.path) as f:
        m = f.metadata
        assert (m["general.architecture"], m["tokenizer.ggml.model"], m["bert.pooling_type"]) == ("bert", "bert", 1)
        assert m["bert.attention.causal"] is False and m["bert.block_count"] == 6
        assert m["tokenizer.ggml.token_type_count"] == 2 and len(m["tokenizer.ggml.tokens"]) == 30522
        tokens = m["tokenizer.ggml.tokens"]
        assert tokens[101] == "[CLS]" and tokens[1037] == "\u2581a"  # phantom-space WordPiece
        types = {n: t.ggml_type.name for n, t in f.tensors.items()}
    assert types["position_embd.weight"] == "F32" and types["token_types.weight"] == "F32"
    assert types["blk.0.attn_q.bias"] == "F32" and types["blk.0.layer_output_norm.weight"] == "F32"
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["token_embd.weight"] == "Q8_0"
    assert "pooler.dense.weight" not in types and len(types) == 101


# ----------------------------------------------------------------------------------------- Llama

def test_rebuilt_tokenizer_is_smollm_and_llama_cpp_tokenizes_alike(tiny_llama, tmp_path):
    import llama_cpp
    from tokenizers import Tokenizer

    d, _ = tiny_llama
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    assert tokenizer_pre(tok) == "smollm"  # llama.cpp's hash of the real SmolLM tokenizer
    res = export_gguf(d, tmp_path / "t.gguf", "f16")
    llm = llama_cpp.Llama(str(res.path), vocab_only=True, verbose=False)
    try:
        for text in [PROMPT, *SENTENCES, "naïve café 3.14159 — 😀 x²", "<|im_start|>user\nHi<|im_end|>"]:
            assert llm.tokenize(text.encode(), add_bos=False, special=True) == tok.encode(text).ids, text
    finally:
        llm.close()
    with GGUFFile.open(res.path) as f:
        m = f.metadata
        assert m["tokenizer.ggml.pre"] == "smollm" and m["tokenizer.ggml.model"] == "gpt2"
        assert (m["tokenizer.ggml.bos_token_id"], m["tokenizer.ggml.eos_token_id"]) == (1, 2)
        assert m["tokenizer.ggml.add_bos_token"] is False and "im_start" in m["tokenizer.chat_template"]
        assert len(m["tokenizer.ggml.merges"]) == 48900
        assert m["llama.attention.head_count_kv"] == 2 and m["llama.rope.freq_base"] == 100000.0


@pytest.mark.parametrize("out_type, max_err, mean_err", [("f32", 0.05, 0.005), ("f16", 0.05, 0.005),
                                                         ("q8_0", 0.6, 0.08)])
def test_llama_logits_match_transformers(tiny_llama, tiny_ids, tmp_path, out_type, max_err, mean_err):
    d, model = tiny_llama
    ref = hf_logits(model, tiny_ids)
    got = llama_cpp_logits(export_gguf(d, tmp_path / "t.gguf", out_type).path, tiny_ids)
    err = np.abs(got - ref)
    assert err.max() <= max_err and err.mean() <= mean_err, (err.max(), err.mean())
    # Where the float model is not near a tie, the next token is the same.
    top2 = np.sort(ref, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 2 * max_err
    assert (got.argmax(1) == ref.argmax(1))[clear].all()


@pytest.mark.parametrize("out_type", ["q4_0", "q4_1"])
def test_llama_q4_logits(tiny_llama, tiny_ids, tmp_path, out_type):
    from transformers import LlamaForCausalLM

    d, model = tiny_llama
    res = export_gguf(d, tmp_path / "t.gguf", out_type)
    assert res.tensor_types == {out_type.upper(): 14, "Q8_0": 1, "F32": 5}  # tied embedding -> Q8_0
    got = llama_cpp_logits(res.path, tiny_ids)
    # Same numbers in transformers: the file's weights dequantized, Q/K rows un-permuted.
    w = load_llama_weights(res.path)
    deq = LlamaForCausalLM(model.config).eval()
    deq.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in w.tensors.items()}, strict=False)
    deq.tie_weights()
    err_deq = np.abs(got - hf_logits(deq, tiny_ids))
    assert err_deq.max() <= 0.6 and err_deq.mean() <= 0.1, (err_deq.max(), err_deq.mean())
    assert np.abs(got - hf_logits(model, tiny_ids)).mean() <= 0.6


def test_qwen2_with_biases_and_untied_head(tmp_path):
    from tokenizers import Tokenizer
    from transformers import Qwen2Config, Qwen2ForCausalLM

    d = tmp_path / "qwen2"
    d.mkdir()
    vocab = write_smollm2_tokenizer(d)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-6,
                      rope_theta=1000000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():  # biases in [-0.2, 0.2], norms near 1
            p.normal_(0, 0.08) if p.dim() > 1 else p.uniform_(0.8, 1.2) if "norm" in name else p.uniform_(-0.2, 0.2)
    model.save_pretrained(d, safe_serialization=True)
    res = export_gguf(d, tmp_path / "q.gguf", "f16")
    assert res.arch == "qwen2" and res.tensor_types == {"F16": 16, "F32": 11}  # Q/K/V biases stay F32
    ids = Tokenizer.from_file(str(d / "tokenizer.json")).encode(PROMPT).ids
    err = np.abs(llama_cpp_logits(res.path, ids) - hf_logits(model, ids))
    assert err.max() <= 0.05 and err.mean() <= 0.005, (err.max(), err.mean())  # no Q/K permutation for qwen2


def test_untied_output_rules(tmp_path):
    d = tmp_path / "untied"
    build_tiny_llama(d, tied=False, layers=1)
    res = export_gguf(d, tmp_path / "u.gguf", "q4_0")
    with GGUFFile.open(res.path) as f:
        types = {n: t.ggml_type.name for n, t in f.tensors.items()}
    assert types["output.weight"] == "Q8_0" and types["token_embd.weight"] == "Q4_0"
    assert types["blk.0.attn_norm.weight"] == "F32" and types["blk.0.ffn_down.weight"] == "Q4_0"


def test_tensor_type_rules_fallback_and_norms():
    from gguf import GGMLQuantizationType as T

    assert tensor_type("blk.0.attn_q.weight", (64, 48), OutType.Q4_0, tied_output=False) == T.F16  # 48 % 32
    assert tensor_type("blk.0.attn_q.bias", (64,), OutType.Q8_0, tied_output=False) == T.F32
    assert tensor_type("output_norm.weight", (64,), OutType.F16, tied_output=True) == T.F32
    assert tensor_type("token_embd.weight", (100, 64), OutType.Q4_1, tied_output=True) == T.Q8_0


@pytest.mark.parametrize("rows, cols, heads", [(8, 3, 2), (64, 5, 4), (12, 1, 3), (4, 0, 1)])
def test_permute_qk_round_trip(rows, cols, heads):
    w = np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
    p = permute_qk(w, heads)
    hd = rows // heads
    # ggml order within a head: row 2j is HF row j, row 2j+1 is HF row j + hd/2.
    assert np.array_equal(p[0::2][: hd // 2], w[: hd // 2]) and np.array_equal(p[1::2][: hd // 2], w[hd // 2: hd])
    assert np.array_equal(unpermute_qk(p, heads), w)
    with pytest.raises(ModelFormatError):
        permute_qk(np.zeros((6, 2), np.float32), 2)


# ------------------------------------------------------------------------------------- re-quant

TEXT = (
    "The lighthouse stood at the end of a narrow spit of land, where the river met the sea. For more than a "
    "century its keepers had climbed the spiral stairs every evening to light the lamp, trim the wick and polish "
    "the great lens until it shone. Ships coming in from the open water looked for its beam long before they could "
    "see the coast, and the fishermen of the village said that they could tell the season by the colour of the "
    "light through the fog. In winter the storms came from the north, and waves broke over the rocks with such "
    "force that the whole tower seemed to tremble. The keeper's children learned to sleep through the noise. In "
    "summer the sea was calm and blue, and visitors walked out along the path to eat their lunch on the grass "
    "below the tower and watch the boats return with their catch. When the lamp was finally automated, the last "
    "keeper moved into a small house in the village. He still walked out to the point every evening, out of "
    "habit, and stood for a while watching the beam sweep across the water, counting the seconds between "
    "flashes as he had done for forty years.")


def perplexity(path: Path) -> float:
    import llama_cpp

    llm = llama_cpp.Llama(str(path), logits_all=True, n_ctx=512, n_threads=2, verbose=False)
    try:
        ids = llm.tokenize(TEXT.encode(), add_bos=False)
        llm.eval(ids)
        logits = np.array(llm.scores[:len(ids)], dtype=np.float64)
    finally:
        llm.close()
    top = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
    return float(np.exp((lse[:-1] - logits[np.arange(len(ids) - 1), ids[1:]]).mean()))


@pytest.mark.slow
def test_smollm2_requantized_to_q8_0_keeps_perplexity(tmp_path):
    src = ensure("smollm2-135m")
    res = requantize(src, tmp_path / "smollm2-q8_0.gguf", "q8_0", threads=2)
    assert res.tensor_types == {"Q8_0": 211, "F32": 61} and res.copied == 62  # embedding (Q8_0) + norms kept
    with GGUFFile.open(src) as a, GGUFFile.open(res.path) as b:
        assert list(a.tensors) == list(b.tensors)
        assert b.metadata["general.file_type"] == 7
        for key, value in a.metadata.items():
            if key != "general.file_type":
                assert np.array_equal(np.asarray(b.metadata[key], dtype=object), np.asarray(value, dtype=object)), key
        assert np.array_equal(a.tensor("token_embd.weight"), b.tensor("token_embd.weight"))
    ppl_src, ppl_q8 = perplexity(src), perplexity(res.path)
    assert 5 < ppl_src < 100
    assert abs(ppl_q8 - ppl_src) / ppl_src <= 0.01, (ppl_src, ppl_q8)


@pytest.mark.slow
def test_k_quants_through_llama_cpp(tiny_llama, tiny_ids, tmp_path):
    d, model = tiny_llama
    f16 = export_gguf(d, tmp_path / "t-f16.gguf", "f16").path
    ref = hf_logits(model, tiny_ids)
    errs = {}
    for kq, ftype in [(KQuant.Q6_K, 18), (KQuant.Q5_K_M, 17), (KQuant.Q4_K_M, 15)]:
        out = quantize_k(f16, tmp_path / f"t-{kq.value}.gguf", kq, threads=1)
        with GGUFFile.open(out) as f:
            assert f.metadata["general.file_type"] == ftype
            assert {t.ggml_type.name for t in f.tensors.values()} >= {kq.value[:4]}
        errs[kq] = float(np.abs(llama_cpp_logits(out, tiny_ids) - ref).mean())
    assert errs[KQuant.Q6_K] < errs[KQuant.Q5_K_M] < errs[KQuant.Q4_K_M] <= 0.5, errs
    q8 = export_gguf(d, tmp_path / "t-q8.gguf", "q8_0").path
    with pytest.raises(ModelFormatError, match="already holds quantized"):
        quantize_k(q8, tmp_path / "never.gguf")
    assert not (tmp_path / "never.gguf").exists()


# ------------------------------------------------------------------------------------- bad input

def _copy_dir(src: Path, dst: Path, skip=()) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        if p.is_file() and p.name not in skip:
            (dst / p.name).write_bytes(p.read_bytes())
    return dst


@pytest.mark.parametrize("missing, message", [("config.json", "no config.json"),
                                              ("model.safetensors", "no \\*.safetensors"),
                                              ("tokenizer.json", "no tokenizer.json")])
def test_incomplete_checkpoint_is_refused_without_output(tiny_llama, tmp_path, missing, message):
    d = _copy_dir(tiny_llama[0], tmp_path / "ck", skip=(missing,))
    with pytest.raises(ModelFormatError, match=message):
        export_gguf(d, tmp_path / "out.gguf", "f16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # nothing half-written


def test_unsupported_architecture_and_bad_arguments(tiny_llama, tmp_path):
    d = _copy_dir(tiny_llama[0], tmp_path / "ck")
    cfg = json.loads((d / "config.json").read_text())
    with pytest.raises(InputError, match="out_type"):
        export_gguf(d, tmp_path / "o.gguf", "q5_k")
    with pytest.raises(InputError, match="not a directory"):
        export_gguf(d / "config.json", tmp_path / "o.gguf")
    (d / "config.json").write_text(json.dumps(dict(cfg, architectures=["GPT2LMHeadModel"])))
    with pytest.raises(ModelFormatError, match="GPT2LMHeadModel.*not supported"):
        export_gguf(d, tmp_path / "o.gguf")
    (d / "config.json").write_text("{not json")
    with pytest.raises(ModelFormatError, match="JSON"):
        export_gguf(d, tmp_path / "o.gguf")


def test_missing_layer_tensor_and_hostile_safetensors(tiny_llama, tmp_path):
    d = _copy_dir(tiny_llama[0], tmp_path / "ck")
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(dict(cfg, num_hidden_layers=3)))  # the weights have 2
    with pytest.raises(ModelFormatError, match="lack .* tensor"):
        export_gguf(d, tmp_path / "o.gguf")
    (d / "config.json").write_text(json.dumps(cfg))
    blob = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40) + blob[8:])  # header size past the end
    with pytest.raises(ModelFormatError, match="header size"):
        export_gguf(d, tmp_path / "o.gguf")
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"][1] += 4  # claims more bytes than its shape holds
    raw = json.dumps(header).encode()
    (d / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw + blob[8 + n:])
    with pytest.raises(ModelFormatError, match=name):
        export_gguf(d, tmp_path / "o.gguf")
    assert not (tmp_path / "o.gguf").exists()


def test_nonfinite_weights_are_refused(tiny_llama, tmp_path):
    from safetensors.numpy import load_file, save_file

    d = _copy_dir(tiny_llama[0], tmp_path / "ck")
    tensors = load_file(str(d / "model.safetensors"))
    tensors["model.layers.1.mlp.up_proj.weight"][3, 5] = np.nan
    save_file(tensors, str(d / "model.safetensors"))
    for out_type in ("f16", "q4_0"):
        with pytest.raises(ModelFormatError, match="blk.1.ffn_up.weight"):
            export_gguf(d, tmp_path / "o.gguf", out_type)
    assert not (tmp_path / "o.gguf").exists()


def test_requantize_refuses_bad_input(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 1 << 40, 0))
    with pytest.raises(ModelFormatError):
        requantize(bad, tmp_path / "o.gguf", "q8_0")
    with pytest.raises(ModelFormatError):
        quantize_k(bad, tmp_path / "o.gguf")
    with pytest.raises(ModelFormatError, match="does not exist"):
        requantize(tmp_path / "nope.gguf", tmp_path / "o.gguf", "q8_0")
    with pytest.raises(InputError, match="qtype"):
        quantize_k(bad, tmp_path / "o.gguf", "Q9_K")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.gguf"]
