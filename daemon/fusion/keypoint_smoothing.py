"""Keypoint smoothing with honest gap filling: a per-keypoint Kalman filter (kinefuse._ext.keypoint_kalman)
with a fixed-lag smoother for the live stream and a full Rauch-Tung-Striebel smoother offline.

The One Euro filter (``OneEuroKeypoints``) is the low-latency option: no lag and no gap filling (a frame
without a usable detection is missing).

Every output sample says what it is: ``measured`` (a detection was used), ``filled`` (no usable detection,
or one rejected as an outlier, within ``max_gap_s`` of the last detection: the model's prediction, with
its predicted uncertainty), or missing (longer gaps: no value, quality insufficient). Nothing is filled
across a longer gap, so a foot strike hidden for ten frames comes out missing, not smooth and wrong.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from kinefuse._native import keypoint_kalman, one_euro
from kinefuse.types import KeypointStatus, Provenance, Quality, QualityLevel

MODELS = {"constant_velocity": 2, "constant_acceleration": 3}
MEASURED, FILLED, REJECTED, MISSING = (keypoint_kalman.MEASURED, keypoint_kalman.FILLED,
                                       keypoint_kalman.REJECTED, keypoint_kalman.MISSING)  # fmt: skip
# a frame's status as the filter has it before any later frame: a prediction is past the last detection
_CAUSAL_STATUS = {MEASURED: MEASURED, FILLED: int(KeypointStatus.EXTRAPOLATED),
                  REJECTED: int(KeypointStatus.EXTRAPOLATED), MISSING: MISSING}  # fmt: skip

GATE_TAIL = 0.001  # the derived gate leaves out this share of good detections


def student_t_gate(dof: float, tail: float = GATE_TAIL) -> float:
    """The d² that a 2D detection with Student-t noise of ``dof`` degrees of freedom (x and y sharing the
    scale draw) exceeds with probability ``tail``: d²/2 is F(2, dof), whose tail is (1 + 2x/dof)^(-dof/2),
    so d² = dof (tail^(-2/dof) - 1); the chi² with 2 degrees of freedom's -2 ln(tail) as dof grows
    (13.8 at 0.1 %, the Gaussian filter's gate), 122.5 at dof 4."""
    return -2.0 * math.log(tail) if math.isinf(dof) else dof * (tail ** (-2.0 / dof) - 1.0)


@dataclasses.dataclass(frozen=True)
class KeypointFilterSettings:
    """The defaults are measured on the packaged scenarios' detector (fitted to MoveNet, a torso of about 120
    px; docs/fusion.md, "Keypoint smoothing"): pixel units, so a much larger or smaller person in the image
    wants ``pixel_sigma`` and ``process_noise`` scaled with its size (and its square)."""

    model: str = "constant_velocity"
    process_noise: float = 2.0e5  # spectral density of the highest derivative's white noise (px², s units)
    pixel_sigma: float = 5.0  # measurement scale at confidence 1 (px): pixel_sigma * confidence^-power
    confidence_power: float = 1.0  # 1: sigma = pixel_sigma / confidence (the jitter's fitted 0.64: no better)
    # Student-t measurement noise with this many degrees of freedom (a variational Bayes update that
    # down-weights a far detection instead of trusting it fully up to the gate); math.inf: Gaussian, the
    # plain Kalman update (the one filterpy computes)
    measurement_dof: float = 4.0
    min_confidence: float = 0.05  # detections at or below this are no detection
    # Mahalanobis d² above which a detection is an outlier and left out; None: student_t_gate(
    # measurement_dof), the 0.1 % tail of good detections (13.8 for a Gaussian, 122.5 at 4 dof)
    gate: float | None = None
    max_gap_s: float = 0.15  # longest gap filled by prediction; beyond it the keypoint is missing
    lag_s: float = 0.1  # live: fixed-lag smoothing delay

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if not self.measurement_dof > 0:
            raise ValueError(
                f"measurement_dof must be positive (math.inf: Gaussian), got {self.measurement_dof}"
            )

    def kernel_args(self) -> dict:
        gate = student_t_gate(self.measurement_dof) if self.gate is None else self.gate
        return {"dim": MODELS[self.model], "q": self.process_noise, "r0": self.pixel_sigma,
                "min_confidence": self.min_confidence, "gate": gate, "max_gap_s": self.max_gap_s,
                "confidence_power": self.confidence_power, "measurement_dof": self.measurement_dof}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SmoothedKeypoints:
    """Smoothed positions (n, K, 2) px, their standard deviation (n, K) px, and status (n, K) (MEASURED,
    FILLED, REJECTED or MISSING) at ``times`` (n,)."""

    times: np.ndarray
    mean: np.ndarray
    sigma: np.ndarray
    status: np.ndarray

    def provenance(self, frame: int, keypoint: int) -> Provenance | None:
        code = self.status[frame, keypoint]
        if code == MISSING:
            return None
        return Provenance.MEASURED if code == MEASURED else Provenance.FILLED

    def quality(self, frame: int, keypoint: int) -> Quality:
        code = self.status[frame, keypoint]
        if code == MEASURED:
            return Quality(QualityLevel.GOOD)
        if code == MISSING:
            return Quality(QualityLevel.INSUFFICIENT, "insufficient data: no detection within the gap limit")
        why = "detection rejected as an outlier" if code == REJECTED else "no usable detection"
        return Quality(QualityLevel.DEGRADED, f"filled by prediction ({why}), sigma "
                                              f"{self.sigma[frame, keypoint]:.1f} px")  # fmt: skip


def smooth_offline(
    times, keypoints, settings: KeypointFilterSettings = KeypointFilterSettings()
) -> SmoothedKeypoints:
    """Filter and RTS-smooth a whole recording: ``times`` (n,) s ascending, ``keypoints`` (n, K, 3)."""
    times = np.ascontiguousarray(times, dtype=np.float64)
    keypoints = np.ascontiguousarray(keypoints, dtype=np.float64)
    smoothed = keypoint_kalman.smooth_track(times, keypoints, **settings.kernel_args())
    return SmoothedKeypoints(
        times, smoothed["x"][..., 0], np.sqrt(smoothed["P"][..., 0, 0]), smoothed["status"]
    )


class LiveKeypointSmoother:
    """Frames in as they arrive; each frame out, smoothed, ``lag_s`` later (``flush`` at the end)."""

    def __init__(self, n_keypoints: int, settings: KeypointFilterSettings = KeypointFilterSettings()):
        self.settings = settings
        self._filter = keypoint_kalman.LiveKeypointFilter(n_keypoints, lag_s=settings.lag_s,
                                                          **settings.kernel_args())  # fmt: skip

    def push(self, t: float, keypoints: np.ndarray) -> list[SmoothedKeypoints]:
        return self._frames(self._filter.push(float(t), np.ascontiguousarray(keypoints, dtype=np.float64)))

    def push_filtered(
        self, t: float, keypoints: np.ndarray
    ) -> tuple[SmoothedKeypoints, list[SmoothedKeypoints]]:
        """As ``push``, and first this frame as the filter has it now (causal: no later frame in it): each
        keypoint's forward estimate, EXTRAPOLATED (kinefuse.types.KeypointStatus) where this frame had no
        usable detection, MISSING past the gap limit (position NaN)."""
        keypoints = np.asarray(keypoints, dtype=np.float64)
        k_count = self._filter.n_keypoints
        if keypoints.shape != (k_count, 3):
            raise ValueError(f"expected ({k_count}, 3) keypoints, got {keypoints.shape[:2]}")
        emitted = self._filter.begin_frame(float(t))
        codes = [self._filter.step(k, *keypoints[k].tolist()) for k in range(k_count)]
        emitted += self._filter.end_frame()
        estimates = np.array([self._filter.estimate(k) for k in range(k_count)])
        status = np.array([_CAUSAL_STATUS[code] for code in codes], dtype=np.int8)
        mean, sigma = estimates[:, :2].copy(), np.sqrt(estimates[:, 4])
        mean[status == MISSING], sigma[status == MISSING] = np.nan, np.nan
        filtered = SmoothedKeypoints(np.array([float(t)]), mean[None], sigma[None], status[None])
        return filtered, self._frames(emitted)

    def flush(self) -> list[SmoothedKeypoints]:
        return self._frames(self._filter.flush())

    def get_state(self) -> dict:
        return self._filter.get_state()

    def set_state(self, state: dict) -> None:
        self._filter.set_state(state)

    @staticmethod
    def _frames(emitted) -> list[SmoothedKeypoints]:
        return [SmoothedKeypoints(np.array([t]), mean[None], np.sqrt(var)[None], status[None])
                for t, mean, var, status in emitted]  # fmt: skip


class OneEuroKeypoints:
    """Low-latency smoothing, frame by frame with no delay (Casiez et al. 2012, kinefuse._ext.one_euro): no
    uncertainty is estimated (sigma NaN) and nothing is filled."""

    # defaults measured on the packaged scenarios' detector at 30 fps (docs/fusion.md): with its heavy-tailed
    # jitter the speed estimate is mostly jitter, so a larger beta opens the filter to the jitter's spikes
    # (the former 0.1 left 97 % of the jitter); a 5 Hz floor (32 ms time constant) with a small beta
    def __init__(self, n_keypoints: int, min_cutoff: float = 5.0, beta: float = 0.001, d_cutoff: float = 1.0,
                 min_confidence: float = 0.05):  # fmt: skip
        self.n_keypoints, self.min_confidence = n_keypoints, min_confidence
        self._filter = one_euro.OneEuroFilter(2 * n_keypoints, min_cutoff, beta, d_cutoff)

    def push(self, t: float, keypoints: np.ndarray) -> SmoothedKeypoints:
        keypoints = np.asarray(keypoints, dtype=np.float64)
        usable = np.isfinite(keypoints[:, :2]).all(axis=1) & (keypoints[:, 2] > self.min_confidence)
        values = np.where(usable[:, None], keypoints[:, :2], np.nan).reshape(-1)
        mean = self._filter.filter(float(t), np.ascontiguousarray(values)).reshape(self.n_keypoints, 2)
        status = np.where(usable, MEASURED, MISSING).astype(np.int8)
        return SmoothedKeypoints(
            np.array([t]), mean[None], np.full((1, self.n_keypoints), np.nan), status[None]
        )
