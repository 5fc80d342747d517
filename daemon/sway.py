"""Postural sway from one segment's orientations: its tilt from their mean and the measures of it, the
definitions the metrics plugin's ``sway`` processor and its scoring against the synthetic athlete's truth
(kinefuse.bench.scoring.sway_error) both use.

The tilt is the horizontal part of each orientation's rotation from the mean (the chordal mean, scipy's
``Rotation.mean``), in the world frame, resolved along the mean's forward (x) axis made horizontal into a
forward (AP) and a leftward (ML) angle in degrees. How far a segment turned does not depend on how a strap
sits on it: a strap's fixed mounting cancels from the rotation (only the AP/ML split uses the forward axis).
The measures follow those of centre-of-pressure sway (Prieto et al. 1996, IEEE Trans Biomed Eng
43(9):956-966), here of the tilt: RMS distance from the mean (total, AP, ML), mean velocity (path length over
time), and the 95 % confidence ellipse's area in its large-sample form, pi chi²(0.95; 2) sqrt(det C).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

CHI2_95_2DOF = 5.991  # the 95 % quantile of the chi-square distribution with 2 degrees of freedom
MEASURES = {"rms": "deg", "ap_rms": "deg", "ml_rms": "deg", "velocity": "deg/s", "area": "deg^2"}


def tilt(rotations: Rotation) -> np.ndarray:
    """Forward and leftward tilt (n, 2), deg, of segment-to-world ``rotations`` (z up) from their mean."""
    mean = rotations.mean()
    turned = (rotations * mean.inv()).as_rotvec()
    forward = mean.as_matrix()[:, 0].copy()
    forward[2] = 0.0
    forward /= np.linalg.norm(forward)
    left = np.cross([0.0, 0.0, 1.0], forward)
    # a turn about the left axis tips the top forward; about the forward axis, to the right
    return np.degrees(np.column_stack([turned @ left, -(turned @ forward)]))


def measures(path: np.ndarray, t: np.ndarray) -> dict[str, float]:
    """``MEASURES`` of a tilt path (n, 2) deg at times ``t`` (n,) s, and its ``range`` (deg: twice the largest
    distance from the mean)."""
    centred = path - path.mean(axis=0)
    distance = np.linalg.norm(centred, axis=1)
    return {
        "rms": float(np.sqrt(np.mean(distance**2))),
        "ap_rms": float(np.sqrt(np.mean(centred[:, 0] ** 2))),
        "ml_rms": float(np.sqrt(np.mean(centred[:, 1] ** 2))),
        "velocity": float(np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1)) / (t[-1] - t[0])),
        "area": float(np.pi * CHI2_95_2DOF * np.sqrt(max(np.linalg.det(np.cov(centred.T)), 0.0))),
        "range": float(2.0 * distance.max()),
    }
