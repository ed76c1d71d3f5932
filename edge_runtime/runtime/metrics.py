"""Live figures of a runtime process: as a dict (:meth:`Metrics.snapshot`) and as Prometheus text.

What is measured, and how:

- detection: frames completed per second over a sliding window (``window_s``), frame age p50/p95
  (capture to result), inference milliseconds p50/p95, frames dropped by the source
  (latest-frame-wins) and frames lost to a stuck detector, detector restarts;
- chat: time to first token and decode tokens/s of the last generation and their window means,
  generations by outcome, the server's queue depth;
- process: CPU% per registered worker thread (``/proc/self/task/TID/stat``: user + system time of
  that one thread, differenced between two snapshots), CPU% of the whole process, RSS in bytes.

Frame age: a live source stamps frames with Unix time, so age = now - timestamp. A file replayed as a
camera ("latest" mode, paced at its fps) stamps ``index / fps``; its clock is anchored at the freshest
arrival seen (the smallest ``arrival - timestamp``), so a frame taken the moment it was released has
age 0 at arrival. A file replayed at another rate (``source.replay_fps``) is passed in on its replay
clock (the supervisor scales the timestamps by the source's ``clock_scale``), so in "every" mode a job
that falls behind the replay shows its lag as age. Times are seconds (``_s``) or milliseconds (``_ms``).

Example:
    >>> m = Metrics()
    >>> m.frame_done(timestamp_s=0.0, arrival_s=100.0, done_s=100.2, inference_ms=180.0)
    >>> round(m.snapshot()["frame_age_p50_s"], 3)
    0.2
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

__all__ = ["Metrics", "thread_cpu_s", "rss_bytes", "prometheus_text"]

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_EPOCH_MIN_S = 1e9  # timestamps above this are Unix time (2001+), below it a file's own clock


def thread_cpu_s(native_id: int) -> Optional[float]:
    """User + system CPU seconds of one thread of this process (Linux); None where unavailable."""
    try:
        with open(f"/proc/self/task/{native_id}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # Fields after the ")" that closes comm (comm may hold spaces): utime is field 14, stime 15.
    rest = text.rsplit(")", 1)[-1].split()
    try:
        return (int(rest[11]) + int(rest[12])) / _CLK_TCK
    except (IndexError, ValueError):
        return None


def rss_bytes() -> int:
    """Resident set size of this process in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _pct(values: List[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class Metrics:
    """Collects the runtime's figures; every method is thread-safe and O(1) amortised.

    Args:
        window_s: how far back rates and percentiles look.
        clock: monotonic clock (injectable for tests).
    """

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._frames: Deque[Tuple[float, float, float]] = deque()  # (done_s, age_s, inference_ms)
        self._anchor: Optional[float] = None  # min(arrival - timestamp) for file clocks
        self._chats: Deque[Tuple[float, float, float]] = deque()  # (end_s, ttft_s, tokens_per_s)
        self._last_chat: Dict[str, float] = {}
        self.frames_total = 0
        self.stuck_frames = 0
        self.detector_restarts = 0
        self.chat_outcomes = {"completed": 0, "cancelled": 0, "failed": 0, "grounded": 0}
        self.tokens_total = 0
        self._threads: Dict[str, int] = {}  # role -> native thread id
        self._cpu_prev: Dict[str, Tuple[float, float]] = {}  # role -> (wall, cpu) at the previous snapshot
        self._gauges: Dict[str, Callable[[], float]] = {}
        self._started = clock()
        self._process_cpu0 = sum(os.times()[:2])

    # ---------------------------------------------------------------------------------- recording

    def register_thread(self, role: str, native_id: Optional[int] = None) -> None:
        """Report CPU% for a worker thread under ``role`` (default: the calling thread)."""
        tid = threading.get_native_id() if native_id is None else native_id
        cpu = thread_cpu_s(tid)
        with self._lock:
            self._threads[role] = tid
            self._cpu_prev.pop(role, None)
            if cpu is not None:  # the first snapshot then reports CPU% since registration
                self._cpu_prev[role] = (self._clock(), cpu)

    def add_gauge(self, name: str, read: Callable[[], float]) -> None:
        """A live value read at snapshot time (e.g. the source's dropped frames, the queue depth)."""
        with self._lock:
            self._gauges[name] = read

    def frame_done(self, *, timestamp_s: float, arrival_s: float, done_s: Optional[float] = None,
                   inference_ms: float = 0.0) -> None:
        """One frame's result is out.

        Args:
            timestamp_s: the frame's capture time (Unix time for live sources, file clock otherwise).
            arrival_s: monotonic time the pipeline received the frame.
            done_s: monotonic time its result was out (default now).
            inference_ms: the model's time for it (0 when inference was skipped).
        """
        done = self._clock() if done_s is None else done_s
        if timestamp_s >= _EPOCH_MIN_S:
            age = max(0.0, time.time() - timestamp_s - (self._clock() - done))
        else:
            with self._lock:
                offset = arrival_s - timestamp_s
                self._anchor = offset if self._anchor is None else min(self._anchor, offset)
                anchor = self._anchor
            age = max(0.0, done - (anchor + timestamp_s))
        with self._lock:
            self._frames.append((done, age, inference_ms))
            self.frames_total += 1
            self._trim(done)

    def frame_stuck(self) -> None:
        """A frame was abandoned because the detector stopped answering."""
        with self._lock:
            self.stuck_frames += 1

    def detector_restarted(self) -> None:
        with self._lock:
            self.detector_restarts += 1

    def chat_done(self, stats: Any, outcome: str = "completed") -> None:
        """A generation ended; ``stats`` is its :class:`~edge_runtime.llm.chat.GenerationStats` (or None)."""
        now = self._clock()
        with self._lock:
            self.chat_outcomes[outcome] = self.chat_outcomes.get(outcome, 0) + 1
            if stats is None or stats.ttft_s is None:
                return
            tps = stats.tokens_per_s
            self.tokens_total += stats.completion_tokens
            self._chats.append((now, stats.ttft_s, tps))
            self._last_chat = {"ttft_s": stats.ttft_s, "tokens_per_s": tps}
            self._trim(now)

    def _trim(self, now: float) -> None:
        edge = now - self.window_s
        while self._frames and self._frames[0][0] < edge:
            self._frames.popleft()
        while len(self._chats) > 1 and self._chats[0][0] < edge:
            self._chats.popleft()

    # ------------------------------------------------------------------------------------ reading

    def detection_fps(self, now: Optional[float] = None) -> float:
        """Frames completed per second over the window (0 with fewer than two)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._trim(now)
            done = [f[0] for f in self._frames]
        if len(done) < 2:
            return 0.0
        span = max(now, done[-1]) - done[0]
        return (len(done) - 1) / span if span > 0 else 0.0

    def _cpu(self) -> Dict[str, float]:
        now = self._clock()
        out: Dict[str, float] = {}
        roles = dict(self._threads)
        roles_cpu = {role: thread_cpu_s(tid) for role, tid in roles.items()}
        process_cpu = sum(os.times()[:2])
        roles_cpu["process"] = process_cpu
        for role, cpu in roles_cpu.items():
            if cpu is None:
                continue
            prev = self._cpu_prev.get(role)
            if prev is None:  # the process at its first look: since the metrics started
                prev = (self._started, cpu) if role != "process" else (self._started, self._process_cpu0)
            wall = now - prev[0]
            if wall > 0:
                out[role] = 100.0 * (cpu - prev[1]) / wall
            self._cpu_prev[role] = (now, cpu)
        return out

    def snapshot(self) -> Dict[str, Any]:
        """Every figure as a flat dict (names match the Prometheus metrics, without the prefix).

        CPU% per thread is measured since the previous snapshot (100 = one core busy).
        """
        now = self._clock()
        fps = self.detection_fps(now)
        with self._lock:
            ages = [f[1] for f in self._frames]
            infer = [f[2] for f in self._frames if f[2] > 0]
            chats = list(self._chats)
            out: Dict[str, Any] = {
                "detection_fps": fps,
                "frames_total": self.frames_total,
                "frame_age_p50_s": _pct(ages, 50),
                "frame_age_p95_s": _pct(ages, 95),
                "inference_ms_p50": _pct(infer, 50),
                "inference_ms_p95": _pct(infer, 95),
                "stuck_frames_total": self.stuck_frames,
                "detector_restarts_total": self.detector_restarts,
                "chat_ttft_s": self._last_chat.get("ttft_s", 0.0),
                "chat_tokens_per_s": self._last_chat.get("tokens_per_s", 0.0),
                "chat_ttft_mean_s": sum(c[1] for c in chats) / len(chats) if chats else 0.0,
                "chat_tokens_per_s_mean": sum(c[2] for c in chats) / len(chats) if chats else 0.0,
                "chat_tokens_total": self.tokens_total,
                "chat_requests_total": dict(self.chat_outcomes),
                "rss_bytes": rss_bytes(),
                "uptime_s": now - self._started,
            }
            out["cpu_percent"] = self._cpu()
            gauges = dict(self._gauges)
        for name, read in gauges.items():
            try:
                out[name] = float(read())
            except Exception:  # a gauge of a part that is shutting down must not break /metrics
                out[name] = float("nan")
        return out


# The Prometheus exposition format, version 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
_HELP = {
    "detection_fps": ("gauge", "Detection frames completed per second (sliding window)"),
    "frames_total": ("counter", "Frames processed"),
    "frame_age_p50_s": ("gauge", "Median frame age at result, seconds"),
    "frame_age_p95_s": ("gauge", "95th percentile frame age at result, seconds"),
    "inference_ms_p50": ("gauge", "Median model inference time, milliseconds"),
    "inference_ms_p95": ("gauge", "95th percentile model inference time, milliseconds"),
    "dropped_frames_total": ("counter", "Frames the source dropped (latest-frame-wins)"),
    "source_connected": ("gauge", "1 while the video source delivers frames, 0 during an outage"),
    "source_gaps_total": ("counter", "Outages of the video source (stream lost, stalled, unplugged)"),
    "source_reconnects_total": ("counter", "Successful reconnections of the video source after an outage"),
    "source_reconnect_attempts_total": ("counter", "Connection attempts after outages, failed ones included"),
    "source_stuck_reads_total": ("counter", "Backend calls abandoned because they blocked past the read timeout"),
    "store_writable": ("gauge", "1 while the results database takes writes, 0 while they fail (disk full)"),
    "store_backlog_frames": ("gauge", "Frames kept in memory until the results database takes writes again"),
    "store_lost_events_total": ("counter", "Events given up because the disk stayed full past the backlog"),
    "memory_budget_bytes": ("gauge", "The job's estimated memory need at start-up (compare with rss_bytes)"),
    "memory_limit_bytes": ("gauge", "Memory the job may use: available + own RSS, cgroup room, budget.memory_mib"),
    "stuck_frames_total": ("counter", "Frames abandoned because the detector stopped answering"),
    "detector_restarts_total": ("counter", "Detector restarts by the watchdog"),
    "chat_ttft_s": ("gauge", "Time to first token of the last generation, seconds"),
    "chat_tokens_per_s": ("gauge", "Decode tokens per second of the last generation"),
    "chat_ttft_mean_s": ("gauge", "Mean time to first token over the window, seconds"),
    "chat_tokens_per_s_mean": ("gauge", "Mean decode tokens per second over the window"),
    "chat_tokens_total": ("counter", "Tokens generated"),
    "chat_queue_depth": ("gauge", "Chat requests waiting behind the running one"),
    "chat_requests_total": ("counter", "Chat requests by outcome"),
    "rss_bytes": ("gauge", "Resident set size, bytes"),
    "uptime_s": ("gauge", "Seconds since the metrics started"),
    "cpu_percent": ("gauge", "CPU percent per worker thread since the previous scrape (100 = one core)"),
}


def _fmt(value: float) -> str:
    if value != value:
        return "NaN"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def prometheus_text(snapshot: Dict[str, Any], prefix: str = "edge_runtime_") -> str:
    """Render a :meth:`Metrics.snapshot` as Prometheus text (``text/plain; version=0.0.4``).

    Dict-valued figures become one labelled sample per key (``cpu_percent{thread="inference"}``,
    ``chat_requests_total{outcome="completed"}``); names without a HELP entry are exported as gauges.
    """
    lines: List[str] = []
    for name, value in snapshot.items():
        kind, text = _HELP.get(name, ("gauge", name.replace("_", " ")))
        metric = prefix + name
        lines.append(f"# HELP {metric} {text}")
        lines.append(f"# TYPE {metric} {kind}")
        if isinstance(value, dict):
            label = "thread" if name == "cpu_percent" else "outcome"
            for key, v in sorted(value.items()):
                escaped = str(key).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                lines.append(f'{metric}{{{label}="{escaped}"}} {_fmt(v)}')
        else:
            lines.append(f"{metric} {_fmt(value)}")
    return "\n".join(lines) + "\n"
