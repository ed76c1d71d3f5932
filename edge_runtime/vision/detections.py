"""The one validated detections type that flows from detector to tracker, counters and sinks.

Shape legend: N detections; ``xyxy`` is (N, 4) float32 in source-image pixels (x1, y1, x2, y2) with
x1 <= x2 and y1 <= y2; ``score`` (N,) float32 in [0, 1]; ``class_id`` (N,) int32 >= 0; ``track_id`` (N,)
int32: >= 0 a confirmed track's id, -1 no track, -2 - k a tentative track that will be ``k`` if confirmed
(see ``ByteTracker``); None before tracking. Anything negative is "not a confirmed track".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import InputError

__all__ = ["Detections"]

Index = Union[int, slice, Sequence[int], np.ndarray]


def _as_array(name: str, value: object, dtype: type, shape_tail: tuple) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 1 + len(shape_tail) or array.shape[1:] != shape_tail:
        want = "(N" + "".join(f", {d}" for d in shape_tail) + ")"
        raise InputError(f"Detections.{name}: expected shape {want}, got {array.shape}")
    if array.dtype != dtype:
        if array.size and not np.can_cast(array.dtype, dtype, casting="same_kind"):
            raise InputError(f"Detections.{name}: expected {np.dtype(dtype).name}, got {array.dtype}")
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes, scores, classes and (after tracking) track ids of one frame.

    Args:
        xyxy: (N, 4) float32 boxes in source-image pixels.
        score: (N,) float32 confidences in [0, 1].
        class_id: (N,) int32 class indices.
        track_id: (N,) int32 track ids (negative = not a confirmed track, see the module legend) or None
            before tracking.

    Raises:
        InputError: on a wrong shape or dtype, mismatched lengths, NaN/inf boxes or scores, inverted
            boxes, or negative class ids.

    Example:
        >>> d = Detections(np.array([[0, 0, 10, 20]], np.float32), np.array([0.9], np.float32),
        ...                np.array([0], np.int32))
        >>> len(d), d.area.tolist()
        (1, [200.0])
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    track_id: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        xyxy = _as_array("xyxy", self.xyxy, np.float32, (4,))
        score = _as_array("score", self.score, np.float32, ())
        class_id = _as_array("class_id", self.class_id, np.int32, ())
        n = xyxy.shape[0]
        if score.shape[0] != n or class_id.shape[0] != n:
            raise InputError(
                f"Detections: lengths differ: xyxy {n}, score {score.shape[0]}, class_id {class_id.shape[0]}"
            )
        if not np.isfinite(xyxy).all():
            raise InputError("Detections.xyxy: contains NaN or inf")
        if not np.isfinite(score).all():
            raise InputError("Detections.score: contains NaN or inf")
        if n and ((xyxy[:, 2] < xyxy[:, 0]).any() or (xyxy[:, 3] < xyxy[:, 1]).any()):
            raise InputError("Detections.xyxy: boxes must have x1 <= x2 and y1 <= y2")
        if n and (class_id < 0).any():
            raise InputError("Detections.class_id: must be >= 0")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "class_id", class_id)
        if self.track_id is not None:
            track_id = _as_array("track_id", self.track_id, np.int32, ())
            if track_id.shape[0] != n:
                raise InputError(f"Detections.track_id: length {track_id.shape[0]}, expected {n}")
            object.__setattr__(self, "track_id", track_id)

    @classmethod
    def _trusted(cls, xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray,
                 track_id: Optional[np.ndarray] = None) -> "Detections":
        """Wraps arrays that already meet every rule of the constructor (C-contiguous, right dtypes,
        shapes and values) without checking them again: for this package's own kernels, whose outputs
        are built from checked detections. Not for user data."""
        self = object.__new__(cls)
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "track_id", track_id)
        return self

    @classmethod
    def empty(cls, with_track_id: bool = False) -> "Detections":
        """No detections (N = 0)."""
        return cls(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.float32),
            np.zeros((0,), np.int32),
            np.zeros((0,), np.int32) if with_track_id else None,
        )

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: Index) -> "Detections":
        """Select detections by integer, slice, index array or boolean mask; always returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        xyxy = self.xyxy[index]
        if xyxy.ndim != 2:  # an index that does not select rows (a tuple, None, ...): let the checks say so
            return Detections(xyxy, self.score[index], self.class_id[index],
                              None if self.track_id is None else self.track_id[index])
        # Rows of checked detections meet every rule already; only contiguity may need restoring.
        return Detections._trusted(
            np.ascontiguousarray(xyxy), np.ascontiguousarray(self.score[index]),
            np.ascontiguousarray(self.class_id[index]),
            None if self.track_id is None else np.ascontiguousarray(self.track_id[index]))

    def with_track_id(self, track_id: np.ndarray) -> "Detections":
        """The same detections carrying ``track_id`` (N,) int32."""
        return Detections(self.xyxy, self.score, self.class_id, track_id)

    @property
    def area(self) -> np.ndarray:
        """(N,) float32 box areas in square pixels."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])

    def anchor(self, where: str = "bottom_center") -> np.ndarray:
        """(N, 2) float32 anchor points: 'center' or 'bottom_center' (the feet of a walking person)."""
        if where not in ("center", "bottom_center"):
            raise InputError(f"Detections.anchor: where must be 'center' or 'bottom_center', got {where!r}")
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) * 0.5
        y = (self.xyxy[:, 1] + self.xyxy[:, 3]) * 0.5 if where == "center" else self.xyxy[:, 3]
        return np.stack([x, y], axis=1).astype(np.float32, copy=False)

    def counts_by_class(self, num_classes: Optional[int] = None) -> np.ndarray:
        """(C,) int64 number of detections per class id."""
        size = num_classes if num_classes is not None else (int(self.class_id.max()) + 1 if len(self) else 0)
        return np.bincount(self.class_id, minlength=size)[: size if num_classes is not None else None]

    def __repr__(self) -> str:
        tracked = "" if self.track_id is None else ", tracked"
        return f"Detections(n={len(self)}{tracked})"
