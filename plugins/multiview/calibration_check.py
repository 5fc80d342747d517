"""How well a calibration fits recorded keypoints: for each camera, its confident keypoints against the point
the other cameras triangulate (leave-one-out, so a wrong camera cannot pull the point towards itself), as a
reprojection error in pixels. A calibration that fits the scene gives each camera about its detector's
error; a bumped or mis-calibrated camera stands out. Two calibrations of the same cameras compare on the
same keypoints: the one with the smaller errors fits the videos better.

Frames of the cameras are matched by their stored, clock-aligned times: each camera's frame nearest to the
first camera's, within half a frame interval."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from kinefuse.camera_calibration import CameraCalibration, leave_one_out_residuals

MIN_CONFIDENCE = 0.5  # keypoints the detector is sure of: the check measures the calibration


@dataclasses.dataclass(frozen=True)
class CameraFit:
    camera: str  # the calibration's camera name
    median_px: float  # NaN when no keypoint could be checked
    p90_px: float
    keypoints: int  # how many it rests on


def match_frames(tracks: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(ncam, n, K, 3): every camera's keypoints at the first camera's n frames (NaN where it has no frame
    within half of the first camera's median frame interval); ``tracks`` are (times s ascending, keypoints
    (m, K, 3)), at least two frames each."""
    reference = tracks[0][0]
    tolerance = 0.5 * float(np.median(np.diff(reference)))
    matched = []
    for times, keypoints in tracks:
        after = np.clip(np.searchsorted(times, reference), 1, len(times) - 1)
        nearest = np.where(reference - times[after - 1] <= times[after] - reference, after - 1, after)
        near = np.abs(times[nearest] - reference) <= tolerance
        matched.append(np.where(near[:, None, None], keypoints[nearest], np.nan))
    return np.stack(matched)


def check_calibration(cams: Sequence[CameraCalibration], keypoints: np.ndarray) -> list[CameraFit]:
    """Each camera's leave-one-out reprojection error over the keypoints (ncam, n, K, 3; x, y px,
    confidence) confident in it and in at least two other cameras."""
    confident = np.nan_to_num(keypoints[..., 2]) >= MIN_CONFIDENCE
    pixels = np.where(confident[..., None], keypoints[..., :2], np.nan)
    weights = np.where(confident, keypoints[..., 2], 0.0)
    residuals = leave_one_out_residuals(cams, pixels, weights)
    fits = []
    for cam, residual in zip(cams, residuals, strict=True):
        errors = np.linalg.norm(residual, axis=-1)
        errors = errors[np.isfinite(errors)]
        fits.append(CameraFit(cam.name, *_quantiles(errors), len(errors)))
    return fits


def _quantiles(errors: np.ndarray) -> tuple[float, float]:
    if not len(errors):
        return float("nan"), float("nan")
    median, p90 = np.percentile(errors, [50, 90])
    return float(median), float(p90)
