"""One CPU budget for camera detection and local chat: who gets which cores, and when.

A small board (Pi 4/5, 2-4 cores) cannot run a YOLO detector and a llama.cpp decode side by side at
their default thread counts: both size their thread pools to the whole machine, llama.cpp's workers
spin at a barrier after every matrix product, and the two pools then fight over the same cores (and the
same memory bus). The :class:`Scheduler` owns the budget and makes the choice explicit.

Budget: ``cores`` from the config, else :func:`~edge_runtime.runtime.cpus.available_cores` (affinity
mask and cgroup quota, v1 or v2). The cores actually used are the first ``cores`` CPUs of this process's
affinity mask.

``budget.policy = "auto"`` (the default) picks ``fair`` or ``detection-first`` at start-up by measuring
the detector on all the cores and on ``fair``'s share of them, the latter scaled down by a cgroup CPU quota
smaller than the budget (:func:`choose_policy`).

Two states: **chat idle** (detection may use every core, free-running) and **chat active** (a generation
is running). While chat is active the policy decides:

``detection-first`` — time slicing. Detection keeps its target (``min_fps``, or
``1 / max_frame_age_s`` when that is set) and chat gets the time that is left. Both run with every
core (chat on three or more leaves one, see :meth:`Scheduler.split`), but never at the same time: before a
frame's inference the pipeline raises "frame due", the chat
generation parks after its current token (the ``between_tokens`` hook, called with the model lock
held), the frame runs on all cores, and chat resumes. Between frames detection is paced to the
target plus :data:`PACE_HEADROOM` (frame intervals jitter with the source and the token in flight;
pacing at the target itself measured the 95th-percentile interval 2 % over it), so chat receives
``1 - fps * inference_time`` of the machine. Detection latency stays what
it is solo; chat never preempts a frame.

``fair`` — space sharing. The cores are split in two disjoint sets (chat gets ``cores // 2``,
detection the rest); each side runs at its own thread count pinned to its set (CPU affinity of the
worker threads, inherited by the thread pools they create) and free-runs. Neither waits for the other.

``chat-first`` — chat's throughput wins. The same split as ``fair``, but detection is paced down to
the target while chat is active, so chat also gets most of the memory bandwidth; the target is a floor
that is met only when the detector's share of cores can reach it.

Thread counts: onnxruntime fixes intra-op threads when a session is created, so a detector keeps one
session per thread count it needs (at most two: all cores, and its share while chat is active);
llama.cpp's thread count is changed in place (``llama_set_n_threads``) at the start of a generation, so
one model serves every state. Measured on the development machine (x86-64, 2 cores): creating a
second YOLOv8s session costs ~0.3-0.6 s and ~45 MB, once; switching between kept sessions is free.

Times are seconds from :func:`time.monotonic`; ``cpus`` are Linux logical CPU ids.

Example:
    >>> s = Scheduler(cores=2, policy="detection-first", min_fps=2.0)
    >>> s.split(chat_active=True).detector_threads
    2
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

from ..errors import ConfigError

__all__ = ["PACE_HEADROOM", "SLICE_CHAT_SHARE", "SLICE_FRAME_COST", "Policy", "Split", "Scheduler", "usable_cpus", "pin_thread",
           "choose_policy", "time_slice_chat_share",
           "fair_detector_threads", "fair_share_fps"]

log = logging.getLogger(__name__)


#: Pacing runs this much above the detection target so that the target holds at the 95th percentile,
#: not only on average: the interval between frames varies by a token's time and the source's timing.
PACE_HEADROOM = 1.15
#: ``auto`` prefers time slicing when it leaves chat at least this share of its solo speed. ``fair`` runs chat on
#: half the cores, which kept it at 0.60-0.73x its solo speed on 2 cores (``bench_cosched``), so time slicing
#: that leaves 0.8 gives chat more while still holding the detection target.
SLICE_CHAT_SHARE = 0.8
#: What each frame costs chat under time slicing, in units of the detector's frame time alone on every core.
#: More than one: chat first finishes its token and parks, the model call right after a token runs slower
#: than alone (caches and the other pool's threads), and chat's pool has to wake again. ``bench_cosched``
#: measured 1.2-2.0 (chat's loss under ``detection-first`` over ``fps x headroom x frame time``) across three
#: detector / target pairs; 1.6 is their median.
SLICE_FRAME_COST = 1.6

class Policy(str, enum.Enum):
    """How detection and chat share the cores while a chat generation runs (see the module docs)."""

    DETECTION_FIRST = "detection-first"
    CHAT_FIRST = "chat-first"
    FAIR = "fair"


def fair_detector_threads(cores: int) -> int:
    """Threads the detector keeps under ``fair`` while chat runs (chat gets ``cores // 2``)."""
    return cores - cores // 2


def fair_share_fps(cores: int, share_fps: float, quota_cores: Optional[float] = None) -> float:
    """The detector's rate under ``fair`` while chat runs, from its rate measured alone on its share.

    Under a cgroup CPU quota smaller than ``cores`` the kernel throttles the whole process once the quota
    is used up in a period, and ``fair`` keeps all ``cores`` threads busy, so each side gets
    ``quota_cores / cores`` of the time it had alone (the measurement alone, on fewer threads than the
    quota, was not throttled)."""
    if quota_cores is not None and 0 < quota_cores < cores:
        return share_fps * quota_cores / cores
    return share_fps


def time_slice_chat_share(target_fps: float, all_fps: float) -> float:
    """Chat's share of the machine under ``detection-first``: what the frames, paced at the target plus
    :data:`PACE_HEADROOM` and each costing :data:`SLICE_FRAME_COST` frame times, leave of it, from the
    detector's rate alone on every core (0 if unknown)."""
    if not all_fps > 0:
        return 0.0
    return max(0.0, 1.0 - target_fps * PACE_HEADROOM * SLICE_FRAME_COST / all_fps)


def choose_policy(cores: int, target_fps: float, share_fps: float, quota_cores: Optional[float] = None,
                  all_fps: Optional[float] = None) -> Policy:
    """The policy ``budget.policy = "auto"`` picks, from a measurement made at start-up.

    Time slicing (``detection-first``) is chosen when the frames leave chat at least
    :data:`SLICE_CHAT_SHARE` of the machine (:func:`time_slice_chat_share`): a fast detector or a low target.
    Otherwise ``fair``, which gives chat cores of its own, is chosen when the detector, on the share of cores
    ``fair`` leaves it, still runs at the target with the pacing headroom (``fair_share_fps(...) >=
    target_fps * PACE_HEADROOM``). Otherwise only time slicing can hold the target: ``detection-first``
    (also the only choice on one core).

    Args:
        cores: the budget.
        target_fps: the detection target while chat is active.
        share_fps: measured frames/s of the detector alone on :func:`fair_detector_threads` threads (a
            slow percentile, not the mean: the target holds at p95).
        quota_cores: the cgroup CPU quota in cores (:func:`~edge_runtime.runtime.cpus.cpu_quota`), if any.
        all_fps: measured frames/s of the detector alone on all ``cores`` threads (same percentile); None =
            not measured (the time-slicing test is skipped).
    """
    if cores < 2:
        return Policy.DETECTION_FIRST
    if all_fps is not None and time_slice_chat_share(target_fps, all_fps) >= SLICE_CHAT_SHARE:
        return Policy.DETECTION_FIRST
    if not fair_share_fps(cores, share_fps, quota_cores) >= target_fps * PACE_HEADROOM:
        return Policy.DETECTION_FIRST
    return Policy.FAIR


@dataclass(frozen=True)
class Split:
    """Threads and CPUs of each side in one state.

    Attributes:
        detector_threads: onnxruntime intra-op threads for the session to use.
        chat_threads: llama.cpp threads for decoding and prompt evaluation.
        detector_cpus: CPUs the inference thread (and the pool it created) runs on.
        chat_cpus: CPUs the chat worker thread (and llama.cpp's pool) runs on.
        pace_fps: detection is held to at most this rate (None = free-running).
        chat_yields: chat parks between tokens while a frame is due or running.
    """

    detector_threads: int
    chat_threads: int
    detector_cpus: Tuple[int, ...]
    chat_cpus: Tuple[int, ...]
    pace_fps: Optional[float]
    chat_yields: bool


def usable_cpus() -> Tuple[int, ...]:
    """This process's CPUs (its affinity mask, sorted; ``range(cpu_count)`` where there is none)."""
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def pin_thread(native_id: int, cpus: Tuple[int, ...]) -> bool:
    """Set a thread's CPU affinity (Linux: ``sched_setaffinity`` on its native id).

    Returns:
        True when pinned; False where the OS has no per-thread affinity or refused it (the scheduler
        then still splits thread counts, without pinning).
    """
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        os.sched_setaffinity(native_id, set(cpus))
        return True
    except OSError as exc:  # a container without CAP_SYS_NICE restrictions can still refuse CPUs
        log.debug("could not pin thread %d to %s: %s", native_id, cpus, exc)
        return False


class Scheduler:
    """Owns the CPU budget of one runtime process; shared by the pipeline thread and the chat worker.

    Args:
        cores: CPUs to use (0 = detect: affinity mask and cgroup quota).
        policy: "detection-first", "chat-first" or "fair" (or a :class:`Policy`).
        min_fps: detection target while chat is active (> 0).
        max_frame_age_s: when > 0, the target becomes ``max(min_fps, 1 / max_frame_age_s)``.
        max_yield_s: longest a chat generation parks for one frame (a stuck detector must not hang
            chat; the watchdog restarts the detector meanwhile).
        due_wait_s: longest the pipeline waits for chat to park before running the frame anyway.

    Raises:
        ConfigError: an unknown policy, cores < 0, or a non-positive target.
    """

    def __init__(self, cores: int = 0, policy: "str | Policy" = Policy.DETECTION_FIRST, *, min_fps: float = 3.0,
                 max_frame_age_s: float = 0.0, max_yield_s: float = 5.0, due_wait_s: float = 1.0) -> None:
        try:
            self.policy = Policy(policy)
        except ValueError:
            raise ConfigError(f"budget.policy: expected one of {[p.value for p in Policy]}, got {policy!r}") from None
        if isinstance(cores, bool) or not isinstance(cores, int) or cores < 0:
            raise ConfigError(f"budget.cores: expected an integer >= 0, got {cores!r}")
        if not min_fps > 0 and not max_frame_age_s > 0:
            raise ConfigError(f"budget: min_fps or max_frame_age_s must be > 0, got {min_fps} and {max_frame_age_s}")
        if cores == 0:
            from .cpus import available_cores

            cores = available_cores()
        cpus = usable_cpus()
        self.cores = max(1, min(cores, len(cpus)))
        self.cpus = cpus[: self.cores]
        target = min_fps if min_fps > 0 else 0.0
        if max_frame_age_s > 0:
            target = max(target, 1.0 / max_frame_age_s)
        self.target_fps = target
        self.max_yield_s = max_yield_s
        self.due_wait_s = due_wait_s
        self._cond = threading.Condition()
        self._chat_active = 0  # generations running (the chat server runs one at a time)
        self._due = False  # a frame wants the CPUs (detection-first)
        self._running = False  # a frame's inference is running
        self._parked = False  # chat is parked between tokens
        self._last_frame_start: Optional[float] = None
        self._saved_masks: Dict[int, Tuple[int, ...]] = {}  # chat thread -> its affinity before pinning
        #: Counters for metrics: yields (chat parked), yield_wait_s (time parked), due_timeouts (frame
        #: ran without chat parking in time), paced_s (time detection was held back by pacing).
        self.stats = {"yields": 0, "yield_wait_s": 0.0, "due_timeouts": 0, "paced_s": 0.0}

    @classmethod
    def from_config(cls, budget, *, policy: "str | Policy | None" = None) -> "Scheduler":
        """Build from a :class:`~edge_runtime.runtime.config.BudgetConfig` (``policy`` replaces an "auto"
        one once it has been measured; until then "auto" plans as ``detection-first``)."""
        chosen = policy or (Policy.DETECTION_FIRST if budget.policy == "auto" else budget.policy)
        return cls(budget.cores, chosen, min_fps=budget.min_fps, max_frame_age_s=budget.max_frame_age_s)

    # ------------------------------------------------------------------------------------- the plan

    def split(self, chat_active: Optional[bool] = None) -> Split:
        """Threads/CPUs for a state (default: the current one)."""
        active = self.chat_active if chat_active is None else chat_active
        every = self.cpus
        if not active:
            return Split(self.cores, self.cores, every, every, None, False)
        if self.policy is Policy.DETECTION_FIRST or self.cores == 1:
            # Time slicing (and the only option on one core): one side at a time. The source's decoder
            # thread and the pipeline's own Python work keep running while chat decodes, and llama.cpp's
            # workers meet at a barrier after every matrix product, so one descheduled worker stalls them
            # all: on three or more cores chat leaves one core to that work. On two, leaving one would
            # halve chat; with both threads it decoded 88 tokens/s against 64 with one (benchmarks/results/
            # cosched-rect.json at e12596f and, in the history, at 4576024; 2-core x86-64).
            chat_n = self.cores if self.cores <= 2 else self.cores - 1
            return Split(self.cores, chat_n, every, every, self.target_fps * PACE_HEADROOM, True)
        chat_n = self.cores // 2
        det_n = self.cores - chat_n
        pace = self.target_fps * PACE_HEADROOM if self.policy is Policy.CHAT_FIRST else None
        return Split(det_n, chat_n, every[:det_n], every[det_n:], pace, False)

    def detector_thread_counts(self) -> Tuple[int, ...]:
        """The onnxruntime sessions this policy needs (distinct intra-op thread counts)."""
        return tuple(sorted({self.split(False).detector_threads, self.split(True).detector_threads}, reverse=True))

    @property
    def chat_active(self) -> bool:
        return self._chat_active > 0

    # ------------------------------------------------------------------------------------ chat side

    def chat_started(self) -> Split:
        """Call from the chat worker thread when a generation starts; pins that thread.

        Returns:
            the split now in force (``chat_threads`` is what llama.cpp should use).
        """
        with self._cond:
            self._chat_active += 1
            self._cond.notify_all()
        split = self.split(True)
        tid = threading.get_native_id()
        if hasattr(os, "sched_getaffinity"):
            self._saved_masks[tid] = tuple(sorted(os.sched_getaffinity(0)))
        pin_thread(tid, split.chat_cpus)
        return split

    def chat_finished(self) -> None:
        """Call from the chat worker thread when the generation ends (any way)."""
        with self._cond:
            self._chat_active = max(0, self._chat_active - 1)
            self._parked = False
            self._cond.notify_all()
        tid = threading.get_native_id()
        saved = self._saved_masks.pop(tid, None)
        if saved is not None:
            pin_thread(tid, saved)  # back to the thread's own mask (not ours: it may serve others too)

    def between_tokens(self) -> None:
        """The chat's ``between_tokens`` hook: under time slicing, park while a frame is due or running.

        Parks at most ``max_yield_s`` per frame, so a stuck detector cannot hang chat.
        """
        if not self.split(True).chat_yields:
            return
        with self._cond:
            if not (self._due or self._running):
                return
            t0 = time.monotonic()
            self._parked = True
            self.stats["yields"] += 1
            self._cond.notify_all()
            deadline = t0 + self.max_yield_s
            while (self._due or self._running) and time.monotonic() < deadline:
                self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
            self._parked = False
            self.stats["yield_wait_s"] += time.monotonic() - t0

    # ------------------------------------------------------------------------------- detection side

    def pace_delay_s(self, now: Optional[float] = None) -> float:
        """Seconds the pipeline should wait before taking the next frame (0 = go)."""
        split = self.split()
        if split.pace_fps is None or self._last_frame_start is None:
            return 0.0
        now = time.monotonic() if now is None else now
        return max(0.0, self._last_frame_start + 1.0 / split.pace_fps - now)

    def wait_turn(self, stop: Optional[threading.Event] = None) -> None:
        """Sleep until detection's next slot under pacing; returns early when chat ends or ``stop`` is set."""
        t0 = time.monotonic()
        with self._cond:
            while True:
                delay = self.pace_delay_s()
                if delay <= 0 or (stop is not None and stop.is_set()):
                    break
                self._cond.wait(timeout=min(delay, 0.05))
        self.stats["paced_s"] += time.monotonic() - t0

    @contextlib.contextmanager
    def detection_slot(self) -> Iterator[Split]:
        """Wrap one frame's inference: under time slicing, wait (at most ``due_wait_s``) for chat to
        park after its current token, run, then let chat resume.

        Yields:
            the split in force for this frame (``detector_threads`` picks the session).
        """
        with self._cond:
            self._last_frame_start = time.monotonic()
            split = self.split()
            if split.chat_yields:
                self._due = True
                deadline = time.monotonic() + self.due_wait_s
                while self.chat_active and not self._parked and time.monotonic() < deadline:
                    self._cond.wait(timeout=max(0.0, deadline - time.monotonic()))
                if self.chat_active and not self._parked:
                    self.stats["due_timeouts"] += 1
            self._running = True
        try:
            yield split
        finally:
            with self._cond:
                self._running = False
                self._due = False
                self._cond.notify_all()

    def describe(self) -> dict:
        """The budget as plain data (for logs and ``/metrics``)."""
        idle, active = self.split(False), self.split(True)
        return {"policy": self.policy.value, "cores": self.cores, "cpus": list(self.cpus),
                "target_fps": self.target_fps,
                "idle": {"detector_threads": idle.detector_threads, "chat_threads": idle.chat_threads},
                "active": {"detector_threads": active.detector_threads, "chat_threads": active.chat_threads,
                           "detector_cpus": list(active.detector_cpus), "chat_cpus": list(active.chat_cpus),
                           "pace_fps": active.pace_fps, "chat_yields": active.chat_yields}}
