"""Cross-modal time offset: how far a camera's timeline is from an IMU's, found by correlating a segment's
angular speed seen by both.

The IMU gives the segment's angular speed |gyr| directly. The camera gives the in-image angle of the
segment (proximal to distal keypoint), whose rate is the rotation about the viewing axis; for a segment
swinging across the view (a shank seen from the side while walking) it carries the same rhythm. Both
are resampled onto a common grid (with validity: nothing across gaps), standardised over the samples
valid in both, and correlated over lags up to ``max_lag_s``; the best lag is refined to a fraction of a
grid step by the parabola through the peak and its neighbours. The confidence is the Pearson correlation
at that lag; below ``min_correlation`` the estimate is "insufficient data" with the reason.
Windowed offsets along the recording give the relative skew by a least-squares line.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kinefuse.fusion.timeline import common_grid, resample


@dataclasses.dataclass(frozen=True)
class OffsetEstimate:
    """Add ``offset_s`` to the camera's times to put them on the IMU's timeline."""

    offset_s: float | None
    confidence: float  # Pearson correlation at the chosen lag (0 when nothing could be compared)
    samples: int  # grid samples valid in both streams
    reason: str = ""  # why offset_s is None

    @property
    def sufficient(self) -> bool:
        return self.offset_s is not None


@dataclasses.dataclass(frozen=True)
class SkewEstimate:
    """The camera's timeline runs ``skew_ppm`` fast relative to the IMU's; ``offset_s`` at ``reference_s``."""

    skew_ppm: float | None
    offset_s: float | None
    reference_s: float
    windows: int
    uncertainty_ppm: float | None = None  # standard error of the slope
    reason: str = ""


def segment_angle_rate(times, keypoints, proximal: int, distal: int, min_confidence: float = 0.3,
                       max_gap_s: float = 0.1) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """In-image angular rate (rad/s) of the segment from keypoint ``proximal`` to ``distal``, at the midpoints
    of consecutive frames that both see both keypoints and are at most ``max_gap_s`` apart."""
    times = np.asarray(times, dtype=np.float64)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    vector = keypoints[:, distal, :2] - keypoints[:, proximal, :2]
    seen = (keypoints[:, [proximal, distal], 2] > min_confidence).all(axis=1) & np.isfinite(vector).all(
        axis=1
    )
    angle = np.arctan2(vector[:, 1], vector[:, 0])
    step = np.diff(times)
    # two frames stamped alike (a dropped stamp repeated) give no rate at all
    usable = seen[1:] & seen[:-1] & (step > 0) & (step <= max_gap_s)
    change = (np.diff(angle) + np.pi) % (2 * np.pi) - np.pi
    return (times[1:] + times[:-1])[usable] / 2, change[usable] / step[usable]


def estimate_offset(imu_times, gyr, camera_times, angle_rate, *, max_lag_s: float = 0.5, rate_hz: float = 200.0,
                    min_correlation: float = 0.5, min_samples: int = 400) -> OffsetEstimate:  # fmt: skip
    """The offset to add to camera times (of ``angle_rate``, from ``segment_angle_rate``) to match the IMU's."""
    imu_times, camera_times = (
        np.asarray(imu_times, dtype=np.float64),
        np.asarray(camera_times, dtype=np.float64),
    )
    start = max(imu_times[0], camera_times[0]) - max_lag_s
    end = min(imu_times[-1], camera_times[-1]) + max_lag_s
    if end - start <= 2 * max_lag_s:
        return OffsetEstimate(None, 0.0, 0, "insufficient data: the IMU and camera recordings do not overlap")
    grid = common_grid(start, end, rate_hz)
    speed_imu, valid_imu = resample(*_ordered(imu_times, np.linalg.norm(gyr, axis=1)), grid, max_gap_s=0.1)
    speed_cam, valid_cam = resample(*_ordered(camera_times, np.abs(angle_rate)), grid, max_gap_s=0.1)
    lags = np.arange(-int(max_lag_s * rate_hz), int(max_lag_s * rate_hz) + 1)
    scores = np.array(
        [_correlation(speed_imu, valid_imu, speed_cam, valid_cam, lag, min_samples) for lag in lags]
    )
    if not np.isfinite(scores).any():
        return OffsetEstimate(
            None, 0.0, 0, f"insufficient data: fewer than {min_samples} samples seen by both"
        )
    best = int(np.nanargmax(scores))
    peak = float(scores[best])
    samples = int(
        np.sum(valid_imu[_shifted(len(grid), lags[best])[0]] & valid_cam[_shifted(len(grid), lags[best])[1]])
    )
    if peak < min_correlation:
        return OffsetEstimate(
            None, peak, samples, f"insufficient data: correlation {peak:.2f} < {min_correlation}"
        )
    refine = 0.0
    if 0 < best < len(lags) - 1 and np.isfinite(scores[best - 1]) and np.isfinite(scores[best + 1]):
        curvature = scores[best - 1] - 2 * peak + scores[best + 1]
        if curvature < 0:
            refine = 0.5 * (scores[best - 1] - scores[best + 1]) / curvature
    return OffsetEstimate(float((lags[best] + refine) / rate_hz), peak, samples)


def _ordered(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples in time order, keeping the first of any with the same time (aligned clocks can tie)."""
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    keep = np.concatenate([[True], np.diff(times) > 0])
    return times[keep], values[keep]


def _shifted(n: int, lag: int) -> tuple[slice, slice]:
    """Index ranges pairing IMU sample i with camera sample i - lag (the camera shifted later by lag)."""
    return (slice(lag, n), slice(0, n - lag)) if lag >= 0 else (slice(0, n + lag), slice(-lag, n))


def _correlation(a, valid_a, b, valid_b, lag: int, min_samples: int) -> float:
    ia, ib = _shifted(len(a), lag)
    both = valid_a[ia] & valid_b[ib]
    if both.sum() < min_samples:
        return np.nan
    x, y = a[ia][both], b[ib][both]
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return float(np.sum(x * y) / denominator) if denominator > 0 else np.nan


def estimate_skew(imu_times, gyr, camera_times, angle_rate, *, window_s: float = 20.0, step_s: float = 5.0,
                  max_uncertainty_ppm: float = 20.0, **options) -> SkewEstimate:  # fmt: skip
    """Offsets in windows along the recording, and the line through them: its slope is the skew, reported
    only when its standard error is within ``max_uncertainty_ppm``."""
    imu_times, camera_times = (
        np.asarray(imu_times, dtype=np.float64),
        np.asarray(camera_times, dtype=np.float64),
    )
    start, end = max(imu_times[0], camera_times[0]), min(imu_times[-1], camera_times[-1])
    centres, offsets = [], []
    for window_start in np.arange(start, end - window_s + 1e-9, step_s):
        i = (imu_times >= window_start) & (imu_times < window_start + window_s)
        c = (camera_times >= window_start) & (camera_times < window_start + window_s)
        if i.sum() < 10 or c.sum() < 10:
            continue
        estimate = estimate_offset(imu_times[i], gyr[i], camera_times[c], angle_rate[c], **options)
        if estimate.sufficient:
            centres.append(window_start + window_s / 2)
            offsets.append(estimate.offset_s)
    reference = (start + end) / 2
    if len(offsets) < 3:
        return SkewEstimate(None, None, reference, len(offsets),
                            reason=f"insufficient data: {len(offsets)} windows gave an offset, 3 needed")  # fmt: skip
    x = np.array(centres) - reference
    (slope, intercept), residuals = np.polyfit(x, offsets, 1, full=True)[:2]
    spread = np.sqrt(residuals[0] / (len(x) - 2)) if len(x) > 2 and len(residuals) else 0.0
    uncertainty = float(spread / np.sqrt(np.sum((x - x.mean()) ** 2)) * 1e6)
    # camera time + offset(t) = IMU time: an offset falling by s per second means the camera runs fast by s
    if uncertainty > max_uncertainty_ppm:
        return SkewEstimate(None, float(intercept), reference, len(offsets), uncertainty,
                            f"insufficient data: skew uncertain by {uncertainty:.0f} ppm "
                            f"(more than {max_uncertainty_ppm:g})")  # fmt: skip
    return SkewEstimate(float(-slope * 1e6), float(intercept), reference, len(offsets), uncertainty)
