"""Box appearance (the tracker's identity cue) on a real frame, and what the gate does (the kernel against its
oracles on random frames: tests/test_native_appearance.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime import reference
from edge_runtime.errors import InputError
from edge_runtime.vision.appearance import DIM, appearance_distance, box_appearance, has_appearance
from edge_runtime.vision.detections import Detections
from edge_runtime.vision.tracking import ByteTracker


def test_on_a_real_frame_bands_have_unit_norm_and_tiny_or_outside_boxes_are_empty():
    import cv2

    from edge_runtime.assets import ensure

    capture = cv2.VideoCapture(str(ensure("vtest-video")))
    ok, frame = capture.read()
    capture.release()
    assert ok
    boxes = np.array([[300, 150, 340, 260], [0, 0, 1, 1], [900, 900, 990, 990], [700, 500, 800, 700]], np.float32)
    got = box_appearance(frame, boxes)
    np.testing.assert_allclose(got, reference.box_appearance(frame, boxes), atol=1e-6)
    bands = got.reshape(len(boxes), 3, -1)
    np.testing.assert_allclose(np.linalg.norm(bands[0], axis=1), 1.0, atol=1e-5)
    assert has_appearance(got).tolist() == [True, False, False, True]  # the last is clipped, not empty
    assert appearance_distance(got[:1], got[:1])[0, 0] == pytest.approx(0.0, abs=1e-5)


def test_bad_input_is_refused_with_the_argument_named():
    with pytest.raises(InputError, match="frame"):
        box_appearance(np.zeros((4, 4), np.uint8), np.zeros((1, 4), np.float32))
    with pytest.raises(InputError, match="boxes"):
        box_appearance(np.zeros((4, 4, 3), np.uint8), np.zeros((2, 3), np.float32))
    assert box_appearance(np.zeros((4, 4, 3), np.uint8), np.zeros((0, 4), np.float32)).shape == (0, DIM)


def _painted(colour_bgr, box, size=(120, 160)):
    frame = np.full((size[0], size[1], 3), 128, np.uint8)
    x1, y1, x2, y2 = box
    frame[y1:y2, x1:x2] = colour_bgr
    frame[y1:y2:4, x1:x2] = (np.array(colour_bgr) * 0.6).astype(np.uint8)  # some texture
    return frame


def test_a_confirmed_track_never_takes_a_box_that_looks_different():
    box = (40, 20, 70, 100)
    det = Detections(np.array([box], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
    red, blue = (30, 30, 220), (220, 60, 30)
    ids = {}
    for gate in (0.4, 1.0):  # with the appearance gate, and motion only
        tracker = ByteTracker(min_hits=2, appearance_gate=gate)
        out = [tracker.update(det, frame=_painted(red, box)).track_id[0] for _ in range(3)]
        assert out[-1] == 0
        # Same place, other clothes (the red person left behind someone in blue): only motion matches it.
        ids[gate] = tracker.update(det, frame=_painted(blue, box)).track_id[0]
    assert ids[1.0] == 0 and ids[0.4] != 0
    # The same clothes seen through camera noise stay matched.
    tracker = ByteTracker(min_hits=2)
    for _ in range(3):
        tracker.update(det, frame=_painted(red, box))
    noise = np.random.default_rng(0).integers(-6, 7, (120, 160, 3))
    noisy = np.clip(_painted(red, box).astype(int) + noise, 0, 255).astype(np.uint8)
    assert tracker.update(det, frame=noisy).track_id[0] == 0


def test_precomputed_appearance_must_match_the_detections():
    tracker = ByteTracker()
    det = Detections(np.array([[0, 0, 10, 20]], np.float32), np.array([0.9], np.float32), np.array([0], np.int32))
    with pytest.raises(InputError, match="appearance must be"):
        tracker.update(det, appearance=np.zeros((2, DIM), np.float32))
