"""Llama -> ONNX decoder with KV cache -> 4-bit MatMulNBits, against transformers and against llama.cpp.

The model is the seeded tiny Llama of test_convert_gguf (SmolLM2's real tokenizer, 2 layers, GQA 4/2).
Bounds (measured when written, with margin; logit std ~1.3):
* fp32 ONNX vs transformers: max |err| <= 1e-4 (measured 9e-6), prefill and cached steps alike.
* 4-bit ONNX (block 32, int8 compute, 8-bit head) vs the GGUF Q4_0 of the same weights, teacher-forced on
  llama.cpp's greedy tokens: mean |err| <= 0.15 (measured 0.04) - two 4-bit round-to-nearest schemes;
  and against the float model its mean error is within 1.5x of the Q4_0 GGUF's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("llama_cpp", reason="the llm extra (llama-cpp-python) is not installed")
torch = pytest.importorskip("torch", reason="the convert extra (torch) is not installed")
pytest.importorskip("onnx", reason="the convert extra (onnx) is not installed")

from test_convert_gguf import PROMPT, build_tiny_llama, hf_logits, llama_cpp_logits  # noqa: E402

from edge_runtime.converters.gguf_export import export_gguf  # noqa: E402
from edge_runtime.converters.llm_onnx import (OnnxLlm, compare_with_gguf, export_llm_onnx,  # noqa: E402
                                              load_llama_weights, quantize_llm_onnx)
from edge_runtime.errors import InputError, ModelFormatError  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tokenizers import Tokenizer

    d = tmp_path_factory.mktemp("tiny-llama-onnx")
    model = build_tiny_llama(d)
    ids = Tokenizer.from_file(str(d / "tokenizer.json")).encode(PROMPT).ids
    return d, model, ids


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    res = export_llm_onnx(tiny[0], out / "tiny.onnx")
    q4 = quantize_llm_onnx(res.path, out / "tiny-q4.onnx", block_size=32)
    return res, q4


@pytest.mark.slow
def test_fp32_decoder_matches_transformers_with_and_without_cache(tiny, exported):
    _, model, ids = tiny
    res, _ = exported
    assert res.input_names[:3] == ["input_ids", "past_key_0", "past_value_0"] and len(res.input_names) == 5
    assert all(m.max_abs_err <= 1e-3 for m in res.metrics)  # export_torch's own check vs the torch module
    ref = hf_logits(model, ids)
    llm = OnnxLlm(res.path)
    assert np.abs(llm.logits(ids) - ref).max() <= 1e-4  # prefill, empty cache (P = 0)
    cache, rows = llm.empty_cache(), []
    for chunk in (ids[:5], ids[5:6], ids[6:9], *[[t] for t in ids[9:]]):  # prefill then mixed step sizes
        logits, cache = llm.step(chunk, cache)
        rows.append(logits)
    assert cache[0].shape == (1, 2, len(ids), 64)
    assert np.abs(np.vstack(rows) - ref).max() <= 1e-4
    tokens, timing = llm.greedy(ids, 6)
    assert len(tokens) == 6 and timing["tokens_per_s"] > 0
    full = ids + tokens[:-1]
    assert [int(r.argmax()) for r in llm.logits(full)[len(ids) - 1:]] == tokens


@pytest.mark.slow
def test_int4_decoder_vs_gguf_q4_0(tiny, exported, tmp_path):
    import onnx

    d, model, ids = tiny
    _, q4 = exported
    g = onnx.load(str(q4)).graph
    nbits = [n for n in g.node if n.op_type == "MatMulNBits"]
    bits = sorted(next(a.i for a in n.attribute if a.name == "bits") for n in nbits)
    assert bits == [4] * 14 + [8] and not [n for n in g.node if n.op_type == "MatMul" and "logits" in n.output]
    q4_0 = export_gguf(d, tmp_path / "tiny-q4_0.gguf", "q4_0").path
    cmp = compare_with_gguf(q4, q4_0, ids, n_new=8)
    assert cmp["mean_abs_logit_err"] <= 0.15 and cmp["argmax_agreement"] >= 0.5, cmp
    assert cmp["onnx_tokens_per_s"] > 0 and cmp["gguf_tokens_per_s"] > 0
    ref = hf_logits(model, ids)
    err_onnx = np.abs(OnnxLlm(q4).logits(ids) - ref).mean()
    err_gguf = np.abs(llama_cpp_logits(q4_0, ids) - ref).mean()
    assert err_onnx <= 1.5 * err_gguf, (err_onnx, err_gguf)


def test_weights_from_gguf_equal_weights_from_hf(tiny, tmp_path):
    d = tiny[0]
    hf = load_llama_weights(d)
    gg = load_llama_weights(export_gguf(d, tmp_path / "t.gguf", "f32").path)  # Q/K permuted and back
    assert (gg.n_layers, gg.n_head, gg.n_kv, gg.head_dim, gg.vocab) == (2, 4, 2, 64, hf.vocab)
    assert gg.rope_theta == hf.rope_theta and abs(gg.rms_eps - hf.rms_eps) < 1e-9
    assert sorted(gg.tensors) == sorted(hf.tensors)
    for name, value in hf.tensors.items():
        assert np.array_equal(gg.tensors[name], value), name


def test_bad_inputs(tiny, tmp_path):
    from edge_runtime.assets import ensure

    with pytest.raises(ModelFormatError, match="'llama' only"):
        load_llama_weights(export_gguf(ensure("all-minilm-l6-v2"), tmp_path / "bert.gguf", "f16").path)
    d = tmp_path / "qwen"
    d.mkdir()
    for p in tiny[0].iterdir():
        (d / p.name).write_bytes(p.read_bytes())
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(dict(cfg, architectures=["Qwen2ForCausalLM"])))
    with pytest.raises(ModelFormatError, match="Qwen2ForCausalLM.*not supported"):
        load_llama_weights(d)
    (d / "config.json").write_text(json.dumps(dict(cfg, attention_bias=True)))
    with pytest.raises(ModelFormatError, match="biases"):
        load_llama_weights(d)
    (d / "model.safetensors").unlink()
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFormatError, match="safetensors"):
        load_llama_weights(d)
    not_llm = tmp_path / "add.onnx"
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "g", [x], [y])),
              str(not_llm))
    with pytest.raises(ModelFormatError, match="logits"):
        quantize_llm_onnx(not_llm, tmp_path / "q.onnx")
    with pytest.raises(ModelFormatError, match="not an LLM decoder"):
        OnnxLlm(not_llm)
    with pytest.raises(InputError, match="lm_head_bits"):
        quantize_llm_onnx(not_llm, tmp_path / "q.onnx", lm_head_bits=3)
    assert not (tmp_path / "q.onnx").exists()
