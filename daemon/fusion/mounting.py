"""A strap's mounting on its segment: the rotation from the sensor frame to the segment frame.

A strap is never fastened exactly along the bone. kinefuse's segment frame (kinefuse.fusion.segments) has
x forward, y to the left and z up when standing, the long axis (proximal to distal) along -z; the mounting
is the segment-from-sensor rotation M (ω_sensor = Mᵀ ω_segment, the simulator's ``mounting_deg``).
Two kinds of data fix it:

* a static pose, standing upright: gravity in the sensor frame is the segment's z axis. It fixes two of the
  three angles (the segment's inclination); the rotation about the long axis stays unobserved.
* functional movement, walking: the shank and thigh rotate mostly about the knee's flexion axis, the
  segment's medio-lateral y axis, so the principal axis of the angular velocity (the first right singular
  vector of the gyroscope samples) is y up to sign (Seel, Raisch & Schauer 2014, "IMU-based joint angle
  measurement for gait analysis", Sensors 14:6891, axis identification; functional calibration as in Favre
  et al. 2009, "Functional calibration procedure for 3D knee joint angle description using inertial
  sensors", J Biomech 42:2330). That fixes two angles. The third, the rotation about y, comes from the
  mean specific force over the recording (many whole strides: the strap's mean acceleration is zero in
  steady walking), which is the world vertical in the sensor frame averaged over the stride, i.e. the
  segment's mean sagittal inclination, ``mean_pitch_deg``: assumed, not measured, so an error in it passes
  one to one into the rotation about y.

The sign of the axis, so which way is forward, follows anatomy, from two cues:

* the swing: the fastest rotation of a leg segment in walking is the swing, when its distal end moves
  forward, a negative rotation about +y (left): of the angular velocity's component along the axis, the 1st
  percentile is larger in magnitude than the 99th. Weak outside walking: in a lunge or a sit-to-stand both
  directions turn about as fast (1st over 99th percentile magnitude 1.17-1.30 for the synthetic athlete's
  shanks, against 1.42-1.83 for a walker's; 1.27 running), and a walker's thigh gives 1.05-1.11;
* the lean (with a static pose): a thigh leans forward of its standing inclination on average while it
  moves (the hip flexes: walking, running, squats, lunges, sit-to-stand), a shank with its knee ahead of its
  ankle (the ankle dorsiflexes, the knee flexes): the mean specific force of the moving samples, in the
  frame the static pose and the axis make, leans towards +x for a thigh and -x for a shank. Measured on the
  synthetic athlete: thighs +7 (walking) to +49 deg (lunge), shanks -16 to -61 deg, except a lunge's front
  shank (its knee over its ankle), -4.

The lean decides where it alone is clear (``min_lean_deg``), the swing where it alone is (``min_sign_cue``);
where neither is, or both are and disagree (the swing's sign is kept), an estimate that would be good is
degraded, saying forward may be backward. Where the lean alone tells it the movement is not walking, and
its main axis may not be the knee's flexion axis (a squat with valgus: the synthetic athlete's shanks'
mountings come out 11-12 deg off): degraded too, saying so, with its sign right, so that a knee from two
such straps is not mirrored.

The rotation is the solution of Wahba's problem (scipy's ``Rotation.align_vectors``) with the primary
vector held exactly: gravity from the static pose when there is one (then y only fixes the rotation about
the long axis), otherwise the flexion axis (then the mean specific force fixes the rotation about it).

Quality: ``insufficient`` with too few samples, too little rotation, no single dominant axis (ratio of the
first to the second singular value below ``min_axis_ratio``) or a flexion axis that wanders between parts
of the recording (its spread over ``blocks`` consecutive parts, a data-derived standard error, above
``max_axis_sigma_deg``); ``degraded`` when one angle is not measured (static only: rotation about the long
axis; walking only: rotation about the flexion axis, from the assumed mean pitch); ``good`` with both.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.types import STANDARD_GRAVITY as GRAVITY
from kinefuse.types import Quality, QualityLevel

_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])


@dataclasses.dataclass(frozen=True)
class MountingEstimate:
    mounting: np.ndarray | None  # (3, 3) segment-from-sensor rotation; None when insufficient
    quality: Quality
    fixed: str  # which angles the data fixes, in words
    axis: np.ndarray | None = None  # the flexion axis (segment +y) in the sensor frame
    axis_ratio: float = float("nan")  # first over second singular value of the angular velocity
    axis_sigma_deg: float = float("nan")  # standard error of the axis direction, from its spread over blocks

    @property
    def rotation(self) -> Rotation | None:
        return None if self.mounting is None else Rotation.from_matrix(self.mounting)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def flexion_axis(gyr, *, blocks: int = 6) -> tuple[np.ndarray, float, float, float, float]:
    """The principal axis of the angular velocity (n, 3) in the sensor frame, signed so that the swing
    (the fastest rotation) is negative about it; the ratio of the first to second singular value; the
    axis's standard error (deg) from its spread over ``blocks`` consecutive parts; the RMS rate about it;
    the sign's cue, the magnitude of the 1st percentile of the rate about it over its 99th's (>= 1)."""
    gyr = np.asarray(gyr, dtype=np.float64)
    gyr = gyr[np.isfinite(gyr).all(axis=1)]
    _, s, vt = np.linalg.svd(gyr, full_matrices=False)
    axis = vt[0]
    along = gyr @ axis
    low, high = np.percentile(along, [1.0, 99.0])
    if abs(low) < abs(high):
        axis, along, low, high = -axis, -along, -high, -low
    cue = float(abs(low) / abs(high)) if high != 0 else float("inf")
    ratio = float(s[0] / s[1]) if s[1] > 0 else float("inf")
    angles = []
    for part in np.array_split(gyr, blocks):
        if len(part) < 3:
            continue
        part_axis = np.linalg.svd(part, full_matrices=False)[2][0]
        angles.append(np.arccos(min(1.0, abs(float(part_axis @ axis)))))
    sigma = np.degrees(np.sqrt(np.mean(np.square(angles)) / len(angles))) if len(angles) > 1 else np.inf
    return axis, ratio, float(sigma), float(np.sqrt(np.mean(along**2))), cue


def estimate_mounting(gyr=None, acc=None, *, static_acc=None, mean_pitch_deg: float = 0.0,
                      min_samples: int = 200, min_rate: float = 0.3, min_axis_ratio: float = 2.0,
                      max_axis_sigma_deg: float = 5.0, blocks: int = 6,
                      max_static_deviation: float = 0.5, min_sign_cue: float = 0.0, lean_sign: float = 0.0,
                      min_lean_deg: float = 5.0) -> MountingEstimate:  # fmt: skip
    """Estimate a strap's mounting from walking (``gyr`` rad/s and ``acc`` m/s² specific force, (n, 3) in
    the sensor frame, several whole strides) and/or a static upright pose (``static_acc``, (m, 3)).

    ``mean_pitch_deg``: the segment's assumed mean sagittal inclination over the stride, as the angle of
    the mean world vertical in the segment frame from its z axis towards +x (used without a static pose).
    ``min_rate``: RMS angular rate (rad/s) about the axis below which there is too little movement (a
    consumer gyroscope's noise is about 0.01 rad/s, and the axis's spread over blocks guards its precision;
    a slow lunge's thigh turns 0.46 rad/s RMS, a walker's shank 2-3);
    ``min_axis_ratio``: first-to-second singular value ratio below which no single axis stands out;
    ``max_axis_sigma_deg``: the axis's standard error (from its spread over ``blocks`` parts) above
    which the axis is not trusted; ``max_static_deviation``: m/s², how far the static samples may stray
    from their mean and their norm from gravity; ``min_sign_cue``: the swing's cue (``flexion_axis``) below
    which the axis's sign, so the forward direction, is not trusted by it (0: always trusted);
    ``lean_sign``: the way the segment leans on average while it moves, +1 forward (a thigh), -1 backward
    (a shank), 0 unknown; ``min_lean_deg``: the mean lean (of ``acc``, with a static pose) from which it
    tells forward.
    """
    up = None
    if static_acc is not None:
        static_acc = np.asarray(static_acc, dtype=np.float64)
        static_acc = static_acc[np.isfinite(static_acc).all(axis=1)]
        if not len(static_acc):
            return _insufficient("insufficient data: no static samples")
        mean = static_acc.mean(axis=0)
        spread = float(np.sqrt(np.mean(np.sum((static_acc - mean) ** 2, axis=1))))
        if abs(np.linalg.norm(mean) - GRAVITY) > max_static_deviation or spread > max_static_deviation:
            return _insufficient(
                f"the static pose is not static: |mean| {np.linalg.norm(mean):.2f} m/s², spread {spread:.2f} m/s²"
            )
        up = _unit(mean)

    axis = None
    ratio = sigma = cue = float("nan")
    if gyr is not None:
        gyr = np.asarray(gyr, dtype=np.float64)
        if np.isfinite(gyr).all(axis=1).sum() < min_samples:
            return _insufficient(f"insufficient data: fewer than {min_samples} movement samples")
        axis, ratio, sigma, rate, cue = flexion_axis(gyr, blocks=blocks)
        if rate < min_rate:
            return _insufficient(f"too little rotation: {rate:.2f} rad/s RMS about the main axis")
        if ratio < min_axis_ratio:
            return _insufficient(
                f"the movement does not single out an axis: singular value ratio {ratio:.2f} < {min_axis_ratio}",
                axis, ratio, sigma,
            )  # fmt: skip
        if sigma > max_axis_sigma_deg:
            return _insufficient(
                f"the rotation axis wanders: standard error {sigma:.1f} deg > {max_axis_sigma_deg} deg",
                axis, ratio, sigma,
            )  # fmt: skip

    if up is not None and axis is not None:
        if abs(float(up @ axis)) > np.cos(np.radians(30.0)):
            return _insufficient("the rotation axis is close to the static vertical", axis, ratio, sigma)
        axis, quality = _signed(axis, up, acc, cue, min_sign_cue, lean_sign, min_lean_deg)
        rotation, _ = Rotation.align_vectors([_Z, _Y], [up, axis], weights=[np.inf, 1.0])
        return MountingEstimate(rotation.as_matrix(), quality, "all three angles", axis, ratio, sigma)
    if up is not None:
        rotation, _ = Rotation.align_vectors([_Z], [up])
        return MountingEstimate(
            rotation.as_matrix(),
            Quality(
                QualityLevel.DEGRADED, "static pose only: the rotation about the long axis is not observed"
            ),
            "inclination (two angles); not the rotation about the long axis",
        )
    if axis is None:
        return _insufficient("insufficient data: neither a static pose nor movement")
    if acc is None:
        return _insufficient("insufficient data: movement without the specific force", axis, ratio, sigma)
    acc = np.asarray(acc, dtype=np.float64)
    mean_up = np.nanmean(acc, axis=0)
    if not np.isfinite(mean_up).all() or np.linalg.norm(np.cross(mean_up, axis)) < 0.5 * GRAVITY:
        return _insufficient("the mean specific force is not across the rotation axis", axis, ratio, sigma)
    pitch = np.radians(mean_pitch_deg)
    segment_up = np.array([np.sin(pitch), 0.0, np.cos(pitch)])
    rotation, _ = Rotation.align_vectors([_Y, segment_up], [axis, mean_up], weights=[np.inf, 1.0])
    return MountingEstimate(
        rotation.as_matrix(),
        Quality(
            QualityLevel.DEGRADED,
            f"walking only: the rotation about the flexion axis assumes a mean pitch of {mean_pitch_deg:g} deg",
        ),
        "the flexion axis (two angles); the rotation about it from the assumed mean pitch",
        axis, ratio, sigma,
    )  # fmt: skip


def mean_lean_deg(axis: np.ndarray, up: np.ndarray, acc) -> float:
    """How far the mean specific force of ``acc`` (n, 3) leans from the static ``up`` towards the forward
    direction that ``axis`` (the segment's y, signed) makes with it (x = y cross z), in degrees."""
    mean = np.nanmean(np.asarray(acc, dtype=np.float64), axis=0)
    forward = _unit(np.cross(axis, up))
    return float(np.degrees(np.arctan2(mean @ forward, mean @ up)))


def _signed(axis, up, acc, cue: float, min_sign_cue: float, lean_sign: float, min_lean_deg: float):
    """The flexion axis signed by the lean where it alone is clear, else as the swing signed it, and the
    estimate's quality: good only where the swing is clear (walking) and the lean, if clear, agrees."""
    swing = cue >= min_sign_cue
    lean = mean_lean_deg(axis, up, acc) if lean_sign and acc is not None and len(acc) else float("nan")
    if abs(lean) < min_lean_deg or not np.isfinite(lean):
        if swing:
            return axis, Quality(QualityLevel.GOOD)
        if np.isfinite(lean):
            return axis, _backward(
                f"neither the swing (cue {cue:.2f} < {min_sign_cue:g}) nor the mean lean "
                f"({lean:+.1f} deg, under {min_lean_deg:g}) tells forward from backward"
            )
        return axis, _backward(
            f"the swing does not tell forward from backward (cue {cue:.2f} < {min_sign_cue:g})"
        )
    agrees = np.sign(lean) == np.sign(lean_sign)
    if swing and agrees:
        return axis, Quality(QualityLevel.GOOD)
    if swing:
        return axis, _backward(
            f"the swing (cue {cue:.2f}) and the mean lean ({lean:+.1f} deg) disagree on forward"
        )
    return (axis if agrees else -axis), Quality(QualityLevel.DEGRADED, (
        f"the swing does not tell forward (cue {cue:.2f} < {min_sign_cue:g}), the mean lean does "
        f"({abs(lean):.1f} deg): the axis is this movement's main one, which is off the knee's flexion axis "
        f"where the joint also abducts or rotates (a squat's valgus)"))  # fmt: skip


def _backward(why: str) -> Quality:
    return Quality(QualityLevel.DEGRADED, f"{why}: the heading may be 180 deg off")


def _insufficient(reason: str, axis=None, ratio=float("nan"), sigma=float("nan")) -> MountingEstimate:
    return MountingEstimate(None, Quality(QualityLevel.INSUFFICIENT, reason), "nothing", axis, ratio, sigma)
