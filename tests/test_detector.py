"""The real YOLOv8s person detector on the real pedestrian video and photos; bad models and frames.

Expected counts were set by drawing the detector's boxes on the frames and looking at them: frame 200
shows six upright walkers the model boxes (a seventh, half hidden behind a man at the top right, is
missed) and the person lying on the grass, which the model labels `Fall` (class 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_runtime import Detections, Detector, InputError, ModelFormatError
from edge_runtime.assets import ensure

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless has no wheel for this platform (armv7)")

PERSON, FALL = 0, 1


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def best_iou(dets: Detections, box, class_id: int) -> float:
    return max((iou(b, box) for b, c in zip(dets.xyxy.tolist(), dets.class_id.tolist()) if c == class_id),
               default=0.0)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(ensure("yolov8s-person"), threads=2)


@pytest.fixture(scope="module")
def video_frames() -> dict:
    wanted = {0, 100, 200, 300, 400, 500, 600, 700, 794}
    cap = cv2.VideoCapture(str(ensure("vtest-video")))
    frames, index = {}, 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if index in wanted:
            frames[index] = frame
        index += 1
    cap.release()
    assert index == 795, f"vtest.avi should have 795 frames, read {index}"
    return frames


def test_metadata_is_read(detector: Detector) -> None:
    assert detector.class_names == {0: "Normal", 1: "Fall"}
    assert detector.input_hw == (640, 640)
    assert detector.layout.name == "V8"


def test_boxes_the_walkers_on_frame_200(detector: Detector, video_frames: dict) -> None:
    dets = detector(video_frames[200])
    assert isinstance(dets, Detections)
    people = int((dets.class_id == PERSON).sum())
    assert 6 <= people <= 8, f"frame 200 shows 6-7 walkers, detector found {people}"
    # Walkers located by eye on the frame (x1, y1, x2, y2 in source pixels).
    for walker in [(607, 260, 660, 370), (696, 248, 752, 354), (210, 186, 258, 267), (477, 141, 524, 216),
                   (74, 150, 118, 217)]:
        assert best_iou(dets, walker, PERSON) > 0.6, f"walker at {walker} not boxed: {dets.xyxy.tolist()}"
    # The person lying on the grass at the bottom left.
    assert best_iou(dets, (62, 490, 167, 533), FALL) > 0.6
    # Boxes are in source-frame pixels, inside the frame.
    assert (dets.xyxy >= 0).all() and (dets.xyxy[:, [0, 2]] <= 768).all() and (dets.xyxy[:, [1, 3]] <= 576).all()


def test_people_counts_across_the_video(detector: Detector, video_frames: dict) -> None:
    # The walkway holds 3-9 people at any time; the model sees most of them from frame to frame.
    for index, frame in sorted(video_frames.items()):
        people = int((detector(frame).class_id == PERSON).sum())
        assert 3 <= people <= 10, f"frame {index}: {people} people"


def test_timings_are_recorded(detector: Detector, video_frames: dict) -> None:
    detector(video_frames[0])
    t = detector.timings
    assert t.inference_ms > 0 and t.preprocess_ms > 0 and t.postprocess_ms > 0
    assert t.overhead_ms < t.inference_ms


@pytest.mark.parametrize("name, centre", [("astronaut.png", (190, 250)), ("camera.png", (160, 250))])
def test_finds_the_person_in_photos(detector: Detector, name: str, centre) -> None:
    frame = cv2.imread(str(ensure("skimage-photos") / name), cv2.IMREAD_COLOR)
    dets = detector(frame)
    people = dets[(dets.class_id == PERSON) & (dets.score > 0.4)]
    assert len(people) >= 1, f"{name}: no person found"
    x, y = centre
    assert any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in people.xyxy.tolist()), people.xyxy


def test_class_filter_and_thresholds(video_frames: dict) -> None:
    only_fall = Detector(ensure("yolov8s-person"), threads=1, classes=[FALL])
    dets = only_fall(video_frames[200])
    assert len(dets) >= 1 and (dets.class_id == FALL).all()
    strict = Detector(ensure("yolov8s-person"), threads=1, conf_threshold=0.99)
    assert len(strict(video_frames[200])) == 0


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("frame, fragment", [
    (np.zeros((576, 768, 3), np.float32), "uint8"),
    (np.zeros((576, 768), np.uint8), "(H, W, 3)"),
    (np.zeros((576, 768, 4), np.uint8), "(H, W, 3)"),
    (np.zeros((0, 768, 3), np.uint8), "empty"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_frames_raise_input_error(detector: Detector, frame, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        detector(frame)


def test_non_contiguous_frame_is_accepted(detector: Detector, video_frames: dict) -> None:
    frame = video_frames[200]
    view = frame[:, ::-1]  # mirrored view: negative stride
    assert len(detector(view)) >= 6


def test_frames_of_a_new_size_get_their_own_padding(video_frames: dict) -> None:
    # The detector writes the input's grey padding once per frame size: after a 4:3 frame, a 16:9 one
    # (padding at other rows) and a 4:3 one again must each detect as on a fresh detector.
    model = ensure("yolov8s-person")
    reused = Detector(model, threads=2)
    wide = np.ascontiguousarray(video_frames[200][100:460])
    for frame in (video_frames[200], wide, video_frames[300]):
        fresh = Detector(model, threads=2)(frame)
        got = reused(frame)
        np.testing.assert_array_equal(got.xyxy, fresh.xyxy)
        np.testing.assert_array_equal(got.score, fresh.score)


def test_default_and_single_thread_detectors_find_the_same_boxes(video_frames: dict) -> None:
    # threads=None (onnxruntime's default; the letterbox takes every CPU this process may use) and
    # threads=1 give the same tensor, so the same boxes within float reassociation of the model's sums.
    model = ensure("yolov8s-person")
    default, single = Detector(model), Detector(model, threads=1)
    for index in (200, 300):
        a, b = default(video_frames[index]), single(video_frames[index])
        assert len(a) == len(b) >= 3
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-2)
        np.testing.assert_allclose(a.score, b.score, atol=1e-4)


def test_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="no such model file"):
        Detector(tmp_path / "absent.onnx")


def test_corrupt_model(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ModelFormatError, match="corrupt.onnx"):
        Detector(bad)


def test_truncated_real_model(tmp_path: Path) -> None:
    data = ensure("yolov8s-person").read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFormatError, match="truncated.onnx"):
        Detector(bad)


def _tiny_model(path: Path, in_shape, out_shape, metadata=None) -> Path:
    onnx = pytest.importorskip("onnx", reason="onnx (dev extra) builds the non-detector model")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
    zeros = helper.make_tensor("zeros", TensorProto.FLOAT, list(out_shape), [0.0] * int(np.prod(out_shape)))
    nodes = [helper.make_node("Constant", [], ["c"], value=zeros), helper.make_node("Identity", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def test_classifier_is_not_a_detector(tmp_path: Path) -> None:
    path = _tiny_model(tmp_path / "classifier.onnx", [1, 3, 224, 224], [1, 1000])
    with pytest.raises(ModelFormatError, match="classifier.onnx"):
        Detector(path)


def test_segmentation_task_is_refused(tmp_path: Path) -> None:
    path = _tiny_model(tmp_path / "seg.onnx", [1, 3, 640, 640], [1, 6, 8400], {"task": "segment"})
    with pytest.raises(ModelFormatError, match="segment"):
        Detector(path)


def test_malformed_names_metadata(tmp_path: Path) -> None:
    path = _tiny_model(tmp_path / "names.onnx", [1, 3, 640, 640], [1, 6, 8400], {"names": "__import__('os')"})
    with pytest.raises(ModelFormatError, match="names"):
        Detector(path)


def test_names_disagree_with_output(tmp_path: Path) -> None:
    # Three classes in the metadata, but the output has room for two.
    path = _tiny_model(tmp_path / "mismatch.onnx", [1, 3, 640, 640], [1, 6, 8400],
                       {"names": "{0: 'a', 1: 'b', 2: 'c'}"})
    with pytest.raises(ModelFormatError, match="mismatch.onnx"):
        Detector(path)


def test_tiny_valid_v8_model_runs(tmp_path: Path) -> None:
    path = _tiny_model(tmp_path / "zeros.onnx", [1, 3, 320, 320], [1, 6, 2100], {"names": "{0: 'a', 1: 'b'}"})
    det = Detector(path, threads=1)
    assert det.input_hw == (320, 320)
    assert len(det(np.zeros((240, 320, 3), np.uint8))) == 0
