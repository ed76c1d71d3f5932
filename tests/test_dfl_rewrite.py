"""The DFL rewrite: the same boxes from reductions over the bin axis instead of a one-thread softmax.

Checked on the real built-in detector (square and rectangular), on a graph built here that has the
pattern with other axes and opsets, and on graphs that must be left alone.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx  # the convert extra, which the test set-up installs
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_runtime.assets import ensure
from edge_runtime.errors import ModelFormatError
from edge_runtime.vision import detector as detector_module
from edge_runtime.vision.detector import Detector
from edge_runtime.vision.dfl_rewrite import rewrite_dfl
from edge_runtime.vision.rect_model import respecialise


@pytest.fixture(scope="module")
def vtest_frames():
    capture = cv2.VideoCapture(str(ensure("vtest-video")))
    frames = []
    for index in (0, 200, 400, 600, 790):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, index
        frames.append(frame)
    capture.release()
    return frames


def _session(source):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _blob(frame, hw):
    h, w = hw
    r = min(h / frame.shape[0], w / frame.shape[1])
    resized = cv2.resize(frame, (round(frame.shape[1] * r), round(frame.shape[0] * r)))
    canvas = np.full((h, w, 3), 114, np.uint8)
    top, left = (h - resized.shape[0]) // 2, (w - resized.shape[1]) // 2
    canvas[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None], np.float32) / 255


@pytest.mark.parametrize("hw", [(640, 640), (480, 640)])
def test_the_builtin_detector_gives_the_same_boxes_and_scores(model_path, vtest_frames, hw):
    data = model_path.read_bytes()
    if hw != (640, 640):
        data = respecialise(data, hw, where="builtin")
    rewritten = rewrite_dfl(data, where="builtin")
    assert rewritten is not None
    ops = [n.op_type for n in onnx.load_from_string(rewritten).graph.node]
    assert "Softmax" not in ops and ops.count("ReduceSum") == 2
    before, after = _session(data), _session(rewritten)
    name = before.get_inputs()[0].name
    for frame in vtest_frames:
        x = _blob(frame, hw)
        a, b = before.run(None, {name: x})[0], after.run(None, {name: x})[0]
        assert a.shape == b.shape
        # Boxes are in input pixels (0..640): float rounding only, far below a pixel.
        assert np.abs(a[:, :4] - b[:, :4]).max() < 1e-3
        assert np.array_equal(a[:, 4:], b[:, 4:])  # the class scores do not pass through the rewrite
        assert np.abs(a[:, :4]).max() > 100  # real boxes, not an all-zero output


def _dfl_graph(opset: int, axis_after: int = 1, bias: bool = False, bins: int = 16):
    """(1, 64, A) -> Reshape (1, 4, bins, A) -> Transpose -> Softmax -> 1x1 Conv: the export's DFL head."""
    anchors = 7
    perm = [0, 2, 1, 3]
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t"], perm=perm),
        helper.make_node("Softmax", ["t"], ["s"], axis=axis_after),
        helper.make_node("Conv", ["s", "w"] + (["b"] if bias else []), ["c"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["c", "shape_out"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array([1, 4, bins, anchors], np.int64), "shape"),
             numpy_helper.from_array(np.arange(bins, dtype=np.float32).reshape(1, bins, 1, 1) * 0.5 + 0.25, "w"),
             numpy_helper.from_array(np.array([1, 4, anchors], np.int64), "shape_out")]
    if bias:
        inits.append(numpy_helper.from_array(np.array([0.5], np.float32), "b"))
    graph = helper.make_graph(nodes, "dfl", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4 * bins, anchors])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, anchors])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_the_rewrite_matches_the_softmax_expectation_at_every_opset(opset):
    model = _dfl_graph(opset)
    model.ir_version = 8 if opset < 19 else 10
    data = model.SerializeToString()
    rewritten = rewrite_dfl(data)
    assert rewritten is not None
    rng = np.random.default_rng(opset)
    x = (rng.standard_normal((1, 64, 7)) * 20).astype(np.float32)  # large logits: the max shift matters
    a, b = _session(data).run(None, {"x": x})[0], _session(rewritten).run(None, {"x": x})[0]
    assert np.abs(a - b).max() < 1e-4
    logits = x.reshape(1, 4, 16, 7)
    e = np.exp(logits - logits.max(axis=2, keepdims=True))
    bins = (np.arange(16) * 0.5 + 0.25)[None, None, :, None]
    expected = (e * bins).sum(axis=2) / e.sum(axis=2)
    assert np.abs(b - expected).max() < 1e-4


@pytest.mark.parametrize("change", ["softmax over another axis", "conv with a bias", "softmax is an output"])
def test_graphs_without_the_exact_pattern_are_left_alone(change):
    model = _dfl_graph(17, axis_after=2 if change == "softmax over another axis" else 1,
                       bias=change == "conv with a bias")
    if change == "softmax is an output":
        model.graph.output.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, None))
    assert rewrite_dfl(model.SerializeToString()) is None


def test_not_onnx_is_refused_precisely():
    with pytest.raises(ModelFormatError, match="garbage.onnx: cannot be read for rewriting"):
        rewrite_dfl(b"\x08\x07not a protobuf" * 3, where="garbage.onnx")


def test_the_detector_finds_the_same_people_with_and_without_it(model_path, vtest_frames, monkeypatch, tmp_path):
    fast = Detector(model_path, threads=1, conf_threshold=0.25)
    assert detector_module._with_fast_dfl(model_path, None) is not None
    monkeypatch.setattr(detector_module, "_with_fast_dfl", lambda path, data: None)
    monkeypatch.setenv("EDGE_RUNTIME_CACHE", str(tmp_path))  # no cached rewrite to load instead
    plain = Detector(model_path, threads=1, conf_threshold=0.25)
    for frame in vtest_frames:
        a, b = fast(frame), plain(frame)
        assert len(a) == len(b) > 0
        assert np.abs(a.xyxy - b.xyxy).max() < 1e-2  # frame pixels (input pixels / scale)
        assert np.array_equal(a.score, b.score)


def test_a_malformed_weight_is_refused_precisely_and_the_detector_loads_the_file_as_it_is(tmp_path):
    model = _dfl_graph(17)
    weight = next(i for i in model.graph.initializer if i.name == "w")
    weight.raw_data = b"\x00" * 7  # 7 bytes for 16 floats
    path = tmp_path / "broken.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ModelFormatError, match="tensor 'w' cannot be read"):
        rewrite_dfl(path.read_bytes(), where="broken.onnx")
    assert detector_module._with_fast_dfl(path, None) is None
