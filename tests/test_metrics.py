"""Runtime metrics: rates, frame age on both clocks, percentiles, per-thread CPU, Prometheus text."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime.llm.chat import FinishReason, GenerationStats
from edge_runtime.runtime.metrics import Metrics, _pct, prometheus_text, rss_bytes, thread_cpu_s


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_fps_over_the_window_and_file_clock_age() -> None:
    clock = FakeClock()
    m = Metrics(window_s=10.0, clock=clock)
    assert m.snapshot()["detection_fps"] == 0.0 and m.snapshot()["frame_age_p95_s"] == 0.0
    # A 10 fps file replayed as a camera; we process every 5th frame, each taking 0.3 s after arrival.
    for k in range(20):
        ts = k * 0.5
        arrival = 1000.0 + ts + (0.0 if k == 0 else 0.05)  # the first frame is taken the moment it is out
        clock.t = arrival + 0.3
        m.frame_done(timestamp_s=ts, arrival_s=arrival, inference_ms=250.0)
    snap = m.snapshot()
    first_done, last_done = 1000.3, 1000.0 + 19 * 0.5 + 0.35
    assert abs(snap["detection_fps"] - 19 / (last_done - first_done)) < 1e-9
    assert abs(snap["frame_age_p50_s"] - 0.35) < 1e-9 and abs(snap["frame_age_p95_s"] - 0.35) < 1e-9
    assert snap["inference_ms_p50"] == 250.0 and snap["frames_total"] == 20
    # Old frames leave the window: 30 s later with no frames, the rate is 0.
    clock.t += 30.0
    assert m.detection_fps() == 0.0


def test_live_clock_age_uses_unix_time() -> None:
    m = Metrics()
    m.frame_done(timestamp_s=time.time() - 0.5, arrival_s=time.monotonic())
    age = m.snapshot()["frame_age_p50_s"]
    assert 0.45 < age < 2.0


def test_chat_figures() -> None:
    clock = FakeClock()
    m = Metrics(clock=clock)
    m.chat_done(GenerationStats(prompt_tokens=10, completion_tokens=11, ttft_s=0.2, elapsed_s=1.2,
                                finish_reason=FinishReason.STOP))
    m.chat_done(None, "cancelled")
    snap = m.snapshot()
    assert snap["chat_ttft_s"] == 0.2 and abs(snap["chat_tokens_per_s"] - 10.0) < 1e-9
    assert snap["chat_tokens_total"] == 11
    assert snap["chat_requests_total"]["completed"] == 1 and snap["chat_requests_total"]["cancelled"] == 1


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=50), st.sampled_from([0, 5, 50, 95, 100]))
def test_percentile_matches_numpy(values, q) -> None:
    expected = float(np.percentile(values, q)) if values else 0.0
    assert abs(_pct(values, q) - expected) <= 1e-6 * max(1.0, abs(expected))


def test_thread_cpu_and_rss_are_measured() -> None:
    result = {}
    go = threading.Event()

    def busy() -> None:
        result["id"] = threading.get_native_id()
        go.set()
        before = thread_cpu_s(result["id"])
        t0 = time.thread_time()  # this thread's own CPU clock: spin until it has used 0.3 s of CPU
        deadline = time.monotonic() + 60
        while time.thread_time() - t0 < 0.3 and time.monotonic() < deadline:
            pass
        result["used"] = time.thread_time() - t0
        result["cpu"] = thread_cpu_s(result["id"]) - before

    def idle() -> None:
        result["idle_id"] = threading.get_native_id()
        time.sleep(0.4)
        result["idle_cpu"] = thread_cpu_s(result["idle_id"])

    threads = [threading.Thread(target=busy), threading.Thread(target=idle)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # /proc agrees with the thread's own clock (to the kernel's tick, 10 ms, plus scheduling slack).
    assert abs(result["cpu"] - result["used"]) < 0.05, result
    assert result["idle_cpu"] is not None and result["idle_cpu"] < result["cpu"]
    assert rss_bytes() > 10 * 1024 * 1024


def test_cpu_percent_per_registered_thread() -> None:
    m = Metrics()
    go, done, stop = threading.Event(), threading.Event(), threading.Event()
    used = {}

    def busy() -> None:
        m.register_thread("busy")
        go.wait()
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.3:  # 0.3 s of this thread's own CPU, however loaded the machine
            pass
        used["s"] = time.thread_time() - t0
        done.set()
        stop.wait()

    def idle() -> None:
        m.register_thread("idle")
        stop.wait()

    threads = [threading.Thread(target=busy), threading.Thread(target=idle)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    m.snapshot()  # the baseline
    t_wall = time.monotonic()
    go.set()
    assert done.wait(120)
    cpu = m.snapshot()["cpu_percent"]
    wall = time.monotonic() - t_wall
    stop.set()
    for t in threads:
        t.join()
    # CPU% x wall time gives back the CPU seconds the thread used (to a few clock ticks).
    assert abs(cpu["busy"] * wall / 100 - used["s"]) < 0.05, (cpu, wall, used)
    assert cpu["idle"] < 5.0 and cpu["process"] >= cpu["idle"]


_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"\})? '
                     r'(NaN|[+-]?Inf|-?\d+(\.\d+)?(e[+-]?\d+)?)$')


def test_prometheus_text_is_well_formed() -> None:
    m = Metrics()
    m.register_thread("pipe\"line")
    m.add_gauge("dropped_frames_total", lambda: 7)
    m.add_gauge("broken", lambda: 1 / 0)
    m.frame_done(timestamp_s=0.0, arrival_s=time.monotonic(), inference_ms=12.5)
    text = prometheus_text(m.snapshot())
    assert text.endswith("\n")
    declared = set()
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            declared.add(parts[2])
            if line.startswith("# TYPE "):
                assert parts[3] in ("gauge", "counter")
            continue
        assert _SAMPLE.match(line), line
        assert line.split("{")[0].split(" ")[0] in declared
    assert "edge_runtime_dropped_frames_total 7" in text
    assert "edge_runtime_broken NaN" in text
    assert 'edge_runtime_cpu_percent{thread="pipe\\"line"}' in text
    assert "edge_runtime_inference_ms_p50 12.5" in text
