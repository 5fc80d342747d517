"""Twin of ``kinefuse._ext.triangulation``: the same floating-point operations in the same order
(bit-identical; change both together)."""

from __future__ import annotations

import math

import numpy as np

_SWEEPS = 30  # a 4x4 converges in 3-5 (measured on the tests' scenes); the bound only stops a NaN input


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


def _smallest_eigenvector(m):
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


def _usable(x, y, w):
    return math.isfinite(x) and math.isfinite(y) and math.isfinite(w) and w > 0.0


def _check(projections, xy, weights):
    ncam, n = projections.shape[0], xy.shape[1]
    if xy.shape[0] != ncam or weights.shape[0] != ncam or weights.shape[1] != n or xy.shape[2] != 2:
        raise ValueError(f"shapes disagree: projections {tuple(projections.shape[:3])}, xy "
                         f"{tuple(xy.shape[:3])}, weights {tuple(weights.shape[:2])}")  # fmt: skip
    if projections.shape[1] != 3 or projections.shape[2] != 4:
        raise ValueError(f"projections must be (ncam, 3, 4), got {tuple(projections.shape[:3])}")


def triangulate(projections, xy, weights):
    _check(projections, xy, weights)
    p, xy, weights = projections.tolist(), xy.tolist(), weights.tolist()
    ncam, n = len(p), len(xy[0])
    out = np.empty((n, 3))
    for j in range(n):
        m = [[0.0] * 4 for _ in range(4)]
        used = 0
        for v in range(ncam):
            w, (x, y) = weights[v][j], xy[v][j]
            if not _usable(x, y, w):
                continue
            used += 1
            for k in range(2):
                r = [w * ((x if k == 0 else y) * p[v][2][a] - p[v][k][a]) for a in range(4)]
                for a in range(4):
                    for b in range(4):
                        m[a][b] += r[a] * r[b]
        if used < 2:
            out[j] = math.nan
            continue
        h = _smallest_eigenvector(m)
        point = [h[a] / h[3] for a in range(3)]
        behind = False
        for v in range(ncam):
            w, (x, y) = weights[v][j], xy[v][j]
            if not _usable(x, y, w):
                continue
            depth = p[v][2][0] * point[0] + p[v][2][1] * point[1] + p[v][2][2] * point[2] + p[v][2][3]
            if not depth > 0.0:
                behind = True
        out[j] = math.nan if behind or not all(math.isfinite(c) for c in point) else point
    return out


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
