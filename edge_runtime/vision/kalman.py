"""Constant-velocity Kalman filter for boxes, batched over tracks (the ByteTrack / DeepSORT model).

Shape legend: T tracks; the state ``mean`` is (T, 8) float64 ``(cx, cy, a, h, vcx, vcy, va, vh)`` with
centre (cx, cy) and height h in pixels, aspect a = w / h, velocities per frame; ``cov`` is (T, 8, 8)
float64; measurements are (T, 4) ``(cx, cy, a, h)``. Process and measurement noise scale with the box
height, as in the reference implementation (github.com/ifzhang/ByteTrack, yolox/tracker/kalman_filter.py).

Every method works on all tracks at once with a handful of NumPy calls, so the cost per frame barely
grows with the number of tracks. The transition is applied through its block structure instead of
8x8 matrix products.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["KalmanXYAH", "xyxy_to_xyah", "xyah_to_xyxy"]

# Heights below this many pixels are clamped when forming the aspect ratio and the noise scale, so a
# zero-height box can never divide by zero or make the innovation covariance singular.
_MIN_HEIGHT_PX = 1e-3
_MIN_NOISE_HEIGHT_PX = 1.0


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """(T, 4) boxes x1, y1, x2, y2 -> (T, 4) float64 cx, cy, aspect w/h, h."""
    xyxy = np.asarray(xyxy, np.float64)
    w = xyxy[:, 2] - xyxy[:, 0]
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], _MIN_HEIGHT_PX)
    return np.stack([xyxy[:, 0] + 0.5 * w, xyxy[:, 1] + 0.5 * h, w / h, h], axis=1)


def xyah_to_xyxy(state: np.ndarray) -> np.ndarray:
    """(T, >=4) states or measurements cx, cy, a, h, ... -> (T, 4) float32 boxes x1, y1, x2, y2."""
    h = state[:, 3]
    w = state[:, 2] * h
    out = np.empty((state.shape[0], 4), np.float32)
    out[:, 0] = state[:, 0] - 0.5 * w
    out[:, 1] = state[:, 1] - 0.5 * h
    out[:, 2] = state[:, 0] + 0.5 * w
    out[:, 3] = state[:, 1] + 0.5 * h
    return out


class KalmanXYAH:
    """Batched constant-velocity Kalman filter on (cx, cy, a, h).

    Args:
        std_position: position noise as a fraction of the box height (ByteTrack: 1/20).
        std_velocity: velocity noise as a fraction of the box height per frame (ByteTrack: 1/160).

    Example:
        >>> kf = KalmanXYAH()
        >>> mean, cov = kf.initiate(np.array([[50.0, 50.0, 0.5, 100.0]]))
        >>> mean, cov = kf.predict(mean, cov)
        >>> mean, cov = kf.update(mean, cov, np.array([[52.0, 50.0, 0.5, 100.0]]))
        >>> bool(mean[0, 4] > 0)   # it learnt that the box moves right
        True
    """

    def __init__(self, std_position: float = 1.0 / 20, std_velocity: float = 1.0 / 160) -> None:
        self.std_position = float(std_position)
        self.std_velocity = float(std_velocity)

    def _noise_height(self, h: np.ndarray) -> np.ndarray:
        return np.maximum(h, _MIN_NOISE_HEIGHT_PX)

    def initiate(self, xyah: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """New tracks from first measurements (T, 4): mean (T, 8) with zero velocity, cov (T, 8, 8)."""
        xyah = np.asarray(xyah, np.float64).reshape(-1, 4)
        t = xyah.shape[0]
        mean = np.zeros((t, 8))
        mean[:, :4] = xyah
        h = self._noise_height(xyah[:, 3])
        p, v = 2.0 * self.std_position * h, 10.0 * self.std_velocity * h
        std = np.stack([p, p, np.full(t, 1e-2), p, v, v, np.full(t, 1e-5), v], axis=1)
        cov = np.zeros((t, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std * std
        return mean, cov

    def predict(self, mean: np.ndarray, cov: np.ndarray, dt: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
        """``dt`` frames ahead (new arrays): x' = F x, P' = F P F^T + dt Q with F = [[I, dt I], [0, I]].

        Velocities are per frame of the nominal rate, so a tracker that processed every 3rd frame
        predicts with dt = 3 and the process noise grows in proportion to the time that passed.
        """
        t = mean.shape[0]
        h = self._noise_height(mean[:, 3])
        p, v = self.std_position * h, self.std_velocity * h
        q = np.stack([p, p, np.full(t, 1e-2), p, v, v, np.full(t, 1e-5), v], axis=1)
        new_mean = mean.copy()
        new_mean[:, :4] += dt * mean[:, 4:]
        # F P F^T by blocks, P = [[A, B], [C, D]]: [[A + dt (B + C) + dt^2 D, B + dt D], [C + dt D, D]].
        a, b, c, d = cov[:, :4, :4], cov[:, :4, 4:], cov[:, 4:, :4], cov[:, 4:, 4:]
        new_cov = np.empty_like(cov)
        new_cov[:, :4, 4:] = b + dt * d
        new_cov[:, 4:, :4] = c + dt * d
        new_cov[:, :4, :4] = a + dt * (b + c) + dt * dt * d
        new_cov[:, 4:, 4:] = d
        idx = np.arange(8)
        new_cov[:, idx, idx] += dt * (q * q)
        return new_mean, new_cov

    def update(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Correct (T, 8) states with (T, 4) measurements; returns new (mean, cov)."""
        xyah = np.asarray(xyah, np.float64).reshape(-1, 4)
        h = self._noise_height(mean[:, 3])
        p = self.std_position * h
        r = np.stack([p, p, np.full(mean.shape[0], 1e-1), p], axis=1)
        s = cov[:, :4, :4].copy()  # innovation covariance H P H^T + R
        idx = np.arange(4)
        s[:, idx, idx] += r * r
        ph = cov[:, :4, :]  # H P, (T, 4, 8)
        # K^T = S^-1 H P (S is symmetric); K S K^T = K H P.
        gain_t = np.linalg.solve(s, ph)
        innovation = xyah - mean[:, :4]
        new_mean = mean + np.einsum("tij,ti->tj", gain_t, innovation)
        new_cov = cov - np.einsum("tij,tik->tjk", gain_t, ph)
        return new_mean, new_cov
