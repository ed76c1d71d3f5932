"""Counting judged against by-eye truth on real video (``benchmarks/truth``), on the detector's real output.

The truth was made by looking at frames (see ``benchmarks/truth/README.md``); the detections are the
built-in YOLOv8s person detector's output on every frame, frozen in ``benchmarks/truth/detections`` and
re-checked here against the detector itself. Each line and zone is replayed at detector strides 1-4
(every frame ... every 4th frame of the camera) through our tracker and counters and through the peer
stack (``trackers`` ByteTrack + supervision), and scored event by event (same direction within ±5
frames).

The targets are the counting issue's: per-direction counts within ±1 of the truth at strides 1 and 2
and ±2 at stride 3; at stride 4 event recall >= 0.8 with precision >= 0.95; never a larger count error
than the peer stack. Every line, zone and stride is asserted to meet its target.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench_counting import meets
from benchmarks.counting_eval import VIDEOS, load_truth, replay, score
from benchmarks.frozen import committed_path, load_frozen

STRIDES = (1, 2, 3, 4)

# (video, item, stride) where the peer stack's count is closer: our worst per-direction error now, why.
PEER_GAPS: dict = {}


@pytest.fixture(scope="module")
def replays():
    """{(video, stride): (truth, {stack: {item: events}})} for every truth video and stride."""
    out = {}
    for video in VIDEOS:
        truth = load_truth(video)
        frozen = load_frozen(committed_path(video))
        for stride in STRIDES:
            out[(video, stride)] = (truth, replay(frozen, truth.items, stride, stacks=("ours", "peer"), video=video))
    return out


def _cases():
    for video in VIDEOS:
        for item in load_truth(video).items:
            for stride in STRIDES:
                yield video, item.name, stride


def _ids(cases):
    return [pytest.param(*c, id=f"{c[0].split('-')[0]}-{c[1]}-stride{c[2]}") for c in cases]


def _result(replays, video, name, stride, stack):
    truth, events = replays[(video, stride)]
    item = next(i for i in truth.items if i.name == name)
    return item, score(events[stack][name], item.events, undecidable=item.undecidable)


def test_every_truth_has_lines_and_zones_of_each_kind():
    vtest = load_truth("vtest-video")
    assert sum(i.kind == "line" for i in vtest.items) >= 6 and sum(i.kind == "zone" for i in vtest.items) >= 3
    assert {i.split for i in vtest.items} == {"tune", "report"}
    assert load_truth("bikes-video").items
    kinds = {n["kind"] for i in vtest.items for n in i.non_events}
    assert {"loiter", "touch_and_return", "beside", "cut_by_end"} <= kinds


@pytest.mark.parametrize("video", VIDEOS)
def test_frozen_detections_are_the_detectors_output(video):
    import cv2

    from edge_runtime.assets import ensure
    from edge_runtime.vision.detector import Detector

    frozen = load_frozen(committed_path(video))
    model, source = ensure("yolov8s-person"), ensure(video)
    for path, digest in ((model, frozen.model_sha256), (source, frozen.video_sha256)):
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest
    detector = Detector(model, threads=2, conf_threshold=frozen.conf_threshold)
    capture = cv2.VideoCapture(str(source))
    wanted = set(np.linspace(0, frozen.num_frames - 1, 6).astype(int).tolist())
    for index in range(frozen.num_frames):
        ok, image = capture.read()
        assert ok
        if index not in wanted:
            continue
        got, stored = detector.detect(image), frozen.frame(index)
        confident = stored.score >= 0.2  # boxes near the threshold may come and go across CPUs' float paths
        for box, s in zip(stored.xyxy[confident], stored.score[confident]):
            nearest = np.abs(got.xyxy - box).max(axis=1).argmin()
            assert np.abs(got.xyxy[nearest] - box).max() < 1.0 and abs(got.score[nearest] - s) < 0.01
    capture.release()


@pytest.mark.parametrize("video, name, stride", _ids(_cases()))
def test_counts_meet_the_target_on_every_line_and_zone(replays, video, name, stride):
    item, ours = _result(replays, video, name, stride, "ours")
    assert meets(ours, stride), (f"{name} at stride {stride}: count error {ours['count_error']}, precision "
                                 f"{ours['precision']:.2f}, recall {ours['recall']:.2f} ({len(item.events)} events)")


@pytest.mark.parametrize("video, name, stride", _ids(_cases()))
def test_never_a_larger_count_error_than_the_peer_stack(replays, video, name, stride):
    _, ours = _result(replays, video, name, stride, "ours")
    _, peer = _result(replays, video, name, stride, "peer")
    if (video, name, stride) in PEER_GAPS:
        bound, why = PEER_GAPS[(video, name, stride)]
        assert peer["max_abs_count_error"] < ours["max_abs_count_error"] <= bound, (ours["count_error"], why)
    else:
        assert ours["max_abs_count_error"] <= peer["max_abs_count_error"], (ours["count_error"], peer["count_error"])


def test_event_precision_and_recall_over_all_truths_at_stride_1(replays):
    tp = fp = fn = fp_strict = 0
    peer_tp = peer_fp = peer_fn = 0
    for video in VIDEOS:
        truth, events = replays[(video, 1)]
        for item in truth.items:
            s = score(events["ours"][item.name], item.events, undecidable=item.undecidable)
            p = score(events["peer"][item.name], item.events, undecidable=item.undecidable)
            tp, fp, fn, fp_strict = tp + s["tp"], fp + s["fp"], fn + s["fn"], fp_strict + s["fp_strict"]
            peer_tp, peer_fp, peer_fn = peer_tp + p["tp"], peer_fp + p["fp"], peer_fn + p["fn"]
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert tp / (tp + fp_strict) >= 0.95, tp / (tp + fp_strict)
    # The bar is 0.95 for both; measured 0.993 / 0.954 (precision 0.973 with the undecidable passes
    # counted as false events, which still meets it: asserted below too).
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    assert precision > peer_tp / (peer_tp + peer_fp) + 0.2 and recall > peer_tp / (peer_tp + peer_fn) + 0.2


# Events that match nobody in the truth and fall where it records someone loitering on a line or stepping
# over and back: the target is zero, at every stride. The men standing just over a line or a zone's
# edge (lamp, road_corner, walkway) do not count: their crossings never complete (``commit_rel``), and one
# not complete when the scene cuts is dropped (the waiting cyclist on bikes.mp4, whose box passing cars cut
# short); the man who stays 3.7 s over left_path keeps his track through the woman walking past him (the
# tracker's motion gate), so his return undoes his crossing. At stride 4, the leather-jacket man's track, which
# crossed just over walkway at f37, does not pass to the dark-jacket man beside him when the sign hides him (the
# tracker's tentative_fit_margin). At stride 2, the dark-jacket man standing on walkway for 12 s keeps his own
# low-score box rather than take the confident box of the long-coated man walking off left behind him at f60 (the
# tracker's low_look_margin: his box looks more like him); at stride 3 too, where the man beside him, whose own
# confident box fits him better, no longer counts as claiming that low-score box. The long-coated man's new track
# then continues his track of 1.2 s before, not his older one (the counter's likeliest stitch), so his crossing
# is timed at f57, where it happened, rather than inside the dark-jacket man's loiter.
@pytest.mark.parametrize("stride", STRIDES)
def test_no_counts_from_loiterers_or_touch_and_return(replays, stride):
    """No unmatched event falls inside the truth's loiter / touch-and-return spans (within 5 frames)."""
    offending = []
    for video in VIDEOS:
        truth, events = replays[(video, stride)]
        for item in truth.items:
            spans = [n["frames"] for n in item.non_events if n["kind"] in ("loiter", "touch_and_return")
                     and isinstance(n.get("frames"), list) and len(n["frames"]) == 2]
            for frame, direction in events["ours"][item.name]:
                matched = any(d == direction and abs(f - frame) <= 5 for f, d in item.events)
                if not matched and any(a - 5 <= frame <= b + 5 for a, b in spans):
                    offending.append((video, item.name, frame, direction))
    assert offending == []


def test_replays_track_the_classes_the_built_in_job_tracks():
    """The benchmark and these tests judge what the job counts: its ``model.classes``, in both stacks."""
    from benchmarks.counting_eval import JOB_CLASSES
    from edge_runtime.runtime.config import default_config

    assert list(JOB_CLASSES) == list(default_config().model.classes)


def test_an_undecidable_pass_is_neither_right_nor_wrong():
    """score(): an unmatched event within tol of an undecidable span is left out of every figure (and
    counted in ``ignored`` / ``fp_strict``); one outside it is a false event, and a true event near the
    span is still missed if nothing matches it."""
    truth = [(100, "in")]
    spans = [(200, 210)]
    s = score([(100, "in"), (214, "out")], truth, undecidable=spans)
    assert (s["tp"], s["fp"], s["fn"], s["ignored"], s["fp_strict"]) == (1, 0, 0, 1, 1)
    assert s["count_error"] == {"in": 0} and s["precision"] == 1.0 and s["precision_strict"] == 0.5
    s = score([(100, "in"), (216, "out")], truth, undecidable=spans)  # beyond the span's tolerance
    assert (s["fp"], s["ignored"], s["count_error"]) == (1, 0, {"in": 0, "out": 1})
    s = score([(100, "out")], [(100, "in")], undecidable=[(95, 105)])  # truth there is decided: not spared
    assert (s["tp"], s["fp"], s["fn"], s["ignored"]) == (0, 0, 1, 1) or (s["tp"], s["fp"], s["fn"]) == (0, 1, 1)


def test_score_names_the_events_it_got_wrong():
    """score() lists the unmatched predictions and true events; an ignored one is in neither list, and a
    prediction 6 frames off (beyond the 5-frame tolerance) is both a false and a missed event."""
    truth = [(100, "in"), (150, "out"), (300, "in")]
    s = score([(101, "in"), (156, "out"), (205, "in"), (400, "out")], truth, undecidable=[(200, 210)])
    assert (s["tp"], s["fp"], s["fn"], s["ignored"]) == (1, 2, 2, 1)
    assert s["false_events"] == [[156, "out"], [400, "out"]]
    assert s["missed_events"] == [[150, "out"], [300, "in"]]
    assert len(s["false_events"]) == s["fp"] and len(s["missed_events"]) == s["fn"]


def test_score_pairs_as_many_events_as_the_tolerance_allows():
    """Two people crossing together at f287 and f288, counted at f282 and f285: pairing the closest first
    (285-287) would leave 282-288 (6 frames) unpaired; 282-287 and 285-288 pair both within 5 frames. Among
    pairings of equal size the closer one is kept, and directions never pair across."""
    s = score([(282, "in"), (285, "in")], [(287, "in"), (288, "in")])
    assert (s["tp"], s["fp"], s["fn"]) == (2, 0, 0)
    s = score([(282, "in"), (285, "out")], [(287, "in"), (288, "in")])
    assert (s["tp"], s["fp"], s["fn"]) == (1, 1, 1)
    assert s["false_events"] == [[285, "out"]] and s["missed_events"] == [[288, "in"]]
    s = score([(100, "in"), (104, "in")], [(101, "in")])  # the nearer one pairs; the other is false
    assert s["false_events"] == [[104, "in"]]
    assert score([], [(5, "in")])["fn"] == 1 and score([(5, "in")], [])["fp"] == 1


def test_the_truth_marks_only_occluded_passes_undecidable():
    for video in VIDEOS:
        for item in load_truth(video).items:
            for n in item.non_events:
                if n.get("undecidable"):
                    assert n["kind"] == "occluded" and len(n["frames"]) == 2, (video, item.name, n)


# Irregular gaps (benchmarks.counting_eval.irregular_frames, seeds 0-3), fp32: the fewest of the 14 lines and
# zones meeting the stride's target in any seed, as measured (counting.json, rows "fp32-irregular"). Below the
# fixed strides' levels: gaps of stride + 1 frames are the ones that lose people (lamp and lawn_edge at every
# 4th frame; lamp at every 2nd).
IRREGULAR_FLOOR = {2: 13, 3: 14, 4: 12}


@pytest.fixture(scope="module")
def irregular_replays():
    from benchmarks.counting_eval import irregular_frames

    out = {}
    for video in VIDEOS:
        truth = load_truth(video)
        frozen = load_frozen(committed_path(video))
        for stride in IRREGULAR_FLOOR:
            for seed in range(4):
                frames = irregular_frames(frozen.num_frames, stride, seed)
                out[(video, stride, seed)] = (truth, replay(frozen, truth.items, stride, stacks=("ours",),
                                                            video=video, frames=frames))
    return out


@pytest.mark.parametrize("stride", sorted(IRREGULAR_FLOOR))
def test_replays_at_a_live_runs_irregular_gaps_hold_their_measured_level(irregular_replays, stride):
    for seed in range(4):
        met = 0
        for video in VIDEOS:
            truth, events = irregular_replays[(video, stride, seed)]
            met += sum(meets(score(events["ours"][item.name], item.events, undecidable=item.undecidable), stride)
                       for item in truth.items)
        assert met >= IRREGULAR_FLOOR[stride], f"seed {seed}: {met} lines and zones meet the stride-{stride} target"
