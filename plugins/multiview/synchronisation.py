"""Post-hoc time offsets between cameras from the person's keypoint speeds (issue 15, "Synchronisation").

Every view sees the same movements at the same moments, whatever its angle: a keypoint's image speed (over
the person's size in that view, so that near and far cameras weigh alike) rises and falls together in every
view. Each camera's keypoint speeds, resampled at ``_OVERSAMPLE`` times its frame rate, are correlated with
the reference camera's, keypoint by keypoint (Pearson), and the correlations averaged, for every lag within
``max_offset_s``; the peak, refined by a parabola through it and its neighbours, is the offset. The idea is
Pose2Sim's synchronisation (Pagnon et al., "Pose2Sim: an open-source Python package for multiview
markerless kinematics", JOSS 2022: keypoint speeds correlated across views); this is written from that idea.
A pooled correlation (the limbs weighing more) was tried and gave offsets 12-16 ms off instead of 2-10 ms.

A camera is refused ("insufficient") when another peak within the window comes within ``_AMBIGUOUS`` of the
best (a periodic movement whose period fits in the window: walking's steps, 0.5-0.6 s apart, do with windows
of more than a quarter of a second or so each side), or when fewer than ``_AGREEING`` of the recording's
``_PARTS`` parts, each correlated on its own, give the offset within a frame (its speed does not follow the
reference's: a different person, too few confident keypoints). The correlation is reported beside: the mean
over keypoints, so the torso's still keypoints, whose speed is the detector's jitter, keep it low (0.15-0.25
on the synthetic walk) even when the offset is right."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

_OVERSAMPLE = 4  # the common grid's rate over the frame rate: sub-frame steps before the parabola
_AMBIGUOUS = 0.9  # a second peak this close to the first makes the offset ambiguous
_PARTS, _AGREEING = 4, 3  # this many of the recording's parts must each give the offset within a frame
_MIN_KEYPOINTS = 3  # keypoints with a correlation a lag needs
_MIN_SAMPLES = 30  # common samples a keypoint's correlation needs
_SMOOTH_FRAMES = 7  # positions are averaged over this many frames before differencing


@dataclasses.dataclass(frozen=True)
class CameraOffset:
    """A camera's offset (s) to add to its frame times to put them on the reference camera's; None when it
    cannot be trusted, ``reason`` saying why."""

    camera: str
    offset_s: float | None
    correlation: float
    reason: str = ""


def keypoint_speeds(times: np.ndarray, keypoints: np.ndarray, min_confidence: float = 0.3) -> np.ndarray:
    """Per frame and keypoint (n, K), its image speed (px/s; positions smoothed over ``_SMOOTH_FRAMES``, then
    a central difference) over the person's size (the diagonal of the confident keypoints' box, px); NaN
    where it is not confident. A detector's frame-to-frame jitter is faster than any movement: unsmoothed, it
    buries the walk's rhythm."""
    confident = keypoints[..., 2] >= min_confidence
    xy = np.where(confident[..., None], keypoints[..., :2], np.nan)
    smooth = _moving_mean(xy, _SMOOTH_FRAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a frame with no confident keypoint is NaN, as meant
        velocity = (smooth[2:] - smooth[:-2]) / (times[2:] - times[:-2])[:, None, None]
        speed = np.linalg.norm(velocity, axis=-1)
        size = np.hypot(*(np.nanmax(xy, axis=1) - np.nanmin(xy, axis=1)).T)
        out = np.full(keypoints.shape[:2], np.nan)
        out[1:-1] = speed / size[1:-1, None]
    return out


def _moving_mean(x: np.ndarray, frames: int) -> np.ndarray:
    """The mean over ``frames`` centred frames (axis 0) of the finite values; NaN where under half are."""
    kernel = np.ones(frames)
    finite = np.isfinite(x)
    sums = np.apply_along_axis(np.convolve, 0, np.where(finite, x, 0.0), kernel, mode="same")
    counts = np.apply_along_axis(np.convolve, 0, finite.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts >= frames / 2, sums / counts, np.nan)


def estimate_offsets(
    tracks: dict[str, tuple[np.ndarray, np.ndarray]], max_offset_s: float = 0.25
) -> list[CameraOffset]:
    """Each camera's offset against the first of ``tracks`` (name: (frame times (n,) s, keypoints (n, K, 3)
    with confidences)); the first's is 0."""
    names = list(tracks)
    speeds = {name: (times, keypoint_speeds(times, keypoints)) for name, (times, keypoints) in tracks.items()}
    frame_s = float(np.median(np.diff(speeds[names[0]][0])))
    out = [CameraOffset(names[0], 0.0, 1.0, "the reference")]
    for name in names[1:]:
        out.append(
            _offset(name, speeds[name], speeds[names[0]], frame_s / _OVERSAMPLE, max_offset_s, frame_s)
        )
    return out


def _offset(name, camera, reference, step, max_offset_s, frame_s) -> CameraOffset:
    grid = np.arange(max(camera[0][0], reference[0][0]), min(camera[0][-1], reference[0][-1]), step)
    lags = np.arange(-round(max_offset_s / step), round(max_offset_s / step) + 1)
    ref = _resampled(*reference, grid)
    shifted = [_resampled(*camera, grid - lag * step) for lag in lags]
    scores = np.array([_correlation(ref, other) for other in shifted])
    if not np.isfinite(scores).any():
        return CameraOffset(name, None, float("nan"), "insufficient: no frames where both see the person")
    best = int(np.nanargmax(scores))
    peak, offset = float(scores[best]), float((lags[best] + _vertex(scores, best)) * step)
    others = [float(scores[i]) for i in _local_peaks(scores) if abs(i - best) > _OVERSAMPLE]
    if others and max(others) >= _AMBIGUOUS * peak:
        return CameraOffset(name, None, peak, f"insufficient: two lags fit almost as well (r = {peak:.2f} and "
                                              f"{max(others):.2f}); a periodic movement in the window")  # fmt: skip
    parts = _part_offsets(ref, shifted, lags, step)
    agreeing = sum(abs(part - offset) <= frame_s for part in parts)  # NaN never agrees
    if agreeing < _AGREEING:
        return CameraOffset(name, None, peak, f"insufficient: only {agreeing} of the recording's {_PARTS} parts "
                                              f"give an offset within a frame of {offset * 1e3:.0f} ms (they give "
                                              f"{', '.join(f'{p * 1e3:.0f}' for p in parts)} ms)")  # fmt: skip
    return CameraOffset(name, offset, peak)


def _part_offsets(ref: np.ndarray, shifted: list[np.ndarray], lags: np.ndarray, step: float) -> list[float]:
    """The offset each of ``_PARTS`` consecutive parts of the grid gives on its own (NaN where none)."""
    out = []
    for part in np.array_split(np.arange(len(ref)), _PARTS):
        scores = np.array([_correlation(ref[part], other[part]) for other in shifted])
        out.append(float(lags[np.nanargmax(scores)] * step) if np.isfinite(scores).any() else float("nan"))
    return out


def _resampled(times: np.ndarray, speeds: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Each keypoint's speed (columns) at ``at``; NaN outside the frames and across gaps of over two frames
    (interpolating across one would invent a speed)."""
    out = np.full((len(at), speeds.shape[1]), np.nan)
    longest = 2.0 * float(np.median(np.diff(times)))
    for k in range(speeds.shape[1]):
        known = np.isfinite(speeds[:, k])
        if known.sum() < 2:
            continue
        t = times[known]
        value = np.interp(at, t, speeds[known, k], left=np.nan, right=np.nan)
        after = np.clip(np.searchsorted(t, at), 1, len(t) - 1)
        out[:, k] = np.where(t[after] - t[after - 1] <= longest, value, np.nan)
    return out


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """The mean over keypoints (columns) of the Pearson correlation of their speeds where both have one."""
    scores = []
    for k in range(a.shape[1]):
        both = np.isfinite(a[:, k]) & np.isfinite(b[:, k])
        if both.sum() >= _MIN_SAMPLES and a[both, k].std() > 0 and b[both, k].std() > 0:
            scores.append(np.corrcoef(a[both, k], b[both, k])[0, 1])
    return float(np.mean(scores)) if len(scores) >= _MIN_KEYPOINTS else float("nan")


def _local_peaks(scores: np.ndarray) -> list[int]:
    inner = [
        i for i in range(1, len(scores) - 1) if scores[i] >= scores[i - 1] and scores[i] >= scores[i + 1]
    ]
    return [i for i in inner if np.isfinite(scores[i])]


def _vertex(scores: np.ndarray, i: int) -> float:
    """The parabola's vertex through scores i-1, i, i+1, in steps from i (0 at the window's edge)."""
    if i == 0 or i == len(scores) - 1 or not np.isfinite(scores[i - 1 : i + 2]).all():
        return 0.0
    a, b, c = scores[i - 1], scores[i], scores[i + 1]
    curvature = a - 2.0 * b + c
    return 0.0 if curvature >= 0 else 0.5 * (a - c) / curvature
