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

import importlib.util
import logging
import os
import re
import stat
import threading
import time
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
class _VideoReader:
    """Frames of a video file, optionally paced at the file's fps (to replay it as a camera would)."""

    def __init__(self, path: Path, start_index: int, pace: bool, stop: threading.Event) -> None:
        import cv2

        self.eof = False
        self.position: Optional[Tuple[int, float]] = None
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            self._cap.release()
            raise SourceError(f"{path}: not a video OpenCV can open (OpenCV {cv2.__version__})")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        if not (0.0 < fps <= 1000.0):
            log.warning("%s: the file reports %r fps; timestamps assume %g fps", path, fps, _FALLBACK_FPS)
            fps = _FALLBACK_FPS
        self.fps = fps
        self.frame_count = max(0, int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        self._path, self._pace, self._stop = path, pace, stop
        self._next = 0
        # grab() (demux + decode without the copy) is exact where CAP_PROP_POS_FRAMES seeks can land on
        # the nearest key frame; resuming must not skip or repeat frames.
        while self._next < start_index and self._cap.grab():
            self._next += 1
        self._t0: Optional[float] = None

    def read(self) -> Optional[np.ndarray]:
        ok, image = self._cap.read()
        if not ok or image is None:
            self.eof = True
            if 0 < self._next < self.frame_count - 1:
                log.warning("%s: ended at frame %d; the header promised %d", self._path, self._next,
                            self.frame_count)
            return None
        index = self._next
        self._next += 1
        self.position = (index, index / self.fps)
        if self._pace:
            self._t0 = _pace_to(index, self.fps, self._t0, self._stop)
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
    """Image files in natural order (img2 before img10), as frames at a nominal fps."""

    def __init__(self, files: List[Path], fps: float, start_index: int, pace: bool,
                 stop: threading.Event) -> None:
        self.eof = False
        self.position: Optional[Tuple[int, float]] = None
        self.fps, self.frame_count = fps, len(files)
        self._files, self._pace, self._stop = files, pace, stop
        self._next = start_index
        self._t0: Optional[float] = None

    def read(self) -> Optional[np.ndarray]:
        import cv2

        if self._next >= len(self._files):
            self.eof = True
            return None
        index, path = self._next, self._files[self._next]
        self._next += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey and 16-bit files come back as 8-bit BGR
        if image is None:
            raise SourceError(f"{path}: not an image OpenCV can decode (frame {index} of {self.frame_count})")
        self.position = (index, index / self.fps)
        if self._pace:
            self._t0 = _pace_to(index, self.fps, self._t0, self._stop)
        return image

    def release(self) -> None:
        pass


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


class _FiniteSource(FrameSource):
    """A file or folder: "every" reads in the caller's thread; "latest" replays through a grabber."""

    def __init__(self, spec: str, *, mode: str, fps_cap: Optional[float], start_index: int) -> None:
        super().__init__(spec, mode=mode, fps_cap=fps_cap)
        if isinstance(start_index, bool) or not isinstance(start_index, int) or start_index < 0:
            raise InputError(f"source {spec!r}: start_index must be an integer >= 0, got {start_index!r}")
        self.start_index = start_index
        self._reader: Optional[Reader] = None
        self._live: Optional[LiveSource] = None

    def _make_reader(self, pace: bool) -> Reader:
        raise NotImplementedError

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
        if self.mode == "every":
            self._reader = self._make_reader(pace=False)
            return
        readers: List[Reader] = []

        def connect() -> Reader:
            if readers:  # a finite source never reconnects; this guards the invariant
                raise SourceError(f"{self.spec}: a file is opened once")
            readers.append(self._make_reader(pace=True))
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
            return frame
        assert self._reader is not None  # set by _open; read() refuses to run before open()
        image = self._reader.read()
        if image is None:
            self._ended = True
            return None
        index, ts = self._reader.position  # type: ignore[misc]
        with self._stats_lock:
            self.stats.grabbed += 1
        return Frame(image=as_bgr(image), index=index, timestamp_s=ts)


class VideoFileSource(_FiniteSource):
    """A video file (anything OpenCV's FFmpeg backend decodes). ``timestamp_s = index / fps``.

    Args:
        path: the file.
        mode: "every" (each frame, in order, as fast as the consumer reads) or "latest" (replayed at the
            file's fps by a grabber thread; frames the consumer is too slow for are dropped and counted).
        fps_cap: at most this many deliveries per second.
        start_index: first frame to deliver (resume after a restart); earlier frames are skipped exactly.

    Raises:
        SourceError: on open(), if the file is missing or not a video.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, mode: str = "every",
                 fps_cap: Optional[float] = None, start_index: int = 0) -> None:
        super().__init__(str(path), mode=mode, fps_cap=fps_cap, start_index=start_index)
        self.path = Path(path)

    def _make_reader(self, pace: bool) -> Reader:
        if not self.path.is_file():
            raise SourceError(f"{self.spec}: no such video file")
        return _VideoReader(self.path, self.start_index, pace, self._closed)


class ImageFolderSource(_FiniteSource):
    """Image files of a folder (or one image file) in natural name order, as frames at ``fps``.

    Args:
        path: a folder (its files with an extension in ``IMAGE_EXTENSIONS``; subfolders are ignored)
            or a single image file.
        fps: nominal rate that sets ``timestamp_s = index / fps`` and the pace of "latest" mode.
        mode, fps_cap, start_index: as for :class:`VideoFileSource`.

    Raises:
        SourceError: on open(), if the folder holds no images; while reading, naming a file that does
            not decode.
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"], *, fps: float = 1.0, mode: str = "every",
                 fps_cap: Optional[float] = None, start_index: int = 0) -> None:
        super().__init__(str(path), mode=mode, fps_cap=fps_cap, start_index=start_index)
        if not (fps > 0 and np.isfinite(fps)):
            raise InputError(f"source {str(path)!r}: fps must be a positive number, got {fps!r}")
        self.path = Path(path)
        self.nominal_fps = float(fps)

    def _make_reader(self, pace: bool) -> Reader:
        if self.path.is_file():
            files = [self.path]
        elif self.path.is_dir():
            files = sorted((p for p in self.path.iterdir()
                            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()), key=_natural_key)
        else:
            raise SourceError(f"{self.spec}: no such folder or image file")
        if not files:
            raise SourceError(f"{self.spec}: the folder holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
        return _FolderReader(files, self.nominal_fps, self.start_index, pace, self._closed)


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
                open_timeout_s: Optional[float] = None, start_index: int = 0) -> FrameSource:
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
            return VideoFileSource(target, mode=m, fps_cap=fps_cap, start_index=start_index)
        return ImageFolderSource(target, mode=m, fps_cap=fps_cap, start_index=start_index)
    shown = {"stream": redact(str(target)), "picamera2": f"picamera2:{target}"}.get(kind, str(target))
    if mode == "every":
        raise InputError(f"open_source({shown!r}): mode='every' needs a file or folder; a live source can't "
                         f"be paused, so it runs latest-frame-wins (mode='latest' or 'auto')")
    if start_index:
        raise InputError(f"open_source({shown!r}): start_index applies to files and folders only")
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
