"""Calibration and evaluation frames for the YOLO int8 converter, pre-processed exactly as at run time.

Frames come from an image folder or a video (a frame range, evenly sampled) and are letterboxed with
:func:`edge_runtime.vision.ops.letterbox_into` at the detector's input size and stride, the very call
:class:`~edge_runtime.vision.detector.Detector` makes per frame: calibration sees what inference sees.

Activation ranges are collected once per (model, frames, method) with ONNX Runtime's calibrators and
kept in memory as a ``TensorsData``, so every trial quantization of the float-fallback search reuses
them instead of re-running the calibration pass.

Shape legend: frames are (H, W, 3) uint8 BGR; model inputs (1, 3, h, w) float32 RGB in [0, 1] (or uint8
for uint8-input models).
"""

from __future__ import annotations

import contextlib
import enum
import io
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_runtime.errors import BackendUnavailableError, InputError, ModelFormatError
from edge_runtime.vision import ops

from ._io import progress

__all__ = [
    "CalibrationMethod",
    "Frame",
    "FrameRange",
    "FrameSet",
    "IMAGE_SUFFIXES",
    "Preprocessor",
    "collect_ranges",
    "load_frames",
    "parse_frame_range",
    "split_interleaved",
]

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
MAX_FRAMES = 10_000  # a calibration set far beyond what calibration needs is a typo, not a wish


class CalibrationMethod(str, enum.Enum):
    """How activation ranges are chosen from the calibration statistics (ONNX Runtime calibrators)."""

    MINMAX = "minmax"          # observed min/max: no clipping, coarser steps
    ENTROPY = "entropy"        # KL-divergence-optimal clipping of a 128-bin histogram
    PERCENTILE = "percentile"  # clip at the 99.999th percentile of |x|

    def to_ort(self):
        from onnxruntime.quantization import CalibrationMethod as OrtMethod

        return {"minmax": OrtMethod.MinMax, "entropy": OrtMethod.Entropy,
                "percentile": OrtMethod.Percentile}[self.value]


@dataclass(frozen=True)
class FrameRange:
    """Frames ``start`` (inclusive) to ``stop`` (exclusive) of a video or a sorted image folder.

    ``stop=None`` runs to the end.
    """

    start: int = 0
    stop: Optional[int] = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.stop is not None and self.stop <= self.start):
            raise InputError(f"frame range {self}: expected 0 <= start < stop, got start={self.start}, "
                             f"stop={self.stop}")

    def overlaps(self, other: "FrameRange") -> bool:
        """Whether the two ranges share a frame index."""
        a_stop = math.inf if self.stop is None else self.stop
        b_stop = math.inf if other.stop is None else other.stop
        return self.start < b_stop and other.start < a_stop

    def __str__(self) -> str:
        return f"{self.start}:{'' if self.stop is None else self.stop}"


def parse_frame_range(text: str) -> FrameRange:
    """Parse ``"A:B"`` (frames A..B-1), ``"A:"`` (A to the end) or ``":B"``.

    Raises:
        InputError: not of that form, negative, or empty.

    Example:
        >>> parse_frame_range("0:400")
        FrameRange(start=0, stop=400)
    """
    head, sep, tail = str(text).strip().partition(":")
    try:
        if not sep:
            raise ValueError
        start = int(head) if head.strip() else 0
        stop = int(tail) if tail.strip() else None
    except ValueError:
        raise InputError(f"frame range {text!r}: expected START:STOP frame indices, e.g. 0:400") from None
    return FrameRange(start, stop)


@dataclass(frozen=True)
class Frame:
    """One frame: its index in the source (video frame number or position in the sorted folder), a
    label for messages (file name or ``video.avi#120``) and the (H, W, 3) uint8 BGR pixels."""

    index: int
    label: str
    bgr: np.ndarray


@dataclass(frozen=True)
class FrameSet:
    """Frames sampled from one source, all of one size (one camera)."""

    source: Path
    frames: Tuple[Frame, ...]

    @property
    def hw(self) -> Tuple[int, int]:
        """The frames' (H, W)."""
        return tuple(self.frames[0].bgr.shape[:2])  # type: ignore[return-value]

    @property
    def indices(self) -> List[int]:
        return [f.index for f in self.frames]

    def __len__(self) -> int:
        return len(self.frames)

    def subset(self, positions: Sequence[int]) -> "FrameSet":
        """The frames at these positions (0..len-1) of this set."""
        return FrameSet(self.source, tuple(self.frames[p] for p in positions))


def _sample(indices: Sequence[int], count: Optional[int]) -> List[int]:
    """``count`` indices spread evenly over ``indices`` (all of them when count is None or larger)."""
    if count is None or count >= len(indices):
        return list(indices)
    if count < 1:
        raise InputError(f"frame count must be >= 1, got {count}")
    picks = np.linspace(0, len(indices) - 1, count).round().astype(int)
    return [indices[i] for i in sorted(set(picks.tolist()))]


def _check_frame(frame: np.ndarray, label: str, hw: Optional[Tuple[int, int]]) -> None:
    if frame is None or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(f"{label}: not a 3-channel 8-bit image")
    if hw is not None and frame.shape[:2] != hw:
        raise InputError(f"{label}: frame is {frame.shape[1]}x{frame.shape[0]} (WxH) but the first frame was "
                         f"{hw[1]}x{hw[0]}; calibration frames must all come from one camera (one size)")


def _folder_frames(folder: Path, frames: FrameRange, count: Optional[int]) -> List[Frame]:
    import cv2

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the calibration folder")
    stop = len(files) if frames.stop is None else min(frames.stop, len(files))
    if frames.start >= stop:
        raise InputError(f"{folder}: frame range {frames} selects nothing; the folder has {len(files)} images")
    out: List[Frame] = []
    hw = None
    for i in _sample(range(frames.start, stop), count):
        bgr = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{files[i]}: unreadable image (corrupt or not an image); remove it from the "
                             f"calibration folder")
        _check_frame(bgr, str(files[i]), hw)
        hw = bgr.shape[:2]
        out.append(Frame(i, files[i].name, np.ascontiguousarray(bgr)))
    return out


def _video_frames(video: Path, frames: FrameRange, count: Optional[int]) -> List[Frame]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise InputError(f"{video}: cannot open as a video (corrupt, or a codec OpenCV lacks)")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        stop = frames.stop if frames.stop is not None else (total if total > 0 else None)
        if total > 0 and stop is not None:
            stop = min(stop, total)
            if frames.start >= stop:
                raise InputError(f"{video}: frame range {frames} selects nothing; the video has {total} frames")
        if stop is None:  # length unknown (some containers): read everything in range, then sample
            wanted = None
        else:
            wanted = set(_sample(range(frames.start, stop), count))
        out: List[Frame] = []
        hw = None
        index = 0
        # Read sequentially: seeking is frame-inexact in many containers, and calibration must see the
        # frames it says it saw.
        while stop is None or index < stop:
            if wanted is not None and index not in wanted:
                if not cap.grab():
                    break
                index += 1
                continue
            ok, bgr = cap.read()
            if not ok:
                break
            if index >= frames.start:
                label = f"{video.name}#{index}"
                _check_frame(bgr, label, hw)
                hw = bgr.shape[:2]
                out.append(Frame(index, label, np.ascontiguousarray(bgr)))
            index += 1
            if len(out) > MAX_FRAMES:
                raise InputError(f"{video}: more than {MAX_FRAMES} frames selected; narrow the range or "
                                 f"pass a frame count")
    finally:
        cap.release()
    if wanted is None:
        keep = set(_sample([f.index for f in out], count))
        out = [f for f in out if f.index in keep]
    if not out:
        raise InputError(f"{video}: no decodable frames in range {frames} (the video has {index} readable "
                         f"frames)")
    return out


def load_frames(source: Union[str, os.PathLike], frames: Optional[FrameRange] = None,
                count: Optional[int] = None) -> FrameSet:
    """Read calibration or evaluation frames from an image folder or a video.

    Args:
        source: a folder of images (sorted by name) or a video file.
        frames: which frames (default: all); indices into the video or the sorted folder.
        count: sample this many frames evenly over the range (default: every frame in it).

    Returns:
        A :class:`FrameSet` of (H, W, 3) uint8 BGR frames, all of one size.

    Raises:
        InputError: the source is missing, empty, unreadable, not an image folder or video, selects no
            frame, or mixes frame sizes.

    Example:
        >>> from edge_runtime.assets import ensure
        >>> calib = load_frames(ensure("vtest-video"), FrameRange(0, 400), count=20)   # doctest: +SKIP
        >>> len(calib), calib.hw                                                         # doctest: +SKIP
        (20, (576, 768))
    """
    path = Path(source)
    frames = frames or FrameRange()
    if count is not None and not 1 <= count <= MAX_FRAMES:
        raise InputError(f"frame count must be in 1..{MAX_FRAMES}, got {count}")
    if path.is_dir():
        out = _folder_frames(path, frames, count)
    elif path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise InputError(f"{path}: one image is not a calibration set; pass the folder holding the "
                             f"images or a video")
        if path.stat().st_size == 0:
            raise InputError(f"{path}: empty file, expected a video")
        out = _video_frames(path, frames, count)
    else:
        raise InputError(f"{path}: no such calibration source (expected an image folder or a video file)")
    return FrameSet(path, tuple(out))


def split_interleaved(frames: FrameSet, count: int) -> Tuple[FrameSet, FrameSet]:
    """Split a sampled range into (rest, ``count`` frames spread evenly between them), disjoint.

    Used to hold validation frames out of the calibration frames of the same range.

    Raises:
        InputError: ``count`` not in 1..len(frames) - 1.
    """
    n = len(frames)
    if not 1 <= count < n:
        raise InputError(f"{frames.source}: cannot hold {count} of {n} frames out; need 1..{n - 1}")
    picks = sorted({int(round(x)) for x in np.linspace(0, n - 1, 2 * count + 1)[1::2]})
    held = set(picks)
    return frames.subset([p for p in range(n) if p not in held]), frames.subset(picks)


class Preprocessor:
    """Letterbox frames into model inputs exactly as :class:`Detector` does.

    Args:
        input_hw: the model's (h, w).
        stride: the model's largest stride (letterbox geometry).
        dtype: np.float32 (RGB / 255) or np.uint8, the model input's type.
    """

    def __init__(self, input_hw: Tuple[int, int], stride: int, dtype: type = np.float32):
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.stride = int(stride)
        self.dtype = np.dtype(dtype)

    def __call__(self, frame: np.ndarray) -> Tuple[np.ndarray, ops.LetterboxInfo]:
        """(1, 3, h, w) tensor (a new array) and the letterbox geometry of one frame."""
        out = np.empty((1, 3, *self.input_hw), self.dtype)
        info = ops.letterbox_into(frame, out, stride=self.stride)
        return out, info

    @classmethod
    def for_detector(cls, detector) -> "Preprocessor":
        """The pre-processing of a loaded :class:`~edge_runtime.vision.detector.Detector`."""
        return cls(detector.input_hw, detector.stride, detector._input.dtype)


class _FrameReader:
    """ONNX Runtime CalibrationDataReader over letterboxed frames (one frame per batch)."""

    def __init__(self, input_name: str, frames: Sequence[Frame], pre: Preprocessor):
        self._input_name = input_name
        self._frames = iter(frames)
        self._pre = pre

    def get_next(self):
        frame = next(self._frames, None)
        if frame is None:
            return None
        tensor, _ = self._pre(frame.bgr)
        return {self._input_name: tensor}

    def __iter__(self) -> Iterator[dict]:
        while True:
            item = self.get_next()
            if item is None:
                return
            yield item


def collect_ranges(model_path: Union[str, os.PathLike], frames: FrameSet, pre: Preprocessor, *,
                   method: CalibrationMethod = CalibrationMethod.PERCENTILE, percentile: float = 99.999,
                   chunk: int = 4, quiet: bool = False):
    """Run the float model over the calibration frames and return ONNX Runtime's activation ranges.

    The calibrator's augmented model outputs every activation; frames are fed ``chunk`` at a time and
    the statistics merged after each chunk, so memory stays bounded by ``chunk`` frames of activations
    whatever the set size (MinMax keeps only per-tensor reductions; the histogram methods keep whole
    activations, hundreds of MB per frame for YOLOv8s at 640).

    Percentile ranges are taken on the signed values, cutting (100 - percentile)/2 % at each end:
    ONNX Runtime's default for percentile is symmetric (|x|), which for uint8 activations after SiLU
    (almost all >= 0) would spend half the codes on values that never occur.

    Args:
        model_path: the float ONNX model, shape-inferred.
        frames: the calibration frames.
        pre: the runtime's pre-processing for this model.
        method: MinMax, Entropy or Percentile.
        percentile: kept mass for Percentile, in (90, 100].
        chunk: frames per statistics merge (>= 1).
        quiet: no progress bar.

    Returns:
        ``onnxruntime.quantization.calibrate.TensorsData`` (per-tensor ranges), reusable for any
        number of quantizations of the same model.

    Raises:
        InputError: no frames, or a bad chunk/percentile.
        BackendUnavailableError: onnxruntime's quantization tools are missing.
        ModelFormatError: the model cannot be instrumented or run by the calibrator.
    """
    if len(frames) == 0:
        raise InputError(f"{frames.source}: calibration set is empty")
    if chunk < 1:
        raise InputError(f"collect_ranges: chunk must be >= 1, got {chunk}")
    if not 90.0 < percentile <= 100.0:
        raise InputError(f"collect_ranges: percentile must be in (90, 100], got {percentile}")
    try:
        from onnxruntime.quantization import create_calibrator
    except ImportError as exc:  # pragma: no cover - onnxruntime is a core dependency
        raise BackendUnavailableError(f"onnxruntime.quantization is unavailable: {exc}") from exc

    method = CalibrationMethod(method)
    # Not ORT's "max_intermediate_outputs": in onnxruntime 1.32 it drops the batches it was meant to merge
    # (clear_collected_data() without compute_data()). One collect_data() call per chunk merges correctly
    # for every method (MinMax keeps running ranges, the histogram methods keep running histograms).
    options: dict = {}
    if method is CalibrationMethod.PERCENTILE:
        options = {"symmetric": False, "percentile": float(percentile)}
    with tempfile.TemporaryDirectory(prefix="edge-calib-") as tmp:
        try:
            calibrator = create_calibrator(Path(model_path), None,
                                           augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                           calibrate_method=method.to_ort(), extra_options=options)
        except Exception as exc:  # onnx/onnxruntime raise many unrelated types for a bad graph
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ModelFormatError(f"{model_path}: cannot instrument the model for calibration: {first}") from exc
        input_name = calibrator.infer_session.get_inputs()[0].name
        chunks = range(0, len(frames), chunk)
        try:
            # ORT's histogram collectors print() progress lines; keep stdout for the caller.
            with contextlib.redirect_stdout(io.StringIO()):
                for start in progress(chunks, desc=f"calibrating ({method.value}, {chunk} frames/step)",
                                      total=len(chunks), quiet=quiet):
                    calibrator.collect_data(_FrameReader(input_name, frames.frames[start:start + chunk], pre))
                ranges = calibrator.compute_data()
        except Exception as exc:  # ORT's Fail/InvalidArgument/... derive from Exception only
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ModelFormatError(f"{model_path}: calibration run failed: {first}") from exc
        finally:
            del calibrator
    return ranges
