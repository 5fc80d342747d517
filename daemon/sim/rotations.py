"""Small rotation helpers for the body model, vectorised over time (arrays of shape (n, 3, 3) and (n, 3)).

The joint sequence is the Cardan sequence of the ISB joint coordinate systems (Grood & Suntay 1983; Wu et
al. 2002, J Biomech 35:543; Wu et al. 2005, J Biomech 38:981): the first rotation about the proximal
segment's medio-lateral axis (flexion), the second about the floating antero-posterior axis
(ab/adduction), the third about the distal segment's long axis (axial rotation). In the body model's
segment frames (x anterior, y left, z up) that is the intrinsic sequence y-x'-z'':

    R = Ry(a) · Rx(b) · Rz(c)

where ``Rk(angle)`` is the right-handed rotation about axis k. Clinical signs (flexion positive, ...) are
applied by the body model (``kinefuse.sim.body.JOINT_SIGNS``); the helpers here work on plain Cardan angles.

Everything is closed form; derivatives are exact (no finite differences).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "rot_x",
    "rot_y",
    "rot_z",
    "cardan_yxz",
    "yxz_from_matrix",
    "skew",
]


def _axis_rotation(angle: np.ndarray, axis: int) -> np.ndarray:
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*angle.shape, 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


def rot_x(angle: np.ndarray) -> np.ndarray:
    """Right-handed rotation about x by ``angle`` (rad); shape (..., 3, 3)."""
    return _axis_rotation(angle, 0)


def rot_y(angle: np.ndarray) -> np.ndarray:
    """Right-handed rotation about y by ``angle`` (rad); shape (..., 3, 3)."""
    return _axis_rotation(angle, 1)


def rot_z(angle: np.ndarray) -> np.ndarray:
    """Right-handed rotation about z by ``angle`` (rad); shape (..., 3, 3)."""
    return _axis_rotation(angle, 2)


def cardan_yxz(q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R = Ry(q0) Rx(q1) Rz(q2), its angular velocity and angular acceleration in the *parent* frame.

    With e1 = y, e2 = Ry(q0) x, e3 = Ry(q0) Rx(q1) z (the three joint axes in the parent frame):
        w  = e1 q0' + e2 q1' + e3 q2'
        w' = e1 q0'' + e2 q1'' + e3 q2'' + (e1 q0') x (e2 q1') + (e1 q0' + e2 q1') x (e3 q2')
    (the product rule on each axis, de_k/dt = w_k-so-far x e_k). Shapes (n, 3) in, (n, 3, 3), (n, 3), (n, 3) out.
    """
    q, qd, qdd = (np.asarray(v, dtype=np.float64) for v in (q, qd, qdd))
    ca, sa = np.cos(q[:, 0]), np.sin(q[:, 0])
    cb, sb = np.cos(q[:, 1]), np.sin(q[:, 1])
    cc, sc = np.cos(q[:, 2]), np.sin(q[:, 2])
    n = len(q)
    R = np.empty((n, 3, 3))
    R[:, 0, 0] = ca * cc + sa * sb * sc
    R[:, 0, 1] = -ca * sc + sa * sb * cc
    R[:, 0, 2] = sa * cb
    R[:, 1, 0] = cb * sc
    R[:, 1, 1] = cb * cc
    R[:, 1, 2] = -sb
    R[:, 2, 0] = -sa * cc + ca * sb * sc
    R[:, 2, 1] = sa * sc + ca * sb * cc
    R[:, 2, 2] = ca * cb
    zero = np.zeros(n)
    e1 = np.stack([zero, zero + 1.0, zero], axis=1)
    e2 = np.stack([ca, zero, -sa], axis=1)
    e3 = np.stack([sa * cb, -sb, ca * cb], axis=1)
    w1 = e1 * qd[:, 0:1]
    w2 = e2 * qd[:, 1:2]
    w3 = e3 * qd[:, 2:3]
    w = w1 + w2 + w3
    wd = e1 * qdd[:, 0:1] + e2 * qdd[:, 1:2] + e3 * qdd[:, 2:3] + np.cross(w1, w2) + np.cross(w1 + w2, w3)
    return R, w, wd


def yxz_from_matrix(R: np.ndarray) -> np.ndarray:
    """Cardan angles (n, 3) with R = Ry(a) Rx(b) Rz(c), b in [-pi/2, pi/2] (singular only at |b| = pi/2)."""
    R = np.asarray(R, dtype=np.float64)
    b = -np.arcsin(np.clip(R[:, 1, 2], -1.0, 1.0))
    a = np.arctan2(R[:, 0, 2], R[:, 2, 2])
    c = np.arctan2(R[:, 1, 0], R[:, 1, 1])
    return np.stack([a, b, c], axis=1)


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices (n, 3, 3) of vectors (n, 3): skew(v) @ u == cross(v, u)."""
    v = np.asarray(v, dtype=np.float64)
    out = np.zeros((*v.shape[:-1], 3, 3))
    out[..., 0, 1] = -v[..., 2]
    out[..., 0, 2] = v[..., 1]
    out[..., 1, 0] = v[..., 2]
    out[..., 1, 2] = -v[..., 0]
    out[..., 2, 0] = -v[..., 1]
    out[..., 2, 1] = v[..., 0]
    return out
