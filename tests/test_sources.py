"""Video sources on real transports: the pedestrian video, image folders, MJPEG over HTTP from a local
server that is killed and restarted mid-stream, a stalled stream, and a named pipe whose reads hang.

The HTTP server is the standard library's, on 127.0.0.1 and an ephemeral port; OpenCV's FFmpeg backend
reads its multipart/x-mixed-replace MJPEG the way it reads an IP camera's.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import List, Optional

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_runtime.assets import ensure
from edge_runtime.errors import BackendUnavailableError, InputError, SourceError
from edge_runtime.vision.sources import (Frame, ImageFolderSource, ReconnectPolicy, VideoFileSource,
                                         open_source, redact)

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless has no wheel for this platform (armv7)")

VTEST_FRAMES, VTEST_FPS = 795, 10.0
FAST = ReconnectPolicy(initial_delay_s=0.05, max_delay_s=0.3, jitter=0.2)


@pytest.fixture(scope="module")
def vtest() -> Path:
    return ensure("vtest-video")


@pytest.fixture(scope="module")
def vtest_frames(vtest: Path) -> List[np.ndarray]:
    """The first 40 frames, decoded independently of the code under test."""
    cap = cv2.VideoCapture(str(vtest))
    frames = []
    while len(frames) < 40:
        ok, image = cap.read()
        assert ok
        frames.append(image)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def jpegs(vtest_frames: List[np.ndarray]) -> List[bytes]:
    small = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in vtest_frames[:25]]
    return [cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes() for f in small]


def io_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("edge-source")]


def wait_until(cond, timeout_s: float, step_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step_s)
    return cond()


def read_n(src, n: int, timeout_s: float = 10.0) -> List[Frame]:
    out: List[Frame] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        f = src.read(timeout_s=0.5)
        if f is not None:
            out.append(f)
    assert len(out) == n, f"got {len(out)} of {n} frames in {timeout_s} s; stats {src.stats}"
    return out


# -- an MJPEG camera that can be killed, stalled and brought back --------------------------------------
class MjpegServer:
    """multipart/x-mixed-replace JPEG stream at ``fps`` on 127.0.0.1 (what cheap IP cameras serve)."""

    def __init__(self, jpegs: List[bytes], fps: float = 25.0) -> None:
        self.jpegs, self.period_s = jpegs, 1.0 / fps
        self.port = 0
        self.stalled = threading.Event()
        self.sent = 0
        self._conns: List[socket.socket] = []
        self._srv: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> "MjpegServer":
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/stream.mjpg":
                    self.send_error(404)
                    return
                outer._conns.append(self.connection)
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while True:
                        if outer.stalled.is_set():
                            time.sleep(0.02)
                            continue
                        jpg = outer.jpegs[i % len(outer.jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        i += 1
                        outer.sent += 1
                        time.sleep(outer.period_s)
                except OSError:
                    pass  # the client went away or kill() cut the socket

            def log_message(self, *args: object) -> None:
                pass

        self._srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # SO_REUSEADDR: same port again
        self._srv.daemon_threads = True
        self.port = self._srv.server_address[1]
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def kill(self) -> None:
        """Stop listening and cut every open connection, as a camera losing power would."""
        assert self._srv is not None
        self._srv.shutdown()
        self._srv.server_close()
        for s in self._conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conns.clear()
        self._srv = None


@pytest.fixture
def mjpeg(jpegs: List[bytes]):
    server = MjpegServer(jpegs).start()
    yield server
    if server._srv is not None:
        server.kill()


# -- files -----------------------------------------------------------------------------------------------
def test_file_every_mode_delivers_all_795_frames_in_order(vtest: Path, vtest_frames: List[np.ndarray]) -> None:
    with open_source(vtest) as src:
        assert isinstance(src, VideoFileSource) and src.mode == "every"
        assert src.fps == pytest.approx(VTEST_FPS) and src.frame_count == VTEST_FRAMES
        indices, times = [], []
        for f in src:
            if f.index < len(vtest_frames):
                assert np.array_equal(f.image, vtest_frames[f.index])
            assert f.image.shape == (576, 768, 3) and f.image.dtype == np.uint8 and f.image.flags.c_contiguous
            assert f.skipped == 0 and f.gap is None
            indices.append(f.index)
            times.append(f.timestamp_s)
    assert indices == list(range(VTEST_FRAMES))
    assert times == pytest.approx([i / VTEST_FPS for i in range(VTEST_FRAMES)])
    assert src.ended
    assert (src.stats.grabbed, src.stats.delivered, src.stats.dropped) == (VTEST_FRAMES, VTEST_FRAMES, 0)


def test_file_resumes_at_start_index_exactly(vtest: Path, vtest_frames: List[np.ndarray]) -> None:
    with open_source(vtest, start_index=30) as src:
        first = src.read()
        assert first is not None and first.index == 30 and first.timestamp_s == pytest.approx(3.0)
        assert np.array_equal(first.image, vtest_frames[30])
    with open_source(vtest, start_index=780) as src:
        assert [f.index for f in src] == list(range(780, VTEST_FRAMES))
    with open_source(vtest, start_index=10_000) as src:  # a file already done: nothing, no error
        assert src.read() is None and src.ended


def test_latest_mode_drops_frames_for_a_slow_consumer(vtest: Path) -> None:
    src = open_source(vtest, mode="latest")
    frames = []
    with src:
        for f in src:
            frames.append(f)
            time.sleep(0.25)  # 4 fps consumer of a 10 fps "camera"
            if len(frames) == 8:
                break
    idx = [f.index for f in frames]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    # Replayed at 10 fps, 0.25 s per frame: about 2.5 source frames per delivery.
    assert idx[-1] >= 14, idx
    assert src.stats.dropped >= 6
    assert sum(f.skipped for f in frames) == idx[-1] - idx[0] - (len(idx) - 1)
    assert all(f.timestamp_s == pytest.approx(f.index / VTEST_FPS) for f in frames)
    # Every grabbed frame is delivered, dropped or (at most one) still waiting when we stopped.
    assert src.stats.grabbed - src.stats.delivered - src.stats.dropped in (0, 1)
    assert not io_threads() or wait_until(lambda: not io_threads(), 3.0)


def test_latest_mode_with_a_fast_consumer_drops_nothing_and_ends(vtest: Path) -> None:
    with open_source(vtest, mode="latest", start_index=770) as src:
        frames = list(src)
    assert [f.index for f in frames] == list(range(770, VTEST_FRAMES))
    assert [f.skipped for f in frames] == [0] * len(frames)
    assert src.stats.dropped == 0 and src.ended
    with open_source(vtest, mode="latest", start_index=10_000) as src:  # past the end: ends, no error
        assert list(src) == [] and src.ended


def test_fps_cap_is_respected_on_a_file(vtest: Path) -> None:
    cap_fps, n = 20.0, 21
    with open_source(vtest, fps_cap=cap_fps) as src:
        t0 = time.monotonic()
        frames = read_n(src, n)
        elapsed = time.monotonic() - t0
    assert [f.index for f in frames] == list(range(n))  # "every" still delivers every frame, paced
    rate = (n - 1) / elapsed
    assert rate <= cap_fps * 1.05, f"{rate:.1f} fps with a {cap_fps} fps cap"
    assert rate >= cap_fps * 0.5, f"{rate:.1f} fps: the cap slowed delivery far below {cap_fps} fps"


def test_looped_file_starts_over_with_counting_indices_and_a_cut(vtest: Path,
                                                                  vtest_frames: List[np.ndarray]) -> None:
    with open_source(vtest, start_index=780, loop=True) as src:
        frames = read_n(src, 40)
    assert [f.index for f in frames] == list(range(780, 820))  # indices count on across the loop
    assert [f.timestamp_s for f in frames] == pytest.approx([i / VTEST_FPS for i in range(780, 820)])
    assert [f.index for f in frames if f.cut] == [VTEST_FRAMES]  # only the first frame of the new pass
    for f in frames[15:]:  # the second pass is the file again, from its first frame
        assert np.array_equal(f.image, vtest_frames[f.index - VTEST_FRAMES])
    # A resumed looped file takes start_index modulo its length: index 800 is frame 5 of pass 2.
    with open_source(vtest, start_index=VTEST_FRAMES + 5, loop=True) as src:
        first = src.read()
    assert first is not None and first.index == VTEST_FRAMES + 5 and not first.cut
    assert np.array_equal(first.image, vtest_frames[5])


def test_looped_file_in_latest_mode_marks_the_cut_even_when_its_frame_is_dropped(vtest: Path) -> None:
    # Replayed at 200 fps to a consumer taking about 40 per second: the loop's first frame is usually dropped.
    with open_source(vtest, mode="latest", start_index=770, replay_fps=200.0, loop=True) as src:
        frames = []
        for f in src:
            frames.append(f)
            time.sleep(0.025)
            if f.index > VTEST_FRAMES + 60:
                break
    cuts = [f.index for f in frames if f.cut]
    assert len(cuts) == 1 and cuts[0] >= VTEST_FRAMES, cuts
    before = [f.index for f in frames if f.index < VTEST_FRAMES]
    assert before and all(f.index < cuts[0] for f in frames if f.index < VTEST_FRAMES)
    assert src.stats.dropped > 0


def test_looped_image_folder(tmp_path: Path, vtest_frames: List[np.ndarray]) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), vtest_frames[i])
    with open_source(tmp_path, loop=True) as src:
        frames = read_n(src, 7)
    assert [f.index for f in frames] == list(range(7))
    assert [f.index for f in frames if f.cut] == [3, 6]
    assert np.array_equal(frames[4].image, vtest_frames[1])


def test_replay_fps_paces_every_mode_on_the_replay_clock(vtest: Path) -> None:
    replay_fps, n = 25.0, 26
    with open_source(vtest, replay_fps=replay_fps) as src:
        assert src.clock_scale == pytest.approx(VTEST_FPS / replay_fps)
        t0 = time.monotonic()
        frames = read_n(src, n)
        on_time = time.monotonic() - t0
        time.sleep(0.4)  # a consumer 0.4 s late gets the frames that came due meanwhile at once: nothing dropped
        t1 = time.monotonic()
        late = read_n(src, 10)
        catch_up = time.monotonic() - t1
    assert [f.index for f in frames + late] == list(range(n + 10))
    assert frames[-1].timestamp_s == pytest.approx((n - 1) / VTEST_FPS)  # timestamps stay the file's clock
    assert (n - 1) / replay_fps * 0.95 <= on_time <= (n - 1) / replay_fps * 1.5, on_time
    assert catch_up < 10 / replay_fps, catch_up  # frames 26..35 were due by 1.44 s: no waiting for them
    with open_source(vtest) as src:  # not replayed: timestamps are wall seconds
        assert src.clock_scale == 1.0


def test_replay_options_are_refused_for_live_sources() -> None:
    for kw in ({"loop": True}, {"replay_fps": 5.0}):
        with pytest.raises(InputError, match="files and folders only"):
            open_source("rtsp://127.0.0.1:1/cam", **kw)
    with pytest.raises(InputError, match="replay_fps"):
        VideoFileSource("x.avi", replay_fps=0.0)


def test_missing_file_bad_file_and_bad_spec_raise(tmp_path: Path) -> None:
    missing = tmp_path / "nope.avi"
    with pytest.raises(SourceError, match="nope.avi"):
        open_source(missing)
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n" * 100)
    src = open_source(text)  # exists: nothing is read until open()
    with pytest.raises(SourceError, match="notes.avi"):
        src.open()
    with pytest.raises(InputError, match="scheme"):
        open_source("gopher://camera/1")
    with pytest.raises(InputError):
        open_source(-1)
    with pytest.raises(InputError, match="mode"):
        open_source(str(text), mode="fastest")


# -- image folders ---------------------------------------------------------------------------------------
def test_image_folder_natural_order_and_colour(tmp_path: Path, vtest_frames: List[np.ndarray]) -> None:
    for i in range(12):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), vtest_frames[i])
    grey = cv2.cvtColor(vtest_frames[12], cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(tmp_path / "img12.png"), grey)
    (tmp_path / "readme.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "img99.png"), vtest_frames[0])
    with open_source(tmp_path) as src:
        assert isinstance(src, ImageFolderSource)
        frames = list(src)
    assert [f.index for f in frames] == list(range(13))  # img2 before img10
    for i in range(12):
        assert np.array_equal(frames[i].image, vtest_frames[i])  # PNG is lossless
    assert frames[12].image.shape == (576, 768, 3)
    assert np.array_equal(frames[12].image[..., 0], grey) and np.array_equal(frames[12].image[..., 2], grey)
    assert [f.timestamp_s for f in frames] == pytest.approx(list(range(13)))  # nominal 1 fps


def test_image_folder_errors_name_the_file(tmp_path: Path, vtest_frames: List[np.ndarray]) -> None:
    with pytest.raises(SourceError, match="no image files"):
        open_source(tmp_path).open()
    cv2.imwrite(str(tmp_path / "a1.png"), vtest_frames[0])
    (tmp_path / "a2.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)  # a truncated PNG
    with open_source(tmp_path) as src:
        assert src.read() is not None
        with pytest.raises(SourceError, match="a2.png"):
            src.read()
    with open_source(tmp_path, mode="latest") as src:  # the same through the replaying grabber thread
        assert src.read(timeout_s=5.0) is not None
        with pytest.raises(SourceError, match="a2.png"):
            src.read(timeout_s=5.0)


# -- live: MJPEG over HTTP ----------------------------------------------------------------------------
def test_http_stream_lost_and_back_reports_the_gap_and_reconnects(mjpeg: MjpegServer) -> None:
    src = open_source(mjpeg.url, reconnect=FAST, read_timeout_s=1.0)
    assert src.mode == "latest"
    with src:
        before = read_n(src, 10)
        assert src.connected and src.stats.gap_count == 0
        t_kill = time.time()
        mjpeg.kill()
        # The consumer keeps asking; reads come back empty within their timeout while the camera is down.
        t0 = time.monotonic()
        while src.stats.in_gap_since is None and time.monotonic() - t0 < 5.0:
            f = src.read(timeout_s=0.2)
            assert f is None or f.timestamp_s <= t_kill + 0.5
        assert src.stats.in_gap_since is not None, "the loss was not noticed"
        assert src.stats.in_gap_since <= t_kill + 0.2  # the gap starts at the last frame before it
        for _ in range(5):
            t_read = time.monotonic()
            assert src.read(timeout_s=0.2) is None
            assert time.monotonic() - t_read < 0.5
        assert not src.connected
        assert wait_until(lambda: src.stats.reconnect_attempts >= 2, 5.0)  # refused, retried with backoff
        t_back = time.time()
        mjpeg.start()  # same port
        after = read_n(src, 10)
    gap = after[0].gap
    assert gap is not None, "the first frame after the outage must carry the gap"
    assert all(f.gap is None for f in after[1:])
    assert gap.start_s <= t_kill + 0.2 and gap.end_s >= t_back
    assert gap.duration_s >= t_back - t_kill - 0.2
    assert gap.attempts >= 2
    assert src.stats.reconnects == 1 and src.stats.gap_count == 1 and list(src.stats.gaps) == [gap]
    assert src.stats.in_gap_since is None
    idx = [f.index for f in before + after]
    assert idx == sorted(idx) and len(set(idx)) == len(idx)
    ts = [f.timestamp_s for f in before + after]
    assert ts == sorted(ts)
    assert wait_until(lambda: not io_threads(), 3.0), io_threads()


def test_http_stream_that_stalls_times_out_and_recovers(mjpeg: MjpegServer) -> None:
    src = open_source(mjpeg.url, reconnect=FAST, read_timeout_s=0.6)
    with src:
        read_n(src, 5)
        mjpeg.stalled.set()  # connection open, no bytes: only a timeout can notice
        assert wait_until(lambda: src.stats.in_gap_since is not None, 4.0)
        mjpeg.stalled.clear()
        after = read_n(src, 3)
    gap = after[0].gap
    assert gap is not None and "timeout" in gap.reason, gap
    assert src.stats.reconnects == 1 and src.stats.stuck_reads == 0  # FFmpeg's own timeout fired


def test_http_latest_frame_wins_and_fps_cap(mjpeg: MjpegServer) -> None:
    with open_source(mjpeg.url, fps_cap=5.0, read_timeout_s=2.0) as src:
        read_n(src, 1)
        t0 = time.monotonic()
        frames = read_n(src, 10)
        elapsed = time.monotonic() - t0
        stats = src.stats
        assert 10 / elapsed <= 5.0 * 1.1, f"{10 / elapsed:.1f} fps with a 5 fps cap"
    # The server sends ~25 fps; delivering 5 means the rest were dropped, not queued.
    assert stats.dropped >= 20 and sum(f.skipped for f in frames) >= 20
    assert all(f.index > g.index for f, g in zip(frames[1:], frames))


def test_unreachable_url_and_404_raise_with_the_spec(mjpeg: MjpegServer) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cam"
    src = open_source(url, read_timeout_s=1.0)
    with pytest.raises(SourceError, match=f"127.0.0.1:{port}/cam"):
        src.open()
    with pytest.raises(SourceError, match="nothing.mjpg"):
        open_source(f"http://127.0.0.1:{mjpeg.port}/nothing.mjpg", read_timeout_s=1.0).open()
    secret = open_source(f"http://admin:hunter2@127.0.0.1:{port}/cam", read_timeout_s=1.0)
    with pytest.raises(SourceError) as info:
        secret.open()
    assert "hunter2" not in str(info.value) and "admin:***@" in str(info.value)
    assert redact("rtsp://u:p@cam:554/x") == "rtsp://u:***@cam:554/x" and redact("rtsp://cam/x") == "rtsp://cam/x"
    assert wait_until(lambda: not io_threads(), 3.0)


def test_reconnect_disabled_makes_a_loss_fatal(mjpeg: MjpegServer) -> None:
    with open_source(mjpeg.url, reconnect=False, read_timeout_s=1.0) as src:
        read_n(src, 3)
        mjpeg.kill()
        with pytest.raises(SourceError, match="reconnect is disabled"):
            for _ in range(200):
                src.read(timeout_s=0.1)


def test_max_attempts_gives_up(mjpeg: MjpegServer) -> None:
    policy = ReconnectPolicy(initial_delay_s=0.02, max_delay_s=0.05, max_attempts=3)
    with open_source(mjpeg.url, reconnect=policy, read_timeout_s=1.0) as src:
        read_n(src, 2)
        mjpeg.kill()
        with pytest.raises(SourceError, match="gave up after 3"):
            for _ in range(100):
                src.read(timeout_s=0.1)
        assert src.stats.reconnect_attempts == 3


# -- live: a named pipe whose reads never return ------------------------------------------------------
def test_hung_read_is_abandoned_and_close_returns(tmp_path: Path, jpegs: List[bytes]) -> None:
    """FFmpeg's timeout does not reach a read(2) blocked on a pipe: the watchdog must."""
    fifo = tmp_path / "cam.mjpg"
    os.mkfifo(fifo)
    hold = threading.Event()

    def camera() -> None:  # writes enough for FFmpeg to probe the format (5 MB), then stalls, pipe open
        fd = os.open(fifo, os.O_WRONLY)
        try:
            for i in range(6_000_000 // len(jpegs[0]) + 50):
                os.write(fd, jpegs[i % len(jpegs)])
            hold.wait(30)
        finally:
            os.close(fd)

    writer = threading.Thread(target=camera, daemon=True)
    writer.start()
    src = open_source(str(fifo), reconnect=FAST, read_timeout_s=0.4, open_timeout_s=2.0)
    try:
        src.open()
        assert src.read(timeout_s=5.0) is not None
        t0 = time.monotonic()
        while src.stats.stuck_reads == 0 and time.monotonic() - t0 < 6.0:
            t_read = time.monotonic()
            src.read(timeout_s=0.2)
            assert time.monotonic() - t_read < 0.6, "read() must not block past its timeout"
        assert src.stats.stuck_reads >= 1 and src.stats.in_gap_since is not None
        t_close = time.monotonic()
        src.close()
        assert time.monotonic() - t_close < 3.5, "close() must return while a backend read is stuck"
    finally:
        hold.set()
        writer.join(5)
        # Threads still blocked in open(2) on the pipe wake when a writer appears; give them one.
        deadline = time.monotonic() + 10
        while io_threads() and time.monotonic() < deadline:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            time.sleep(0.05)
    assert not io_threads(), "abandoned workers must finish (and release) once the backend returns"


# -- other backends ----------------------------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("picamera2") is not None,
                    reason="picamera2 is installed here; this checks the message when it is not")
def test_picamera2_is_touched_only_on_open() -> None:
    src = open_source("picamera2:1")  # constructing imports nothing and touches no hardware
    assert src.spec == "picamera2:1"
    with pytest.raises(BackendUnavailableError, match="picamera2"):
        src.open()


def test_gstreamer_pipeline() -> None:
    spec = "videotestsrc num-buffers=20 ! video/x-raw,width=160,height=120 ! videoconvert ! appsink"
    src = open_source(spec, reconnect=False, read_timeout_s=2.0)
    if not cv2.videoio_registry.hasBackend(cv2.CAP_GSTREAMER):
        with pytest.raises(BackendUnavailableError, match="GStreamer"):
            src.open()
        return
    with src:
        frames = read_n(src, 5)
    assert frames[0].image.shape == (120, 160, 3)


def test_absent_v4l2_device_raises_on_open() -> None:
    n = next(i for i in range(90, 200) if not os.path.exists(f"/dev/video{i}"))
    src = open_source(f"/dev/video{n}", read_timeout_s=1.0)
    with pytest.raises(SourceError, match=f"/dev/video{n}"):
        src.open()
    with pytest.raises(InputError, match="every"):
        open_source(f"/dev/video{n}", mode="every")


# -- backoff ---------------------------------------------------------------------------------------------

@given(attempt=st.integers(0, 10_000), u=st.floats(0.0, 1.0, exclude_max=True),
       initial=st.floats(0.0, 10.0), extra=st.floats(0.0, 100.0), factor=st.floats(1.0, 10.0),
       jitter=st.floats(0.0, 0.99))
def test_backoff_is_bounded_and_grows(attempt: int, u: float, initial: float, extra: float, factor: float,
                                      jitter: float) -> None:
    p = ReconnectPolicy(initial_delay_s=initial, max_delay_s=initial + extra, factor=factor, jitter=jitter)
    d = p.delay_s(attempt, u)
    assert initial * (1 - jitter) - 1e-9 <= d <= p.max_delay_s * (1 + jitter) + 1e-9
    assert p.delay_s(attempt + 1, 0.5) >= p.delay_s(attempt, 0.5) - 1e-9  # without jitter: non-decreasing


@pytest.mark.parametrize("kw", [{"initial_delay_s": -1.0}, {"initial_delay_s": 5.0, "max_delay_s": 1.0},
                                {"factor": 0.5}, {"jitter": 1.0}, {"max_attempts": 0}])
def test_bad_policy_raises(kw) -> None:
    with pytest.raises(InputError, match="ReconnectPolicy"):
        ReconnectPolicy(**kw)
