"""Motion gate on the real pedestrian video (people walk: motion) and on frames that do not change."""

from __future__ import annotations

from typing import List

import numpy as np
import pytest

from edge_runtime.assets import ensure
from edge_runtime.errors import InputError
from edge_runtime.vision.motion import MotionGate

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless has no wheel for this platform (armv7)")


@pytest.fixture(scope="module")
def walk() -> List[np.ndarray]:
    """Frames 200..239 of vtest.avi: 3-9 people walking across a fixed camera's view."""
    cap = cv2.VideoCapture(str(ensure("vtest-video")))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 200)
    frames = []
    for _ in range(40):
        ok, image = cap.read()
        assert ok
        frames.append(image)
    cap.release()
    return frames


def test_walkers_are_motion(walk: List[np.ndarray]) -> None:
    gate = MotionGate(threshold=0.002, max_skip=1000)
    decisions = [gate.update(f) for f in walk]
    assert decisions[0].run and decisions[0].reason == "first frame"
    moving = decisions[1:]
    assert all(d.motion and d.run and d.reason == "motion" for d in moving), \
        [round(d.changed_fraction, 4) for d in moving]
    # Walkers cover a few percent of the picture, not most of it: the fraction measures them, not noise.
    fractions = np.array([d.changed_fraction for d in moving])
    assert 0.005 < np.median(fractions) < 0.2


def test_a_repeated_frame_is_still_and_max_skip_forces_a_run(walk: List[np.ndarray]) -> None:
    gate = MotionGate(threshold=0.002, max_skip=5)
    decisions = [gate.update(walk[0].copy()) for _ in range(16)]
    assert [d.changed_fraction for d in decisions] == [0.0] * 16
    assert not any(d.motion for d in decisions)
    assert [i for i, d in enumerate(decisions) if d.run] == [0, 5, 10, 15]
    assert [d.reason for d in decisions[:6]] == ["first frame", "still", "still", "still", "still", "max skip"]
    assert (gate.frames, gate.runs) == (16, 4)


def test_motion_after_stillness_runs_at_once(walk: List[np.ndarray]) -> None:
    gate = MotionGate(threshold=0.002, max_skip=100)
    for _ in range(5):
        gate.update(walk[0])
    assert gate.update(walk[10]).run  # a second later the walkers have moved


def test_changed_fraction_measures_the_changed_area() -> None:
    """A white square on black covering a known share of the picture; blur only softens its edge."""
    gate = MotionGate(threshold=0.0, max_skip=1000, width_px=160, blur_px=5, pixel_delta=20)
    black = np.zeros((480, 640, 3), np.uint8)
    lit = black.copy()
    lit[100:300, 200:400] = 255  # 200 x 200 of 480 x 640 = 13.0 %
    gate.update(black)
    d = gate.update(lit)
    assert d.motion and d.changed_fraction == pytest.approx(200 * 200 / (480 * 640), rel=0.1)
    tiny = MotionGate(threshold=0.01, max_skip=1000)
    tiny.update(black)
    dot = black.copy()
    dot[240:244, 320:324] = 255  # 16 px of 307 200: below any sensible threshold
    assert not tiny.update(dot).motion


def test_still_object_fades_into_the_background(walk: List[np.ndarray]) -> None:
    gate = MotionGate(threshold=0.002, max_skip=1000, background_rate=0.2)
    gate.update(walk[0])
    decisions = [gate.update(walk[20]) for _ in range(40)]  # the scene changed once, then froze
    assert decisions[0].motion
    assert not decisions[-1].motion and decisions[-1].changed_fraction < 0.002


def test_resolution_change_resets_and_runs(walk: List[np.ndarray]) -> None:
    gate = MotionGate(max_skip=1000)
    gate.update(walk[0])
    gate.update(walk[0])
    d = gate.update(cv2.resize(walk[0], (384, 288)))
    assert d.run and d.reason == "first frame"


@pytest.mark.parametrize("bad", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                 np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10, 4), np.uint8), "frame"])
def test_bad_frames_raise(bad) -> None:
    with pytest.raises(InputError, match="MotionGate.update"):
        MotionGate().update(bad)


@pytest.mark.parametrize("kw", [{"threshold": -0.1}, {"threshold": 1.5}, {"max_skip": 0}, {"max_skip": 2.5},
                                {"width_px": 4}, {"blur_px": 4}, {"pixel_delta": 300}, {"background_rate": 0.0}])
def test_bad_arguments_raise(kw) -> None:
    with pytest.raises(InputError, match="MotionGate"):
        MotionGate(**kw)
