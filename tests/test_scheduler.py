"""The CPU budget: plans per policy, time slicing between frames and tokens, pacing, affinity.

Threads here do real waiting and real CPU work (no mocks); bounds are generous because the test machine
is shared.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from edge_runtime.errors import ConfigError
from edge_runtime.runtime.config import BudgetConfig
from edge_runtime.runtime.scheduler import PACE_HEADROOM, Policy, Scheduler, choose_policy, pin_thread, usable_cpus

CPUS = usable_cpus()
TWO = len(CPUS) >= 2


def test_bad_budget_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="policy"):
        Scheduler(2, "greedy")
    with pytest.raises(ConfigError, match="cores"):
        Scheduler(-1)
    with pytest.raises(ConfigError, match="min_fps"):
        Scheduler(1, min_fps=0.0, max_frame_age_s=0.0)


def test_from_config_and_target() -> None:
    s = Scheduler.from_config(BudgetConfig(cores=1, policy="fair", min_fps=2.0, max_frame_age_s=0.25))
    assert s.policy is Policy.FAIR and s.cores == 1
    assert s.target_fps == pytest.approx(4.0)  # the stricter of 2 fps and one frame per 0.25 s
    assert Scheduler(0).cores == min(len(CPUS), Scheduler(0).cores) >= 1


@pytest.mark.skipif(not TWO, reason="needs two CPUs to split")
def test_splits_per_policy_on_two_cores() -> None:
    for policy in Policy:
        idle = Scheduler(2, policy).split(chat_active=False)
        assert (idle.detector_threads, idle.pace_fps, idle.chat_yields) == (2, None, False)  # chat idle: all to detection
    df = Scheduler(2, "detection-first", min_fps=3).split(True)
    assert (df.detector_threads, df.chat_threads, df.chat_yields) == (2, 2, True)  # halving chat costs more than stalls
    assert df.pace_fps == pytest.approx(3.0 * PACE_HEADROOM)  # a little above the target: it holds at p95
    fair = Scheduler(2, "fair").split(True)
    assert (fair.detector_threads, fair.chat_threads, fair.pace_fps, fair.chat_yields) == (1, 1, None, False)
    assert set(fair.detector_cpus).isdisjoint(fair.chat_cpus) and len(fair.detector_cpus + fair.chat_cpus) == 2
    cf = Scheduler(2, "chat-first", min_fps=1.5).split(True)
    assert (cf.detector_threads, cf.chat_threads, cf.chat_yields) == (1, 1, False)
    assert cf.pace_fps == pytest.approx(1.5 * PACE_HEADROOM)
    assert Scheduler(2, "fair").detector_thread_counts() == (2, 1)
    assert Scheduler(2, "detection-first").detector_thread_counts() == (2,)


def test_time_slicing_leaves_one_core_to_the_pipeline_on_three_or_more(monkeypatch) -> None:
    import edge_runtime.runtime.scheduler as scheduler

    monkeypatch.setattr(scheduler, "usable_cpus", lambda: tuple(range(8)))  # a board with eight CPUs
    for cores, chat_n in ((3, 2), (4, 3), (8, 7)):
        split = Scheduler(cores, "detection-first", min_fps=2).split(True)
        assert (split.detector_threads, split.chat_threads, split.chat_yields) == (cores, chat_n, True)


def test_one_core_always_time_slices() -> None:
    for policy in Policy:
        split = Scheduler(1, policy).split(True)
        assert split.detector_threads == split.chat_threads == 1 and split.chat_yields


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class _Trace:
    """Who is computing when: chat 'tokens' and detection 'frames' append (start, end) intervals."""

    def __init__(self) -> None:
        self.tokens: list = []
        self.frames: list = []
        self.stop = threading.Event()

    def chat(self, sched: Scheduler, token_s: float = 0.01) -> None:
        sched.chat_started()
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                _spin(token_s)  # one "token" of decode
                self.tokens.append((t0, time.monotonic()))
                sched.between_tokens()
        finally:
            sched.chat_finished()

    def frames_loop(self, sched: Scheduler, n: int, frame_s: float) -> None:
        for _ in range(n):
            sched.wait_turn()
            with sched.detection_slot():
                t0 = time.monotonic()
                time.sleep(frame_s)  # inference (sleeping, so the overlap check is about scheduling only)
                self.frames.append((t0, time.monotonic()))


def _overlaps(a: list, b: list) -> int:
    return sum(1 for s1, e1 in a for s2, e2 in b if s1 < e2 and s2 < e1)


def test_detection_first_parks_chat_during_frames_and_paces_them() -> None:
    sched = Scheduler(1, "detection-first", min_fps=8.0)  # 1 core: time slicing under every policy
    trace = _Trace()
    chat = threading.Thread(target=trace.chat, args=(sched,))
    chat.start()
    while not sched.chat_active:
        time.sleep(0.001)
    trace.frames_loop(sched, 6, 0.05)
    trace.stop.set()
    chat.join(10)
    assert len(trace.frames) == 6 and len(trace.tokens) > 10
    # No token was being computed while a frame ran: chat parked between tokens.
    assert _overlaps(trace.tokens, trace.frames) == 0
    assert sched.stats["yields"] >= 5 and sched.stats["due_timeouts"] == 0
    # Frames were held to the 8 fps target (plus the pacing headroom) while chat was active.
    starts = [f[0] for f in trace.frames]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 1 / (8 * PACE_HEADROOM) - 0.01, gaps
    # Tokens did run between the frames.
    assert any(starts[0] < t0 < starts[-1] for t0, _ in trace.tokens)


@pytest.mark.skipif(not TWO, reason="needs two CPUs to split")
def test_fair_runs_both_side_by_side_without_parking() -> None:
    sched = Scheduler(2, "fair", min_fps=8.0)
    trace = _Trace()
    chat = threading.Thread(target=trace.chat, args=(sched,))
    chat.start()
    while not sched.chat_active:
        time.sleep(0.001)
    t0 = time.monotonic()
    trace.frames_loop(sched, 6, 0.05)
    elapsed = time.monotonic() - t0
    trace.stop.set()
    chat.join(10)
    assert sched.stats["yields"] == 0
    assert _overlaps(trace.tokens, trace.frames) > 0  # both at once, on their own cores
    assert elapsed < 6 * (1 / 8)  # not paced: free-running frames


def test_idle_chat_means_no_pacing() -> None:
    sched = Scheduler(1, "detection-first", min_fps=1.0)
    with sched.detection_slot():
        pass
    assert sched.pace_delay_s() == 0.0  # chat idle: detection free-runs
    sched.chat_started()
    try:
        assert 0.9 / PACE_HEADROOM < sched.pace_delay_s() <= 1.0 / PACE_HEADROOM
    finally:
        sched.chat_finished()
    assert sched.pace_delay_s() == 0.0


def test_chat_resumes_when_a_frame_hangs() -> None:
    sched = Scheduler(1, "detection-first", max_yield_s=0.3)
    sched.chat_started()
    entered = threading.Event()
    release = threading.Event()

    def stuck_frame() -> None:
        with sched.detection_slot():
            entered.set()
            release.wait(10)

    t = threading.Thread(target=stuck_frame)
    t.start()
    assert entered.wait(10)  # the frame waited due_wait_s for chat to park, then ran anyway
    t0 = time.monotonic()
    sched.between_tokens()
    waited = time.monotonic() - t0
    release.set()
    t.join(10)
    sched.chat_finished()
    assert 0.25 <= waited < 3.0
    assert sched.stats["due_timeouts"] == 1


def test_frame_waits_at_most_due_wait_for_a_busy_chat() -> None:
    sched = Scheduler(1, "detection-first", due_wait_s=0.2)
    sched.chat_started()  # chat "computing" a very long token, never reaching between_tokens
    t0 = time.monotonic()
    with sched.detection_slot():
        pass
    sched.chat_finished()
    assert 0.15 <= time.monotonic() - t0 < 3.0


@pytest.mark.skipif(not (TWO and hasattr(os, "sched_setaffinity")), reason="Linux per-thread affinity, 2 CPUs")
def test_pin_thread_sets_this_threads_affinity_only() -> None:
    seen = {}

    def worker() -> None:
        seen["pinned"] = pin_thread(threading.get_native_id(), CPUS[:1])
        seen["mask"] = os.sched_getaffinity(0)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    before = os.sched_getaffinity(0)
    assert seen["pinned"] and seen["mask"] == {CPUS[0]}
    assert os.sched_getaffinity(0) == before == set(CPUS)  # the calling thread is untouched


def test_fair_pins_the_chat_thread_while_it_generates() -> None:
    if not (TWO and hasattr(os, "sched_setaffinity")):
        pytest.skip("Linux per-thread affinity with 2 CPUs")
    sched = Scheduler(2, "fair")
    seen = {}

    def chat() -> None:
        before = os.sched_getaffinity(0)
        split = sched.chat_started()
        seen["during"] = os.sched_getaffinity(0)
        seen["cpus"] = set(split.chat_cpus)
        sched.chat_finished()
        seen["after"] = os.sched_getaffinity(0)
        seen["before"] = before

    t = threading.Thread(target=chat)
    t.start()
    t.join()
    assert seen["during"] == seen["cpus"] and len(seen["cpus"]) == 1
    assert seen["after"] == seen["before"]  # restored when the generation ended


def test_auto_policy_picks_fair_only_when_the_detector_share_holds_the_target():
    from edge_runtime.runtime.scheduler import PACE_HEADROOM, Policy, choose_policy, fair_detector_threads

    assert fair_detector_threads(2) == 1 and fair_detector_threads(4) == 2 and fair_detector_threads(3) == 2
    assert choose_policy(2, 3.0, 3.0 * PACE_HEADROOM) is Policy.FAIR
    assert choose_policy(2, 3.0, 3.0 * PACE_HEADROOM - 0.01) is Policy.DETECTION_FIRST
    assert choose_policy(1, 1.0, 100.0) is Policy.DETECTION_FIRST  # one core: time slicing only
    assert choose_policy(4, 3.0, float("nan")) is Policy.DETECTION_FIRST


def test_auto_policy_time_slices_when_the_frames_leave_chat_most_of_the_machine():
    from edge_runtime.runtime.scheduler import SLICE_CHAT_SHARE, SLICE_FRAME_COST, time_slice_chat_share

    # 1 fps paced at 1.15 fps of a detector doing 10 fps on all cores, each frame costing chat 1.6 frame
    # times, leaves chat 81.6 % of the machine.
    assert SLICE_FRAME_COST == 1.6
    assert time_slice_chat_share(1.0, 10.0) == pytest.approx(1 - 1.15 * 1.6 / 10)
    assert time_slice_chat_share(1.0, 0.0) == 0.0 and time_slice_chat_share(5.0, 2.0) == 0.0
    assert choose_policy(2, 1.0, 4.0, all_fps=10.0) is Policy.DETECTION_FIRST
    # The fp32 detector at 2 fps with 15 fps on both cores leaves 0.75: fair keeps chat its own core.
    assert time_slice_chat_share(2.0, 15.0) < SLICE_CHAT_SHARE
    assert choose_policy(2, 2.0, 8.0, all_fps=15.0) is Policy.FAIR
    assert choose_policy(2, 1.0, 4.0) is Policy.FAIR  # all cores not measured: the share test alone
    assert choose_policy(1, 1.0, 100.0, all_fps=100.0) is Policy.DETECTION_FIRST


def test_auto_is_the_default_and_plans_as_detection_first_until_measured():
    from edge_runtime.runtime.config import config_from_dict

    budget = config_from_dict({}).budget
    assert budget.policy == "auto"
    assert Scheduler.from_config(budget).policy.value == "detection-first"
    assert Scheduler.from_config(budget, policy="fair").policy.value == "fair"
