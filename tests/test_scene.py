"""Scene cuts on real video: the sampled thumbnail flags exactly the frames a whole-frame average flags.

bikes.mp4 is a cut-edited street clip (5 cuts between consecutive frames); vtest.avi is one fixed camera.
The reference thumbnail averages every pixel (grey, then area-resized to 32x18); the detector's samples a
grid of about 128x72 pixels. Both must flag the same processed frames at strides 1-4, and the measured
differences must agree to within 1.5 grey levels, far inside the threshold's margin.
"""

from __future__ import annotations

import numpy as np
import pytest

from edge_runtime.assets import ensure
from edge_runtime.errors import InputError
from edge_runtime.vision.scene import SceneCutDetector
from edge_runtime.vision.sources import VideoFileSource


def _frames(video: str) -> list:
    """Every frame, through the pipeline's own file source."""
    with VideoFileSource(ensure(video)) as source:
        return [frame.image for frame in source]


def _whole_frame_thumbnail(frame: np.ndarray) -> np.ndarray:
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, SceneCutDetector.SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)


@pytest.mark.parametrize("video, cuts_at_stride_1", [("bikes-video", 5), ("vtest-video", 0)])
def test_sampled_thumbnail_flags_the_same_cuts_as_a_whole_frame_average(video, cuts_at_stride_1):
    frames = _frames(video)
    for stride in (1, 2, 3, 4):
        detector = SceneCutDetector()
        flagged, ours, reference = [], [], []
        previous = None
        for index in range(0, len(frames), stride):
            if detector.update(frames[index]):
                flagged.append(index)
            thumb = _whole_frame_thumbnail(frames[index])
            if previous is not None:
                ours.append(detector.last_difference)
                reference.append(float(np.abs(thumb - previous).mean()))
            previous = thumb
        expected = [index for index, diff in zip(range(stride, len(frames), stride), reference)
                    if diff > detector.threshold]
        assert flagged == expected, (video, stride)
        assert np.abs(np.array(ours) - np.array(reference)).max() < 1.5, (video, stride)
        if stride == 1:
            assert len(flagged) == cuts_at_stride_1


@pytest.mark.parametrize("h, w", [(576, 768), (272, 640), (1080, 1920), (37, 53), (5, 7), (1, 1), (18, 2000)])
def test_native_thumbnail_equals_the_reference_exactly(h, w):
    from edge_runtime import _native, reference

    rng = np.random.default_rng(h * 7919 + w)
    for frame in (rng.integers(0, 256, (h, w, 3), np.uint8), np.full((h, w, 3), 117, np.uint8)):
        got = _native.grey_thumbnail(frame, 18, 32)
        np.testing.assert_array_equal(got, reference.grey_thumbnail(frame, 18, 32))
        assert got.shape == (18, 32) and got.dtype == np.float32
    assert (got == 117).all()  # a flat frame's thumbnail is flat


def test_samples_are_grey_as_opencv_converts_them():
    import cv2

    from edge_runtime import _native

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, (72, 128, 3), np.uint8)  # one sample per pixel, one per thumbnail cell (1x1)
    np.testing.assert_array_equal(_native.grey_thumbnail(frame, 72, 128, 1),
                                  cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY).astype(np.float32))


@pytest.mark.parametrize("frame", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                   np.zeros((10, 10, 4), np.uint8), [[0, 0, 0]]])
def test_bad_frames_are_refused(frame):
    from edge_runtime.errors import InputError

    with pytest.raises(InputError, match=r"expected an \(H, W, 3\) uint8 BGR frame"):
        SceneCutDetector().update(frame)


def test_a_cropped_view_gives_the_thumbnail_of_its_copy():
    frame = np.random.default_rng(4).integers(0, 256, (300, 500, 3), np.uint8)
    crop = frame[20:280, 40:460]
    detector = SceneCutDetector()
    np.testing.assert_array_equal(detector.thumbnail(crop), detector.thumbnail(np.ascontiguousarray(crop)))


def test_the_difference_is_opencvs_mean_l1_norm_exactly():
    """Thumbnails hold whole grey levels, so summing |a - b| in double is exact whatever the order."""
    import cv2

    from edge_runtime import _native

    rng = np.random.default_rng(11)
    for _ in range(20):
        a, b = (rng.integers(0, 256, (18, 32)).astype(np.float32) for _ in range(2))
        assert _native.mean_abs_difference(a, b) == cv2.norm(a, b, cv2.NORM_L1) / a.size
        assert _native.mean_abs_difference(a, b) == float(np.abs(a.astype(np.float64) - b).mean())
    assert _native.mean_abs_difference(a, a) == 0.0


@pytest.mark.parametrize("small", [np.zeros((18, 31), np.float32), np.zeros((18, 32), np.float64),
                                   np.zeros((32, 18), np.float32).T, [[0.0] * 32] * 18, None])
def test_a_bad_thumbnail_is_refused_first_or_later_and_the_previous_one_kept(small):
    cut = SceneCutDetector()
    with pytest.raises(InputError, match=r"expected an \(18, 32\) float32"):
        cut.compare(small)  # as the first thumbnail
    good = np.zeros((18, 32), np.float32)
    assert cut.compare(good) is False
    with pytest.raises(InputError, match=r"expected an \(18, 32\) float32"):
        cut.compare(small)
    assert cut.compare(np.full((18, 32), 200, np.float32)) is True  # compared with the kept good one
