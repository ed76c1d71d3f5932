"""Rectangular inference: the fixed-size detector re-specialised to the frame's aspect.

The rewrite is proven exact where it can be (at the model's own size it reproduces every tensor and
every output bit for bit), refuses heads it does not understand, and on real frames the rectangular
detector finds the same people as the square one (the counting benchmark judges the counts).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import onnx  # the convert extra, which the test set-up installs
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from edge_runtime.assets import ensure
from edge_runtime.errors import ModelFormatError
from edge_runtime.vision.detector import Detector
from edge_runtime.vision.rect_model import anchor_tables, respecialise


@pytest.fixture(scope="module")
def vtest_frames():
    capture = cv2.VideoCapture(str(ensure("vtest-video")))
    frames = []
    for index in range(0, 795, 16):
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, index
        frames.append(frame)
    capture.release()
    return frames


def _session(source, threads=1):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def test_anchor_tables_count_every_grid_cell():
    points, strides = anchor_tables(480, 640)
    assert points.shape == (1, 2, 60 * 80 + 30 * 40 + 15 * 20) and strides.shape == (1, 6300)
    assert points[0, :, 0].tolist() == [0.5, 0.5] and points[0, :, 79].tolist() == [79.5, 0.5]
    assert points[0, :, 80].tolist() == [0.5, 1.5]  # row-major: x runs fastest
    assert strides[0, 4799] == 8 and strides[0, 4800] == 16 and strides[0, -1] == 32


def test_at_its_own_size_the_rewrite_changes_nothing(model_path):
    data = model_path.read_bytes()
    same = respecialise(data, (640, 640), where="builtin")
    before, after = onnx.load_from_string(data), onnx.load_from_string(same)
    tensors = lambda m: {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}  # noqa: E731
    constants = lambda m: [numpy_helper.to_array(n.attribute[0].t)  # noqa: E731
                           for n in m.graph.node if n.op_type == "Constant"]
    t0, t1 = tensors(before), tensors(after)
    assert t0.keys() == t1.keys() and all(np.array_equal(t0[k], t1[k]) for k in t0)
    c0, c1 = constants(before), constants(after)
    assert len(c0) == len(c1) and all(np.array_equal(a, b) for a, b in zip(c0, c1))
    x = np.random.default_rng(0).random((1, 3, 640, 640), dtype=np.float32)
    np.testing.assert_array_equal(_session(data).run(None, {"images": x})[0],
                                  _session(same).run(None, {"images": x})[0])


def test_the_rewritten_model_takes_the_rectangle(model_path):
    session = _session(respecialise(model_path.read_bytes(), (480, 640)))
    assert session.get_inputs()[0].shape == [1, 3, 480, 640]
    out = session.run(None, {"images": np.zeros((1, 3, 480, 640), np.float32)})[0]
    assert out.shape == (1, 6, 6300) and np.isfinite(out).all()


def test_a_size_off_the_stride_is_refused(model_path):
    with pytest.raises(ModelFormatError, match="multiples of 32.*470x640"):
        respecialise(model_path.read_bytes(), (470, 640), where="builtin")


def _with_unknown_box_sized_tensor(model_path, tmp_path):
    model = onnx.load(str(model_path))
    model.graph.initializer.append(numpy_helper.from_array(np.ones((3, 8400), np.float32), "mystery"))
    out = tmp_path / "mystery.onnx"
    onnx.save(model, str(out))
    return out


def test_a_head_it_does_not_understand_is_refused_by_name(model_path, tmp_path):
    odd = _with_unknown_box_sized_tensor(model_path, tmp_path)
    with pytest.raises(ModelFormatError, match=r"'mystery' of shape \[3, 8400\].*cannot run this head at 480x640"):
        respecialise(odd.read_bytes(), (480, 640), where="odd")


def test_the_detector_falls_back_to_the_models_size_and_says_why(model_path, tmp_path, vtest_frames, caplog):
    odd = _with_unknown_box_sized_tensor(model_path, tmp_path)
    det = Detector(odd, threads=1, classes=[0], rect=True)
    with caplog.at_level(logging.INFO, logger="edge_runtime.vision.detector"):
        people = det(vtest_frames[0])
        det(vtest_frames[1])
    assert det.input_hw == (640, 640) and len(people) > 0
    refusals = [r for r in caplog.records if "no rectangular inference" in r.getMessage()]
    assert len(refusals) == 1 and "mystery" in refusals[0].getMessage() and "mystery" in det.rect_refused


def _iou(a, b):
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = lambda z: np.prod(z[:, 2:] - z[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def test_rect_finds_the_same_people_as_square(model_path, vtest_frames):
    square = Detector(model_path, threads=2, classes=[0], conf_threshold=0.1, rect=False)
    rect = Detector(model_path, threads=2, classes=[0], conf_threshold=0.1, rect=True)
    best = []
    for frame in vtest_frames:
        a, b = square(frame), rect(frame)
        assert rect.input_hw == (480, 640) and square.input_hw == (640, 640)
        want = a.xyxy[a.score >= 0.5]
        got = b.xyxy[b.score >= 0.3]  # a person the square model is sure of, found at all by rect
        best.extend(_iou(want, got).max(axis=1) if len(got) else np.zeros(len(want)))
    best = np.asarray(best)
    assert len(best) >= 100
    assert np.median(best) >= 0.97
    assert (best >= 0.7).mean() >= 0.97, sorted(best)[:10]


def test_the_config_key_reaches_the_detector_and_its_clones():
    from edge_runtime.runtime.build import build_pipeline
    from edge_runtime.runtime.config import config_from_dict
    from edge_runtime.runtime.supervisor import clone_detector

    config = config_from_dict({
        "source": {"uri": str(ensure("vtest-video")), "mode": "every"},
        "model": {"path": "builtin:yolov8s-person", "classes": [0], "threads": 1, "rect": True},
        "lines": [{"name": "walkway", "start": [400, 400], "end": [400, 150]}],
        "output": {"db": "", "print_every_s": 0.0}})
    pipeline = build_pipeline(config, quiet=True)
    results = list(pipeline.frames(2))
    assert len(results) == 2
    detector = pipeline.detector
    assert detector.rect and detector.input_hw == (480, 640) and detector.model_hw == (640, 640)
    assert clone_detector(detector, threads=2).rect
    with pytest.raises(Exception, match="model.rect"):
        config_from_dict({"model": {"rect": "sometimes"}})


def test_a_new_frame_size_gets_its_own_rectangle(model_path, vtest_frames):
    det = Detector(model_path, threads=1, classes=[0], rect=True)
    first = det(vtest_frames[3])
    assert det.input_hw == (480, 640)
    wide = cv2.resize(vtest_frames[3], (1280, 720))  # a camera that came back at 16:9
    again = det(wide)
    assert det.input_hw == (384, 640)  # 360 rows scaled, padded to a multiple of 32
    assert len(again) >= len(first) - 2 and det(vtest_frames[3]) is not None and det.input_hw == (480, 640)
    det(cv2.resize(vtest_frames[3], (600, 600)))  # square frames: the model's own size again
    assert det.input_hw == (640, 640)
    assert det.timings.preprocess_ms < 100  # the re-specialisation is not counted as pre-processing


def test_a_dynamic_input_model_just_takes_the_rectangle(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, "h", "w"])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, "n"])
    weight = helper.make_tensor("weight", TensorProto.FLOAT, [6, 3, 8, 8], [0.0] * (6 * 3 * 8 * 8))
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, 6, -1])
    nodes = [helper.make_node("Conv", ["images", "weight"], ["c"], strides=[8, 8]),
             helper.make_node("Reshape", ["c", "shape"], ["output0"])]
    model = helper.make_model(helper.make_graph(nodes, "dynamic", [x], [y], [weight, shape]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = "names", "{0: 'a', 1: 'b'}"
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, str(path))
    det = Detector(path, threads=1, rect=True)
    assert det.input_hw == (640, 640)
    assert len(det(np.zeros((576, 768, 3), np.uint8))) == 0
    assert det.input_hw == (480, 640) and det.model_hw == (640, 640)
