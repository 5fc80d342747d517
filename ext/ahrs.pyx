"""Orientation filters for IMUs: ``OrientationFilter`` (the VQF algorithm), ``Madgwick`` and ``Mahony``.

``OrientationFilter`` implements the algorithm of Laidig & Seel, "VQF: Highly accurate IMU orientation
estimation with bias estimation and magnetic disturbance rejection", Information Fusion 91:187 (2023),
written here from the paper:

* Strapdown integration of the bias-corrected gyroscope gives q_gyr (sensor to an almost-inertial frame I).
* Inclination: the accelerometer, rotated into I, is low-passed there (second-order Butterworth, time
  constant ``tau_acc``; the first ``tau_acc`` seconds are averaged to start the filter), rotated into the
  earth frame by the inclination correction q_acc and normalised; q_acc is then turned by the smallest
  rotation that makes it point up. The 6D orientation is q_acc q_gyr.
* Gyroscope bias: a Kalman filter on the bias. At rest (low-passed gyroscope and accelerometer within
  ``rest_th_gyr`` / ``rest_th_acc`` of their means for ``rest_min_t``) the measurement is the low-passed
  gyroscope; in motion it is the bias that would explain the inclination correction (horizontal axes;
  the vertical axis only decays), using low-passed rotation matrices so accelerations average out.
* Heading: the magnetometer in the 6D earth frame gives a heading disagreement, corrected by a first-order
  filter (``tau_mag``; the first samples with gains 1/N for fast convergence). A field whose norm or dip
  departs from the accepted reference by more than ``mag_norm_th`` / ``mag_dip_th`` is a disturbance:
  its correction is skipped for up to ``mag_max_rejection_time``, then applied at a reduced gain; a new,
  steady field is accepted after ``mag_new_time`` (``mag_new_first_time`` for the first one) of motion.

Quaternions are scalar first (w, x, y, z) and rotate sensor vectors into the earth frame (x east, y north,
z up for 9D). ``Madgwick`` (Madgwick, Harrison & Vaidyanathan, ICORR 2011) and ``Mahony`` (Mahony, Hamel &
Pflimlin, IEEE TAC 53:1203, 2008) are the simple baselines.

The per-sample API, ``update(gx, gy, gz, ax, ay, az, mx, my, mz)`` (rad/s, m/s², any magnetic unit; NaN
magnetometer: 6D only), takes plain floats; ``update_batch`` takes (n, 3) arrays. ``get_state`` and
``set_state`` save and restore everything, so a restarted source resumes. ``kinefuse._pure.ahrs`` is the
twin: the same operations in the same order (setup.py forbids FMA contraction), hence bit-identical.
"""

cimport cython
from libc.math cimport M_PI, NAN, acos, asin, atan2, cos, exp, fabs, isnan, sin, sqrt, tan

import numpy as np

STATE_VERSION = 1
cdef double _EPS = 2.220446049250313e-16
cdef double _DEG = M_PI / 180.0


cdef struct Params:
    double ts
    double tau_acc, tau_mag
    bint motion_bias, rest_bias, mag_rejection
    double bias_sigma_init, bias_forgetting_time, bias_clip, bias_sigma_motion
    double bias_vertical_forgetting_factor, bias_sigma_rest
    double rest_min_t, rest_filter_tau, rest_th_gyr, rest_th_acc
    double mag_current_tau, mag_ref_tau, mag_norm_th, mag_dip_th, mag_new_time, mag_new_first_time
    double mag_new_min_gyr, mag_min_undisturbed_time, mag_max_rejection_time, mag_rejection_factor


cdef struct Coeffs:
    double acc_b[3]
    double acc_a[2]
    double k_mag
    double bias_p0, bias_v, bias_motion_w, bias_vertical_w, bias_rest_w
    double rest_gyr_b[3]
    double rest_gyr_a[2]
    double rest_acc_b[3]
    double rest_acc_a[2]
    double k_mag_ref
    double mag_lp_b[3]
    double mag_lp_a[2]


cdef struct State:
    double gyr_q[4]
    double acc_q[4]
    double delta
    double rest_detected
    double mag_disturbed
    double last_acc_lp[3]
    double acc_lp_state[6]
    double k_mag_init
    double bias[3]
    double bias_p[9]
    double motion_r_lp_state[18]
    double motion_bias_lp_state[4]
    double rest_t
    double rest_gyr_lp[3]
    double rest_gyr_lp_state[6]
    double rest_acc_lp[3]
    double rest_acc_lp_state[6]
    double mag_ref_norm, mag_ref_dip, mag_undisturbed_t, mag_reject_t
    double mag_candidate_norm, mag_candidate_dip, mag_candidate_t
    double mag_norm_dip[2]
    double mag_norm_dip_lp_state[4]


PARAMETERS = (
    "tau_acc", "tau_mag", "motion_bias", "rest_bias", "mag_rejection", "bias_sigma_init",
    "bias_forgetting_time", "bias_clip", "bias_sigma_motion", "bias_vertical_forgetting_factor",
    "bias_sigma_rest", "rest_min_t", "rest_filter_tau", "rest_th_gyr", "rest_th_acc", "mag_current_tau",
    "mag_ref_tau", "mag_norm_th", "mag_dip_th", "mag_new_time", "mag_new_first_time", "mag_new_min_gyr",
    "mag_min_undisturbed_time", "mag_max_rejection_time", "mag_rejection_factor",
)
DEFAULTS = dict(
    tau_acc=3.0, tau_mag=9.0, motion_bias=True, rest_bias=True, mag_rejection=True, bias_sigma_init=0.5,
    bias_forgetting_time=100.0, bias_clip=2.0, bias_sigma_motion=0.1, bias_vertical_forgetting_factor=0.0001,
    bias_sigma_rest=0.03, rest_min_t=1.5, rest_filter_tau=0.5, rest_th_gyr=2.0, rest_th_acc=0.5,
    mag_current_tau=0.05, mag_ref_tau=20.0, mag_norm_th=0.1, mag_dip_th=10.0, mag_new_time=20.0,
    mag_new_first_time=5.0, mag_new_min_gyr=20.0, mag_min_undisturbed_time=0.5, mag_max_rejection_time=60.0,
    mag_rejection_factor=2.0,
)


# --- small helpers (quaternions scalar first) -------------------------------------------------------
cdef inline void _quat_multiply(const double* q1, const double* q2, double* out) noexcept nogil:
    cdef double w = q1[0] * q2[0] - q1[1] * q2[1] - q1[2] * q2[2] - q1[3] * q2[3]
    cdef double x = q1[0] * q2[1] + q1[1] * q2[0] + q1[2] * q2[3] - q1[3] * q2[2]
    cdef double y = q1[0] * q2[2] - q1[1] * q2[3] + q1[2] * q2[0] + q1[3] * q2[1]
    cdef double z = q1[0] * q2[3] + q1[1] * q2[2] - q1[2] * q2[1] + q1[3] * q2[0]
    out[0] = w
    out[1] = x
    out[2] = y
    out[3] = z


cdef inline void _quat_rotate(const double* q, const double* v, double* out) noexcept nogil:
    cdef double x = ((1 - 2 * q[2] * q[2] - 2 * q[3] * q[3]) * v[0] + 2 * v[1] * (q[2] * q[1] - q[0] * q[3])
                     + 2 * v[2] * (q[0] * q[2] + q[3] * q[1]))
    cdef double y = (2 * v[0] * (q[0] * q[3] + q[2] * q[1]) + v[1] * (1 - 2 * q[1] * q[1] - 2 * q[3] * q[3])
                     + 2 * v[2] * (q[2] * q[3] - q[1] * q[0]))
    cdef double z = (2 * v[0] * (q[3] * q[1] - q[0] * q[2]) + 2 * v[1] * (q[0] * q[1] + q[3] * q[2])
                     + v[2] * (1 - 2 * q[1] * q[1] - 2 * q[2] * q[2]))
    out[0] = x
    out[1] = y
    out[2] = z


cdef inline double _norm(const double* v, int n) noexcept nogil:
    cdef double s = 0.0
    cdef int i
    for i in range(n):
        s += v[i] * v[i]
    return sqrt(s)


cdef inline void _normalize(double* v, int n) noexcept nogil:
    cdef double length = _norm(v, n)
    cdef int i
    if length < _EPS:
        return
    for i in range(n):
        v[i] /= length


cdef inline double _clip(double v, double low, double high) noexcept nogil:
    return low if v < low else (high if v > high else v)


cdef inline double _wrap(double angle) noexcept nogil:
    if angle > M_PI:
        return angle - 2 * M_PI
    if angle < -M_PI:
        return angle + 2 * M_PI
    return angle


cdef double _gain_from_tau(double tau, double ts) noexcept nogil:
    if tau < 0.0:
        return 0.0  # k = 0 for negative tau: no update
    if tau == 0.0:
        return 1.0  # k = 1 for tau = 0
    return 1.0 - exp(-ts / tau)


cdef void _butterworth(double tau, double ts, double* b, double* a) noexcept nogil:
    """Second-order Butterworth low-pass whose cutoff sqrt(2)/(2 pi tau) matches a first-order filter of
    time constant tau in its step response (the paper's convention), by the bilinear transform."""
    cdef double fc = (sqrt(2.0) / (2.0 * M_PI)) / tau
    cdef double C = tan(M_PI * fc * ts)
    cdef double D = C * C + sqrt(2.0) * C + 1.0
    cdef double b0 = C * C / D
    b[0] = b0
    b[1] = 2.0 * b0
    b[2] = b0
    a[0] = 2.0 * (C * C - 1.0) / D
    a[1] = (1.0 - sqrt(2.0) * C + C * C) / D


cdef inline double _filter_step(double x, const double* b, const double* a, double* state) noexcept nogil:
    """Direct form II transposed."""
    cdef double y = b[0] * x + state[0]
    state[0] = b[1] * x - a[0] * y + state[1]
    state[1] = b[2] * x - a[1] * y
    return y


cdef inline void _filter_initial_state(double x0, const double* b, const double* a, double* state) noexcept nogil:
    """The state in which a constant input x0 passes through unchanged."""
    state[0] = x0 * (1.0 - b[0])
    state[1] = x0 * (b[2] - a[1])


cdef void _filter_vec(const double* x, int n, double tau, double ts, const double* b, const double* a,
                      double* state, double* out) noexcept nogil:
    """Low-pass n channels (state: 2n values, NaN until started). For the first tau seconds the output is
    the running mean, which then sets the filter's initial state: no single sample decides the start."""
    cdef int i
    if isnan(state[0]):
        if isnan(state[1]):
            state[1] = 0.0
            for i in range(n):
                state[2 + i] = 0.0
        state[1] += 1.0
        for i in range(n):
            state[2 + i] += x[i]
            out[i] = state[2 + i] / state[1]
        if state[1] * ts >= tau:
            for i in range(n):
                _filter_initial_state(out[i], b, a, state + 2 * i)
        return
    for i in range(n):
        out[i] = _filter_step(x[i], b, a, state + 2 * i)


cdef void _matrix3_inverse(const double* m, double* out) noexcept nogil:
    cdef double det = (m[0] * (m[4] * m[8] - m[7] * m[5]) - m[1] * (m[3] * m[8] - m[5] * m[6])
                       + m[2] * (m[3] * m[7] - m[4] * m[6]))
    out[0] = (m[4] * m[8] - m[7] * m[5]) / det
    out[1] = (m[2] * m[7] - m[1] * m[8]) / det
    out[2] = (m[1] * m[5] - m[2] * m[4]) / det
    out[3] = (m[5] * m[6] - m[3] * m[8]) / det
    out[4] = (m[0] * m[8] - m[2] * m[6]) / det
    out[5] = (m[3] * m[2] - m[0] * m[5]) / det
    out[6] = (m[3] * m[7] - m[6] * m[4]) / det
    out[7] = (m[6] * m[1] - m[0] * m[7]) / det
    out[8] = (m[0] * m[4] - m[3] * m[1]) / det


cdef void _matrix3_multiply(const double* a, const double* b, double* out) noexcept nogil:
    cdef double tmp[9]
    cdef int i, j
    for i in range(3):
        for j in range(3):
            tmp[3 * i + j] = a[3 * i] * b[j] + a[3 * i + 1] * b[3 + j] + a[3 * i + 2] * b[6 + j]
    for i in range(9):
        out[i] = tmp[i]


cdef void _matrix3_multiply_transposed_second(const double* a, const double* b, double* out) noexcept nogil:
    """a b'"""
    cdef double tmp[9]
    cdef int i, j
    for i in range(3):
        for j in range(3):
            tmp[3 * i + j] = a[3 * i] * b[3 * j] + a[3 * i + 1] * b[3 * j + 1] + a[3 * i + 2] * b[3 * j + 2]
    for i in range(9):
        out[i] = tmp[i]


# --- the VQF algorithm ----------------------------------------------------------------------------
cdef void _setup(const Params* p, Coeffs* c) noexcept nogil:
    _butterworth(p.tau_acc, p.ts, c.acc_b, c.acc_a)
    c.k_mag = _gain_from_tau(p.tau_mag, p.ts)
    # the bias filter works in (0.01 deg/s) units, as the paper states its noise parameters
    c.bias_p0 = (p.bias_sigma_init * 100.0) ** 2
    c.bias_v = (0.1 * 100.0) ** 2 * p.ts / p.bias_forgetting_time
    cdef double p_motion = (p.bias_sigma_motion * 100.0) ** 2
    c.bias_motion_w = p_motion * p_motion / c.bias_v + p_motion
    c.bias_vertical_w = c.bias_motion_w / (p.bias_vertical_forgetting_factor
                                           if p.bias_vertical_forgetting_factor > 1e-10 else 1e-10)
    cdef double p_rest = (p.bias_sigma_rest * 100.0) ** 2
    c.bias_rest_w = p_rest * p_rest / c.bias_v + p_rest
    _butterworth(p.rest_filter_tau, p.ts, c.rest_gyr_b, c.rest_gyr_a)
    _butterworth(p.rest_filter_tau, p.ts, c.rest_acc_b, c.rest_acc_a)
    c.k_mag_ref = _gain_from_tau(p.mag_ref_tau, p.ts)
    if p.mag_current_tau > 0:
        _butterworth(p.mag_current_tau, p.ts, c.mag_lp_b, c.mag_lp_a)


cdef void _reset(const Params* p, const Coeffs* c, State* s) noexcept nogil:
    cdef int i
    for i in range(4):
        s.gyr_q[i] = 1.0 if i == 0 else 0.0
        s.acc_q[i] = 1.0 if i == 0 else 0.0
    s.delta = 0.0
    s.rest_detected = 0.0
    s.mag_disturbed = 1.0
    for i in range(3):
        s.last_acc_lp[i] = 0.0
        s.bias[i] = 0.0
        s.rest_gyr_lp[i] = 0.0
        s.rest_acc_lp[i] = 0.0
    for i in range(6):
        s.acc_lp_state[i] = NAN
        s.rest_gyr_lp_state[i] = NAN
        s.rest_acc_lp_state[i] = NAN
    s.k_mag_init = 1.0
    for i in range(9):
        s.bias_p[i] = c.bias_p0 if i % 4 == 0 else 0.0
    for i in range(18):
        s.motion_r_lp_state[i] = NAN
    for i in range(4):
        s.motion_bias_lp_state[i] = NAN
        s.mag_norm_dip_lp_state[i] = NAN
    s.rest_t = 0.0
    s.mag_ref_norm = 0.0
    s.mag_ref_dip = 0.0
    s.mag_undisturbed_t = 0.0
    s.mag_reject_t = p.mag_max_rejection_time
    s.mag_candidate_norm = -1.0
    s.mag_candidate_dip = 0.0
    s.mag_candidate_t = 0.0
    s.mag_norm_dip[0] = 0.0
    s.mag_norm_dip[1] = 0.0


cdef void _update_gyr(const Params* p, const Coeffs* c, State* s, const double* gyr) noexcept nogil:
    cdef double deviation, squared = 0.0, bias_clip = p.bias_clip * _DEG
    cdef double g[3]
    cdef double step[4]
    cdef int i
    if p.rest_bias or p.mag_rejection:
        _filter_vec(gyr, 3, p.rest_filter_tau, p.ts, c.rest_gyr_b, c.rest_gyr_a, s.rest_gyr_lp_state,
                    s.rest_gyr_lp)
        for i in range(3):
            deviation = gyr[i] - s.rest_gyr_lp[i]
            squared += deviation * deviation
        if (squared >= (p.rest_th_gyr * _DEG) ** 2 or fabs(s.rest_gyr_lp[0]) > bias_clip
                or fabs(s.rest_gyr_lp[1]) > bias_clip or fabs(s.rest_gyr_lp[2]) > bias_clip):
            s.rest_t = 0.0
            s.rest_detected = 0.0
    for i in range(3):
        g[i] = gyr[i] - s.bias[i]
    cdef double rate = _norm(g, 3)
    cdef double angle = rate * p.ts
    cdef double half_sin
    if rate > _EPS:
        half_sin = sin(angle / 2) / rate
        step[0] = cos(angle / 2)
        step[1] = half_sin * g[0]
        step[2] = half_sin * g[1]
        step[3] = half_sin * g[2]
        _quat_multiply(s.gyr_q, step, s.gyr_q)
        _normalize(s.gyr_q, 4)


cdef void _update_rest_acc(const Params* p, const Coeffs* c, State* s, const double* acc) noexcept nogil:
    cdef double deviation, squared = 0.0
    cdef int i
    _filter_vec(acc, 3, p.rest_filter_tau, p.ts, c.rest_acc_b, c.rest_acc_a, s.rest_acc_lp_state, s.rest_acc_lp)
    for i in range(3):
        deviation = acc[i] - s.rest_acc_lp[i]
        squared += deviation * deviation
    if squared >= p.rest_th_acc * p.rest_th_acc:
        s.rest_t = 0.0
        s.rest_detected = 0.0
    else:
        s.rest_t += p.ts
        if s.rest_t >= p.rest_min_t:
            s.rest_detected = 1.0


cdef void _update_bias(const Params* p, const Coeffs* c, State* s, const double* acc_earth) noexcept nogil:
    cdef double bias_clip = p.bias_clip * _DEG
    cdef double q6[4]
    cdef double R[9]
    cdef double bias_lp[2]
    cdef double e[3]
    cdef double w[3]
    cdef double K[9]
    cdef double tmp[9]
    cdef double inverse[9]
    cdef int i
    _quat_multiply(s.acc_q, s.gyr_q, q6)
    R[0] = 1 - 2 * q6[2] * q6[2] - 2 * q6[3] * q6[3]
    R[1] = 2 * (q6[2] * q6[1] - q6[0] * q6[3])
    R[2] = 2 * (q6[0] * q6[2] + q6[3] * q6[1])
    R[3] = 2 * (q6[0] * q6[3] + q6[2] * q6[1])
    R[4] = 1 - 2 * q6[1] * q6[1] - 2 * q6[3] * q6[3]
    R[5] = 2 * (q6[2] * q6[3] - q6[1] * q6[0])
    R[6] = 2 * (q6[3] * q6[1] - q6[0] * q6[2])
    R[7] = 2 * (q6[0] * q6[1] + q6[3] * q6[2])
    R[8] = 1 - 2 * q6[1] * q6[1] - 2 * q6[2] * q6[2]
    bias_lp[0] = R[0] * s.bias[0] + R[1] * s.bias[1] + R[2] * s.bias[2]
    bias_lp[1] = R[3] * s.bias[0] + R[4] * s.bias[1] + R[5] * s.bias[2]
    _filter_vec(R, 9, p.tau_acc, p.ts, c.acc_b, c.acc_a, s.motion_r_lp_state, R)
    _filter_vec(bias_lp, 2, p.tau_acc, p.ts, c.acc_b, c.acc_a, s.motion_bias_lp_state, bias_lp)
    if s.rest_detected != 0.0 and p.rest_bias:
        for i in range(3):
            e[i] = s.rest_gyr_lp[i] - s.bias[i]
            w[i] = c.bias_rest_w
        for i in range(9):
            R[i] = 1.0 if i % 4 == 0 else 0.0
    elif p.motion_bias:
        e[0] = -acc_earth[1] / p.ts + bias_lp[0] - R[0] * s.bias[0] - R[1] * s.bias[1] - R[2] * s.bias[2]
        e[1] = acc_earth[0] / p.ts + bias_lp[1] - R[3] * s.bias[0] - R[4] * s.bias[1] - R[5] * s.bias[2]
        e[2] = -R[6] * s.bias[0] - R[7] * s.bias[1] - R[8] * s.bias[2]
        w[0] = c.bias_motion_w
        w[1] = c.bias_motion_w
        w[2] = c.bias_vertical_w
    else:
        w[0] = -1.0
    # predict: the bias may drift (the variance grows until it reaches its initial value)
    for i in range(0, 9, 4):
        if s.bias_p[i] < c.bias_p0:
            s.bias_p[i] += c.bias_v
    if w[0] < 0.0:
        return
    for i in range(3):
        e[i] = _clip(e[i], -bias_clip, bias_clip)
    # K = P R' (W + R P R')^-1; bias += K e; P -= K R P
    _matrix3_multiply_transposed_second(s.bias_p, R, K)
    _matrix3_multiply(R, K, tmp)
    tmp[0] += w[0]
    tmp[4] += w[1]
    tmp[8] += w[2]
    _matrix3_inverse(tmp, inverse)
    _matrix3_multiply(K, inverse, K)
    for i in range(3):
        s.bias[i] += K[3 * i] * e[0] + K[3 * i + 1] * e[1] + K[3 * i + 2] * e[2]
    _matrix3_multiply(K, R, tmp)
    _matrix3_multiply(tmp, s.bias_p, tmp)
    for i in range(9):
        s.bias_p[i] -= tmp[i]
    for i in range(3):
        s.bias[i] = _clip(s.bias[i], -bias_clip, bias_clip)


cdef void _update_acc(const Params* p, const Coeffs* c, State* s, const double* acc) noexcept nogil:
    cdef double acc_earth[3]
    cdef double correction[4]
    cdef double qw
    if acc[0] == 0.0 and acc[1] == 0.0 and acc[2] == 0.0:
        return
    if p.rest_bias:
        _update_rest_acc(p, c, s, acc)
    # low-pass the acceleration in the almost-inertial frame, then bring it into the earth frame
    _quat_rotate(s.gyr_q, acc, acc_earth)
    _filter_vec(acc_earth, 3, p.tau_acc, p.ts, c.acc_b, c.acc_a, s.acc_lp_state, s.last_acc_lp)
    _quat_rotate(s.acc_q, s.last_acc_lp, acc_earth)
    _normalize(acc_earth, 3)
    # the smallest rotation that makes it point up
    qw = sqrt((acc_earth[2] + 1) / 2)
    if qw > 1e-6:
        correction[0] = qw
        correction[1] = 0.5 * acc_earth[1] / qw
        correction[2] = -0.5 * acc_earth[0] / qw
        correction[3] = 0.0
    else:
        correction[0] = 0.0
        correction[1] = 1.0
        correction[2] = 0.0
        correction[3] = 0.0
    _quat_multiply(correction, s.acc_q, s.acc_q)
    _normalize(s.acc_q, 4)
    if p.motion_bias or p.rest_bias:
        _update_bias(p, c, s, acc_earth)


cdef void _update_mag(const Params* p, const Coeffs* c, State* s, const double* mag) noexcept nogil:
    cdef double q6[4]
    cdef double mag_earth[3]
    cdef double k, disagreement
    cdef double dip_th = p.mag_dip_th * _DEG
    if mag[0] == 0.0 and mag[1] == 0.0 and mag[2] == 0.0:
        return
    _quat_multiply(s.acc_q, s.gyr_q, q6)
    _quat_rotate(q6, mag, mag_earth)
    if p.mag_rejection:
        s.mag_norm_dip[0] = _norm(mag_earth, 3)
        s.mag_norm_dip[1] = -asin(mag_earth[2] / s.mag_norm_dip[0])
        if p.mag_current_tau > 0:
            _filter_vec(s.mag_norm_dip, 2, p.mag_current_tau, p.ts, c.mag_lp_b, c.mag_lp_a,
                        s.mag_norm_dip_lp_state, s.mag_norm_dip)
        # disturbance detection against the accepted reference field
        if (fabs(s.mag_norm_dip[0] - s.mag_ref_norm) < p.mag_norm_th * s.mag_ref_norm
                and fabs(s.mag_norm_dip[1] - s.mag_ref_dip) < dip_th):
            s.mag_undisturbed_t += p.ts
            if s.mag_undisturbed_t >= p.mag_min_undisturbed_time:
                s.mag_disturbed = 0.0
                s.mag_ref_norm += c.k_mag_ref * (s.mag_norm_dip[0] - s.mag_ref_norm)
                s.mag_ref_dip += c.k_mag_ref * (s.mag_norm_dip[1] - s.mag_ref_dip)
        else:
            s.mag_undisturbed_t = 0.0
            s.mag_disturbed = 1.0
        # a new, steady field becomes the reference after a while of motion
        if (fabs(s.mag_norm_dip[0] - s.mag_candidate_norm) < p.mag_norm_th * s.mag_candidate_norm
                and fabs(s.mag_norm_dip[1] - s.mag_candidate_dip) < dip_th):
            if _norm(s.rest_gyr_lp, 3) >= p.mag_new_min_gyr * _DEG:
                s.mag_candidate_t += p.ts
            s.mag_candidate_norm += c.k_mag_ref * (s.mag_norm_dip[0] - s.mag_candidate_norm)
            s.mag_candidate_dip += c.k_mag_ref * (s.mag_norm_dip[1] - s.mag_candidate_dip)
            if s.mag_disturbed != 0.0 and (s.mag_candidate_t >= p.mag_new_time or (
                    s.mag_ref_norm == 0.0 and s.mag_candidate_t >= p.mag_new_first_time)):
                s.mag_ref_norm = s.mag_candidate_norm
                s.mag_ref_dip = s.mag_candidate_dip
                s.mag_disturbed = 0.0
                s.mag_undisturbed_t = p.mag_min_undisturbed_time
        else:
            s.mag_candidate_t = 0.0
            s.mag_candidate_norm = s.mag_norm_dip[0]
            s.mag_candidate_dip = s.mag_norm_dip[1]
    disagreement = _wrap(atan2(mag_earth[0], mag_earth[1]) - s.delta)
    k = c.k_mag
    if p.mag_rejection:
        if s.mag_disturbed != 0.0:
            if s.mag_reject_t <= p.mag_max_rejection_time:
                s.mag_reject_t += p.ts
                k = 0.0
            else:
                k /= p.mag_rejection_factor
        else:
            s.mag_reject_t = s.mag_reject_t - p.mag_rejection_factor * p.ts
            if s.mag_reject_t < 0.0:
                s.mag_reject_t = 0.0
    if s.k_mag_init != 0.0:
        # the first samples get gains 1/N (a running mean), so the heading converges at once
        if k < s.k_mag_init:
            k = s.k_mag_init
        s.k_mag_init = s.k_mag_init / (s.k_mag_init + 1)
        if s.k_mag_init * p.tau_mag < p.ts:
            s.k_mag_init = 0.0
    s.delta = _wrap(s.delta + k * disagreement)


cdef inline void _update(const Params* p, const Coeffs* c, State* s, const double* gyr, const double* acc,
                         const double* mag) noexcept nogil:
    _update_gyr(p, c, s, gyr)
    _update_acc(p, c, s, acc)
    if not isnan(mag[0]):
        _update_mag(p, c, s, mag)


cdef inline void _quat_6d(const State* s, double* out) noexcept nogil:
    _quat_multiply(s.acc_q, s.gyr_q, out)


cdef inline void _quat_9d(const State* s, double* out) noexcept nogil:
    cdef double q6[4]
    cdef double turn[4]
    _quat_multiply(s.acc_q, s.gyr_q, q6)
    turn[0] = cos(s.delta / 2)
    turn[1] = 0.0
    turn[2] = 0.0
    turn[3] = sin(s.delta / 2)
    _quat_multiply(turn, q6, out)


def _checked_batch(double[:, ::1] gyr, double[:, ::1] acc, mag):
    """Check the batch arrays' shapes; the magnetometer as a C-contiguous float64 array (None if absent)."""
    cdef Py_ssize_t n = gyr.shape[0]
    if gyr.shape[1] != 3 or acc.shape[0] != n or acc.shape[1] != 3:
        raise ValueError(f"gyr and acc must both be (n, 3); got {tuple(gyr.shape)[:2]} and {tuple(acc.shape)[:2]}")
    if mag is None:
        return None
    m = np.ascontiguousarray(mag, dtype=np.float64)
    if m.shape != (n, 3):
        raise ValueError(f"mag must be ({n}, 3), got {m.shape}")
    return m


cdef Params _params(double rate_hz, dict options) except *:
    unknown = set(options) - set(PARAMETERS)
    if unknown:
        raise ValueError(f"unknown orientation filter parameters {sorted(unknown)}; known: {', '.join(PARAMETERS)}")
    if not (rate_hz > 0.0 and rate_hz < 1e6):
        raise ValueError(f"rate_hz must be a positive sample rate, got {rate_hz!r}")
    merged = {**DEFAULTS, **options}
    for name in ("tau_acc", "tau_mag", "bias_sigma_init", "bias_forgetting_time", "bias_clip", "rest_min_t",
                 "rest_filter_tau", "rest_th_gyr", "rest_th_acc", "mag_ref_tau", "mag_norm_th", "mag_dip_th",
                 "mag_rejection_factor"):
        if not merged[name] > 0.0:
            raise ValueError(f"{name} must be positive, got {merged[name]!r}")
    cdef Params p
    p.ts = 1.0 / rate_hz
    p.tau_acc, p.tau_mag = merged["tau_acc"], merged["tau_mag"]
    p.motion_bias, p.rest_bias, p.mag_rejection = merged["motion_bias"], merged["rest_bias"], merged["mag_rejection"]
    p.bias_sigma_init, p.bias_forgetting_time = merged["bias_sigma_init"], merged["bias_forgetting_time"]
    p.bias_clip, p.bias_sigma_motion = merged["bias_clip"], merged["bias_sigma_motion"]
    p.bias_vertical_forgetting_factor = merged["bias_vertical_forgetting_factor"]
    p.bias_sigma_rest, p.rest_min_t = merged["bias_sigma_rest"], merged["rest_min_t"]
    p.rest_filter_tau, p.rest_th_gyr, p.rest_th_acc = merged["rest_filter_tau"], merged["rest_th_gyr"], merged["rest_th_acc"]
    p.mag_current_tau, p.mag_ref_tau = merged["mag_current_tau"], merged["mag_ref_tau"]
    p.mag_norm_th, p.mag_dip_th = merged["mag_norm_th"], merged["mag_dip_th"]
    p.mag_new_time, p.mag_new_first_time = merged["mag_new_time"], merged["mag_new_first_time"]
    p.mag_new_min_gyr, p.mag_min_undisturbed_time = merged["mag_new_min_gyr"], merged["mag_min_undisturbed_time"]
    p.mag_max_rejection_time, p.mag_rejection_factor = merged["mag_max_rejection_time"], merged["mag_rejection_factor"]
    return p


cdef class OrientationFilter:
    """The VQF algorithm (module docstring) at a fixed sample rate; keyword ``options`` override
    ``DEFAULTS`` (angles in degrees, rates in deg/s, times in s, accelerations in m/s²)."""

    cdef Params p
    cdef Coeffs c
    cdef State s
    cdef readonly double rate_hz
    cdef readonly dict options

    def __init__(self, double rate_hz, **options):
        self.p = _params(rate_hz, options)
        self.rate_hz, self.options = rate_hz, dict(options)
        _setup(&self.p, &self.c)
        _reset(&self.p, &self.c, &self.s)

    cpdef void update(self, double gx, double gy, double gz, double ax, double ay, double az,
                      double mx=NAN, double my=NAN, double mz=NAN) noexcept:
        cdef double gyr[3]
        cdef double acc[3]
        cdef double mag[3]
        gyr[0], gyr[1], gyr[2] = gx, gy, gz
        acc[0], acc[1], acc[2] = ax, ay, az
        mag[0], mag[1], mag[2] = mx, my, mz
        _update(&self.p, &self.c, &self.s, gyr, acc, mag)

    def update_batch(self, double[:, ::1] gyr, double[:, ::1] acc, mag=None):
        """(n, 3) rad/s and m/s² (and magnetometer, any unit); returns quat6d, quat9d (n, 4), bias (n, 3),
        rest and mag_disturbed (n,) bool."""
        cdef Py_ssize_t n = gyr.shape[0], i
        cdef bint with_mag = mag is not None
        cdef double[:, ::1] m = _checked_batch(gyr, acc, mag)
        q6_arr, q9_arr = np.empty((n, 4)), np.empty((n, 4))
        bias_arr = np.empty((n, 3))
        rest_arr, dist_arr = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
        cdef double[:, ::1] q6 = q6_arr, q9 = q9_arr, bias = bias_arr
        cdef cython.uchar[::1] rest = rest_arr.view(np.uint8), dist = dist_arr.view(np.uint8)
        cdef double no_mag[3]
        no_mag[0] = NAN
        with nogil:
            for i in range(n):
                _update(&self.p, &self.c, &self.s, &gyr[i, 0], &acc[i, 0], &m[i, 0] if with_mag else no_mag)
                _quat_6d(&self.s, &q6[i, 0])
                _quat_9d(&self.s, &q9[i, 0])
                bias[i, 0], bias[i, 1], bias[i, 2] = self.s.bias[0], self.s.bias[1], self.s.bias[2]
                rest[i] = self.s.rest_detected != 0.0
                dist[i] = self.s.mag_disturbed != 0.0
        return {"quat6d": q6_arr, "quat9d": q9_arr, "bias": bias_arr, "rest": rest_arr, "mag_disturbed": dist_arr}

    def quaternion_6d(self):
        cdef double q[4]
        _quat_6d(&self.s, q)
        return (q[0], q[1], q[2], q[3])

    def quaternion_9d(self):
        cdef double q[4]
        _quat_9d(&self.s, q)
        return (q[0], q[1], q[2], q[3])

    @property
    def bias(self):
        """Estimated gyroscope bias (rad/s)."""
        return (self.s.bias[0], self.s.bias[1], self.s.bias[2])

    @property
    def rest_detected(self):
        return self.s.rest_detected != 0.0

    @property
    def mag_disturbed(self):
        return self.s.mag_disturbed != 0.0

    def get_state(self):
        cdef double[::1] flat = <double[:sizeof(State) // sizeof(double)]> <double*> &self.s
        return {"version": STATE_VERSION, "rate_hz": self.rate_hz, "options": dict(self.options),
                "state": np.array(flat, copy=True)}

    def set_state(self, dict state):
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r} is not {STATE_VERSION}")
        if state["rate_hz"] != self.rate_hz or state["options"] != self.options:
            raise ValueError("state was saved by a filter with other settings")
        values = np.asarray(state["state"], dtype=np.float64)
        cdef double[::1] flat = <double[:sizeof(State) // sizeof(double)]> <double*> &self.s
        if values.shape != (flat.shape[0],):
            raise ValueError(f"state has {values.shape} values, expected {flat.shape[0]}")
        np.asarray(flat)[:] = values


# --- baselines -------------------------------------------------------------------------------------
cdef inline void _integrate(double* q, double gx, double gy, double gz, double ts) noexcept nogil:
    """q <- normalize(q + ts * 0.5 q (0, g)): the first-order step both baselines use."""
    cdef double dw = 0.5 * (-q[1] * gx - q[2] * gy - q[3] * gz)
    cdef double dx = 0.5 * (q[0] * gx + q[2] * gz - q[3] * gy)
    cdef double dy = 0.5 * (q[0] * gy - q[1] * gz + q[3] * gx)
    cdef double dz = 0.5 * (q[0] * gz + q[1] * gy - q[2] * gx)
    q[0] += ts * dw
    q[1] += ts * dx
    q[2] += ts * dy
    q[3] += ts * dz
    _normalize(q, 4)


cdef void _madgwick(double* q, double beta, double ts, const double* g, const double* a, const double* m) noexcept nogil:
    """Madgwick et al. (2011): gradient-descent correction of the gyroscope rate. Gravity is +z in the earth
    frame; the magnetic reference (bx, 0, bz) is the measured field's direction, re-estimated every step."""
    cdef double an[3]
    cdef double mn[3]
    cdef double h[3]
    cdef double grad[4]
    cdef double f[6]
    cdef double bx, bz, length
    cdef double q0 = q[0], q1 = q[1], q2 = q[2], q3 = q[3]
    cdef int i
    cdef bint use_acc = not (a[0] == 0.0 and a[1] == 0.0 and a[2] == 0.0)
    cdef bint use_mag = use_acc and not isnan(m[0]) and not (m[0] == 0.0 and m[1] == 0.0 and m[2] == 0.0)
    for i in range(4):
        grad[i] = 0.0
    if use_acc:
        for i in range(3):
            an[i] = a[i]
        _normalize(an, 3)
        f[0] = 2 * (q1 * q3 - q0 * q2) - an[0]
        f[1] = 2 * (q0 * q1 + q2 * q3) - an[1]
        f[2] = 2 * (0.5 - q1 * q1 - q2 * q2) - an[2]
        grad[0] = -2 * q2 * f[0] + 2 * q1 * f[1]
        grad[1] = 2 * q3 * f[0] + 2 * q0 * f[1] - 4 * q1 * f[2]
        grad[2] = -2 * q0 * f[0] + 2 * q3 * f[1] - 4 * q2 * f[2]
        grad[3] = 2 * q1 * f[0] + 2 * q2 * f[1]
    if use_mag:
        for i in range(3):
            mn[i] = m[i]
        _normalize(mn, 3)
        _quat_rotate(q, mn, h)  # the field in the earth frame
        bx = sqrt(h[0] * h[0] + h[1] * h[1])
        bz = h[2]
        f[3] = 2 * bx * (0.5 - q2 * q2 - q3 * q3) + 2 * bz * (q1 * q3 - q0 * q2) - mn[0]
        f[4] = 2 * bx * (q1 * q2 - q0 * q3) + 2 * bz * (q0 * q1 + q2 * q3) - mn[1]
        f[5] = 2 * bx * (q0 * q2 + q1 * q3) + 2 * bz * (0.5 - q1 * q1 - q2 * q2) - mn[2]
        grad[0] += -2 * bz * q2 * f[3] + (-2 * bx * q3 + 2 * bz * q1) * f[4] + 2 * bx * q2 * f[5]
        grad[1] += 2 * bz * q3 * f[3] + (2 * bx * q2 + 2 * bz * q0) * f[4] + (2 * bx * q3 - 4 * bz * q1) * f[5]
        grad[2] += ((-4 * bx * q2 - 2 * bz * q0) * f[3] + (2 * bx * q1 + 2 * bz * q3) * f[4]
                    + (2 * bx * q0 - 4 * bz * q2) * f[5])
        grad[3] += (-4 * bx * q3 + 2 * bz * q1) * f[3] + (-2 * bx * q0 + 2 * bz * q2) * f[4] + 2 * bx * q1 * f[5]
    length = _norm(grad, 4)
    if length > 0.0:
        for i in range(4):
            grad[i] /= length
    # q' = 0.5 q (0, w) - beta grad
    q[0] += ts * (0.5 * (-q1 * g[0] - q2 * g[1] - q3 * g[2]) - beta * grad[0])
    q[1] += ts * (0.5 * (q0 * g[0] + q2 * g[2] - q3 * g[1]) - beta * grad[1])
    q[2] += ts * (0.5 * (q0 * g[1] - q1 * g[2] + q3 * g[0]) - beta * grad[2])
    q[3] += ts * (0.5 * (q0 * g[2] + q1 * g[1] - q2 * g[0]) - beta * grad[3])
    _normalize(q, 4)


cdef void _mahony(double* q, double* integral, double kp, double ki, double ts, const double* g, const double* a,
                  const double* m) noexcept nogil:
    """Mahony et al. (2008), explicit complementary filter: the rate is corrected by kp e + ki (integral
    of e), e the cross products of the measured and predicted gravity (and field) directions."""
    cdef double an[3]
    cdef double mn[3]
    cdef double v[3]
    cdef double h[3]
    cdef double w[3]
    cdef double e[3]
    cdef double up[3]
    cdef double ref[3]
    cdef double inverse[4]
    cdef double bx, bz
    cdef int i
    cdef bint use_acc = not (a[0] == 0.0 and a[1] == 0.0 and a[2] == 0.0)
    cdef bint use_mag = use_acc and not isnan(m[0]) and not (m[0] == 0.0 and m[1] == 0.0 and m[2] == 0.0)
    for i in range(3):
        e[i] = 0.0
    if use_acc:
        for i in range(3):
            an[i] = a[i]
        _normalize(an, 3)
        v[0] = 2 * (q[1] * q[3] - q[0] * q[2])  # earth z in the sensor frame
        v[1] = 2 * (q[0] * q[1] + q[2] * q[3])
        v[2] = q[0] * q[0] - q[1] * q[1] - q[2] * q[2] + q[3] * q[3]
        e[0] = an[1] * v[2] - an[2] * v[1]
        e[1] = an[2] * v[0] - an[0] * v[2]
        e[2] = an[0] * v[1] - an[1] * v[0]
    if use_mag:
        for i in range(3):
            mn[i] = m[i]
        _normalize(mn, 3)
        _quat_rotate(q, mn, h)
        bx = sqrt(h[0] * h[0] + h[1] * h[1])
        bz = h[2]
        ref[0] = bx  # the reference field (bx, 0, bz) brought into the sensor frame
        ref[1] = 0.0
        ref[2] = bz
        inverse[0] = q[0]
        inverse[1] = -q[1]
        inverse[2] = -q[2]
        inverse[3] = -q[3]
        _quat_rotate(inverse, ref, w)
        e[0] += mn[1] * w[2] - mn[2] * w[1]
        e[1] += mn[2] * w[0] - mn[0] * w[2]
        e[2] += mn[0] * w[1] - mn[1] * w[0]
    if use_acc:
        for i in range(3):
            integral[i] += ki * e[i] * ts
            up[i] = g[i] + kp * e[i] + integral[i]
    else:
        for i in range(3):
            up[i] = g[i]
    _integrate(q, up[0], up[1], up[2], ts)


cdef class _Baseline:
    cdef double q[4]
    cdef readonly double rate_hz
    cdef double ts

    def __init__(self, double rate_hz):
        if not (rate_hz > 0.0 and rate_hz < 1e6):
            raise ValueError(f"rate_hz must be a positive sample rate, got {rate_hz!r}")
        self.rate_hz, self.ts = rate_hz, 1.0 / rate_hz
        self.q[0], self.q[1], self.q[2], self.q[3] = 1.0, 0.0, 0.0, 0.0

    cdef void _step(self, const double* g, const double* a, const double* m) noexcept nogil:
        pass

    cpdef void update(self, double gx, double gy, double gz, double ax, double ay, double az,
                      double mx=NAN, double my=NAN, double mz=NAN) noexcept:
        cdef double g[3]
        cdef double a[3]
        cdef double m[3]
        g[0], g[1], g[2] = gx, gy, gz
        a[0], a[1], a[2] = ax, ay, az
        m[0], m[1], m[2] = mx, my, mz
        self._step(g, a, m)

    def update_batch(self, double[:, ::1] gyr, double[:, ::1] acc, mag=None):
        """(n, 3) arrays; returns the quaternions (n, 4)."""
        cdef Py_ssize_t n = gyr.shape[0], i
        cdef bint with_mag = mag is not None
        cdef double[:, ::1] m = _checked_batch(gyr, acc, mag)
        out = np.empty((n, 4))
        cdef double[:, ::1] o = out
        cdef double no_mag[3]
        no_mag[0] = NAN
        with nogil:
            for i in range(n):
                self._step(&gyr[i, 0], &acc[i, 0], &m[i, 0] if with_mag else no_mag)
                o[i, 0], o[i, 1], o[i, 2], o[i, 3] = self.q[0], self.q[1], self.q[2], self.q[3]
        return out

    def quaternion(self):
        return (self.q[0], self.q[1], self.q[2], self.q[3])


cdef class Madgwick(_Baseline):
    """Madgwick, Harrison & Vaidyanathan, "Estimation of IMU and MARG orientation using a gradient descent
    algorithm", ICORR 2011. ``beta``: gain of the gradient step (rad/s)."""

    cdef readonly double beta

    def __init__(self, double rate_hz, double beta=0.1):
        super().__init__(rate_hz)
        if not beta >= 0.0:
            raise ValueError(f"beta must be non-negative, got {beta!r}")
        self.beta = beta

    cdef void _step(self, const double* g, const double* a, const double* m) noexcept nogil:
        _madgwick(self.q, self.beta, self.ts, g, a, m)

    def get_state(self):
        return {"q": self.quaternion()}

    def set_state(self, dict state):
        self.q[0], self.q[1], self.q[2], self.q[3] = state["q"]


cdef class Mahony(_Baseline):
    """Mahony, Hamel & Pflimlin, "Nonlinear complementary filters on the special orthogonal group",
    IEEE TAC 53:1203 (2008). ``kp``: proportional gain (rad/s per unit error), ``ki``: integral gain (bias)."""

    cdef readonly double kp, ki
    cdef double integral[3]

    def __init__(self, double rate_hz, double kp=1.0, double ki=0.0):
        super().__init__(rate_hz)
        if not (kp >= 0.0 and ki >= 0.0):
            raise ValueError(f"kp and ki must be non-negative, got {kp!r}, {ki!r}")
        self.kp, self.ki = kp, ki
        self.integral[0], self.integral[1], self.integral[2] = 0.0, 0.0, 0.0

    cdef void _step(self, const double* g, const double* a, const double* m) noexcept nogil:
        _mahony(self.q, self.integral, self.kp, self.ki, self.ts, g, a, m)

    def get_state(self):
        return {"q": self.quaternion(), "integral": (self.integral[0], self.integral[1], self.integral[2])}

    def set_state(self, dict state):
        self.q[0], self.q[1], self.q[2], self.q[3] = state["q"]
        self.integral[0], self.integral[1], self.integral[2] = state["integral"]
