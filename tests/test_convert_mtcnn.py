"""MTCNN on real weights: fp32 ONNX within 1e-4 of PyTorch, calibrated int8 within its stated bound, and
the astronaut's face found by the cascade with both."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the convert extra (torch) is not installed")
cv2 = pytest.importorskip("cv2")

from edge_runtime.assets import ensure  # noqa: E402
from edge_runtime.converters.models.mtcnn import NETS  # noqa: E402
from edge_runtime.converters.mtcnn_convert import INT8_BOUNDS, cascade_inputs, convert_mtcnn  # noqa: E402
from edge_runtime.converters.torch_export import load_state_dict  # noqa: E402
from edge_runtime.converters.verify import open_session  # noqa: E402
from edge_runtime.vision.faces import FaceDetector  # noqa: E402

pytestmark = [pytest.mark.convert, pytest.mark.slow]

# The astronaut's face in skimage's 512x512 astronaut.png, read off the image: hairline ~y 60, chin
# ~y 180, cheeks x ~175..275; eyes at y ~100..115.
FACE_XYXY = np.array([175.0, 60.0, 275.0, 180.0])


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("mtcnn")
    photos = ensure("skimage-photos")
    report = convert_mtcnn(ensure("mtcnn"), out, calibration_images=[photos / "camera.png", photos / "chelsea.png",
                                                                      photos / "coffee.png"],
                           eval_images=[photos / "astronaut.png"], latency_repeats=5, quiet=True)
    return out, report, photos


def test_fp32_matches_torch_on_real_cascade_inputs(converted):
    out, report, photos = converted
    paths = {n: out / f"{n}.onnx" for n in NETS}
    inputs = cascade_inputs(paths, [photos / "astronaut.png"])
    for name, (cls, _, outputs) in NETS.items():
        module = cls().eval()
        module.load_state_dict(load_state_dict(ensure("mtcnn") / f"{name}.pt"))
        session = open_session(paths[name])
        assert inputs[name], name
        for x in inputs[name][:4]:
            with torch.no_grad():
                ref = [t.numpy() for t in module(torch.from_numpy(x))]
            got = session.run(None, {"image": x})
            assert max(float(np.abs(r - g).max()) for r, g in zip(ref, got)) <= 1e-4, name
        entry = report.model(f"{name}-fp32")
        assert all(m.max_abs_err <= 1e-4 for m in entry.metrics)


def test_int8_is_static_qdq_and_within_its_bound(converted):
    out, report, photos = converted
    import onnx

    for name in NETS:
        ops = {n.op_type for n in onnx.load(str(out / f"{name}.int8.onnx")).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        entry = report.model(f"{name}-int8")
        bound = INT8_BOUNDS[name]
        for m in entry.metrics:
            assert m.mean_abs_err <= bound.max_mean_abs_err and m.cosine >= bound.min_cosine, (name, m)
            assert m.max_abs_err > 0  # really quantized: not a copy of the fp32 model
        assert entry.size_bytes < report.model(f"{name}-fp32").size_bytes


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_astronaut_face_is_found(converted, precision):
    out, _, photos = converted
    suffix = "" if precision == "fp32" else ".int8"
    detector = FaceDetector(*(out / f"{n}{suffix}.onnx" for n in ("pnet", "rnet", "onet")))
    faces = detector.detect(cv2.imread(str(photos / "astronaut.png"), cv2.IMREAD_COLOR))
    assert len(faces) >= 1
    best = faces.detections.xyxy[0]
    assert _iou(best, FACE_XYXY) >= 0.5, best
    left_eye, right_eye, nose = faces.landmarks[0][:3]
    assert left_eye[0] < nose[0] < right_eye[0] and 85 <= left_eye[1] <= 125 and 85 <= right_eye[1] <= 125
    # The cat photo has no human face.
    assert len(detector.detect(cv2.imread(str(photos / "chelsea.png"), cv2.IMREAD_COLOR))) == 0


def test_report_files_and_cpu_section(converted):
    out, report, _ = converted
    data = json.loads((out / "mtcnn.report.json").read_text())
    assert {m["name"] for m in data["models"]} == {f"{n}-{p}" for n in NETS for p in ("fp32", "int8")}
    assert all(m["latency"]["runs"] == 5 for m in data["models"])
    assert data["cpu"]["has_int8_dot"] == report.cpu.has_int8_dot
    assert bool(data["warnings"]) == (not report.cpu.has_int8_dot)
    assert "## Accuracy" in (out / "mtcnn.report.md").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no leftover work directories
