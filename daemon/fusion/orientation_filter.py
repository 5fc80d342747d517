"""IMU orientation (kinefuse._ext.ahrs behind this thin wrapper): the VQF algorithm with gyroscope bias
estimation, rest detection and magnetic disturbance rejection, and the Madgwick and Mahony baselines.
docs/fusion.md describes each and its parameters."""

from __future__ import annotations

import numpy as np

from kinefuse._native import ahrs

OrientationFilter = ahrs.OrientationFilter
Madgwick = ahrs.Madgwick
Mahony = ahrs.Mahony
METHODS = ("vqf", "madgwick", "mahony")


def estimate_orientation(gyr, acc, mag=None, *, rate_hz: float, method: str = "vqf", **options) -> np.ndarray:
    """Orientation quaternions (n, 4; w, x, y, z; sensor to earth) of a whole recording: 9D with a
    magnetometer, else 6D (heading then drifts freely). ``options`` go to the filter."""
    gyr, acc = (np.ascontiguousarray(x, dtype=np.float64) for x in (gyr, acc))
    mag = None if mag is None else np.ascontiguousarray(mag, dtype=np.float64)
    if method == "vqf":
        out = OrientationFilter(rate_hz, **options).update_batch(gyr, acc, mag)
        return out["quat9d"] if mag is not None else out["quat6d"]
    if method == "madgwick":
        return Madgwick(rate_hz, **options).update_batch(gyr, acc, mag)
    if method == "mahony":
        return Mahony(rate_hz, **options).update_batch(gyr, acc, mag)
    raise ValueError(f"unknown orientation method {method!r}; expected one of {', '.join(METHODS)}")
