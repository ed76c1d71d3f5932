"""Sparse optical flow that moves tracked boxes across the frames the detector skips.

Shape legend: N boxes, ``boxes_xyxy`` (N, 4) float x1, y1, x2, y2 in source-image pixels; frames are
(H, W, 3) uint8 BGR (or (H, W) uint8 grey) as the camera gives them; a *flow frame* is the (h, w) uint8
grey copy made by :meth:`BoxFlow.grey`, ``h = round(H * scale)``, ``w = round(W * scale)``.

A board that runs the detector on every 3rd or 4th frame still receives every frame. Between two
detections :class:`BoxFlow` measures how each tracked box moved from one frame to the next, cheaply:

1. corners (Shi-Tomasi "good features") are picked inside the *inner* part of each box on the
   previous flow frame — the torso, since a person's box is half background at its sides and the legs
   move against the body;
2. they are followed into the current flow frame by pyramidal Lucas-Kanade
   (``cv2.calcOpticalFlowPyrLK``, one call for all boxes) and back again; a point whose round trip
   misses its start by more than ``fb_max_px`` (flow-frame pixels) is dropped (the forward-backward
   check of Kalal et al., "Forward-Backward Error", ICPR 2010);
3. a box moves by the median displacement of its surviving points (and, with ``estimate_scale``, is
   scaled about its centre by the median ratio of point-pair distances, as MedianFlow does). A box with
   fewer than ``min_points`` survivors (blank wall, box off the picture) is flagged invalid and
   returned unmoved, so the caller can fall back on its motion model.

Flow follows texture, not people: when someone walks past in front of a tracked person, or a car
drives past a standing one, the median may follow the occluder. A caller should check the motion
against its own expectation (see the ``gate`` of :meth:`ByteTracker.coast
<edge_runtime.vision.tracking.ByteTracker.coast>`).

Pure OpenCV + NumPy; nothing happens at import time beyond importing them.
"""

from __future__ import annotations

import math
from typing import Tuple

import cv2
import numpy as np

from ..errors import ConfigError, InputError

__all__ = ["BoxFlow"]


class BoxFlow:
    """Move boxes from one frame to the next by sparse optical flow.

    Args:
        scale: flow frames are the camera frames resized by this factor (area filter), in (0, 1]; 0.5
            quarters the pixels LK works on.
        max_points: at most this many corners per box.
        min_points: a box needs at least this many points surviving the forward-backward check to be
            moved (otherwise it is flagged invalid).
        fb_max_px: largest forward-backward round-trip error of a kept point, in flow-frame pixels.
        win_px: Lucas-Kanade window size (odd, flow-frame pixels).
        levels: pyramid levels above the base (0 = none); each doubles the largest motion LK can follow.
        inner_rel: (left, top, right, bottom) fractions of the box's width / height trimmed off before
            picking corners; the default keeps the central half across, from 10 % to 60 % of the height
            (the torso of a standing person).
        quality: Shi-Tomasi quality level, relative to the best corner in the box.
        min_distance_px: minimum distance between corners (flow-frame pixels).
        estimate_scale: also scale each box by the median ratio of distances between its point pairs.

    Raises:
        ConfigError: a setting out of range.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> prev = cv2.GaussianBlur((rng.random((120, 160)) * 255).astype(np.uint8), (5, 5), 1.0)
        >>> cur = np.roll(prev, 3, axis=1)                       # everything moves 3 px right
        >>> flow = BoxFlow(scale=1.0)
        >>> moved, ok = flow.move(flow.grey(prev), flow.grey(cur), np.array([[40, 30, 80, 100]], np.float32))
        >>> ok.tolist(), np.round(moved, 1).tolist()
        ([True], [[43.0, 30.0, 83.0, 100.0]])
    """

    def __init__(self, *, scale: float = 0.5, max_points: int = 24, min_points: int = 4, fb_max_px: float = 1.0,
                 win_px: int = 11, levels: int = 2,
                 inner_rel: Tuple[float, float, float, float] = (0.25, 0.1, 0.25, 0.4), quality: float = 0.01,
                 min_distance_px: float = 2.0, estimate_scale: bool = False) -> None:
        where = "BoxFlow"
        if isinstance(scale, bool) or not (isinstance(scale, (int, float)) and 0.0 < scale <= 1.0):
            raise ConfigError(f"{where}: scale must be in (0, 1], got {scale!r}")
        if int(max_points) != max_points or max_points < 1:
            raise ConfigError(f"{where}: max_points must be an integer >= 1, got {max_points!r}")
        if int(min_points) != min_points or not 1 <= min_points <= max_points:
            raise ConfigError(f"{where}: min_points must be an integer in [1, max_points], got {min_points!r}")
        if not (isinstance(fb_max_px, (int, float)) and math.isfinite(fb_max_px) and fb_max_px > 0):
            raise ConfigError(f"{where}: fb_max_px must be > 0, got {fb_max_px!r}")
        if int(win_px) != win_px or win_px < 3 or win_px % 2 == 0:
            raise ConfigError(f"{where}: win_px must be an odd integer >= 3, got {win_px!r}")
        if int(levels) != levels or not 0 <= levels <= 6:
            raise ConfigError(f"{where}: levels must be an integer in [0, 6], got {levels!r}")
        inner = tuple(float(v) for v in inner_rel)
        if len(inner) != 4 or not all(0.0 <= v < 1.0 for v in inner) or inner[0] + inner[2] >= 1 \
                or inner[1] + inner[3] >= 1:
            raise ConfigError(f"{where}: inner_rel must be 4 fractions in [0, 1) leaving part of the box, got "
                              f"{inner_rel!r}")
        if not 0.0 < quality < 1.0:
            raise ConfigError(f"{where}: quality must be in (0, 1), got {quality!r}")
        if not min_distance_px >= 0:
            raise ConfigError(f"{where}: min_distance_px must be >= 0, got {min_distance_px!r}")
        self.scale = float(scale)
        self.max_points = int(max_points)
        self.min_points = int(min_points)
        self.fb_max_px = float(fb_max_px)
        self.win_px = int(win_px)
        self.levels = int(levels)
        self.inner_rel = inner
        self.quality = float(quality)
        self.min_distance_px = float(min_distance_px)
        self.estimate_scale = bool(estimate_scale)
        self._criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)

    def grey(self, image: np.ndarray) -> np.ndarray:
        """The flow frame of a camera frame: (H, W, 3) BGR or (H, W) grey uint8 -> (h, w) uint8 grey at
        ``scale``. Make it once per frame and pass it to :meth:`move` as ``grey`` now and ``prev_grey``
        on the next frame."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise InputError(f"BoxFlow.grey: expected (H, W, 3) or (H, W) uint8, got {image.shape} {image.dtype}")
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        if self.scale == 1.0:
            return np.ascontiguousarray(grey)
        h, w = grey.shape
        return cv2.resize(grey, (max(1, round(w * self.scale)), max(1, round(h * self.scale))),
                          interpolation=cv2.INTER_AREA)

    def move(self, prev_grey: np.ndarray, grey: np.ndarray, boxes_xyxy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Move boxes seen on ``prev_grey`` to where they are on ``grey``.

        Args:
            prev_grey: the previous flow frame (from :meth:`grey`), (h, w) uint8.
            grey: the current flow frame, same shape.
            boxes_xyxy: (N, 4) boxes on the previous frame, source-image pixels.

        Returns:
            moved_xyxy (N, 4) float32 source-image pixels (= the input box where invalid) and valid (N,)
            bool (at least ``min_points`` points followed there and back).

        Raises:
            InputError: frames of different shapes or not 2-D uint8 (checked even for N = 0), or boxes
                not numeric, finite (N, 4) (an empty array of any shape is N = 0).
        """
        # Frames are checked even when there is no box, so a wrong frame fails on the first call.
        for name, frame in (("prev_grey", prev_grey), ("grey", grey)):
            if not isinstance(frame, np.ndarray) or frame.ndim != 2 or frame.dtype != np.uint8:
                found = (f"{frame.shape} {frame.dtype}" if isinstance(frame, np.ndarray)
                         else type(frame).__name__)
                raise InputError(f"BoxFlow.move: {name} must be a (h, w) uint8 flow frame from BoxFlow.grey, "
                                 f"got {found}")
        if prev_grey.shape != grey.shape:
            raise InputError(f"BoxFlow.move: frame shapes differ: prev_grey {prev_grey.shape} vs grey {grey.shape}")
        try:
            boxes = np.asarray(boxes_xyxy, np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(f"BoxFlow.move: boxes_xyxy must be a numeric (N, 4) array: {exc}") from None
        if boxes.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, bool)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise InputError(f"BoxFlow.move: boxes_xyxy must be (N, 4), got shape {boxes.shape}")
        if not np.isfinite(boxes).all():
            raise InputError(f"BoxFlow.move: boxes_xyxy must be finite, got NaN/inf in row(s) "
                             f"{np.nonzero(~np.isfinite(boxes).all(axis=1))[0].tolist()}")
        n = boxes.shape[0]
        moved = boxes.astype(np.float32)
        valid = np.zeros(n, bool)
        h_px, w_px = grey.shape

        # 1. Corners in the inner part of each box (flow-frame pixels), tagged with their box's row.
        small = boxes * self.scale
        bw, bh = small[:, 2] - small[:, 0], small[:, 3] - small[:, 1]
        left, top, right, bottom = self.inner_rel
        x1 = np.clip(np.floor(small[:, 0] + left * bw), 0, w_px).astype(int)
        y1 = np.clip(np.floor(small[:, 1] + top * bh), 0, h_px).astype(int)
        x2 = np.clip(np.ceil(small[:, 2] - right * bw), 0, w_px).astype(int)
        y2 = np.clip(np.ceil(small[:, 3] - bottom * bh), 0, h_px).astype(int)
        points, owners = [], []
        for i in range(n):
            if x2[i] - x1[i] < 3 or y2[i] - y1[i] < 3:
                continue
            found = cv2.goodFeaturesToTrack(prev_grey[y1[i]:y2[i], x1[i]:x2[i]], self.max_points, self.quality,
                                            self.min_distance_px, blockSize=3)
            if found is None or len(found) < self.min_points:
                continue
            found = found.reshape(-1, 2) + np.array([x1[i], y1[i]], np.float32)
            points.append(found)
            owners.append(np.full(found.shape[0], i))
        if not points:
            return moved, valid
        p0 = np.concatenate(points).astype(np.float32).reshape(-1, 1, 2)
        owner = np.concatenate(owners)

        # 2. Forward and backward LK; keep points that came back to where they started.
        lk = dict(winSize=(self.win_px, self.win_px), maxLevel=self.levels, criteria=self._criteria)
        p1, ok1, _ = cv2.calcOpticalFlowPyrLK(prev_grey, grey, p0, None, **lk)
        p0b, ok2, _ = cv2.calcOpticalFlowPyrLK(grey, prev_grey, p1, None, **lk)
        fb = np.linalg.norm((p0 - p0b).reshape(-1, 2), axis=1)
        keep = (ok1.ravel() == 1) & (ok2.ravel() == 1) & (fb <= self.fb_max_px)
        p0, p1, owner = p0.reshape(-1, 2)[keep], p1.reshape(-1, 2)[keep], owner[keep]

        # 3. Per box: median displacement (and scale), back in source-image pixels; the medians of all
        # boxes come from one sort by (box, value).
        counts = np.bincount(owner, minlength=n)
        ok = counts >= self.min_points
        if not ok.any():
            return moved, valid
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        lo, hi = starts + (counts - 1) // 2, starts + counts // 2
        shift = np.zeros((n, 2))
        for axis in (0, 1):
            d = (p1[:, axis] - p0[:, axis]).astype(np.float64)
            ordered = d[np.lexsort((d, owner))]
            shift[ok, axis] = 0.5 * (ordered[lo[ok]] + ordered[hi[ok]]) / self.scale
        factor = np.ones(n)
        if self.estimate_scale:
            for i in np.nonzero(ok)[0]:
                a, b = p0[owner == i], p1[owner == i]
                iu, ju = np.triu_indices(a.shape[0], 1)
                da = np.linalg.norm(a[iu] - a[ju], axis=1)
                db = np.linalg.norm(b[iu] - b[ju], axis=1)
                good = da > 1.0
                if good.any():
                    factor[i] = float(np.median(db[good] / da[good]))
        centre = 0.5 * (boxes[:, :2] + boxes[:, 2:]) + shift
        half = 0.5 * factor[:, None] * (boxes[:, 2:] - boxes[:, :2])
        moved[ok] = np.concatenate([centre - half, centre + half], axis=1)[ok].astype(np.float32)
        valid[ok] = True
        return moved, valid
