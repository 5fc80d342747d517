"""Cross-modal time offset: how far a camera's timeline is from an IMU's, found by correlating a segment's
angular velocity seen by both.

The camera gives the in-image angle of the segment (proximal to distal keypoint); its rate is the
segment's rotation about the viewing axis, which for a segment swinging across the view (a shank seen
from the side while walking) is its angular velocity in the plane of motion. A keypoint detector's error
is heavy-tailed and slowly drifting (docs/simulation.md, "The detector model against MoveNet"), and
differencing consecutive frames amplifies it, so the rate is the slope of a local cubic fitted to the
angle over ``half_window_s`` either side of each frame, weighted by confidence and made robust by
bisquare reweighting (Cleveland 1979, robust locally weighted regression; Beaton & Tukey 1974's 4.685
scale units), started from a Theil-Sen line (Sen 1968) so that an outlier at a window's edge cannot
hide itself by pulling the cubic. With evenly spaced frames and no reweighting it is the Savitzky &
Golay 1964 derivative filter; here the frames come as they are: dropped, jittered. A cubic rather
than a quadratic follows the sharp turns of a movement (a foot strike) where the reweighting would
otherwise discount one side of the window. Only frames whose window is seen on both sides give a
rate: a one-sided fit at the edge of an occlusion is biased, and occlusions recur at the same phase of
a movement, so that bias would not average out.

The gyroscope gives the same rotation, signed, about the segment's dominant axis: the principal axis of
the angular velocity over the recording (the mediolateral axis of a swinging shank; a camera in front
sees the frontal-plane rotation instead, which the dominant axis does not carry). Its projection, less
its mean (the gyroscope's bias: a swinging segment makes no net turn), is smoothed by the local fit's
equivalent kernel over the same half-width, so that both signals see the same band. Both are resampled
onto a common grid (with validity: nothing across gaps) and compared over lags up to ``max_lag_s`` by
the uncentred correlation (Tucker's 1951 congruence coefficient) over the samples valid in both: the
camera's rate keeps its own zero, as the rate of a bounded angle has one. Re-centring at each lag would
let a time shift pass for a constant where the camera sees only one phase of a movement (an ankle
hidden around every foot strike), so that many lags fit alike. The camera's sign convention and the
strap's mounting fix the sign, which is not known here: the peak of the correlation's magnitude is
taken, refined to a fraction of a grid step by the parabola through it and its neighbours.

The confidence is that magnitude at the peak. The estimate is "insufficient data", with the reason,
when the confidence is below ``min_correlation``; when another lobe of the correlation (another cycle of
a rhythm, or the mirror image of another phase, the sign being unknown) comes within ``min_margin`` of
the peak; when the camera's rate is less than ``min_gain`` times the IMU's at that lag (least squares:
the camera looks along the plane of motion and sees another rotation; ``MIN_GAIN``); or when the lag's
delete-a-block jackknife standard error (Kuensch 1989) over ``blocks`` blocks of the grid, reported as
``uncertainty_s``, exceeds ``max_uncertainty_s``.
Windowed offsets along the recording give the relative skew by a least-squares line.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kinefuse.fusion.timeline import common_grid, resample

# A camera sees a segment's rotation at about cos(angle between its view and the rotation axis) of the
# strap's rate; one looking along the plane of motion (in front of a walker) sees the other planes' rotations
# instead, at gains 0.07-0.10 of the sagittal rate (measured: bench stream's front camera), correlated with
# it through the movement's coordination at a phase of their own (a confident lag 336 ms off). Three times
# that is required.
MIN_GAIN = 0.3
HALF_WINDOW_S = 0.2  # the angle's local fit: ±6 frames at 30 fps
_DEGREE = 3  # of the local polynomial; the IMU's matching kernel is computed from the same
_BISQUARE = 4.685 * 1.4826  # Beaton & Tukey's tuning constant, in median absolute residuals


@dataclasses.dataclass(frozen=True)
class OffsetEstimate:
    """Add ``offset_s`` to the camera's times to put them on the IMU's timeline."""

    offset_s: float | None
    confidence: float  # |uncentred correlation| at the chosen lag (0 when nothing could be compared)
    samples: int  # grid samples valid in both streams
    reason: str = ""  # why offset_s is None
    uncertainty_s: float | None = None  # jackknife standard error of the lag

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
                       max_gap_s: float = 0.1, half_window_s: float = HALF_WINDOW_S,
                       iterations: int = 2) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """In-image angular rate (rad/s) of the segment from keypoint ``proximal`` to ``distal``, at the times
    of frames that see both keypoints (above ``min_confidence``) and whose neighbours within
    ``half_window_s`` either side, joined by steps of at most ``max_gap_s``, reach to both ends of the
    window: the slope of a cubic fitted to the angle there, weighted by the lesser confidence and made
    robust to outliers by ``iterations`` rounds of bisquare reweighting (Cleveland 1979)."""
    times = np.asarray(times, dtype=np.float64)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    order = np.argsort(times, kind="stable")
    times, keypoints = times[order], keypoints[order]
    vector = keypoints[:, distal, :2] - keypoints[:, proximal, :2]
    confidence = keypoints[:, [proximal, distal], 2]
    seen = (confidence > min_confidence).all(axis=1) & np.isfinite(vector).all(axis=1)
    # a repeated stamp (a stamp dropped) says nothing new
    seen &= np.concatenate([[True], np.diff(times) > 0])
    t, angle, weight = times[seen], np.arctan2(vector[seen, 1], vector[seen, 0]), confidence[seen].min(axis=1)
    n = len(t)
    if n < _DEGREE + 2:
        return np.empty(0), np.empty(0)
    step = float(np.median(np.diff(t)))
    reach = int(np.ceil(half_window_s / step)) + 1
    neighbour = np.arange(n)[:, None] + np.arange(-reach, reach + 1)[None, :]
    inside = (neighbour >= 0) & (neighbour < n)
    neighbour = np.clip(neighbour, 0, n - 1)
    dt = t[neighbour] - t[:, None]
    run = np.cumsum(np.concatenate([[0], np.diff(t) > max_gap_s]))  # frames joined by short steps
    inside &= (np.abs(dt) <= half_window_s + 1e-9) & (run[neighbour] == run[:, None])
    edge = half_window_s - 1.5 * step  # the window is seen to within a frame and a half of both ends
    usable = (np.where(inside, dt, np.inf).min(axis=1) <= -edge) & (
        np.where(inside, dt, -np.inf).max(axis=1) >= edge
    )
    usable &= inside.sum(axis=1) >= _DEGREE + 2
    neighbour, inside, u = neighbour[usable], inside[usable], dt[usable] / half_window_s
    if not len(neighbour):
        return np.empty(0), np.empty(0)
    # angles relative to the frame's own, so the fit never meets the ±π wrap
    y = (angle[neighbour] - angle[usable][:, None] + np.pi) % (2 * np.pi) - np.pi
    prior = np.where(inside, weight[neighbour], 0.0)
    rows = max(1, 2**20 // inside.shape[1] ** 2)  # a bounded working set, however long the recording
    slope = np.concatenate([_robust_slope(y[i : i + rows], u[i : i + rows], inside[i : i + rows],
                                          prior[i : i + rows], iterations)
                            for i in range(0, len(y), rows)])  # fmt: skip
    return t[usable], slope / half_window_s


def _robust_slope(y: np.ndarray, u: np.ndarray, inside: np.ndarray, prior: np.ndarray, iterations: int):
    """Per row, the slope at u = 0 of the cubic fitted to (u, y) where ``inside``, weighted by ``prior``
    and bisquare-reweighted ``iterations`` times."""
    design = np.stack([u**power for power in range(_DEGREE + 1)], axis=-1)
    # the first weights from the residuals of a Theil-Sen line (Sen 1968), which a point far off at the
    # window's edge cannot pull, as it pulls a least-squares cubic there
    # (a row's neighbours are in time order, so its pairs j < k inside are those with u_j < u_k)
    first, second = np.triu_indices(u.shape[1], 1)
    pair = inside[:, first] & inside[:, second]
    pairwise = (y[:, second] - y[:, first]) / np.where(pair, u[:, second] - u[:, first], 1.0)
    slope = _row_median(pairwise, pair)
    level = _row_median(y - slope * u, inside)
    w = prior * _bisquare(np.abs(y - level - slope * u), inside)
    for iteration in range(iterations + 1):
        weighted = np.swapaxes(w[:, :, None] * design, 1, 2)  # rows x powers x neighbours
        normal = weighted @ design + 1e-12 * np.eye(_DEGREE + 1)
        coefficients = np.linalg.solve(normal, weighted @ y[:, :, None])[..., 0]
        if iteration < iterations:
            w = prior * _bisquare(np.abs(y - (design @ coefficients[:, :, None])[..., 0]), inside)
    return coefficients[:, 1]


def _row_median(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per row (as a column), the median of ``values`` where ``inside``; every row has some. One sort of
    the whole block: numpy's nanmedian takes a masked-array path per call for rows this short."""
    ordered = np.sort(np.where(inside, values, np.inf), axis=1)
    count = inside.sum(axis=1)[:, None]
    return 0.5 * (np.take_along_axis(ordered, (count - 1) // 2, axis=1)
                  + np.take_along_axis(ordered, count // 2, axis=1))  # fmt: skip


def _bisquare(residual: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Tukey's bisquare weights of each row's residuals, scaled by the row's median absolute residual."""
    scale = _BISQUARE * _row_median(residual, inside)
    ratio = residual / np.maximum(scale, 1e-12)  # the floor: an exact fit leaves nothing to reweight
    return np.where(inside & (ratio < 1.0), (1.0 - ratio * ratio) ** 2, 0.0)


def estimate_offset(imu_times, gyr, camera_times, angle_rate, *, max_lag_s: float = 0.5, rate_hz: float = 200.0,
                    min_correlation: float = 0.5, min_samples: int = 400, smoothing_s: float = HALF_WINDOW_S,
                    min_margin: float = 0.1, min_gain: float = MIN_GAIN, max_uncertainty_s: float = 0.01,
                    blocks: int = 10) -> OffsetEstimate:  # fmt: skip
    """The offset to add to camera times (of ``angle_rate``, from ``segment_angle_rate`` with
    ``half_window_s`` = ``smoothing_s``) to match the IMU's (``gyr``: angular velocity, n x 3 or n)."""
    imu_times, camera_times = (
        np.asarray(imu_times, dtype=np.float64),
        np.asarray(camera_times, dtype=np.float64),
    )
    gyr, angle_rate = np.asarray(gyr, dtype=np.float64), np.asarray(angle_rate, dtype=np.float64)
    if len(imu_times) < 2 or len(camera_times) < 2:
        return OffsetEstimate(
            None, 0.0, 0, f"insufficient data: fewer than {min_samples} samples seen by both"
        )
    start = max(imu_times[0], camera_times[0]) - max_lag_s
    end = min(imu_times[-1], camera_times[-1]) + max_lag_s
    if end - start <= 2 * max_lag_s:
        return OffsetEstimate(None, 0.0, 0, "insufficient data: the IMU and camera recordings do not overlap")
    grid = common_grid(start, end, rate_hz)
    imu, valid_imu = resample(*_ordered(imu_times, _dominant_rate(gyr)), grid, max_gap_s=0.1)
    imu, valid_imu = _smoothed(imu, valid_imu, smoothing_s, rate_hz)
    if valid_imu.any():
        imu = imu - imu[valid_imu].mean()  # the gyroscope's bias: a swinging segment's mean rate is nil
    cam, valid_cam = resample(*_ordered(camera_times, angle_rate), grid, max_gap_s=0.1)
    imu, cam = np.where(valid_imu, imu, 0.0), np.where(valid_cam, cam, 0.0)
    sums = _lagged_sums(imu, valid_imu, cam, valid_cam, int(max_lag_s * rate_hz), blocks)
    counts = sums[:, 3].sum(axis=1)
    scores = _scores(sums.sum(axis=2), counts >= min_samples)
    lag, best = _peak(scores)
    if best < 0:
        return OffsetEstimate(
            None, 0.0, 0, f"insufficient data: fewer than {min_samples} samples seen by both"
        )
    peak, samples = float(scores[best]), int(counts[best])
    if peak < min_correlation:
        return OffsetEstimate(
            None, peak, samples, f"insufficient data: correlation {peak:.2f} < {min_correlation}"
        )
    gain = abs(sums[best, 0].sum() / sums[best, 1].sum())  # least squares: camera rate = gain x IMU rate
    if gain < min_gain:
        return OffsetEstimate(None, peak, samples,
                              f"insufficient data: the camera sees {gain:.2f} of the rotation the strap measures "
                              f"(less than {min_gain}): it looks along the plane of motion")  # fmt: skip
    rival = _rival(scores, best)
    if rival is not None and scores[rival] > peak - min_margin:
        return OffsetEstimate(None, peak, samples,
                              f"insufficient data: a lag {(rival - best) / rate_hz * 1e3:+.0f} ms away fits about as "
                              f"well (correlation {scores[rival]:.2f} against {peak:.2f})")  # fmt: skip
    left_out = np.array([_peak(_scores(sums.sum(axis=2) - sums[:, :, k], counts - sums[:, 3, k] >= min_samples))[0]
                         for k in range(blocks)])  # fmt: skip
    uncertainty = float(np.sqrt((blocks - 1) / blocks * np.sum((left_out - left_out.mean()) ** 2)) / rate_hz)
    if not uncertainty <= max_uncertainty_s:
        return OffsetEstimate(None, peak, samples,
                              f"insufficient data: lag uncertain by {uncertainty * 1e3:.1f} ms "
                              f"(more than {max_uncertainty_s * 1e3:g})", uncertainty)  # fmt: skip
    return OffsetEstimate(float(lag / rate_hz), peak, samples, uncertainty_s=uncertainty)


def _lagged_sums(imu, valid_imu, cam, valid_cam, max_lag: int, blocks: int) -> np.ndarray:
    """Per lag (-max_lag..max_lag grid steps, IMU sample i paired with camera sample i - lag) and per block
    of IMU samples: the sums of imu * cam, imu², cam² and the count over the pairs valid in both (``imu``
    and ``cam`` are zero where not valid). Each block's sums over all lags are one correlation (C loops, not
    one Python pass per lag: this runs beside the live stream, and a Python loop holds the GIL)."""
    n = len(imu)
    valid_imu, valid_cam = valid_imu.astype(np.float64), valid_cam.astype(np.float64)
    pairs = ((imu, cam), (imu * imu, valid_cam), (valid_imu, cam * cam), (valid_imu, valid_cam))
    padded = [np.pad(camera, max_lag) for _, camera in pairs]  # no camera sample beyond the grid's ends
    edges = [(k * n + blocks - 1) // blocks for k in range(blocks + 1)]  # block k: i * blocks // n == k
    sums = np.zeros((2 * max_lag + 1, 4, blocks))
    for k in range(blocks):
        start, end = edges[k], edges[k + 1]
        for column, ((imu_side, _), camera) in enumerate(zip(pairs, padded, strict=True)):
            # correlate's output m pairs imu[i] with padded[i + m], i.e. camera sample i - (max_lag - m)
            sums[:, column, k] = np.correlate(camera[start : end + 2 * max_lag], imu_side[start:end])[::-1]
    return sums


def _dominant_rate(gyr: np.ndarray) -> np.ndarray:
    """Angular velocity about its principal axis (of the uncentred second moment), signed."""
    if gyr.ndim == 1:
        return gyr
    finite = np.isfinite(gyr).all(axis=1)
    if not finite.any():
        return np.full(len(gyr), np.nan)
    axis = np.linalg.svd(gyr[finite], full_matrices=False)[2][0]
    return gyr @ axis


def _smoothed(values: np.ndarray, valid: np.ndarray, half_width_s: float, rate_hz: float):
    """``values`` (a rate on the grid) through the local fit's equivalent kernel, valid where the whole
    window is."""
    kernel = _equivalent_kernel(int(round(half_width_s * rate_hz)))
    total = np.convolve(np.where(valid, values, 0.0), kernel, mode="same")
    whole = np.convolve(valid.astype(np.float64), np.ones(len(kernel)), mode="same") > len(kernel) - 0.5
    return np.where(whole, total, np.nan), whole


def _equivalent_kernel(m: int) -> np.ndarray:
    """Weights (2m + 1, summing to 1) that a rate sampled evenly gets in the slope of the local polynomial
    fitted to its integral over ±m samples: the slope is sum_j w_j angle_j, and angle_j sums the rate
    over the steps before sample j, so the step from i to i + 1 weighs sum_{j > i} w_j; each step's weight
    is shared between its two ends. A quadratic gives the Epanechnikov kernel; a cubic, a narrower one
    with negative flanks."""
    if m < 1:
        return np.ones(1)
    u = np.arange(-m, m + 1) / m
    slope = np.linalg.pinv(np.stack([u**power for power in range(_DEGREE + 1)], axis=-1))[1]
    steps = np.cumsum(slope[::-1])[::-1][1:]  # the 2m steps between samples
    kernel = 0.5 * (np.concatenate([[0.0], steps]) + np.concatenate([steps, [0.0]]))
    return kernel / kernel.sum()


def _scores(sums: np.ndarray, enough: np.ndarray) -> np.ndarray:
    """The magnitude of the uncentred correlation per lag, from per-lag sums of a*b, a^2, b^2 (NaN where
    too few samples are valid in both)."""
    denominator = np.sqrt(sums[:, 1] * sums[:, 2])
    positive = enough & (denominator > 0)
    return np.where(positive, np.abs(sums[:, 0]) / np.where(positive, denominator, 1.0), np.nan)


def _peak(scores: np.ndarray) -> tuple[float, int]:
    """The highest score's lag in grid steps from the middle, refined by a parabola, and its index."""
    if not np.isfinite(scores).any():
        return np.nan, -1
    best = int(np.nanargmax(scores))
    refine = 0.0
    if 0 < best < len(scores) - 1 and np.isfinite(scores[best - 1]) and np.isfinite(scores[best + 1]):
        curvature = scores[best - 1] - 2 * scores[best] + scores[best + 1]
        if curvature < 0:
            refine = 0.5 * (scores[best - 1] - scores[best + 1]) / curvature
    return best - len(scores) // 2 + refine, best


def _rival(scores: np.ndarray, best: int) -> int | None:
    """The index of the highest score outside the best one's lobe (where the scores fall away from it)."""
    finite = np.where(np.isfinite(scores), scores, -np.inf)
    left = best
    while left > 0 and finite[left - 1] <= finite[left]:
        left -= 1
    right = best
    while right < len(finite) - 1 and finite[right + 1] <= finite[right]:
        right += 1
    outside = np.concatenate([finite[:left], np.full(right - left + 1, -np.inf), finite[right + 1 :]])
    return int(np.argmax(outside)) if np.isfinite(outside).any() else None


def _ordered(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples in time order, keeping the first of any with the same time (aligned clocks can tie)."""
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order]
    keep = np.concatenate([[True], np.diff(times) > 0])
    return times[keep], values[keep]


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
