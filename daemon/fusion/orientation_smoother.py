"""Offline (acausal) IMU orientation: the whole recording at once, every sample's estimate using the samples
after it too. The offline variant of VQF, written here from D. Laidig and T. Seel, "VQF: Highly accurate IMU
orientation estimation with bias estimation and magnetic disturbance rejection", Information Fusion 91:187
(2023), sec. 4.4 ("Offline estimation"), on top of kinefuse's own VQF kernel (kinefuse._ext.ahrs):

1. *Bias, forward and backward*: the causal filter runs forward, and again over the time-reversed recording
   (gyroscope negated, so it estimates minus the bias); at each sample the two bias estimates are combined
   by their Kalman information (inverse covariances), as two independent estimates are.
2. *Strapdown*: the gyroscope, less that bias, is integrated into q_gyr (sensor to an almost-inertial frame).
3. *Inclination*: the accelerometer rotated into that frame is low-passed forward and backward (the same
   second-order Butterworth, time constant ``tau_acc``, the first ``tau_acc`` seconds averaged to start it,
   the backward pass started in steady state at the last sample), so the correction has no phase lag; the
   correction q_acc is accumulated as in the causal filter.
4. *Heading*: the magnetometer's heading disagreement is first-order filtered (``tau_mag``) forward and then
   backward, skipping the samples called magnetically disturbed (as the causal filter does, for at most
   ``mag_max_rejection_time``). The paper (and ``offlineVQF``) calls a sample disturbed when both passes of
   step 1 do (``disturbance_rule="both"``). By default here (``"referenced"``) a sample is disturbed when a
   pass that has accepted a reference field calls it so: a causal pass flags every sample until it has
   accepted one (it has nothing to compare with yet), so its flags say something only after that, and then
   one pass's rejection is kept even where the other pass has no reference yet or accepted the field. On the
   BROAD trials this is never less accurate than the paper's rule and more accurate on two
   (docs/fusion.md, "Offline analysis").

The vqf package's ``offlineVQF`` implements the same steps (its C++ source is the authors'); with
``disturbance_rule="both"`` this module reproduces it (tests/fusion/test_orientation_smoother.py), and the
benches score the two side by side.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from kinefuse._native import ahrs
from kinefuse.fusion.orientation_filter import OrientationFilter

# Offsets into the kernel's saved state (OrientationFilter.get_state()["state"], the State struct in
# ext/ahrs.pyx): the bias estimate and its 3x3 covariance, which update_batch does not return.
_BIAS = slice(21, 24)
_BIAS_P = slice(24, 33)
_MAG_REF_NORM = 74  # the accepted reference field's norm; 0 until one is accepted
DISTURBANCE_RULES = ("referenced", "both")


def smooth_orientation(
    gyr, acc, mag=None, *, rate_hz: float, disturbance_rule: str = "referenced", **options
) -> dict[str, np.ndarray]:
    """Offline orientation of a whole recording sampled at ``rate_hz`` (gyr rad/s, acc m/s², mag any unit,
    each (n, 3); mag None: 6D only). ``options`` are the causal filter's (OrientationFilter).

    Returns quat6d and, with a magnetometer, quat9d (n, 4; w, x, y, z; sensor to earth, x east, y north, z up),
    delta (n,: the heading correction 9D - 6D, rad), bias (n, 3; rad/s), bias_sigma (n,; rad/s), rest (n,; bool:
    either pass detected rest) and mag_disturbed (n,; bool: as ``disturbance_rule`` says, module docstring).
    """
    gyr, acc = (np.ascontiguousarray(x, dtype=np.float64) for x in (gyr, acc))
    mag = None if mag is None else np.ascontiguousarray(mag, dtype=np.float64)
    if (
        gyr.ndim != 2
        or gyr.shape[1] != 3
        or acc.shape != gyr.shape
        or (mag is not None and mag.shape != gyr.shape)
    ):
        raise ValueError(
            f"gyr, acc (and mag) must be (n, 3) arrays of one length, got {gyr.shape}, {acc.shape}"
        )
    if len(gyr) < 2:
        raise ValueError(f"an offline orientation needs at least 2 samples, got {len(gyr)}")
    if disturbance_rule not in DISTURBANCE_RULES:
        raise ValueError(
            f"disturbance_rule must be one of {', '.join(DISTURBANCE_RULES)}, got {disturbance_rule!r}"
        )
    params = {**ahrs.DEFAULTS, **options}
    ts = 1.0 / rate_hz
    forward = _pass(gyr, acc, mag, rate_hz, options)
    backward = _pass(-gyr[::-1], acc[::-1], None if mag is None else mag[::-1], rate_hz, options)
    backward = {key: value[::-1] for key, value in backward.items()}
    bias, sigma = _combine_bias(forward, backward, params["bias_sigma_init"])
    quat3d = _integrate(gyr - bias, ts)
    acc_inertial = _filtfilt(_rotate(quat3d, acc), params["tau_acc"], ts)
    quat6d = _correct_inclination(quat3d, acc_inertial)
    out = {"quat6d": quat6d, "bias": bias, "bias_sigma": sigma, "rest": forward["rest"] | backward["rest"],
           "mag_disturbed": _disturbed(forward, backward, disturbance_rule)}  # fmt: skip
    if mag is not None:
        earth = _rotate(quat6d, mag)
        delta = np.arctan2(earth[:, 0], earth[:, 1])
        for backwards in (False, True):
            delta = _filter_heading(delta, out["mag_disturbed"], ts, params, backwards)
        out["delta"], out["quat9d"] = delta, _apply_heading(quat6d, delta)
    return out


def _pass(gyr, acc, mag, rate_hz: float, options: dict) -> dict[str, np.ndarray]:
    """The causal filter over the samples in order: its bias estimate and covariance after each sample."""
    n = len(gyr)
    flt = OrientationFilter(rate_hz, **options)
    bias, cov = np.empty((n, 3)), np.empty((n, 3, 3))
    rest, disturbed, referenced = (np.empty(n, dtype=bool) for _ in range(3))
    nan3 = (math.nan,) * 3
    g, a = gyr.tolist(), acc.tolist()
    m = mag.tolist() if mag is not None else None
    for i in range(n):
        flt.update(*g[i], *a[i], *(m[i] if m is not None else nan3))
        state = flt.get_state()["state"]
        bias[i], cov[i] = state[_BIAS], state[_BIAS_P].reshape(3, 3)
        rest[i], disturbed[i], referenced[i] = (
            flt.rest_detected,
            flt.mag_disturbed,
            state[_MAG_REF_NORM] != 0.0,
        )
    return {"bias": bias, "cov": cov, "rest": rest, "mag_disturbed": disturbed, "referenced": referenced}


def _disturbed(forward: dict, backward: dict, rule: str) -> np.ndarray:
    """Which samples the heading filter skips: both passes' flags, or those of a pass with a reference field."""
    if rule == "both":
        return forward["mag_disturbed"] & backward["mag_disturbed"]
    return (forward["mag_disturbed"] & forward["referenced"]) | (
        backward["mag_disturbed"] & backward["referenced"]
    )


def _combine_bias(forward: dict, backward: dict, sigma_init_dps: float) -> tuple[np.ndarray, np.ndarray]:
    """Information-weighted mean of the forward bias and minus the backward one (which saw the gyroscope
    negated), and its uncertainty in rad/s (the covariance is kept in (0.01 deg/s)², as the kernel does)."""
    info_f, info_b = np.linalg.inv(forward["cov"]), np.linalg.inv(backward["cov"])
    cov = np.linalg.inv(info_f + info_b)
    weighted = np.einsum("nij,nj->ni", info_f, forward["bias"]) - np.einsum(
        "nij,nj->ni", info_b, backward["bias"]
    )
    bias = np.einsum("nij,nj->ni", cov, weighted)
    worst_row = np.abs(cov).sum(axis=2).max(axis=1)
    sigma = np.minimum(np.sqrt(worst_row) * math.radians(0.01), sigma_init_dps)
    return bias, sigma


def _integrate(gyr: np.ndarray, ts: float) -> np.ndarray:
    """Each sample's orientation from integrating the gyroscope (exact rotation per step), from identity."""
    out = np.empty((len(gyr), 4))
    w, x, y, z = 1.0, 0.0, 0.0, 0.0
    for i, (gx, gy, gz) in enumerate(gyr.tolist()):
        norm = math.sqrt(gx * gx + gy * gy + gz * gz)
        if norm > np.finfo(float).eps:
            c, s = math.cos(norm * ts / 2), math.sin(norm * ts / 2) / norm
            w, x, y, z = _multiply(w, x, y, z, c, s * gx, s * gy, s * gz)
            scale = 1.0 / math.sqrt(w * w + x * x + y * y + z * z)
            w, x, y, z = w * scale, x * scale, y * scale, z * scale
        out[i] = w, x, y, z
    return out


def _multiply(aw, ax, ay, az, bw, bx, by, bz) -> tuple[float, float, float, float]:
    return (aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw)  # fmt: skip


def _rotate(quat: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Each v rotated by its quaternion (q v q*)."""
    w, u = quat[:, :1], quat[:, 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def _rotate_one(w, x, y, z, vx, vy, vz) -> tuple[float, float, float]:
    tx, ty, tz = 2 * (y * vz - z * vy), 2 * (z * vx - x * vz), 2 * (x * vy - y * vx)
    return (vx + w * tx + y * tz - z * ty, vy + w * ty + z * tx - x * tz, vz + w * tz + x * ty - y * tx)


def _butterworth(tau: float, ts: float) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's second-order Butterworth low-pass (b, a with a0 = 1); a pass-through below tau = ts/2."""
    if tau < ts / 2:
        return np.array([1.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0])
    c = math.tan(math.pi * (math.sqrt(2) / (2 * math.pi) / tau) * ts)
    d = c * c + math.sqrt(2) * c + 1
    b0 = c * c / d
    return np.array([b0, 2 * b0, b0]), np.array(
        [1.0, 2 * (c * c - 1) / d, (1 - math.sqrt(2) * c + c * c) / d]
    )


def _steady(x0: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """lfilter's state (2, channels) for a constant input x0 that the filter has settled on."""
    return np.stack([x0 * (1 - b[0]), x0 * (b[2] - a[2])])


def _filtfilt(x: np.ndarray, tau: float, ts: float) -> np.ndarray:
    """The low-pass forward, its first tau seconds replaced by their running mean and the filter started in
    steady state on that mean (one sample does not decide the start), then backward from the last output."""
    b, a = _butterworth(tau, ts)
    start = 1
    while start * ts < tau and start < len(x):
        start += 1
    out = np.empty_like(x)
    out[:start] = np.cumsum(x[:start], axis=0) / np.arange(1, start + 1)[:, None]
    out[start:] = lfilter(b, a, x[start:], axis=0, zi=_steady(out[start - 1], b, a))[0]
    backward = lfilter(b, a, out[::-1], axis=0, zi=_steady(out[-1], b, a))[0]
    return backward[::-1]


def _correct_inclination(quat3d: np.ndarray, acc_inertial: np.ndarray) -> np.ndarray:
    """q_acc ⊗ q_gyr per sample, q_acc turned each step by the smallest rotation that brings the low-passed
    acceleration (in the q_acc frame) onto the vertical, as the causal filter's inclination correction."""
    out = np.empty_like(quat3d)
    qw, qx, qy, qz = 1.0, 0.0, 0.0, 0.0
    for i, v in enumerate(acc_inertial.tolist()):
        ex, ey, ez = _rotate_one(qw, qx, qy, qz, *v)
        norm = math.sqrt(ex * ex + ey * ey + ez * ez)
        if norm > 0.0:
            ex, ey, ez = ex / norm, ey / norm, ez / norm
        cw = math.sqrt(max(ez + 1, 0.0) / 2)
        corr = (cw, 0.5 * ey / cw, -0.5 * ex / cw, 0.0) if cw > 1e-6 else (0.0, 1.0, 0.0, 0.0)
        qw, qx, qy, qz = _multiply(*corr, qw, qx, qy, qz)
        scale = 1.0 / math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        qw, qx, qy, qz = qw * scale, qx * scale, qy * scale, qz * scale
        out[i] = _multiply(qw, qx, qy, qz, *quat3d[i].tolist())
    return out


def _wrap(angle: float) -> float:
    if angle > math.pi:
        return angle - 2 * math.pi
    return angle + 2 * math.pi if angle < -math.pi else angle


def _filter_heading(
    delta: np.ndarray, disturbed: np.ndarray, ts: float, params: dict, backwards: bool
) -> np.ndarray:
    """One pass of the first-order heading filter (gain from ``tau_mag``, 1/N over the first samples) over
    ``delta``: a disturbed sample is skipped for up to ``mag_max_rejection_time`` of rejection, then used at
    gain / ``mag_rejection_factor``, as the causal filter does."""
    n = len(delta)
    order = range(n - 1, -1, -1) if backwards else range(n)
    values, flags = delta.tolist(), disturbed.tolist()
    out = np.empty(n)
    d = values[order[0]]
    tau = params["tau_mag"]
    k_mag = 1 - math.exp(-ts / tau) if tau > 0 else float(tau == 0)  # negative: no update, zero: no filter
    k_init, reject_t = 1.0, 0.0
    for j in order:
        k = k_mag
        if params["mag_rejection"]:
            if flags[j]:
                if reject_t <= params["mag_max_rejection_time"]:
                    reject_t, k = reject_t + ts, 0.0
                else:
                    k /= params["mag_rejection_factor"]
            else:
                reject_t = max(reject_t - params["mag_rejection_factor"] * ts, 0.0)
        if k_init != 0.0:
            k = max(k, k_init)
            k_init = k_init / (k_init + 1)
            if k_init * params["tau_mag"] < ts:
                k_init = 0.0
        d = _wrap(d + k * _wrap(values[j] - d))
        out[j] = d
    return out


def _apply_heading(quat: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """rot_z(delta) ⊗ q per sample."""
    c, s = np.cos(delta / 2), np.sin(delta / 2)
    w, x, y, z = quat.T
    return np.stack([c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w], axis=1)
