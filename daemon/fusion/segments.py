"""IMU + video fusion of a segment's orientation: the IMU's inclination, the cameras' heading.

A strap's orientation filter knows the segment's inclination well (gravity is observable) but its
heading only relative to where it started, drifting with the vertical gyroscope bias when there is no
usable magnetometer (steel in a gym). Triangulated keypoints give the segment's long axis in the camera
world, heading included, but noisy and with gaps. Both worlds share the vertical (z up), so they differ
by a rotation about it, the heading correction psi. The fused orientation is rot_z(psi) q_segment: its
inclination is the IMU's alone, and the video enters only through psi.

psi is estimated by a Kalman filter with state (psi, its rate): a constant vertical gyroscope bias makes
the IMU's heading drift at a constant rate, which a rate state follows without lag; the rate is driven by
white noise of spectral density ``rate_noise`` (Bar-Shalom, Li & Kirubarajan 2001, sec. 6.2). Each video
sample measures psi as the heading of the video's long axis minus the heading of the IMU's. How well it
does depends on how horizontal the segment is: a heading error is a sideways error of the axis's
horizontal projection over that projection's length, so the measurement's standard deviation is
``heading_sigma_deg`` / h, with h the horizontal fraction of the IMU's axis (the IMU's inclination is
the accurate one), and below ``min_horizontal`` the sample is skipped (a vertical segment says nothing
about heading). The update is robust (Huber 1964, "Robust estimation of a location parameter", Ann.
Math. Statist. 35:73): a measurement whose normalised innovation e exceeds ``huber_k`` has its variance
multiplied by e / ``huber_k``, so its pull on psi is bounded (the detector's errors are heavy-tailed, and
an axis near the minimum horizontality can point the wrong way). The filter starts once video has been seen
for ``init_s``: psi from the weighted circular median of those first measurements (one sample can be
off by tens of degrees; starting from it left the estimate wrong for a minute). Between video
measurements the IMU carries the orientation (it bridges the gaps) while psi follows its rate.

``HeadingFusion`` is the filter, causal and per segment (the live motion stream runs it item by item);
``fuse_heading`` is its loop over a whole recording.

Provenance per sample: ``fused`` when a video correction happened within ``bridge_s``, ``measured``
(IMU only) after that, with quality degraded and the reason; before the heading is first fixed (the
first ``init_s`` of video) there is no heading in the video world at all: no value.
"""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.types import Provenance, Quality, QualityLevel

DOWN = np.array([0.0, 0.0, -1.0])  # a segment's long axis, proximal to distal, in the segment frame
# Standard deviations behind a stated tolerance (deg). The orientation filter's inclination RMS on BROAD is
# 0.32-0.99 and its 9D heading 0.45-1.52 (docs/accuracy.md): twice the worst, for walking's impacts. The
# video's heading has a floor no averaging removes, the detector's fixed joint offsets: 2-6 deg measured on
# walk_fusion. A calibrated mounting: the estimator's axis error, at least 1.5 (shank median 1.3, 30 seeds).
INCLINATION_SIGMA_DEG = 2.0
MAGNETIC_HEADING_SIGMA_DEG = 3.0
VIDEO_HEADING_FLOOR_DEG = 4.0
MOUNTING_FLOOR_DEG = 1.5
_REFIX_SHARE = 0.5  # more than this share of recent innovations beyond huber_k: the heading is lost
_REFIX_MIN = 20  # ...out of at least this many video samples


@dataclasses.dataclass(frozen=True)
class FusedSegment:
    times: np.ndarray
    quaternion: np.ndarray  # (n, 4) w, x, y, z: segment to video world; NaN before the heading is fixed
    heading_correction: np.ndarray  # (n,) rad; NaN before the heading is fixed
    heading_sigma: np.ndarray  # (n,) rad, the filter's standard deviation of heading_correction
    since_video_s: np.ndarray  # (n,) time since the last video correction (inf before the first)
    bridge_s: float

    def provenance(self, i: int) -> Provenance | None:
        if not np.isfinite(self.since_video_s[i]):
            return None
        return Provenance.FUSED if self.since_video_s[i] <= self.bridge_s else Provenance.MEASURED

    def quality(self, i: int) -> Quality:
        since = self.since_video_s[i]
        if not np.isfinite(since):
            return Quality(
                QualityLevel.INSUFFICIENT, "insufficient data: too little video yet to fix the heading"
            )
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


def heading_disagreement(segment_quaternion, video_axis, *, min_horizontal: float = 0.2):
    """Per sample (n,): the heading of the video's long axis minus the IMU's (rad, wrapped), the
    horizontal fraction h of the IMU's long axis (which sizes the disagreement's error, as 1/h), and
    whether the sample is usable (both axes known, h at least ``min_horizontal``)."""
    imu_axis = long_axis(segment_quaternion)
    video_axis = np.asarray(video_axis, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        horizontal = np.linalg.norm(imu_axis[:, :2], axis=1) / np.linalg.norm(imu_axis, axis=1)
        usable = (
            np.isfinite(video_axis).all(axis=1)
            & np.isfinite(imu_axis).all(axis=1)
            & (np.linalg.norm(video_axis[:, :2], axis=1) > 0)
            & (horizontal >= min_horizontal)
        )
    return _wrap(_heading(video_axis) - _heading(imu_axis)), horizontal, usable


def circular_median(angles, weights=None) -> float:
    """Weighted circular median (rad): the sample angle that minimises the weighted sum of arc distances
    to the others (Mardia & Jupp, "Directional Statistics", 2000, sec. 2.2.2); NaN for no angles. Robust
    where a mean is not: a few samples half a turn off move it little."""
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if not len(angles):
        return float("nan")
    weights = np.ones_like(angles) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    cost = np.abs(_wrap(angles[None, :] - angles[:, None])) @ weights
    return float(angles[int(np.argmin(cost))])


class HeadingFusion:
    """The heading-correction filter of one segment, causal: fed sample by sample (``step``) or batch by
    batch (``update_batch``) on one timeline, it gives what ``fuse_heading`` gives for the whole series.

    ``heading_sigma_deg``: the standard deviation of one video sample's heading for a horizontal segment,
    counting the detector's slow drift (errors correlated over about half a second, so the samples are
    worth fewer than their number); ``rate_noise``: rad/s per square-root second, how fast the IMU's
    heading drift rate may change; ``rate_sigma0``: rad/s, how uncertain that rate is when the heading is
    first fixed; ``huber_k``: the normalised innovation beyond which a measurement's pull is bounded;
    ``init_s``: the video seen before the heading is first fixed.
    """

    def __init__(self, *, heading_sigma_deg: float = 20.0, rate_noise: float = np.radians(0.05),
                 rate_sigma0: float = np.radians(1.0), huber_k: float = 1.5, init_s: float = 2.0,
                 min_horizontal: float = 0.2, bridge_s: float = 2.0):  # fmt: skip
        self.sigma_h, self.q, self.rate_sigma0 = np.radians(heading_sigma_deg), rate_noise**2, rate_sigma0
        self.huber_k, self.init_s = huber_k, init_s
        self.min_horizontal, self.bridge_s = min_horizontal, bridge_s
        self.x: np.ndarray | None = None  # (psi, its rate), once the heading is fixed
        self.p = np.zeros((2, 2))
        self.last_t: float | None = None  # the previous sample's time
        self.last_video = -np.inf  # the last video correction's time
        self._first_s: float | None = None  # the first usable video sample's time
        self._seen: list[tuple[float, float]] = []  # (disagreement, variance) of the video before the fix
        # the last init_s of video updates: (time, disagreement, variance, beyond huber_k); see _update
        self._recent: collections.deque[tuple[float, float, float, bool]] = collections.deque()
        self.refixes = 0

    def step(self, t: float, segment_quaternion, video_axis) -> FusedSegment:
        """One sample: the IMU's segment orientation (4,) and the video's long axis (3,; NaN: not seen)."""
        return self.update_batch([t], np.reshape(segment_quaternion, (1, 4)), np.reshape(video_axis, (1, 3)))

    def update_batch(self, times, segment_quaternion, video_axis) -> FusedSegment:
        """The next samples, (n,) times after the previous batch's, (n, 4) and (n, 3) as ``step`` takes."""
        times = np.asarray(times, dtype=np.float64)
        segment_quaternion = np.asarray(segment_quaternion, dtype=np.float64).reshape(-1, 4)
        disagreement, horizontal, usable = heading_disagreement(
            segment_quaternion, np.reshape(video_axis, (-1, 3)), min_horizontal=self.min_horizontal
        )
        variance = np.full(len(times), np.inf)
        variance[usable] = (self.sigma_h / horizontal[usable]) ** 2
        n = len(times)
        psi, psi_sigma, since = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.inf)
        for i, t in enumerate(times.tolist()):
            self._advance(t, float(disagreement[i]), float(variance[i]), bool(usable[i]))
            if self.x is not None:
                psi[i], psi_sigma[i], since[i] = self.x[0], np.sqrt(self.p[0, 0]), t - self.last_video
        return FusedSegment(times, _turned(segment_quaternion, psi), psi, psi_sigma, since, self.bridge_s)

    def _advance(self, t: float, disagreement: float, variance: float, usable: bool) -> None:
        previous, self.last_t = self.last_t, t
        if self.x is None:
            if usable:
                self._collect(t, disagreement, variance)
            return
        dt = t - previous
        f = np.array([[1.0, dt], [0.0, 1.0]])
        self.x = f @ self.x
        self.p = f @ self.p @ f.T + self.q * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        if usable:
            self._update(t, disagreement, variance)

    def _collect(self, t: float, disagreement: float, variance: float) -> None:
        """Before the heading is fixed: gather the video's disagreements for ``init_s``, then start from their
        weighted circular median, never from one sample."""
        if self._first_s is None:
            self._first_s = t
        self._seen.append((disagreement, variance))
        if t < self._first_s + self.init_s:
            return
        angles, variances = np.array(self._seen).T
        self.x = np.array([circular_median(angles, 1.0 / variances), 0.0])
        # a median's variance is pi/2 times the mean's; the rate starts at zero, uncertain by rate_sigma0 (by
        # default 1 deg/s: a vertical gyroscope bias of that order)
        self.p = np.diag([np.pi / 2 / np.sum(1.0 / variances), self.rate_sigma0**2])
        self.last_video, self._seen = t, []

    def _update(self, t: float, disagreement: float, variance: float) -> None:
        innovation = _wrap(disagreement - self.x[0])
        r = variance
        normalised = abs(innovation) / np.sqrt(self.p[0, 0] + r)
        if self._inconsistent(t, disagreement, variance, normalised > self.huber_k):
            return
        if normalised > self.huber_k:  # Huber: bounded influence for a heavy-tailed error
            r *= normalised / self.huber_k
        gain = self.p[:, 0] / (self.p[0, 0] + r)
        self.x = self.x + gain * innovation
        self.x[0] = _wrap(self.x[0])
        self.p = self.p - np.outer(gain, self.p[0, :])
        self.last_video = t

    def _inconsistent(self, t: float, disagreement: float, variance: float, outlier: bool) -> bool:
        """Whether the filter has lost the heading and starts again: the Huber update bounds each sample's
        pull, so after a step in the true correction (a strap that slipped, a wrong start) it would creep
        back over tens of seconds while claiming to be right. A consistent filter sees an innovation beyond
        ``huber_k`` sigma in a minority of samples (13 % for Gaussian errors at 1.5); when most of the last
        ``init_s`` of video (at least ``_REFIX_MIN`` samples) are beyond it, the heading is fixed again from
        their weighted circular median, as at the start (an innovation-consistency test in the spirit of
        Bar-Shalom, Li & Kirubarajan 2001, sec. 5.4)."""
        self._recent.append((t, disagreement, variance, outlier))
        while self._recent[0][0] < t - self.init_s:
            self._recent.popleft()
        if len(self._recent) < _REFIX_MIN or sum(r[3] for r in self._recent) <= _REFIX_SHARE * len(
            self._recent
        ):
            return False
        self.x, self._first_s, self.refixes = None, self._recent[0][0], self.refixes + 1
        self._seen = [(d, v) for _, d, v, _ in self._recent]
        self._recent.clear()
        self._collect(t, disagreement, variance)
        return True


def _turned(segment_quaternion: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """rot_z(psi) q per sample (n, 4); NaN where psi or q is unknown."""
    turn = Rotation.from_euler("z", np.nan_to_num(psi)[:, None])
    known = np.isfinite(segment_quaternion).all(axis=1)
    imu = Rotation.from_quat(np.where(known[:, None], segment_quaternion, [1.0, 0, 0, 0]), scalar_first=True)
    fused = (turn * imu).as_quat(scalar_first=True)
    fused[np.isnan(psi) | ~known] = np.nan
    return fused


def fuse_heading(times, segment_quaternion, video_axis, **settings) -> FusedSegment:
    """Fuse an IMU segment orientation (n, 4) with the video's long axis (n, 3; NaN where not seen), both on
    the common timeline ``times`` (n,): ``HeadingFusion`` (its settings as keywords) over the whole series."""
    return HeadingFusion(**settings).update_batch(times, segment_quaternion, video_axis)


def orientation_tolerance_deg(heading_sigma_deg: float, mounting_sigma_deg: float) -> float:
    """The tolerance a segment orientation states (deg): twice the standard deviation of its error, from the
    inclination (the orientation filter's, ``INCLINATION_SIGMA_DEG``), the heading (the source's) and the
    strap's mounting (its calibration's), taken as independent."""
    return 2.0 * math.sqrt(INCLINATION_SIGMA_DEG**2 + heading_sigma_deg**2 + mounting_sigma_deg**2)


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (deg) between direction vectors (n, 3); NaN where either is missing."""
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
