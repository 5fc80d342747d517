"""Initial and final contacts of each foot from the 3D keypoints, for an athlete with no strap on that foot:
the batch detector the ``gait`` processor runs over a window of motion items.

The coordinate method of Zeni, Richards & Higginson 2008 (Gait & Posture 27(4):710-714): along the
direction the athlete faces, a foot is farthest ahead of the pelvis at its initial contact (their heel
marker) and farthest behind it at its final contact (their toe marker). Positions relative to the pelvis make
it hold on a treadmill and over ground alike. Where the keypoint set has heels and big toes (HALPE-26) they
are Zeni's markers; with ankles only (COCO-17) the ankle stands for both, and its final contact comes early:
the ankle is farthest behind as the heel rises, before the toe leaves (``ankle_only``: the caller degrades it).

The facing direction is the hips' left-to-right line crossed with the body's up (from the ankles' midpoint
to the shoulders' over the window), averaged over ``FACING_S``: no calibration of the cameras' world to the
floor is needed. Contacts are given only inside gait, as from a strap (``strap_contacts.in_bouts``), and
only where the foot's excursion is a step's (``MIN_EXCURSION_M``): standing, squatting or turning on the
spot give none. Times are fractional sample indices (a parabola through a peak's three samples).

From one camera (``image_offsets``): the same method on the image. Ahead is along the image's x axis, towards
the way the athlete faces there (the nose ahead of the ears or eyes, ``planar_angles.facing``, frame by
frame, smoothed over ``FACING_S``: a walker crossing the view and turning back is followed). A camera square
to the walk sees the step's fore-aft excursion; one in front of the walker sees none, and then there are no
contacts (the excursion rule). Pixels are scaled to metres by the athlete's hip-to-ankle length in the image
taken as ``NOMINAL_LEG_M``: the contacts' times do not depend on the scale, only the excursion rule does.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks

from kinefuse_plugins.metrics.planar_angles import facing
from kinefuse_plugins.metrics.strap_contacts import (
    MAX_STRIDE_S,
    MIN_BOUT,
    MIN_STRIDE_S,
    Contacts,
    in_bouts,
    refine_peak,
)

FACING_S = 1.0  # the facing direction is averaged over this long (a stride): hip keypoints jitter
MIN_EXCURSION_M = 0.15  # a foot's fore-aft excursion about the pelvis must be at least this (a step's)
PROMINENCE_SHARE = 0.3  # a contact's peak stands out by this share of the window's excursion (p5 to p95)
NOMINAL_LEG_M = 0.85  # an adult's hip to ankle: one camera's pixels in metres, for the excursion rule only
FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")  # which way the athlete faces in an image


def foot_points(names: tuple[str, ...], side: str) -> tuple[str, str]:
    """The keypoints a foot's initial and final contacts are found on: heel and big toe, else the ankle."""
    if f"{side}_heel" in names and f"{side}_big_toe" in names:
        return f"{side}_heel", f"{side}_big_toe"
    return f"{side}_ankle", f"{side}_ankle"


def forward_offsets(points: dict[str, np.ndarray], rate_hz: float) -> dict[str, np.ndarray]:
    """Each of ``points`` (name -> (n, 3) positions, m, finite) as its distance ahead of the pelvis (the hips'
    midpoint) along the facing direction, (n,) m. ``points`` must hold both hips, shoulders and ankles."""
    pelvis = 0.5 * (points["left_hip"] + points["right_hip"])
    up = np.mean(0.5 * (points["left_shoulder"] + points["right_shoulder"] - points["left_ankle"]
                        - points["right_ankle"]), axis=0)  # fmt: skip
    across = uniform_filter1d(
        points["left_hip"] - points["right_hip"], max(int(FACING_S * rate_hz), 1), axis=0
    )
    facing = np.cross(across, up)
    facing /= np.linalg.norm(facing, axis=1, keepdims=True)
    return {name: np.einsum("ij,ij->i", where - pelvis, facing) for name, where in points.items()}


def image_offsets(points: dict[str, np.ndarray], rate_hz: float) -> dict[str, np.ndarray] | None:
    """One camera's view: each of ``points`` (name -> (n, 2) image positions, px; the body's finite, the face's
    NaN where unseen) as its distance ahead of the pelvis along the image's x axis towards the way the athlete
    faces, (n,) m at the scale of a ``NOMINAL_LEG_M`` leg; None where no frame's face tells the way."""
    n = len(points["left_hip"])
    way = np.array([facing({name: where[i] for name, where in points.items()}) for i in range(n)])
    if np.isnan(way).all():
        return None
    way = np.sign(uniform_filter1d(np.nan_to_num(way), max(int(FACING_S * rate_hz), 1)))
    pelvis = 0.5 * (points["left_hip"] + points["right_hip"])
    legs = [
        np.linalg.norm(points[f"{side}_hip"] - points[f"{side}_ankle"], axis=1) for side in ("left", "right")
    ]
    metres = NOMINAL_LEG_M / float(np.median(np.concatenate(legs)))
    return {name: (where[:, 0] - pelvis[:, 0]) * way * metres for name, where in points.items()
            if name not in FACE}  # fmt: skip


def detect_keypoint_contacts(initial_ahead: np.ndarray, final_ahead: np.ndarray, rate_hz: float) -> Contacts:
    """Each stride's final and initial contact of one foot in a window: ``initial_ahead`` (n,) the distance
    (m) its initial contact's keypoint is ahead of the pelvis, ``final_ahead`` its final contact's, uniformly
    sampled at ``rate_hz``."""
    excursion = float(np.percentile(initial_ahead, 95) - np.percentile(initial_ahead, 5))
    if excursion < MIN_EXCURSION_M:
        return Contacts(np.empty(0), np.empty(0), f"the foot moves {excursion * 100:.0f} cm fore and aft of the "
                        f"pelvis, under a step's {MIN_EXCURSION_M * 100:.0f}: not walking or running")  # fmt: skip
    peaks, _ = find_peaks(initial_ahead, prominence=PROMINENCE_SHARE * excursion,
                          distance=max(int(MIN_STRIDE_S * rate_hz), 1))  # fmt: skip
    peaks = peaks[in_bouts(peaks / rate_hz)] if len(peaks) else peaks
    if not len(peaks):
        why = f"no {MIN_BOUT} strides in a row {MIN_STRIDE_S}-{MAX_STRIDE_S} s apart: not walking or running"
        return Contacts(np.empty(0), np.empty(0), why)
    pairs = [(_final_before(final_ahead, peaks, k), refine_peak(initial_ahead, int(p)))
             for k, p in enumerate(peaks)]  # fmt: skip
    pairs = [(tc, ic) for tc, ic in pairs if np.isfinite(tc)]
    if not pairs:
        return Contacts(np.empty(0), np.empty(0), "no stride whose final contact lies inside the window")
    final, initial = (np.array(x, dtype=np.float64) for x in zip(*pairs, strict=True))
    return Contacts(initial, final)


def _final_before(final_ahead: np.ndarray, peaks: np.ndarray, k: int) -> float:
    """The final contact of the swing that ends at initial contact ``peaks[k]``: where the foot is farthest
    behind since the previous initial contact (for a bout's first, one stride before); NaN where that falls on
    the window's edge or the search reaches past it."""
    stride = int(peaks[k] - peaks[k - 1]) if k else int(peaks[1] - peaks[0])
    start = int(peaks[k]) - stride
    if start < 0:
        return np.nan
    behind = -final_ahead[start : int(peaks[k])]
    i = start + int(np.argmax(behind))
    if i in (start, int(peaks[k]) - 1):
        return np.nan
    return refine_peak(-final_ahead, i)
