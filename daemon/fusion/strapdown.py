"""Pure gyroscope strapdown integration: the no-fusion baseline every orientation filter must beat (the
benches), and a foot strap's orientation between two rests (the metrics plugin's stride length).

q_k = q0 ⊗ Δq_0 ⊗ … ⊗ Δq_k with Δq_j = exp(ω_j Δt / 2) = (cos(|ω_j| Δt / 2), sin(|ω_j| Δt / 2) ω_j / |ω_j|),
the exact rotation for a rate ω_j (sensor frame, rad/s) held constant over one sample period. Output k
is the orientation after sample k, as a filter reports it after its update with sample k.
"""

from __future__ import annotations

import numpy as np


def quat_multiply(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product p ⊗ q of (…, 4) arrays, broadcasting."""
    pw, px, py, pz = np.moveaxis(np.asarray(p, dtype=np.float64), -1, 0)
    qw, qx, qy, qz = np.moveaxis(np.asarray(q, dtype=np.float64), -1, 0)
    return np.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        axis=-1,
    )


def integrate_gyro(gyr: np.ndarray, rate_hz: float, q0: np.ndarray = (1.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """(n, 4) unit quaternions w, x, y, z (sensor -> reference) from (n, 3) angular rates in rad/s."""
    gyr = np.asarray(gyr, dtype=np.float64)
    if gyr.ndim != 2 or gyr.shape[1] != 3:
        raise ValueError(f"gyr must be (n, 3) rad/s, got shape {gyr.shape}")
    if not rate_hz > 0:
        raise ValueError(f"rate_hz must be positive, got {rate_hz}")
    q0 = np.asarray(q0, dtype=np.float64)
    if q0.shape != (4,):
        raise ValueError(f"q0 must be one quaternion (w, x, y, z), got shape {q0.shape}")
    half_angle = np.linalg.norm(gyr, axis=1) / (2.0 * rate_hz)
    # sin(h)/|ω| written with np.sinc (sin(πx)/(πx)) stays exact as |ω| -> 0
    steps = np.column_stack(
        [np.cos(half_angle), gyr * (np.sinc(half_angle / np.pi) / (2.0 * rate_hz))[:, None]]
    )
    return quat_multiply(q0 / np.linalg.norm(q0), _prefix_products(steps))


def _prefix_products(q: np.ndarray) -> np.ndarray:
    """P_k = q_0 ⊗ … ⊗ q_k by a doubling scan (Hillis & Steele 1986): log2(n) vectorised passes instead of n
    Python steps, and each output is a product tree of depth log2(n), so rounding grows with log n, not n."""
    out = q.copy()
    offset = 1
    while offset < len(out):
        out[offset:] = quat_multiply(out[:-offset], out[offset:])
        offset *= 2
    return out / np.linalg.norm(out, axis=1, keepdims=True)
