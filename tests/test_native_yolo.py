"""YOLO decoding: native == NumPy reference (exactly), layout detection, fused postprocess, input errors.

Shape legend: V8 raw (4 + nc, N) channel-major, V5 raw (N, 5 + nc), E2E raw (K, 6); M decoded boxes.
No real YOLOv5/v7 model can be had offline, so every layout is checked on synthetic tensors against
reference.decode_yolo. Corners are float64 math on both sides with no FMA contraction, so boxes, scores
and classes must be bit-identical.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime import _native
from edge_runtime import reference as ref
from edge_runtime.errors import InputError, ModelFormatError
from edge_runtime.vision import ops
from edge_runtime.vision.ops import YoloLayout

V5, V8, E2E = YoloLayout.V5, YoloLayout.V8, YoloLayout.E2E


def synthetic_raw(layout: YoloLayout, n: int, nc: int, seed: int, tie_scores: bool) -> np.ndarray:
    """A raw output with boxes in and around a 640x640 input (some inverted), scores in [0, 1]."""
    rng = np.random.default_rng(seed)
    centre = rng.uniform(-40, 680, (n, 2))
    size = rng.uniform(-20, 400, (n, 2))  # negative sizes: corners must still come out ordered
    scores = rng.choice([0.0, 0.25, 0.5, 1.0], (n, nc)) if tie_scores else rng.uniform(0, 1, (n, nc))
    if layout is E2E:
        corners = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        cls = rng.integers(0, max(nc, 1), (n, 1))
        return np.ascontiguousarray(np.concatenate([corners, scores[:, :1], cls], axis=1), np.float32)
    if layout is V5:
        obj = rng.choice([0.0, 0.5, 1.0], (n, 1)) if tie_scores else rng.uniform(0, 1, (n, 1))
        return np.ascontiguousarray(np.concatenate([centre, size, obj, scores], axis=1), np.float32)
    return np.ascontiguousarray(np.concatenate([centre, size, scores], axis=1).T, np.float32)


@st.composite
def decode_cases(draw):
    layout = draw(st.sampled_from([V5, V8, E2E]))
    src_hw = (draw(st.integers(1, 2000)), draw(st.integers(1, 2000)))
    return dict(
        layout=layout,
        raw=synthetic_raw(layout, draw(st.integers(0, 60)), draw(st.integers(1, 9)), draw(st.integers(0, 2**32 - 1)),
                          draw(st.booleans())),
        info=ops.letterbox_geometry(src_hw, (640, 640)),
        conf=draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(0, 1)),
        classes=draw(st.none() | st.lists(st.integers(0, 10), max_size=4)),
        batch=draw(st.booleans()),
    )


def reference_decode(raw, layout, conf, info, num_classes=0, classes=None):
    return ref.decode_yolo(raw, int(layout), conf, **info._box_map(), num_classes=num_classes, classes=classes)


def assert_same(native, reference):
    for got, want in zip(native, reference):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@given(decode_cases())
def test_decode_matches_reference_exactly(case):
    raw = case["raw"][None] if case["batch"] else case["raw"]
    got = ops.decode_yolo(raw, case["layout"], case["conf"], case["info"], classes=case["classes"])
    assert_same(got, reference_decode(case["raw"], case["layout"], case["conf"], case["info"], classes=case["classes"]))
    xyxy = got[0]
    h, w = case["info"].src_hw
    assert (xyxy[:, 0] <= xyxy[:, 2]).all() and (xyxy[:, 1] <= xyxy[:, 3]).all()
    assert (xyxy >= 0).all() and (xyxy[:, [0, 2]] <= w).all() and (xyxy[:, [1, 3]] <= h).all()
    assert (got[1] >= case["conf"]).all()


@given(decode_cases(), st.floats(0, 1), st.integers(1, 40), st.booleans())
def test_postprocess_matches_reference_and_the_two_step_path(case, iou, max_det, agnostic):
    raw, layout, conf, info = case["raw"], case["layout"], case["conf"], case["info"]
    got = ops.postprocess(raw, layout, conf, info, iou, max_det, agnostic=agnostic, classes=case["classes"])
    want = ref.postprocess(raw, int(layout), conf, **info._box_map(), num_classes=0, classes=case["classes"],
                           iou_threshold=iou, max_det=max_det, agnostic=agnostic)
    assert_same(got, want)
    xyxy, score, cls = ops.decode_yolo(raw, layout, conf, info, classes=case["classes"])
    if layout is not E2E:
        keep = ops.nms(xyxy, score, None if agnostic else cls, iou, max_det)
        assert_same(got, (xyxy[keep], score[keep], cls[keep]))
    assert len(got[1]) <= max_det and (np.diff(got[1]) <= 0).all()


@given(decode_cases(), st.floats(0, 1), st.integers(1, 40), st.booleans())
def test_postprocess_prepared_matches_postprocess(case, iou, max_det, agnostic):
    raw, layout, conf, info, classes = case["raw"], case["layout"], case["conf"], case["info"], case["classes"]
    want = ops.postprocess(raw, layout, conf, info, iou, max_det, agnostic=agnostic, classes=classes)
    class_ids = None if classes is None else np.array(sorted(set(classes)), np.int32)
    assert_same(ops.postprocess_prepared(raw, layout, conf, info, iou, max_det, agnostic, class_ids, 0), want)


def test_postprocess_prepared_refuses_what_postprocess_refuses():
    info = ops.letterbox_geometry((576, 768), (640, 640))
    raw = np.zeros((1, 6, 8400), np.float32)
    with pytest.raises(InputError, match=r"does not fit layout V8 with 3 classes"):
        ops.postprocess_prepared(raw, V8, 0.25, info, 0.45, 300, False, None, 3)
    raw[0, 5, 17] = np.nan
    with pytest.raises(InputError, match=r"non-finite value \(nan\) at channel 5 of anchor 17"):
        ops.postprocess_prepared(raw, V8, 0.25, info, 0.45, 300, False, None, 2)
    with pytest.raises(InputError, match=r"raw must be float32"):
        ops.postprocess_prepared(raw.astype(np.float64), V8, 0.25, info, 0.45, 300, False, None, 2)
    with pytest.raises(InputError, match=r"iou_threshold must be in \[0, 1\]"):
        ops.postprocess_prepared(np.zeros((6, 10), np.float32), V8, 0.25, info, 1.5, 300, False, None, 2)


def test_v8_decodes_a_known_box_back_to_source_pixels():
    info = ops.letterbox_geometry((576, 768), (640, 640))  # scale 5/6, pad_y 80
    raw = np.zeros((1, 6, 8400), np.float32)
    raw[0, :, 7] = [320, 320, 60, 120, 0.2, 0.8]       # class 1 wins
    raw[0, :, 9] = [10, 100, 40, 40, 0.1, 0.1]         # below conf: dropped
    raw[0, :, 11] = [630, 540, 60, 60, 0.9, 0.9]       # tie: first class (0); clipped at the frame edges
    xyxy, score, cls = ops.decode_yolo(raw, V8, 0.25, info)
    np.testing.assert_allclose(xyxy, [[348, 216, 420, 360], [720, 516, 768, 576]], rtol=1e-6)
    np.testing.assert_array_equal(score, np.float32([0.8, 0.9]))
    np.testing.assert_array_equal(cls, [1, 0])


@pytest.mark.parametrize("n", [8400, 8403])  # a multiple of the vector width, and one with a scalar tail
def test_v8_full_size_coco_output_matches_reference(n):
    rng = np.random.default_rng(n)
    raw = np.empty((1, 84, n), np.float32)
    raw[0, :2] = rng.uniform(0, 640, (2, n))
    raw[0, 2:4] = rng.uniform(1, 200, (2, n))
    raw[0, 4:] = rng.choice(np.float32([0.0, 0.1, 0.3, 0.6]), (80, n))  # many ties between classes
    info = ops.letterbox_geometry((720, 1280), (640, 640))
    got = ops.decode_yolo(raw, V8, 0.25, info, num_classes=80)
    assert_same(got, reference_decode(raw, V8, 0.25, info, num_classes=80))
    assert len(got[1]) > 1000 and set(np.unique(got[2]).tolist()) <= set(range(80))


def test_v5_score_is_objectness_times_best_class():
    info = ops.letterbox_geometry((640, 640), (640, 640))
    raw = np.array([[100, 100, 20, 20, 0.5, 0.2, 0.9, 0.9],    # 0.45, class 1 (first of the tie)
                    [200, 200, 20, 20, 0.2, 0.9, 0.1, 0.1]], np.float32)  # 0.18 < 0.25: dropped
    xyxy, score, cls = ops.decode_yolo(raw, V5, 0.25, info)
    np.testing.assert_array_equal(score, [np.float32(0.5) * np.float32(0.9)])
    np.testing.assert_array_equal(cls, [1])
    np.testing.assert_array_equal(xyxy, [[90, 90, 110, 110]])


def test_e2e_keeps_rows_in_order_and_checks_classes():
    info = ops.letterbox_geometry((640, 640), (640, 640))
    raw = np.array([[10, 10, 50, 50, 0.3, 2], [60, 60, 20, 20, 0.9, 0], [0, 0, 1, 1, 0.0, -1]], np.float32)
    xyxy, score, cls = ops.decode_yolo(raw, E2E, 0.25, info, num_classes=3)
    np.testing.assert_array_equal(xyxy, [[10, 10, 50, 50], [20, 20, 60, 60]])  # second box re-ordered
    np.testing.assert_array_equal(cls, [2, 0])
    # A padding row with class -1 below the threshold is ignored; kept rows must have a valid class.
    for bad, why in [(-1, "-1"), (1.5, "1.5"), (3, "3")]:
        raw[1, 5] = bad
        with pytest.raises(InputError, match=rf"E2E output row 1 has class value {why}, expected a whole number in \[0, 3\)"):
            ops.decode_yolo(raw, E2E, 0.25, info, num_classes=3)
        with pytest.raises(ValueError):
            reference_decode(raw, E2E, 0.25, info, num_classes=3)


def test_e2e_postprocess_orders_by_score_stably_and_caps_at_max_det():
    info = ops.letterbox_geometry((640, 640), (640, 640))
    score = np.float32([0.3, 0.9, 0.5, 0.9, 0.1, 0.7])
    raw = np.zeros((6, 6), np.float32)
    raw[:, 0] = np.arange(6) * 10          # x1 tells the rows apart
    raw[:, 2] = raw[:, 0] + 5
    raw[:, 3] = 5
    raw[:, 4] = score
    for max_det, rows in [(3, [1, 3, 5]), (5, [1, 3, 5, 2, 0]), (300, [1, 3, 5, 2, 0])]:
        xyxy, got, _ = ops.postprocess(raw, E2E, 0.2, info, max_det=max_det)
        np.testing.assert_array_equal(xyxy[:, 0], raw[rows, 0])
        np.testing.assert_array_equal(got, score[rows])


def test_empty_outputs_decode_to_empty_arrays():
    info = ops.letterbox_geometry((10, 10), (32, 32))
    for layout, raw in [(V8, np.zeros((6, 0), np.float32)), (V5, np.zeros((0, 7), np.float32)),
                        (E2E, np.zeros((1, 0, 6), np.float32))]:
        xyxy, score, cls = ops.postprocess(raw, layout, 0.0, info)
        assert xyxy.shape == (0, 4) and score.shape == (0,) and cls.shape == (0,)
        assert (xyxy.dtype, score.dtype, cls.dtype) == (np.float32, np.float32, np.int32)


@given(st.sampled_from([V5, V8, E2E]), st.integers(1, 30), st.integers(0, 2**32 - 1),
       st.sampled_from([np.nan, np.inf, -np.inf]), st.data())
def test_non_finite_anywhere_raises_input_error(layout, n, seed, bad, data):
    raw = synthetic_raw(layout, n, 3, seed, tie_scores=False)
    row = data.draw(st.integers(0, raw.shape[0] - 1))
    col = data.draw(st.integers(0, raw.shape[1] - 1))
    raw[row, col] = bad
    where = f"channel {row} of anchor {col}" if layout is V8 else f"row {row}, column {col}"
    with pytest.raises(InputError, match=f"non-finite value .*{where} of the {raw.shape[0], raw.shape[1]}".replace("(", r"\(").replace(")", r"\)")):
        ops.decode_yolo(raw, layout, 0.99, ops.letterbox_geometry((64, 64), (640, 640)))
    with pytest.raises(InputError, match="non-finite"):
        ops.postprocess(raw, layout, 0.99, ops.letterbox_geometry((64, 64), (640, 640)))
    with pytest.raises(ValueError):
        reference_decode(raw, layout, 0.99, ops.letterbox_geometry((64, 64), (640, 640)))


# -- errors -------------------------------------------------------------------------------------------

INFO = ops.letterbox_geometry((480, 640), (640, 640))
RAW8 = np.zeros((6, 100), np.float32)


@pytest.mark.parametrize("raw, layout, match", [
    (RAW8.astype(np.float64), V8, "raw must be float32, got dtype float64"),
    (np.zeros((2, 6, 100), np.float32), V8, r"raw must be \(rows, cols\) or \(1, rows, cols\), got shape \(2, 6, 100\)"),
    (np.zeros((600,), np.float32), V8, "got shape"),
    (np.zeros((100, 6), np.float32).T, V8, "raw must be C-contiguous"),
    (np.zeros((4, 100), np.float32), V8, r"a V8 output must be \(4 \+ nc, N\), got shape \(4, 100\)"),
    (np.zeros((100, 5), np.float32), V5, r"a V5 output must be \(N, 5 \+ nc\)"),
    (np.zeros((100, 7), np.float32), E2E, r"an? E2E output must be \(K, 6\)|E2E output must be"),
    ([[0.0] * 6], E2E, "raw must be a numpy array, got list"),
])
def test_bad_raw_outputs_raise_input_error(raw, layout, match):
    with pytest.raises(InputError, match=match):
        ops.decode_yolo(raw, layout, 0.25, INFO)
    with pytest.raises(InputError, match=match):
        ops.postprocess(raw, layout, 0.25, INFO)


def test_bad_parameters_raise_input_error():
    with pytest.raises(InputError, match=r"conf_threshold must be in \[0, 1\], got 1.5"):
        ops.decode_yolo(RAW8, V8, 1.5, INFO)
    with pytest.raises(InputError, match="conf_threshold must be in"):
        ops.decode_yolo(RAW8, V8, float("nan"), INFO)
    with pytest.raises(InputError, match="info must be a LetterboxInfo, got tuple"):
        ops.decode_yolo(RAW8, V8, 0.25, (1.0, 0, 0))
    with pytest.raises(InputError, match="layout must be a YoloLayout"):
        ops.decode_yolo(RAW8, 7, 0.25, INFO)
    with pytest.raises(InputError, match=r"shape \(6, 100\) has 2 classes for V8, expected num_classes=80"):
        ops.decode_yolo(RAW8, V8, 0.25, INFO, num_classes=80)
    with pytest.raises(InputError, match="classes must be a list of class ids"):
        ops.decode_yolo(RAW8, V8, 0.25, INFO, classes=[-1])
    with pytest.raises(InputError, match=r"iou_threshold must be in \[0, 1\]"):
        ops.postprocess(RAW8, V8, 0.25, INFO, iou_threshold=-0.1)
    with pytest.raises(InputError, match="max_det must be an integer >= 1, got 0"):
        ops.postprocess(RAW8, V8, 0.25, INFO, max_det=0)


@pytest.mark.parametrize("call, match", [
    (lambda: _native.decode_yolo(RAW8, 3, 0.25, 0, 0, 1, 1, 10, 10), "layout must be 0 .V5., 1 .V8. or 2 .E2E., got 3"),
    (lambda: _native.decode_yolo(RAW8, 1, 0.25, 0, 0, 0.0, 1, 10, 10), "positive scales"),
    (lambda: _native.decode_yolo(RAW8, 1, 0.25, float("nan"), 0, 1, 1, 10, 10), "finite pads"),
    (lambda: _native.decode_yolo(RAW8, 1, 2.0, 0, 0, 1, 1, 10, 10), r"conf must be in \[0, 1\]"),
    (lambda: _native.decode_yolo(RAW8[:, ::2], 1, 0.25, 0, 0, 1, 1, 10, 10), "raw must be C-contiguous"),
    (lambda: _native.decode_yolo(np.zeros((3, 100), np.float32), 1, 0.25, 0, 0, 1, 1, 10, 10), r"a \(3, 100\) output does not fit layout V8"),
    (lambda: _native.decode_yolo(RAW8, 1, 0.25, 0, 0, 1, 1, 10, 10, num_classes=5), "does not fit layout V8 with 5 classes"),
    (lambda: _native.decode_yolo(RAW8, 1, 0.25, 0, 0, 1, 1, 10, 10, classes=np.array([1], np.int64)), "classes must be int32"),
    (lambda: _native.postprocess(RAW8, 1, 0.25, 0, 0, 1, 1, 10, 10, 0, None, 0.5, 0, False), "max_det must be >= 1"),
])
def test_binding_checks_its_own_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- layout detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, nc, end2end, layout", [
    ((1, 6, 8400), 2, None, V8),            # the bundled person detector
    ((1, 84, 8400), 80, False, V8),
    ((1, 84, 8400), None, None, V8),
    ((6, "anchors"), 2, None, V8),          # dynamic anchor count
    ((1, 25200, 85), 80, None, V5),
    ((1, 25200, 85), None, None, V5),
    (("batch", None, 85), 80, None, V5),
    ((1, 300, 6), None, True, E2E),
    ((1, 300, 6), 80, None, E2E),
])
def test_detect_layout(shape, nc, end2end, layout):
    assert ops.detect_layout(shape, nc, end2end) is layout


@pytest.mark.parametrize("shape, nc, end2end, match", [
    ((1, 300, 6), 1, None, "ambiguous between E2E and V5; the model metadata should give end2end"),
    ((1, 300, 6), None, None, "ambiguous between E2E and V5; the model metadata should give names"),
    ((6, 7), 2, None, "ambiguous between V8 and V5"),
    ((1, 84, 8400), 80, True, r"fits no YOLO layout with nc=80; expected \(K, 6\)"),
    ((1, 6, 8400), 80, None, "fits no YOLO layout with nc=80"),
    ((2, 6, 8400), 2, None, "output batch is 2, expected 1"),
    ((8400,), 2, None, r"must be \(rows, cols\) or \(1, rows, cols\)"),
    ((1, 6, 8400), 0, None, "num_classes must be >= 1"),
])
def test_detect_layout_refuses_impossible_or_ambiguous_shapes(shape, nc, end2end, match):
    with pytest.raises(ModelFormatError, match=match):
        ops.detect_layout(shape, nc, end2end, path="model.onnx")


def test_infer_num_classes():
    assert ops.infer_num_classes((1, 6, 8400), V8) == 2
    assert ops.infer_num_classes((1, 25200, 85), V5) == 80
    with pytest.raises(ModelFormatError, match="doesn't say how many classes"):
        ops.infer_num_classes((1, 300, 6), E2E)
    with pytest.raises(ModelFormatError, match="gives no class count"):
        ops.infer_num_classes((1, -1, 8400), V8)
