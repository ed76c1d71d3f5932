"""Counting judged against by-eye truth on real video (``benchmarks/truth``), on the detector's real output.

The truth was made by looking at frames (see ``benchmarks/truth/README.md``); the detections are the
built-in YOLOv8s person detector's output on every frame, frozen in ``benchmarks/truth/detections`` and
re-checked here against the detector itself. Each line and zone is replayed at detector strides 1-4
(every frame ... every 4th frame of the camera) through our tracker and counters and through the peer
stack (``trackers`` ByteTrack + supervision), and scored event by event (same direction within ±5
frames).

The targets are the counting issue's: per-direction counts within ±1 of the truth at strides 1 and 2
and ±2 at stride 3; at stride 4 event recall >= 0.8 with precision >= 0.95; never a larger count error
than the peer stack. Where a target is not met yet the case is a strict ``xfail`` naming what was
measured: it fails the suite as soon as the target is met (so the table must then be updated) and
documents the gap until then.
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

# (video, item, stride) whose issue target is not met by the current defaults, with what was measured.
TARGET_GAPS = {
    ("vtest-video", "walkway", 1): "out -4: walkers passing the two men standing at the lamp post lose their ids",
    ("vtest-video", "walkway", 2): "in -2, out -3",
    ("vtest-video", "walkway", 4): "recall 0.69",
    ("vtest-video", "mid_diagonal", 1): "in -2, out -2: groups crossing together",
    ("vtest-video", "mid_diagonal", 2): "in -3, out -2",
    ("vtest-video", "mid_diagonal", 3): "in -4, out -3",
    ("vtest-video", "mid_diagonal", 4): "recall 0.79",
    ("vtest-video", "lamp", 1): "enter -3",
    ("vtest-video", "lamp", 2): "enter -2",
    ("vtest-video", "lamp", 4): "recall 0.69",
    ("vtest-video", "right_edge", 2): "out -2",
    ("vtest-video", "right_edge", 3): "out -5: people stepping in at the edge are found too late",
    ("vtest-video", "right_edge", 4): "recall 0.55",
    ("vtest-video", "left_path", 4): "precision 0.75 (one extra each way)",
    ("vtest-video", "top_right", 4): "precision 0.5",
    ("vtest-video", "lawn_edge", 4): "precision 0.75",
    ("vtest-video", "short_left", 4): "precision 0.75",
    ("vtest-video", "road_corner", 4): "recall 0.82, precision 0.82",
    ("bikes-video", "right_vertical", 1): "in -2: the cyclist's clipped box jumps as he leaves the close-up",
    ("bikes-video", "right_vertical", 2): "in -2",
    ("bikes-video", "middle_vertical", 4): "the cyclist's 16 frames give 4 processed frames",
    ("bikes-video", "right_vertical", 4): "as middle_vertical",
}
PEER_GAPS = {
    ("vtest-video", "top_right", 4): "ours 2, peer 1",
    ("bikes-video", "right_vertical", 1): "ours 2, peer 1",
    ("bikes-video", "middle_vertical", 4): "ours 2, peer 1",
    ("bikes-video", "waiting_cyclist", 2): "ours 1, peer 0: a car's false person box crosses",
}


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


def _marked(table):
    params = []
    for case in _cases():
        reason = table.get(case)
        marks = [pytest.mark.xfail(strict=True, reason=f"target not met yet: {reason}")] if reason else []
        params.append(pytest.param(*case, marks=marks, id=f"{case[0].split('-')[0]}-{case[1]}-stride{case[2]}"))
    return params


def _result(replays, video, name, stride, stack):
    truth, events = replays[(video, stride)]
    item = next(i for i in truth.items if i.name == name)
    return item, score(events[stack][name], item.events)


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


@pytest.mark.parametrize("video, name, stride", _marked(TARGET_GAPS))
def test_counts_meet_the_target_on_every_line_and_zone(replays, video, name, stride):
    item, ours = _result(replays, video, name, stride, "ours")
    assert meets(ours, stride), (f"{name} at stride {stride}: count error {ours['count_error']}, precision "
                                 f"{ours['precision']:.2f}, recall {ours['recall']:.2f} ({len(item.events)} events)")


@pytest.mark.parametrize("video, name, stride", _marked(PEER_GAPS))
def test_never_a_larger_count_error_than_the_peer_stack(replays, video, name, stride):
    _, ours = _result(replays, video, name, stride, "ours")
    _, peer = _result(replays, video, name, stride, "peer")
    assert ours["max_abs_count_error"] <= peer["max_abs_count_error"], (ours["count_error"], peer["count_error"])


def test_event_precision_and_recall_over_all_truths_at_stride_1(replays):
    tp = fp = fn = 0
    peer_tp = peer_fp = peer_fn = 0
    for video in VIDEOS:
        truth, events = replays[(video, 1)]
        for item in truth.items:
            s, p = score(events["ours"][item.name], item.events), score(events["peer"][item.name], item.events)
            tp, fp, fn = tp + s["tp"], fp + s["fp"], fn + s["fn"]
            peer_tp, peer_fp, peer_fn = peer_tp + p["tp"], peer_fp + p["fp"], peer_fn + p["fn"]
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    # The bar is 0.95 for both; measured 0.91 / 0.83 (the peer stack: 0.54 / 0.44). This holds the
    # measured level and the lead over the peer; the gap to 0.95 is listed in TARGET_GAPS' causes.
    assert precision >= 0.89 and recall >= 0.81, (precision, recall)
    assert precision > peer_tp / (peer_tp + peer_fp) + 0.2 and recall > peer_tp / (peer_tp + peer_fn) + 0.2


# Events that match nobody in the truth and fall where it records someone loitering on a line or stepping
# over and back. The target is zero; measured at stride 1: a man standing 2 s across the lamp
# zone's edge (enter + exit), one standing 3 s five pixels inside road_corner (enter + exit), one who
# stays 3.7 s over left_path before going back, and walkway's man A counted when he walks off (f151)
# where the truth counts him when he first stepped over (f37).
KNOWN_LOITER_COUNTS = {1: 6, 2: 13, 3: 8, 4: 10}


@pytest.mark.parametrize("stride", STRIDES)
def test_counts_from_loiterers_or_touch_and_return_do_not_grow(replays, stride):
    """Unmatched events inside the truth's loiter / touch-and-return spans stay at or below the measured
    number (the target, zero, is not met yet: see KNOWN_LOITER_COUNTS)."""
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
    assert len(offending) <= KNOWN_LOITER_COUNTS[stride], offending
