"""Video sources: files, image folders, V4L2 cameras, network streams, GStreamer pipelines, Pi cameras.

Shape legend: every source yields :class:`Frame` records whose image is (H, W, 3) uint8 BGR.

``open_source(spec)`` picks the source from the spec and opens nothing; ``with`` (or ``open()``) does::

    from edge_runtime.vision.sources import open_source
    with open_source("walkway.avi") as frames:            # every frame, in order; t = index / fps
        for frame in frames:
            print(frame.index, frame.timestamp_s, frame.image.shape)

    with open_source("rtsp://cam.local/stream", fps_cap=5) as frames:   # live: newest frame wins,
        for frame in frames:                                            # reconnects on its own
            if frame.gap:
                print(f"no video for {frame.gap.duration_s:.1f} s ({frame.gap.reason})")

Live sources (cameras, streams) run a grabber thread that keeps only the newest frame: a slow consumer
gets the freshest picture, never a growing backlog, and ``stats.dropped`` counts what it missed. A
file can replay the same way (``mode="latest"``: paced at its own fps, as a camera would deliver it)
or deliver every frame (``mode="every"``, the default for files: reproducible tests and benchmarks).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import re
import stat
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..errors import BackendUnavailableError, InputError, SourceError
from .sources_base import MODES, Frame, FrameSource, Gap, ReconnectPolicy, SourceStats, as_bgr
from .sources_live import CaptureReader, LiveSource, Reader

__all__ = [
    "open_source", "Frame", "Gap", "SourceStats", "ReconnectPolicy", "FrameSource", "LiveSource",
    "VideoFileSource", "ImageFolderSource", "IMAGE_EXTENSIONS", "redact",
]

log = logging.getLogger("edge_runtime.sources")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm")
_STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp")
_FALLBACK_FPS = 30.0
_API_NAMES = {"ffmpeg": "FFmpeg", "gstreamer": "GStreamer", "v4l2": "V4L2"}

SpecLike = Union[str, int, "os.PathLike[str]"]


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs and error messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


# -- finite sources: files and folders -------------------------------------------------------------
_MAX_PASSES_KEPT = 8  # loop starts remembered for marking cuts; a consumer is never this many passes behind


@dataclass(frozen=True)
class _Replay:
    """How a file or folder is read: paced (at ``fps``, None = its own rate) or not, once or looped."""

    pace: bool = False
    fps: Optional[float] = None
    loop: bool = False


def _open_capture(path: Path) -> "object":
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"{path}: not a video OpenCV can open (OpenCV {cv2.__version__})")
    return cap


class _VideoReader:
    """Frames of a video file, optionally paced (to replay it as a camera would) and looped.

    Indices and timestamps count on across loops: pass ``k`` of an ``n``-frame file delivers indices
    ``k*n .. k*n + n - 1``; ``loop_starts`` holds the first index of the latest passes after the first.
    """

    def __init__(self, path: Path, start_index: int, replay: _Replay, stop: threading.Event) -> None:
        import cv2

        self.eof = False
        self.position: Optional[Tuple[int, float]] = None
        self.loop_starts: "deque[int]" = deque(maxlen=_MAX_PASSES_KEPT)
        self._cap = _open_capture(path)
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        if not (0.0 < fps <= 1000.0):
            log.warning("%s: the file reports %r fps; timestamps assume %g fps", path, fps, _FALLBACK_FPS)
            fps = _FALLBACK_FPS
        self.fps = fps
        self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        self._path, self._replay, self._stop = path, replay, stop
        self._pace_fps = replay.fps or fps
        # A looped file resumes inside its pass: index start_index is frame start_index % n of the file.
        skip = start_index % self.frame_count if replay.loop and self.frame_count else start_index
        self._next = start_index - skip  # global index of the file's frame 0 in the current pass
        self._pass_start = self._next
        # grab() (demux + decode without the copy) is exact where CAP_PROP_POS_FRAMES seeks can land on
        # the nearest key frame; resuming must not skip or repeat frames.
        while self._next < start_index and self._cap.grab():
            self._next += 1
        self._t0: Optional[float] = None

    def read(self) -> Optional[np.ndarray]:
        ok, image = self._cap.read()
        if (not ok or image is None) and self._replay.loop and self._next > self._pass_start:
            # Start over from a fresh capture: exact, where seeking back can land on a key frame.
            self._cap.release()
            self._cap = _open_capture(self._path)
            self._pass_start = self._next
            self.loop_starts.append(self._next)
            ok, image = self._cap.read()
        if not ok or image is None:
            self.eof = True
            if 0 < self._next - self._pass_start < self.frame_count - 1:
                log.warning("%s: ended at frame %d; the header promised %d", self._path,
                            self._next - self._pass_start, self.frame_count)
            return None
        index = self._next
        self._next += 1
        self.position = (index, index / self.fps)
        if self._replay.pace:
            self._t0 = _pace_to(index, self._pace_fps, self._t0, self._stop)
        return image

    def release(self) -> None:
        self._cap.release()


def _pace_to(index: int, fps: float, t0: Optional[float], stop: threading.Event) -> float:
    """Wait until frame ``index`` is due at ``fps`` on a clock started at ``t0`` (None: start it now, as if
    this frame were on time); returns the clock's start. A set ``stop`` cuts the wait short."""
    if t0 is None:
        t0 = time.monotonic() - index / fps
    wait_s = t0 + index / fps - time.monotonic()
    if wait_s > 0:
        stop.wait(wait_s)
    return t0


class _FolderReader:
    """Image files in natural order (img2 before img10), as frames at a nominal fps; looped like a video."""

    def __init__(self, files: List[Path], fps: float, start_index: int, replay: _Replay,
                 stop: threading.Event) -> None:
        self.eof = False
        self.position: Optional[Tuple[int, float]] = None
        self.loop_starts: "deque[int]" = deque(maxlen=_MAX_PASSES_KEPT)
        self.fps, self.frame_count = fps, len(files)
        self._files, self._replay, self._stop = files, replay, stop
        self._pace_fps = replay.fps or fps
        self._next = start_index
        self._t0: Optional[float] = None

    def read(self) -> Optional[np.ndarray]:
        import cv2

        n = len(self._files)
        if self._next >= n and not self._replay.loop:
            self.eof = True
            return None
        index, path = self._next, self._files[self._next % n]
        if index >= n and index % n == 0:
            self.loop_starts.append(index)
        self._next += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey and 16-bit files come back as 8-bit BGR
        if image is None:
            raise SourceError(f"{path}: not an image OpenCV can decode (frame {index % n} of {self.frame_count})")
        self.position = (index, index / self.fps)
        if self._replay.pace:
            self._t0 = _pace_to(index, self._pace_fps, self._t0, self._stop)
        return image

    def release(self) -> None:
        pass


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


class _FiniteSource(FrameSource):
    """A file or folder: "every" reads in the caller's thread; "latest" replays through a grabber."""

    def __init__(self, spec: str, *, mode: str, fps_cap: Optional[float], start_index: int,
                 replay_fps: Optional[float] = None, loop: bool = False) -> None:
        super().__init__(spec, mode=mode, fps_cap=fps_cap)
        if isinstance(start_index, bool) or not isinstance(start_index, int) or start_index < 0:
            raise InputError(f"source {spec!r}: start_index must be an integer >= 0, got {start_index!r}")
        if replay_fps is not None and not (0.0 < replay_fps <= 1000.0):
            raise InputError(f"source {spec!r}: replay_fps must be in (0, 1000] or None, got {replay_fps!r}")
        if not isinstance(loop, bool):
            raise InputError(f"source {spec!r}: loop must be true or false, got {loop!r}")
        self.start_index = start_index
        self.replay_fps = replay_fps
        self.loop = loop
        self._reader: Optional[Reader] = None
        self._live: Optional[LiveSource] = None
        self._last_index = start_index - 1

    def _make_reader(self, replay: _Replay) -> Reader:
        raise NotImplementedError

    @property
    def clock_scale(self) -> float:
        """Wall seconds per second of frame timestamps: ``fps / replay_fps`` when replayed at another
        rate than the file's own (a paced "every" or a "latest" replay), else 1."""
        fps = self.fps
        paced = self.mode == "latest" or self.replay_fps is not None
        return fps / self.replay_fps if paced and fps and self.replay_fps else 1.0

    @property
    def fps(self) -> Optional[float]:
        """Frames per second of the file (the nominal rate of a folder); None before open()."""
        r = self._reader
        return getattr(r, "fps", None)

    @property
    def frame_count(self) -> Optional[int]:
        """Frames the file says it holds (files in a folder); None before open()."""
        r = self._reader
        return getattr(r, "frame_count", None)

    def _open(self) -> None:
        self._last_index = self.start_index - 1
        if self.mode == "every":
            self._reader = self._make_reader(_Replay(self.replay_fps is not None, self.replay_fps, self.loop))
            return
        readers: List[Reader] = []

        def connect() -> Reader:
            if readers:  # a finite source never reconnects; this guards the invariant
                raise SourceError(f"{self.spec}: a file is opened once")
            readers.append(self._make_reader(_Replay(True, self.replay_fps, self.loop)))
            return readers[-1]

        # Local files don't stall the way networks do; skipping to start_index can take a while.
        self._live = LiveSource(self.spec, connect, reconnect=ReconnectPolicy(enabled=False), finite=True,
                                read_timeout_s=60.0, open_timeout_s=3600.0)
        # One set of counters and one close flag for the wrapper and the grabber.
        self._live.stats, self._live._stats_lock, self._live._closed = self.stats, self._stats_lock, self._closed
        self._live.first_index = self.start_index
        self._live._opened = True
        self._live._open()
        self._reader = readers[0] if readers else None

    def _close(self) -> None:
        if self._live is not None:
            self._live._close()
            self._live._opened = False
            self._live = None
        elif self._reader is not None:
            self._reader.release()
        self._reader = None

    def _take(self, timeout_s: Optional[float]) -> Optional[Frame]:
        if self._live is not None:
            frame = self._live._take(timeout_s)
            self._ended = self._live._ended and frame is None
            return self._mark_cut(frame)
        assert self._reader is not None  # set by _open; read() refuses to run before open()
        image = self._reader.read()
        if image is None:
            self._ended = True
            return None
        index, ts = self._reader.position  # type: ignore[misc]
        with self._stats_lock:
            self.stats.grabbed += 1
        return self._mark_cut(Frame(image=as_bgr(image), index=index, timestamp_s=ts))

    def _mark_cut(self, frame: Optional[Frame]) -> Optional[Frame]:
        """Flag the first frame delivered at or after a loop's start (in "latest" mode that frame itself
        may have been dropped)."""
        if frame is None:
            return None
        last, self._last_index = self._last_index, frame.index
        starts = getattr(self._reader, "loop_starts", ())
        if any(last < s <= frame.index for s in list(starts)):
            return dataclasses.replace(frame, cut=True)
        return frame


class VideoFileSource(_FiniteSource):
    """A video file (anything OpenCV's FFmpeg backend decodes). ``timestamp_s = index / fps``.

    Args:
        path: the file.
        mode: "every" (each frame, in order, as fast as the consumer reads) or "latest" (replayed at the
            file's fps by a grabber thread; frames the consumer is too slow for are dropped and counted).
        fps_cap: at most this many deliveries per second.
        start_index: first frame to deliver (resume after a restart); earlier frames are skipped exactly.
        replay_fps: pace the replay at this many frames per second (None: "latest" at the file's fps,
            "every" unpaced). In "every" mode frame ``i`` is delivered no earlier than ``i / replay_fps``
            seconds after the first, like a camera that never drops: a consumer that falls behind gets
            the late frames at once, and its lag shows as frame age. Timestamps stay ``index / fps``.
        loop: start over at the first frame after the last, for ever; indices and timestamps count on
            (pass ``k`` of an ``n``-frame file has indices ``k*n ..``) and the first frame of each new
            pass is delivered with ``cut=True``. A resumed ``start_index`` is taken modulo ``n``.

    Raises:
        SourceError: on open(), if the file is missing or not a video.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, mode: str = "every",
                 fps_cap: Optional[float] = None, start_index: int = 0, replay_fps: Optional[float] = None,
                 loop: bool = False) -> None:
        super().__init__(str(path), mode=mode, fps_cap=fps_cap, start_index=start_index, replay_fps=replay_fps,
                         loop=loop)
        self.path = Path(path)

    def _make_reader(self, replay: _Replay) -> Reader:
        if not self.path.is_file():
            raise SourceError(f"{self.spec}: no such video file")
        return _VideoReader(self.path, self.start_index, replay, self._closed)


class ImageFolderSource(_FiniteSource):
    """Image files of a folder (or one image file) in natural name order, as frames at ``fps``.

    Args:
        path: a folder (its files with an extension in ``IMAGE_EXTENSIONS``; subfolders are ignored)
            or a single image file.
        fps: nominal rate that sets ``timestamp_s = index / fps`` and the pace of "latest" mode.
        mode, fps_cap, start_index, replay_fps, loop: as for :class:`VideoFileSource`.

    Raises:
        SourceError: on open(), if the folder holds no images; while reading, naming a file that does
            not decode.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, fps: float = 1.0, mode: str = "every",
                 fps_cap: Optional[float] = None, start_index: int = 0, replay_fps: Optional[float] = None,
                 loop: bool = False) -> None:
        super().__init__(str(path), mode=mode, fps_cap=fps_cap, start_index=start_index, replay_fps=replay_fps,
                         loop=loop)
        if not (fps > 0 and np.isfinite(fps)):
            raise InputError(f"source {str(path)!r}: fps must be a positive number, got {fps!r}")
        self.path = Path(path)
        self.nominal_fps = float(fps)

    def _make_reader(self, replay: _Replay) -> Reader:
        if self.path.is_file():
            files = [self.path]
        elif self.path.is_dir():
            files = sorted((p for p in self.path.iterdir()
                            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()), key=_natural_key)
        else:
            raise SourceError(f"{self.spec}: no such folder or image file")
        if not files:
            raise SourceError(f"{self.spec}: the folder holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        return _FolderReader(files, self.nominal_fps, self.start_index, replay, self._closed)


# -- live sources ----------------------------------------------------------------------------------
def _require_backend(api_name: str, spec: str) -> Callable[[], None]:
    def check() -> None:
        import cv2

        api = getattr(cv2, f"CAP_{api_name.upper()}")
        if not cv2.videoio_registry.hasBackend(api):
            raise BackendUnavailableError(
                f"{spec}: this OpenCV build ({cv2.__version__}) has no {_API_NAMES[api_name]} video backend; "
                f"install an OpenCV built with it (e.g. Debian's python3-opencv for GStreamer)")
    return check


def _capture_connector(target: Union[str, int], api_name: str, shown: str, open_timeout_s: float,
                       read_timeout_s: float) -> Callable[[], Reader]:
    def connect() -> Reader:
        import cv2

        api = getattr(cv2, f"CAP_{api_name.upper()}")
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
        if api_name == "ffmpeg":  # FFmpeg honours both at open; others refuse unknown open parameters
            cap = cv2.VideoCapture(target, api, timeouts)
        else:
            cap = cv2.VideoCapture(target, api)
            if cap.isOpened():
                # Where the backend supports it; the watchdog covers the rest.
                cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeouts[3])
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{shown}: could not open with OpenCV's {_API_NAMES[api_name]} backend")
        return CaptureReader(cap)
    return connect


class _Picamera2Reader:
    """A Raspberry Pi camera through picamera2 (libcamera). Frames: (H, W, 3) uint8 BGR."""

    eof = False
    position = None

    def __init__(self, index: int) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise BackendUnavailableError(_PICAMERA2_MISSING) from exc
        self._cam = Picamera2(index)
        try:
            # libcamera names formats by the 32-bit word, so "RGB888" lays bytes out B, G, R — the OpenCV
            # order (Picamera2 manual, "Image formats").
            self._cam.configure(self._cam.create_video_configuration(main={"format": "RGB888"}))
            self._cam.start()
        except Exception:
            self._cam.close()
            raise

    def read(self) -> Optional[np.ndarray]:
        return self._cam.capture_array("main")

    def release(self) -> None:
        try:
            self._cam.stop()
        finally:
            self._cam.close()


_PICAMERA2_MISSING = ("picamera2 source: the 'picamera2' package is not installed (on Raspberry Pi OS: "
                      "`sudo apt install python3-picamera2`, and create the venv with "
                      "--system-site-packages)")


def _check_picamera2() -> None:
    if importlib.util.find_spec("picamera2") is None:
        raise BackendUnavailableError(_PICAMERA2_MISSING)


# -- the factory -----------------------------------------------------------------------------------
def _resolve(spec: SpecLike) -> Tuple[str, Union[str, int, Path]]:
    """(kind, target) for a spec; kind is video, folder, v4l2, stream, gstreamer or picamera2."""
    if isinstance(spec, bool) or not isinstance(spec, (str, int, os.PathLike)):
        raise InputError(f"source spec: expected a path, URL, device index or pipeline, got {spec!r}")
    if isinstance(spec, int):
        if spec < 0:
            raise InputError(f"source spec: a camera index must be >= 0, got {spec}")
        return "v4l2", spec
    s = os.fspath(spec).strip() if isinstance(spec, os.PathLike) else spec.strip()
    if not s:
        raise InputError("source spec: empty string")
    if s.startswith("builtin:"):
        from ..assets import ensure

        return _resolve(ensure(s[len("builtin:"):]))
    m = re.fullmatch(r"picamera2(?::(\d+))?", s)
    if m:
        return "picamera2", int(m.group(1) or 0)
    if re.fullmatch(r"/dev/video\d+", s):
        return "v4l2", s
    if "!" in s and not Path(s).exists():
        return "gstreamer", s
    scheme = s.split("://", 1)[0].lower() if "://" in s else ""
    if scheme in _STREAM_SCHEMES:
        return "stream", s
    if scheme == "file":
        s = urlsplit(s).path
    elif scheme:
        raise InputError(f"source spec {redact(s)!r}: unknown URL scheme {scheme!r}; expected one of "
                         f"{', '.join(_STREAM_SCHEMES)} or a path")
    path = Path(s).expanduser()
    if s.isdigit() and not path.exists():
        return "v4l2", int(s)
    if path.is_dir():
        return "folder", path
    if path.exists() and stat.S_ISFIFO(path.stat().st_mode):
        return "stream", str(path)  # a named pipe fed by a camera tool (rpicam-vid -o fifo): live, via FFmpeg
    if path.is_file():
        return ("folder" if path.suffix.lower() in IMAGE_EXTENSIONS else "video"), path
    raise SourceError(f"source {s!r}: no such file or directory (expected a video file, an image folder, "
                      f"a camera index or /dev/videoN, an rtsp:// or http(s):// URL, a GStreamer pipeline "
                      f"or picamera2[:N])")


def open_source(spec: SpecLike, *, mode: str = "auto", fps_cap: Optional[float] = None,
                reconnect: Union[bool, ReconnectPolicy] = True, read_timeout_s: float = 5.0,
                open_timeout_s: Optional[float] = None, start_index: int = 0, replay_fps: Optional[float] = None,
                loop: bool = False) -> FrameSource:
    """Make the source a spec names; nothing is opened until ``open()`` / ``with``.

    Args:
        spec: a video file path; an image folder (or one image); a camera index (int or digit string)
            or "/dev/videoN" (V4L2); an rtsp://, rtmp://, http(s)://, udp://, srt:// URL or a named pipe
            fed by a camera tool (FFmpeg; live); a GStreamer pipeline (any string with "!", ending in
            appsink); "picamera2" or "picamera2:N"; "builtin:NAME" for a bundled asset.
        mode: "every" (files and folders: every frame, in order), "latest" (newest frame wins; the only
            mode for live sources) or "auto" (every for files, latest for live sources).
        fps_cap: at most this many frames per second are delivered (None = no cap).
        reconnect: live sources only: True (default backoff), False, or a :class:`ReconnectPolicy`.
        read_timeout_s: live sources only: no frame for this long counts as a loss (then reconnect).
        open_timeout_s: live sources only: limit for one connection attempt (default: the larger of
            read_timeout_s and 5 s, room for an RTSP handshake).
        start_index: files and folders only: first frame to deliver (resume after a restart).
        replay_fps, loop: files and folders only: replay paced at this rate, and start over at the end
            (see :class:`VideoFileSource`).

    Returns:
        A :class:`FrameSource` (iterate it for :class:`Frame` records; ``.stats`` holds the counters).

    Raises:
        SourceError: a path that does not exist (at once); a stream or device that cannot be opened
            (on open()).
        BackendUnavailableError: on open(), for picamera2 without the package or a pipeline with no
            GStreamer in OpenCV.
        InputError: a malformed spec or argument, or mode="every" for a live source.
    """
    if mode not in MODES + ("auto",):
        raise InputError(f"open_source: mode must be 'auto', 'every' or 'latest', got {mode!r}")
    kind, target = _resolve(spec)
    if kind in ("video", "folder"):
        m = "every" if mode == "auto" else mode
        if kind == "video":
            return VideoFileSource(target, mode=m, fps_cap=fps_cap, start_index=start_index, replay_fps=replay_fps,
                                   loop=loop)
        return ImageFolderSource(target, mode=m, fps_cap=fps_cap, start_index=start_index, replay_fps=replay_fps,
                                 loop=loop)
    shown = {"stream": redact(str(target)), "picamera2": f"picamera2:{target}"}.get(kind, str(target))
    if mode == "every":
        raise InputError(f"open_source({shown!r}): mode='every' needs a file or folder; a live source can't "
                         f"be paused, so it runs latest-frame-wins (mode='latest' or 'auto')")
    if start_index or replay_fps is not None or loop:
        raise InputError(f"open_source({shown!r}): start_index, replay_fps and loop apply to files and folders only")
    if isinstance(reconnect, bool):
        policy = ReconnectPolicy(enabled=reconnect)
    elif isinstance(reconnect, ReconnectPolicy):
        policy = reconnect
    else:
        raise InputError(f"open_source: reconnect must be a bool or a ReconnectPolicy, got {reconnect!r}")
    if not (read_timeout_s > 0 and np.isfinite(read_timeout_s)):
        raise InputError(f"open_source: read_timeout_s must be a positive number, got {read_timeout_s!r}")
    if open_timeout_s is None:
        open_timeout_s = max(read_timeout_s, 5.0)
    elif not (open_timeout_s > 0 and np.isfinite(open_timeout_s)):
        raise InputError(f"open_source: open_timeout_s must be a positive number, got {open_timeout_s!r}")
    if kind == "picamera2":
        index = int(target)
        return LiveSource(shown, lambda: _Picamera2Reader(index), fps_cap=fps_cap, reconnect=policy,
                          read_timeout_s=read_timeout_s, open_timeout_s=open_timeout_s,
                          check_available=_check_picamera2)
    api_name = {"v4l2": "v4l2", "stream": "ffmpeg", "gstreamer": "gstreamer"}[kind]
    connect = _capture_connector(target, api_name, shown, open_timeout_s, read_timeout_s)  # type: ignore[arg-type]
    return LiveSource(shown, connect, fps_cap=fps_cap, reconnect=policy, read_timeout_s=read_timeout_s,
                      open_timeout_s=open_timeout_s, check_available=_require_backend(api_name, shown))
