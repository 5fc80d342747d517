"""IMU + video fusion of a segment's orientation: the IMU's inclination, the cameras' heading.

A strap's orientation filter knows the segment's inclination well (gravity is observable) but its
heading only relative to where it started, drifting with the vertical gyroscope bias when there is no
usable magnetometer (steel in a gym). Triangulated keypoints give the segment's long axis in the camera
world, heading included, but noisy and with gaps. Both worlds share the vertical (z up), so they differ
by a rotation about it. A complementary filter estimates that rotation, the heading correction psi,
from the horizontal direction of the long axis in both: psi moves towards each video measurement with
gain 1 - exp(-dt / ``tau_s``), weighted by how horizontal the axis is (a vertical segment says nothing
about heading; below ``min_horizontal`` it is skipped). Between video measurements the IMU carries the
orientation (it bridges the gaps). The fused orientation is rot_z(psi) q_segment.

Provenance per sample: ``fused`` when a video correction happened within ``bridge_s``, ``measured``
(IMU only) after that, with quality degraded and the reason; before the first correction there is no
heading in the video world at all: no value.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.types import Provenance, Quality, QualityLevel

DOWN = np.array([0.0, 0.0, -1.0])  # a segment's long axis, proximal to distal, in the segment frame


@dataclasses.dataclass(frozen=True)
class FusedSegment:
    times: np.ndarray
    quaternion: np.ndarray  # (n, 4) w, x, y, z: segment to video world; NaN before the first correction
    heading_correction: np.ndarray  # (n,) rad
    since_video_s: np.ndarray  # (n,) time since the last video correction (inf before the first)
    bridge_s: float

    def provenance(self, i: int) -> Provenance | None:
        if not np.isfinite(self.since_video_s[i]):
            return None
        return Provenance.FUSED if self.since_video_s[i] <= self.bridge_s else Provenance.MEASURED

    def quality(self, i: int) -> Quality:
        since = self.since_video_s[i]
        if not np.isfinite(since):
            return Quality(QualityLevel.INSUFFICIENT, "insufficient data: no video yet to fix the heading")
        if since <= self.bridge_s:
            return Quality(QualityLevel.GOOD)
        return Quality(QualityLevel.DEGRADED, f"IMU only for {since:.1f} s: heading may drift")


def long_axis(quaternions: np.ndarray) -> np.ndarray:
    """The segment's long axis (proximal to distal) in the world, (n, 3); NaN where the quaternion is."""
    quaternions = np.asarray(quaternions, dtype=np.float64)
    missing = ~np.isfinite(quaternions).all(axis=1)
    axis = Rotation.from_quat(
        np.where(missing[:, None], [1.0, 0, 0, 0], quaternions), scalar_first=True
    ).apply(DOWN)
    axis[missing] = np.nan
    return axis


def segment_quaternion(sensor_quaternion: np.ndarray, mounting: np.ndarray) -> np.ndarray:
    """Segment orientation from the sensor's, given the sensor's mounting on the segment (3, 3:
    segment-from-sensor rotation)."""
    sensor = Rotation.from_quat(sensor_quaternion, scalar_first=True)
    return (sensor * Rotation.from_matrix(mounting).inv()).as_quat(scalar_first=True)


def _heading(vectors: np.ndarray) -> np.ndarray:
    return np.arctan2(vectors[:, 1], vectors[:, 0])


def _wrap(angle):
    return (angle + np.pi) % (2 * np.pi) - np.pi


def fuse_heading(times, segment_quaternion, video_axis, *, tau_s: float = 2.0, min_horizontal: float = 0.2,
                 bridge_s: float = 2.0) -> FusedSegment:  # fmt: skip
    """Fuse an IMU segment orientation (n, 4) with the video's long axis (n, 3; NaN where not seen), both on
    the common timeline ``times`` (n,)."""
    times = np.asarray(times, dtype=np.float64)
    imu_axis = long_axis(segment_quaternion)
    video_axis = np.asarray(video_axis, dtype=np.float64)
    horizontal = np.linalg.norm(video_axis[:, :2], axis=1) / np.maximum(
        np.linalg.norm(video_axis, axis=1), 1e-12
    )
    usable = (
        np.isfinite(video_axis).all(axis=1)
        & np.isfinite(imu_axis).all(axis=1)
        & (horizontal >= min_horizontal)
    )
    disagreement = _wrap(_heading(video_axis) - _heading(imu_axis))
    psi = np.full(len(times), np.nan)
    since = np.full(len(times), np.inf)
    current, last_video = np.nan, -np.inf
    for i, t in enumerate(times):
        if usable[i]:
            if np.isnan(current):
                current = disagreement[i]
            else:
                dt = t - times[i - 1] if i else 0.0
                gain = (1.0 - np.exp(-dt / tau_s)) * horizontal[i]
                current = _wrap(current + gain * _wrap(disagreement[i] - current))
            last_video = t
        psi[i] = current
        since[i] = t - last_video
    turn = Rotation.from_euler("z", np.nan_to_num(psi)[:, None])
    known = np.isfinite(segment_quaternion).all(axis=1)
    imu = Rotation.from_quat(np.where(known[:, None], segment_quaternion, [1.0, 0, 0, 0]), scalar_first=True)
    fused = (turn * imu).as_quat(scalar_first=True)
    fused[np.isnan(psi) | ~known] = np.nan
    return FusedSegment(times, fused, psi, since, bridge_s)


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (deg) between direction vectors (n, 3); NaN where either is missing."""
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
