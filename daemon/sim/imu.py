"""A virtual IMU strap: what a perfect sensor reads from body kinematics, and a real sensor's errors on top.

Frames: ``R_world_segment`` maps segment coordinates to world ones (x forward, y left, z up, gravity
(0, 0, −9.81) m/s²); ``mounting`` maps sensor coordinates to segment ones, so the sensor's orientation is
R_world_sensor = R_world_segment · mounting. Units are kinefuse.types.ImuSample's: specific force m/s²,
angular rate rad/s, magnetic field µT. Every ``SensorErrors`` field is in its sensor's unit (per √Hz or
per √s where it says so); ``UG``, ``MG``, ``DPS`` and ``PPM`` convert datasheet units.

Error model, per triaxial sensor (O. J. Woodman, "An introduction to inertial navigation", University of
Cambridge tech. report UCAM-CL-TR-696, 2007, §3.2 and §4.2; noise terms as in IEEE Std 952-1997 Annex C
and IEEE Std 1554-2005):

    y = Q( clip( (I + S + M) x + b_on + b_gm(t) + b_rw(t) + n(t) ) )

x the true value; S = diag(scale_factor); M the cross-axis sensitivity (small-angle misalignment) matrix;
b_on the constant turn-on bias; b_gm a first-order Gauss–Markov bias, the usual finite-state stand-in for
the bias-instability floor (A. Gelb, Applied Optimal Estimation, 1974, Table 3.8-1); b_rw a random walk
(IEEE 952 "rate random walk" K, σ(t) = K·√t); n white noise (IEEE 952 "angle/velocity random walk" N,
whose Allan deviation is N/√τ, hence a per-sample σ = N·√f_s); clip at ± full scale; Q rounding to the LSB.
"""

from __future__ import annotations

import dataclasses
import math
from itertools import accumulate

import numpy as np

from kinefuse.sim.magnetic import MagneticEnvironment

G0 = 9.80665  # standard gravity: what a datasheet's "g" means
GRAVITY_WORLD = np.array([0.0, 0.0, -9.81])  # the body model's gravity
UG = G0 * 1e-6  # m/s² per µg
MG = G0 * 1e-3  # m/s² per mg
DPS = math.pi / 180.0  # rad/s per °/s
PPM = 1e-6  # fraction per ppm

Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]
_ZERO3: Vec3 = (0.0, 0.0, 0.0)
_ZERO33: Mat3 = (_ZERO3, _ZERO3, _ZERO3)


@dataclasses.dataclass(frozen=True)
class SensorErrors:
    """One triaxial sensor's errors, in its own unit ("u": m/s², rad/s or µT). Defaults: a perfect sensor."""

    noise_density: float = 0.0  # white noise, u/√Hz
    bias_instability: float = 0.0  # σ of the Gauss–Markov bias, u
    bias_correlation_s: float = 100.0  # its correlation time, s
    bias_random_walk: float = 0.0  # u/√s (= u/s/√Hz); this bias starts at zero at the first sample
    bias: Vec3 = _ZERO3  # constant turn-on bias, u
    scale_factor: Vec3 = _ZERO3  # gain error per axis, a fraction (ppm · PPM)
    cross_axis: Mat3 = _ZERO33  # [i][j]: fraction of true axis j read on axis i (≈ misalignment, rad)
    full_scale: float = math.inf  # the output saturates at ± this, u
    lsb: float = 0.0  # output resolution, u per count; 0 leaves the output unquantised

    def __post_init__(self) -> None:
        if np.shape(self.bias) != (3,) or np.shape(self.scale_factor) != (3,):
            raise ValueError("bias and scale_factor need one value per axis")
        cross = np.asarray(self.cross_axis, dtype=np.float64)
        if cross.shape != (3, 3) or np.any(np.diag(cross) != 0.0):
            raise ValueError("cross_axis must be 3x3 with a zero diagonal (per-axis gain is scale_factor)")
        for name in ("noise_density", "bias_instability", "bias_random_walk", "lsb"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.bias_correlation_s <= 0 or self.full_scale <= 0:
            raise ValueError("bias_correlation_s and full_scale must be positive")

    def gain(self) -> np.ndarray:
        """I + S + M: the (3, 3) matrix the sensor applies to a true vector."""
        return np.eye(3) + np.diag(self.scale_factor) + np.asarray(self.cross_axis, dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class ImuErrors:
    """Errors of the accelerometer, gyroscope and magnetometer of one strap. Defaults: a perfect strap."""

    acc: SensorErrors = SensorErrors()
    gyr: SensorErrors = SensorErrors()
    mag: SensorErrors = SensorErrors()


@dataclasses.dataclass(frozen=True)
class ImuTrack:
    """What a strap measured at times ``t`` (s), next to the truth it measured."""

    t: np.ndarray  # (n,)
    acc: np.ndarray  # (n, 3) specific force, sensor frame, m/s²
    gyr: np.ndarray  # (n, 3) angular rate, sensor frame, rad/s
    mag: np.ndarray | None  # (n, 3) magnetic field, sensor frame, µT; None without a magnetic environment
    truth_acc: np.ndarray
    truth_gyr: np.ndarray
    truth_mag: np.ndarray | None
    R_world_sensor: np.ndarray  # (n, 3, 3)
    saturated: np.ndarray  # (n,) bool: some axis of some sensor hit its full scale
    acc_bias: np.ndarray  # (n, 3) the additive bias in acc: turn-on + Gauss–Markov + random walk
    gyr_bias: np.ndarray  # (n, 3)
    mag_bias: np.ndarray | None  # (n, 3) hard-iron offset and its drift; None without a magnetic environment


def _to_sensor(R_world_sensor: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Rᵀ v for each sample: world-frame vectors expressed in the sensor frame."""
    return np.einsum("nji,nj->ni", R_world_sensor, world)


def ideal_imu(R_world_segment, omega_segment, acc_world_point, mounting) -> tuple[np.ndarray, np.ndarray]:
    """A perfect strap's (specific force (n, 3) m/s², angular rate (n, 3) rad/s), both in the sensor frame.

    ``acc_world_point`` is the world acceleration of the strap's own mounting point, so lever-arm
    (centripetal and tangential) terms are already in it; ``mounting`` is segment-from-sensor (3, 3).
    """
    mounting = np.asarray(mounting, dtype=np.float64)
    R_world_sensor = np.asarray(R_world_segment, dtype=np.float64) @ mounting
    specific_force = _to_sensor(R_world_sensor, np.asarray(acc_world_point, dtype=np.float64) - GRAVITY_WORLD)
    gyro = np.asarray(omega_segment, dtype=np.float64) @ mounting  # row-vector form of mountingᵀ ω
    return specific_force, gyro


def _sample_rate(t: np.ndarray) -> float:
    """The nominal rate: white noise σ follows the sensor's configured rate, not per-sample timing jitter."""
    dt = np.diff(t)
    if len(t) < 2 or np.any(dt <= 0):
        raise ValueError("t needs at least two strictly increasing sample times")
    return float(1.0 / np.median(dt))


def _white_noise(density: float, rate: float, n: int, rng: np.random.Generator) -> np.ndarray:
    if density == 0.0:
        return np.zeros((n, 3))
    return density * math.sqrt(rate) * rng.standard_normal((n, 3))


def _gauss_markov(sigma: float, tau: float, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """b_k = φ_k b_{k−1} + σ√(1 − φ_k²) w_k with φ_k = exp(−Δt_k/τ), started stationary: σ at every t."""
    bias = np.zeros((len(t), 3))
    if sigma == 0.0:
        return bias
    phi = np.exp(-np.diff(t) / tau)
    drive = rng.standard_normal((len(t), 3))
    drive[0] *= sigma
    drive[1:] *= sigma * np.sqrt(1.0 - phi**2)[:, None]
    # a recursion with a per-step coefficient (t may be irregular); plain floats keep it fast
    for axis in range(3):
        steps = zip(phi.tolist(), drive[1:, axis].tolist(), strict=True)
        bias[:, axis] = list(accumulate(steps, lambda b, step: step[0] * b + step[1], initial=drive[0, axis]))
    return bias


def _random_walk(density: float, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if density == 0.0:
        return np.zeros((len(t), 3))
    steps = density * np.sqrt(np.diff(t))[:, None] * rng.standard_normal((len(t) - 1, 3))
    return np.vstack([np.zeros((1, 3)), np.cumsum(steps, axis=0)])


def _measure(truth: np.ndarray, errors: SensorErrors, t: np.ndarray, rate: float, streams) -> tuple:
    """(measured (n, 3), additive bias (n, 3), saturated (n,)) for one triaxial sensor."""
    white_rng, gauss_markov_rng, walk_rng = streams
    bias = (
        np.asarray(errors.bias, dtype=np.float64)
        + _gauss_markov(errors.bias_instability, errors.bias_correlation_s, t, gauss_markov_rng)
        + _random_walk(errors.bias_random_walk, t, walk_rng)
    )
    raw = truth @ errors.gain().T + bias + _white_noise(errors.noise_density, rate, len(t), white_rng)
    if errors.lsb:
        raw = np.round(raw / errors.lsb) * errors.lsb
    saturated = np.any(np.abs(raw) > errors.full_scale, axis=1)
    return np.clip(raw, -errors.full_scale, errors.full_scale), bias, saturated


def _check_rows(n: int, **arrays: np.ndarray) -> None:
    for name, array in arrays.items():
        if len(array) != n:
            raise ValueError(f"{name} has {len(array)} samples, t has {n}")


def simulate_imu(
    t,
    R_world_segment,
    omega_segment,
    acc_world_point,
    position_world,
    mounting,
    errors: ImuErrors,
    mag_env: MagneticEnvironment | None,
    rng: np.random.Generator,
) -> ImuTrack:
    """Measure a strap's motion with ``errors``; sample times ``t`` (s) set the noise rate and bias steps.

    Each error term of each sensor draws from its own child of ``rng``, so switching one term on or off
    leaves every other term's realisation as it was, and the same seed gives the same bytes.
    """
    t = np.asarray(t, dtype=np.float64)
    R_world_segment = np.asarray(R_world_segment, dtype=np.float64)
    position_world = np.asarray(position_world, dtype=np.float64)
    _check_rows(
        len(t),
        R_world_segment=R_world_segment,
        omega_segment=np.asarray(omega_segment),
        acc_world_point=np.asarray(acc_world_point),
        position_world=position_world,
    )
    rate = _sample_rate(t)
    R_world_sensor = R_world_segment @ np.asarray(mounting, dtype=np.float64)
    truth_acc, truth_gyr = ideal_imu(R_world_segment, omega_segment, acc_world_point, mounting)
    streams = rng.spawn(9)  # 3 sensors x (white noise, Gauss–Markov, random walk)
    acc, acc_bias, acc_saturated = _measure(truth_acc, errors.acc, t, rate, streams[0:3])
    gyr, gyr_bias, gyr_saturated = _measure(truth_gyr, errors.gyr, t, rate, streams[3:6])
    saturated = acc_saturated | gyr_saturated
    truth_mag = mag = mag_bias = None
    if mag_env is not None:
        truth_mag = _to_sensor(R_world_sensor, mag_env.field_at(position_world))
        mag, mag_bias, mag_saturated = _measure(truth_mag, errors.mag, t, rate, streams[6:9])
        saturated = saturated | mag_saturated
    return ImuTrack(
        t=t,
        acc=acc,
        gyr=gyr,
        mag=mag,
        truth_acc=truth_acc,
        truth_gyr=truth_gyr,
        truth_mag=truth_mag,
        R_world_sensor=R_world_sensor,
        saturated=saturated,
        acc_bias=acc_bias,
        gyr_bias=gyr_bias,
        mag_bias=mag_bias,
    )


def _cross_axis(fraction: float) -> Mat3:
    """Every off-diagonal term at the datasheet's typical magnitude, signs fixed once (not a pure rotation)."""
    f = fraction
    return ((0.0, f, -f), (f, 0.0, f), (-f, -f, 0.0))


# TDK InvenSense ICM-20948 datasheet DS-000189 rev. 1.3 (2017): Table 1 gyroscope, Table 2 accelerometer,
# Table 3 and Table 22 magnetometer (the AK09916 die). Ranges are the widest, as sport needs. Turn-on
# biases, scale factors and cross-axis terms sit at the datasheet's typical (±) values with fixed signs.
# The datasheet states no bias instability: the Gauss–Markov terms below are its temperature coefficient
# of the zero level times an assumed ±2 °C swing of a body-worn strap, with an assumed 5 min thermal time
# constant. It states no magnetometer noise either: 0.45 µT rms at its 100 Hz rate (3 LSB) is assumed.
_ICM20948_ACC = SensorErrors(
    noise_density=230 * UG,  # noise spectral density 230 µg/√Hz
    bias_instability=0.80 * MG * 2.0,  # zero-g level change 0.80 mg/°C x 2 °C
    bias_correlation_s=300.0,
    bias=(25 * MG, -25 * MG, 25 * MG),  # zero-g initial tolerance ±25 mg (component level)
    scale_factor=(0.005, -0.005, 0.005),  # sensitivity initial tolerance ±0.5 %
    cross_axis=_cross_axis(0.02),  # cross-axis sensitivity ±2 %
    full_scale=16 * G0,  # ACCEL_FS = ±16 g
    lsb=G0 / 2048,  # 2048 LSB/g at ±16 g
)
_ICM20948_GYR = SensorErrors(
    noise_density=0.015 * DPS,  # rate noise spectral density 0.015 °/s/√Hz
    bias_instability=0.05 * DPS * 2.0,  # zero-rate output change 0.05 °/s/°C x 2 °C
    bias_correlation_s=300.0,
    bias=(5 * DPS, -5 * DPS, 5 * DPS),  # initial zero-rate output tolerance ±5 °/s (board level)
    scale_factor=(0.015, -0.015, 0.015),  # sensitivity scale factor tolerance ±1.5 %
    cross_axis=_cross_axis(0.02),  # cross-axis sensitivity ±2 %
    full_scale=2000 * DPS,  # GYRO_FS_SEL = ±2000 °/s
    lsb=DPS / 16.4,  # 16.4 LSB/(°/s) at ±2000 °/s
)
_ICM20948_MAG = SensorErrors(
    noise_density=0.045,  # assumed (see above): 0.045 µT/√Hz x √100 Hz = 0.45 µT rms
    full_scale=4912.0,  # ±32752 counts (Table 22), the ±4900 µT range
    lsb=0.15,  # 0.15 µT/LSB
    # bias stays zero: the zero-field tolerance (±2000 LSB = ±300 µT, Table 3) is the hard-iron offset
    # every application calibrates away before use; set a residual here to study its effect.
)

PRESETS: dict[str, ImuErrors] = {
    "perfect": ImuErrors(),
    "consumer": ImuErrors(acc=_ICM20948_ACC, gyr=_ICM20948_GYR, mag=_ICM20948_MAG),
}
