"""YOLO object detector on ONNX Runtime with the native pre/post-processing path.

Shape legend: frames are (H, W, 3) uint8 BGR (as OpenCV delivers them); the model input is
(1, 3, h, w) float32 in [0, 1] RGB (or uint8 for uint8-input models); results are :class:`Detections`
in source-frame pixels.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import BackendUnavailableError, InputError, ModelFormatError
from . import ops
from .detections import Detections
from .model_meta import _MAX_CLASSES, ModelMeta, parse_model_meta
from .onnx_check import check_onnx_file

log = logging.getLogger(__name__)

__all__ = ["Detector", "DetectorTimings", "set_spinning"]

_DEFAULT_IMGSZ = 640
_MIN_SIDE, _MAX_SIDE = 16, 8192  # input height / width in pixels (as the metadata's imgsz)
_MAX_BOXES = 1 << 22  # candidate boxes per output (8400 at 640x640; ~1.4 M at 8192x8192, stride 8)


@dataclass
class DetectorTimings:
    """Milliseconds spent in the last call, by stage."""

    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def overhead_ms(self) -> float:
        """Everything that is not the model itself."""
        return self.preprocess_ms + self.postprocess_ms


def _with_fast_dfl(path: Path, model_bytes: Optional[bytes]) -> Optional[bytes]:
    """The model with its DFL softmax on every core (:mod:`.dfl_rewrite`), or None to load it as it is:
    no such head, the ``onnx`` package missing, or a file that cannot be read for rewriting (onnxruntime
    then reports what is wrong with it)."""
    from .dfl_rewrite import rewrite_dfl

    try:
        return rewrite_dfl(path if model_bytes is None else model_bytes, where=str(path))
    except (ModelFormatError, BackendUnavailableError, OSError) as exc:
        log.debug("%s: DFL head left as exported: %s", path.name, exc)
        return None
    except Exception as exc:  # a malformed tensor inside the pattern: the optimisation is skipped, and
        # loading the file as it is reports what is wrong with it
        log.debug("%s: DFL head left as exported (%s: %s)", path.name, type(exc).__name__, exc)
        return None


def set_spinning(options, spin: bool) -> None:
    """Set how an onnxruntime session's worker threads wait (on its ``SessionOptions``).

    With ``spin`` they spin between the operators of a call, so each operator starts without waking a
    sleeping worker, and sleep once the call returns (``session.force_spinning_stop``) instead of spinning
    on, so that what runs between two calls (letterbox, tracker, the camera thread, another session) has
    the cores. Without it they sleep between operators too (for a co-scheduled LLM).
    """
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    if spin:
        options.add_session_config_entry("session.force_spinning_stop", "1")


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), 1..256."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, min(n, 256))


def _load_session(path: Path, threads: Optional[int], spin: bool, model_bytes: Optional[bytes] = None,
                  cacheable: bool = False):
    """An onnxruntime session on ``path`` (or on ``model_bytes``, a rewritten copy of it). With ``cacheable``
    (the file as given, no external data), the rewritten model is taken from, or kept in, the on-disk cache
    (:mod:`.rewrite_cache`)."""
    import onnxruntime as ort

    from . import rewrite_cache

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    set_spinning(options, spin)
    options.log_severity_level = 3
    source = str(path) if model_bytes is None else model_bytes
    as_is = False
    if cacheable and model_bytes is None:
        cached, as_is = rewrite_cache.lookup(path)
        if cached is not None:
            try:
                return ort.InferenceSession(str(cached), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # our own file, damaged: rebuilt below
                log.warning("%s: the cached rewritten model did not load (%s); rewriting it", path.name,
                            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                rewrite_cache.discard(cached)
    faster = None if as_is else _with_fast_dfl(path, model_bytes)
    if cacheable and model_bytes is None and not as_is:
        rewrite_cache.store(path, faster)
    if faster is not None:
        try:
            return ort.InferenceSession(faster, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # the rewrite is an optimisation: the model as given still runs
            log.warning("%s: the rewritten DFL head did not load (%s); running the model as exported",
                        path.name, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own pybind11 exception types; wrap them all here
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelFormatError(f"{path}: not a loadable ONNX model: {first_line}") from exc


class Detector:
    """Detect objects in BGR frames with a YOLO ONNX model (YOLOv5/v7, YOLOv8/11, end-to-end exports).

    Args:
        model_path: the ``.onnx`` file.
        threads: onnxruntime intra-op threads (None = onnxruntime's default, all physical cores); the
            letterbox splits its rows over as many (None: the CPUs this process may run on).
        conf_threshold: minimum score in [0, 1] to keep a box.
        iou_threshold: NMS IoU threshold in [0, 1].
        max_det: cap on detections per frame after NMS.
        classes: keep only these class ids (None = all).
        agnostic_nms: suppress across classes (True) or per class (False).
        labels: display names replacing the model's class names, one per class in id order.
        spin: let onnxruntime's worker threads spin between the operators of a call (its own default):
            each operator starts without waking a sleeping worker, which matters most to models of many
            short operators (an int8 QDQ graph). The workers sleep once the call returns (unlike
            onnxruntime's default, which spins on for a while and takes the cores from what runs between
            calls). A job built from a config spins unless chat is configured (``model.spin``).
        rect: rectangular inference: letterbox each frame only up to a multiple of the stride (a 4:3
            frame into 640x480 instead of 640x640, a quarter less work per inference), as Ultralytics
            does in PyTorch. Off by default: the built-in detector was trained on square letterboxes
            and finds slightly fewer people this way (see README's counting results for the measured
            cost); on a board where the detector is the bottleneck the third more frames can pay for
            it. A model with a dynamic input simply takes the smaller tensor; a fixed-size YOLOv8 /
            YOLO11 export is re-specialised in memory for the frame size on its first frame
            (:mod:`~edge_runtime.vision.rect_model`, about a second, not counted in ``timings``). A
            model that cannot be (another head, the ``onnx`` package missing) runs at its own size,
            and the reason is logged once.
        cache_rewrite: keep the model with its rewritten DFL head in the on-disk cache and load it from there
            next time (:mod:`~edge_runtime.vision.rewrite_cache`): about 80 MiB less peak memory for the
            built-in detector on every start after the first. Jobs built from a config do (their model is
            loaded at every start); off by default, so that trying models leaves nothing behind.

    Raises:
        ModelFormatError: the file is missing, not ONNX, truncated, of an unsupported opset, names external
            data outside its folder (checked before onnxruntime reads anything, see
            :func:`~edge_runtime.vision.onnx_check.check_onnx_file`), declares input sides outside
            16..8192 pixels, a non-float32 output or more than 2^22 boxes, or is not a detector this class
            understands.
        InputError: a threshold or option is out of range.

    Example:
        >>> from edge_runtime.assets import ensure
        >>> det = Detector(ensure("yolov8s-person"), threads=2)
        >>> frame = cv2.imread("walkway.jpg")                   # doctest: +SKIP
        >>> people = det(frame)                                 # doctest: +SKIP
        >>> people.counts_by_class(len(det.class_names))        # doctest: +SKIP
    """

    def __init__(self, model_path: Union[str, os.PathLike], *, threads: Optional[int] = None,
                 conf_threshold: float = 0.25, iou_threshold: float = 0.45, max_det: int = 300,
                 classes: Optional[Sequence[int]] = None, agnostic_nms: bool = False, spin: bool = False,
                 labels: Optional[Sequence[str]] = None, rect: bool = False, cache_rewrite: bool = False):
        path = Path(model_path)
        if not path.is_file():
            raise ModelFormatError(f"{path}: no such model file (expected a YOLO detector .onnx)")
        if not 0.0 <= conf_threshold <= 1.0:
            raise InputError(f"conf_threshold must be in [0, 1], got {conf_threshold}")
        if not 0.0 <= iou_threshold <= 1.0:
            raise InputError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
        if max_det < 1:
            raise InputError(f"max_det must be >= 1, got {max_det}")
        if threads is not None and threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        self.path = path
        self.threads = threads
        self._letterbox_threads = min(int(threads), 256) if threads is not None else _usable_cpus()
        self.conf_threshold = float(conf_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_det = int(max_det)
        self.agnostic_nms = bool(agnostic_nms)
        self.rect = bool(rect)
        self.spin = bool(spin)
        self.timings = DetectorTimings()
        summary = check_onnx_file(path)  # before onnxruntime: no read outside the model's folder, a known opset
        # External tensors' paths are relative to the model's folder: such a model is rewritten in memory.
        self.cache_rewrite = bool(cache_rewrite)
        self._cacheable = self.cache_rewrite and not summary.external_files
        self._session = _load_session(path, threads, spin, cacheable=self._cacheable)
        try:  # onnxruntime hands back the file's strings as Python str: bytes that are not UTF-8 raise
            props = self._session.get_modelmeta().custom_metadata_map
            self._io = (self._session.get_inputs(), self._session.get_outputs())
            for arg in (*self._io[0], *self._io[1]):  # decoded on access: decode them all here, once
                arg.name, arg.shape, arg.type
        except UnicodeDecodeError as exc:
            raise ModelFormatError(f"{path}: metadata or input/output names are not UTF-8 ({exc.reason} at "
                                   f"byte {exc.start})") from None
        self.meta: ModelMeta = parse_model_meta(path, props)
        if self.meta.task not in (None, "detect"):
            raise ModelFormatError(f"{path}: model task is {self.meta.task!r}, expected 'detect'")
        self._bind_io()
        if labels is not None:
            if len(labels) != len(self.class_names) or not all(isinstance(x, str) and x for x in labels):
                raise InputError(f"labels: expected {len(self.class_names)} non-empty names (the model's classes "
                                 f"are {list(self.class_names.values())}), got {list(labels)}")
            self.class_names = dict(enumerate(labels))
        self._classes = None if classes is None else sorted({int(c) for c in classes})
        if self._classes is not None and not all(0 <= c < len(self.class_names) for c in self._classes):
            raise InputError(f"classes must be ids in 0..{len(self.class_names) - 1}, got {list(classes)}")
        self._class_ids = None if self._classes is None else np.array(self._classes, np.int32)
        self._num_classes = len(self.class_names)

    # -- model inspection -------------------------------------------------------------------------

    def _bind_io(self) -> None:
        inputs, outputs = self._io
        if len(inputs) != 1:
            raise ModelFormatError(f"{self.path}: expected one image input, found {len(inputs)}: "
                                   f"{[i.name for i in inputs]}")
        image = inputs[0]
        dtypes = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}
        if image.type not in dtypes:
            raise ModelFormatError(f"{self.path}: input {image.name!r} is {image.type}, expected float32 or uint8")
        shape = list(image.shape)
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise ModelFormatError(f"{self.path}: input {image.name!r} has shape {shape}, expected (1, 3, H, W)")
        if isinstance(shape[0], int) and shape[0] != 1:
            raise ModelFormatError(f"{self.path}: input batch is {shape[0]}, expected 1 (or dynamic)")
        h, w = shape[2], shape[3]
        if not (isinstance(h, int) and isinstance(w, int)):
            h, w = self.meta.imgsz_hw or (_DEFAULT_IMGSZ, _DEFAULT_IMGSZ)
        if not (_MIN_SIDE <= h <= _MAX_SIDE and _MIN_SIDE <= w <= _MAX_SIDE):
            raise ModelFormatError(f"{self.path}: input {image.name!r} is {h}x{w} pixels, expected "
                                   f"{_MIN_SIDE}..{_MAX_SIDE} on each side")
        self.input_hw = (int(h), int(w))  # the tensor the session takes now (smaller under rect)
        self.model_hw = self.input_hw  # the size the model was exported for: the letterbox target
        self._static_input = isinstance(shape[2], int) and isinstance(shape[3], int)
        self._input_name = image.name
        self._input_dtype = dtypes[image.type]
        self._input = np.zeros((1, 3, *self.input_hw), self._input_dtype)
        self._padded_for: Optional[Tuple[int, int]] = None  # the frame size whose padding _input holds
        self._info: Optional[ops.LetterboxInfo] = None  # that frame size's letterbox geometry
        self._fitted_for: Optional[Tuple[int, int]] = None  # the frame size the session was chosen for
        self._rect_refused: Optional[str] = None  # why this model cannot run rectangular (logged once)
        if not outputs:
            raise ModelFormatError(f"{self.path}: model has no outputs")
        out = outputs[0]
        self._output_name = out.name
        if out.type != "tensor(float)":
            raise ModelFormatError(f"{self.path}: output {out.name!r} is {out.type}, expected float32 boxes")
        out_shape = tuple(d if isinstance(d, int) else -1 for d in out.shape)
        if any(d == 0 or d < -1 for d in out_shape) or any(d > _MAX_BOXES for d in out_shape):
            raise ModelFormatError(f"{self.path}: output {out.name!r} has shape {list(out.shape)}; expected "
                                   f"dimensions 1..{_MAX_BOXES} (or dynamic)")
        num_classes = len(self.meta.names) if self.meta.names else None
        self.layout = ops.detect_layout(out_shape, num_classes, self.meta.end2end, path=self.path)
        if num_classes is None:
            num_classes = ops.infer_num_classes(out_shape, self.layout, path=self.path)
            if num_classes > _MAX_CLASSES:
                raise ModelFormatError(f"{self.path}: output shape {list(out.shape)} implies {num_classes} classes, "
                                       f"at most {_MAX_CLASSES}")
        self.class_names: Dict[int, str] = self.meta.names or {i: f"class_{i}" for i in range(num_classes)}
        self.stride = self.meta.stride or 32

    # -- rectangular inference ----------------------------------------------------------------------

    def _fit_input(self, frame_hw: Tuple[int, int]) -> None:
        """Choose the input tensor (and, for a fixed-size model, the session) for frames of this size."""
        self._fitted_for = frame_hw
        if not self.rect or self.layout is not ops.YoloLayout.V8 or self._rect_refused is not None:
            return
        target = ops.letterbox_geometry(frame_hw, self.model_hw, auto=True, stride=self.stride).out_hw
        if target == self.input_hw:
            return
        if self._static_input and target == self.model_hw:  # e.g. square frames after 4:3 ones
            self._use_session(self._load_own_size(), target)
        elif self._static_input:
            from .rect_model import respecialise

            try:
                model_bytes = respecialise(self.path.read_bytes(), target, where=str(self.path))
                session = _load_session(self.path, self.threads, self.spin, model_bytes)
            except (ModelFormatError, ImportError, OSError) as exc:
                self._rect_refused = str(exc)
                log.info("%s: runs at its own %dx%d input (no rectangular inference): %s", self.path.name,
                         *self.model_hw, exc)
                if self.input_hw != self.model_hw:
                    self._use_session(self._load_own_size(), self.model_hw)
                return
            self._use_session(session, target)
        else:
            self._use_session(self._session, target)
        log.info("%s: %dx%d frames run at %dx%d (rectangular inference; the model's own size is %dx%d)",
                 self.path.name, frame_hw[0], frame_hw[1], target[0], target[1], *self.model_hw)

    @property
    def rect_refused(self) -> Optional[str]:
        """Why this model runs at its own size although ``rect`` was asked for (None if it does not)."""
        return self._rect_refused

    def _load_own_size(self):
        return _load_session(self.path, self.threads, self.spin, cacheable=self._cacheable)

    def _use_session(self, session, input_hw: Tuple[int, int]) -> None:
        self._session = session
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self._input = np.zeros((1, 3, *self.input_hw), self._input_dtype)
        self._padded_for = None

    # -- inference --------------------------------------------------------------------------------

    def _check_frame(self, frame: np.ndarray) -> np.ndarray:
        if not isinstance(frame, np.ndarray):
            raise InputError(f"frame must be a numpy array, got {type(frame).__name__}")
        if frame.dtype != np.uint8:
            raise InputError(f"frame must be uint8 BGR, got dtype {frame.dtype}")
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(f"frame must be (H, W, 3) BGR, got shape {frame.shape}")
        if frame.shape[0] < 1 or frame.shape[1] < 1:
            raise InputError(f"frame is empty: shape {frame.shape}")
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)  # e.g. a cropped view; one copy, stated in the docs
        return frame

    def detect(self, frame: np.ndarray) -> Detections:
        """Detect objects in one (H, W, 3) uint8 BGR frame.

        Raises:
            InputError: the frame is not (H, W, 3) uint8, or the model produced non-finite values.
        """
        frame = self._check_frame(frame)
        size = frame.shape[:2]
        if size != self._fitted_for:
            self._fit_input(size)
        t0 = time.perf_counter()
        # The geometry and the padding depend on the frame size only: worked out, checked and written once
        # per size; every other frame goes straight to the kernels (which still check what they are given).
        if size != self._padded_for:
            self._info = ops.letterbox_into(frame, self._input, dst_hw=self.model_hw,
                                            auto=self.input_hw != self.model_hw, stride=self.stride,
                                            threads=self._letterbox_threads)
            self._padded_for = size
        else:
            ops.letterbox_again(frame, self._input, self._info, threads=self._letterbox_threads)
        info = self._info
        t1 = time.perf_counter()
        raw = self._session.run([self._output_name], {self._input_name: self._input})[0]
        t2 = time.perf_counter()
        xyxy, score, class_id = ops.postprocess_prepared(
            raw, self.layout, self.conf_threshold, info, self.iou_threshold, self.max_det, self.agnostic_nms,
            self._class_ids, self._num_classes)
        result = Detections._trusted(xyxy, score, class_id)  # finite, ordered, clipped by the kernel
        t3 = time.perf_counter()
        self.timings = DetectorTimings((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3)
        return result

    __call__ = detect

    def __repr__(self) -> str:
        return (f"Detector({self.path.name}, layout={self.layout.name}, input={self.input_hw}, "
                f"classes={len(self.class_names)}, threads={self.threads})")
