"""One runtime process: the counting pipeline and the chat server from one config, on one CPU budget.

:class:`Supervisor` builds the pipeline (:func:`~edge_runtime.runtime.build.build_pipeline`) and, with
``[chat] enabled = true``, loads the chat model and serves ``/v1/chat/completions`` and ``/metrics``
next to it. A :class:`~edge_runtime.runtime.scheduler.Scheduler` shares the cores between the two
(see its policies). Chat about counts is grounded: a question the grounding parser reads as a count
("how many people crossed the walkway line in the last 5 minutes?") is answered with the exact
figure from :mod:`edge_runtime.ask` (the model may only word it, numbers checked); every other request gets a
system message with the live totals, so the model talks about what the camera actually sees.

Faults:

- A chat request cannot stall counting: frames never wait for the model lock, and under
  detection-first a generation parks between tokens while a frame runs.
- A stuck detector: each inference runs on its own worker thread and the pipeline waits at most
  ``stuck_timeout_s``. Past that the watchdog abandons the worker (a thread blocked inside native code
  cannot be killed; its session is leaked), loads fresh sessions on a new worker, and the frame counts as
  stuck (empty detections, so tracks coast as on a missed frame). Tracker and counters are untouched:
  counts carry on.
- SIGTERM (see ``edge-runtime run``): the frame in flight finishes, sinks flush and the run is closed
  in the database, running generations are cancelled, the server stops, exit status 0.

Example:
    >>> sup = Supervisor(load_config("site.toml"))       # doctest: +SKIP
    >>> summary = sup.run()                              # until the source ends or stop()
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..errors import EdgeRuntimeError
from ..vision.detections import Detections
from ..vision.detector import Detector, DetectorTimings
from .config import Config
from .metrics import Metrics, prometheus_text
from .pipeline import Pipeline, RunSummary
from .scheduler import Scheduler, pin_thread

__all__ = ["ManagedDetector", "Supervisor", "clone_detector"]

log = logging.getLogger(__name__)



def clone_detector(detector: Detector, threads: int) -> Detector:
    """A new session of the same model and settings with another intra-op thread count."""
    return Detector(detector.path, threads=threads, conf_threshold=detector.conf_threshold,
                    iou_threshold=detector.iou_threshold, max_det=detector.max_det,
                    classes=detector._classes, agnostic_nms=detector.agnostic_nms,
                    labels=list(detector.class_names.values()), rect=detector.rect,
                    cache_rewrite=detector.cache_rewrite, spin=detector.spin)


class _Worker:
    """One inference thread and the sessions it owns (one per thread count)."""

    def __init__(self, make: Callable[[int], Any], counts: Tuple[int, ...], cpus_for: Dict[int, Tuple[int, ...]],
                 first: Any = None) -> None:
        self.jobs: "queue.Queue[Optional[Tuple[Any, int, Future]]]" = queue.Queue()
        self.ready = threading.Event()
        self.error: Optional[BaseException] = None
        self.sessions: Dict[int, Any] = {}
        self.abandoned = False
        self.native_id: Optional[int] = None
        self._make, self._counts, self._cpus_for, self._first = make, counts, cpus_for, first
        self.thread = threading.Thread(target=self._run, name="edge-inference", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        try:
            for n in self._counts:
                if self._first is not None and getattr(self._first, "threads", None) == n:
                    self.sessions[n] = self._first
                    continue
                # onnxruntime's pool threads inherit this thread's affinity when the session is made.
                pin_thread(self.native_id, self._cpus_for[n])
                self.sessions[n] = self._make(n)
        except BaseException as exc:  # reported to the caller by ManagedDetector
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        pinned: Optional[Tuple[int, ...]] = None
        while True:
            job = self.jobs.get()
            if job is None or self.abandoned:
                return
            frame, threads, future = job
            cpus = self._cpus_for[threads]
            if cpus != pinned:
                pin_thread(self.native_id, cpus)
                pinned = cpus
            session = self.sessions[threads]
            try:
                result = session(frame)
                future.set_result((result, session.timings))
            except BaseException as exc:
                future.set_exception(exc)


class ManagedDetector:
    """A detector driven by the scheduler and guarded by a watchdog; a drop-in for :class:`Detector`.

    Args:
        make: builds a detector session for a thread count (e.g. ``lambda n: clone_detector(det, n)``).
        scheduler: picks the session (thread count, CPUs) per frame and time-slices with chat.
        stuck_timeout_s: an inference longer than this is abandoned and the detector restarted. The
            limit in force is never below 10x the median of the last 20 inferences, so a board that is
            merely slow (thermal throttling, other load) is not mistaken for a stuck one.
        load_timeout_s: longest the pipeline waits for (re)loading sessions.
        metrics: receives stuck frames and restarts.
        first: an already loaded detector to reuse for its thread count.

    Raises:
        EdgeRuntimeError: sessions did not load within ``load_timeout_s``; errors from ``make`` as raised.
    """

    def __init__(self, make: Callable[[int], Any], scheduler: Scheduler, *, stuck_timeout_s: float = 10.0,
                 load_timeout_s: float = 120.0, metrics: Optional[Metrics] = None, first: Any = None) -> None:
        self._make = make
        self.scheduler = scheduler
        self.stuck_timeout_s = stuck_timeout_s
        self.load_timeout_s = load_timeout_s
        self.metrics = metrics
        self.restarts = 0
        self.timings = DetectorTimings()
        self._recent_s: "deque[float]" = deque(maxlen=20)
        #: Inference threads given up on (each may still be blocked inside native code).
        self.abandoned: List[threading.Thread] = []
        self._counts = scheduler.detector_thread_counts()
        idle, active = scheduler.split(False), scheduler.split(True)
        self._cpus_for = {idle.detector_threads: idle.detector_cpus, active.detector_threads: active.detector_cpus}
        self._worker = _Worker(make, self._counts, self._cpus_for, first)
        self._wait_ready()
        any_session = next(iter(self._worker.sessions.values()))
        self.class_names = any_session.class_names

    def _wait_ready(self) -> None:
        if not self._worker.ready.wait(self.load_timeout_s):
            raise EdgeRuntimeError(f"ManagedDetector: sessions for threads {self._counts} did not load within "
                                   f"{self.load_timeout_s} s")
        if self._worker.error is not None:
            raise self._worker.error

    @property
    def limit_s(self) -> float:
        """The watchdog limit in force for the next inference, seconds."""
        recent = sorted(self._recent_s)
        return max(self.stuck_timeout_s, 10.0 * recent[len(recent) // 2]) if recent else self.stuck_timeout_s

    @property
    def inference_native_id(self) -> Optional[int]:
        """Native id of the thread running inference now (for CPU accounting)."""
        return self._worker.native_id

    def __call__(self, frame: Any) -> Detections:
        """Detect in one frame with the session the scheduler picks; empty detections if it got stuck."""
        self._wait_ready()
        future: Future = Future()
        limit = self.limit_s
        with self.scheduler.detection_slot() as split:
            t0 = time.monotonic()
            self._worker.jobs.put((frame, split.detector_threads, future))
            try:
                detections, self.timings = future.result(timeout=limit)
                self._recent_s.append(time.monotonic() - t0)
                return detections
            except TimeoutError:
                pass
        self._restart()
        return Detections.empty()

    detect = __call__

    def _restart(self) -> None:
        log.error("detector stuck for more than %.1f s; restarting it (counts are kept)", self.limit_s)
        self._worker.abandoned = True
        self._worker.jobs.put(None)  # if it ever comes back, it ends instead of waiting for work
        self.abandoned.append(self._worker.thread)
        self.restarts += 1
        self.timings = DetectorTimings()
        if self.metrics is not None:
            self.metrics.frame_stuck()
            self.metrics.detector_restarted()
        self._worker = _Worker(self._make, self._counts, self._cpus_for)
        if self.metrics is not None:
            self._worker.ready.wait(self.load_timeout_s)
            if self._worker.native_id is not None:
                self.metrics.register_thread("inference", self._worker.native_id)

    def close(self) -> None:
        """Let the inference thread end (a stuck one is left behind; it is a daemon)."""
        self._worker.jobs.put(None)

    def __getattr__(self, name: str) -> Any:  # path, threads, input_hw, ...: the current session's
        worker = self.__dict__.get("_worker")
        if worker is None or not worker.sessions:
            raise AttributeError(name)
        return getattr(next(iter(worker.sessions.values())), name)


class _ArrivalClock:
    """Wraps a FrameSource and notes when each frame reached the pipeline (monotonic seconds)."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self.arrival_s = 0.0

    @property
    def clock_scale(self) -> float:
        """Wall seconds per second of frame timestamps (a file replayed at another rate than its own)."""
        return float(getattr(self._source, "clock_scale", 1.0))

    def __enter__(self) -> "_ArrivalClock":
        self._source.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._source.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        for frame in self._source:
            self.arrival_s = time.monotonic()
            yield frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)


class _ChatHooks:
    """What the chat server calls: scheduling around generations, grounding, metrics."""

    def __init__(self, sup: "Supervisor") -> None:
        self.sup = sup

    def generation_started(self) -> None:
        split = self.sup.scheduler.chat_started()
        self.sup.metrics.register_thread("chat")
        try:
            self.sup.chat.set_threads(split.chat_threads)
        except Exception:  # an older llama-cpp-python without llama_set_n_threads: keep the load-time count
            log.debug("could not change llama.cpp threads", exc_info=True)

    def generation_finished(self, stats: Any, outcome: str) -> None:
        self.sup.scheduler.chat_finished()
        self.sup.metrics.chat_done(stats, outcome if stats is None or stats.finish_reason is None
                                   or stats.finish_reason.value != "cancelled" else "cancelled")

    def between_tokens(self) -> None:
        self.sup.scheduler.between_tokens()

    def prepare(self, messages: List[Dict[str, str]]) -> Tuple[List[Dict[str, str]], Any]:
        return self.sup.service().prepare(messages)

    def plan_tool_call(self, messages: List[Dict[str, str]], request: Any) -> Any:
        return self.sup.service().plan_tool_call(messages, request)

    def tool_definitions(self) -> List[Dict[str, Any]]:
        return self.sup.service().tool_definitions()

    def run_tool(self, name: str, arguments: Any) -> Dict[str, Any]:
        return self.sup.service().run_tool(name, arguments)

    def metrics_text(self) -> str:
        return prometheus_text(self.sup.metrics_snapshot())


class Supervisor:
    """Runs the pipeline on its own thread and (if enabled) the chat server, sharing one CPU budget.

    Args:
        config: a validated config.
        restart_source, quiet: as for :func:`~edge_runtime.runtime.build.build_pipeline`.
        stuck_timeout_s: watchdog limit for one inference.
        chat: an already loaded :class:`~edge_runtime.llm.chat.Chat` to serve (default: load
            ``config.chat.model`` when ``config.chat.enabled``).
        pipeline: an already built pipeline to supervise (tests; default: built from ``config``).
        make_detector: builds detector sessions by thread count (default: clones of the pipeline's).
        config_path: the file ``config`` was loaded from; the dashboard's editor saves lines and zones
            to it (None: edits are refused).

    Raises:
        ConfigError, ModelFormatError, SourceError, StoreError, AssetError, BackendUnavailableError: as the
            parts do, at construction.
    """

    def __init__(self, config: Config, *, restart_source: bool = False, quiet: bool = False,
                 stuck_timeout_s: float = 10.0, chat: Any = None, pipeline: Optional[Pipeline] = None,
                 make_detector: Optional[Callable[[int], Any]] = None, config_path: Optional[str] = None) -> None:
        self.config = config
        self.scheduler = Scheduler.from_config(config.budget)
        self.metrics = Metrics()
        #: How ``budget.policy = "auto"`` was resolved: the measurement and the choice (None otherwise).
        self.policy_choice: Optional[Dict[str, Any]] = None
        if pipeline is None:
            from .build import build_pipeline

            cores = self.scheduler.cores
            config_threads = config.model.threads or cores
            import dataclasses

            model = dataclasses.replace(config.model, threads=config_threads)
            pipeline = build_pipeline(dataclasses.replace(config, model=model), restart_source=restart_source,
                                      quiet=quiet)
        self.pipeline = pipeline
        base = pipeline.detector
        make = make_detector or (lambda n: clone_detector(base, n))
        if config.budget.policy == "auto" and config.chat.enabled:
            self._choose_policy(make, base if make_detector is None else None)
        self.detector = ManagedDetector(make, self.scheduler, stuck_timeout_s=stuck_timeout_s, metrics=self.metrics,
                                        first=base if make_detector is None else None)
        pipeline.detector = self.detector  # type: ignore[assignment]
        self._clock = _ArrivalClock(pipeline.source)
        pipeline.source = self._clock  # type: ignore[assignment]
        self.metrics.add_gauge("dropped_frames_total", lambda: float(getattr(getattr(self._clock, "stats", None),
                                                                             "dropped", 0)))
        self._add_source_gauges()
        from .memory import estimate_memory

        #: The job's memory estimate (checked against the machine by build_pipeline), also in /metrics.
        self.memory_budget = estimate_memory(config)
        self.metrics.add_gauge("memory_budget_bytes", lambda: float(self.memory_budget.total_bytes))
        self.metrics.add_gauge("memory_limit_bytes", lambda: float(self.memory_budget.machine.limit_bytes))
        from .sinks import StoreSink

        for sink in pipeline.sinks:
            if isinstance(sink, StoreSink):  # a full disk in /metrics: 0 while writes fail, frames waiting
                self.metrics.add_gauge("store_writable", lambda sink=sink: float(sink.store.healthy))
                self.metrics.add_gauge("store_backlog_frames", lambda sink=sink: float(sink.backlog_frames))
                self.metrics.add_gauge("store_lost_events_total", lambda sink=sink: float(sink.lost_events))
        self.chat = chat
        self.server: Any = None
        self.address: Optional[Tuple[str, int]] = None
        if config.chat.enabled and self.chat is None:
            from ..assets import resolve
            from ..llm.chat import Chat

            self.chat = Chat(resolve(config.chat.model), n_ctx=config.chat.ctx, n_threads=self.scheduler.cores)
        #: The web dashboard (``[dashboard] enabled``), served by the chat server.
        self.dashboard: Any = None
        if self.chat is not None:
            from ..llm.server import ChatServer, ServerConfig

            server_config = ServerConfig(host=config.chat.host, port=config.chat.port, token=config.chat.token or None)
            if config.dashboard.enabled:
                from ..dashboard import Dashboard

                self.dashboard = Dashboard(config.dashboard, pipeline=pipeline, config=config,
                                           config_path=config_path, token=server_config.token,
                                           class_names=self.detector.class_names, status=self.status,
                                           on_places_changed=self._places_changed)
                pipeline.sinks.extend(self.dashboard.sinks())
            self.server = ChatServer(self.chat, server_config, hooks=_ChatHooks(self),
                                     routes=self.dashboard.routes() if self.dashboard is not None else ())
            if self.dashboard is not None:
                self.dashboard.chat_app = self.server.app
            self.metrics.add_gauge("chat_queue_depth", lambda: float(max(self.server._admitted - 1, 0)))
        self.mqtt: Any = None  # the MQTT publisher, from start() when [mqtt] is enabled
        self.links: List[Any] = []  # edge-link sessions, from start() for each [[links]] entry
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._max_frames = 0
        self.summary: Optional[RunSummary] = None
        self.error: Optional[BaseException] = None

    def _add_source_gauges(self) -> None:
        """Camera outages in /metrics (and MQTT stats): whether frames flow, outages, reconnections."""
        stats = getattr(self.pipeline.source, "stats", None)
        if stats is None:
            return
        source = self.pipeline.source
        self.metrics.add_gauge("source_connected", lambda: float(stats.in_gap_since is None
                                                                 and bool(getattr(source, "connected", True))))
        self.metrics.add_gauge("source_gaps_total", lambda: float(stats.gap_count))
        self.metrics.add_gauge("source_reconnects_total", lambda: float(stats.reconnects))
        self.metrics.add_gauge("source_reconnect_attempts_total", lambda: float(stats.reconnect_attempts))
        self.metrics.add_gauge("source_stuck_reads_total", lambda: float(stats.stuck_reads))

    def _choose_policy(self, make: Callable[[int], Any], base: Any = None, frames: int = 6) -> None:
        """Resolve ``budget.policy = "auto"``: time the detector on fair's share of the cores and on all of
        them (``base``, the job's own detector, when it already has that many threads)."""
        import numpy as np

        from .cpus import cpu_quota
        from .scheduler import choose_policy, fair_detector_threads, fair_share_fps, time_slice_chat_share

        cores = self.scheduler.cores
        quota = cpu_quota()
        threads = fair_detector_threads(cores)
        image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)

        def fps_p90(detector: Any) -> float:
            times = []
            for i in range(frames + 2):
                t0 = time.perf_counter()
                detector(image)
                if i >= 2:  # two warm-up calls
                    times.append(time.perf_counter() - t0)
            times.sort()
            return 1.0 / times[min(len(times) - 1, int(0.9 * len(times)))]  # the slow end (p90)

        share_fps = all_fps = 0.0
        if cores >= 2:
            share_fps = fps_p90(make(threads))
            all_fps = fps_p90(base if getattr(base, "threads", None) == cores else make(cores))
        target = self.scheduler.target_fps
        policy = choose_policy(cores, target, share_fps, quota, all_fps=all_fps)
        expected = fair_share_fps(cores, share_fps, quota)
        slice_share = time_slice_chat_share(target, all_fps)
        self.policy_choice = {"policy": policy.value, "cores": cores, "detector_threads": threads,
                              "detector_fps_p90": share_fps, "cpu_quota": quota, "fair_detector_fps": expected,
                              "all_cores_detector_fps_p90": all_fps, "time_slice_chat_share": slice_share,
                              "target_fps": target}
        log.info("budget.policy auto -> %s (detector on %d of %d cores: %.2f fps at p90%s; on all: %.2f fps, "
                 "time slicing would leave chat %.0f %%; target %.2f)",
                 policy.value, threads, cores, share_fps,
                 f", {expected:.2f} under the {quota:g}-core quota" if expected != share_fps else "",
                 all_fps, 100 * slice_share, target)
        self.scheduler = Scheduler.from_config(self.config.budget, policy=policy)

    # ------------------------------------------------------------------------------------- running

    def start(self, max_frames: int = 0) -> None:
        """Start the chat server (if any; :attr:`address` is then set) and the pipeline thread."""
        if self._thread is not None:
            raise EdgeRuntimeError("Supervisor.start: already running")
        if self.server is not None:
            self.address = self.server.start()
            log.info("chat server on http://%s:%d/v1 (metrics at /metrics)", *self.address)
        self._max_frames = max_frames
        from ..gateway.attach import start_mqtt

        self.mqtt = start_mqtt(self.config, self.pipeline, snapshot=self.metrics_snapshot, asker=self.asker())
        if self.config.links:
            from ..link.attach import start_links

            self.links = start_links(self.config, self.pipeline, self.asker())
        if self.detector.inference_native_id is not None:
            self.metrics.register_thread("inference", self.detector.inference_native_id)
        self._thread = threading.Thread(target=self._drive, name="edge-pipeline", daemon=True)
        self._thread.start()

    def _drive(self) -> None:
        self.metrics.register_thread("pipeline")
        pipe = self.pipeline
        try:
            for result in pipe:
                self.metrics.frame_done(timestamp_s=result.frame.timestamp_s * self._clock.clock_scale,
                                        arrival_s=self._clock.arrival_s,
                                        inference_ms=result.timings.inference_ms if result.inferred else 0.0)
                if self._max_frames and pipe.summary.frames >= self._max_frames:
                    break
                if self._stop.is_set():
                    break
                self.scheduler.wait_turn(self._stop)
        except BaseException as exc:  # reported by wait()/run(); the server is stopped there
            log.exception("pipeline failed")
            self.error = exc
        finally:
            for sink in pipe.sinks:
                try:
                    sink.close(pipe)
                except Exception:
                    log.exception("closing sink %r failed", sink)
            self.summary = pipe.totals()

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Wait for the pipeline thread to end; True when it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Ask the pipeline to end after the frame in flight (safe from a signal handler)."""
        self._stop.set()
        self.pipeline.stop()

    def shutdown(self) -> RunSummary:
        """Stop everything, flush, close the database; returns the totals.

        Raises:
            the pipeline's error, if it failed.
        """
        self.stop()
        self.wait()
        for link in self.links:
            link.close()
        if self.mqtt is not None:
            self.mqtt.stop()  # after the pipeline's last events are in the database
        if self.server is not None:
            self.server.stop()
        self.detector.close()
        store = getattr(self.pipeline, "store", None)
        if store is not None:
            store.close()
        if self.chat is not None and self.server is not None:
            self.chat.close()
        if self.error is not None:
            raise self.error
        return self.summary if self.summary is not None else self.pipeline.totals()

    def run(self, max_frames: int = 0) -> RunSummary:
        """Start, wait until the source ends, ``max_frames`` or :meth:`stop`, then :meth:`shutdown`."""
        self.start(max_frames)
        try:
            while not self.wait(0.2):
                pass
        finally:
            summary = self.shutdown()
        return summary

    # ------------------------------------------------------------------------------------ reading

    def metrics_snapshot(self) -> Dict[str, Any]:
        """:meth:`Metrics.snapshot` plus the budget's yield counters."""
        snap = self.metrics.snapshot()
        snap["chat_yields_total"] = self.scheduler.stats["yields"]
        snap["chat_yield_wait_s_total"] = self.scheduler.stats["yield_wait_s"]
        return snap

    def status(self) -> Dict[str, Any]:
        """The dashboard's system panel: :meth:`metrics_snapshot` (the numbers ``/metrics`` gives) plus the
        scheduling policy and the budget."""
        snap = self.metrics_snapshot()
        snap["policy"] = self.scheduler.policy.value
        snap["policy_choice"] = self.policy_choice
        snap["budget"] = {"cores": self.scheduler.cores, "target_fps": self.scheduler.target_fps,
                          "max_frame_age_s": self.config.budget.max_frame_age_s}
        snap["paused"] = self.pipeline.paused
        return snap

    def _places_changed(self, config: Config) -> None:
        """The dashboard's editor applied new lines/zones: questions may name them from now on."""
        self.config = config
        asker = getattr(self, "_asker", None)
        if asker is not None:
            from ..ask.query import Catalog

            asker.catalog = Catalog(self._kinds(), asker.catalog.classes, asker.catalog.sensors)

    def _kinds(self) -> Dict[str, str]:
        return {c.name: ("zone" if hasattr(c, "polygon") else "line") for c in self.pipeline.counters}

    def live_facts(self) -> str:
        """One paragraph of the live totals, for the chat's system message."""
        totals = self.pipeline.totals()
        names = self.detector.class_names
        parts = []
        for name, dirs in {**totals.lines, **totals.zones}.items():
            counts = ", ".join(f"{d}: " + (", ".join(f"{n} {names.get(c, c)}" for c, n in sorted(by.items())) or "0")
                               for d, by in dirs.items())
            parts.append(f"{name} ({self._kinds().get(name, 'line')}): {counts}")
        fps = self.metrics.detection_fps()
        return (f"You are the assistant of a camera that counts objects crossing lines and zones. Live totals "
                f"since counting began: {'; '.join(parts) or 'no lines or zones configured'}. Detection runs at "
                f"{fps:.1f} frames per second. Use only these numbers when asked about counts.")

    def asker(self) -> Any:
        """The question answerer over this job's database (or its memory when it has none)."""
        if getattr(self, "_asker", None) is None:
            from ..ask.answer import asker_for_pipeline
            from ..ask.cli import timezone

            self._asker = asker_for_pipeline(self.pipeline, chat=self.chat, tz=timezone(self.config.chat.timezone),
                                             phrase=self.config.chat.phrase, class_names=self.detector.class_names)
        return self._asker

    def service(self) -> Any:
        """Grounding and tools for the chat server (:class:`~edge_runtime.ask.serving.AskService`)."""
        if getattr(self, "_service", None) is None:
            from ..ask.serving import AskService

            def grounded() -> None:
                self.metrics.chat_outcomes["grounded"] += 1
            self._service = AskService(self.asker(), context=self.live_facts, on_grounded=grounded,
                                       on_answer=self.dashboard.answers.record if self.dashboard is not None else None)
        return self._service
