"""ByteTracker behaviour, frame by frame: ids, confirmation, gaps, the low-score stage, majority class."""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.errors import ConfigError, InputError
from edge_runtime.vision.detections import Detections
from edge_runtime.vision.tracking import ByteTracker

# Boxes are (x1, y1, x2, y2) in pixels; a "person" is 40 x 100 px.
W, H = 40.0, 100.0


def frame(*objects, score=0.9, cls=0) -> Detections:
    """Detections of one frame; each object is (x, y) of its top-left corner or (x, y, score, cls)."""
    xyxy, scores, classes = [], [], []
    for obj in objects:
        x, y = obj[0], obj[1]
        xyxy.append((x, y, x + W, y + H))
        scores.append(obj[2] if len(obj) > 2 else score)
        classes.append(obj[3] if len(obj) > 3 else cls)
    if not xyxy:
        return Detections.empty()
    return Detections(np.array(xyxy, np.float32), np.array(scores, np.float32), np.array(classes, np.int32))


def ids(tracker: ByteTracker, det: Detections) -> list:
    return tracker.update(det).track_id.tolist()


def test_ids_are_revealed_at_confirmation_after_min_hits_consecutive_frames():
    tracker = ByteTracker(min_hits=3)
    # While tentative, track 0 is reported as -2 - 0: negative (not confirmed), yet its own.
    assert [ids(tracker, frame((10 + 2 * t, 50))) for t in range(5)] == [[-2], [-2], [0], [0], [0]]
    assert tracker.ids_issued == 1


def test_min_hits_one_confirms_at_once_and_ids_count_up_in_creation_order():
    tracker = ByteTracker(min_hits=1)
    assert ids(tracker, frame((10, 50), (300, 50), (600, 50))) == [0, 1, 2]
    assert ids(tracker, frame((602, 50), (12, 50), (302, 50))) == [2, 0, 1]


def test_a_tentative_track_that_misses_a_frame_starts_over():
    tracker = ByteTracker(min_hits=3)
    assert ids(tracker, frame((10, 50))) == [-2]
    assert ids(tracker, frame((12, 50))) == [-2]
    assert ids(tracker, frame()) == []  # not consecutive any more: the tentative track is dropped
    assert [ids(tracker, frame((16, 50))) for _ in range(3)] == [[-3], [-3], [1]]  # id 0 is never used
    assert tracker.ids_issued == 1


@pytest.mark.parametrize("tentative_low", [True, False])
def test_a_tentative_track_takes_low_score_boxes_only_with_tentative_low(tentative_low):
    # Someone stepping into view: one confident box, then boxes under the high threshold (partly hidden).
    tracker = ByteTracker(min_hits=3, high_score=0.3, low_score=0.1, new_track_score=0.4,
                          tentative_low=tentative_low)
    got = [ids(tracker, frame((10 + 4 * t, 50, 0.9 if t == 0 else 0.2))) for t in range(4)]
    if tentative_low:
        assert got == [[-2], [-2], [0], [0]]  # confirmed on the third consecutive match, low boxes included
    else:
        assert got == [[-2], [-1], [-1], [-1]]  # ByteTrack: the tentative track is dropped, no low box starts one
    # Low-score boxes never start a track, either way.
    fresh = ByteTracker(min_hits=1, tentative_low=tentative_low)
    assert ids(fresh, frame((400, 50, 0.2))) == [-1]


@pytest.mark.parametrize("grown, low_max_growth, kept", [
    (1.4, 1.5, True),    # a low-score box a little taller (a person's legs showing again): it extends the track
    (1.6, 1.5, False),   # much taller (merged with someone beside them, or joined to a bike below): it does not
    (1.6, 0.0, True),    # the check off
])
def test_a_low_score_box_much_taller_than_the_track_does_not_extend_it(grown, low_max_growth, kept):
    tracker = ByteTracker(min_hits=1, low_max_growth=low_max_growth)
    box = lambda h, s: Detections(np.array([[100, 200 - h / 2, 140, 200 + h / 2]], np.float32),
                                  np.array([s], np.float32), np.array([0], np.int32))
    assert [tracker.update(box(100, 0.9)).track_id.tolist() for _ in range(3)] == [[0], [0], [0]]
    # The same centre, grown about it (so only the height differs), scored under high_score.
    assert tracker.update(box(100 * grown, 0.2)).track_id.tolist() == ([0] if kept else [-1])
    # A confident box that tall still matches: the check is for the low-score association only.
    tall = ByteTracker(min_hits=1, low_max_growth=low_max_growth)
    for _ in range(3):
        tall.update(box(100, 0.9))
    assert tall.update(box(100 * grown, 0.9)).track_id.tolist() == [0]


def test_low_max_growth_is_checked():
    with pytest.raises(ConfigError, match="low_max_growth"):
        ByteTracker(low_max_growth=0.5)
    with pytest.raises(ConfigError, match="low_max_growth"):
        ByteTracker(low_max_growth=-1)


def test_two_boxes_crossing_paths_keep_their_ids():
    tracker = ByteTracker(min_hits=2)
    seen = []
    for t in range(40):
        # A walks right, B walks left, on slightly different rows; they overlap around t = 20.
        a, b = (20 + 10 * t, 100), (420 - 10 * t, 120)
        out = tracker.update(frame(a, b))
        seen.append(out.track_id.tolist())
    assert seen[0] == [-2, -3]
    assert all(pair == [0, 1] for pair in seen[1:]), seen
    assert tracker.ids_issued == 2


def test_a_gap_shorter_than_the_lost_buffer_keeps_the_id():
    tracker = ByteTracker(min_hits=2, lost_s=0.5)
    for t in range(10):
        assert ids(tracker, frame((10 + 5 * t, 50))) == ([-2] if t == 0 else [0])
    for t in range(10, 15):  # 5 frames unseen (occluded), still walking
        assert ids(tracker, frame()) == []
    assert ids(tracker, frame((10 + 5 * 15, 50))) == [0]  # the Kalman prediction carried it across the gap
    assert tracker.ids_issued == 1


def test_a_gap_longer_than_the_lost_buffer_gives_a_new_id():
    tracker = ByteTracker(min_hits=2, lost_s=0.5)
    for t in range(10):
        ids(tracker, frame((10 + 5 * t, 50)))
    for _ in range(6):
        ids(tracker, frame())
    assert tracker.num_tracks == 0
    assert [ids(tracker, frame((10 + 5 * 16 + 5 * k, 50))) for k in range(2)] == [[-3], [1]]


def test_low_score_detections_extend_a_track_through_the_second_stage():
    def run(low_score_of_frames: float) -> list:
        tracker = ByteTracker(min_hits=2, lost_s=0)  # lost_s=0: a single miss ends the track
        out = [ids(tracker, frame((10 + 4 * t, 50))) for t in range(5)]
        out += [ids(tracker, frame((10 + 4 * t, 50, low_score_of_frames))) for t in range(5, 10)]
        out += [ids(tracker, frame((10 + 4 * t, 50))) for t in range(10, 12)]
        return out

    # Score 0.2 is below high_score (0.3) but above low_score (0.1): the occluded person keeps id 0.
    assert run(0.2) == [[-2]] + [[0]] * 11
    # Score 0.05 is below low_score: the track is lost and the person comes back as a new track.
    assert run(0.05) == [[-2]] + [[0]] * 4 + [[-1]] * 5 + [[-3], [1]]


@pytest.mark.parametrize("revive_lost", [True, False])
def test_low_score_detections_re_find_lost_tracks_only_with_revive_lost(revive_lost):
    tracker = ByteTracker(min_hits=2, revive_lost=revive_lost)
    out = [ids(tracker, frame((10 + 4 * t, 50))) for t in range(5)]
    out += [ids(tracker, frame()) for _ in range(2)]  # occluded for two frames
    out += [ids(tracker, frame((10 + 4 * t, 50, 0.25))) for t in range(7, 9)]  # back, but scored low
    # With revive_lost the walker keeps id 0; without, low-score boxes can't re-find a lost track (and
    # can't start one), so they stay untracked.
    assert out[7:] == ([[0], [0]] if revive_lost else [[-1], [-1]])


def test_low_score_detections_never_start_tracks():
    tracker = ByteTracker(min_hits=1)
    assert [ids(tracker, frame((10, 50, 0.25))) for _ in range(5)] == [[-1]] * 5
    assert tracker.num_tracks == 0


def test_every_detection_is_returned_in_input_order():
    tracker = ByteTracker(min_hits=1, high_score=0.5, low_score=0.1)
    det = frame((10, 50, 0.9), (300, 50, 0.05), (600, 50, 0.3), (900, 50, 0.8))
    out = tracker.update(det)
    np.testing.assert_array_equal(out.xyxy, det.xyxy)
    np.testing.assert_array_equal(out.score, det.score)
    assert out.track_id.tolist() == [0, -1, -1, 1]
    assert out.track_id.dtype == np.int32


def test_class_is_the_majority_over_the_track_history():
    tracker = ByteTracker(min_hits=1)
    classes = [0, 0, 0, 1, 1, 0, 1, 1, 1, 1]
    got = [tracker.update(frame((10 + 3 * t, 50, 0.9, c))).class_id.tolist()[0] for t, c in enumerate(classes)]
    # Votes for 1 overtake at frame 9 (5 vs 4); a tie (frame 8: 4 vs 4) keeps the current class.
    assert got == [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]


def test_unconfirmed_detections_keep_their_own_class():
    tracker = ByteTracker(min_hits=3)
    assert tracker.update(frame((10, 50, 0.9, 1))).class_id.tolist() == [1]
    assert tracker.update(frame((12, 50, 0.9, 4))).class_id.tolist() == [4]


def test_ids_are_never_reused_not_even_after_reset():
    tracker = ByteTracker(min_hits=1, lost_s=0)
    assert ids(tracker, frame((10, 50))) == [0]
    assert ids(tracker, frame()) == []
    assert ids(tracker, frame((10, 50))) == [1]
    tracker.reset()
    assert ids(tracker, frame((10, 50))) == [2]


def test_tracking_is_deterministic():
    rng = np.random.default_rng(7)
    frames = []
    for t in range(60):
        objs = [(50 + 6 * t + rng.normal(0, 2), 80 + 30 * k, float(rng.uniform(0.05, 1.0)), int(rng.integers(0, 3)))
                for k in range(6) if rng.random() > 0.15]
        frames.append(frame(*objs))
    runs = []
    for _ in range(2):
        tracker = ByteTracker()
        runs.append([(o.track_id.tolist(), o.class_id.tolist()) for o in map(tracker.update, frames)])
    assert runs[0] == runs[1]
    assert max(max(i, default=-1) for i, _ in runs[0]) >= 0  # it did track something


def test_empty_frames_and_confirmed_tracks_view():
    tracker = ByteTracker(min_hits=1)
    assert len(tracker.update(Detections.empty())) == 0
    ids(tracker, frame((10, 50), (200, 50)))
    view = tracker.confirmed_tracks()
    assert view.track_id.tolist() == [0, 1]
    np.testing.assert_allclose(view.xyxy, [[10, 50, 50, 150], [200, 50, 240, 150]], atol=1e-3)


def test_bad_input_and_config_are_reported():
    with pytest.raises(InputError, match="expected Detections"):
        ByteTracker().update(np.zeros((1, 4)))
    with pytest.raises(ConfigError, match="min_hits"):
        ByteTracker(min_hits=0)
    with pytest.raises(ConfigError, match="lost_s"):
        ByteTracker(lost_s=-1)
    with pytest.raises(ConfigError, match="fps"):
        ByteTracker(fps=0)
    with pytest.raises(ConfigError, match="match_iou"):
        ByteTracker(match_iou=1.5)
    with pytest.raises(ConfigError, match="low_score"):
        ByteTracker(low_score=0.6, high_score=0.5)


def test_lost_buffer_is_in_seconds_whatever_the_processed_rate():
    box = lambda x: Detections(np.array([[x, 0, x + 40, 100]], np.float32), np.array([0.9], np.float32),
                               np.array([0], np.int32))
    for step_s in (0.1, 0.4):  # every frame of a 10 fps camera, or every 4th
        tracker = ByteTracker(min_hits=1, lost_s=1.0, fps=10)
        assert tracker.update(box(0), timestamp_s=0.0).track_id.tolist() == [0]
        t = step_s
        while t <= 0.95:  # hidden for up to 0.95 s: the track survives
            tracker.update(Detections.empty(), timestamp_s=t)
            t += step_s
        assert tracker.update(box(2), timestamp_s=1.0).track_id.tolist() == [0]
        tracker.update(Detections.empty(), timestamp_s=1.5)
        tracker.update(Detections.empty(), timestamp_s=2.1)  # 1.1 s unseen: dropped
        assert tracker.update(box(4), timestamp_s=2.2).track_id.tolist() == [1]


def test_timestamps_must_not_go_backwards():
    tracker = ByteTracker()
    tracker.update(Detections.empty(), timestamp_s=5.0)
    with pytest.raises(InputError, match="backwards"):
        tracker.update(Detections.empty(), timestamp_s=4.0)


# -- tracks that enter at the picture's border -------------------------------------------------------------


def _people(*boxes):
    return Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.5, np.float32),
                      np.zeros(len(boxes), np.int32))


# vtest.avi, every 4th frame (0.4 s apart): a man steps in at the right edge, a woman right behind him. On
# the second frame she stands about where he was first seen, and he is 33 px further in.
MAN_FIRST = [710, 279, 760, 396]
MAN_NEXT, WOMAN_NEXT = [677, 265, 730, 377], [723, 264, 762, 374]


@pytest.mark.parametrize("entry_speed_rel, man_keeps_his_track", [(0.75, True), (0.0, False)])
def test_someone_stepping_in_behind_does_not_take_the_track_of_who_came_in_first(entry_speed_rel,
                                                                                   man_keeps_his_track):
    tracker = ByteTracker(fps=10.0, entry_speed_rel=entry_speed_rel)
    first = tracker.update(_people(MAN_FIRST), timestamp_s=0.0, frame_size=(768, 576)).track_id.tolist()
    man, woman = tracker.update(_people(MAN_NEXT, WOMAN_NEXT), timestamp_s=0.4,
                                frame_size=(768, 576)).track_id.tolist()
    assert (man == first[0]) is man_keeps_his_track  # at rest, his track is predicted where she now stands
    assert (woman == first[0]) is not man_keeps_his_track


def test_the_picture_size_comes_from_the_frame_too():
    tracker = ByteTracker(fps=10.0)
    frame = np.zeros((576, 768, 3), np.uint8)
    first = tracker.update(_people(MAN_FIRST), timestamp_s=0.0, frame=frame).track_id.tolist()
    assert tracker.update(_people(MAN_NEXT, WOMAN_NEXT), timestamp_s=0.4, frame=frame).track_id.tolist()[0] == first[0]


def test_entry_velocity_points_into_the_picture_from_each_border():
    from edge_runtime.vision.tracking import _entry_velocity

    boxes = np.array([[0, 100, 40, 200],      # at the left border: moves right
                      [700, 100, 768, 200],   # at the right border: moves left
                      [300, 2, 340, 102],     # at the top: moves down
                      [300, 470, 340, 576],   # at the bottom: moves up
                      [0, 0, 768, 576],       # at every border: stays
                      [300, 200, 340, 300],   # mid-picture: stays
                      [10, 300, 60, 400]], np.float32)  # 10 px from the left, within a fifth of its 50 px width
    v = _entry_velocity(boxes, (768, 576), np.full(len(boxes), 2.0))
    np.testing.assert_array_equal(v, [[2, 0], [-2, 0], [0, 2], [0, -2], [0, 0], [0, 0], [2, 0]])


@pytest.mark.parametrize("size", [(0, 576), (768,), ("768", 576), (768, float("inf")), (-1, 10)])
def test_a_bad_frame_size_is_refused_when_a_track_starts(size):
    with pytest.raises(InputError, match="frame_size must be"):
        ByteTracker().update(_people(MAN_FIRST), frame_size=size)


def test_entry_speed_must_not_be_negative():
    with pytest.raises(ConfigError, match="entry_speed_rel"):
        ByteTracker(entry_speed_rel=-0.1)


# -- a low-score box that fits a track much better than a confident one -----------------------------------------


# vtest.avi at the lamp post, every 2nd frame: a man stands still; at f60 the man who stood behind him walks off
# to the left. The detector is sure of the one walking off (0.30, his box half over the standing man's) and unsure
# of the standing man (0.22, a box right where he stands).
STANDING = [372, 166, 409, 262]
WALKING_OFF, STILL_THERE = [356, 166, 390, 236], [374, 178, 410, 260]


def _scored(boxes, scores):
    return Detections(np.array(boxes, np.float32), np.array(scores, np.float32), np.zeros(len(boxes), np.int32))


@pytest.mark.parametrize("low_fit_margin, keeps_his_box", [(0.3, True), (0.0, False)])
def test_a_track_keeps_the_low_score_box_on_it_rather_than_a_neighbours_confident_one(low_fit_margin, keeps_his_box):
    tracker = ByteTracker(fps=10.0, low_fit_margin=low_fit_margin, motion_gate=0.0)
    for k in range(4):
        ids = tracker.update(_scored([STANDING], [0.41]), timestamp_s=0.2 * k).track_id.tolist()
    walking, standing = tracker.update(_scored([WALKING_OFF, STILL_THERE], [0.30, 0.22]),
                                       timestamp_s=0.8).track_id.tolist()
    assert (standing == ids[0]) is keeps_his_box
    assert (walking == ids[0]) is not keeps_his_box


def test_the_low_fit_rule_does_not_apply_where_the_low_score_box_fits_another_track_better():
    """Two men side by side; the unsure box is right on the second man's track (and fits the first one's too), so
    the first still takes the confident box that half covers him."""
    tracker = ByteTracker(fps=10.0, motion_gate=0.0)
    beside = [380, 166, 417, 262]
    for k in range(4):
        ids = tracker.update(_scored([STANDING, beside], [0.5, 0.5]), timestamp_s=0.2 * k).track_id.tolist()
    got = tracker.update(_scored([WALKING_OFF, beside], [0.5, 0.2]), timestamp_s=0.8).track_id.tolist()
    assert got == ids


def _looks(*cosines: tuple) -> np.ndarray:
    """(N, DIM) appearance vectors, each band cos * e0 + sin * e_k (k = 1, 2, ...): the k-th vector's distance to
    e0 in every band is 1 - cos."""
    from edge_runtime.vision.appearance import BANDS, DIM

    out = np.zeros((len(cosines), len(BANDS), DIM // len(BANDS)), np.float32)
    for k, c in enumerate(cosines):
        out[k, :, 0], out[k, :, k + 1] = c, np.sqrt(1.0 - c * c)
    return out.reshape(len(cosines), DIM)


@pytest.mark.parametrize("low_look_margin, with_look, keeps_his_box", [(0.1, True, True), (0.0, True, False),
                                                                       (0.1, False, False)])
def test_a_track_keeps_the_low_score_box_that_looks_like_it_rather_than_a_walkers(low_look_margin, with_look,
                                                                                  keeps_his_box):
    """The walker's confident box covers part of the standing man; his own box is unsure, fits better, and looks
    like him (distance 0.1 against the walker's 0.34). Low_fit is off, so the look alone decides."""
    tracker = ByteTracker(fps=10.0, low_fit_margin=0.0, low_look_margin=low_look_margin, motion_gate=0.0)
    him, walker_and_him = _looks(1.0), _looks(0.66, 0.9)
    for k in range(4):
        ids = tracker.update(_scored([STANDING], [0.41]), timestamp_s=0.2 * k,
                             appearance=him if with_look else None).track_id.tolist()
    walking, standing = tracker.update(_scored([WALKING_OFF, STILL_THERE], [0.30, 0.22]), timestamp_s=0.8,
                                       appearance=walker_and_him if with_look else None).track_id.tolist()
    assert (standing == ids[0]) is keeps_his_box
    assert (walking == ids[0]) is not keeps_his_box


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_low_look_margin_must_be_in_0_1(bad):
    with pytest.raises(ConfigError, match="low_look_margin"):
        ByteTracker(low_look_margin=bad)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_low_fit_margin_must_be_in_0_1(bad):
    with pytest.raises(ConfigError, match="low_fit_margin"):
        ByteTracker(low_fit_margin=bad)


# vtest.avi at the lamp post, every 4th frame: a man who just stepped over walkway stands behind the sign; a second
# man is seen beside him for the first time. On the next frame the sign hides the first man, and the only box is the
# second man's, a third over the first man's track.
BEHIND_SIGN, NEWCOMER, NEWCOMER_NEXT = [392, 182, 428, 259], [362, 175, 409, 245], [374, 171, 414, 255]


@pytest.mark.parametrize("tentative_fit_margin, newcomer_keeps_his_box", [(0.1, True), (0.0, False)])
def test_a_confirmed_track_does_not_take_a_newcomers_box_beside_it(tentative_fit_margin, newcomer_keeps_his_box):
    tracker = ByteTracker(fps=10.0, tentative_fit_margin=tentative_fit_margin, motion_gate=0.0)
    for k in range(4):
        first = tracker.update(_scored([BEHIND_SIGN], [0.45]), timestamp_s=0.4 * k).track_id.tolist()[0]
    _, newcomer = tracker.update(_scored([BEHIND_SIGN, NEWCOMER], [0.45, 0.54]), timestamp_s=1.6).track_id.tolist()
    assert newcomer < -1  # tentative
    got = tracker.update(_scored([NEWCOMER_NEXT], [0.44]), timestamp_s=2.0).track_id.tolist()[0]
    assert (got == newcomer) is newcomer_keeps_his_box
    assert (got == first) is not newcomer_keeps_his_box


def test_a_track_missed_on_the_last_frame_is_not_held_back_by_a_tentative_track_on_its_own_shifted_box():
    """A man raises his arms: his box jumps sideways for a frame, too far for his track, and starts a tentative
    one. On the next frame his track (missed once) still takes his box."""
    tracker = ByteTracker(fps=10.0, motion_gate=0.0)
    for k in range(4):
        first = tracker.update(_scored([[583, 130, 623, 198]], [0.41]), timestamp_s=0.1 * k).track_id.tolist()[0]
    jumped = tracker.update(_scored([[545, 129, 597, 200]], [0.45]), timestamp_s=0.4).track_id.tolist()[0]
    assert jumped < -1  # his track missed it; a tentative one started on it
    assert tracker.update(_scored([[560, 129, 611, 199]], [0.46]), timestamp_s=0.5).track_id.tolist() == [first]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_tentative_fit_margin_must_be_in_0_1(bad):
    with pytest.raises(ConfigError, match="tentative_fit_margin"):
        ByteTracker(tentative_fit_margin=bad)


@pytest.mark.parametrize("tentative_match_iou, followed", [(0.3, False), (0.2, True)])
def test_a_tentative_track_follows_a_step_of_most_of_a_box_width_only_above_tentative_match_iou(tentative_match_iou,
                                                                                                followed):
    # Someone just seen, with no velocity yet, walks 25 px of a 40 px wide box to the next processed frame:
    # IoU 1500 / 6500 = 0.23 with where the track was.
    tracker = ByteTracker(min_hits=3, tentative_match_iou=tentative_match_iou, motion_gate=0.0)
    first = ids(tracker, frame((10, 50)))
    second = ids(tracker, frame((35, 50)))
    assert first == [-2]
    assert (second == first) is followed, second


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_tentative_match_iou_must_be_in_0_1(bad):
    with pytest.raises(ConfigError, match="tentative_match_iou"):
        ByteTracker(tentative_match_iou=bad)
