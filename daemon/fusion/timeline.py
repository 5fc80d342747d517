"""Resampling streams onto a common timeline, with per-sample validity.

A grid time is valid when it lies between two samples of the stream that are at most ``max_gap_s`` apart
(or on a sample): then the value is interpolated between them, linearly for vectors and by slerp for
quaternions. Elsewhere (before the first sample, after the last, inside a longer gap) it is invalid and
NaN: nothing is made up across a gap.
"""

from __future__ import annotations

import numpy as np


def brackets(
    times: np.ndarray, grid: np.ndarray, max_gap_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each grid time: the index of the sample at or before it, the fraction towards the next, and
    whether that interval is usable."""
    times, grid = np.asarray(times, dtype=np.float64), np.asarray(grid, dtype=np.float64)
    if times.ndim != 1 or len(times) < 1:
        raise ValueError("times must be a non-empty 1-D array")
    if np.any(np.diff(times) <= 0):
        raise ValueError("times must increase")
    if not max_gap_s > 0:
        raise ValueError(f"max_gap_s must be positive, got {max_gap_s!r}")
    right = np.clip(np.searchsorted(times, grid, side="right"), 1, len(times) - 1) if len(times) > 1 else None
    if right is None:  # a single sample: valid only exactly on it
        return np.zeros(len(grid), dtype=int), np.zeros(len(grid)), grid == times[0]
    left = right - 1
    span = times[right] - times[left]
    fraction = (grid - times[left]) / span
    on_sample = (grid == times[left]) | (grid == times[right])
    valid = ((fraction >= 0.0) & (fraction <= 1.0) & (span <= max_gap_s)) | on_sample
    return left, np.clip(fraction, 0.0, 1.0), valid


def resample(times, values, grid, max_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Values (n, ...) at ``times`` (n,) linearly interpolated at ``grid`` (m,); returns (m, ...) values and
    the (m,) validity mask. NaN samples make the intervals next to them invalid."""
    values = np.asarray(values, dtype=np.float64)
    left, fraction, valid = brackets(times, grid, max_gap_s)
    right = np.minimum(left + 1, len(values) - 1)
    weight = fraction.reshape(-1, *([1] * (values.ndim - 1)))
    out = (1.0 - weight) * values[left] + weight * values[right]
    finite = np.isfinite(out.reshape(len(out), -1)).all(axis=1)
    valid = valid & finite
    out[~valid] = np.nan
    return out, valid


def resample_quaternions(times, quaternions, grid, max_gap_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit quaternions (n, 4; w, x, y, z) slerped at ``grid``; returns (m, 4) and the validity mask."""
    q = np.asarray(quaternions, dtype=np.float64)
    left, fraction, valid = brackets(times, grid, max_gap_s)
    out = slerp(q[left], q[np.minimum(left + 1, len(q) - 1)], fraction)
    valid = valid & np.isfinite(out).all(axis=1)
    out[~valid] = np.nan
    return out, valid


def slerp(a: np.ndarray, b: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Unit quaternions (m, 4) the ``fraction`` (m,) of the way from ``a`` to ``b`` (m, 4), the shorter way
    round (Shoemake, "Animating rotation with quaternion curves", SIGGRAPH 1985)."""
    dot = np.sum(a * b, axis=1)
    b = np.where(dot[:, None] < 0, -b, b)  # the shorter way round
    dot = np.abs(dot)
    angle = np.arccos(np.clip(dot, -1.0, 1.0))
    small = angle < 1e-9
    sin_angle = np.where(small, 1.0, np.sin(angle))
    wa = np.where(small, 1.0 - fraction, np.sin((1.0 - fraction) * angle) / sin_angle)
    wb = np.where(small, fraction, np.sin(fraction * angle) / sin_angle)
    out = wa[:, None] * a + wb[:, None] * b
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def common_grid(start_s: float, end_s: float, rate_hz: float) -> np.ndarray:
    """Grid times k / rate_hz covering [start_s, end_s]."""
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
    return np.arange(np.ceil(start_s * rate_hz), np.floor(end_s * rate_hz) + 1) / rate_hz
