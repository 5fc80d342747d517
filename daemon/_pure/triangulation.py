"""Twin of ``kinefuse._ext.triangulation``: the same floating-point operations in the same order
(bit-identical; change both together)."""

from __future__ import annotations

import math

import numpy as np

_ITERATIONS = 12  # it converges in 3-7 (measured on the tests' scenes); past this, Jacobi
_SWEEPS = 30  # Jacobi converges in 3-5; the bound only stops a NaN input
_SHIFT = 1e-12  # of the trace: keeps the Cholesky factor of an exactly consistent (singular) system


def _rotate(m, v, p, q):
    if m[p][q] == 0.0:
        return
    theta = (m[q][q] - m[p][p]) / (2.0 * m[p][q])
    t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
    if theta < 0.0:
        t = -t
    c = 1.0 / math.sqrt(t * t + 1.0)
    s = t * c
    for k in range(4):
        mkp, mkq = m[k][p], m[k][q]
        m[k][p] = c * mkp - s * mkq
        m[k][q] = s * mkp + c * mkq
    for k in range(4):
        mkp, mkq = m[p][k], m[q][k]
        m[p][k] = c * mkp - s * mkq
        m[q][k] = s * mkp + c * mkq
    for k in range(4):
        mkp, mkq = v[k][p], v[k][q]
        v[k][p] = c * mkp - s * mkq
        v[k][q] = s * mkp + c * mkq


def _jacobi(m):
    v = [[1.0 if i == j else 0.0 for j in range(4)] for i in range(4)]
    scale = 0.0
    for i in range(4):
        scale += m[i][i] * m[i][i]
    for _ in range(_SWEEPS):
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
    return [v[i][best] for i in range(4)]


def _smallest_eigenvector(m):
    shift = _SHIFT * (m[0][0] + m[1][1] + m[2][2] + m[3][3])
    low = [[0.0] * 4 for _ in range(4)]
    for i in range(4):
        for k in range(i + 1):
            s = m[i][k] + (shift if i == k else 0.0)
            for it in range(k):
                s -= low[i][it] * low[k][it]
            if i == k:
                if not s > 0.0:
                    return _jacobi(m)
                low[i][i] = math.sqrt(s)
            else:
                low[i][k] = s / low[k][k]
    y, z = [0.0, 0.0, 0.0, 1.0], [0.0] * 4
    for _ in range(_ITERATIONS):
        for i in range(4):
            s = y[i]
            for k in range(i):
                s -= low[i][k] * z[k]
            z[i] = s / low[i][i]
        for i in range(3, -1, -1):
            s = z[i]
            for k in range(i + 1, 4):
                s -= low[k][i] * z[k]
            z[i] = s / low[i][i]
        norm = math.sqrt(z[0] * z[0] + z[1] * z[1] + z[2] * z[2] + z[3] * z[3])
        change = 0.0
        for i in range(4):
            z[i] = z[i] / norm
            change = max(change, abs(z[i] - y[i]))
            y[i] = z[i]
        if change <= 1e-15:
            return y
    return _jacobi(m)


def _check(projections, xy, weights):
    ncam, n = projections.shape[0], xy.shape[1]
    if xy.shape[0] != ncam or weights.shape[0] != ncam or weights.shape[1] != n or xy.shape[2] != 2:
        raise ValueError(f"shapes disagree: projections {tuple(projections.shape[:3])}, xy "
                         f"{tuple(xy.shape[:3])}, weights {tuple(weights.shape[:2])}")  # fmt: skip
    if projections.shape[1] != 3 or projections.shape[2] != 4:
        raise ValueError(f"projections must be (ncam, 3, 4), got {tuple(projections.shape[:3])}")


def _usable(xy, weights, v, j):
    w, (x, y) = weights[v][j], xy[v][j]
    return math.isfinite(x) and math.isfinite(y) and math.isfinite(w) and w > 0.0


def _solve(p, views, weights, use):
    """The point from the views in ``use`` ([x, y, z], NaN with fewer than two) and their count."""
    m = [[0.0] * 4 for _ in range(4)]
    count = 0
    for v in range(len(p)):
        if not use[v]:
            continue
        w, (x, y) = weights[v], views[v]
        count += 1
        for k in range(2):
            r = [w * ((x if k == 0 else y) * p[v][2][a] - p[v][k][a]) for a in range(4)]
            for a in range(4):
                for b in range(4):
                    m[a][b] += r[a] * r[b]
    if count < 2:
        return [math.nan] * 3, count
    h = _smallest_eigenvector(m)
    return [h[a] / h[3] for a in range(3)], count


def _view_error(pv, xy, point):
    c = [pv[a][0] * point[0] + pv[a][1] * point[1] + pv[a][2] * point[2] + pv[a][3] for a in range(3)]
    if not c[2] > 0.0:
        return math.inf
    du, dv = c[0] / c[2] - xy[0], c[1] / c[2] - xy[1]
    return math.sqrt(du * du + dv * dv)


def _finite(point):
    return all(math.isfinite(c) for c in point)


def triangulate(projections, xy, weights):
    _check(projections, xy, weights)
    p, xy, weights = projections.tolist(), xy.tolist(), weights.tolist()
    out = np.empty((len(xy[0]), 3))
    for j in range(len(out)):
        use = [_usable(xy, weights, v, j) for v in range(len(p))]
        views = [xy[v][j] for v in range(len(p))]
        point, count = _solve(p, views, [weights[v][j] for v in range(len(p))], use)
        behind = any(use[v] and _view_error(p[v], views[v], point) == math.inf for v in range(len(p)))
        out[j] = point if count >= 2 and _finite(point) and not behind else math.nan
    return out


def _worst(p, views, scale, use, point):
    worst, squares = -1.0, 0.0
    for v in range(len(p)):
        if use[v]:
            e = _view_error(p[v], views[v], point) * scale[v]
            squares += e * e
            if e > worst:
                worst = e
    return worst, squares


def _outlier(p, views, w, scale, use):
    best, smallest = -1, math.inf
    for v in range(len(p)):
        if not use[v]:
            continue
        use[v] = False
        point, _ = _solve(p, views, w, use)
        e, _ = _worst(p, views, scale, use, point)
        use[v] = True
        if best < 0 or e < smallest:
            best, smallest = v, e
    return best


def triangulate_rejecting(projections, xy, weights, scale, max_error):
    _check(projections, xy, weights)
    if scale.shape[0] != projections.shape[0]:
        raise ValueError(f"shapes disagree: projections {projections.shape[0]}, scale {scale.shape[0]}")
    p, xy, weights, scale = projections.tolist(), xy.tolist(), weights.tolist(), scale.tolist()
    ncam, n = len(p), len(xy[0])
    used, points, error = np.empty((ncam, n), dtype=np.uint8), np.empty((n, 3)), np.empty(n)
    for j in range(n):
        use = [_usable(xy, weights, v, j) for v in range(ncam)]
        views, w = [xy[v][j] for v in range(ncam)], [weights[v][j] for v in range(ncam)]
        while True:
            point, count = _solve(p, views, w, use)
            if count < 2:
                error[j] = math.nan
                break
            worst, squares = _worst(p, views, scale, use, point)
            if worst > max_error and count > 2:
                use[_outlier(p, views, w, scale, use)] = False
                continue
            if worst == math.inf or not _finite(point):
                point, error[j] = [math.nan] * 3, math.nan
            else:
                error[j] = math.sqrt(squares / count)
            break
        points[j], used[:, j] = point, use
    return points, used, error


def point_sigma(projections, centres, points, angular):
    ncam, n = projections.shape[0], points.shape[0]
    if centres.shape[0] != ncam or angular.shape[0] != ncam or angular.shape[1] != n:
        raise ValueError(f"shapes disagree: projections {ncam}, centres {centres.shape[0]}, points {n}, "
                         f"angular {tuple(angular.shape[:2])}")  # fmt: skip
    p, centres, points, angular = projections.tolist(), centres.tolist(), points.tolist(), angular.tolist()
    out = np.empty(n)
    for j in range(n):
        point = points[j]
        if not all(math.isfinite(c) for c in point):
            out[j] = math.nan
            continue
        info = [[0.0] * 3 for _ in range(3)]
        for v in range(ncam):
            ray = [point[a] - centres[v][a] for a in range(3)]
            norm = math.sqrt(ray[0] * ray[0] + ray[1] * ray[1] + ray[2] * ray[2])
            ray = [ray[a] / norm for a in range(3)]
            depth = abs(p[v][2][0] * point[0] + p[v][2][1] * point[1] + p[v][2][2] * point[2] + p[v][2][3])
            lateral = depth * angular[v][j]
            if not math.isfinite(lateral) or lateral == 0.0:
                continue
            weight = 1.0 / (lateral * lateral)
            for a in range(3):
                for b in range(3):
                    info[a][b] += weight * ((1.0 if a == b else 0.0) - ray[a] * ray[b])
        det = (info[0][0] * (info[1][1] * info[2][2] - info[1][2] * info[2][1])
               - info[0][1] * (info[1][0] * info[2][2] - info[1][2] * info[2][0])
               + info[0][2] * (info[1][0] * info[2][1] - info[1][1] * info[2][0]))  # fmt: skip
        trace = info[0][0] + info[1][1] + info[2][2]
        if not det > 1e-12 * trace * trace * trace:
            out[j] = math.inf
            continue
        inverse_trace = ((info[1][1] * info[2][2] - info[1][2] * info[2][1])
                         + (info[0][0] * info[2][2] - info[0][2] * info[2][0])
                         + (info[0][0] * info[1][1] - info[0][1] * info[1][0])) / det  # fmt: skip
        out[j] = math.sqrt(inverse_trace / 3.0)
    return out
