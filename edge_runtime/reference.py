"""NumPy references for the native kernels: the oracle of the tests and the baseline of the benchmarks.

Each function here has the same name and contract as its counterpart in ``edge_runtime._native``
(``edge::NAME`` in C++). They are written for clarity, not speed. Each kernel family keeps its own
section below.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

# ---------------------------------------------------------------------------------------------------
# tracking: iou_matrix, linear_assignment, kalman_initiate/predict/update, associate_bytetrack,
#           bytetrack_gates, position_gate, bytetrack_commit
#           (native/src/track.cpp; contracts in native/include/edge/track.hpp)
# Shape legend: M rows (tracks), N columns (detections); boxes are (count, 4) float32 x1, y1, x2, y2;
# T tracks with Kalman mean (T, 8) and cov (T, 8, 8) float64 (see edge_runtime/vision/kalman.py).
# ---------------------------------------------------------------------------------------------------


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU (M, N) float32 of boxes ``a`` (M, 4) against ``b`` (N, 4), computed in float64.

    A box with x2 < x1 or y2 < y1 has zero area; a pair whose union is zero has IoU 0.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    area_a = np.maximum(a[:, 2] - a[:, 0], 0) * np.maximum(a[:, 3] - a[:, 1], 0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return iou.astype(np.float32)


def linear_assignment(cost: np.ndarray, max_cost: float = float("inf")) -> np.ndarray:
    """Optimal assignment of the (M, N) cost matrix: row_to_col (M,) int32, -1 = unmatched.

    ``max_cost = inf``: min(M, N) pairs of minimum total cost (scipy's linear_sum_assignment).
    Finite ``max_cost``: only pairs with cost < max_cost are matched, maximising sum(max_cost - cost);
    solved as the full problem on min(cost - max_cost, 0), whose zero-valued pairs are then dropped.
    Needs scipy (a dev dependency; this module is an oracle, not a runtime path).
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.asarray(cost, np.float64)
    row_to_col = np.full(cost.shape[0], -1, np.int32)
    if cost.size == 0:
        return row_to_col
    limited = np.isfinite(max_cost)
    work = np.where(cost < max_cost, cost - max_cost, 0.0) if limited else cost
    rows, cols = linear_sum_assignment(work)
    keep = cost[rows, cols] < max_cost if limited else np.ones(rows.shape, bool)
    row_to_col[rows[keep]] = cols[keep]
    return row_to_col


def kalman_initiate(boxes: np.ndarray, std_position: float = 1.0 / 20, std_velocity: float = 1.0 / 160):
    """New tracks from boxes (K, 4) xyxy: (mean (K, 8), cov (K, 8, 8)) float64."""
    from .vision.kalman import KalmanXYAH, xyxy_to_xyah

    return KalmanXYAH(std_position, std_velocity).initiate(xyxy_to_xyah(boxes))


def kalman_predict(mean: np.ndarray, cov: np.ndarray, miss: np.ndarray, std_position: float = 1.0 / 20,
                   std_velocity: float = 1.0 / 160, dt: float = 1.0) -> np.ndarray:
    """Kalman predict dt frames ahead in place (tracks with miss > 0 coast with zero height velocity);
    returns (T, 4) boxes."""
    from .vision.kalman import KalmanXYAH, xyah_to_xyxy

    mean[np.asarray(miss) > 0, 7] = 0.0
    mean[...], cov[...] = KalmanXYAH(std_position, std_velocity).predict(mean, cov, dt)
    return xyah_to_xyxy(mean)


def kalman_update(mean: np.ndarray, cov: np.ndarray, rows: np.ndarray, boxes: np.ndarray,
                  std_position: float = 1.0 / 20) -> None:
    """Kalman update in place of the tracks ``rows`` (K,) with measured boxes (K, 4) xyxy."""
    from .vision.kalman import KalmanXYAH, xyxy_to_xyah

    rows = np.asarray(rows, np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= mean.shape[0]):
        raise ValueError(f"kalman_update: rows must lie in [0, {mean.shape[0]}), got {rows.tolist()}")
    new_mean, new_cov = KalmanXYAH(std_position).update(mean[rows], cov[rows], xyxy_to_xyah(boxes))
    mean[rows], cov[rows] = new_mean, new_cov


def associate_bytetrack(track_boxes: np.ndarray, track_id: np.ndarray, miss: np.ndarray, det_boxes: np.ndarray,
                        det_score: np.ndarray, high_score: float, low_score: float, max_cost_high: float,
                        max_cost_low: float, max_cost_tentative: float, fuse_score: bool, revive_lost: bool,
                        track_grow: Optional[np.ndarray] = None, det_grow: float = 0.0,
                        track_jump: Optional[np.ndarray] = None, forbid: Optional[np.ndarray] = None,
                        assign=None, tentative_low: bool = False, low_max_growth: float = 0.0,
                        low_fit_margin: float = 0.0, tentative_fit_margin: float = 0.0,
                        look: Optional[np.ndarray] = None, low_look_margin: float = 0.0) -> np.ndarray:
    """The ByteTrack associations of one frame: det_track (N,) int32, matched track index or -1.

    1) confirmed tracks (track_id >= 0) x detections with score >= high_score; 2) confirmed tracks left
    unmatched (only those with miss == 0 unless revive_lost) x detections with low_score <= score <
    high_score (plain IoU); 3) tentative tracks x the high-score detections left over; with
    ``tentative_low``, 4) the tentative tracks still unmatched x the low-score detections left over (plain
    IoU, ``max_cost_tentative``). Cost is 1 - IoU (1 - IoU * score in stages 1 and 3 when fuse_score), in
    float32; ``assign(cost, max_cost) -> row_to_col`` defaults to
    :func:`linear_assignment`. The IoU is taken on boxes widened on every side by ``track_grow`` (T,) /
    ``det_grow`` times their width and height; afterwards a match whose centres are more than
    ``track_jump[i]`` times the detection's height apart is undone, the detection left unmatched
    (track_jump <= 0: no gate). ``forbid`` (T, N) bool: pairs stages 1 and 2 never match (similarity 0).
    Last, with ``low_max_growth`` > 0, a detection below ``high_score`` more than that many times as tall
    as its matched track's box is left unmatched. With ``low_fit_margin`` > 0, stage 1 also never matches a
    confirmed track to a high-score detection whose plain IoU with it is more than that below the IoU of the
    low-score detection fitting it best (the first of equals), unless another track (the first of equals,
    tentative ones included) has a higher IoU with that low-score detection. With ``tentative_fit_margin`` > 0,
    stage 1 never matches a confirmed track seen last frame (miss 0) to a high-score detection whose plain IoU
    with it is more than that below the IoU of the tentative track fitting the detection best (the first of
    equals), where the detection is also that tentative track's best fit among all detections (the first of
    equals). With ``look`` (T, N) float32 appearance distances (NaN: unknown) and ``low_look_margin`` > 0,
    stage 1 never matches a confirmed track to a high-score detection with a lower plain IoU than the
    low-score detection fitting the track best (the first of equals), where that one's distance is at least
    the margin smaller and no other track has a higher IoU with it, nor an equal IoU and a smaller distance
    (an equal distance: the first track); a track that some high-score detection fits better (plain IoU) than
    that low-score one does not count as another here: it is not after the low-score box.
    """
    assign = linear_assignment if assign is None else assign
    det_score = np.asarray(det_score, np.float32)
    det_track = np.full(det_score.shape[0], -1, np.int32)

    def widen(boxes: np.ndarray, grow: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes, np.float32)
        pw = (grow * (boxes[:, 2] - boxes[:, 0])).astype(np.float32)
        ph = (grow * (boxes[:, 3] - boxes[:, 1])).astype(np.float32)
        return np.stack([boxes[:, 0] - pw, boxes[:, 1] - ph, boxes[:, 2] + pw, boxes[:, 3] + ph], 1)

    t_grow = np.zeros(track_boxes.shape[0], np.float32) if track_grow is None else np.asarray(track_grow, np.float32)
    wide_tracks = widen(track_boxes, t_grow)
    wide_dets = widen(det_boxes, np.float32(det_grow))

    def stage(rows: np.ndarray, cols: np.ndarray, fused: bool, max_cost: float, gated: bool = False,
              gate: Optional[np.ndarray] = None) -> None:
        if rows.size == 0 or cols.size == 0:
            return
        similarity = iou_matrix(wide_tracks[rows], wide_dets[cols])
        if fused:
            similarity = similarity * det_score[cols]
        gate = forbid if gate is None else gate
        if gated and gate is not None:
            similarity = np.where(np.asarray(gate, bool)[np.ix_(rows, cols)], np.float32(0), similarity)
        cost = np.float32(1.0) - similarity
        row_to_col = assign(np.ascontiguousarray(cost, np.float32), max_cost)
        hit = row_to_col >= 0
        det_track[cols[row_to_col[hit]]] = rows[hit]

    high = np.flatnonzero(det_score >= np.float32(high_score))
    low = np.flatnonzero((det_score >= np.float32(low_score)) & (det_score < np.float32(high_score)))
    pool = np.flatnonzero(track_id >= 0)
    stage_forbid = forbid
    tentative = np.flatnonzero(track_id < 0)
    low_fit = low_fit_margin > 0 and low.size
    tentative_fit = tentative_fit_margin > 0 and tentative.size
    low_look = low_look_margin > 0 and look is not None and low.size
    if (low_fit or tentative_fit or low_look) and high.size and pool.size:
        plain = iou_matrix(np.asarray(track_boxes, np.float32), np.asarray(det_boxes, np.float32))
        stage_forbid = np.zeros(plain.shape, bool) if forbid is None else np.array(forbid, bool)
        for j in high if tentative_fit else ():
            k = tentative[np.argmax(plain[tentative, j])]
            if plain[k, j] > 0 and np.argmax(plain[k]) == j:
                floor = np.float64(plain[k, j]) - tentative_fit_margin
                seen = pool[miss[pool] == 0]
                stage_forbid[seen[plain[seen, j].astype(np.float64) < floor], j] = True
        for i in pool if low_fit else ():
            best = low[np.argmax(plain[i, low])]
            if plain[i, best] > 0 and np.argmax(plain[:, best]) == i:
                floor = np.float64(plain[i, best]) - low_fit_margin
                stage_forbid[i, high[plain[i, high].astype(np.float64) < floor]] = True
        if low_look:
            look = np.asarray(look, np.float32)
        for i in pool if low_look else ():
            best = low[np.argmax(plain[i, low])]
            if not plain[i, best] > 0 or np.isnan(look[i, best]):
                continue
            # the owner: highest IoU, then smallest distance (NaN last), then first, among track i and the
            # tracks no high-score detection fits better than this one
            rivals = np.flatnonzero((np.arange(len(plain)) == i) | ~(plain[:, high] > plain[:, [best]]).any(1))
            order = rivals[np.lexsort((rivals, np.nan_to_num(look[rivals, best], nan=np.inf), -plain[rivals, best]))]
            if order[0] != i:
                continue
            floor = np.float64(look[i, best]) + low_look_margin
            refused = (plain[i, high] < plain[i, best]) & (look[i, high].astype(np.float64) >= floor)
            stage_forbid[i, high[refused]] = True
    stage(pool, high, fuse_score, max_cost_high, True, stage_forbid)
    taken = np.zeros(track_id.shape[0], bool)
    taken[det_track[high][det_track[high] >= 0]] = True
    stage(pool[~taken[pool] & ((miss[pool] == 0) | revive_lost)], low, False, max_cost_low, True)
    stage(tentative, high[det_track[high] < 0], fuse_score, max_cost_tentative)
    if tentative_low:
        held = np.zeros(track_id.shape[0], bool)
        held[det_track[det_track >= 0]] = True
        stage(tentative[~held[tentative]], low[det_track[low] < 0], False, max_cost_tentative)
    if track_jump is not None:  # undo matches that jumped further than the gate
        j = np.flatnonzero(det_track >= 0)
        t = np.asarray(track_boxes, np.float64)[det_track[j]]
        d = np.asarray(det_boxes, np.float64)[j]
        dx = 0.5 * (d[:, 0] + d[:, 2]) - 0.5 * (t[:, 0] + t[:, 2])
        dy = 0.5 * (d[:, 1] + d[:, 3]) - 0.5 * (t[:, 1] + t[:, 3])
        jump = np.asarray(track_jump, np.float64)[det_track[j]]
        limit = jump * (d[:, 3] - d[:, 1])
        det_track[j[(jump > 0) & (dx * dx + dy * dy > limit * limit)]] = -1
    if low_max_growth > 0:
        j = np.flatnonzero((det_track >= 0) & (det_score < np.float32(high_score)))
        t = np.asarray(track_boxes, np.float32)[det_track[j]]
        d = np.asarray(det_boxes, np.float32)[j]
        taller = (d[:, 3] - d[:, 1]) > np.float32(low_max_growth) * np.maximum(t[:, 3] - t[:, 1], np.float32(0))
        det_track[j[taller]] = -1
    return det_track


def bytetrack_gates(last_s: np.ndarray, track_id: np.ndarray, now: float, fps: float, buffer_rel: float,
                    max_buffer_rel: float, max_jump_rel: float):
    """The association gates of one frame: (track_grow (T,) float32, track_jump (T,) float32, det_grow)."""
    elapsed = np.maximum((now - np.asarray(last_s, np.float64)) * fps, 1.0)
    grow = np.minimum(buffer_rel * (elapsed - 1.0), max_buffer_rel).astype(np.float32)
    jump = np.where(np.asarray(track_id) >= 0, max_jump_rel * elapsed, 0.0).astype(np.float32)
    det_grow = float(np.median(grow.astype(np.float64))) if grow.size else 0.0
    return grow, jump, det_grow


def position_gate(mean: np.ndarray, cov: np.ndarray, track_id: np.ndarray, det_boxes: np.ndarray,
                  std_position: float, threshold: float) -> np.ndarray:
    """(T, N) uint8: 1 where a confirmed track's predicted centre and a box's centre are further apart than
    ``threshold`` in squared Mahalanobis distance (centre covariance plus measurement noise)."""
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    sp = std_position * np.maximum(mean[:, 3], 1.0)
    s = cov[:, :2, :2] + np.eye(2)[None] * (sp * sp)[:, None, None]
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    d = centres[None, :, :] - mean[:, None, :2]
    d2 = np.einsum("tni,tij,tnj->tn", d, np.linalg.inv(s), d) if len(mean) else np.zeros((0, len(boxes)))
    return ((d2 > threshold) & (np.asarray(track_id) >= 0)[:, None]).astype(np.uint8)


def bytetrack_commit(det_track, det_boxes, det_class, mean, cov, track_id, uid, hits, miss, last_s, cls, votes,
                     std_position: float, now: float, lost_s: float, min_hits: int):
    """One frame's bookkeeping after association, in place: (confirmed, out_id, out_class, keep, all_kept)."""
    det_track = np.asarray(det_track)
    matched_dets = np.nonzero(det_track >= 0)[0]
    tracks = det_track[matched_dets].astype(np.int64)
    if tracks.size:
        kalman_update(mean, cov, tracks, np.asarray(det_boxes)[matched_dets], std_position)
    confirmed = 0
    out_class = np.array(det_class, np.int32)
    out_id = np.full(det_track.shape[0], -1, np.int32)
    for j, i in zip(matched_dets.tolist(), tracks.tolist()):
        hits[i] += 1
        miss[i] = 0
        last_s[i] = now
        votes[i, det_class[j]] += 1
        best = int(np.argmax(votes[i]))
        if votes[i, cls[i]] < votes[i, best]:
            cls[i] = best
        if track_id[i] < 0 and hits[i] >= min_hits:
            track_id[i] = uid[i]
            confirmed += 1
        if track_id[i] >= 0:
            out_id[j], out_class[j] = track_id[i], cls[i]
        else:
            out_id[j] = -2 - uid[i]
    unmatched = np.ones(len(track_id), bool)
    unmatched[tracks] = False
    miss[unmatched] += 1
    hits[unmatched] = 0
    keep = ~unmatched | ((np.asarray(track_id) >= 0) & (now - np.asarray(last_s) <= lost_s + 1e-9))
    return confirmed, out_id, out_class, keep, bool(keep.all())


def bytetrack_split(det_track, det_score, high_score: float, new_score: float):
    """(take (N,) bool: score >= high_score; start (K,) int64: unmatched with score >= new_score)."""
    score = np.asarray(det_score, np.float32)
    take = score >= np.float32(high_score)
    start = np.flatnonzero((np.asarray(det_track) < 0) & (score >= np.float32(new_score))).astype(np.int64)
    return take, start

# ---------------------------------------------------------------------------------------------------
# vision: letterbox_geometry, letterbox_into, decode_yolo, nms, postprocess
#         (native/src/image.cpp, yolo.cpp, nms.cpp; contracts in native/include/edge/*.hpp)
# Shape legend: frames are (H, W, 3) uint8 BGR; tensors (1, 3, h, w) RGB planes, float32 in [0, 1] or
# uint8; raw YOLO outputs are (rows, cols) float32 (a leading batch of 1 allowed); N boxes, xyxy (N, 4)
# float32 (x1, y1, x2, y2) in source pixels, score (N,) float32, class_id (N,) int32.
# Layout codes: 0 = V5 (N, 5+nc), 1 = V8 (4+nc, N) channel-major, 2 = E2E (K, 6).
# ---------------------------------------------------------------------------------------------------

_V5, _V8, _E2E = 0, 1, 2


def letterbox_geometry(src_h: int, src_w: int, dst_h: int, dst_w: int, auto: bool, stride: int,
                       scale_up: bool) -> tuple:
    """Ultralytics LetterBox geometry -> (out_h, out_w, new_h, new_w, pad_top, pad_left, scale).

    Mirrors ultralytics/data/augment.py LetterBox (center=True): Python's round (half to even), padding
    split round(d/2 - 0.1) / round(d/2 + 0.1), auto keeps only d mod stride. A side that would round to 0
    pixels is kept at 1 (Ultralytics fails there).
    """
    r = min(dst_h / src_h, dst_w / src_w)
    if not scale_up:
        r = min(r, 1.0)
    new_w = min(max(round(src_w * r), 1), dst_w)
    new_h = min(max(round(src_h * r), 1), dst_h)
    dw, dh = dst_w - new_w, dst_h - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return new_h + top + bottom, new_w + left + right, new_h, new_w, top, left, r


def _linear_taps(dst: int, src: int) -> tuple:
    """OpenCV INTER_LINEAR taps of a src -> dst resize: (left index, right index, fraction), float64."""
    pos = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
    index = np.floor(pos)
    frac = pos - index
    index = index.astype(np.int64)
    low, high = index < 0, index >= src - 1
    index[low], frac[low] = 0, 0.0
    index[high], frac[high] = src - 1, 0.0
    return index, np.minimum(index + 1, src - 1), frac


def letterbox_into(frame: np.ndarray, out: np.ndarray, new_h: int, new_w: int, pad_top: int, pad_left: int,
                   pad_value: int) -> None:
    """Bilinear resize of ``frame`` to new_h x new_w, placed at (pad_top, pad_left) in ``out`` (1, 3, h, w).

    Float64 math; float32 ``out`` gets RGB / 255, uint8 ``out`` gets floor(value + 0.5). Everything
    outside the content is ``pad_value`` (/ 255 for float32).
    """
    src_h, src_w = frame.shape[:2]
    y0, y1, fy = _linear_taps(new_h, src_h)
    x0, x1, fx = _linear_taps(new_w, src_w)
    f = frame.astype(np.float64)
    rows = f[y0] + fy[:, None, None] * (f[y1] - f[y0])            # (new_h, W, 3)
    value = rows[:, x0] + fx[None, :, None] * (rows[:, x1] - rows[:, x0])  # (new_h, new_w, 3) BGR
    planes = value[..., ::-1].transpose(2, 0, 1)                  # (3, new_h, new_w) RGB
    content = out[0, :, pad_top:pad_top + new_h, pad_left:pad_left + new_w]
    if out.dtype == np.float32:
        out[...] = np.float32(pad_value / 255.0)
        content[...] = planes / 255.0
    else:
        out[...] = pad_value
        content[...] = np.floor(planes + 0.5)


def _class_mask(classes, class_id: np.ndarray) -> np.ndarray:
    if classes is None:
        return np.ones(class_id.shape, bool)
    return np.isin(class_id, np.asarray(classes, np.int64))


def decode_yolo(raw: np.ndarray, layout: int, conf: float, pad_x: float, pad_y: float, scale_x: float,
                scale_y: float, src_w: float, src_h: float, num_classes: int = 0, classes=None) -> tuple:
    """Raw YOLO output -> (xyxy (M, 4) float32 source pixels, score (M,) float32, class_id (M,) int32).

    Kept: double(score) >= conf and class in ``classes`` (if given), in row/anchor order. V8 score is the
    best class score, V5 obj * best class score (float32 product), class the first argmax. Corners in
    float64: (x - pad) / scale, ordered, clipped to [0, W] x [0, H].

    Raises:
        ValueError: a non-finite value anywhere in ``raw``, or (E2E) a kept row whose class is not a
            whole number in [0, num_classes).
    """
    raw = np.asarray(raw)
    if raw.ndim == 3:
        raw = raw[0]
    bad = np.argwhere(~np.isfinite(raw))
    if len(bad):
        raise ValueError(f"decode_yolo: non-finite value {raw[tuple(bad[0])]} at {tuple(bad[0])}")
    if layout == _V8:
        scores = raw[4:]
        n = raw.shape[1]
        cls = scores.argmax(0).astype(np.int32) if n else np.zeros(0, np.int32)
        score = scores.max(0) if n else np.zeros(0, np.float32)
        cx, cy, w, h = (raw[k].astype(np.float64) for k in range(4))
    elif layout == _V5:
        scores = raw[:, 5:]
        n = raw.shape[0]
        cls = scores.argmax(1).astype(np.int32) if n else np.zeros(0, np.int32)
        score = (raw[:, 4] * scores.max(1)).astype(np.float32) if n else np.zeros(0, np.float32)
        cx, cy, w, h = (raw[:, k].astype(np.float64) for k in range(4))
    else:
        score = raw[:, 4]
        candidate = score.astype(np.float64) >= conf
        value = raw[:, 5].astype(np.float64)
        limit = num_classes if num_classes > 0 else 2147483647.0
        bad = candidate & ~((value >= 0) & (value < limit) & (value == np.floor(value)))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"decode_yolo: E2E row {row} has class value {raw[row, 5]}")
        cls = np.where(candidate, value, 0).astype(np.int32)
        x1, y1, x2, y2 = (raw[:, k].astype(np.float64) for k in range(4))
    if layout != _E2E:
        x1, x2 = cx - 0.5 * w, cx + 0.5 * w
        y1, y2 = cy - 0.5 * h, cy + 0.5 * h
    keep = (score.astype(np.float64) >= conf) & _class_mask(classes, cls)
    a, c = (x1[keep] - pad_x) / scale_x, (x2[keep] - pad_x) / scale_x
    b, d = (y1[keep] - pad_y) / scale_y, (y2[keep] - pad_y) / scale_y
    xyxy = np.stack([np.minimum(np.maximum(np.minimum(a, c), 0.0), src_w),
                     np.minimum(np.maximum(np.minimum(b, d), 0.0), src_h),
                     np.minimum(np.maximum(np.maximum(a, c), 0.0), src_w),
                     np.minimum(np.maximum(np.maximum(b, d), 0.0), src_h)], axis=1)
    return xyxy.astype(np.float32).reshape(-1, 4), score[keep].astype(np.float32), cls[keep]


def nms(xyxy: np.ndarray, score: np.ndarray, class_id, iou_threshold: float, max_det: int) -> np.ndarray:
    """Greedy NMS -> kept indices (K,) int64, in descending score order (ties: lower index first).

    A kept box suppresses later boxes (of its class, unless ``class_id`` is None) with IoU strictly above
    ``iou_threshold``; IoU = inter / (area_i + area_j - inter) in float64, 0 when that union is <= 0.
    """
    order = np.argsort(-np.asarray(score, np.float32), kind="stable")
    x1, y1, x2, y2 = (np.asarray(xyxy, np.float32)[:, k].astype(np.float64) for k in range(4))
    area = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(order), bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) == max_det:
            break
        rest = order[pos + 1:]
        if class_id is not None:
            rest = rest[class_id[rest] == class_id[i]]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        union = (area[i] + area[rest]) - inter
        positive = union > 0
        iou = inter / np.where(positive, union, 1.0)
        suppressed[rest[positive & (iou > iou_threshold)]] = True
    return np.asarray(keep, np.int64)


def postprocess(raw: np.ndarray, layout: int, conf: float, pad_x: float, pad_y: float, scale_x: float,
                scale_y: float, src_w: float, src_h: float, num_classes: int, classes, iou_threshold: float,
                max_det: int, agnostic: bool) -> tuple:
    """decode_yolo then nms (V5/V8) or a stable sort by score (E2E); at most max_det rows, best first."""
    xyxy, score, class_id = decode_yolo(raw, layout, conf, pad_x, pad_y, scale_x, scale_y, src_w, src_h,
                                        num_classes, classes)
    if layout == _E2E:
        keep = np.argsort(-score, kind="stable")[:max_det]
    else:
        keep = nms(xyxy, score, None if agnostic else class_id, iou_threshold, max_det)
    return xyxy[keep], score[keep], class_id[keep]


# ---------------------------------------------------------------------------------------------------
# quantization: quantize_blocks, dequantize_blocks  (native/src/quant.cpp)
# The oracle is gguf-py's own NumPy quantizers (gguf/quants.py, llama.cpp's Python reference); these
# are thin wrappers so the tests and benchmarks name one function per native kernel.
# Shape legend: src (..., n) float32 with n a multiple of 32; blocks (..., n / 32 * block_bytes) uint8,
# block_bytes = 18 (Q4_0 = 2), 20 (Q4_1 = 3), 34 (Q8_0 = 8); qtype is the ggml type id.
# ---------------------------------------------------------------------------------------------------


def quantize_blocks(src: np.ndarray, qtype: int) -> np.ndarray:
    """gguf-py's ``quants.quantize(src, GGMLQuantizationType(qtype))``: uint8 (..., n / 32 * block_bytes).

    NumPy's semantics are the contract, corner cases included: round half away from zero (Q8_0),
    trunc(x + 8.5) / trunc(x + 0.5) (Q4_0 / Q4_1), the first value of largest magnitude as Q4_0's scale,
    fp16 scales rounded to nearest even. Two kinds of block have CPU-dependent bytes here: where ggml's
    C reference is undefined (a block whose scale reciprocal overflows, so NaN/inf are cast to integers)
    the codes are whatever this CPU's casts give (0 on x86-64, which the native kernel writes everywhere),
    and a Q4_1 block whose min or max is a zero present as both +0 and -0 gets the sign NumPy's SIMD
    reduction order picks (the native kernel takes the first zero, as ggml's C reference does). Both
    dequantize to the same values.
    """
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import quantize

    src, qt = np.asarray(src, np.float32), GGMLQuantizationType(int(qtype))
    if src.size == 0:  # gguf-py cannot reshape an empty array; the answer is the empty block array
        block_size, block_bytes = GGML_QUANT_SIZES[qt]
        return np.zeros((*src.shape[:-1], src.shape[-1] // block_size * block_bytes), np.uint8)
    with np.errstate(invalid="ignore", over="ignore"):
        return quantize(src, qt)


def dequantize_blocks(src: np.ndarray, qtype: int) -> np.ndarray:
    """gguf-py's ``quants.dequantize(src, GGMLQuantizationType(qtype))``: float32 (..., k / block_bytes * 32)."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    src, qt = np.asarray(src, np.uint8), GGMLQuantizationType(int(qtype))
    if src.size == 0:
        block_size, block_bytes = GGML_QUANT_SIZES[qt]
        return np.zeros((*src.shape[:-1], src.shape[-1] // block_bytes * block_size), np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        return dequantize(src, qt)


# ---------------------------------------------------------------------------------------------------
# appearance: box_appearance, appearance_distances, blend_appearance (native/src/appearance.cpp; contract in native/include/edge/appearance.hpp)
# Shape legend: a frame is (H, W, 3) uint8 BGR; boxes (N, 4) float32 xyxy; out (N, 384) float32.
# ---------------------------------------------------------------------------------------------------

APPEARANCE_BANDS = ((0.10, 0.40), (0.40, 0.70), (0.70, 0.95))
APPEARANCE_BINS = (8, 4, 4)


def box_appearance(frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per box, three bands' sqrt-normalised H x S x V histograms (every 2nd pixel of every 2nd row) by OpenCV."""
    import cv2

    height, width = frame.shape[:2]
    dim = int(np.prod(APPEARANCE_BINS))
    out = np.zeros((len(boxes), len(APPEARANCE_BANDS) * dim), np.float32)

    def clamp(value: float, limit: int) -> int:
        return int(min(max(value, 0.0), float(limit)))

    for i, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64)):
        if not np.isfinite((x1, y1, x2, y2)).all():
            continue
        w, h = x2 - x1, y2 - y1
        xa, xb = clamp(x1 + 0.2 * w, width), clamp(x2 - 0.2 * w, width)
        if xb - xa < 2:
            continue
        for band, (a, b) in enumerate(APPEARANCE_BANDS):
            ya, yb = clamp(y1 + a * h, height), clamp(y1 + b * h, height)
            if yb - ya < 2:
                continue
            hsv = cv2.cvtColor(np.ascontiguousarray(frame[ya:yb:2, xa:xb:2]), cv2.COLOR_BGR2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, list(APPEARANCE_BINS), [0, 180, 0, 256, 0, 256]).ravel()
            total = float(hist.sum())
            if total > 0:
                out[i, band * dim:(band + 1) * dim] = np.sqrt(hist / total)
    return out


def appearance_distances(tracks: np.ndarray, track_has: np.ndarray, dets: np.ndarray) -> np.ndarray:
    """(T, N) float32: 1 - (dot / bands) where both vectors have appearance, else NaN."""
    distance = 1.0 - (np.asarray(tracks, np.float64) @ np.asarray(dets, np.float64).T) / len(APPEARANCE_BANDS)
    det_has = np.asarray(dets).any(axis=1)
    known = np.asarray(track_has, bool)[:, None] & det_has[None, :]
    return np.where(known, distance, np.nan).astype(np.float32)


def blend_appearance(tracks: np.ndarray, track_has: np.ndarray, det_track: np.ndarray, dets: np.ndarray,
                     take: np.ndarray, ema: float) -> None:
    """Fold taken, matched detections with appearance into their tracks' running appearance, in place."""
    dim = int(np.prod(APPEARANCE_BINS))
    for j, i in enumerate(np.asarray(det_track).tolist()):
        if i < 0 or not take[j] or not dets[j].any():
            continue
        if not track_has[i]:
            tracks[i] = dets[j]
        else:
            blended = (ema * tracks[i].astype(np.float64) + (1.0 - ema) * dets[j]).reshape(-1, dim)
            norm = np.linalg.norm(blended, axis=1, keepdims=True)
            tracks[i] = np.divide(blended, norm, out=blended, where=norm > 0).ravel()
        track_has[i] = True


# ---------------------------------------------------------------------------------------------------
# scene: grey_thumbnail (native/src/thumbnail.cpp; contract in native/include/edge/thumbnail.hpp)
# ---------------------------------------------------------------------------------------------------


def grey_thumbnail(frame: np.ndarray, out_h: int, out_w: int, samples: int = 4) -> np.ndarray:
    """(out_h, out_w) float32: the grid samples' grey levels area-averaged onto the thumbnail."""
    h, w = frame.shape[:2]
    step_y, step_x = max(h // (samples * out_h), 1), max(w // (samples * out_w), 1)
    grid = frame[step_y // 2::step_y, step_x // 2::step_x].astype(np.int64)
    grey = (3735 * grid[..., 0] + 19235 * grid[..., 1] + 9798 * grid[..., 2] + 16384) >> 15

    def weights(n: int, out: int) -> np.ndarray:  # (out, n) in units of 1 / out of a grid point
        lo, hi = np.arange(out)[:, None] * n, (np.arange(out)[:, None] + 1) * n
        i = np.arange(n)[None, :]
        return np.clip(np.minimum((i + 1) * out, hi) - np.maximum(i * out, lo), 0, None)

    gh, gw = grey.shape
    acc = weights(gh, out_h) @ grey @ weights(gw, out_w).T  # exact in int64; each pixel's weights sum to gh * gw
    q, r = np.divmod(acc, gh * gw)
    q += (2 * r > gh * gw) | ((2 * r == gh * gw) & (q % 2 == 1))  # half to even
    return q.astype(np.float32)
