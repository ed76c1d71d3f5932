"""Face detection with MTCNN's cascade (PNet -> RNet -> ONet) on ONNX Runtime, fp32 or int8 models.

The cascade of Zhang et al. (2016), as facenet-pytorch's ``detect_face`` runs it: an image pyramid
(scales ``12 / min_face_px * factor^i`` down to a 12-pixel side) goes through the fully convolutional
PNet, whose 12x12 windows (stride 2) above ``thresholds[0]`` become candidate boxes (NMS 0.5 per scale,
0.7 across scales, box regression, squared); RNet rescores 24x24 crops of them (``thresholds[1]``,
NMS 0.7, regression, squared); ONet rescores 48x48 crops (``thresholds[2]``), regresses boxes and five
landmarks, and a last NMS 0.7 leaves the faces. Crops are resized with area interpolation; pixels
are scaled as ``(p - 127.5) / 128``.

The ONNX models come from ``edge-runtime convert mtcnn`` (inputs ``image`` (N, 3, H, W) float32 RGB;
outputs ``reg``/``prob`` and ONet's ``landmarks``).

Shape legend: frames are (H, W, 3) uint8 BGR (or RGB with ``rgb=True``); N faces; ``xyxy`` (N, 4)
float32 source pixels; ``score`` (N,) float32; ``landmarks`` (N, 5, 2) float32 (x, y): left eye,
right eye, nose, left mouth corner, right mouth corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import InputError, ModelFormatError
from .detections import Detections
from .onnx_check import check_onnx_file

__all__ = ["Faces", "FaceDetector", "crop_patches"]

PathLike = Union[str, Path]
_MAX_CANDIDATES = 1000  # boxes passed on to a refinement stage, best first (bounds the work per frame)


@dataclass(frozen=True)
class Faces:
    """Faces found in one frame: boxes and scores (class 0 = face) and five landmarks each."""

    detections: Detections
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.detections)


def _session(path: PathLike, threads: int):
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"FaceDetector: model {str(path)!r} not found; run `edge-runtime convert mtcnn`")
    check_onnx_file(path)  # before onnxruntime: no read outside the model's folder, a known opset
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own exception types
        raise ModelFormatError(f"FaceDetector: {str(path)!r} cannot be loaded by ONNX Runtime: "
                               f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from exc


def _nms(xyxy: np.ndarray, score: np.ndarray, iou: float) -> np.ndarray:
    from .ops import nms

    if len(score) == 0:
        return np.zeros(0, np.int64)
    return nms(np.ascontiguousarray(xyxy, np.float32), np.ascontiguousarray(score, np.float32), None, iou,
               max_det=len(score))


def _square(xyxy: np.ndarray) -> np.ndarray:
    w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    side = np.maximum(w, h)
    x1 = xyxy[:, 0] + w * 0.5 - side * 0.5
    y1 = xyxy[:, 1] + h * 0.5 - side * 0.5
    return np.stack([x1, y1, x1 + side, y1 + side], axis=1)


def _regress(xyxy: np.ndarray, reg: np.ndarray) -> np.ndarray:
    w, h = xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]
    out = xyxy + reg * np.stack([w, h, w, h], axis=1)
    return np.concatenate([np.minimum(out[:, :2], out[:, 2:]), np.maximum(out[:, :2], out[:, 2:])], axis=1)


def crop_patches(image: np.ndarray, xyxy: np.ndarray, size: int) -> np.ndarray:
    """(N, 3, size, size) float32 normalized crops; outside the image is zero (as padded in MTCNN)."""
    import cv2

    h, w = image.shape[:2]
    out = np.zeros((len(xyxy), 3, size, size), np.float32)
    for i, box in enumerate(np.round(xyxy).astype(np.int64)):
        x1, y1, x2, y2 = (int(v) for v in box)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue
        patch = np.zeros((y2 - y1, x2 - x1, 3), np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
        resized = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
        out[i] = ((resized.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)
    return out


class FaceDetector:
    """MTCNN face detector over three ONNX models.

    Args:
        pnet, rnet, onet: paths to the exported (fp32 or quantized) models.
        min_face_px: smallest face side searched, in source pixels (>= 12).
        thresholds: face-probability thresholds of the three stages, each in (0, 1).
        factor: pyramid scale step, in (0, 1).
        threads: ONNX Runtime intra-op threads per model.

    Raises:
        ModelFormatError: a model is missing or does not load. InputError: a parameter out of range.

    Example:
        >>> det = FaceDetector("pnet.onnx", "rnet.onnx", "onet.onnx")            # doctest: +SKIP
        >>> faces = det.detect(cv2.imread("astronaut.png"))
        >>> faces.detections.xyxy, faces.landmarks
    """

    def __init__(self, pnet: PathLike, rnet: PathLike, onet: PathLike, *, min_face_px: float = 20.0,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), factor: float = 0.709, threads: int = 1):
        if not (isinstance(min_face_px, (int, float)) and min_face_px >= 12):
            raise InputError(f"FaceDetector: min_face_px must be >= 12 (PNet's window), got {min_face_px!r}")
        if len(thresholds) != 3 or not all(0.0 < t < 1.0 for t in thresholds):
            raise InputError(f"FaceDetector: thresholds must be three numbers in (0, 1), got {tuple(thresholds)}")
        if not 0.0 < factor < 1.0:
            raise InputError(f"FaceDetector: factor must be in (0, 1), got {factor!r}")
        if not isinstance(threads, int) or threads < 1:
            raise InputError(f"FaceDetector: threads must be an integer >= 1, got {threads!r}")
        self.min_face_px, self.thresholds, self.factor = float(min_face_px), tuple(thresholds), float(factor)
        self._nets = {"pnet": _session(pnet, threads), "rnet": _session(rnet, threads), "onet": _session(onet, threads)}
        for name, sess in self._nets.items():
            outs = {o.name for o in sess.get_outputs()}
            want = {"reg", "prob"} | ({"landmarks"} if name == "onet" else set())
            if [i.name for i in sess.get_inputs()] != ["image"] or not want <= outs:
                raise ModelFormatError(f"FaceDetector: {name} must take 'image' and return {sorted(want)}; "
                                       f"got inputs {[i.name for i in sess.get_inputs()]}, outputs {sorted(outs)}")

    def _run(self, name: str, x: np.ndarray) -> Dict[str, np.ndarray]:
        sess = self._nets[name]
        outs = sess.run(None, {"image": x})
        return {o.name: v for o, v in zip(sess.get_outputs(), outs)}

    def scales(self, height: int, width: int) -> List[float]:
        """The pyramid's scales for a frame of this size (empty when smaller than ``min_face_px``)."""
        m = 12.0 / self.min_face_px
        side = min(height, width) * m
        out, s = [], m
        while side >= 12.0:
            out.append(s)
            s *= self.factor
            side *= self.factor
        return out

    def _stage1(self, rgb: np.ndarray, record: Optional[dict]) -> Tuple[np.ndarray, np.ndarray]:
        import cv2

        h, w = rgb.shape[:2]
        boxes, scores = [], []
        for s in self.scales(h, w):
            hs, ws = int(math.ceil(h * s)), int(math.ceil(w * s))
            level = cv2.resize(rgb, (ws, hs), interpolation=cv2.INTER_AREA)
            x = ((level.astype(np.float32) - 127.5) * 0.0078125).transpose(2, 0, 1)[None]
            x = np.ascontiguousarray(x)
            if record is not None:
                record.setdefault("pnet", []).append(x)
            out = self._run("pnet", x)
            prob, reg = out["prob"][0, 1], out["reg"][0]
            ys, xs = np.nonzero(prob >= self.thresholds[0])
            if len(ys) == 0:
                continue
            cell = np.stack([xs, ys], axis=1).astype(np.float32)
            q1, q2 = np.floor((2 * cell + 1) / s), np.floor((2 * cell + 12) / s)
            b = np.concatenate([q1, q2], axis=1)
            sc = prob[ys, xs]
            keep = _nms(b, sc, 0.5)
            boxes.append(_regress(b[keep], reg[:, ys, xs].T[keep]))
            scores.append(sc[keep])
        if not boxes:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        b, sc = np.concatenate(boxes), np.concatenate(scores)
        # PNet's regression is applied before the cross-scale NMS here (facenet applies it after); the
        # squared boxes feed RNet either way.
        keep = _nms(b, sc, 0.7)[:_MAX_CANDIDATES]
        return _square(b[keep]), sc[keep]

    def _refine(self, name: str, rgb: np.ndarray, boxes: np.ndarray, size: int, threshold: float,
                record: Optional[dict]):
        crops = crop_patches(rgb, boxes, size)
        if record is not None:
            record.setdefault(name, []).append(crops)
        out = self._run(name, crops)
        score = out["prob"][:, 1]
        ok = score >= threshold
        return boxes[ok], score[ok], out["reg"][ok], (out["landmarks"][ok] if "landmarks" in out else None)

    def detect(self, frame: np.ndarray, *, rgb: bool = False, _record: Optional[dict] = None) -> Faces:
        """Faces in one frame, best first.

        Args:
            frame: (H, W, 3) uint8, BGR unless ``rgb``.
            rgb: the frame is already RGB.

        Returns:
            :class:`Faces` (boxes clipped to the frame).

        Raises:
            InputError: wrong dtype or shape.
        """
        import cv2

        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise InputError(f"FaceDetector.detect: expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        image = np.ascontiguousarray(frame if rgb else cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        h, w = image.shape[:2]
        empty = Faces(Detections.empty(), np.zeros((0, 5, 2), np.float32))
        boxes, _ = self._stage1(image, _record)
        if len(boxes) == 0:
            return empty
        if _record is not None:
            _record.setdefault("stage1", []).append(boxes.copy())
        boxes, score, reg, _ = self._refine("rnet", image, boxes, 24, self.thresholds[1], _record)
        keep = _nms(boxes, score, 0.7)
        if len(keep) == 0:
            return empty
        boxes = _square(_regress(boxes[keep], reg[keep]))[:_MAX_CANDIDATES]
        boxes, score, reg, marks = self._refine("onet", image, boxes, 48, self.thresholds[2], _record)
        if len(boxes) == 0:
            return empty
        wh = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
        points = np.stack([marks[:, :5], marks[:, 5:]], axis=2) * wh[:, None, :] + boxes[:, None, :2]
        boxes = _regress(boxes, reg)
        boxes = np.stack([np.clip(boxes[:, 0], 0, w), np.clip(boxes[:, 1], 0, h),
                          np.clip(boxes[:, 2], 0, w), np.clip(boxes[:, 3], 0, h)], axis=1)
        boxes[:, 2] = np.maximum(boxes[:, 2], boxes[:, 0])
        boxes[:, 3] = np.maximum(boxes[:, 3], boxes[:, 1])
        keep = _nms(boxes, score, 0.7)
        det = Detections(boxes[keep].astype(np.float32), score[keep].astype(np.float32),
                         np.zeros(len(keep), np.int32))
        return Faces(det, points[keep].astype(np.float32))
