"""What the dashboard costs the job: one viewer of the live view at 5 fps, and nobody watching.

1. The job (``edge-runtime run`` in a child process; the viewer lives in this process, so its own CPU is
   not counted): the built-in video replayed as a camera ("latest", 10 fps), the real detector behind the
   motion gate (inference on every 50th frame only; every frame still goes through the sinks, so the
   live view can run at 5 fps on a board whose detector cannot), the chat server and the dashboard.
   Interleaved windows of ``--window-s`` seconds, with one MJPEG viewer connected and with none, the order
   alternating per round, >= 5 rounds. The job's CPU (user + system of the whole process, /proc) per
   window, in % of one core; the added CPU is the per-round difference (median, p90). The frames the
   viewer received and the job's detection rate in both phases are recorded (a viewer must not slow
   detection). Target: <= 5 % of one core added.
2. In process, on real frames of the video: what a frame costs on the pipeline's thread with no viewer
   (the live view's and the thumbnails' ``write``: a check and a return) and what one frame for a viewer
   costs (draw, scale to 640 px, JPEG), interleaved in blocks, >= 5 rounds; the latter at 5 fps is the
   derived share of one core. Target with no viewer: ~0 (microseconds per frame).

Run: ``python -m benchmarks.bench_dashboard`` (writes benchmarks/results/dashboard.json). The machine's
load is recorded (``loadavg_before`` / ``loadavg_after``): on a shared machine the job-level figures are
noisy; the in-process ones much less so.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from benchmarks.harness import percentile, write_result

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
_CLK_TCK = os.sysconf("SC_CLK_TCK")

JOB = """
[source]
uri = "builtin:vtest-video"
mode = "latest"
motion_gate = true
motion_threshold = 1.0     # never "motion": inference runs on every motion_max_skip-th frame only
motion_max_skip = 50       # a detector call (which stalls delivery) every 5 s of video

[model]
path = "builtin:yolov8s-person"
classes = [0]

[[lines]]
name = "walkway"
start = [400, 400]
end = [400, 150]

[output]
db = "{db}"
print_every_s = 0.0

[budget]
policy = "detection-first"

[chat]
enabled = true
port = 0
ctx = 512
token = "{token}"

[dashboard]
enabled = true
mjpeg_fps = 5.0
"""


def _cpu_s(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    rest = text.rsplit(")", 1)[-1].split()
    return (int(rest[11]) + int(rest[12])) / _CLK_TCK


def _frames_total(host: str, port: int) -> float:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return float(re.search(r"^edge_runtime_frames_total (\S+)$", text, re.M).group(1))


class Viewer:
    """One MJPEG viewer on its own thread: connects on start(), counts frames, disconnects on stop()."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.frames = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._conn: Optional[http.client.HTTPConnection] = None

    def start(self) -> None:
        self.frames = 0
        self._stop.clear()
        self._conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self._conn.request("GET", "/dashboard/live.mjpg", headers={"Authorization": f"Bearer {TOKEN}"})
        resp = self._conn.getresponse()
        if resp.status != 200:
            raise SystemExit(f"bench_dashboard: the live view answered {resp.status}")
        self._thread = threading.Thread(target=self._read, args=(resp,), daemon=True)
        self._thread.start()

    def _read(self, resp: Any) -> None:
        try:
            while not self._stop.is_set():
                line = resp.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    size = int(line.split(b":")[1])
                    resp.readline()
                    resp.read(size)
                    self.frames += 1
        except (OSError, ValueError, http.client.HTTPException):
            return

    def stop(self) -> int:
        self._stop.set()
        if self._conn is not None:
            if self._conn.sock is not None:
                self._conn.sock.shutdown(2)  # wakes the reader; the server sees the viewer leave
            self._conn.close()
        if self._thread is not None:
            self._thread.join(5)
        return self.frames


def measure_job(rounds: int, window_s: float) -> Dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    config = tmp / "job.toml"
    config.write_text(JOB.format(db=tmp / "job.db", token=TOKEN))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "run", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd=str(tmp))
    try:
        address = None
        deadline = time.monotonic() + 240
        while address is None and time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            if not line and proc.poll() is not None:
                raise SystemExit("bench_dashboard: the job ended before serving")
            m = re.search(r"dashboard at http://([^:/]+):(\d+)/dashboard", line)
            address = (m.group(1), int(m.group(2))) if m else None
        if address is None:
            raise SystemExit("bench_dashboard: the job never served the dashboard")
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        host, port = address
        viewer = Viewer(host, port)
        time.sleep(3.0)  # warm-up: first frames, the detector's first calls
        per_round: List[Dict[str, Any]] = []
        for r in range(rounds):
            phases: Dict[str, Dict[str, float]] = {}
            for watched in ((False, True) if r % 2 == 0 else (True, False)):
                if watched:
                    viewer.start()
                    time.sleep(0.5)  # the stream is up
                cpu0, f0, t0 = _cpu_s(proc.pid), _frames_total(host, port), time.monotonic()
                frames0 = viewer.frames
                time.sleep(window_s)
                cpu1, f1, t1 = _cpu_s(proc.pid), _frames_total(host, port), time.monotonic()
                received = viewer.frames - frames0
                if watched:
                    viewer.stop()
                if proc.poll() is not None:
                    raise SystemExit("bench_dashboard: the video ended during the measurement; use fewer rounds "
                                     "or a shorter --window-s")
                phases["viewer" if watched else "none"] = {
                    "cpu_percent": 100.0 * (cpu1 - cpu0) / (t1 - t0), "pipeline_fps": (f1 - f0) / (t1 - t0),
                    "viewer_fps": received / (t1 - t0) if watched else 0.0}
            per_round.append({"added_cpu_percent": phases["viewer"]["cpu_percent"] - phases["none"]["cpu_percent"],
                              **{f"{k}_{name}": v for name, p in phases.items() for k, v in p.items()}})
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    added = [r["added_cpu_percent"] for r in per_round]
    med = statistics.median
    return {"rounds": rounds, "window_s": window_s, "per_round": per_round,
            "added_cpu_percent_of_one_core_median": med(added), "added_cpu_percent_p90": percentile(added, 90),
            "cpu_percent_no_viewer_median": med(r["cpu_percent_none"] for r in per_round),
            "cpu_percent_one_viewer_median": med(r["cpu_percent_viewer"] for r in per_round),
            "viewer_fps_median": med(r["viewer_fps_viewer"] for r in per_round),
            # The viewer gets at most the frames the pipeline delivers; scaled to exactly 5 fps:
            "added_cpu_percent_scaled_to_5fps": med(added) * 5.0 / max(med(r["viewer_fps_viewer"] for r in per_round),
                                                                       1e-9),
            "pipeline_fps_no_viewer_median": med(r["pipeline_fps_none"] for r in per_round),
            "pipeline_fps_one_viewer_median": med(r["pipeline_fps_viewer"] for r in per_round),
            "target_added_cpu_percent": 5.0}


def measure_in_process(rounds: int, block: int = 40) -> Dict[str, Any]:
    import numpy as np

    from edge_runtime.assets import ensure
    from edge_runtime.dashboard.live import LiveView
    from edge_runtime.dashboard.snapshots import Snapshots
    from edge_runtime.runtime.pipeline import FrameResult, FrameTimings
    from edge_runtime.vision.counting import LineCounter
    from edge_runtime.vision.detections import Detections
    from edge_runtime.vision.sources import open_source

    frames = []
    with open_source(str(ensure("vtest-video"))) as source:
        for frame in source:
            frames.append(frame)
            if len(frames) == block:
                break
    boxes = Detections(np.array([[100, 100, 150, 250], [300, 150, 340, 280], [500, 120, 560, 300]], np.float32),
                       np.array([0.9, 0.8, 0.7], np.float32), np.zeros(3, np.int32), np.array([1, 2, 3]))
    pipe = type("P", (), {"lines": [LineCounter("walkway", (400, 400), (400, 150))], "zones": []})()
    results = [FrameResult(f, boxes, [], True, FrameTimings()) for f in frames]
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-snaps-"))
    live = LiveView({0: "person"}, fps=1000.0, width=640, quality=70)  # fps: keep every frame of the block
    snaps = Snapshots(tmp, max_bytes=10**7)

    def idle_block() -> float:
        t0 = time.perf_counter()
        for r in results:
            live.write(r, pipe)
            snaps.write(r, pipe)
        return (time.perf_counter() - t0) / len(results)

    def watched_block() -> float:
        live.add_viewer()
        try:
            t0 = time.perf_counter()
            for r in results:
                live._next_grab = 0.0
                live.write(r, pipe)
                live.jpeg()
            return (time.perf_counter() - t0) / len(results)
        finally:
            live.remove_viewer()

    idle_block(), watched_block()  # warm-up
    idle, watched = [], []
    for i in range(rounds):
        for fn in ((idle_block, watched_block) if i % 2 == 0 else (watched_block, idle_block)):
            (idle if fn is idle_block else watched).append(fn())
    snaps.close()
    encode_ms = statistics.median(watched) * 1e3
    return {"rounds": rounds, "frames_per_block": block, "frame_size": list(frames[0].image.shape[1::-1]),
            "no_viewer_us_per_frame_median": statistics.median(idle) * 1e6,
            "no_viewer_us_per_frame_p90": percentile(idle, 90) * 1e6,
            "viewer_ms_per_frame_median": encode_ms, "viewer_ms_per_frame_p90": percentile(watched, 90) * 1e3,
            "viewer_5fps_percent_of_one_core": encode_ms * 5 / 10.0,
            "frames_encoded": live.frames_encoded}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--window-s", type=float, default=6.0)
    args = parser.parse_args(argv)
    if args.rounds < 5:
        raise SystemExit("bench_dashboard: at least 5 interleaved rounds")
    load0 = os.getloadavg()
    in_process = measure_in_process(max(args.rounds, 7))
    job = measure_job(args.rounds, args.window_s)
    result = {"question": "CPU the dashboard adds to the job: one live viewer at 5 fps, and nobody watching",
              "job": job, "in_process": in_process, "loadavg_before": list(load0),
              "loadavg_after": list(os.getloadavg())}
    path = write_result("dashboard", result)
    print(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
