"""Twin of ``kinefuse._ext.ahrs``: the same operations in the same order, bit-identical (change both
together). See the compiled module's docstring for the algorithms and their sources."""

from __future__ import annotations

import math

import numpy as np

STATE_VERSION = 1
_EPS = 2.220446049250313e-16
_DEG = math.pi / 180.0
PARAMETERS = (
    "tau_acc", "tau_mag", "motion_bias", "rest_bias", "mag_rejection", "bias_sigma_init",
    "bias_forgetting_time", "bias_clip", "bias_sigma_motion", "bias_vertical_forgetting_factor",
    "bias_sigma_rest", "rest_min_t", "rest_filter_tau", "rest_th_gyr", "rest_th_acc", "mag_current_tau",
    "mag_ref_tau", "mag_norm_th", "mag_dip_th", "mag_new_time", "mag_new_first_time", "mag_new_min_gyr",
    "mag_min_undisturbed_time", "mag_max_rejection_time", "mag_rejection_factor",
)  # fmt: skip
DEFAULTS = dict(
    tau_acc=3.0, tau_mag=9.0, motion_bias=True, rest_bias=True, mag_rejection=True, bias_sigma_init=0.5,
    bias_forgetting_time=100.0, bias_clip=2.0, bias_sigma_motion=0.1, bias_vertical_forgetting_factor=0.0001,
    bias_sigma_rest=0.03, rest_min_t=1.5, rest_filter_tau=0.5, rest_th_gyr=2.0, rest_th_acc=0.5,
    mag_current_tau=0.05, mag_ref_tau=20.0, mag_norm_th=0.1, mag_dip_th=10.0, mag_new_time=20.0,
    mag_new_first_time=5.0, mag_new_min_gyr=20.0, mag_min_undisturbed_time=0.5, mag_max_rejection_time=60.0,
    mag_rejection_factor=2.0,
)  # fmt: skip
# the compiled State struct, field by field, as get_state flattens it
_LAYOUT = (("gyr_q", 4), ("acc_q", 4), ("delta", 1), ("rest_", 1), ("mag_dist_", 1),
           ("last_acc_lp", 3), ("acc_lp_state", 6), ("k_mag_init", 1), ("bias_", 3), ("bias_p", 9),
           ("motion_r_lp_state", 18), ("motion_bias_lp_state", 4), ("rest_t", 1), ("rest_gyr_lp", 3),
           ("rest_gyr_lp_state", 6), ("rest_acc_lp", 3), ("rest_acc_lp_state", 6), ("mag_ref_norm", 1),
           ("mag_ref_dip", 1), ("mag_undisturbed_t", 1), ("mag_reject_t", 1), ("mag_candidate_norm", 1),
           ("mag_candidate_dip", 1), ("mag_candidate_t", 1), ("mag_norm_dip", 2),
           ("mag_norm_dip_lp_state", 4))  # fmt: skip


def _quat_multiply(q1, q2):
    w = q1[0] * q2[0] - q1[1] * q2[1] - q1[2] * q2[2] - q1[3] * q2[3]
    x = q1[0] * q2[1] + q1[1] * q2[0] + q1[2] * q2[3] - q1[3] * q2[2]
    y = q1[0] * q2[2] - q1[1] * q2[3] + q1[2] * q2[0] + q1[3] * q2[1]
    z = q1[0] * q2[3] + q1[1] * q2[2] - q1[2] * q2[1] + q1[3] * q2[0]
    return [w, x, y, z]


def _quat_rotate(q, v):
    x = ((1 - 2 * q[2] * q[2] - 2 * q[3] * q[3]) * v[0] + 2 * v[1] * (q[2] * q[1] - q[0] * q[3])
         + 2 * v[2] * (q[0] * q[2] + q[3] * q[1]))  # fmt: skip
    y = (2 * v[0] * (q[0] * q[3] + q[2] * q[1]) + v[1] * (1 - 2 * q[1] * q[1] - 2 * q[3] * q[3])
         + 2 * v[2] * (q[2] * q[3] - q[1] * q[0]))  # fmt: skip
    z = (2 * v[0] * (q[3] * q[1] - q[0] * q[2]) + 2 * v[1] * (q[0] * q[1] + q[3] * q[2])
         + v[2] * (1 - 2 * q[1] * q[1] - 2 * q[2] * q[2]))  # fmt: skip
    return [x, y, z]


def _norm(v):
    s = 0.0
    for value in v:
        s += value * value
    return math.sqrt(s)


def _normalize(v):
    length = _norm(v)
    if length < _EPS:
        return v
    return [value / length for value in v]


def _clip(v, low, high):
    return low if v < low else (high if v > high else v)


def _wrap(angle):
    if angle > math.pi:
        return angle - 2 * math.pi
    if angle < -math.pi:
        return angle + 2 * math.pi
    return angle


def _gain_from_tau(tau, ts):
    if tau < 0.0:
        return 0.0
    if tau == 0.0:
        return 1.0
    return 1.0 - math.exp(-ts / tau)


def _butterworth(tau, ts):
    fc = (math.sqrt(2.0) / (2.0 * math.pi)) / tau
    C = math.tan(math.pi * fc * ts)
    D = C * C + math.sqrt(2.0) * C + 1.0
    b0 = C * C / D
    return [b0, 2.0 * b0, b0], [2.0 * (C * C - 1.0) / D, (1.0 - math.sqrt(2.0) * C + C * C) / D]


def _filter_vec(x, tau, ts, b, a, state):
    """Low-pass the channels of x in place of ``state`` (a list of 2n); returns the outputs."""
    n = len(x)
    if math.isnan(state[0]):
        if math.isnan(state[1]):
            state[1] = 0.0
            for i in range(n):
                state[2 + i] = 0.0
        state[1] += 1.0
        out = []
        for i in range(n):
            state[2 + i] += x[i]
            out.append(state[2 + i] / state[1])
        if state[1] * ts >= tau:
            for i in range(n):
                state[2 * i] = out[i] * (1.0 - b[0])
                state[2 * i + 1] = out[i] * (b[2] - a[1])
        return out
    out = []
    for i in range(n):
        y = b[0] * x[i] + state[2 * i]
        state[2 * i] = b[1] * x[i] - a[0] * y + state[2 * i + 1]
        state[2 * i + 1] = b[2] * x[i] - a[1] * y
        out.append(y)
    return out


def _matrix3_inverse(m):
    det = (m[0] * (m[4] * m[8] - m[7] * m[5]) - m[1] * (m[3] * m[8] - m[5] * m[6])
           + m[2] * (m[3] * m[7] - m[4] * m[6]))  # fmt: skip
    return [
        (m[4] * m[8] - m[7] * m[5]) / det, (m[2] * m[7] - m[1] * m[8]) / det, (m[1] * m[5] - m[2] * m[4]) / det,
        (m[5] * m[6] - m[3] * m[8]) / det, (m[0] * m[8] - m[2] * m[6]) / det, (m[3] * m[2] - m[0] * m[5]) / det,
        (m[3] * m[7] - m[6] * m[4]) / det, (m[6] * m[1] - m[0] * m[7]) / det, (m[0] * m[4] - m[3] * m[1]) / det,
    ]  # fmt: skip


def _matrix3_multiply(a, b):
    return [
        a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j]
        for i in range(3)
        for j in range(3)
    ]


def _matrix3_multiply_transposed_second(a, b):
    return [a[3 * i] * b[3 * j] + a[3 * i + 1] * b[3 * j + 1] + a[3 * i + 2] * b[3 * j + 2]
            for i in range(3) for j in range(3)]  # fmt: skip


class _Params:
    def __init__(self, rate_hz, options):
        unknown = set(options) - set(PARAMETERS)
        if unknown:
            raise ValueError(
                f"unknown orientation filter parameters {sorted(unknown)}; known: {', '.join(PARAMETERS)}"
            )
        if not (rate_hz > 0.0 and rate_hz < 1e6):
            raise ValueError(f"rate_hz must be a positive sample rate, got {rate_hz!r}")
        merged = {**DEFAULTS, **options}
        for name in ("tau_acc", "tau_mag", "bias_sigma_init", "bias_forgetting_time", "bias_clip", "rest_min_t",
                     "rest_filter_tau", "rest_th_gyr", "rest_th_acc", "mag_ref_tau", "mag_norm_th", "mag_dip_th",
                     "mag_rejection_factor"):  # fmt: skip
            if not merged[name] > 0.0:
                raise ValueError(f"{name} must be positive, got {merged[name]!r}")
        self.__dict__.update(merged)
        self.ts = 1.0 / rate_hz


class OrientationFilter:
    def __init__(self, rate_hz, **options):
        self.p = p = _Params(rate_hz, options)
        self.rate_hz, self.options = rate_hz, dict(options)
        self.acc_b, self.acc_a = _butterworth(p.tau_acc, p.ts)
        self.k_mag = _gain_from_tau(p.tau_mag, p.ts)
        self.bias_p0 = (p.bias_sigma_init * 100.0) ** 2
        self.bias_v = (0.1 * 100.0) ** 2 * p.ts / p.bias_forgetting_time
        p_motion = (p.bias_sigma_motion * 100.0) ** 2
        self.bias_motion_w = p_motion * p_motion / self.bias_v + p_motion
        self.bias_vertical_w = self.bias_motion_w / (
            p.bias_vertical_forgetting_factor if p.bias_vertical_forgetting_factor > 1e-10 else 1e-10
        )
        p_rest = (p.bias_sigma_rest * 100.0) ** 2
        self.bias_rest_w = p_rest * p_rest / self.bias_v + p_rest
        self.rest_gyr_b, self.rest_gyr_a = _butterworth(p.rest_filter_tau, p.ts)
        self.rest_acc_b, self.rest_acc_a = _butterworth(p.rest_filter_tau, p.ts)
        self.k_mag_ref = _gain_from_tau(p.mag_ref_tau, p.ts)
        if p.mag_current_tau > 0:
            self.mag_lp_b, self.mag_lp_a = _butterworth(p.mag_current_tau, p.ts)
        self._reset()

    def _reset(self):
        nan = math.nan
        self.gyr_q, self.acc_q = [1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]
        self.delta, self.rest_, self.mag_dist_ = 0.0, 0.0, 1.0
        self.last_acc_lp, self.acc_lp_state = [0.0] * 3, [nan] * 6
        self.k_mag_init = 1.0
        self.bias_ = [0.0] * 3
        self.bias_p = [self.bias_p0 if i % 4 == 0 else 0.0 for i in range(9)]
        self.motion_r_lp_state, self.motion_bias_lp_state = [nan] * 18, [nan] * 4
        self.rest_t = 0.0
        self.rest_gyr_lp, self.rest_gyr_lp_state = [0.0] * 3, [nan] * 6
        self.rest_acc_lp, self.rest_acc_lp_state = [0.0] * 3, [nan] * 6
        self.mag_ref_norm = self.mag_ref_dip = self.mag_undisturbed_t = 0.0
        self.mag_reject_t = self.p.mag_max_rejection_time
        self.mag_candidate_norm, self.mag_candidate_dip, self.mag_candidate_t = -1.0, 0.0, 0.0
        self.mag_norm_dip, self.mag_norm_dip_lp_state = [0.0, 0.0], [nan] * 4

    # --- updates ---------------------------------------------------------------------------------
    def update(self, gx, gy, gz, ax, ay, az, mx=math.nan, my=math.nan, mz=math.nan):
        self._update_gyr([gx, gy, gz])
        self._update_acc([ax, ay, az])
        if not math.isnan(mx):
            self._update_mag([mx, my, mz])

    def _update_gyr(self, gyr):
        p = self.p
        bias_clip = p.bias_clip * _DEG
        if p.rest_bias or p.mag_rejection:
            self.rest_gyr_lp = _filter_vec(gyr, p.rest_filter_tau, p.ts, self.rest_gyr_b, self.rest_gyr_a,
                                           self.rest_gyr_lp_state)  # fmt: skip
            squared = 0.0
            for i in range(3):
                deviation = gyr[i] - self.rest_gyr_lp[i]
                squared += deviation * deviation
            if (squared >= (p.rest_th_gyr * _DEG) ** 2 or abs(self.rest_gyr_lp[0]) > bias_clip
                    or abs(self.rest_gyr_lp[1]) > bias_clip or abs(self.rest_gyr_lp[2]) > bias_clip):  # fmt: skip
                self.rest_t, self.rest_ = 0.0, 0.0
        g = [gyr[i] - self.bias_[i] for i in range(3)]
        rate = _norm(g)
        angle = rate * p.ts
        if rate > _EPS:
            half_sin = math.sin(angle / 2) / rate
            step = [math.cos(angle / 2), half_sin * g[0], half_sin * g[1], half_sin * g[2]]
            self.gyr_q = _normalize(_quat_multiply(self.gyr_q, step))

    def _update_rest_acc(self, acc):
        p = self.p
        self.rest_acc_lp = _filter_vec(acc, p.rest_filter_tau, p.ts, self.rest_acc_b, self.rest_acc_a,
                                       self.rest_acc_lp_state)  # fmt: skip
        squared = 0.0
        for i in range(3):
            deviation = acc[i] - self.rest_acc_lp[i]
            squared += deviation * deviation
        if squared >= p.rest_th_acc * p.rest_th_acc:
            self.rest_t, self.rest_ = 0.0, 0.0
        else:
            self.rest_t += p.ts
            if self.rest_t >= p.rest_min_t:
                self.rest_ = 1.0

    def _update_acc(self, acc):
        p = self.p
        if acc[0] == 0.0 and acc[1] == 0.0 and acc[2] == 0.0:
            return
        if p.rest_bias:
            self._update_rest_acc(acc)
        acc_earth = _quat_rotate(self.gyr_q, acc)
        self.last_acc_lp = _filter_vec(acc_earth, p.tau_acc, p.ts, self.acc_b, self.acc_a, self.acc_lp_state)
        acc_earth = _normalize(_quat_rotate(self.acc_q, self.last_acc_lp))
        qw = math.sqrt((acc_earth[2] + 1) / 2)
        if qw > 1e-6:
            correction = [qw, 0.5 * acc_earth[1] / qw, -0.5 * acc_earth[0] / qw, 0.0]
        else:
            correction = [0.0, 1.0, 0.0, 0.0]
        self.acc_q = _normalize(_quat_multiply(correction, self.acc_q))
        if p.motion_bias or p.rest_bias:
            self._update_bias(acc_earth)

    def _update_bias(self, acc_earth):
        p = self.p
        bias_clip = p.bias_clip * _DEG
        q = _quat_multiply(self.acc_q, self.gyr_q)
        R = [
            1 - 2 * q[2] * q[2] - 2 * q[3] * q[3], 2 * (q[2] * q[1] - q[0] * q[3]), 2 * (q[0] * q[2] + q[3] * q[1]),
            2 * (q[0] * q[3] + q[2] * q[1]), 1 - 2 * q[1] * q[1] - 2 * q[3] * q[3], 2 * (q[2] * q[3] - q[1] * q[0]),
            2 * (q[3] * q[1] - q[0] * q[2]), 2 * (q[0] * q[1] + q[3] * q[2]), 1 - 2 * q[1] * q[1] - 2 * q[2] * q[2],
        ]  # fmt: skip
        b = self.bias_
        bias_lp = [R[0] * b[0] + R[1] * b[1] + R[2] * b[2], R[3] * b[0] + R[4] * b[1] + R[5] * b[2]]
        R = _filter_vec(R, p.tau_acc, p.ts, self.acc_b, self.acc_a, self.motion_r_lp_state)
        bias_lp = _filter_vec(bias_lp, p.tau_acc, p.ts, self.acc_b, self.acc_a, self.motion_bias_lp_state)
        if self.rest_ != 0.0 and p.rest_bias:
            e = [self.rest_gyr_lp[i] - b[i] for i in range(3)]
            w = [self.bias_rest_w] * 3
            R = [1.0 if i % 4 == 0 else 0.0 for i in range(9)]
        elif p.motion_bias:
            e = [
                -acc_earth[1] / p.ts + bias_lp[0] - R[0] * b[0] - R[1] * b[1] - R[2] * b[2],
                acc_earth[0] / p.ts + bias_lp[1] - R[3] * b[0] - R[4] * b[1] - R[5] * b[2],
                -R[6] * b[0] - R[7] * b[1] - R[8] * b[2],
            ]
            w = [self.bias_motion_w, self.bias_motion_w, self.bias_vertical_w]
        else:
            w = [-1.0]
        for i in range(0, 9, 4):
            if self.bias_p[i] < self.bias_p0:
                self.bias_p[i] += self.bias_v
        if w[0] < 0.0:
            return
        e = [_clip(v, -bias_clip, bias_clip) for v in e]
        K = _matrix3_multiply_transposed_second(self.bias_p, R)
        tmp = _matrix3_multiply(R, K)
        tmp[0] += w[0]
        tmp[4] += w[1]
        tmp[8] += w[2]
        K = _matrix3_multiply(K, _matrix3_inverse(tmp))
        self.bias_ = [b[i] + (K[3 * i] * e[0] + K[3 * i + 1] * e[1] + K[3 * i + 2] * e[2]) for i in range(3)]
        tmp = _matrix3_multiply(_matrix3_multiply(K, R), self.bias_p)
        self.bias_p = [self.bias_p[i] - tmp[i] for i in range(9)]
        self.bias_ = [_clip(v, -bias_clip, bias_clip) for v in self.bias_]

    def _update_mag(self, mag):
        p = self.p
        if mag[0] == 0.0 and mag[1] == 0.0 and mag[2] == 0.0:
            return
        dip_th = p.mag_dip_th * _DEG
        mag_earth = _quat_rotate(_quat_multiply(self.acc_q, self.gyr_q), mag)
        if p.mag_rejection:
            norm = _norm(mag_earth)
            self.mag_norm_dip = [norm, -math.asin(mag_earth[2] / norm)]
            if p.mag_current_tau > 0:
                self.mag_norm_dip = _filter_vec(self.mag_norm_dip, p.mag_current_tau, p.ts, self.mag_lp_b,
                                                self.mag_lp_a, self.mag_norm_dip_lp_state)  # fmt: skip
            self._detect_disturbance(dip_th)
        disagreement = _wrap(math.atan2(mag_earth[0], mag_earth[1]) - self.delta)
        k = self.k_mag
        if p.mag_rejection:
            if self.mag_dist_ != 0.0:
                if self.mag_reject_t <= p.mag_max_rejection_time:
                    self.mag_reject_t += p.ts
                    k = 0.0
                else:
                    k /= p.mag_rejection_factor
            else:
                self.mag_reject_t = self.mag_reject_t - p.mag_rejection_factor * p.ts
                if self.mag_reject_t < 0.0:
                    self.mag_reject_t = 0.0
        if self.k_mag_init != 0.0:
            if k < self.k_mag_init:
                k = self.k_mag_init
            self.k_mag_init = self.k_mag_init / (self.k_mag_init + 1)
            if self.k_mag_init * p.tau_mag < p.ts:
                self.k_mag_init = 0.0
        self.delta = _wrap(self.delta + k * disagreement)

    def _detect_disturbance(self, dip_th):
        p = self.p
        norm, dip = self.mag_norm_dip
        if (
            abs(norm - self.mag_ref_norm) < p.mag_norm_th * self.mag_ref_norm
            and abs(dip - self.mag_ref_dip) < dip_th
        ):
            self.mag_undisturbed_t += p.ts
            if self.mag_undisturbed_t >= p.mag_min_undisturbed_time:
                self.mag_dist_ = 0.0
                self.mag_ref_norm += self.k_mag_ref * (norm - self.mag_ref_norm)
                self.mag_ref_dip += self.k_mag_ref * (dip - self.mag_ref_dip)
        else:
            self.mag_undisturbed_t = 0.0
            self.mag_dist_ = 1.0
        if (abs(norm - self.mag_candidate_norm) < p.mag_norm_th * self.mag_candidate_norm
                and abs(dip - self.mag_candidate_dip) < dip_th):  # fmt: skip
            if _norm(self.rest_gyr_lp) >= p.mag_new_min_gyr * _DEG:
                self.mag_candidate_t += p.ts
            self.mag_candidate_norm += self.k_mag_ref * (norm - self.mag_candidate_norm)
            self.mag_candidate_dip += self.k_mag_ref * (dip - self.mag_candidate_dip)
            if self.mag_dist_ != 0.0 and (self.mag_candidate_t >= p.mag_new_time or (
                    self.mag_ref_norm == 0.0 and self.mag_candidate_t >= p.mag_new_first_time)):  # fmt: skip
                self.mag_ref_norm, self.mag_ref_dip = self.mag_candidate_norm, self.mag_candidate_dip
                self.mag_dist_ = 0.0
                self.mag_undisturbed_t = p.mag_min_undisturbed_time
        else:
            self.mag_candidate_t = 0.0
            self.mag_candidate_norm, self.mag_candidate_dip = norm, dip

    # --- outputs --------------------------------------------------------------------------------
    def quaternion_6d(self):
        return tuple(_quat_multiply(self.acc_q, self.gyr_q))

    def quaternion_9d(self):
        turn = [math.cos(self.delta / 2), 0.0, 0.0, math.sin(self.delta / 2)]
        return tuple(_quat_multiply(turn, _quat_multiply(self.acc_q, self.gyr_q)))

    @property
    def bias(self):
        """Estimated gyroscope bias (rad/s)."""
        return tuple(self.bias_)

    @property
    def rest_detected(self):
        return self.rest_ != 0.0

    @property
    def mag_disturbed(self):
        return self.mag_dist_ != 0.0

    def update_batch(self, gyr, acc, mag=None):
        gyr, acc = np.asarray(gyr, dtype=np.float64), np.asarray(acc, dtype=np.float64)
        n = len(gyr)
        if gyr.shape != (n, 3) or acc.shape != (n, 3):
            raise ValueError(f"gyr and acc must both be (n, 3); got {gyr.shape} and {acc.shape}")
        if mag is not None:
            mag = np.asarray(mag, dtype=np.float64)
            if mag.shape != (n, 3):
                raise ValueError(f"mag must be ({n}, 3), got {mag.shape}")
        out = {"quat6d": np.empty((n, 4)), "quat9d": np.empty((n, 4)), "bias": np.empty((n, 3)),
               "rest": np.empty(n, dtype=bool), "mag_disturbed": np.empty(n, dtype=bool)}  # fmt: skip
        for i in range(n):
            self.update(*gyr[i].tolist(), *acc[i].tolist(), *(mag[i].tolist() if mag is not None else ()))
            out["quat6d"][i], out["quat9d"][i] = self.quaternion_6d(), self.quaternion_9d()
            out["bias"][i] = self.bias_
            out["rest"][i], out["mag_disturbed"][i] = self.rest_ != 0.0, self.mag_dist_ != 0.0
        return out

    def get_state(self):
        flat = []
        for name, size in _LAYOUT:
            value = getattr(self, name)
            flat.extend(value if size > 1 else [value])
        return {"version": STATE_VERSION, "rate_hz": self.rate_hz, "options": dict(self.options),
                "state": np.array(flat, dtype=np.float64)}  # fmt: skip

    def set_state(self, state):
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r} is not {STATE_VERSION}")
        if state["rate_hz"] != self.rate_hz or state["options"] != self.options:
            raise ValueError("state was saved by a filter with other settings")
        values = [float(v) for v in state["state"]]
        expected = sum(size for _, size in _LAYOUT)
        if len(values) != expected:
            raise ValueError(f"state has {len(values)} values, expected {expected}")
        at = 0
        for name, size in _LAYOUT:
            setattr(self, name, values[at : at + size] if size > 1 else values[at])
            at += size


# --- baselines -----------------------------------------------------------------------------------
def _integrate(q, gx, gy, gz, ts):
    dw = 0.5 * (-q[1] * gx - q[2] * gy - q[3] * gz)
    dx = 0.5 * (q[0] * gx + q[2] * gz - q[3] * gy)
    dy = 0.5 * (q[0] * gy - q[1] * gz + q[3] * gx)
    dz = 0.5 * (q[0] * gz + q[1] * gy - q[2] * gx)
    return _normalize([q[0] + ts * dw, q[1] + ts * dx, q[2] + ts * dy, q[3] + ts * dz])


def _uses(a, m):
    use_acc = not (a[0] == 0.0 and a[1] == 0.0 and a[2] == 0.0)
    use_mag = use_acc and not math.isnan(m[0]) and not (m[0] == 0.0 and m[1] == 0.0 and m[2] == 0.0)
    return use_acc, use_mag


class _Baseline:
    def __init__(self, rate_hz):
        if not (rate_hz > 0.0 and rate_hz < 1e6):
            raise ValueError(f"rate_hz must be a positive sample rate, got {rate_hz!r}")
        self.rate_hz, self.ts = rate_hz, 1.0 / rate_hz
        self.q = [1.0, 0.0, 0.0, 0.0]

    def update(self, gx, gy, gz, ax, ay, az, mx=math.nan, my=math.nan, mz=math.nan):
        self._step([gx, gy, gz], [ax, ay, az], [mx, my, mz])

    def update_batch(self, gyr, acc, mag=None):
        gyr, acc = np.asarray(gyr, dtype=np.float64), np.asarray(acc, dtype=np.float64)
        n = len(gyr)
        if gyr.shape != (n, 3) or acc.shape != (n, 3):
            raise ValueError(f"gyr and acc must both be (n, 3); got {gyr.shape} and {acc.shape}")
        if mag is not None and np.shape(mag) != (n, 3):
            raise ValueError(f"mag must be ({n}, 3), got {np.shape(mag)}")
        out = np.empty((n, 4))
        for i in range(n):
            self.update(
                *gyr[i].tolist(), *acc[i].tolist(), *(np.asarray(mag[i]).tolist() if mag is not None else ())
            )
            out[i] = self.q
        return out

    def quaternion(self):
        return tuple(self.q)


class Madgwick(_Baseline):
    def __init__(self, rate_hz, beta=0.1):
        super().__init__(rate_hz)
        if not beta >= 0.0:
            raise ValueError(f"beta must be non-negative, got {beta!r}")
        self.beta = beta

    def _step(self, g, a, m):
        q0, q1, q2, q3 = self.q
        use_acc, use_mag = _uses(a, m)
        grad = [0.0, 0.0, 0.0, 0.0]
        if use_acc:
            an = _normalize(list(a))
            f0 = 2 * (q1 * q3 - q0 * q2) - an[0]
            f1 = 2 * (q0 * q1 + q2 * q3) - an[1]
            f2 = 2 * (0.5 - q1 * q1 - q2 * q2) - an[2]
            grad = [-2 * q2 * f0 + 2 * q1 * f1, 2 * q3 * f0 + 2 * q0 * f1 - 4 * q1 * f2,
                    -2 * q0 * f0 + 2 * q3 * f1 - 4 * q2 * f2, 2 * q1 * f0 + 2 * q2 * f1]  # fmt: skip
        if use_mag:
            mn = _normalize(list(m))
            h = _quat_rotate(self.q, mn)
            bx = math.sqrt(h[0] * h[0] + h[1] * h[1])
            bz = h[2]
            f3 = 2 * bx * (0.5 - q2 * q2 - q3 * q3) + 2 * bz * (q1 * q3 - q0 * q2) - mn[0]
            f4 = 2 * bx * (q1 * q2 - q0 * q3) + 2 * bz * (q0 * q1 + q2 * q3) - mn[1]
            f5 = 2 * bx * (q0 * q2 + q1 * q3) + 2 * bz * (0.5 - q1 * q1 - q2 * q2) - mn[2]
            grad[0] += -2 * bz * q2 * f3 + (-2 * bx * q3 + 2 * bz * q1) * f4 + 2 * bx * q2 * f5
            grad[1] += 2 * bz * q3 * f3 + (2 * bx * q2 + 2 * bz * q0) * f4 + (2 * bx * q3 - 4 * bz * q1) * f5
            grad[2] += ((-4 * bx * q2 - 2 * bz * q0) * f3 + (2 * bx * q1 + 2 * bz * q3) * f4
                        + (2 * bx * q0 - 4 * bz * q2) * f5)  # fmt: skip
            grad[3] += (
                (-4 * bx * q3 + 2 * bz * q1) * f3 + (-2 * bx * q0 + 2 * bz * q2) * f4 + 2 * bx * q1 * f5
            )
        length = _norm(grad)
        if length > 0.0:
            grad = [v / length for v in grad]
        ts, beta = self.ts, self.beta
        self.q = _normalize([
            q0 + ts * (0.5 * (-q1 * g[0] - q2 * g[1] - q3 * g[2]) - beta * grad[0]),
            q1 + ts * (0.5 * (q0 * g[0] + q2 * g[2] - q3 * g[1]) - beta * grad[1]),
            q2 + ts * (0.5 * (q0 * g[1] - q1 * g[2] + q3 * g[0]) - beta * grad[2]),
            q3 + ts * (0.5 * (q0 * g[2] + q1 * g[1] - q2 * g[0]) - beta * grad[3]),
        ])  # fmt: skip

    def get_state(self):
        return {"q": self.quaternion()}

    def set_state(self, state):
        self.q = list(state["q"])


class Mahony(_Baseline):
    def __init__(self, rate_hz, kp=1.0, ki=0.0):
        super().__init__(rate_hz)
        if not (kp >= 0.0 and ki >= 0.0):
            raise ValueError(f"kp and ki must be non-negative, got {kp!r}, {ki!r}")
        self.kp, self.ki = kp, ki
        self.integral = [0.0, 0.0, 0.0]

    def _step(self, g, a, m):
        q = self.q
        use_acc, use_mag = _uses(a, m)
        e = [0.0, 0.0, 0.0]
        if use_acc:
            an = _normalize(list(a))
            v = [2 * (q[1] * q[3] - q[0] * q[2]), 2 * (q[0] * q[1] + q[2] * q[3]),
                 q[0] * q[0] - q[1] * q[1] - q[2] * q[2] + q[3] * q[3]]  # fmt: skip
            e = [an[1] * v[2] - an[2] * v[1], an[2] * v[0] - an[0] * v[2], an[0] * v[1] - an[1] * v[0]]
        if use_mag:
            mn = _normalize(list(m))
            h = _quat_rotate(q, mn)
            bx = math.sqrt(h[0] * h[0] + h[1] * h[1])
            w = _quat_rotate([q[0], -q[1], -q[2], -q[3]], [bx, 0.0, h[2]])
            e[0] += mn[1] * w[2] - mn[2] * w[1]
            e[1] += mn[2] * w[0] - mn[0] * w[2]
            e[2] += mn[0] * w[1] - mn[1] * w[0]
        if use_acc:
            up = []
            for i in range(3):
                self.integral[i] += self.ki * e[i] * self.ts
                up.append(g[i] + self.kp * e[i] + self.integral[i])
        else:
            up = list(g)
        self.q = _integrate(q, up[0], up[1], up[2], self.ts)

    def get_state(self):
        return {"q": self.quaternion(), "integral": tuple(self.integral)}

    def set_state(self, state):
        self.q, self.integral = list(state["q"]), list(state["integral"])
