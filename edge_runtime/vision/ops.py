"""Per-frame vision kernels: letterbox, YOLO decode, NMS (validated here, run in ``edge_runtime._native``).

Shape legend: frames are (H, W, 3) uint8 BGR, C-contiguous (what OpenCV delivers); the model input is a
(1, 3, h, w) tensor of RGB planes, float32 in [0, 1] or uint8; a raw YOLO output is float32 (rows, cols)
or (1, rows, cols); nc classes; N boxes: ``xyxy`` (N, 4) float32 (x1, y1, x2, y2) in source-frame
pixels, ``score`` (N,) float32, ``class_id`` (N,) int32.

Each function has a NumPy twin of the same name in :mod:`edge_runtime.reference` (the test oracle) and a
C++ kernel ``edge::NAME`` in ``native/src``. Inputs are checked here and borrowed by the native code
without copies, so a wrong dtype or a strided view is an :class:`InputError`, not a silent conversion.
"""

from __future__ import annotations

import enum
import functools
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .. import _native
from ..errors import InputError, ModelFormatError

__all__ = [
    "YoloLayout",
    "LetterboxInfo",
    "letterbox_geometry",
    "letterbox",
    "letterbox_into",
    "letterbox_again",
    "detect_layout",
    "infer_num_classes",
    "decode_yolo",
    "nms",
    "postprocess",
    "postprocess_prepared",
    "MAX_IMAGE_SIDE",
]

MAX_IMAGE_SIDE = 1 << 16  # edge::kMaxImageSide: largest frame or tensor side accepted
PAD_VALUE = 114           # Ultralytics' letterbox grey

Shape = Sequence[Optional[Union[int, str]]]
Boxes = Tuple[np.ndarray, np.ndarray, np.ndarray]


class YoloLayout(enum.IntEnum):
    """How a YOLO detector lays out its output tensor (boxes in input-tensor pixels)."""

    V5 = 0   # (N, 5 + nc): cx cy w h obj cls...  (YOLOv5, YOLOv7); score = obj * best class score
    V8 = 1   # (4 + nc, N) channel-major: cx cy w h cls...  (YOLOv8, YOLO11, anchor-free)
    E2E = 2  # (K, 6): x1 y1 x2 y2 score class, already suppressed (end-to-end exports: YOLOv10, YOLO26)


@dataclass(frozen=True)
class LetterboxInfo:
    """Where a frame went inside the model input, to map boxes back.

    Attributes:
        src_hw: source frame (H, W).
        out_hw: tensor (h, w).
        resized_hw: the resized frame's size inside the tensor.
        pad_x, pad_y: left and top padding, input-tensor pixels.
        scale: Ultralytics' gain r = min(h / H, w / W) (capped at 1 without scale_up).
    """

    src_hw: Tuple[int, int]
    out_hw: Tuple[int, int]
    resized_hw: Tuple[int, int]
    pad_x: int
    pad_y: int
    scale: float

    @property
    def scale_x(self) -> float:
        """Tensor pixels per source pixel along x, as actually resized (resized_w / W)."""
        return self.resized_hw[1] / self.src_hw[1]

    @property
    def scale_y(self) -> float:
        """Tensor pixels per source pixel along y (resized_h / H)."""
        return self.resized_hw[0] / self.src_hw[0]

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Map (N, 4) boxes in input-tensor pixels to (N, 4) float32 source pixels, clipped to the frame.

        Uses the per-axis scale the resize really applied (resized / source) rather than r, so a box edge
        lands where the resampler took that pixel from.
        """
        boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
        out = np.empty_like(boxes)
        out[:, 0::2] = np.clip((boxes[:, 0::2] - self.pad_x) / self.scale_x, 0, self.src_hw[1])
        out[:, 1::2] = np.clip((boxes[:, 1::2] - self.pad_y) / self.scale_y, 0, self.src_hw[0])
        return out.astype(np.float32)

    @functools.cached_property
    def box_args(self) -> Tuple[float, float, float, float, float, float]:
        """(pad_x, pad_y, scale_x, scale_y, src_w, src_h): the box mapping as the decode kernels take it."""
        return (float(self.pad_x), float(self.pad_y), self.scale_x, self.scale_y, float(self.src_hw[1]),
                float(self.src_hw[0]))

    def _box_map(self) -> dict:
        return dict(zip(("pad_x", "pad_y", "scale_x", "scale_y", "src_w", "src_h"), self.box_args))


# -- letterbox ----------------------------------------------------------------------------------------


def _int_pair(name: str, value: object, where: str) -> Tuple[int, int]:
    try:
        h, w = value  # type: ignore[misc]
        pair = (int(h), int(w))
    except (TypeError, ValueError):
        raise InputError(f"{where}: {name} must be (height, width), got {value!r}") from None
    if pair != tuple(value) or not all(1 <= v <= MAX_IMAGE_SIDE for v in pair):  # type: ignore[arg-type]
        raise InputError(f"{where}: {name} must be two integers in 1..{MAX_IMAGE_SIDE}, got {value!r}")
    return pair


def letterbox_geometry(src_hw: Tuple[int, int], dst_hw: Tuple[int, int] = (640, 640), *, auto: bool = False,
                       stride: int = 32, scale_up: bool = True) -> LetterboxInfo:
    """Where an (H, W) frame goes in a letterboxed (h, w) model input (Ultralytics' LetterBox geometry).

    Args:
        src_hw: frame (H, W) in pixels.
        dst_hw: target tensor (h, w).
        auto: keep only the padding needed to reach a multiple of ``stride`` (rectangular inference);
            the tensor is then smaller than ``dst_hw``.
        stride: the model's largest stride (32 for YOLO).
        scale_up: allow enlarging small frames (False caps the scale at 1).

    Raises:
        InputError: a size outside 1..MAX_IMAGE_SIDE or a stride < 1.

    Example:
        >>> letterbox_geometry((576, 768), (640, 640))
        LetterboxInfo(src_hw=(576, 768), out_hw=(640, 640), resized_hw=(480, 640), pad_x=0, pad_y=80, scale=0.8333333333333334)
    """
    where = "letterbox_geometry"
    src = _int_pair("src_hw", src_hw, where)
    dst = _int_pair("dst_hw", dst_hw, where)
    if not isinstance(stride, (int, np.integer)) or not 1 <= stride <= MAX_IMAGE_SIDE:
        raise InputError(f"{where}: stride must be an integer in 1..{MAX_IMAGE_SIDE}, got {stride!r}")
    out_h, out_w, new_h, new_w, top, left, scale = _native.letterbox_geometry(
        src[0], src[1], dst[0], dst[1], bool(auto), int(stride), bool(scale_up))
    return LetterboxInfo(src, (out_h, out_w), (new_h, new_w), left, top, scale)


def _check_frame(frame: object, where: str) -> np.ndarray:
    if not isinstance(frame, np.ndarray):
        raise InputError(f"{where}: frame must be a numpy array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"{where}: frame must be uint8 BGR, got dtype {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"{where}: frame must be (H, W, 3) BGR, got shape {frame.shape}")
    if not (1 <= frame.shape[0] <= MAX_IMAGE_SIDE and 1 <= frame.shape[1] <= MAX_IMAGE_SIDE):
        raise InputError(f"{where}: frame sides must be in 1..{MAX_IMAGE_SIDE}, got shape {frame.shape}")
    if not frame.flags.c_contiguous:
        raise InputError(f"{where}: frame must be C-contiguous (a crop or a channel-flipped view is not); "
                         f"pass np.ascontiguousarray(frame)")
    return frame


def _check_pad(pad_value: int, where: str) -> int:
    if not isinstance(pad_value, (int, np.integer)) or not 0 <= pad_value <= 255:
        raise InputError(f"{where}: pad_value must be an integer in 0..255, got {pad_value!r}")
    return int(pad_value)


def letterbox_into(frame: np.ndarray, out: np.ndarray, *, dst_hw: Optional[Tuple[int, int]] = None,
                   auto: bool = False, stride: int = 32, scale_up: bool = True,
                   pad_value: int = PAD_VALUE, write_pad: bool = True, threads: int = 1) -> LetterboxInfo:
    """Letterbox ``frame`` into the caller-owned model input ``out``, with no allocation per frame.

    One fused pass: bilinear resize (OpenCV INTER_LINEAR convention), grey padding, BGR -> RGB, HWC ->
    CHW, and /255 when ``out`` is float32.

    Args:
        frame: (H, W, 3) uint8 BGR, C-contiguous.
        out: (1, 3, h, w) float32 (values in [0, 1]) or uint8, C-contiguous and writeable.
        dst_hw: letterbox target; defaults to ``out``'s (h, w). With ``auto`` the tensor is the
            stride-trimmed size, which ``out`` must then have (see :func:`letterbox_geometry`).
        auto, stride, scale_up: as in :func:`letterbox_geometry`.
        pad_value: grey level of the padding (0..255; 114 as in Ultralytics).
        write_pad: False leaves ``out``'s padding untouched and writes only the picture: for an ``out``
            whose padding this call (same frame size, geometry and ``pad_value``) has written before.
        threads: split the rows over up to this many threads (1..256; fewer for a small output). The
            result is the same for every value.

    Returns:
        The :class:`LetterboxInfo` to map detections back to the frame.

    Raises:
        InputError: wrong dtype, shape, strides or sizes; ``out`` not writeable, sharing memory with
            ``frame``, or not the size the geometry gives.

    Example:
        >>> frame = np.zeros((576, 768, 3), np.uint8)
        >>> tensor = np.empty((1, 3, 640, 640), np.float32)
        >>> letterbox_into(frame, tensor).pad_y
        80
    """
    where = "letterbox_into"
    frame = _check_frame(frame, where)
    if not isinstance(out, np.ndarray):
        raise InputError(f"{where}: out must be a numpy array, got {type(out).__name__}")
    if out.dtype not in (np.float32, np.uint8):
        raise InputError(f"{where}: out must be float32 or uint8, got dtype {out.dtype}")
    if out.ndim != 4 or out.shape[:2] != (1, 3) or min(out.shape[2:]) < 1:
        raise InputError(f"{where}: out must be (1, 3, h, w), got shape {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise InputError(f"{where}: out must be C-contiguous and writeable")
    if np.may_share_memory(frame, out):
        raise InputError(f"{where}: out must not share memory with frame")
    tensor_hw = (int(out.shape[2]), int(out.shape[3]))
    info = letterbox_geometry(frame.shape[:2], tensor_hw if dst_hw is None else dst_hw, auto=auto, stride=stride,
                              scale_up=scale_up)
    if info.out_hw != tensor_hw:
        raise InputError(f"{where}: letterboxing a {frame.shape[0]}x{frame.shape[1]} frame (auto={auto}, "
                         f"stride={stride}) gives a {info.out_hw[0]}x{info.out_hw[1]} tensor, but out is "
                         f"{tensor_hw[0]}x{tensor_hw[1]}; size out with letterbox_geometry(...).out_hw")
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
        raise InputError(f"{where}: threads must be an int in 1..256, got {threads!r}")
    _native.letterbox_into(frame, out, info.resized_hw[0], info.resized_hw[1], info.pad_y, info.pad_x,
                           _check_pad(pad_value, where), bool(write_pad), threads)
    return info


def letterbox_again(frame: np.ndarray, out: np.ndarray, info: LetterboxInfo, *, pad_value: int = PAD_VALUE,
                    threads: int = 1) -> None:
    """Letterbox the next frame of a stream into ``out``, whose padding :func:`letterbox_into` has written
    for ``info`` (same frame size, geometry and ``pad_value``): only the picture is written.

    The per-frame path of a caller that checked its geometry once. The kernel still checks the frame,
    ``out`` and the geometry, and raises :class:`InputError` on any mismatch (a frame of another size
    included); this wrapper checks only that the frame has the size ``info`` was made for. The checks of
    :func:`letterbox_into` in Python cost more than the kernel's work when the model has just evicted the
    CPU's caches.

    Raises:
        InputError: as :func:`letterbox_into`.
    """
    if not isinstance(frame, np.ndarray):
        raise InputError(f"letterbox_again: frame must be a numpy array, got {type(frame).__name__}")
    if frame.shape[:2] != info.src_hw:
        raise InputError(f"letterbox_again: the frame is {'x'.join(map(str, frame.shape[:2]))}, the geometry is "
                         f"for {info.src_hw[0]}x{info.src_hw[1]}; call letterbox_into for a new size")
    try:
        _native.letterbox_into(frame, out, info.resized_hw[0], info.resized_hw[1], info.pad_y, info.pad_x,
                               pad_value, False, threads)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def letterbox(frame: np.ndarray, dst_hw: Tuple[int, int] = (640, 640), *, auto: bool = False, stride: int = 32,
              scale_up: bool = True, dtype: type = np.float32,
              pad_value: int = PAD_VALUE) -> Tuple[np.ndarray, LetterboxInfo]:
    """Letterbox ``frame`` into a new (1, 3, h, w) tensor; see :func:`letterbox_into` (which reuses one).

    Args:
        frame: (H, W, 3) uint8 BGR, C-contiguous.
        dst_hw: target (h, w); with ``auto`` the result may be smaller (padding only up to the stride).
        auto, stride, scale_up, pad_value: as in :func:`letterbox_into`.
        dtype: np.float32 (RGB / 255) or np.uint8.

    Returns:
        (tensor, info).

    Raises:
        InputError: as :func:`letterbox_into`, or an unsupported ``dtype``.

    Example:
        >>> tensor, info = letterbox(np.zeros((720, 1280, 3), np.uint8), auto=True)
        >>> tensor.shape, info.pad_y
        ((1, 3, 384, 640), 12)
    """
    where = "letterbox"
    frame = _check_frame(frame, where)
    if np.dtype(dtype) not in (np.float32, np.uint8):
        raise InputError(f"{where}: dtype must be float32 or uint8, got {np.dtype(dtype)}")
    info = letterbox_geometry(frame.shape[:2], dst_hw, auto=auto, stride=stride, scale_up=scale_up)
    out = np.empty((1, 3, *info.out_hw), dtype)
    _native.letterbox_into(frame, out, info.resized_hw[0], info.resized_hw[1], info.pad_y, info.pad_x,
                           _check_pad(pad_value, where))
    return out, info


# -- YOLO output layout -------------------------------------------------------------------------------


def _dims(output_shape: Shape, where: str) -> Tuple[int, int]:
    """The (rows, cols) of a detector output shape; -1 for a dynamic dimension. Strips a batch of 1."""
    dims = [d if isinstance(d, (int, np.integer)) and d >= 0 else -1 for d in output_shape]
    if len(dims) == 3:
        if dims[0] not in (1, -1):
            raise ModelFormatError(f"{where}: output batch is {dims[0]}, expected 1 (shape {tuple(output_shape)})")
        dims = dims[1:]
    if len(dims) != 2:
        raise ModelFormatError(f"{where}: a detector output must be (rows, cols) or (1, rows, cols), "
                               f"got shape {tuple(output_shape)}")
    return int(dims[0]), int(dims[1])


def detect_layout(output_shape: Shape, num_classes: Optional[int], end2end: Optional[bool], *,
                  path: Union[str, os.PathLike, None] = None) -> YoloLayout:
    """Decide the YOLO output layout from the output shape and the model's metadata.

    Args:
        output_shape: the first output's shape; dynamic dimensions as -1, None or a name.
        num_classes: len(names) from the metadata, or None if unknown.
        end2end: the metadata's end-to-end flag (True / False), or None if it doesn't say.
        path: the model file, for messages.

    Returns:
        V8 for (4 + nc, N), V5 for (N, 5 + nc), E2E for (K, 6) of an end-to-end export.

    Raises:
        ModelFormatError: the shape fits no layout, or more than one (e.g. (K, 6) with one class and no
            end2end flag: a YOLOv5 with 1 class or an end-to-end export) -- the message says which.

    Example:
        >>> detect_layout((1, 6, 8400), 2, None).name
        'V8'
    """
    where = f"{path}" if path is not None else "detect_layout"
    rows, cols = _dims(output_shape, where)
    nc = None if num_classes is None else int(num_classes)
    if nc is not None and nc < 1:
        raise ModelFormatError(f"{where}: num_classes must be >= 1, got {num_classes}")
    fits = []
    if end2end is not False and cols == 6:
        fits.append(YoloLayout.E2E)
    if end2end is not True:
        if nc is not None:
            if rows == 4 + nc:
                fits.append(YoloLayout.V8)
            if cols == 5 + nc:
                fits.append(YoloLayout.V5)
        else:
            # Without class names, trust the usual proportions: many more anchors than channels.
            if rows > 4 and (cols == -1 or rows < cols):
                fits.append(YoloLayout.V8)
            if cols > 5 and (rows == -1 or cols < rows):
                fits.append(YoloLayout.V5)
    shape = tuple(output_shape)
    if len(fits) == 1:
        return fits[0]
    if not fits:
        want = "(K, 6)" if end2end else ("(4+nc, N) or (N, 5+nc)" + ("" if end2end is False else " or (K, 6)"))
        classes = f" with nc={nc}" if nc is not None else ""
        raise ModelFormatError(f"{where}: output shape {shape} fits no YOLO layout{classes}; expected {want}")
    raise ModelFormatError(f"{where}: output shape {shape} is ambiguous between "
                           f"{' and '.join(f.name for f in fits)}; the model metadata should give "
                           f"{'names' if nc is None else 'end2end'}")


def infer_num_classes(output_shape: Shape, layout: YoloLayout, *, path: Union[str, os.PathLike, None] = None) -> int:
    """Number of classes implied by a V5/V8 output shape.

    Raises:
        ModelFormatError: the class dimension is dynamic or too small, or the layout is E2E (whose
            shape doesn't say; the metadata's ``names`` must).
    """
    where = f"{path}" if path is not None else "infer_num_classes"
    rows, cols = _dims(output_shape, where)
    layout = YoloLayout(layout)
    if layout is YoloLayout.E2E:
        raise ModelFormatError(f"{where}: an end-to-end (K, 6) output doesn't say how many classes there are, "
                               f"and the metadata has no 'names'")
    nc = rows - 4 if layout is YoloLayout.V8 else cols - 5
    dim = rows if layout is YoloLayout.V8 else cols
    if dim < 0 or nc < 1:
        raise ModelFormatError(f"{where}: output shape {tuple(output_shape)} gives no class count for {layout.name}")
    return nc


# -- decode and NMS -----------------------------------------------------------------------------------


def _check_raw(raw: object, layout: YoloLayout, num_classes: Optional[int], where: str) -> np.ndarray:
    if not isinstance(raw, np.ndarray):
        raise InputError(f"{where}: raw must be a numpy array, got {type(raw).__name__}")
    if raw.dtype != np.float32:
        raise InputError(f"{where}: raw must be float32, got dtype {raw.dtype}")
    if not (raw.ndim == 2 or (raw.ndim == 3 and raw.shape[0] == 1)):
        raise InputError(f"{where}: raw must be (rows, cols) or (1, rows, cols), got shape {raw.shape}")
    if not raw.flags.c_contiguous:
        raise InputError(f"{where}: raw must be C-contiguous (V8 outputs are read channel-major in place)")
    rows, cols = raw.shape[-2:]
    want = {YoloLayout.V8: (rows >= 5, "(4 + nc, N)"), YoloLayout.V5: (cols >= 6, "(N, 5 + nc)"),
            YoloLayout.E2E: (cols == 6, "(K, 6)")}[layout]
    if not want[0]:
        raise InputError(f"{where}: a {layout.name} output must be {want[1]}, got shape {raw.shape}")
    if num_classes is not None and layout is not YoloLayout.E2E:
        implied = rows - 4 if layout is YoloLayout.V8 else cols - 5
        if implied != num_classes:
            raise InputError(f"{where}: shape {raw.shape} has {implied} classes for {layout.name}, "
                             f"expected num_classes={num_classes}")
    return raw


def _check_unit(name: str, value: float, where: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise InputError(f"{where}: {name} must be in [0, 1], got {value}")
    return value


def _class_filter(classes: Optional[Sequence[int]], where: str) -> Optional[np.ndarray]:
    if classes is None:
        return None
    ids = np.asarray(classes)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu") or (ids.size and (ids.min() < 0 or ids.max() >= 1 << 20)):
        raise InputError(f"{where}: classes must be a list of class ids in 0..{(1 << 20) - 1}, got {classes!r}")
    return np.ascontiguousarray(ids, np.int32)


def _layout(layout: object, where: str) -> YoloLayout:
    try:
        return YoloLayout(layout)
    except ValueError:
        raise InputError(f"{where}: layout must be a YoloLayout (V5, V8, E2E), got {layout!r}") from None


def decode_yolo(raw: np.ndarray, layout: YoloLayout, conf_threshold: float, info: LetterboxInfo, *,
                num_classes: Optional[int] = None, classes: Optional[Sequence[int]] = None) -> Boxes:
    """Decode one raw YOLO output into boxes in source-frame pixels (before NMS for V5/V8).

    Args:
        raw: the model output, float32 (rows, cols) or (1, rows, cols), C-contiguous; read in place.
        layout: :class:`YoloLayout` (see :func:`detect_layout`).
        conf_threshold: keep boxes with score >= this, in [0, 1].
        info: the :class:`LetterboxInfo` of the frame that produced ``raw``.
        num_classes: expected class count: checked against V5/V8 shapes, bounds E2E class ids.
        classes: keep only these class ids (None = all).

    Returns:
        (xyxy (M, 4) float32, score (M,) float32, class_id (M,) int32) in output (anchor) order; boxes
        ordered (x1 <= x2, y1 <= y2) and clipped to the frame.

    Raises:
        InputError: wrong dtype/shape/strides, a threshold out of range, a NaN or inf anywhere in ``raw``
            (the message gives its channel and anchor), or an E2E class id that is not a whole number in
            range.

    Example:
        >>> raw = np.zeros((6, 8400), np.float32); raw[:, 0] = [320, 320, 64, 128, 0.9, 0.1]
        >>> xyxy, score, cls = decode_yolo(raw, YoloLayout.V8, 0.25, letterbox_geometry((576, 768)))
        >>> np.round(xyxy.astype(float), 1).tolist(), cls.tolist()
        ([[345.6, 211.2, 422.4, 364.8]], [0])
    """
    where = "decode_yolo"
    layout = _layout(layout, where)
    raw = _check_raw(raw, layout, num_classes, where)
    conf = _check_unit("conf_threshold", conf_threshold, where)
    if not isinstance(info, LetterboxInfo):
        raise InputError(f"{where}: info must be a LetterboxInfo, got {type(info).__name__}")
    try:
        return _native.decode_yolo(raw, int(layout), conf, **info._box_map(), num_classes=int(num_classes or 0),
                                   classes=_class_filter(classes, where))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _check_boxes(xyxy: object, score: object, class_id: object, where: str) -> None:
    for name, value, dtype, tail in (("xyxy", xyxy, np.float32, (4,)), ("score", score, np.float32, ()),
                                     ("class_id", class_id, np.int32, ())):
        if value is None and name == "class_id":
            continue
        if not isinstance(value, np.ndarray):
            raise InputError(f"{where}: {name} must be a numpy array, got {type(value).__name__}")
        if value.dtype != dtype:
            raise InputError(f"{where}: {name} must be {np.dtype(dtype).name}, got {value.dtype}")
        if value.ndim != 1 + len(tail) or value.shape[1:] != tail or value.shape[0] != len(xyxy):  # type: ignore[arg-type]
            want = "(N" + "".join(f", {d}" for d in tail) + ")"
            raise InputError(f"{where}: {name} must be {want} with N = {len(xyxy)}, got shape {value.shape}")  # type: ignore[arg-type]
        if not value.flags.c_contiguous:
            raise InputError(f"{where}: {name} must be C-contiguous; pass np.ascontiguousarray({name})")
    if not np.isfinite(xyxy).all():  # type: ignore[arg-type]
        raise InputError(f"{where}: xyxy has NaN or inf at row {int(np.flatnonzero(~np.isfinite(xyxy).all(1))[0])}")  # type: ignore[arg-type, union-attr]
    if not np.isfinite(score).all():  # type: ignore[arg-type]
        raise InputError(f"{where}: score has NaN or inf at index {int(np.flatnonzero(~np.isfinite(score))[0])}")  # type: ignore[arg-type]
    inverted = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])  # type: ignore[index]
    if inverted.any():
        raise InputError(f"{where}: xyxy row {int(np.flatnonzero(inverted)[0])} has x2 < x1 or y2 < y1")


def nms(xyxy: np.ndarray, score: np.ndarray, class_id: Optional[np.ndarray], iou_threshold: float = 0.45,
        max_det: int = 300) -> np.ndarray:
    """Greedy non-maximum suppression; per class unless ``class_id`` is None.

    Boxes are visited by descending score (ties: lower index first); a kept box suppresses later boxes of
    its class whose IoU with it is strictly above ``iou_threshold``. Zero-area boxes have IoU 0 with
    everything. Classes are handled by grouping, not by offsetting coordinates.

    Args:
        xyxy: (N, 4) float32, x1 <= x2 and y1 <= y2.
        score: (N,) float32.
        class_id: (N,) int32, or None for class-agnostic suppression.
        iou_threshold: in [0, 1].
        max_det: keep at most this many (>= 1).

    Returns:
        (K,) int64 indices of the kept boxes, best first.

    Raises:
        InputError: wrong dtype/shape/strides, NaN/inf, inverted boxes, or a parameter out of range.

    Example:
        >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
        >>> nms(boxes, np.array([0.5, 0.9, 0.7], np.float32), None, 0.5).tolist()
        [1, 2]
    """
    where = "nms"
    _check_boxes(xyxy, score, class_id, where)
    iou = _check_unit("iou_threshold", iou_threshold, where)
    if not isinstance(max_det, (int, np.integer)) or max_det < 1:
        raise InputError(f"{where}: max_det must be an integer >= 1, got {max_det!r}")
    return _native.nms(xyxy, score, class_id, iou, int(max_det))


def postprocess(raw: np.ndarray, layout: YoloLayout, conf_threshold: float, info: LetterboxInfo,
                iou_threshold: float = 0.45, max_det: int = 300, *, agnostic: bool = False,
                classes: Optional[Sequence[int]] = None, num_classes: Optional[int] = None) -> Boxes:
    """:func:`decode_yolo` then :func:`nms` in one native call (the per-frame path).

    V5/V8 outputs are suppressed per class (or across classes with ``agnostic``); E2E outputs, already
    suppressed, are only ordered by score. Same results as calling the two functions in turn.

    Args:
        raw, layout, conf_threshold, info, num_classes, classes: as in :func:`decode_yolo`.
        iou_threshold, max_det: as in :func:`nms`.
        agnostic: suppress across classes.

    Returns:
        (xyxy (K, 4) float32, score (K,) float32, class_id (K,) int32), best first, K <= max_det.

    Raises:
        InputError: as :func:`decode_yolo` and :func:`nms`.
    """
    where = "postprocess"
    layout = _layout(layout, where)
    raw = _check_raw(raw, layout, num_classes, where)
    conf = _check_unit("conf_threshold", conf_threshold, where)
    iou = _check_unit("iou_threshold", iou_threshold, where)
    if not isinstance(max_det, (int, np.integer)) or max_det < 1:
        raise InputError(f"{where}: max_det must be an integer >= 1, got {max_det!r}")
    if not isinstance(info, LetterboxInfo):
        raise InputError(f"{where}: info must be a LetterboxInfo, got {type(info).__name__}")
    try:
        return _native.postprocess(raw, int(layout), conf, **info._box_map(), num_classes=int(num_classes or 0),
                                   classes=_class_filter(classes, where), iou_threshold=iou,
                                   max_det=int(max_det), agnostic=bool(agnostic))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def postprocess_prepared(raw: np.ndarray, layout: YoloLayout, conf_threshold: float, info: LetterboxInfo,
                         iou_threshold: float, max_det: int, agnostic: bool, class_ids: Optional[np.ndarray],
                         num_classes: int) -> Boxes:
    """:func:`postprocess` for a caller that prepared its arguments once (a detector, on every frame).

    ``class_ids`` is the (K,) int32 array of the classes to keep (None = all), ``num_classes`` the model's
    class count. The kernel checks ``raw`` and every argument and raises :class:`InputError` with its own
    message (the same as :func:`postprocess` gives for a bad model output); only the Python-level checks
    are left out, which cost several times the kernel's work when the model has just evicted the CPU's
    caches.

    Raises:
        InputError: as :func:`postprocess`.
    """
    try:
        return _native.postprocess(raw, layout, conf_threshold, *info.box_args, num_classes, class_ids,
                                   iou_threshold, max_det, agnostic)
    except ValueError as exc:
        raise InputError(str(exc)) from None
