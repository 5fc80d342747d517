"""Stride length from a foot strap: strapdown integration from one rest of the foot in stance to the next,
with zero-velocity updates at both (Foxlin 2005, "Pedestrian tracking with shoe-mounted inertial sensors",
IEEE Computer Graphics and Applications 25(6):38-46), less the gyroscope's bias from the strap's standing
still (a consumer strap's turn-on bias of 5 deg/s, uncorrected, made the synthetic walker's strides 6 cm
long: the tilt it integrates leaks gravity into the acceleration).

The foot is still for a moment in each stance; the stillest sample, the minimum of the gyroscope's energy
in the stance (Rampp et al. 2015, IEEE Trans Biomed Eng 62(4):1089-1097, whose strides run from one such
sample to the next), is the rest. From one rest to the next: the tilt from the specific force at the first
(the foot is still: it is gravity's reaction), the orientation by integrating the gyroscope, the
acceleration turned into that world less gravity and integrated to a velocity, which is made zero at both
rests by taking out a drift linear in time, and integrated again: the displacement's horizontal part is
the stride's length. The rest sample matters: on the gaitmap recording, rests from the IMU's own signal
gave 3.1-3.7 cm median |error| on 1.3 m strides, rests taken from the motion capture 5.8 (docs/metrics.md).

Hand-written: the integration is a few lines of numpy (the orientation kinefuse.fusion.strapdown's), and
the packages that do it (gaitmap) are AGPL.
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import cumulative_trapezoid
from scipy.ndimage import uniform_filter1d
from scipy.spatial.transform import Rotation

from kinefuse.fusion.strapdown import integrate_gyro
from kinefuse.types import STANDARD_GRAVITY

# the gyroscope's energy is averaged over this long before its minimum is taken (0.02-0.2 s gave 3.4-3.8 cm
# on the gaitmap recording)
REST_WINDOW_S = 0.1
STANDING_S, STILL_RAD_S, STILL_MPS2 = 1.0, 0.03, 0.5  # standing still, for the gyroscope's bias


def rest_sample(gyr: np.ndarray, start: float, stop: float, rate_hz: float) -> int | None:
    """The stillest sample (index into ``gyr``, (n, 3) rad/s) from ``start`` up to ``stop`` (fractional
    indices: a stance, from the initial contact to the next final contact); None where that is empty."""
    first, last = max(int(np.ceil(start)), 0), min(int(np.floor(stop)), len(gyr))
    if last - first < 1:
        return None
    energy = uniform_filter1d(np.sum(gyr**2, axis=1), max(int(round(REST_WINDOW_S * rate_hz)), 1))
    return first + int(np.argmin(energy[first:last]))


def standing_bias(gyr: np.ndarray, acc: np.ndarray, rate_hz: float) -> np.ndarray | None:
    """The gyroscope's bias (3,) rad/s: its mean over the first ``STANDING_S`` the strap stands still (its
    rate steady within ``STILL_RAD_S`` on each axis, its specific force gravity's within ``STILL_MPS2``); None
    where it never does. A rest in stance is too short and not still enough for it: on the gaitmap recording
    the mean rate over the stance's rests, taken as the bias, doubled the stride error."""
    size = max(int(round(STANDING_S * rate_hz)), 2)
    for start in range(0, len(gyr) - size + 1, max(size // 4, 1)):
        rate, force = gyr[start : start + size], np.linalg.norm(acc[start : start + size], axis=1)
        if rate.std(axis=0).max() < STILL_RAD_S and np.abs(force - STANDARD_GRAVITY).max() < STILL_MPS2:
            return rate.mean(axis=0)
    return None


def stride_displacement(
    acc: np.ndarray, gyr: np.ndarray, rate_hz: float, gyr_bias=(0.0, 0.0, 0.0)
) -> np.ndarray:
    """The foot's displacement (3,) m, in a world with z up, from its first sample to its last, both at rest:
    ``acc`` (n, 3) m/s² specific force and ``gyr`` (n, 3) rad/s in the sensor frame, less ``gyr_bias``."""
    acc, gyr = np.asarray(acc, dtype=np.float64), np.asarray(gyr, dtype=np.float64) - gyr_bias
    tilt, _ = Rotation.align_vectors([[0.0, 0.0, 1.0]], [acc[0]])
    # each step turns by the mean rate over its sample period; the first sample is the rest itself
    rates = np.vstack([np.zeros(3), (gyr[1:] + gyr[:-1]) / 2.0])
    orientation = integrate_gyro(rates, rate_hz, tilt.as_quat(scalar_first=True))
    world = Rotation.from_quat(orientation, scalar_first=True).apply(acc) - [0.0, 0.0, STANDARD_GRAVITY]
    velocity = cumulative_trapezoid(world, dx=1.0 / rate_hz, axis=0, initial=0.0)
    velocity -= np.outer(np.linspace(0.0, 1.0, len(velocity)), velocity[-1])  # zero at both rests
    return cumulative_trapezoid(velocity, dx=1.0 / rate_hz, axis=0, initial=0.0)[-1]
