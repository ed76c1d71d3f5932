"""bench_counting's live runs: which replay rates it picks so that the detector lands at each stride, and which
stride's target a run is judged by."""

from __future__ import annotations

import pytest

from benchmarks import bench_counting
from benchmarks.counting_eval import load_truth


@pytest.mark.parametrize("rate, expected", [(1.0, 1), (1.25, 1), (1.5, 2), (2.4, 2), (2.5, 3), (3.73, 4),
                                            (4.6, 4), (9.0, 4)])
def test_a_live_run_is_judged_by_the_nearest_stride_and_the_stricter_at_a_tie(rate, expected):
    assert bench_counting.judged_stride(rate) == expected


@pytest.mark.parametrize("native_stride, rate_fps, replays", [
    (1.23, 8.0, [0.0, 16.0, 24.0, 32.0]),  # keeps up with most frames: replayed 2, 3 and 4 times as fast
    (2.2, 4.5, [0.0, 13.5, 18.0]),  # already at stride 2: only 3 and 4 are left to reach
    (3.6, 2.8, [0.0]),  # a slow machine lands at stride 4 on its own
])
def test_live_runs_replay_faster_only_to_reach_the_strides_the_video_rate_does_not(monkeypatch, native_stride,
                                                                                   rate_fps, replays):
    asked = []

    def fake_live_run(truth, threads=1, rect=False, replay_fps=0.0):
        asked.append(replay_fps)
        return [{"stride": native_stride if not replay_fps else replay_fps / rate_fps, "processed_fps": rate_fps}]

    monkeypatch.setattr(bench_counting, "live_run", fake_live_run)
    rows = bench_counting.live_runs(load_truth("vtest-video"))
    assert asked == pytest.approx(replays)
    assert len(rows) == len(replays)
