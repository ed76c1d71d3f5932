"""Detection agreement between a converted detector and its float original, frame by frame.

There is no ground truth here: the float model's detections *are* the reference, and the question is how
much the converted model disagrees with them. Three measures:

- :func:`map50_vs_reference`: mAP@0.5 with the reference boxes as ground truth and the candidate's boxes
  as predictions (COCO-style greedy matching by descending score, all-point interpolated AP, mean over
  classes). Predictions are best taken at a low confidence threshold (the usual mAP protocol) so that a
  box the float model scores 0.26 and the int8 model 0.24 counts as found, ranked a little lower.
- :func:`count_agreement`: the fraction of frames on which both models count the same number of objects
  (of the counted classes) at the operating threshold: what a people counter actually reports.
- :func:`score_errors`: the largest and mean |score difference| over boxes matched at IoU >= 0.5.

Unlike COCO's evaluator, a class the reference never shows but the candidate does (a hallucinated
``Fall``) is not ignored: it enters the mean with AP 0, since any disagreement with the reference counts.

Shape legend: F frames; per frame a :class:`~edge_runtime.vision.detections.Detections` with N boxes
``xyxy`` (N, 4) float32 in frame pixels, ``score`` (N,), ``class_id`` (N,).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_runtime.errors import InputError
from edge_runtime.vision.detections import Detections
from edge_runtime.vision.tracking import iou_matrix

__all__ = [
    "AgreementReport",
    "agreement_at",
    "average_precision",
    "compare_detections",
    "count_agreement",
    "map50_vs_reference",
    "match_frame",
    "score_errors",
]


def _check_pairs(candidate: Sequence[Detections], reference: Sequence[Detections], where: str) -> None:
    if len(candidate) != len(reference):
        raise InputError(f"{where}: {len(candidate)} candidate frames vs {len(reference)} reference frames; "
                         f"expected one candidate Detections per reference frame")
    for i, (c, r) in enumerate(zip(candidate, reference)):
        if not isinstance(c, Detections) or not isinstance(r, Detections):
            raise InputError(f"{where}: frame {i}: expected Detections, got {type(c).__name__} and "
                             f"{type(r).__name__}")


def _check_iou(iou_threshold: float, where: str) -> float:
    if not 0.0 < iou_threshold <= 1.0:
        raise InputError(f"{where}: iou_threshold must be in (0, 1], got {iou_threshold}")
    return float(iou_threshold)


def match_frame(candidate: Detections, reference: Detections, iou_threshold: float = 0.5) -> np.ndarray:
    """Match one frame's candidate boxes to reference boxes of the same class (COCO greedy matching).

    Candidates are visited by descending score; each takes the unmatched same-class reference box of
    highest IoU, if that IoU is >= ``iou_threshold``.

    Args:
        candidate: the converted model's detections (N boxes).
        reference: the float model's detections (M boxes).
        iou_threshold: minimum IoU for a match, in (0, 1].

    Returns:
        (N,) int64: for each candidate box, the index of its reference box, or -1 if unmatched.

    Raises:
        InputError: iou_threshold outside (0, 1].

    Example:
        >>> box = np.array([[0, 0, 10, 10]], np.float32)
        >>> one = Detections(box, np.array([0.9], np.float32), np.array([0], np.int32))
        >>> match_frame(one, one).tolist()
        [0]
    """
    iou_threshold = _check_iou(iou_threshold, "match_frame")
    n, m = len(candidate), len(reference)
    matched = np.full(n, -1, np.int64)
    if n == 0 or m == 0:
        return matched
    iou = iou_matrix(candidate.xyxy, reference.xyxy)
    iou[candidate.class_id[:, None] != reference.class_id[None, :]] = -1.0
    taken = np.zeros(m, bool)
    for i in np.argsort(-candidate.score, kind="stable"):
        row = np.where(taken, -1.0, iou[i])
        best = np.flatnonzero(row == row.max())
        # Equal IoU (duplicate boxes): take the reference whose score is closest, so identical
        # detection sets always pair each box with itself.
        j = int(best[np.argmin(np.abs(reference.score[best] - candidate.score[i]))])
        if row[j] >= iou_threshold:
            matched[i] = j
            taken[j] = True
    return matched


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope (all-point interpolation, as PASCAL VOC 2010+).

    Args:
        recall: (K,) non-decreasing recall at each rank.
        precision: (K,) precision at each rank.

    Returns:
        AP in [0, 1]; 0 for empty input.
    """
    if recall.size == 0:
        return 0.0
    r = np.concatenate(([0.0], recall, [1.0]))
    p = np.concatenate(([1.0], precision, [0.0]))
    p = np.flip(np.maximum.accumulate(np.flip(p)))  # the envelope: best precision at this recall or beyond
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def _per_class_ap(candidate: Sequence[Detections], reference: Sequence[Detections],
                  iou_threshold: float) -> Dict[int, float]:
    classes = set()
    for c, r in zip(candidate, reference):
        classes.update(int(k) for k in np.unique(c.class_id))
        classes.update(int(k) for k in np.unique(r.class_id))
    scores: Dict[int, List[np.ndarray]] = {k: [] for k in classes}
    hits: Dict[int, List[np.ndarray]] = {k: [] for k in classes}
    totals = {k: 0 for k in classes}
    for c, r in zip(candidate, reference):
        matched = match_frame(c, r, iou_threshold)
        for k in classes:
            mask = c.class_id == k
            scores[k].append(c.score[mask])
            hits[k].append(matched[mask] >= 0)
            totals[k] += int(np.count_nonzero(r.class_id == k))
    ap: Dict[int, float] = {}
    for k in sorted(classes):
        s = np.concatenate(scores[k]) if scores[k] else np.zeros(0, np.float32)
        tp = np.concatenate(hits[k]) if hits[k] else np.zeros(0, bool)
        if totals[k] == 0:  # the reference never shows this class: any prediction of it is wrong
            ap[k] = 0.0 if s.size else 1.0
            continue
        order = np.argsort(-s, kind="stable")
        tp_cum = np.cumsum(tp[order])
        recall = tp_cum / totals[k]
        precision = tp_cum / np.arange(1, s.size + 1)
        ap[k] = average_precision(recall, precision)
    return ap


def map50_vs_reference(candidate: Sequence[Detections], reference: Sequence[Detections], *,
                       iou_threshold: float = 0.5) -> Tuple[float, Dict[int, float]]:
    """mAP of ``candidate`` against ``reference`` taken as ground truth (default IoU 0.5).

    Args:
        candidate: per frame, the converted model's detections (low confidence threshold recommended).
        reference: per frame, the float model's detections at the operating threshold.
        iou_threshold: IoU needed for a true positive.

    Returns:
        (mAP, {class_id: AP}). The mean runs over every class either side shows; with no boxes anywhere
        on either side the models agree perfectly and mAP is 1.0.

    Raises:
        InputError: frame counts differ, a frame is not Detections, or iou_threshold is outside (0, 1].

    Example:
        >>> box = np.array([[0, 0, 10, 10]], np.float32)
        >>> one = Detections(box, np.array([0.9], np.float32), np.array([0], np.int32))
        >>> map50_vs_reference([one], [one])
        (1.0, {0: 1.0})
    """
    _check_pairs(candidate, reference, "map50_vs_reference")
    ap = _per_class_ap(candidate, reference, _check_iou(iou_threshold, "map50_vs_reference"))
    if not ap:
        return 1.0, {}
    return float(np.mean(list(ap.values()))), ap


def _count(d: Detections, classes: Optional[Sequence[int]]) -> int:
    if classes is None:
        return len(d)
    return int(np.count_nonzero(np.isin(d.class_id, np.asarray(list(classes), np.int32))))


def count_agreement(candidate: Sequence[Detections], reference: Sequence[Detections], *,
                    classes: Optional[Sequence[int]] = None) -> Tuple[float, np.ndarray]:
    """Fraction of frames on which the two models count the same number of objects.

    Args:
        candidate, reference: per frame detections, both at the operating confidence threshold.
        classes: the counted class ids (None = every class; for the person detector both classes,
            ``Normal`` and ``Fall``, are people).

    Returns:
        (agreement in [0, 1], (F,) int64 count differences candidate - reference). No frames: 1.0.

    Raises:
        InputError: frame counts differ or a frame is not Detections.
    """
    _check_pairs(candidate, reference, "count_agreement")
    diff = np.array([_count(c, classes) - _count(r, classes) for c, r in zip(candidate, reference)], np.int64)
    return (float(np.mean(diff == 0)) if diff.size else 1.0), diff


def score_errors(candidate: Sequence[Detections], reference: Sequence[Detections], *,
                 iou_threshold: float = 0.5) -> Tuple[float, float, int]:
    """|score difference| over boxes matched (same class, IoU >= threshold) between the two models.

    Returns:
        (max error, mean error, number of matched pairs); (0.0, 0.0, 0) with no matches.

    Raises:
        InputError: frame counts differ, a frame is not Detections, or a bad iou_threshold.
    """
    _check_pairs(candidate, reference, "score_errors")
    iou_threshold = _check_iou(iou_threshold, "score_errors")
    errors = []
    for c, r in zip(candidate, reference):
        matched = match_frame(c, r, iou_threshold)
        ok = matched >= 0
        errors.append(np.abs(c.score[ok] - r.score[matched[ok]]))
    flat = np.concatenate(errors) if errors else np.zeros(0, np.float32)
    if flat.size == 0:
        return 0.0, 0.0, 0
    return float(flat.max()), float(flat.mean()), int(flat.size)


@dataclass(frozen=True)
class AgreementReport:
    """How closely a converted detector follows its float original on a set of frames.

    Attributes:
        frames: number of frames compared.
        map50: mAP@0.5 of the candidate (low-threshold boxes) against the reference.
        ap_per_class: AP per class id.
        count_agreement: fraction of frames with equal counts at the operating threshold.
        count_diff_max: largest |count difference| on any frame.
        score_err_max, score_err_mean: |score difference| over matched boxes.
        matched: number of matched box pairs.
        reference_boxes: total reference boxes at the operating threshold.
        low_score_err_mean: mean |score difference| over boxes matched at the low threshold (None when
            not computed): smooth, and it covers the borderline boxes whose flips decide the counts.
    """

    frames: int
    map50: float
    ap_per_class: Dict[int, float]
    count_agreement: float
    count_diff_max: int
    score_err_max: float
    score_err_mean: float
    matched: int
    reference_boxes: int
    low_score_err_mean: Optional[float] = None

    def meets(self, min_map50: float, min_count_agreement: float) -> bool:
        """Whether both budgets hold."""
        return self.map50 >= min_map50 and self.count_agreement >= min_count_agreement

    def shortfall(self, min_map50: float, min_count_agreement: float) -> float:
        """How far the worse of the two measures is below its budget (<= 0 when both are met)."""
        return max(min_map50 - self.map50, min_count_agreement - self.count_agreement)

    def as_dict(self) -> dict:
        """JSON-ready form (class ids as strings)."""
        d = asdict(self)
        d["ap_per_class"] = {str(k): v for k, v in self.ap_per_class.items()}
        return d


def compare_detections(candidate_low: Sequence[Detections], candidate: Sequence[Detections],
                       reference: Sequence[Detections], *, iou_threshold: float = 0.5,
                       count_classes: Optional[Sequence[int]] = None) -> AgreementReport:
    """All agreement measures at once.

    Args:
        candidate_low: per frame, the candidate's detections at a low threshold (for mAP).
        candidate: per frame, the candidate's detections at the operating threshold (counts, scores).
        reference: per frame, the reference detections at the operating threshold.
        iou_threshold: IoU for matches.
        count_classes: class ids counted by :func:`count_agreement` (None = all).

    Raises:
        InputError: as the individual measures.
    """
    _check_pairs(candidate_low, reference, "compare_detections")
    m, ap = map50_vs_reference(candidate_low, reference, iou_threshold=iou_threshold)
    agree, diff = count_agreement(candidate, reference, classes=count_classes)
    err_max, err_mean, matched = score_errors(candidate, reference, iou_threshold=iou_threshold)
    return AgreementReport(
        frames=len(reference), map50=m, ap_per_class=ap, count_agreement=agree,
        count_diff_max=int(np.abs(diff).max()) if diff.size else 0, score_err_max=err_max,
        score_err_mean=err_mean, matched=matched, reference_boxes=int(sum(len(r) for r in reference)))


def agreement_at(candidate_low: Sequence[Detections], reference_low: Sequence[Detections], conf_threshold: float,
                 count_classes: Optional[Sequence[int]] = None, *, iou_threshold: float = 0.5) -> AgreementReport:
    """:func:`compare_detections` from detections taken once at a low threshold.

    The operating-threshold detections are a score filter of the low-threshold ones (greedy NMS never
    lets a lower score suppress a higher one, so filtering after NMS equals NMS after filtering), so one
    detector run per frame at the low threshold serves both mAP and counts.

    Args:
        candidate_low, reference_low: per frame, detections at the low threshold.
        conf_threshold: the operating threshold for counts and score errors.
        count_classes: counted class ids (None = all).

    Raises:
        InputError: frame counts differ or a bad threshold.
    """
    if not 0.0 <= conf_threshold <= 1.0:
        raise InputError(f"agreement_at: conf_threshold must be in [0, 1], got {conf_threshold}")
    _check_pairs(candidate_low, reference_low, "agreement_at")
    cand = [d[d.score >= conf_threshold] for d in candidate_low]
    ref = [d[d.score >= conf_threshold] for d in reference_low]
    report = compare_detections(candidate_low, cand, ref, iou_threshold=iou_threshold, count_classes=count_classes)
    _, low_err, _ = score_errors(candidate_low, reference_low, iou_threshold=iou_threshold)
    return replace(report, low_score_err_mean=low_err)
