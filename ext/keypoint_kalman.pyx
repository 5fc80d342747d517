"""Per-keypoint Kalman filtering and smoothing of 2D keypoints.

Each keypoint's image x and y follow the same linear model, constant velocity (state: position,
velocity) or constant acceleration (position, velocity, acceleration), driven by continuous white noise of
spectral density ``q`` on the highest derivative (Bar-Shalom, Li & Kirubarajan, "Estimation with
Applications to Tracking and Navigation", 2001, sec. 6.2; the same Q as filterpy's
``Q_continuous_white_noise``). Frames may come at any interval. The measurement is the position, with
scale ``r0 * confidence ^ -confidence_power`` pixels (``r0 / confidence`` by default: a detector is less
sure, and less right, at low confidence), the same for x and y: the filter keeps one covariance and two
state vectors per keypoint.

The measurement noise is Gaussian, or with ``measurement_dof`` finite Student-t (heavy-tailed, as a
pose detector's jitter is): N(0, R / w) with w ~ Gamma(dof / 2, dof / 2), one w per keypoint and frame
shared by x and y. Its update is the variational Bayes one (Agamennoni, Nieto & Nebot, "An outlier-robust
Kalman filter", ICRA 2011; Roth, Ozkan & Gustafsson, ICASSP 2013): the Kalman update with R / w, w the
expected weight given the posterior, iterated ``ROBUST_ITERATIONS`` times from w = 1 (the Gaussian update),
so a far detection counts for less instead of fully up to the gate. A track segment's first
``robust_after`` detections (default 2 dim + 1) are taken with w = 1: the first two fix a velocity, and if
one was an outlier the robust update would hold the good detections that follow against it. The filter
stays linear given the weights, so the smoothers below are unchanged.

Per frame and keypoint the outcome is one of ``MEASURED`` (the detection updated the estimate),
``FILLED`` (no usable detection: the estimate is the prediction), ``REJECTED`` (a detection failed the
Mahalanobis gate, d² = (ex² + ey²) / S > ``gate`` with S from the nominal R, and was left out; the estimate
is the prediction) and ``MISSING`` (nothing measured for longer than ``max_gap_s``, or never: no estimate,
NaN). The next detection after MISSING starts a new track segment, which the smoother never crosses.

The update uses the Joseph form, P = (I - KH) P (I - KH)' + K R K', like filterpy. Smoothing is the
Rauch-Tung-Striebel backward pass (Rauch, Tung & Striebel, AIAA J 3:1445, 1965): offline over whole
segments (``rts_smooth`` after ``filter_track``, or ``smooth_track`` doing both in one pass without
keeping the filter's intermediates), and in ``LiveKeypointFilter`` over the last ``lag_s`` of frames,
emitting each frame once it is ``lag_s`` old (a fixed-lag smoother).

``kinefuse._pure.keypoint_kalman`` is the reference twin, written with NumPy matrices; tests check that
both agree, and that both agree with filterpy's KalmanFilter and rts_smoother.
"""

cimport cython
from libc.math cimport INFINITY, NAN, isfinite, isnan, pow

import numpy as np

cdef enum:
    _MEASURED = 0
    _FILLED = 1
    _REJECTED = 2
    _MISSING = 3

MEASURED, FILLED, REJECTED, MISSING = _MEASURED, _FILLED, _REJECTED, _MISSING
STATE_VERSION = 2  # 2: the model gained confidence_power, measurement_dof and robust_after
# Fixed-point iterations of the Student-t update's weight (_robust_weight). A fixed count keeps the kernel
# and its twin on the same operations; on the packaged scenarios 3 remove as much jitter as 5, and 20
# (about converged) a little less: the converged weight discounts a far detection harder.
cdef int _ROBUST_ITERATIONS = 3
ROBUST_ITERATIONS = _ROBUST_ITERATIONS


cdef struct Model:
    int dim
    double q
    double r0
    double min_confidence
    double gate
    double max_gap_s
    double init_velocity_sigma
    double init_acceleration_sigma
    double power
    double nu
    int robust_after


cdef Model _model(int dim, double q, double r0, double min_confidence, double gate, double max_gap_s,
                  double init_velocity_sigma, double init_acceleration_sigma, double power=1.0,
                  double nu=INFINITY, int robust_after=-1) except *:
    if dim != 2 and dim != 3:
        raise ValueError(f"dim must be 2 (constant velocity) or 3 (constant acceleration), got {dim}")
    for name, value in (("q", q), ("r0", r0), ("gate", gate), ("max_gap_s", max_gap_s),
                        ("init_velocity_sigma", init_velocity_sigma),
                        ("init_acceleration_sigma", init_acceleration_sigma)):
        if not (isfinite(value) and value > 0.0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if not 0.0 <= min_confidence < 1.0:
        raise ValueError(f"min_confidence must be in [0, 1), got {min_confidence!r}")
    if not (isfinite(power) and power >= 0.0):
        raise ValueError(f"confidence_power must be a non-negative finite number, got {power!r}")
    if not nu > 0.0:  # infinity (a Gaussian) included, NaN refused
        raise ValueError(f"measurement_dof must be positive (infinity: Gaussian), got {nu!r}")
    cdef Model m
    m.dim, m.q, m.r0, m.min_confidence, m.gate = dim, q, r0, min_confidence, gate
    m.max_gap_s, m.init_velocity_sigma, m.init_acceleration_sigma = max_gap_s, init_velocity_sigma, init_acceleration_sigma
    m.power, m.nu = power, nu
    m.robust_after = 2 * dim + 1 if robust_after < 0 else robust_after
    if not 1 <= m.robust_after <= 100:
        raise ValueError(f"robust_after must be in 1..100, got {robust_after}")
    return m


cdef inline void _mul(int d, const double* A, const double* B, double* out) noexcept nogil:
    """out = A B for d x d blocks of row-major 3x3 storage (out must not alias A or B)."""
    cdef double acc
    cdef int i, j, k
    for i in range(d):
        for j in range(d):
            acc = 0.0
            for k in range(d):
                acc += A[3 * i + k] * B[3 * k + j]
            out[3 * i + j] = acc


cdef inline void _mul_t(int d, const double* A, const double* B, double* out) noexcept nogil:
    """out = A B' (out must not alias A or B)."""
    cdef double acc
    cdef int i, j, k
    for i in range(d):
        for j in range(d):
            acc = 0.0
            for k in range(d):
                acc += A[3 * i + k] * B[3 * j + k]
            out[3 * i + j] = acc


cdef inline void _transition(int d, const Model* m, double dt, double* F, double* Q) noexcept nogil:
    """F and Q (row-major 3x3, the leading dim x dim block used) for a step of dt seconds."""
    cdef double dt2 = dt * dt, dt3 = dt2 * dt, q = m.q
    cdef int i
    for i in range(9):
        F[i] = 0.0
        Q[i] = 0.0
    if d == 2:
        F[0] = 1.0; F[1] = dt; F[4] = 1.0
        Q[0] = q * dt3 / 3.0; Q[1] = q * dt2 / 2.0
        Q[3] = Q[1]; Q[4] = q * dt
    else:
        F[0] = 1.0; F[1] = dt; F[2] = dt2 / 2.0
        F[4] = 1.0; F[5] = dt; F[8] = 1.0
        Q[0] = q * dt3 * dt2 / 20.0; Q[1] = q * dt2 * dt2 / 8.0; Q[2] = q * dt3 / 6.0
        Q[3] = Q[1]; Q[4] = q * dt3 / 3.0; Q[5] = q * dt2 / 2.0
        Q[6] = Q[2]; Q[7] = Q[5]; Q[8] = q * dt


cdef inline void _predict(int d, const double* F, const double* Q, double* x, double* P) noexcept nogil:
    """x <- F x (both axes: x[0:3] and x[3:6]); P <- F P F' + Q."""
    cdef double tmp[9]
    cdef double FPF[9]
    cdef double out[3]
    cdef int i, j, k, axis
    for axis in range(2):
        for i in range(d):
            out[i] = 0.0
            for k in range(d):
                out[i] += F[3 * i + k] * x[3 * axis + k]
        for i in range(d):
            x[3 * axis + i] = out[i]
    _mul(d, F, P, tmp)
    _mul_t(d, tmp, F, FPF)
    for i in range(d):
        for j in range(d):
            P[3 * i + j] = FPF[3 * i + j] + Q[3 * i + j]


cdef inline void _correct(int d, double zx, double zy, double R, double* x, double* P) noexcept nogil:
    """Joseph-form update with the position measured: H = [1, 0, (0)]."""
    cdef double S = P[0] + R
    cdef double K[3]
    cdef double A[9]
    cdef double tmp[9]
    cdef double APA[9]
    cdef double ex = zx - x[0], ey = zy - x[3]
    cdef int i, j, k
    for i in range(d):
        K[i] = P[3 * i] / S
    for i in range(d):
        x[i] += K[i] * ex
        x[3 + i] += K[i] * ey
    for i in range(d):  # A = I - K H
        for j in range(d):
            A[3 * i + j] = (1.0 if i == j else 0.0) - (K[i] if j == 0 else 0.0)
    _mul(d, A, P, tmp)
    _mul_t(d, tmp, A, APA)
    for i in range(d):
        for j in range(d):
            P[3 * i + j] = APA[3 * i + j] + K[i] * R * K[j]


cdef inline void _start(const Model* m, double zx, double zy, double R, double* x, double* P) noexcept nogil:
    cdef int i
    for i in range(6):
        x[i] = 0.0
    for i in range(9):
        P[i] = 0.0
    x[0] = zx
    x[3] = zy
    P[0] = R
    P[4] = m.init_velocity_sigma * m.init_velocity_sigma
    if m.dim == 3:
        P[8] = m.init_acceleration_sigma * m.init_acceleration_sigma


cdef inline bint _usable(const Model* m, double zx, double zy, double c) noexcept nogil:
    return isfinite(zx) and isfinite(zy) and isfinite(c) and c > m.min_confidence


cdef inline double _measurement_variance(const Model* m, double c) noexcept nogil:
    cdef double sigma = m.r0 / c if m.power == 1.0 else m.r0 * pow(c, -m.power)
    return sigma * sigma


cdef inline double _robust_weight(const Model* m, double e2, double P00, double R) noexcept nogil:
    """The Student-t measurement update's weight w (the update then uses R / w): the variational Bayes
    iteration (Agamennoni, Nieto & Nebot 2011; Roth, Ozkan & Gustafsson 2013) for a 2D position whose
    noise is N(0, R / w I) with w ~ Gamma(nu / 2, nu / 2), one w per keypoint and frame (x and y share it,
    so they keep one covariance). Given w, the posterior leaves the residual e / u and the position variance
    P00 / u, u = 1 + w P00 / R, so E[w] = (nu + 2) / (nu + (|e / u|² + 2 P00 / u) / R)
    = (nu + 2) u² / (nu u² + 2 rho u + eps), rho = P00 / R, eps = |e|² / R: iterated ``ROBUST_ITERATIONS``
    times from w = 1 (the Gaussian update), in scalars, one division each."""
    cdef double w = 1.0, u, rho, eps
    cdef int i
    if not isfinite(m.nu):
        return 1.0
    rho = P00 / R
    eps = e2 / R
    for i in range(_ROBUST_ITERATIONS):
        u = 1.0 + w * rho
        w = (m.nu + 2.0) * u * u / (m.nu * u * u + 2.0 * rho * u + eps)
    return w


cdef inline int _step(int d, const Model* m, int* used, double* last_measured, double t, double dt,
                      double zx, double zy, double c, double* x, double* P,
                      double* xp, double* Pp, bint* starts) noexcept nogil:
    """One keypoint, one frame: predict over dt (if the track is alive), then use the detection. xp/Pp get
    the prediction (NaN when there is none); x/P end as the filtered estimate. Returns the status. ``used``
    counts the detections the track segment has used, up to ``robust_after`` (0: no track)."""
    cdef double F[9]
    cdef double Q[9]
    cdef double R, e2, ex, ey, w
    cdef int i
    cdef bint usable = _usable(m, zx, zy, c)
    starts[0] = False
    if used[0]:
        _transition(d, m, dt, F, Q)
        _predict(d, F, Q, x, P)
    for i in range(6):
        xp[i] = x[i] if used[0] else NAN
    for i in range(9):
        Pp[i] = P[i] if used[0] else NAN
    if used[0] and not usable and t - last_measured[0] > m.max_gap_s:
        used[0] = 0
    if not used[0]:
        if not usable:
            return _MISSING
        R = _measurement_variance(m, c)
        _start(m, zx, zy, R, x, P)
        used[0] = 1
        last_measured[0] = t
        starts[0] = True
        return _MEASURED
    if not usable:
        return _FILLED
    R = _measurement_variance(m, c)
    ex = zx - x[0]
    ey = zy - x[3]
    e2 = ex * ex + ey * ey
    if e2 / (P[0] + R) > m.gate:
        if t - last_measured[0] > m.max_gap_s:
            used[0] = 0
            return _MISSING
        return _REJECTED
    # a segment's first detections fix its state: taken at face value, so that one that was an outlier
    # (a left/right swap as the track starts) is corrected by the next ones, not held against them
    w = _robust_weight(m, e2, P[0], R) if used[0] >= m.robust_after else 1.0
    _correct(d, zx, zy, R / w, x, P)
    if used[0] < m.robust_after:
        used[0] += 1
    last_measured[0] = t
    return _MEASURED


cdef inline bint _invert(int d, const double* A, double* out) noexcept nogil:
    """Inverse of a symmetric positive-definite 2x2 or 3x3 (row-major in 3x3 storage) by cofactors."""
    cdef double det
    if d == 2:
        det = A[0] * A[4] - A[1] * A[3]
        if not det > 0.0:
            return False
        out[0] = A[4] / det; out[1] = -A[1] / det
        out[3] = -A[3] / det; out[4] = A[0] / det
        return True
    out[0] = A[4] * A[8] - A[5] * A[7]
    out[1] = A[2] * A[7] - A[1] * A[8]
    out[2] = A[1] * A[5] - A[2] * A[4]
    out[3] = A[5] * A[6] - A[3] * A[8]
    out[4] = A[0] * A[8] - A[2] * A[6]
    out[5] = A[2] * A[3] - A[0] * A[5]
    out[6] = A[3] * A[7] - A[4] * A[6]
    out[7] = A[1] * A[6] - A[0] * A[7]
    out[8] = A[0] * A[4] - A[1] * A[3]
    det = A[0] * out[0] + A[1] * out[3] + A[2] * out[6]
    if not det > 0.0:
        return False
    cdef int i
    for i in range(9):
        out[i] /= det
    return True


cdef inline void _smooth_step(int d, double dt, const Model* m, const double* xf, const double* Pf,
                              const double* xp_next, const double* Pp_next, const double* xs_next,
                              const double* Ps_next, double* xs, double* Ps) noexcept nogil:
    """One RTS step: C = Pf F' inv(Pp+), xs = xf + C (xs+ - xp+), Ps = Pf + C (Ps+ - Pp+) C'."""
    cdef double F[9]
    cdef double Q[9]
    cdef double inv[9]
    cdef double PF[9]
    cdef double C[9]
    cdef double D[9]
    cdef double CD[9]
    cdef double CDC[9]
    cdef double acc
    cdef int i, j, k, axis
    _transition(d, m, dt, F, Q)
    if not _invert(d, Pp_next, inv):
        for i in range(6):
            xs[i] = xf[i]
        for i in range(9):
            Ps[i] = Pf[i]
        return
    _mul_t(d, Pf, F, PF)
    _mul(d, PF, inv, C)
    for axis in range(2):
        for i in range(d):
            acc = 0.0
            for k in range(d):
                acc += C[3 * i + k] * (xs_next[3 * axis + k] - xp_next[3 * axis + k])
            xs[3 * axis + i] = xf[3 * axis + i] + acc
    for i in range(d):
        for j in range(d):
            D[3 * i + j] = Ps_next[3 * i + j] - Pp_next[3 * i + j]
    _mul(d, C, D, CD)
    _mul_t(d, CD, C, CDC)
    for i in range(d):
        for j in range(d):
            Ps[3 * i + j] = Pf[3 * i + j] + CDC[3 * i + j]


# The batch API runs one keypoint at a time through scratch rows, one row per frame holding that frame's
# filtered, predicted and smoothed states and covariances in the 3x3 storage the steps use: the steps read
# and write them in place, one keypoint's track stays in cache (45 doubles a frame), and each (n, K, ...)
# array the caller gets is written once.
cdef enum:
    _FX = 0  # filtered state (6)
    _FP = 6  # filtered covariance (9)
    _PX = 15  # predicted state
    _PP = 21  # predicted covariance
    _SX = 30  # smoothed state
    _SP = 36  # smoothed covariance
    _ROW = 45


cdef void _forward(const Model* m, Py_ssize_t n, const double* times, const double* z, Py_ssize_t z_stride,
                   double* rows, signed char* status, cython.uchar* starts) noexcept nogil:
    # one call per model size, so that the compiler builds each with d a constant and unrolls the steps
    if m.dim == 2:
        _forward_d(2, m, n, times, z, z_stride, rows, status, starts)
    else:
        _forward_d(3, m, n, times, z, z_stride, rows, status, starts)


cdef inline void _forward_d(int d, const Model* m, Py_ssize_t n, const double* times, const double* z,
                            Py_ssize_t z_stride, double* rows, signed char* status,
                            cython.uchar* starts) noexcept nogil:
    """Filter one keypoint (x, y, confidence at z + f * z_stride in frame f) over n frames into the rows'
    filtered and predicted parts, NaN where there is no estimate."""
    cdef double x[6]
    cdef double P[9]
    cdef double* row
    cdef const double* zf
    cdef double last = NAN
    cdef bint start
    cdef int used = 0
    cdef Py_ssize_t f
    cdef int i
    for i in range(6):  # _start sets them at the first detection; zeroed so nothing reads garbage before
        x[i] = 0.0
    for i in range(9):
        P[i] = 0.0
    for f in range(n):
        row = rows + f * _ROW
        zf = z + f * z_stride
        status[f] = _step(d, m, &used, &last, times[f], times[f] - times[f - 1] if f > 0 else 0.0,
                          zf[0], zf[1], zf[2], x, P, row + _PX, row + _PP, &start)
        starts[f] = start
        for i in range(6):
            row[_FX + i] = NAN if status[f] == _MISSING else x[i]
        for i in range(9):
            row[_FP + i] = NAN if status[f] == _MISSING else P[i]


cdef void _backward(const Model* m, Py_ssize_t n, const double* times, double* rows,
                    const signed char* status, const cython.uchar* starts) noexcept nogil:
    if m.dim == 2:
        _backward_d(2, m, n, times, rows, status, starts)
    else:
        _backward_d(3, m, n, times, rows, status, starts)


cdef inline void _backward_d(int d, const Model* m, Py_ssize_t n, const double* times, double* rows,
                             const signed char* status, const cython.uchar* starts) noexcept nogil:
    """Rauch-Tung-Striebel over one keypoint's filtered rows into their smoothed parts; the last frame of a
    segment (and a missing one) keeps its filtered estimate."""
    cdef double* row
    cdef Py_ssize_t f
    cdef int i
    for f in range(n - 1, -1, -1):
        row = rows + f * _ROW
        if f == n - 1 or status[f] == _MISSING or status[f + 1] == _MISSING or starts[f + 1]:
            for i in range(6):
                row[_SX + i] = row[_FX + i]
            for i in range(9):
                row[_SP + i] = row[_FP + i]
        else:
            _smooth_step(d, times[f + 1] - times[f], m, row + _FX, row + _FP, row + _ROW + _PX,
                         row + _ROW + _PP, row + _ROW + _SX, row + _ROW + _SP, row + _SX, row + _SP)


cdef void _copy_blocks(int r, int d, Py_ssize_t n, double* rows, int offset, double* array, Py_ssize_t stride,
                       bint into_rows) noexcept nogil:
    """Copy an r x d block per frame between the rows (3-wide storage at ``offset``) and a caller's array
    (the block of frame f row-major at array + f * stride), into the rows or out of them."""
    cdef Py_ssize_t f
    cdef int a, i
    for f in range(n):
        for a in range(r):
            for i in range(d):
                if into_rows:
                    rows[f * _ROW + offset + 3 * a + i] = array[f * stride + a * d + i]
                else:
                    array[f * stride + a * d + i] = rows[f * _ROW + offset + 3 * a + i]


cdef tuple _track_size(double[::1] times, double[:, :, ::1] keypoints):
    cdef Py_ssize_t n = keypoints.shape[0], f
    if keypoints.shape[2] != 3 or times.shape[0] != n:
        raise ValueError(f"keypoints must be (n, K, 3) with n = len(times); got {tuple(keypoints.shape)[:3]} "
                         f"and {times.shape[0]} times")
    for f in range(1, n):
        if not times[f] > times[f - 1]:
            raise ValueError(f"times must increase; frame {f} at {times[f]!r} follows {times[f - 1]!r}")
    return n, keypoints.shape[1]


def filter_track(double[::1] times, double[:, :, ::1] keypoints, int dim=2, double q=5.0e4, double r0=3.0,
                 double min_confidence=0.05, double gate=13.8, double max_gap_s=0.15,
                 double init_velocity_sigma=1000.0, double init_acceleration_sigma=2000.0,
                 double confidence_power=1.0, double measurement_dof=INFINITY, int robust_after=-1):
    """Forward pass over a whole recording: ``times`` (n,) seconds, ascending; ``keypoints`` (n, K, 3) of
    x, y, confidence. Returns filtered and predicted states (n, K, 2, dim) and covariances (n, K, dim, dim),
    the status (n, K) int8 and segment starts (n, K) bool."""
    cdef Model m = _model(dim, q, r0, min_confidence, gate, max_gap_s, init_velocity_sigma,
                          init_acceleration_sigma, confidence_power, measurement_dof, robust_after)
    cdef Py_ssize_t n, K, f, k
    n, K = _track_size(times, keypoints)
    out = {"x": np.empty((n, K, 2, dim)), "P": np.empty((n, K, dim, dim)), "x_pred": np.empty((n, K, 2, dim)),
           "P_pred": np.empty((n, K, dim, dim)), "status": np.empty((n, K), dtype=np.int8),
           "starts": np.empty((n, K), dtype=bool)}
    cdef double[:, :, :, ::1] xf = out["x"], Pf = out["P"], xp = out["x_pred"], Pp = out["P_pred"]
    cdef signed char[:, ::1] status = out["status"]
    cdef cython.uchar[:, ::1] starts = out["starts"].view(np.uint8)
    cdef double[:, ::1] rows = np.empty((n + 1, _ROW))  # one spare row: never a zero-size buffer
    cdef signed char[:, ::1] flags = np.empty((2, n + 1), dtype=np.int8)
    cdef cython.uchar* row_starts = <cython.uchar*> &flags[1, 0]
    with nogil:
        for k in range(K):
            _forward(&m, n, &times[0], &keypoints[0, k, 0], 3 * K, &rows[0, 0], &flags[0, 0], row_starts)
            _copy_blocks(2, dim, n, &rows[0, 0], _FX, &xf[0, k, 0, 0], 2 * dim * K, False)
            _copy_blocks(dim, dim, n, &rows[0, 0], _FP, &Pf[0, k, 0, 0], dim * dim * K, False)
            _copy_blocks(2, dim, n, &rows[0, 0], _PX, &xp[0, k, 0, 0], 2 * dim * K, False)
            _copy_blocks(dim, dim, n, &rows[0, 0], _PP, &Pp[0, k, 0, 0], dim * dim * K, False)
            for f in range(n):
                status[f, k] = flags[0, f]
                starts[f, k] = row_starts[f]
    return out


def rts_smooth(double[::1] times, dict filtered, int dim=2, double q=5.0e4):
    """Rauch-Tung-Striebel over every track segment of ``filter_track``'s output (same ``dim`` and ``q``).
    Returns smoothed states (n, K, 2, dim) and covariances (n, K, dim, dim); NaN where _MISSING."""
    cdef Model m = _model(dim, q, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    cdef double[:, :, :, ::1] xf = filtered["x"], Pf = filtered["P"], xp = filtered["x_pred"]
    cdef double[:, :, :, ::1] Pp = filtered["P_pred"]
    cdef signed char[:, ::1] status = filtered["status"]
    cdef cython.uchar[:, ::1] starts = filtered["starts"].view(np.uint8)
    cdef Py_ssize_t n = xf.shape[0], K = xf.shape[1], f, k
    if xf.shape[3] != dim:
        raise ValueError(f"the filtered states have dim {xf.shape[3]}, not {dim}")
    if times.shape[0] != n:
        raise ValueError(f"{times.shape[0]} times for {n} filtered frames")
    xs_arr, Ps_arr = np.empty((n, K, 2, dim)), np.empty((n, K, dim, dim))
    cdef double[:, :, :, ::1] xs = xs_arr, Ps = Ps_arr
    cdef double[:, ::1] rows = np.empty((n + 1, _ROW))
    cdef signed char[:, ::1] flags = np.empty((2, n + 1), dtype=np.int8)
    cdef cython.uchar* row_starts = <cython.uchar*> &flags[1, 0]
    with nogil:
        for k in range(K):
            _copy_blocks(2, dim, n, &rows[0, 0], _FX, &xf[0, k, 0, 0], 2 * dim * K, True)
            _copy_blocks(dim, dim, n, &rows[0, 0], _FP, &Pf[0, k, 0, 0], dim * dim * K, True)
            _copy_blocks(2, dim, n, &rows[0, 0], _PX, &xp[0, k, 0, 0], 2 * dim * K, True)
            _copy_blocks(dim, dim, n, &rows[0, 0], _PP, &Pp[0, k, 0, 0], dim * dim * K, True)
            for f in range(n):
                flags[0, f] = status[f, k]
                row_starts[f] = starts[f, k]
            _backward(&m, n, &times[0], &rows[0, 0], &flags[0, 0], row_starts)
            _copy_blocks(2, dim, n, &rows[0, 0], _SX, &xs[0, k, 0, 0], 2 * dim * K, False)
            _copy_blocks(dim, dim, n, &rows[0, 0], _SP, &Ps[0, k, 0, 0], dim * dim * K, False)
    return xs_arr, Ps_arr


def smooth_track(double[::1] times, double[:, :, ::1] keypoints, int dim=2, double q=5.0e4, double r0=3.0,
                 double min_confidence=0.05, double gate=13.8, double max_gap_s=0.15,
                 double init_velocity_sigma=1000.0, double init_acceleration_sigma=2000.0,
                 double confidence_power=1.0, double measurement_dof=INFINITY, int robust_after=-1):
    """``filter_track`` then ``rts_smooth`` in one pass per keypoint, keeping only what the smoother gives:
    smoothed states (n, K, 2, dim) and covariances (n, K, dim, dim), status and starts (as filter_track)."""
    cdef Model m = _model(dim, q, r0, min_confidence, gate, max_gap_s, init_velocity_sigma,
                          init_acceleration_sigma, confidence_power, measurement_dof, robust_after)
    cdef Py_ssize_t n, K, f, k
    n, K = _track_size(times, keypoints)
    out = {"x": np.empty((n, K, 2, dim)), "P": np.empty((n, K, dim, dim)),
           "status": np.empty((n, K), dtype=np.int8), "starts": np.empty((n, K), dtype=bool)}
    cdef double[:, :, :, ::1] xs = out["x"], Ps = out["P"]
    cdef signed char[:, ::1] status = out["status"]
    cdef cython.uchar[:, ::1] starts = out["starts"].view(np.uint8)
    cdef double[:, ::1] rows = np.empty((n + 1, _ROW))
    cdef signed char[:, ::1] flags = np.empty((2, n + 1), dtype=np.int8)
    cdef cython.uchar* row_starts = <cython.uchar*> &flags[1, 0]
    with nogil:
        for k in range(K):
            _forward(&m, n, &times[0], &keypoints[0, k, 0], 3 * K, &rows[0, 0], &flags[0, 0], row_starts)
            _backward(&m, n, &times[0], &rows[0, 0], &flags[0, 0], row_starts)
            _copy_blocks(2, dim, n, &rows[0, 0], _SX, &xs[0, k, 0, 0], 2 * dim * K, False)
            _copy_blocks(dim, dim, n, &rows[0, 0], _SP, &Ps[0, k, 0, 0], dim * dim * K, False)
            for f in range(n):
                status[f, k] = flags[0, f]
                starts[f, k] = row_starts[f]
    return out


cdef class LiveKeypointFilter:
    """Filters frames as they arrive and emits each one, smoothed, once it is ``lag_s`` old.

    ``push(t, keypoints)`` takes one frame ((K, 3): x, y, confidence) and returns the frames now due, each
    as (t, mean (K, 2), variance (K,), status (K,) int8); ``flush()`` emits the rest. The per-keypoint,
    plain-float API is ``begin_frame(t)``, ``step(k, x, y, confidence)`` per detection, ``end_frame()``,
    and ``estimate(k)``. State can be saved and restored
    (``get_state`` / ``set_state``) so a restarted source resumes.
    """

    cdef Model m
    cdef readonly int n_keypoints, capacity
    cdef readonly double lag_s
    cdef double[:, ::1] x_now, P_now
    cdef double[:, :, ::1] ring_x, ring_P, ring_xp, ring_Pp
    cdef signed char[:, ::1] ring_status
    cdef cython.uchar[:, ::1] ring_starts
    cdef double[::1] ring_t
    cdef cython.uchar[::1] used, stepped  # used: _step's count of a track's detections (0: no track)
    cdef double[::1] last_measured
    cdef long long frames, emitted
    cdef bint open
    cdef dict arrays  # the NumPy arrays behind the memoryviews, by name, for get_state / set_state

    def __init__(self, int n_keypoints, int dim=2, double q=5.0e4, double r0=3.0, double min_confidence=0.05,
                 double gate=13.8, double max_gap_s=0.15, double init_velocity_sigma=1000.0,
                 double init_acceleration_sigma=2000.0, double lag_s=0.1, int capacity=256,
                 double confidence_power=1.0, double measurement_dof=INFINITY, int robust_after=-1):
        self.m = _model(dim, q, r0, min_confidence, gate, max_gap_s, init_velocity_sigma,
                        init_acceleration_sigma, confidence_power, measurement_dof, robust_after)
        if n_keypoints < 1:
            raise ValueError(f"n_keypoints must be at least 1, got {n_keypoints}")
        if not (isfinite(lag_s) and lag_s >= 0.0):
            raise ValueError(f"lag_s must be a non-negative finite number, got {lag_s!r}")
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2 frames, got {capacity}")
        self.n_keypoints, self.capacity, self.lag_s = n_keypoints, capacity, lag_s
        a = self.arrays = {
            "x_now": np.zeros((n_keypoints, 6)), "P_now": np.zeros((n_keypoints, 9)),
            "ring_x": np.zeros((capacity, n_keypoints, 6)), "ring_P": np.zeros((capacity, n_keypoints, 9)),
            "ring_xp": np.zeros((capacity, n_keypoints, 6)), "ring_Pp": np.zeros((capacity, n_keypoints, 9)),
            "ring_status": np.zeros((capacity, n_keypoints), dtype=np.int8),
            "ring_starts": np.zeros((capacity, n_keypoints), dtype=np.uint8), "ring_t": np.zeros(capacity),
            "used": np.zeros(n_keypoints, dtype=np.uint8), "last_measured": np.full(n_keypoints, np.nan),
        }
        self.x_now, self.P_now, self.ring_x, self.ring_P = a["x_now"], a["P_now"], a["ring_x"], a["ring_P"]
        self.ring_xp, self.ring_Pp, self.ring_status = a["ring_xp"], a["ring_Pp"], a["ring_status"]
        self.ring_starts, self.ring_t, self.used = a["ring_starts"], a["ring_t"], a["used"]
        self.last_measured = a["last_measured"]
        self.stepped = np.zeros(n_keypoints, dtype=np.uint8)
        self.open = False
        self.frames = 0
        self.emitted = 0

    @property
    def dim(self):
        return self.m.dim

    def begin_frame(self, double t):
        """Open a frame at time ``t``; returns frames that had to be emitted early to make room."""
        if self.open:
            raise RuntimeError("the previous frame is still open: call end_frame first")
        if self.frames > 0 and not t > self.ring_t[(self.frames - 1) % self.capacity]:
            raise ValueError(f"frame time {t!r} does not follow the previous one")
        out = self._emit(self.emitted + 1) if self.frames - self.emitted >= self.capacity else []
        self.ring_t[self.frames % self.capacity] = t
        self.stepped[:] = 0
        self.open = True
        return out

    cpdef int step(self, int k, double x, double y, double confidence) except -1:
        """Filter keypoint ``k`` in the open frame with its detection (NaN or low confidence: none)."""
        if not self.open:
            raise RuntimeError("no frame is open: call begin_frame first")
        if not 0 <= k < self.n_keypoints:
            raise IndexError(f"keypoint {k} out of range 0..{self.n_keypoints - 1}")
        if self.stepped[k]:
            raise RuntimeError(f"keypoint {k} was already filtered in this frame")
        cdef long long slot = self.frames % self.capacity
        cdef double t = self.ring_t[slot]
        cdef double dt = t - self.ring_t[(self.frames - 1) % self.capacity] if self.frames > 0 else 0.0
        cdef bint start = False
        cdef int used = self.used[k]
        cdef double last = self.last_measured[k]
        cdef int code = _step(self.m.dim, &self.m, &used, &last, t, dt, x, y, confidence, &self.x_now[k, 0],
                              &self.P_now[k, 0], &self.ring_xp[slot, k, 0], &self.ring_Pp[slot, k, 0], &start)
        self.used[k] = used  # at most robust_after (<= 100)
        self.last_measured[k] = last
        self.stepped[k] = 1
        self.ring_status[slot, k] = code
        self.ring_starts[slot, k] = start
        self.ring_x[slot, k, :] = self.x_now[k, :]
        self.ring_P[slot, k, :] = self.P_now[k, :]
        return code

    def end_frame(self):
        """Close the open frame (keypoints not filtered in it had no detection); returns the frames due."""
        if not self.open:
            raise RuntimeError("no frame is open")
        cdef int k
        for k in range(self.n_keypoints):
            if not self.stepped[k]:
                self.step(k, NAN, NAN, NAN)
        cdef double t = self.ring_t[self.frames % self.capacity]
        self.frames += 1
        self.open = False
        cdef long long due = self.emitted
        while due < self.frames and self.ring_t[due % self.capacity] <= t - self.lag_s:
            due += 1
        return self._emit(due)

    def estimate(self, int k):
        """Keypoint ``k``'s latest filtered (x, y, vx, vy, position variance); NaN when not tracked."""
        if not self.used[k]:
            return (NAN, NAN, NAN, NAN, NAN)
        return (self.x_now[k, 0], self.x_now[k, 3], self.x_now[k, 1], self.x_now[k, 4], self.P_now[k, 0])

    def push(self, double t, double[:, ::1] keypoints):
        """One whole frame ((K, 3): x, y, confidence); returns the frames now due."""
        if keypoints.shape[0] != self.n_keypoints or keypoints.shape[1] != 3:
            raise ValueError(f"expected ({self.n_keypoints}, 3) keypoints, got {tuple(keypoints.shape)[:2]}")
        out = self.begin_frame(t)
        cdef int k
        for k in range(self.n_keypoints):
            self.step(k, keypoints[k, 0], keypoints[k, 1], keypoints[k, 2])
        return out + self.end_frame()

    def flush(self):
        """Emit every frame not yet emitted, smoothed with what has arrived."""
        if self.open:
            raise RuntimeError("a frame is still open: call end_frame first")
        return self._emit(self.frames)

    cdef list _emit(self, long long upto):
        """Smooth back from the newest frame and emit frames [emitted, upto)."""
        if upto <= self.emitted:
            return []
        cdef long long count = upto - self.emitted, f, newest = self.frames - 1, slot, nxt
        cdef int K = self.n_keypoints, d = self.m.dim, k, i
        means = np.full((count, K, 2), np.nan)
        variances = np.full((count, K), np.nan)
        statuses = np.empty((count, K), dtype=np.int8)
        cdef double[:, :, ::1] mean_v = means
        cdef double[:, ::1] var_v = variances
        cdef signed char[:, ::1] status_v = statuses
        cdef double xs[6]
        cdef double Ps[9]
        cdef double xs_prev[6]
        cdef double Ps_prev[9]
        for k in range(K):
            slot = newest % self.capacity
            for i in range(6):
                xs[i] = self.ring_x[slot, k, i]
            for i in range(9):
                Ps[i] = self.ring_P[slot, k, i]
            for f in range(newest, self.emitted - 1, -1):
                slot = f % self.capacity
                if f < newest:
                    nxt = (f + 1) % self.capacity
                    if self.ring_status[slot, k] == _MISSING:
                        pass
                    elif self.ring_status[nxt, k] == _MISSING or self.ring_starts[nxt, k]:
                        for i in range(6):
                            xs[i] = self.ring_x[slot, k, i]
                        for i in range(9):
                            Ps[i] = self.ring_P[slot, k, i]
                    else:
                        for i in range(6):
                            xs_prev[i] = xs[i]
                        for i in range(9):
                            Ps_prev[i] = Ps[i]
                        _smooth_step(d, self.ring_t[nxt] - self.ring_t[slot], &self.m, &self.ring_x[slot, k, 0],
                                     &self.ring_P[slot, k, 0], &self.ring_xp[nxt, k, 0], &self.ring_Pp[nxt, k, 0],
                                     xs_prev, Ps_prev, xs, Ps)
                if f < upto:
                    status_v[f - self.emitted, k] = self.ring_status[slot, k]
                    if self.ring_status[slot, k] != _MISSING:
                        mean_v[f - self.emitted, k, 0] = xs[0]
                        mean_v[f - self.emitted, k, 1] = xs[3]
                        var_v[f - self.emitted, k] = Ps[0]
        out = [(self.ring_t[(self.emitted + j) % self.capacity], means[j], variances[j], statuses[j])
               for j in range(count)]
        self.emitted = upto
        return out

    def get_state(self):
        """Everything needed to resume: the live estimates and the frames not yet emitted."""
        if self.open:
            raise RuntimeError("a frame is open: save the state between frames")
        return {
            "version": STATE_VERSION,
            "model": (self.m.dim, self.m.q, self.m.r0, self.m.min_confidence, self.m.gate, self.m.max_gap_s,
                      self.m.init_velocity_sigma, self.m.init_acceleration_sigma, self.m.power, self.m.nu,
                      self.m.robust_after),
            "n_keypoints": self.n_keypoints, "capacity": self.capacity, "lag_s": self.lag_s,
            "frames": self.frames, "emitted": self.emitted,
            "arrays": {name: array.copy() for name, array in self.arrays.items()},
        }

    def set_state(self, dict state):
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r} is not {STATE_VERSION}")
        if (state["n_keypoints"], state["capacity"]) != (self.n_keypoints, self.capacity):
            raise ValueError("state was saved by a filter of another size")
        dim, q, r0, min_confidence, gate, max_gap_s, init_velocity, init_acceleration, power, nu, after = (
            state["model"])
        self.m = _model(dim, q, r0, min_confidence, gate, max_gap_s, init_velocity, init_acceleration, power,
                        nu, after)
        self.lag_s = state["lag_s"]
        self.frames, self.emitted = state["frames"], state["emitted"]
        for name, array in self.arrays.items():
            array[...] = state["arrays"][name]
