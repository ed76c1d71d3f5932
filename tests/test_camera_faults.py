"""Real cameras failing: an RTSP camera (Debian's gst-rtsp-server) that is killed and restarted mid-stream
and one that stalls with its sockets open, read through the whole runtime; and a V4L2 device through
v4l2loopback where the kernel can load it.

The camera is ``tests/rtsp_camera.py`` run by the system Python (PyGObject + GStreamer typelibs; ``make
system-deps`` installs them). It serves clips of vtest.avi re-encoded live as H.264, as an IP camera
does. A restarted camera continues where the scene is by then (the clip it serves starts that many
frames later), so the counts after an outage come from people who really crossed after it.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from edge_runtime.assets import ensure
from edge_runtime.runtime.config import config_from_dict
from edge_runtime.runtime.store import Store
from edge_runtime.vision.sources import ReconnectPolicy, open_source

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless has no wheel for this platform (armv7)")

HERE = Path(__file__).resolve().parent
CAMERA = HERE / "rtsp_camera.py"
SYSTEM_PYTHON = "/usr/bin/python3"
GST_PACKAGES = "python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
FPS = 10.0  # vtest.avi's rate; the camera serves it in real time
FAST = ReconnectPolicy(initial_delay_s=0.2, max_delay_s=1.0, jitter=0.2)


def _gst_problem() -> Optional[str]:
    """None when the system Python can run the RTSP camera, else what is missing."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"no {SYSTEM_PYTHON}"
    probe = ("import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
             "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
             f"import sys; sys.path.insert(0, {str(HERE)!r}); from rtsp_camera import ELEMENTS;"
             "print(' '.join(e for e in ELEMENTS if Gst.ElementFactory.find(e) is None))")
    try:
        res = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{SYSTEM_PYTHON} failed: {exc}"
    if res.returncode != 0:
        return res.stderr.strip().splitlines()[-1] if res.stderr.strip() else f"exit status {res.returncode}"
    return f"GStreamer elements missing: {res.stdout.strip()}" if res.stdout.strip() else None


_GST_PROBLEM = _gst_problem()
if os.environ.get("CI") and _GST_PROBLEM is not None:
    pytest.fail(f"the RTSP camera tests need gst-rtsp-server in CI ({_GST_PROBLEM}); make system-deps installs "
                f"{GST_PACKAGES}", pytrace=False)
needs_gst = pytest.mark.skipif(_GST_PROBLEM is not None,
                               reason=f"no RTSP server here ({_GST_PROBLEM}); make system-deps installs {GST_PACKAGES}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_clip(path: Path, first_frame: int, n_frames: int) -> Path:
    """Frames ``first_frame ..`` of vtest.avi as an MJPEG AVI (what the camera re-encodes and serves)."""
    cap = cv2.VideoCapture(str(ensure("vtest-video")))
    for _ in range(first_frame):
        assert cap.grab()
    writer = None
    for _ in range(n_frames):
        ok, image = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS,
                                     (image.shape[1], image.shape[0]))
        writer.write(image)
    cap.release()
    assert writer is not None
    writer.release()
    return path


class RtspCamera:
    """One camera address; the server process behind it can be started, killed, stopped and continued."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/cam"
        self.tmp = tmp
        self.proc: Optional[subprocess.Popen] = None

    def start(self, clip: Path, timeout_s: float = 20.0) -> None:
        log = open(self.tmp / f"camera-{time.monotonic_ns()}.log", "w")
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(CAMERA), "--port", str(self.port), "--video", str(clip)],
                                     stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        line = self.proc.stdout.readline() if ready else ""
        assert line.startswith("READY"), f"the RTSP camera did not start: {line!r} (exit {self.proc.poll()})"

    def kill(self) -> None:
        """SIGKILL: the sockets close at once, as when a camera loses power or its server crashes."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stall(self) -> None:
        """SIGSTOP: the connections stay open and nothing more arrives (a hung camera firmware)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def camera(tmp_path: Path):
    cam = RtspCamera(tmp_path)
    yield cam
    cam.close()


def wait_until(cond, timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step_s)
    return cond()


# -- the whole runtime on an RTSP camera that is killed and comes back ------------------------------------
@needs_gst
def test_rtsp_camera_killed_and_restarted_mid_stream(camera: RtspCamera, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The job (detector, tracker, walkway line, SQLite) on an RTSP camera whose server is SIGKILLed after
    its first crossings and started again 3 s later. The outage shows in /metrics and the log, the source
    reconnects with backoff, counting goes on after it, every count and the outage itself reach the
    database, nothing crashes."""
    from edge_runtime.runtime.supervisor import Supervisor

    first = 130  # vtest frame the camera starts at: walkway crossings at about 136, 181, 208, 248, 281, 306, 315
    camera.start(write_clip(tmp_path / "a.avi", first, 300))
    db = tmp_path / "counts.db"
    config = config_from_dict({
        "source": {"uri": camera.url, "read_timeout_s": 2.0},
        "model": {"path": "builtin:yolov8s-person", "classes": [0], "labels": ["person", "fallen person"]},
        "lines": [{"name": "walkway", "start": [400, 400], "end": [400, 150]}],
        "output": {"db": str(db), "print_every_s": 0.0},
        "budget": {"cores": 2},
    })
    sup = Supervisor(config, quiet=True)
    sup.pipeline.source._source.policy = FAST  # the default backoff, compressed to test time
    line = sup.pipeline.lines[0]

    def total() -> int:
        return sum(line.in_counts.values()) + sum(line.out_counts.values())

    snaps: Dict[str, Dict[str, float]] = {}
    with caplog.at_level(logging.WARNING, logger="edge_runtime.sources"):
        sup.start()
        try:
            assert wait_until(lambda: sup.metrics.frames_total >= 3, 30.0), "no frames from the RTSP camera"
            assert sup.metrics_snapshot()["source_connected"] == 1.0
            # The camera's frame numbers count from the first frame it sent: the scene is at first + index.
            assert wait_until(lambda: total() >= 1 and sup.pipeline.last_frame.index >= 60, 40.0), \
                "the scene before the outage holds crossings at frames 136 and 181; none were counted"
            before = total()
            scene_at = first + sup.pipeline.last_frame.index
            frames_before = sup.metrics.frames_total
            camera.kill()
            t_kill = time.monotonic()
            assert wait_until(lambda: sup.metrics_snapshot()["source_connected"] == 0.0, 6.0), \
                "the outage did not show in the metrics"
            snaps["down"] = sup.metrics_snapshot()
            assert wait_until(lambda: sup.pipeline.source.stats.reconnect_attempts >= 2, 8.0)
            # Back 3 s after the kill, at the frame the scene has reached by then.
            resume_at = scene_at + round((time.monotonic() - t_kill + 3.0) * FPS)
            clip_b = write_clip(tmp_path / "b.avi", resume_at, 300)
            wait_until(lambda: time.monotonic() - t_kill >= 3.0, 10.0)
            camera.start(clip_b)
            assert wait_until(lambda: sup.metrics.frames_total >= frames_before + 3, 30.0), \
                "no frames after the camera came back"
            assert wait_until(lambda: total() > before, 30.0), "nothing was counted after the outage"
            snaps["up"] = sup.metrics_snapshot()
            assert sup.error is None and sup._thread.is_alive()
        finally:
            summary = sup.shutdown()
    assert snaps["down"]["source_gaps_total"] == 1.0
    assert snaps["up"]["source_connected"] == 1.0 and snaps["up"]["source_reconnects_total"] == 1.0
    assert snaps["up"]["source_reconnect_attempts_total"] >= 2.0
    assert snaps["up"]["store_writable"] == 1.0 and snaps["up"]["store_backlog_frames"] == 0.0
    assert snaps["up"]["memory_budget_bytes"] == sup.memory_budget.total_bytes > 0
    gap = list(sup.pipeline.source.stats.gaps)[0]
    assert gap.duration_s >= 2.5 and gap.attempts >= 2, gap
    messages = [r.getMessage() for r in caplog.records]
    assert any("stream lost" in m and "reconnecting with backoff" in m for m in messages), messages
    assert any("frames again after" in m for m in messages), messages
    # Every count made in memory is in the database, before and after the outage.
    assert summary.gaps == 1
    with Store.open(db, readonly=True) as store:
        stored = {(t.direction): t.count for t in store.totals(name="walkway")}
        outages, runs = store.outages(), store.runs()
    assert stored.get("in", 0) == sum(line.in_counts.values()) and stored.get("out", 0) == sum(line.out_counts.values())
    # ... and the outage, as the source measured it, so answers about that time can say the camera was down.
    assert [(o.start_s, o.end_s, o.reason, o.attempts, o.run_id) for o in outages] == \
        [(gap.start_s, gap.end_s, gap.reason, gap.attempts, runs[0]["id"])]


# -- a camera that stops sending but keeps its sockets open ---------------------------------------------------
@needs_gst
def test_rtsp_camera_that_stalls_times_out_and_reconnects(camera: RtspCamera, tmp_path: Path) -> None:
    """SIGSTOP the server: no RST, no FIN, just silence. The read timeout notices, the source retries (each
    attempt's RTSP handshake hangs too and is timed out), and reconnects once the camera runs again."""
    camera.start(write_clip(tmp_path / "a.avi", 0, 400))
    src = open_source(camera.url, reconnect=FAST, read_timeout_s=1.0, open_timeout_s=2.0)
    with src:
        got = [src.read(timeout_s=10.0) for _ in range(5)]
        assert all(f is not None for f in got)
        camera.stall()
        t_stall = time.monotonic()
        t_noticed = None
        while time.monotonic() - t_stall < 8.0:
            t_read = time.monotonic()
            src.read(timeout_s=0.2)
            assert time.monotonic() - t_read < 0.6, "read() must not block past its timeout during a stall"
            if src.stats.in_gap_since is not None:
                t_noticed = time.monotonic()
                break
        assert t_noticed is not None, "a stalled camera was never noticed"
        assert t_noticed - t_stall < 1.0 + 0.8, f"noticed {t_noticed - t_stall:.2f} s after the stall; read timeout 1 s"
        assert wait_until(lambda: src.stats.reconnect_attempts >= 1, 8.0)
        camera.resume()
        after: List = []
        deadline = time.monotonic() + 20.0
        while len(after) < 5 and time.monotonic() < deadline:
            f = src.read(timeout_s=0.5)
            if f is not None:
                after.append(f)
        assert len(after) == 5, f"no frames after the camera resumed; stats {src.stats}"
    gap = after[0].gap
    assert gap is not None and ("timeout" in gap.reason or "blocked" in gap.reason), gap
    assert src.stats.reconnects == 1 and src.stats.gap_count == 1


# -- V4L2 through v4l2loopback ----------------------------------------------------------------------------------
def _v4l2loopback_problem() -> Optional[str]:
    if not os.path.exists("/proc/modules"):
        return ("this kernel has no loadable-module support (/proc/modules is absent), so the v4l2loopback "
                "module cannot be loaded; no /dev/video device can be made")
    if os.geteuid() != 0:
        return "loading v4l2loopback needs root"
    if shutil.which("modprobe") is None:
        return "no modprobe (kmod) to load v4l2loopback"
    res = subprocess.run(["modprobe", "v4l2loopback", "devices=1", "video_nr=63", "card_label=edge-test",
                          "exclusive_caps=1"], capture_output=True, text=True)
    if res.returncode != 0:
        return f"modprobe v4l2loopback failed: {res.stderr.strip() or res.returncode} (package v4l2loopback-dkms)"
    return None if os.path.exists("/dev/video63") else "v4l2loopback loaded but /dev/video63 did not appear"


@needs_gst
def test_v4l2_loopback_device_unplugged_and_back(tmp_path: Path) -> None:
    """A V4L2 camera: frames written into a v4l2loopback device by GStreamer's v4l2sink, read by the source;
    the writer is killed (the device stops delivering) and started again: the source reconnects."""
    problem = _v4l2loopback_problem()
    if problem is not None:
        pytest.skip(problem)
    clip = write_clip(tmp_path / "a.avi", 0, 300)
    feed = [SYSTEM_PYTHON, "-c",
            "import gi, sys; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None);"
            f"p = Gst.parse_launch('filesrc location={clip} ! decodebin ! videoconvert ! video/x-raw,format=YUY2 "
            "! v4l2sink device=/dev/video63'); p.set_state(Gst.State.PLAYING);"
            "p.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)"]
    writer = subprocess.Popen(feed)
    try:
        src = open_source("/dev/video63", reconnect=FAST, read_timeout_s=1.0)
        with src:
            assert all(src.read(timeout_s=10.0) is not None for _ in range(5))
            writer.kill()
            writer.wait(10)
            assert wait_until(lambda: src.stats.in_gap_since is not None, 6.0)
            writer = subprocess.Popen(feed)
            assert wait_until(lambda: src.read(timeout_s=0.5) is not None, 20.0)
        assert src.stats.reconnects >= 1 or src.stats.gap_count >= 1
    finally:
        writer.kill()
        subprocess.run(["modprobe", "-r", "v4l2loopback"], check=False)
