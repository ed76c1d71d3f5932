"""One quantization per Concat group in a QDQ model (converters/qdq_align.py), on small graphs quantized by
ONNX Runtime's own QDQ quantizer: the joined tensors share one scale and zero point covering all their
ranges, the int32 biases follow their input's new scale (so ONNX Runtime still fuses every convolution
into QLinearConv), the outputs stay as close to float as before, and what must not change does not."""

from __future__ import annotations

import numpy as np
import pytest

import onnx  # the convert extra, which the test set-up installs
from onnx import TensorProto, helper, numpy_helper

from edge_runtime.converters.qdq_align import align_concat_scales

RNG = np.random.default_rng(7)


def _conv(name, cin, cout, x, out, gain=1.0):
    w = (RNG.standard_normal((cout, cin, 3, 3)) * gain / np.sqrt(9 * cin)).astype(np.float32)
    b = (RNG.standard_normal(cout) * 0.1).astype(np.float32)
    inits = [numpy_helper.from_array(w, f"{name}.w"), numpy_helper.from_array(b, f"{name}.b")]
    return helper.make_node("Conv", [x, f"{name}.w", f"{name}.b"], [out], name=name, pads=[1, 1, 1, 1]), inits


def _float_model(concat: bool = True):
    """x (1,4,16,16) -> a: Conv -> Relu; b: Conv (gain 4: a wider range) -> Relu; [Concat(a, b) -> MaxPool
    (pass-through)] -> Conv -> y."""
    nodes, inits = [], []
    for name, gain in (("a", 1.0), ("b", 4.0)):
        n, i = _conv(name, 4, 4, "x", f"{name}_pre", gain)
        nodes += [n, helper.make_node("Relu", [f"{name}_pre"], [name], name=f"{name}_relu")]
        inits += i
    if concat:
        nodes += [helper.make_node("Concat", ["a", "b"], ["ab"], name="join", axis=1),
                  helper.make_node("MaxPool", ["ab"], ["pooled"], name="pool", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
        n, i = _conv("c", 8, 2, "pooled", "y")
    else:
        n, i = _conv("c", 4, 2, "a", "y")
    nodes.append(n)
    inits += i
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 16, 16])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _quantized(model, tmp_path, exclude=()):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.left = [{"x": RNG.standard_normal((1, 4, 16, 16)).astype(np.float32)} for _ in range(8)]

        def get_next(self):
            return self.left.pop() if self.left else None

    src, dst = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, str(src))
    quantize_static(str(src), str(dst), Feeds(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=list(exclude))
    return onnx.load(str(dst))


def _run(model, x, tmp_path=None, name="m"):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if tmp_path is not None:
        options.optimized_model_filepath = str(tmp_path / f"{name}-optimized.onnx")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _params(model):
    """{quantized tensor: (scale, zero point)} of every QuantizeLinear, and the initializers by name."""
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return {n.output[0]: (float(init[n.input[1]]), int(init[n.input[2]])) for n in model.graph.node
            if n.op_type == "QuantizeLinear"}, init


def _joined(model):
    """The quantized tensors the Concat reads and writes, and the MaxPool's output."""
    prod = {o: n for n in model.graph.node for o in n.output}
    cons = {}
    for n in model.graph.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    ins = [prod[i].input[0] for i in concat.input]
    outs = [c.output[0] for t in (concat.output[0], pool.output[0]) for c in cons[t] if c.op_type == "QuantizeLinear"]
    return ins + outs


def test_joined_tensors_share_one_quantization_that_covers_every_range(tmp_path):
    model = _quantized(_float_model(), tmp_path)
    before, _ = _params(model)
    members = _joined(model)
    assert len({before[m] for m in members}) > 1  # the quantizer gave them different scales
    report = align_concat_scales(model)
    after, _ = _params(model)
    assert report.concats == ["join"] and report.groups == 1
    assert len({after[m] for m in members}) == 1
    scale, zero = after[members[0]]
    for m in members:
        s, z = before[m]
        assert -zero * scale <= -z * s + 1e-6 and (255 - zero) * scale >= (255 - z) * s - 1e-6
    ranges = [255 * before[m][0] for m in members]
    assert report.widening[0] == pytest.approx(255 * scale / min(ranges), rel=1e-4)
    # every DequantizeLinear of a joined tensor reads the same parameters as its QuantizeLinear
    for n in model.graph.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in members:
            q = next(q for q in model.graph.node if q.op_type == "QuantizeLinear" and q.output[0] == n.input[0])
            assert list(n.input[1:]) == list(q.input[1:])


def test_biases_follow_the_new_input_scale_so_every_conv_still_fuses(tmp_path):
    model = _quantized(_float_model(), tmp_path)
    report = align_concat_scales(model)
    assert report.biases == 1  # conv c reads the re-scaled pooled tensor
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    prod = {o: n for n in model.graph.node for o in n.output}
    for conv in (n for n in model.graph.node if n.op_type == "Conv"):
        dq_x, dq_w, dq_b = (prod[i] for i in conv.input)
        want = np.float32(init[dq_x.input[1]]) * init[dq_w.input[1]]
        np.testing.assert_allclose(init[dq_b.input[1]], want, rtol=1e-6)
    x = RNG.standard_normal((1, 4, 16, 16)).astype(np.float32)
    _run(model, x, tmp_path, "aligned")
    fused = [n.op_type for n in onnx.load(str(tmp_path / "aligned-optimized.onnx")).graph.node]
    assert fused.count("QLinearConv") == 3 and "Conv" not in fused, fused


def test_outputs_stay_as_close_to_float_as_before(tmp_path):
    fp32 = _float_model()
    model = _quantized(fp32, tmp_path)
    aligned = onnx.ModelProto()
    aligned.CopyFrom(model)
    align_concat_scales(aligned)
    x = RNG.standard_normal((4, 1, 4, 16, 16)).astype(np.float32)
    ref = np.stack([_run(fp32, xi) for xi in x])
    err_before = np.abs(np.stack([_run(model, xi) for xi in x]) - ref).mean()
    err_after = np.abs(np.stack([_run(aligned, xi) for xi in x]) - ref).mean()
    spread = ref.std()
    assert err_after < 0.05 * spread and err_after < 2.0 * err_before, (err_before, err_after, spread)


def test_nothing_changes_without_a_quantized_concat(tmp_path):
    plain = _quantized(_float_model(concat=False), tmp_path)
    before = plain.SerializeToString()
    report = align_concat_scales(plain)
    assert report.concats == [] and report.groups == 0 and plain.SerializeToString() == before
    kept_float = _quantized(_float_model(), tmp_path, exclude=["join"])  # the Concat stays float
    before = kept_float.SerializeToString()
    assert align_concat_scales(kept_float).concats == [] and kept_float.SerializeToString() == before


def test_aligning_twice_changes_nothing_more(tmp_path):
    model = _quantized(_float_model(), tmp_path)
    align_concat_scales(model)
    params, _ = _params(model)
    again = align_concat_scales(model)
    assert again.widening == [pytest.approx(1.0)]
    assert _params(model)[0] == params


def test_a_join_with_a_computed_scale_is_left_as_it_is(tmp_path):
    model = _quantized(_float_model(), tmp_path)
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.output[0] in _joined(model))
    q.input[1] = "computed_scale"  # not an initializer: nothing can be said about its range
    before = model.SerializeToString()
    assert align_concat_scales(model).concats == [] and model.SerializeToString() == before


def test_a_group_that_would_widen_a_range_too_much_is_left_as_it_is(tmp_path):
    model = _quantized(_float_model(), tmp_path)
    before, _ = _params(model)
    full = onnx.ModelProto()
    full.CopyFrom(model)
    widening = align_concat_scales(full).widening[0]
    assert widening > 1.5  # conv b's range is about four times conv a's
    report = align_concat_scales(model, max_widening=widening - 0.01)
    assert report.concats == [] and report.groups == 0 and report.left == 1 and report.biases == 0
    assert _params(model)[0] == before
    assert align_concat_scales(model, max_widening=widening + 0.01).concats == ["join"]
