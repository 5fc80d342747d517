"""Weighted linear triangulation of many points at once, and the standard deviation of each result.

``triangulate``: Hartley & Zisserman, Multiple View Geometry, 2nd ed., sec. 12.2 (the DLT). Each view v that
sees point j at normalised image coordinates (x, y) (undistorted, so its projection is P = [R | t]) gives two
rows of A, w (x P3 - P1) and w (y P3 - P2); the point is the right singular vector of A with the smallest
singular value, here the eigenvector of the 4x4 symmetric A^T A with the smallest eigenvalue, found by inverse
iteration (Golub & Van Loan, Matrix Computations, 4th ed., sec. 8.2.2). A^T A squares A's condition:
with the views' weights about one standard deviation in normalised coordinates, its smallest eigenvalue is
the residual's and the next the geometry's, thousands of times apart, so the eigenvector keeps about 12
digits. A view with a non-finite coordinate or a weight that is not positive is left out; a point with
fewer than two views, or whose solution lies behind a view it used, is NaN.

``point_sigma``: each used view at depth d with angular standard deviation a pins the point across its ray
to d a and not at all along it, so the information is sum 1/(d a)^2 (I - r r^T), r the ray's unit direction
(Hartley & Zisserman 2004, sec. 5.2.2 and 12.6); the result is the root mean of the covariance's diagonal,
inf when the information is singular (parallel rays).

``kinefuse._pure.triangulation`` is the twin: the same operations in the same order, so the two agree to the
last bit. Hand-written because it is the per-item hot path of the motion stream (NumPy's batched SVD costs
about 0.3 ms a call for a handful of points) and the per-frame path of multi-view triangulation.
"""

from libc.math cimport INFINITY, NAN, fabs, isfinite, sqrt

import numpy as np

cdef int _ITERATIONS = 12  # it converges in 3-7 (measured on the tests' scenes); past this, Jacobi
cdef int _SWEEPS = 30  # Jacobi converges in 3-5; the bound only stops a NaN input
cdef double _SHIFT = 1e-12  # of the trace: keeps the Cholesky factor of an exactly consistent (singular) system


cdef void _rotate(double[4][4] m, double[4][4] v, int p, int q) noexcept nogil:
    """One Jacobi rotation zeroing m[p][q] (m symmetric; v accumulates the rotations)."""
    cdef double theta, t, c, s, mkp, mkq
    cdef int k
    if m[p][q] == 0.0:
        return
    theta = (m[q][q] - m[p][p]) / (2.0 * m[p][q])
    t = 1.0 / (fabs(theta) + sqrt(theta * theta + 1.0))
    if theta < 0.0:
        t = -t
    c = 1.0 / sqrt(t * t + 1.0)
    s = t * c
    for k in range(4):
        mkp = m[k][p]
        mkq = m[k][q]
        m[k][p] = c * mkp - s * mkq
        m[k][q] = s * mkp + c * mkq
    for k in range(4):
        mkp = m[p][k]
        mkq = m[q][k]
        m[p][k] = c * mkp - s * mkq
        m[q][k] = s * mkp + c * mkq
    for k in range(4):
        mkp = v[k][p]
        mkq = v[k][q]
        v[k][p] = c * mkp - s * mkq
        v[k][q] = s * mkp + c * mkq


cdef void _jacobi(double[4][4] m, double* out) noexcept nogil:
    """The unit eigenvector of the symmetric m (overwritten) with the smallest eigenvalue, into out[4], by
    cyclic Jacobi rotations (Golub & Van Loan sec. 8.5.2): slower, but exact however close the eigenvalues."""
    cdef double[4][4] v
    cdef double off, scale
    cdef int i, j, sweep, best
    for i in range(4):
        for j in range(4):
            v[i][j] = 1.0 if i == j else 0.0
    scale = 0.0
    for i in range(4):
        scale += m[i][i] * m[i][i]
    for sweep in range(_SWEEPS):
        off = 0.0
        for i in range(4):
            for j in range(i + 1, 4):
                off += m[i][j] * m[i][j]
        if off <= 1e-30 * scale:
            break
        for i in range(4):
            for j in range(i + 1, 4):
                _rotate(m, v, i, j)
    best = 0
    for i in range(1, 4):
        if m[i][i] < m[best][best]:
            best = i
    for i in range(4):
        out[i] = v[i][best]


cdef void _smallest_eigenvector(double[4][4] m, double* out) noexcept nogil:
    """The unit eigenvector of the symmetric positive semi-definite m with the smallest eigenvalue, into
    out[4], by inverse iteration from (0, 0, 0, 1) with m + shift I factored by
    Cholesky (Golub & Van Loan sec. 8.2.2): each step divides the error by the ratio of the two smallest
    eigenvalues, a residual's against the geometry's, so a few steps reach the last bit; when they do not,
    ``_jacobi``."""
    cdef double[4][4] l
    cdef double[4] y
    cdef double[4] z
    cdef double s, norm, change, shift = _SHIFT * (m[0][0] + m[1][1] + m[2][2] + m[3][3])
    cdef int i, k, it
    for i in range(4):
        for k in range(i + 1):
            s = m[i][k] + (shift if i == k else 0.0)
            for it in range(k):
                s -= l[i][it] * l[k][it]
            if i == k:
                if not s > 0.0:
                    _jacobi(m, out)
                    return
                l[i][i] = sqrt(s)
            else:
                l[i][k] = s / l[k][k]
    for i in range(4):
        y[i] = 1.0 if i == 3 else 0.0
    for it in range(_ITERATIONS):
        for i in range(4):  # L w = y, w into z
            s = y[i]
            for k in range(i):
                s -= l[i][k] * z[k]
            z[i] = s / l[i][i]
        for i in range(3, -1, -1):  # L^T z = w, in place
            s = z[i]
            for k in range(i + 1, 4):
                s -= l[k][i] * z[k]
            z[i] = s / l[i][i]
        norm = sqrt(z[0] * z[0] + z[1] * z[1] + z[2] * z[2] + z[3] * z[3])
        change = 0.0
        for i in range(4):
            z[i] = z[i] / norm
            change = max(change, fabs(z[i] - y[i]))
            y[i] = z[i]
        if change <= 1e-15:
            for i in range(4):
                out[i] = y[i]
            return
    _jacobi(m, out)  # the two smallest eigenvalues are too close for inverse iteration (inconsistent views)


def _check(projections, xy, weights):
    ncam, n = projections.shape[0], xy.shape[1]
    if xy.shape[0] != ncam or weights.shape[0] != ncam or weights.shape[1] != n or xy.shape[2] != 2:
        raise ValueError(f"shapes disagree: projections {tuple(projections.shape[:3])}, xy "
                         f"{tuple(xy.shape[:3])}, weights {tuple(weights.shape[:2])}")
    if projections.shape[1] != 3 or projections.shape[2] != 4:
        raise ValueError(f"projections must be (ncam, 3, 4), got {tuple(projections.shape[:3])}")


def triangulate(projections, xy, weights):
    """Points (n, 3) from ``projections`` (ncam, 3, 4), normalised coordinates ``xy`` (ncam, n, 2) and
    ``weights`` (ncam, n), all C-contiguous float64; NaN where fewer than two views are usable or the point
    is behind one of them."""
    _check(projections, xy, weights)
    used = np.empty((projections.shape[0], xy.shape[1]), dtype=np.uint8)
    points = np.empty((xy.shape[1], 3))
    _triangulate(projections, xy, weights, used, points)
    return points


def triangulate_rejecting(projections, xy, weights, scale, double max_error):
    """``triangulate``, leaving views out: while the largest reprojection error among the used views (the
    distance in normalised coordinates times ``scale`` (ncam,), e.g. each camera's focal length for pixels;
    infinite for a view the point falls behind) exceeds ``max_error`` and more than two views remain, the
    view whose leaving out gives the others the smallest largest error is left out and the point solved
    again (leave-one-out: an outlier pulls the least-squares point, so the view with the largest error is
    often a good one). Returns the points (n, 3), the views used (ncam, n;
    uint8) and the RMS reprojection error over them (n,), NaN where no point."""
    _check(projections, xy, weights)
    if scale.shape[0] != projections.shape[0]:
        raise ValueError(f"shapes disagree: projections {projections.shape[0]}, scale {scale.shape[0]}")
    used = np.empty((projections.shape[0], xy.shape[1]), dtype=np.uint8)
    points, error = np.empty((xy.shape[1], 3)), np.empty(xy.shape[1])
    _triangulate_rejecting(projections, xy, weights, scale, max_error, used, points, error)
    return points, used, error


cdef inline bint _usable(const double[:, :, ::1] xy, const double[:, ::1] weights, Py_ssize_t v,
                         Py_ssize_t j) noexcept nogil:
    cdef double w = weights[v, j]
    return isfinite(xy[v, j, 0]) and isfinite(xy[v, j, 1]) and isfinite(w) and w > 0.0


cdef int _solve(const double[:, :, ::1] projections, const double[:, :, ::1] xy, const double[:, ::1] weights,
                unsigned char[:, ::1] used, Py_ssize_t j, double[:, ::1] points) noexcept nogil:
    """Point j from the views marked in ``used[:, j]`` into ``points[j]`` (NaN with fewer than two); their
    count."""
    cdef double[4][4] m
    cdef double[4] h
    cdef double[4] r
    cdef double w, x, y
    cdef int a, b, k, count = 0
    cdef Py_ssize_t v
    for a in range(4):
        for b in range(4):
            m[a][b] = 0.0
    for v in range(projections.shape[0]):
        if not used[v, j]:
            continue
        w = weights[v, j]
        x = xy[v, j, 0]
        y = xy[v, j, 1]
        count += 1
        for k in range(2):
            for a in range(4):
                r[a] = w * ((x if k == 0 else y) * projections[v, 2, a] - projections[v, k, a])
            for a in range(4):
                for b in range(4):
                    m[a][b] += r[a] * r[b]
    if count < 2:
        for a in range(3):
            points[j, a] = NAN
        return count
    _smallest_eigenvector(m, h)
    for a in range(3):
        points[j, a] = h[a] / h[3]
    return count


cdef double _view_error(const double[:, :, ::1] projections, const double[:, :, ::1] xy, Py_ssize_t v,
                        Py_ssize_t j, const double[:, ::1] points) noexcept nogil:
    """View v's reprojection error of point j in normalised coordinates; inf if the point is behind it."""
    cdef double c[3]
    cdef double du, dv
    cdef int a
    for a in range(3):
        c[a] = (projections[v, a, 0] * points[j, 0] + projections[v, a, 1] * points[j, 1]
                + projections[v, a, 2] * points[j, 2] + projections[v, a, 3])
    if not c[2] > 0.0:
        return INFINITY
    du = c[0] / c[2] - xy[v, j, 0]
    dv = c[1] / c[2] - xy[v, j, 1]
    return sqrt(du * du + dv * dv)


cdef void _clear(double[:, ::1] points, Py_ssize_t j) noexcept nogil:
    points[j, 0] = NAN
    points[j, 1] = NAN
    points[j, 2] = NAN


cdef _triangulate(const double[:, :, ::1] projections, const double[:, :, ::1] xy, const double[:, ::1] weights,
                  unsigned char[:, ::1] used, double[:, ::1] points):
    cdef Py_ssize_t ncam = projections.shape[0], v, j
    cdef bint ok
    with nogil:
        for j in range(xy.shape[1]):
            for v in range(ncam):
                used[v, j] = _usable(xy, weights, v, j)
            if _solve(projections, xy, weights, used, j, points) < 2:
                continue
            ok = isfinite(points[j, 0]) and isfinite(points[j, 1]) and isfinite(points[j, 2])
            for v in range(ncam):
                if used[v, j] and _view_error(projections, xy, v, j, points) == INFINITY:
                    ok = False
            if not ok:
                _clear(points, j)


cdef double _worst(const double[:, :, ::1] projections, const double[:, :, ::1] xy, const double[::1] scale,
                   unsigned char[:, ::1] used, Py_ssize_t j, const double[:, ::1] points,
                   double* squares) noexcept nogil:
    """The largest scaled reprojection error of point j over its used views; their sum of squares into
    ``squares``."""
    cdef double e, worst = -1.0
    cdef Py_ssize_t v
    squares[0] = 0.0
    for v in range(projections.shape[0]):
        if used[v, j]:
            e = _view_error(projections, xy, v, j, points) * scale[v]
            squares[0] += e * e
            if e > worst:
                worst = e
    return worst


cdef Py_ssize_t _outlier(const double[:, :, ::1] projections, const double[:, :, ::1] xy,
                         const double[:, ::1] weights, const double[::1] scale, unsigned char[:, ::1] used,
                         Py_ssize_t j, double[:, ::1] points) noexcept nogil:
    """The used view whose leaving out gives the others the smallest largest error (leave-one-out; the
    first on a tie)."""
    cdef Py_ssize_t v, best = -1
    cdef double e, squares, smallest = INFINITY
    for v in range(projections.shape[0]):
        if not used[v, j]:
            continue
        used[v, j] = 0
        _solve(projections, xy, weights, used, j, points)
        e = _worst(projections, xy, scale, used, j, points, &squares)
        used[v, j] = 1
        if best < 0 or e < smallest:
            best, smallest = v, e
    return best


cdef _triangulate_rejecting(const double[:, :, ::1] projections, const double[:, :, ::1] xy,
                            const double[:, ::1] weights, const double[::1] scale, double max_error,
                            unsigned char[:, ::1] used, double[:, ::1] points, double[::1] error):
    cdef Py_ssize_t ncam = projections.shape[0], v, j
    cdef double worst, squares
    cdef int count
    with nogil:
        for j in range(xy.shape[1]):
            for v in range(ncam):
                used[v, j] = _usable(xy, weights, v, j)
            while True:
                count = _solve(projections, xy, weights, used, j, points)
                if count < 2:
                    error[j] = NAN
                    break
                worst = _worst(projections, xy, scale, used, j, points, &squares)
                if worst > max_error and count > 2:
                    used[_outlier(projections, xy, weights, scale, used, j, points), j] = 0
                    continue
                if worst == INFINITY or not (isfinite(points[j, 0]) and isfinite(points[j, 1])
                                             and isfinite(points[j, 2])):
                    _clear(points, j)
                    error[j] = NAN
                else:
                    error[j] = sqrt(squares / count)
                break


def point_sigma(projections, centres, points, angular):
    """Per point (n,) the root mean of its covariance's diagonal (m), from ``points`` (n, 3), the cameras'
    ``projections`` (ncam, 3, 4) and ``centres`` (ncam, 3) and each view's angular standard deviation
    ``angular`` (ncam, n; rad, NaN where the view is not used); NaN for a NaN point, inf where singular."""
    ncam, n = projections.shape[0], points.shape[0]
    if centres.shape[0] != ncam or angular.shape[0] != ncam or angular.shape[1] != n:
        raise ValueError(f"shapes disagree: projections {ncam}, centres {centres.shape[0]}, points {n}, "
                         f"angular {tuple(angular.shape[:2])}")
    return _point_sigma(projections, centres, points, angular)


cdef _point_sigma(const double[:, :, ::1] projections, const double[:, ::1] centres, const double[:, ::1] points,
                  const double[:, ::1] angular):
    cdef Py_ssize_t ncam = projections.shape[0], n = points.shape[0], v, j
    out_array = np.empty(n)
    cdef double[::1] out = out_array
    cdef double[3][3] info
    cdef double[3] ray
    cdef double norm, depth, lateral, weight, det, trace, inverse_trace
    cdef int a, b
    with nogil:
        for j in range(n):
            if not (isfinite(points[j, 0]) and isfinite(points[j, 1]) and isfinite(points[j, 2])):
                out[j] = NAN
                continue
            for a in range(3):
                for b in range(3):
                    info[a][b] = 0.0
            for v in range(ncam):
                for a in range(3):
                    ray[a] = points[j, a] - centres[v, a]
                norm = sqrt(ray[0] * ray[0] + ray[1] * ray[1] + ray[2] * ray[2])
                for a in range(3):
                    ray[a] = ray[a] / norm
                depth = fabs(projections[v, 2, 0] * points[j, 0] + projections[v, 2, 1] * points[j, 1]
                             + projections[v, 2, 2] * points[j, 2] + projections[v, 2, 3])
                lateral = depth * angular[v, j]
                if not isfinite(lateral) or lateral == 0.0:
                    continue
                weight = 1.0 / (lateral * lateral)
                for a in range(3):
                    for b in range(3):
                        info[a][b] += weight * ((1.0 if a == b else 0.0) - ray[a] * ray[b])
            det = (info[0][0] * (info[1][1] * info[2][2] - info[1][2] * info[2][1])
                   - info[0][1] * (info[1][0] * info[2][2] - info[1][2] * info[2][0])
                   + info[0][2] * (info[1][0] * info[2][1] - info[1][1] * info[2][0]))
            trace = info[0][0] + info[1][1] + info[2][2]
            if not det > 1e-12 * trace * trace * trace:
                out[j] = INFINITY
                continue
            # the inverse's trace: the sum of the diagonal cofactors over the determinant
            inverse_trace = ((info[1][1] * info[2][2] - info[1][2] * info[2][1])
                             + (info[0][0] * info[2][2] - info[0][2] * info[2][0])
                             + (info[0][0] * info[1][1] - info[0][1] * info[1][0])) / det
            out[j] = sqrt(inverse_trace / 3.0)
    return out_array
