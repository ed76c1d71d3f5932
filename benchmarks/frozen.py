"""Frozen detections: a detector's output on every frame of a video, computed once and stored as .npz.

Counting and tracking are judged on the *same* detections for every tracker and counter, so that a
difference in counts is the tracker's or the counter's and never the detector's. The files for the
fp32 person detector on the built-in videos are committed under ``benchmarks/truth/detections/`` (made
by ``python -m benchmarks.frozen``); each records the sha256 of the model and the video it came from,
and ``tests/test_counting_truth.py`` re-detects sample frames to prove the file is still what the
detector says. Other models (the int8 conversion, whose output depends on the CPU's int8 kernels) are
frozen on demand into ``build/bench_cache/``.

Shape legend: F frames; per frame N boxes (N, 4) float32 x1, y1, x2, y2 in source pixels, scores (N,)
float32, class ids (N,) int32.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np

from edge_runtime.assets import sha256_file
from edge_runtime.vision.detections import Detections

__all__ = ["FrozenDetections", "freeze", "load_frozen", "committed_path", "frozen_for", "CONF_THRESHOLD",
           "TRUTH_DIR"]

TRUTH_DIR = Path(__file__).resolve().parent / "truth"
CACHE_DIR = Path(__file__).resolve().parent.parent / "build" / "bench_cache"
# Low enough that a tracker's low-score association (ByteTrack's second stage, 0.1) sees every box it
# could use; trackers apply their own thresholds on top.
CONF_THRESHOLD = 0.05


@dataclass(frozen=True)
class FrozenDetections:
    """Per-frame detections of one model on one video, plus where they came from."""

    xyxy: np.ndarray  # (sum N, 4) float32
    score: np.ndarray  # (sum N,) float32
    class_id: np.ndarray  # (sum N,) int32
    offsets: np.ndarray  # (F + 1,) int64: frame f is rows offsets[f]:offsets[f + 1]
    fps: float
    frame_size: tuple  # (width, height) in pixels
    model_sha256: str
    video_sha256: str
    conf_threshold: float

    @property
    def num_frames(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def frame(self, index: int, min_score: float = 0.0) -> Detections:
        """Frame ``index``'s detections (those scoring at least ``min_score``)."""
        a, b = int(self.offsets[index]), int(self.offsets[index + 1])
        keep = self.score[a:b] >= min_score
        return Detections(self.xyxy[a:b][keep], self.score[a:b][keep], self.class_id[a:b][keep])

    def __iter__(self) -> Iterator[Detections]:
        return (self.frame(f) for f in range(self.num_frames))


def load_frozen(path: Path) -> FrozenDetections:
    """Read a file written by :func:`freeze`."""
    with np.load(path) as data:
        return FrozenDetections(
            xyxy=data["xyxy"].astype(np.float32), score=data["score"].astype(np.float32),
            class_id=data["class_id"].astype(np.int32), offsets=data["offsets"].astype(np.int64),
            fps=float(data["fps"]), frame_size=tuple(int(v) for v in data["frame_size"]),
            model_sha256=str(data["model_sha256"]), video_sha256=str(data["video_sha256"]),
            conf_threshold=float(data["conf_threshold"]))


def freeze(model: Path, video: Path, out: Path, *, threads: int = 2, conf: float = CONF_THRESHOLD,
           classes: Optional[Sequence[int]] = None, progress: bool = True, rect: bool = False) -> FrozenDetections:
    """Run the detector on every frame of ``video`` and write the result to ``out`` (atomically);
    ``rect`` runs it with rectangular inference (see :class:`~edge_runtime.vision.detector.Detector`)."""
    import cv2

    from edge_runtime.vision.detector import Detector

    detector = Detector(model, threads=threads, conf_threshold=conf, classes=classes, rect=rect)
    capture = cv2.VideoCapture(str(video))
    fps = float(capture.get(cv2.CAP_PROP_FPS)) or 10.0
    boxes: List[np.ndarray] = []
    scores: List[np.ndarray] = []
    class_ids: List[np.ndarray] = []
    size = (0, 0)
    t0 = time.perf_counter()
    while True:
        ok, image = capture.read()
        if not ok:
            break
        size = (image.shape[1], image.shape[0])
        det = detector.detect(image)
        boxes.append(det.xyxy)
        scores.append(det.score)
        class_ids.append(det.class_id)
        if progress and len(boxes) % 100 == 0:
            print(f"  {video.name}: {len(boxes)} frames ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    capture.release()
    offsets = np.cumsum([0] + [len(b) for b in boxes]).astype(np.int64)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez_compressed(
        tmp, xyxy=np.concatenate(boxes).astype(np.float32), score=np.concatenate(scores).astype(np.float32),
        class_id=np.concatenate(class_ids).astype(np.int32), offsets=offsets, fps=np.float64(fps),
        frame_size=np.array(size, np.int64), model_sha256=np.str_(sha256_file(model)),
        video_sha256=np.str_(sha256_file(video)), conf_threshold=np.float64(conf))
    tmp.replace(out)
    return load_frozen(out)


def committed_path(video_asset: str, model_name: str = "yolov8s-person") -> Path:
    """Where the committed detections of ``model_name`` on ``video_asset`` live."""
    return TRUTH_DIR / "detections" / f"{video_asset}.{model_name}.npz"


def frozen_for(video_asset: str, model: Optional[Path] = None, *, model_name: str = "yolov8s-person",
               threads: int = 2, rect: bool = False) -> FrozenDetections:
    """Detections of a model on a built-in video: the committed file for the built-in fp32 detector,
    else a cached run (made on first use) keyed by the model file's sha256 (and ``rect``)."""
    from edge_runtime.assets import ensure

    if model is None and not rect:
        path = committed_path(video_asset, model_name)
        if path.exists():
            return load_frozen(path)
    model = ensure(model_name) if model is None else model
    video = ensure(video_asset)
    out = CACHE_DIR / f"{video_asset}.{sha256_file(model)[:16]}{'.rect' if rect else ''}.npz"
    if out.exists():
        return load_frozen(out)
    return freeze(model, video, out, threads=threads, rect=rect)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from edge_runtime.assets import ensure

    parser = argparse.ArgumentParser(description="Freeze the built-in detector's output on the built-in videos")
    parser.add_argument("videos", nargs="*", default=["vtest-video", "bikes-video"])
    parser.add_argument("--model", default="yolov8s-person")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    for video in args.videos:
        frozen = freeze(ensure(args.model), ensure(video), committed_path(video, args.model), threads=args.threads)
        print(f"{video}: {frozen.num_frames} frames, {frozen.score.size} boxes -> {committed_path(video, args.model)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
