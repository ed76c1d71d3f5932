"""Soak: the real job and its chat server under a steady request load, bounded in time; then the same job
without load, and the two compared.

The job is ``edge-runtime run`` on the built-in one (the real person detector, vtest.avi, the walkway
line, a results database) with the chat server on: the video is looped and replayed in "every" mode at
``--replay-fps`` (a camera that never drops a frame: every frame is processed, so counts are
deterministic, and a job that falls behind shows its lag as frame age). A load thread sends chat
requests at a fixed rate — grounded count questions, short free chat, streamed answers read to the end
and streams dropped after the first chunk (the cancel path) — and a sampler reads the process's RSS,
open file descriptors and threads from ``/proc`` and fps and frame age from ``/metrics`` every
``--sample-s``, with a ``/health`` check beside it.

Then the reference: the same job with the same sampling and no chat requests, over the same frames (the
whole run when it is shorter than one pass of the video, else one pass).

Pass criteria (each reported in the JSON with its figures):

- **RSS**: growth after warm-up (the first ``--warmup-s`` seconds after the first frame, in which the chat
  requests go out back to back, or the first pass of the video when the run holds two or more: see
  :func:`rss_criterion`) ≤ 5 MB, by both a
  robust fit (the Theil–Sen slope over the steady part × its length) and the peak (the highest sample of the
  steady part minus the median of its first five).
- **fds, threads**: no growth: the peak of the second half of the steady part is not above the peak of
  its first half.
- **counts**: every pass of the video in the loaded run gives exactly the reference's events (frame in the
  pass, line, direction, class); a run shorter than a pass is compared whole.
- **frame age**: the worst 30-s-window p95 after the warm-up under load is at most twice the
  reference's worst plus one replay frame interval.
- **chat**: no request failed (non-200 or a broken connection) while the job was running.

Timing criteria (frame age) assume a machine that runs nothing else; ``--remark`` records where that was
not so.

Run: ``python -m benchmarks.bench_soak --minutes 30`` (``make soak``); writes ``benchmarks/results/soak.json``
and ``soak.png`` (RSS, fds, threads and fps over time), or ``--json PATH`` (PNG beside it).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Tuple

from benchmarks.harness import machine_info, percentile, write_result

RSS_GROWTH_MAX_MB = 5.0
CRITERIA = ("rss", "fds", "threads", "counts", "frame_age", "chat")
FRAME_AGE_FACTOR = 2.0
LOOP_FRAMES_FALLBACK = 795  # vtest.avi

CONFIG = """
[source]
uri = "builtin:vtest-video"
mode = "every"
replay_fps = {replay_fps}
loop = true

[model]
path = "builtin:yolov8s-person"
classes = [0]
labels = ["person", "fallen person"]

[[lines]]
name = "walkway"
start = [400, 400]
end = [400, 150]

[output]
db = "{db}"
print_every_s = 0
max_frames = {frames}

[budget]
policy = "{policy}"

[chat]
enabled = true
port = 0
"""

COUNT_QUESTIONS = ("How many people crossed the walkway line?",
                   "how many people went in across the walkway line?",
                   "How many people walked out over the walkway?",
                   "how many people crossed the walkway line in the last 5 minutes?")
FREE_CHAT = ("Say hello in five words.", "Name three colours.", "What does a camera do? One sentence.",
             "Give me a short greeting.")
# The request mix, in order, repeated: grounded and free, plain and streamed, and streams the client drops.
MIX = ("count", "chat", "count", "stream_count", "chat", "count", "stream_chat", "cancel")


@dataclass
class Sample:
    t_s: float  # seconds since the first frame
    rss_mb: float
    fds: int
    threads: int
    frames: float = math.nan
    fps: float = math.nan
    frame_age_p95_s: float = math.nan


@dataclass
class Request:
    t_s: float
    kind: str
    status: int  # HTTP status; 0 = the connection broke or timed out; -1 = dropped by the client on purpose
    latency_s: float
    error: str = ""
    during_shutdown: bool = False


@dataclass
class Run:
    """One job process: what was sampled and sent, and what it counted."""

    loaded: bool
    frames: int
    samples: List[Sample] = field(default_factory=list)
    requests: List[Request] = field(default_factory=list)
    health_failures: int = 0
    health_checks: int = 0
    skipped_requests: int = 0  # due while two were still in flight (the load stays bounded)
    wall_s: float = 0.0
    summary: Dict[str, Any] = field(default_factory=dict)
    events: List[Tuple[int, str, str, int]] = field(default_factory=list)  # frame, line, direction, class
    metrics_end: Dict[str, Any] = field(default_factory=dict)
    stderr_tail: str = ""
    returncode: Optional[int] = None


# -- reading the process -----------------------------------------------------------------------------
def _proc_status(pid: int) -> Optional[Tuple[float, int, int]]:
    """(RSS MB, open fds, threads) of a live process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, FileNotFoundError):
        return None
    rss = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    threads = re.search(r"^Threads:\s+(\d+)", text, re.M)
    if rss is None or threads is None:  # it has exited and not been reaped yet (a zombie has no memory)
        return None
    return int(rss.group(1)) / 1024.0, fds, int(threads.group(1))


def parse_prometheus(text: str, prefix: str = "edge_runtime_") -> Dict[str, Any]:
    """Samples of a Prometheus text page: ``{name: value}``, labelled ones as ``{name: {label: value}}``."""
    out: Dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'(\w+)(?:\{\w+="([^"]*)"\})?\s+(\S+)', line.strip())
        if not m or not m.group(1).startswith(prefix):
            continue
        name, label, value = m.group(1)[len(prefix):], m.group(2), float(m.group(3))
        if label is None:
            out[name] = value
        else:
            out.setdefault(name, {})[label] = value
    return out


def _get(address: Tuple[str, int], path: str, timeout_s: float = 10.0) -> Tuple[int, bytes]:
    conn = http.client.HTTPConnection(*address, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# -- the load ----------------------------------------------------------------------------------------
def _chat_request(address: Tuple[str, int], kind: str, k: int) -> Tuple[int, str]:
    """Send one request of ``kind``; (status, error). Streams are read to [DONE] or dropped after a chunk."""
    grounded = "count" in kind or (kind == "cancel" and k % 2 == 0)
    content = COUNT_QUESTIONS[k % len(COUNT_QUESTIONS)] if grounded else FREE_CHAT[k % len(FREE_CHAT)]
    stream = kind.startswith("stream") or kind == "cancel"
    body = json.dumps({"model": "local", "messages": [{"role": "user", "content": content}],
                       "max_tokens": 48 if grounded else 24, "stream": stream})
    conn = http.client.HTTPConnection(*address, timeout=120)
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return resp.status, resp.read()[:200].decode("utf-8", "replace")
        if not stream:
            reply = json.loads(resp.read())
            text = reply["choices"][0]["message"].get("content") or ""
            return (200, "") if text.strip() else (200, "empty answer")
        if kind == "cancel":
            resp.readline()  # the first event, then hang up: the server must cancel the generation
            return -1, ""
        got_done = False
        for raw in resp:
            if raw.strip() == b"data: [DONE]":
                got_done = True
                break
        return (200, "") if got_done else (200, "stream ended without [DONE]")
    except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
        return 0, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


class _Load:
    """Chat requests at a fixed rate, at most two in flight (a request due while two are running is skipped).

    During the warm-up (``warmup_s`` from ``t0``) requests go out back to back instead, so the chat's
    buffers reach their working size before the steady part is measured (a run at the steady rate alone
    took about 50 free answers, several minutes, to get there).
    """

    def __init__(self, address: Tuple[str, int], rate_per_s: float, run: Run, t0: float,
                 shutting_down: threading.Event, warmup_s: float) -> None:
        self.address, self.rate, self.run, self.t0 = address, rate_per_s, run, t0
        self.shutting_down = shutting_down
        self.warmup_s = warmup_s
        self.stop = threading.Event()
        self._in_flight = threading.Semaphore(2)
        self._lock = threading.Lock()
        self._workers: List[threading.Thread] = []
        self.thread = threading.Thread(target=self._schedule, name="soak-load", daemon=True)

    def _schedule(self) -> None:
        k = 0
        while time.monotonic() - self.t0 < self.warmup_s and not self.stop.is_set():
            if self._in_flight.acquire(timeout=0.5):  # back to back, two in flight
                self._start(MIX[k % len(MIX)], k)
                k += 1
        due = time.monotonic()
        while not self.stop.wait(max(0.0, due - time.monotonic())):
            if self._in_flight.acquire(blocking=False):
                self._start(MIX[k % len(MIX)], k)
            else:
                with self._lock:
                    self.run.skipped_requests += 1
            k += 1
            due += 1.0 / self.rate

    def _start(self, kind: str, k: int) -> None:
        w = threading.Thread(target=self._one, args=(kind, k), daemon=True)
        self._workers = [t for t in self._workers if t.is_alive()] + [w]
        w.start()

    def _one(self, kind: str, k: int) -> None:
        t = time.monotonic()
        try:
            status, error = _chat_request(self.address, kind, k)
        finally:
            self._in_flight.release()
        with self._lock:
            self.run.requests.append(Request(t - self.t0, kind, status, time.monotonic() - t, error,
                                             during_shutdown=self.shutting_down.is_set()))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()
        for w in self._workers:
            w.join(150)


# -- one run -----------------------------------------------------------------------------------------
def run_job(workdir: Path, *, frames: int, replay_fps: float, policy: str, rate_per_s: float, sample_s: float,
            timeout_s: float, warmup_s: float) -> Run:
    """Start the job, sample it (and load it when ``rate_per_s`` > 0) until it has processed ``frames``."""
    loaded = rate_per_s > 0
    name = "load" if loaded else "reference"
    db = workdir / f"{name}.db"
    config = workdir / f"{name}.toml"
    config.write_text(CONFIG.format(replay_fps=replay_fps, db=db, frames=frames, policy=policy))
    summary_path = workdir / f"{name}-summary.json"
    run = Run(loaded=loaded, frames=frames)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "run", str(config), "--summary-json",
                             str(summary_path)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    tail: Deque[str] = deque(maxlen=60)
    address: List[Tuple[str, int]] = []
    got_address = threading.Event()

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line)
            m = re.search(r"serving chat on http://([\d.]+):(\d+)/v1", line)
            if m:
                address.append((m.group(1), int(m.group(2))))
                got_address.set()

    reader = threading.Thread(target=drain, name="soak-stderr", daemon=True)
    reader.start()
    started = time.monotonic()
    load: Optional[_Load] = None
    shutting_down = threading.Event()
    try:
        while not got_address.wait(0.5):
            if proc.poll() is not None or time.monotonic() - started > 600:
                raise RuntimeError(f"soak: the job did not start its chat server:\n{''.join(tail)}")
        addr = address[0]
        t0: Optional[float] = None
        last_health = 0.0
        while proc.poll() is None:
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"soak: the {name} run took longer than {timeout_s:.0f} s")
            tick = time.monotonic()
            status = _proc_status(proc.pid)
            try:
                code, body = _get(addr, "/metrics")
                metrics = parse_prometheus(body.decode()) if code == 200 else {}
            except (OSError, http.client.HTTPException):
                metrics = {}
            if status is not None and metrics:
                frames_done = metrics.get("frames_total", 0.0)
                if t0 is None and frames_done > 0:
                    t0 = tick
                    if loaded:
                        load = _Load(addr, rate_per_s, run, t0, shutting_down, warmup_s)
                        load.thread.start()
                if frames_done >= frames - max(1, int(replay_fps * 3)):
                    shutting_down.set()  # the job ends within seconds: requests cut by its exit are not failures
                    if load is not None:
                        load.stop.set()
                if t0 is not None:
                    run.samples.append(Sample(tick - t0, *status, frames=frames_done,
                                              fps=metrics.get("detection_fps", math.nan),
                                              frame_age_p95_s=metrics.get("frame_age_p95_s", math.nan)))
                    run.metrics_end = metrics
                if tick - last_health >= 5.0 and not shutting_down.is_set():
                    last_health = tick
                    run.health_checks += 1
                    try:
                        ok = _get(addr, "/health")[0] == 200
                    except (OSError, http.client.HTTPException):
                        ok = False
                    run.health_failures += int(not ok)
            time.sleep(max(0.0, sample_s - (time.monotonic() - tick)))
        run.wall_s = time.monotonic() - (t0 or started)
    finally:
        shutting_down.set()
        if load is not None:
            load.finish()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(10)
        run.returncode = proc.returncode
        run.stderr_tail = "".join(tail)[-3000:]
    if proc.returncode != 0:
        raise RuntimeError(f"soak: the {name} run exited with {proc.returncode}:\n{run.stderr_tail}")
    run.summary = json.loads(summary_path.read_text())
    with sqlite3.connect(db) as conn:
        run.events = [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "SELECT frame_index, name, direction, class_id FROM events ORDER BY frame_index, id")]
    return run


# -- the verdict -------------------------------------------------------------------------------------
def theil_sen_slope(ts: List[float], ys: List[float], max_points: int = 600) -> float:
    """Median of the pairwise slopes (robust to outliers); evenly thinned to ``max_points`` first."""
    if len(ts) < 2:
        return 0.0
    step = max(1, len(ts) // max_points)
    ts, ys = ts[::step], ys[::step]
    slopes = [(ys[j] - ys[i]) / (ts[j] - ts[i]) for i in range(len(ts)) for j in range(i + 1, len(ts))
              if ts[j] > ts[i]]
    return percentile(slopes, 50) if slopes else 0.0


def _steady(run: Run, warmup_s: float) -> List[Sample]:
    return [s for s in run.samples if s.t_s >= warmup_s]


def _no_growth(values: List[float]) -> Dict[str, Any]:
    half = len(values) // 2
    first, second = values[:half], values[half:]
    peak1, peak2 = (max(first) if first else math.nan), (max(second) if second else math.nan)
    return {"start": values[0] if values else None, "end": values[-1] if values else None,
            "min": min(values) if values else None, "max": max(values) if values else None,
            "peak_first_half": peak1, "peak_second_half": peak2,
            "pass": bool(first and second and peak2 <= peak1)}


def passes(events: List[Tuple[int, str, str, int]], loop_frames: int, frames: int) -> Dict[int, Counter]:
    """Events per complete pass of the video, as multisets of (frame within the pass, line, direction, class)."""
    complete = frames // loop_frames if frames >= loop_frames else 0
    out: Dict[int, Counter] = {p: Counter() for p in range(complete)}
    for frame, name, direction, cls in events:
        p, at = divmod(frame, loop_frames)
        if at == 0 and p > 0:  # reported on the cut: crossings of the pass before, still waiting out return_s,
            p, at = p - 1, loop_frames - 1  # which a run ending there reports on its last frame
        if p in out:
            out[p][(at, name, direction, cls)] += 1
    return out


def _totals(events: Any) -> Dict[str, int]:
    c: Counter = Counter()
    for (_, name, direction, _), n in (events.items() if isinstance(events, Counter)
                                      else ((e, 1) for e in events)):
        c[f"{name} {direction}"] += n
    return dict(sorted(c.items()))


def _growth(ts: List[float], rss: List[float]) -> Dict[str, float]:
    slope = theil_sen_slope(ts, rss)
    start = percentile(rss[:5], 50)
    return {"steady_s": ts[-1] - ts[0], "rss_at_steady_start_mb": start, "rss_end_mb": rss[-1],
            "rss_peak_mb": max(rss), "slope_mb_per_hour": slope * 3600.0, "growth_fit_mb": slope * (ts[-1] - ts[0]),
            "growth_peak_mb": max(rss) - start}


def rss_criterion(ts: List[float], rss: List[float], *, warmup_s: float, pass_s: float, frames: int,
                  loop_frames: int) -> Dict[str, Any]:
    """The RSS criterion from the loaded run's samples (seconds since the first frame, MB).

    The job's work repeats with the looped video, and its first pass is when it reaches its working set:
    the results database's page cache fills as the file grows, the allocator's heaps grow to the busiest
    frame's needs, every chat request kind has run. So growth is judged after the warm-up or, when the run
    holds at least two passes, after the first pass, whichever is later; growth after the warm-up alone is
    reported beside it.
    """
    settle_s = max(warmup_s, pass_s) if frames >= 2 * loop_frames else warmup_s
    after = [(t, r) for t, r in zip(ts, rss) if t >= settle_s]
    if len(after) < 10:
        raise RuntimeError(f"soak: only {len(after)} samples after {settle_s:.0f} s; run longer")
    judged = _growth([t for t, _ in after], [r for _, r in after])
    early = [(t, r) for t, r in zip(ts, rss) if t >= warmup_s]
    return {"warmup_s": warmup_s, "settle_s": settle_s,
            "settled_after": "the first pass of the video" if settle_s > warmup_s else "the warm-up",
            **judged, "limit_mb": RSS_GROWTH_MAX_MB,
            "after_warmup_only": _growth([t for t, _ in early], [r for _, r in early]),
            "pass": judged["growth_fit_mb"] <= RSS_GROWTH_MAX_MB and judged["growth_peak_mb"] <= RSS_GROWTH_MAX_MB}


def rescore(path: Path) -> bool:
    """Score the RSS criterion of a stored result again from its traces with this code (the measurement's
    commit stays in ``machine``; ``rescored`` names this one). Returns the new overall verdict."""
    doc = json.loads(path.read_text())
    setup, trace = doc["setup"], doc["traces"]["load"]
    doc["criteria"]["rss"] = rss_criterion(trace["t_s"], trace["rss_mb"], warmup_s=setup["warmup_s"],
                                           pass_s=setup["loop_frames"] / setup["replay_fps"], frames=setup["frames"],
                                           loop_frames=setup["loop_frames"])
    doc["pass"] = all(doc["criteria"][k]["pass"] for k in CRITERIA)
    doc["rescored"] = {"git_sha": machine_info().get("git_sha"), "criteria": ["rss"]}
    path.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    return bool(doc["pass"])


def evaluate(load: Run, ref: Run, *, warmup_s: float, replay_fps: float, loop_frames: int) -> Dict[str, Any]:
    """Each pass criterion with its figures (see the module docstring)."""
    steady = _steady(load, warmup_s)
    if len(steady) < 10:
        raise RuntimeError(f"soak: only {len(steady)} samples after the {warmup_s:.0f} s warm-up; run longer")
    memory = rss_criterion([s.t_s for s in load.samples], [s.rss_mb for s in load.samples], warmup_s=warmup_s,
                           pass_s=loop_frames / replay_fps, frames=load.frames, loop_frames=loop_frames)

    if load.frames < loop_frames:  # shorter than a pass: both runs cover the same frames, compared whole
        same = Counter(load.events) == Counter(ref.events)
        counts = {"compared": f"all {load.frames} frames", "load": _totals(load.events),
                  "reference": _totals(ref.events), "events": len(load.events), "pass": same and ref.frames == load.frames}
    else:
        ref_pass = passes(ref.events, loop_frames, ref.frames)[0]
        per_pass = passes(load.events, loop_frames, load.frames)
        equal = [p for p, c in per_pass.items() if c == ref_pass]
        counts = {"compared": f"{len(per_pass)} complete passes of {loop_frames} frames against the reference pass",
                  "reference": _totals(ref_pass), "load_per_pass": [_totals(c) for c in per_pass.values()],
                  "passes_equal": len(equal), "passes": len(per_pass), "events": sum(ref_pass.values()),
                  "pass": len(equal) == len(per_pass) > 0}

    def ages(run: Run) -> List[float]:
        # Windows wholly after the warm-up (the metrics' window is 30 s).
        return [s.frame_age_p95_s for s in _steady(run, warmup_s + 30.0) if not math.isnan(s.frame_age_p95_s)]

    load_age, ref_age = ages(load), ages(ref)
    bound = FRAME_AGE_FACTOR * max(ref_age) + 1.0 / replay_fps if ref_age else math.nan
    frame_age = {"load_worst_window_p95_s": max(load_age) if load_age else None,
                 "load_median_window_p95_s": percentile(load_age, 50) if load_age else None,
                 "reference_worst_window_p95_s": max(ref_age) if ref_age else None,
                 "reference_median_window_p95_s": percentile(ref_age, 50) if ref_age else None,
                 "bound_s": bound, "bound": f"{FRAME_AGE_FACTOR:g} x the reference's worst + 1 / replay_fps",
                 "pass": bool(load_age and ref_age and max(load_age) <= bound)}

    running = [r for r in load.requests if not r.during_shutdown]
    failed = [r for r in running if r.status not in (200, -1) or r.error]
    kinds = sorted({r.kind for r in running})
    latency = {k: {"n": len(v), "p50_s": percentile(v, 50), "p95_s": percentile(v, 95), "max_s": max(v)}
               for k in kinds for v in [[r.latency_s for r in running if r.kind == k and r.status == 200]] if v}
    chat = {"requests": len(running), "completed": sum(r.status == 200 and not r.error for r in running),
            "dropped_by_client": sum(r.status == -1 for r in running), "failed": len(failed),
            "failures": [f"{r.kind} at {r.t_s:.0f} s: {r.status} {r.error}" for r in failed[:10]],
            "skipped_two_in_flight": load.skipped_requests, "latency_by_kind": latency,
            "rate_per_s": len(load.requests) / load.wall_s if load.wall_s else 0.0,
            "health_checks": load.health_checks, "health_failures": load.health_failures,
            "server_outcomes": load.metrics_end.get("chat_requests_total", {}),
            "pass": len(running) > 0 and not failed and load.health_failures == 0}

    def fps(run: Run) -> float:
        vals = [s.fps for s in _steady(run, warmup_s) if not math.isnan(s.fps)]
        return percentile(vals, 50) if vals else math.nan

    return {
        "rss": memory,
        "fds": _no_growth([float(s.fds) for s in steady]),
        "threads": _no_growth([float(s.threads) for s in steady]),
        "counts": counts,
        "frame_age": frame_age,
        "chat": chat,
        "fps_median": {"load": fps(load), "reference": fps(ref), "replay_fps": replay_fps},
    }


def _trace(run: Run) -> Dict[str, List[float]]:
    return {"t_s": [round(s.t_s, 2) for s in run.samples], "rss_mb": [round(s.rss_mb, 2) for s in run.samples],
            "fds": [s.fds for s in run.samples], "threads": [s.threads for s in run.samples],
            "fps": [round(s.fps, 3) for s in run.samples],
            "frame_age_p95_s": [round(s.frame_age_p95_s, 3) for s in run.samples]}


def plot(load: Run, ref: Run, warmup_s: float, path: Path) -> None:
    """RSS, open fds, threads and fps over time, the loaded run against the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    rows = (("rss_mb", "RSS (MB)"), ("fds", "open fds"), ("threads", "threads"), ("fps", "detection fps (30 s)"))
    for ax, (key, label) in zip(axes, rows):
        for run, name, style in ((load, "chat load", "-"), (ref, "no load", "--")):
            tr = _trace(run)
            ax.plot(tr["t_s"], tr[key], style, label=name, linewidth=1.2)
        ax.axvline(warmup_s, color="grey", linewidth=0.8, linestyle=":")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel("seconds since the first frame (dotted: end of warm-up)")
    fig.suptitle("soak: edge-runtime run (vtest.avi looped, every frame) + chat server under steady load")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def measure_replay_fps(share: float = 0.5, frames: int = 6) -> Tuple[float, float]:
    """(replay fps, detector fps): ``share`` of what the detector manages on one thread (its share of two
    cores under ``fair`` while chat runs; the slow end, p90, of ``frames`` timed calls), in 0.1 fps steps."""
    import cv2

    from edge_runtime.assets import ensure
    from edge_runtime.vision.detector import Detector

    detector = Detector(ensure("yolov8s-person"), threads=1, classes=[0])
    cap = cv2.VideoCapture(str(ensure("vtest-video")))
    try:
        images = [cap.read()[1] for _ in range(frames + 2)]
    finally:
        cap.release()
    times = []
    for i, image in enumerate(images):
        t = time.perf_counter()
        detector(image)
        if i >= 2:
            times.append(time.perf_counter() - t)
    detector_fps = 1.0 / percentile(times, 90)
    return max(0.2, min(10.0, math.floor(share * detector_fps * 10) / 10)), detector_fps


def _loop_frames() -> int:
    import cv2

    from edge_runtime.assets import ensure

    cap = cv2.VideoCapture(str(ensure("vtest-video")))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    return n if n > 0 else LOOP_FRAMES_FALLBACK


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the loaded run (frames = minutes x 60 x replay fps)")
    parser.add_argument("--replay-fps", type=float, default=0.0,
                        help="camera rate the video is replayed at; 0 = half what the detector manages on one "
                             "thread, measured first (the job must keep up under chat load for frame age to hold)")
    parser.add_argument("--rate", type=float, default=0.5, help="chat requests per second")
    parser.add_argument("--policy", default="fair", help="budget.policy of the job (fixed, so both runs share it)")
    parser.add_argument("--warmup-s", type=float, default=90.0,
                        help="seconds after the first frame left out of the verdict (chat requests back to back)")
    parser.add_argument("--sample-s", type=float, default=2.0, help="sampling period")
    parser.add_argument("--json", type=Path, default=None, help="write here (default benchmarks/results/soak.json)")
    parser.add_argument("--remark", default="", help="a note stored with the result (e.g. other load on the machine)")
    parser.add_argument("--rescore", type=Path, default=None, metavar="JSON",
                        help="only score the RSS criterion of a stored result again from its traces, in place")
    args = parser.parse_args(argv)
    if args.rescore is not None:
        ok = rescore(args.rescore)
        print(f"soak: {'pass' if ok else 'FAIL'} (RSS rescored) -> {args.rescore}")
        return 0 if ok else 1

    loop_frames = _loop_frames()
    detector_fps = None
    if args.replay_fps <= 0:
        args.replay_fps, detector_fps = measure_replay_fps()
        print(f"soak: the detector manages {detector_fps:.2f} fps on one thread; replaying at {args.replay_fps:g} fps")
    frames = max(1, int(round(args.minutes * 60 * args.replay_fps)))
    ref_frames = min(frames, loop_frames)
    limit = lambda n: 3 * n / args.replay_fps + 600  # noqa: E731  (a run that hangs must not hang the soak)
    with tempfile.TemporaryDirectory(prefix="edge-soak-") as tmp:
        print(f"soak: {frames} frames at {args.replay_fps:g} fps with {args.rate:g} chat requests/s ...", flush=True)
        load = run_job(Path(tmp), frames=frames, replay_fps=args.replay_fps, policy=args.policy,
                       rate_per_s=args.rate, sample_s=args.sample_s, timeout_s=limit(frames), warmup_s=args.warmup_s)
        print(f"soak: reference, {ref_frames} frames without chat requests ...", flush=True)
        ref = run_job(Path(tmp), frames=ref_frames, replay_fps=args.replay_fps, policy=args.policy,
                      rate_per_s=0.0, sample_s=args.sample_s, timeout_s=limit(ref_frames), warmup_s=args.warmup_s)
    verdict = evaluate(load, ref, warmup_s=args.warmup_s, replay_fps=args.replay_fps, loop_frames=loop_frames)
    criteria = CRITERIA
    payload = {
        "question": "Does the job with its chat server under a steady request load hold memory, fds, threads, counts "
                    "and frame age over time?",
        "setup": {"minutes": args.minutes, "frames": frames, "reference_frames": ref_frames,
                  "loop_frames": loop_frames, "replay_fps": args.replay_fps,
                  "detector_fps_one_thread_p90": detector_fps, "chat_rate_per_s": args.rate,
                  "request_mix": list(MIX), "policy": args.policy, "warmup_s": args.warmup_s,
                  "sample_s": args.sample_s, "source": "builtin:vtest-video, every frame, looped"},
        "pass": all(verdict[k]["pass"] for k in criteria),
        "criteria": verdict,
        "remark": args.remark,
        "wall_s": {"load": load.wall_s, "reference": ref.wall_s},
        "traces": {"load": _trace(load), "reference": _trace(ref)},
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "soak", "machine": machine_info(), **payload}, indent=2,
                                        default=float) + "\n")
        path = args.json
    else:
        path = write_result("soak", payload)
    plot(load, ref, args.warmup_s, path.with_suffix(".png"))
    for k in criteria:
        print(f"  {k:10s} {'pass' if verdict[k]['pass'] else 'FAIL'}")
    print(f"soak: {'pass' if payload['pass'] else 'FAIL'} -> {path}")
    return 0 if payload["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
