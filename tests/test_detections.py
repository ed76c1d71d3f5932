"""Detections: the constructor's checks, and selections that keep every rule without re-checking."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime import Detections, InputError

BOXES = np.array([[0, 0, 10, 20], [5, 5, 6, 9], [30, 40, 50, 90], [1, 1, 2, 2]], np.float32)
SCORES = np.array([0.9, 0.3, 0.6, 0.1], np.float32)
CLASSES = np.array([0, 2, 1, 0], np.int32)
TRACKS = np.array([4, -1, -3, 7], np.int32)


@pytest.mark.parametrize("xyxy, score, class_id, fragment", [
    (BOXES[:, :3], SCORES, CLASSES, r"xyxy: expected shape \(N, 4\)"),
    (BOXES, SCORES[:3], CLASSES, "lengths differ"),
    (np.where(np.eye(4, dtype=bool), np.nan, BOXES).astype(np.float32), SCORES, CLASSES, "NaN or inf"),
    (BOXES, np.array([0.9, np.inf, 0.6, 0.1], np.float32), CLASSES, "score: contains NaN or inf"),
    (BOXES[:, [2, 1, 0, 3]], SCORES, CLASSES, "x1 <= x2"),
    (BOXES, SCORES, np.array([0, -1, 0, 0], np.int32), "class_id: must be >= 0"),
    (BOXES, SCORES, np.array([0.5, 1, 0, 0]), "class_id: expected int32, got float64"),
])
def test_constructor_refuses_what_breaks_a_rule(xyxy, score, class_id, fragment):
    with pytest.raises(InputError, match=fragment):
        Detections(xyxy, score, class_id)


@pytest.mark.parametrize("index, rows", [
    (np.array([True, False, True, True]), [0, 2, 3]),
    (2, [2]),
    (np.int64(3), [3]),
    (slice(None, None, 2), [0, 2]),
    (slice(None, None, -1), [3, 2, 1, 0]),
    (np.array([3, 0]), [3, 0]),
    (np.zeros(4, bool), []),
])
def test_selection_gives_contiguous_rows_of_the_right_types(index, rows):
    d = Detections(BOXES, SCORES, CLASSES, TRACKS)
    s = d[index]
    assert isinstance(s, Detections) and len(s) == len(rows)
    for got, full in ((s.xyxy, BOXES), (s.score, SCORES), (s.class_id, CLASSES), (s.track_id, TRACKS)):
        assert got.flags.c_contiguous and got.dtype == full.dtype
        np.testing.assert_array_equal(got, full[rows])
    assert s.xyxy.shape == (len(rows), 4)


def test_selection_without_track_ids_keeps_none():
    assert Detections(BOXES, SCORES, CLASSES)[[1]].track_id is None


def test_a_mask_of_the_wrong_length_is_refused():
    with pytest.raises(IndexError):
        Detections(BOXES, SCORES, CLASSES)[np.array([True, False])]


def test_with_track_id_checks_the_length():
    d = Detections(BOXES, SCORES, CLASSES)
    np.testing.assert_array_equal(d.with_track_id(TRACKS).track_id, TRACKS)
    with pytest.raises(InputError, match="track_id: length 2, expected 4"):
        d.with_track_id(TRACKS[:2])
