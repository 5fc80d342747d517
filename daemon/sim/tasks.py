"""Closed-chain tasks of the synthetic athlete: squat, sit-to-stand, lunge, single-leg balance, drop landing.

Each task is one repetition, repeated for ever (``Motion.period_s``). The design fixes the pelvis (its
position and tilt), the trunk and arms, and where each planted foot is; the legs then follow by inverse
kinematics (``planted_leg``), so planted feet do not move at all, and the knee angles are a consequence of
the pelvis path. Depth is solved so that the peak knee flexion hits the design (``_TARGET_KNEE_DEG``,
scaled by ``knee_rom_scale`` and moved by ``knee_flexion_change_deg_per_week`` x ``session_week``), which
is what a clinician would measure changing over weeks.

These tasks are designed here from plausible ranges, not from a data set: squat to about 100 deg knee
flexion with the hips moving back and the trunk leaning forward (Schoenfeld, "Squatting kinematics and
kinetics", J Strength Cond Res 24:3497, 2010, describes the pattern); sit-to-stand from a seat at knee
height (about 90 deg); a forward lunge to about 90 deg in the lead knee with the rear heel raised; quiet
single-leg stance with about a degree of postural sway; drop landing from ``drop_height_m`` with contact at
about 35 deg knee flexion and peak flexion near 80 deg (Hewett et al., Am J Sports Med 33:492, 2005, for
landing with knee valgus). Flight in the drop landing is exactly ballistic; the feet touch down and lift
off with zero velocity and acceleration relative to the floor (they slow down over ``_TOUCHDOWN_S`` by
the knees flexing from nearly straight in the air), so contact is C2 as everything else in the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.optimize import brentq

from kinefuse.sim.body import BodyShape
from kinefuse.sim.motion import (
    Motion,
    Periodic,
    align,
    curves_from_samples,
    joint_angles_of,
    joint_rotation,
    knee_target,
    quintic_hermite,
    smoothstep,
)
from kinefuse.sim.rotations import rot_y

GRAVITY = 9.81
SIDES = ("left", "right")
_TOUCHDOWN_S = 0.04
_CONTACT_KNEE_DEG = 35.0
_AIR_KNEE_DEG = 5.0
_RECOVERY_KNEE_DEG = 15.0  # between landing and push-off (leaves room for the knee valgus)
_STANDING_KNEE_DEG = 5.0

_TARGET_KNEE_DEG = {"squat": 100.0, "sit_to_stand": 90.0, "lunge": 90.0, "drop_landing": 80.0}
_DEFAULT_PERIOD_S = {
    "squat": 4.0,
    "sit_to_stand": 6.0,
    "lunge": 4.0,
    "single_leg_balance": 10.0,
    "drop_landing": 2.0,
}
# controls each task accepts besides rep_period_s, trunk_lean_deg and the knee range controls
TASK_CONTROLS = {
    "squat": ("knee_valgus_deg",),
    "sit_to_stand": (),
    "lunge": ("lead_leg",),
    "single_leg_balance": ("stance_leg", "sway_deg"),
    "drop_landing": ("knee_valgus_deg", "drop_height_m"),
}
COMMON_CONTROLS = (
    "rep_period_s",
    "trunk_lean_deg",
    "knee_rom_scale",
    "knee_flexion_change_deg_per_week",
    "session_week",
)


def _ramp_profile(phase: np.ndarray, knots: list[tuple[float, float]]) -> np.ndarray:
    """A C2 profile through (phase, level) knots with smoothstep transitions between consecutive knots;
    phases in [0, 1] ascending, the first at 0 and the last at 1 with the same level (periodic)."""
    phase = np.mod(phase, 1.0)
    out = np.full_like(phase, knots[0][1])
    for (p0, v0), (p1, v1) in zip(knots[:-1], knots[1:], strict=True):
        if p1 > p0 and v1 != v0:
            out = out + (v1 - v0) * smoothstep((phase - p0) / (p1 - p0))
    return out


def _side_sign(side: str) -> float:
    return 1.0 if side == "left" else -1.0


def planted_leg(
    shape: BodyShape,
    side: str,
    pelvis: np.ndarray,
    root: np.ndarray,
    ankle_target: np.ndarray,
    foot_R: np.ndarray,
    knee_adduction: np.ndarray,
    reach_tolerance_m: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hip, knee and ankle angles (n, 3) that put ``side``'s ankle at ``ankle_target`` (n, 3, travel frame)
    with the foot oriented ``foot_R`` (3, 3 or n, 3, 3) and the knee's adduction given (n,), for a pelvis
    with clinical angles ``pelvis`` (n, 3) and origin ``root`` (n, 3).

    Knee flexion from the hip-ankle distance (|d|² = Lt² + Ls² + 2 Lt Ls cos f cos b); the thigh turns from
    the pelvis's orientation by the smallest rotation that points the leg at the target (the knee stays in
    the plane of the pelvis's forward axis); the ankle takes up the rest of the foot's orientation. A target
    beyond reach by up to ``reach_tolerance_m`` is reached short with a straight knee; further raises."""
    thigh, shank = shape.thigh_length, shape.shank_length
    R_pelvis = joint_rotation("pelvis", pelvis)
    hip_centre = root + R_pelvis @ shape.joint_offset(f"{side}_thigh")
    target = ankle_target - hip_centre
    length2 = np.sum(target * target, axis=1)
    reach = np.sqrt(thigh**2 + shank**2 + 2 * thigh * shank * np.cos(knee_adduction))
    excess = float((np.sqrt(length2) - reach).max(initial=0.0))
    if excess > reach_tolerance_m:
        raise ValueError(
            f"{side} leg cannot reach its foot: {excess * 1000:.1f} mm beyond a {reach.min():.3f} m leg"
        )
    cos_f = (length2 - thigh**2 - shank**2) / (2 * thigh * shank * np.cos(knee_adduction))
    cos_f = np.clip(cos_f, -1.0, 1.0)
    knee = np.stack([np.arccos(cos_f), knee_adduction, np.zeros_like(cos_f)], axis=1)
    R_knee = joint_rotation(f"{side}_knee", knee)
    reach_in_thigh = np.array([0.0, 0.0, -thigh]) + R_knee @ np.array([0.0, 0.0, -shank])
    reach = np.einsum("nij,nj->ni", R_pelvis, reach_in_thigh)
    R_thigh = align(reach, target) @ R_pelvis
    hip = joint_angles_of(f"{side}_hip", np.swapaxes(R_pelvis, 1, 2) @ R_thigh)
    R_shank = R_thigh @ R_knee
    ankle = joint_angles_of(f"{side}_ankle", np.swapaxes(R_shank, 1, 2) @ foot_R)
    return hip, knee, ankle


def _standing_height(
    shape: BodyShape, lateral: float, forward: float = 0.0, knee_deg: float = _STANDING_KNEE_DEG
) -> float:
    """Hip-centre height above the ankle that leaves the knee flexed ``knee_deg`` with the ankle
    ``lateral`` and ``forward`` of the hip."""
    t, s = shape.thigh_length, shape.shank_length
    reach2 = t * t + s * s + 2 * t * s * math.cos(math.radians(knee_deg))
    return math.sqrt(reach2 - lateral * lateral - forward * forward)


class _Design:
    """What a task fixes over one repetition, sampled on the motion's grid."""

    def __init__(self, t: np.ndarray) -> None:
        n = len(t)
        self.t = t
        self.pelvis = np.zeros((n, 3))  # tilt, obliquity, rotation (rad)
        self.root = np.zeros((n, 3))
        self.lumbar = np.zeros((n, 3))
        self.arms = {side: (np.zeros((n, 3)), np.zeros((n, 3))) for side in SIDES}  # shoulder, elbow
        self.feet: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # side -> (ankle target (n, 3), foot R)
        self.free_legs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.knee_adduction = {side: np.zeros(n) for side in SIDES}

    def joint_samples(self, shape: BodyShape) -> dict[str, np.ndarray]:
        out = {"pelvis": self.pelvis, "lumbar": self.lumbar}
        # the neck keeps the head level and facing the travel direction
        out["neck"] = np.stack(
            [
                -(self.pelvis[:, 0] + self.lumbar[:, 0]),
                self.pelvis[:, 1] - self.lumbar[:, 1],
                -(self.pelvis[:, 2] + self.lumbar[:, 2]),
            ],
            axis=1,
        )
        for side in SIDES:
            if side in self.feet:
                target, foot_R = self.feet[side]
                hip, knee, ankle = planted_leg(
                    shape, side, self.pelvis, self.root, target, foot_R, self.knee_adduction[side]
                )
            else:
                hip, knee, ankle = self.free_legs[side]
            out[f"{side}_hip"], out[f"{side}_knee"], out[f"{side}_ankle"] = hip, knee, ankle
            out[f"{side}_shoulder"], out[f"{side}_elbow"] = self.arms[side]
        return out


def _sagittal(values: np.ndarray) -> np.ndarray:
    return np.stack([values, np.zeros_like(values), np.zeros_like(values)], axis=1)


def _set_arms(design: _Design, shoulder_deg: np.ndarray, elbow_deg: np.ndarray, abduction_deg: float) -> None:
    for side in SIDES:
        shoulder = _sagittal(np.radians(shoulder_deg))
        shoulder[:, 1] = -math.radians(abduction_deg)
        design.arms[side] = (shoulder, _sagittal(np.radians(elbow_deg)))


def _stance_feet(design: _Design, shape: BodyShape, half_width: float) -> None:
    n = len(design.t)
    for side in SIDES:
        ankle = np.array([0.0, _side_sign(side) * half_width, shape.ankle_height])
        design.feet[side] = (np.tile(ankle, (n, 1)), np.eye(3))


def _lowering(kind: str, shape: BodyShape, u: np.ndarray, depth: float, controls: Mapping) -> _Design:
    """Squat or sit-to-stand: a depth profile s(u) in [0, 1], hips back and down, trunk forward."""
    if kind == "squat":
        s = _ramp_profile(u, [(0.0, 0.0), (0.15, 0.0), (0.45, 1.0), (0.55, 1.0), (0.85, 0.0), (1.0, 0.0)])
        back, tilt, lean, arms = 0.30, 20.0, 15.0, 80.0
    else:  # seated at the start and the end, standing in between
        s = _ramp_profile(u, [(0.0, 1.0), (0.2, 1.0), (0.45, 0.0), (0.7, 0.0), (0.95, 1.0), (1.0, 1.0)])
        back, tilt, lean, arms = 0.45, 5.0, 5.0, 10.0
    design = _Design(u)
    half_width = shape.hip_separation / 2 + 0.02 * shape.height_m
    _stance_feet(design, shape, half_width)
    standing = shape.ankle_height + _standing_height(shape, half_width - shape.hip_separation / 2)
    design.root[:, 0] = -back * depth * s
    design.root[:, 2] = standing - depth * s
    design.pelvis[:, 0] = np.radians(tilt) * s
    transition = np.abs(np.gradient(s, u)) if kind == "sit_to_stand" else np.zeros_like(s)
    extra_lean = 30.0 * transition / max(float(transition.max()), 1e-9) if kind == "sit_to_stand" else 0.0
    trunk = math.radians(float(controls.get("trunk_lean_deg", 0.0)))
    design.lumbar[:, 0] = trunk + np.radians(lean * s + extra_lean)
    valgus = math.radians(float(controls.get("knee_valgus_deg", 0.0)))
    for side in SIDES:
        design.knee_adduction[side] = -valgus * s
    _set_arms(design, arms * s, 10.0 + 20.0 * s, 8.0)
    return design


def _lunge(shape: BodyShape, u: np.ndarray, depth: float, controls: Mapping) -> _Design:
    lead = str(controls.get("lead_leg", "right"))
    if lead not in SIDES:
        raise ValueError(f"lead_leg must be 'left' or 'right', got {lead!r}")
    s = _ramp_profile(u, [(0.0, 0.0), (0.2, 0.0), (0.45, 1.0), (0.55, 1.0), (0.8, 0.0), (1.0, 0.0)])
    design = _Design(u)
    n = len(u)
    stride = 0.30 * shape.height_m / 2  # each ankle this far ahead of or behind the pelvis
    half_width = shape.hip_separation / 2
    rear_R = rot_y(np.radians(30.0))  # rear heel raised: foot pitched 30 deg toe-down
    for side in SIDES:
        forward = stride if side == lead else -stride
        ankle = np.array([forward, _side_sign(side) * half_width, shape.ankle_height])
        foot_R = np.eye(3)
        if side != lead:
            toe = np.array([forward + 0.8 * shape.foot_length, ankle[1], 0.0])
            ankle = toe - rear_R @ shape.toe_offset
            foot_R = rear_R
        design.feet[side] = (np.tile(ankle, (n, 1)), foot_R)
    standing = min(
        target[0, 2] + _standing_height(shape, 0.0, abs(target[0, 0])) for target, _ in design.feet.values()
    )
    design.root[:, 2] = standing - depth * s
    trunk = math.radians(float(controls.get("trunk_lean_deg", 0.0)))
    design.lumbar[:, 0] = trunk
    _set_arms(design, np.zeros(n), np.full(n, 15.0), 10.0)
    return design


def _single_leg_balance(shape: BodyShape, u: np.ndarray, controls: Mapping) -> _Design:
    stance = str(controls.get("stance_leg", "left"))
    if stance not in SIDES:
        raise ValueError(f"stance_leg must be 'left' or 'right', got {stance!r}")
    free = "right" if stance == "left" else "left"
    sway = math.radians(float(controls.get("sway_deg", 1.0)))
    design = _Design(u)
    n = len(u)
    side = _side_sign(stance)
    ankle = np.array([0.0, side * shape.hip_separation / 2, shape.ankle_height])
    design.feet[stance] = (np.tile(ankle, (n, 1)), np.eye(3))
    height = _standing_height(shape, 0.0)
    # postural sway: an inverted pendulum about the ankle, two frequencies per axis within the period
    ap = sway * (0.7 * np.sin(2 * np.pi * u) + 0.3 * np.sin(2 * np.pi * 5 * u + 1.0))
    ml = 0.6 * sway * (0.6 * np.sin(2 * np.pi * 2 * u + 0.5) + 0.4 * np.sin(2 * np.pi * 7 * u))
    hitched = side * math.radians(-3.0)  # the free side's hip a little higher
    # the body leans as one (the ankle strategy of quiet stance: Winter 1995, Gait Posture 3(4):193-214):
    # the pelvis, and the trunk on it, tilt with the pendulum, forward by ap and towards the left by ml
    design.pelvis[:, 0] = ap
    design.pelvis[:, 1] = hitched - ml
    # the stance hip on the pendulum, its leg's length from the ankle; the pelvis hangs from it as turned
    lean = np.stack([np.sin(ap) * np.cos(ml), np.sin(ml), np.cos(ap) * np.cos(ml)], axis=1)
    hip = ankle + height * lean
    design.root = hip - joint_rotation("pelvis", design.pelvis) @ shape.joint_offset(f"{stance}_thigh")
    trunk = math.radians(float(controls.get("trunk_lean_deg", 0.0)))
    design.lumbar[:, 0] = trunk
    design.lumbar[:, 1] = hitched  # the trunk upright over the hitched pelvis (the neck's sign convention)
    design.free_legs[free] = (
        _sagittal(np.full(n, math.radians(30.0))),
        _sagittal(np.full(n, math.radians(60.0))),
        _sagittal(np.full(n, math.radians(-10.0))),
    )
    _set_arms(design, np.zeros(n), np.full(n, 15.0), 25.0)
    return design


def _drop_timeline(period: float, height: float) -> tuple[float, float, float]:
    """(landing time, take-off time, take-off speed): apex at 0, ballistic fall, contact, ballistic rise."""
    fall = math.sqrt(2 * height / GRAVITY)
    contact = period - 2 * fall
    if contact < 0.8:
        raise ValueError(
            f"drop_landing: rep_period_s={period:g} leaves {contact:.2f} s on the floor after two "
            f"{fall:.2f} s flights from drop_height_m={height:g}; at least 0.8 s is needed"
        )
    return fall, fall + contact, GRAVITY * fall


def _contact_knots(
    t_land: float, t_off: float, speed: float, contact_z: float, stand_z: float, depth: float
) -> list[tuple[float, float, float, float]]:
    """(time, height, vertical velocity, acceleration) of the pelvis on the floor: land, absorb to the
    bottom, stand up, hold, dip again and push off; quintics join them."""
    absorb = 2.0 * depth / speed  # as long as a uniform deceleration from the landing speed would take
    free = (t_off - t_land) - 2 * absorb
    if free < 0.3:
        raise ValueError(
            f"drop_landing: {t_off - t_land:.2f} s on the floor is too short to absorb {depth:.2f} m and "
            "push off again; make rep_period_s longer"
        )
    rise = min(0.4, free / 2.5)
    bottom = contact_z - depth
    return [
        (t_land, contact_z, -speed, -GRAVITY),
        (t_land + absorb, bottom, 0.0, 0.0),
        (t_land + absorb + rise, stand_z, 0.0, 0.0),
        (t_off - absorb - rise, stand_z, 0.0, 0.0),
        (t_off - absorb, bottom, 0.0, 0.0),
        (t_off, contact_z, speed, -GRAVITY),
    ]


def _feet_height(
    t: np.ndarray, t_land: float, contact_z: float, extension: float, height: float
) -> np.ndarray:
    """Height of the soles above the floor at ``t`` (time since the apex) in the fall: legs ``extension``
    longer than at contact (knees near straight) until ``_TOUCHDOWN_S`` before landing, then a quintic that
    brings the feet to rest on the floor as the knees flex to their contact angle."""
    start = t_land - _TOUCHDOWN_S
    drop_before_window = GRAVITY * t_land * _TOUCHDOWN_S - 0.5 * GRAVITY * _TOUCHDOWN_S**2
    if drop_before_window <= extension or height <= extension:
        raise ValueError(
            f"drop_landing: drop_height_m={height:g} is too low for the legs to reach down and land; "
            f"use at least {2 * extension:.2f} m"
        )
    out = np.zeros_like(t)
    air = t < start
    out[air] = height - 0.5 * GRAVITY * t[air] ** 2 - extension
    window = (t >= start) & (t < t_land)
    pelvis_at_start = (
        height - 0.5 * GRAVITY * start**2 - extension,
        -GRAVITY * start,
        -GRAVITY,
    )
    out[window] = quintic_hermite(t[window] - start, _TOUCHDOWN_S, pelvis_at_start, (0.0, 0.0, 0.0))
    return out


def _drop_landing(shape: BodyShape, u: np.ndarray, depth: float, controls: Mapping, period: float) -> _Design:
    height = float(controls.get("drop_height_m", 0.30))
    t_land, t_off, speed = _drop_timeline(period, height)
    t = u * period
    design = _Design(u)
    half_width = shape.hip_separation / 2 + 0.01 * shape.height_m
    _stance_feet(design, shape, half_width)
    lateral = half_width - shape.hip_separation / 2
    contact_z = shape.ankle_height + _standing_height(shape, lateral, knee_deg=_CONTACT_KNEE_DEG)
    stand_z = shape.ankle_height + _standing_height(shape, lateral, knee_deg=_RECOVERY_KNEE_DEG)
    z = np.empty_like(t)
    before, after = t < t_land, t > t_off
    z[before] = contact_z + height - 0.5 * GRAVITY * t[before] ** 2
    z[after] = contact_z + height - 0.5 * GRAVITY * (period - t[after]) ** 2
    knots = _contact_knots(t_land, t_off, speed, contact_z, stand_z, depth)
    for (t0, *start), (t1, *end) in zip(knots, knots[1:], strict=False):
        inside = (t >= t0) & (t <= t1)
        z[inside] = quintic_hermite(t[inside] - t0, t1 - t0, tuple(start), tuple(end))
    design.root[:, 2] = z
    air_z = shape.ankle_height + _standing_height(shape, lateral, knee_deg=_AIR_KNEE_DEG)
    feet_z = _feet_height(np.minimum(t, period - t), t_land, contact_z, air_z - contact_z, height)
    for side in SIDES:
        target, foot_R = design.feet[side]
        lifted = target.copy()
        lifted[:, 2] += feet_z
        design.feet[side] = (lifted, foot_R)
    landing = np.zeros_like(t)
    on_floor = (t >= t_land) & (t <= t_off)
    landing[on_floor] = np.sin(np.pi * (t[on_floor] - t_land) / (t_off - t_land)) ** 3
    valgus = math.radians(float(controls.get("knee_valgus_deg", 0.0)))
    for side in SIDES:
        design.knee_adduction[side] = -valgus * landing
    design.pelvis[:, 0] = np.radians(15.0) * landing
    trunk = math.radians(float(controls.get("trunk_lean_deg", 0.0)))
    design.lumbar[:, 0] = trunk + np.radians(20.0) * landing
    _set_arms(design, 30.0 + 20.0 * landing, 30.0 + 10.0 * landing, 20.0)
    return design


def _design(kind: str, shape: BodyShape, u: np.ndarray, depth: float, controls: Mapping, period: float):
    if kind in ("squat", "sit_to_stand"):
        return _lowering(kind, shape, u, depth, controls)
    if kind == "lunge":
        return _lunge(shape, u, depth, controls)
    if kind == "drop_landing":
        return _drop_landing(shape, u, depth, controls, period)
    return _single_leg_balance(shape, u, controls)


def _peak_knee(samples: Mapping[str, np.ndarray], sides: tuple[str, ...]) -> float:
    return max(float(samples[f"{side}_knee"][:, 0].max()) for side in sides)


def task_motion(kind: str, shape: BodyShape, controls: Mapping[str, object]) -> Motion:
    """The closed-chain task ``kind`` (see the module docstring) for ``shape``."""
    period = float(controls.get("rep_period_s", _DEFAULT_PERIOD_S[kind]))
    t = Periodic.grid(period)
    u = t / period
    info: dict[str, object] = {"rep_period_s": period}
    if kind in _TARGET_KNEE_DEG:
        target = knee_target(math.radians(_STANDING_KNEE_DEG), math.radians(_TARGET_KNEE_DEG[kind]), controls)

        sides = (str(controls.get("lead_leg", "right")),) if kind == "lunge" else SIDES

        def knee_error(depth: float) -> float:
            samples = _design(kind, shape, u, depth, controls, period).joint_samples(shape)
            return _peak_knee(samples, sides) - target

        depth = brentq(knee_error, 0.01 * shape.height_m, 0.40 * shape.height_m, xtol=1e-9)
        info.update(depth_m=depth, peak_knee_flexion_deg=math.degrees(target))
    else:
        depth = 0.0
    design = _design(kind, shape, u, depth, controls, period)
    curves = curves_from_samples(period, design.joint_samples(shape))
    root_xy = Periodic.from_samples(period, design.root[:, :2])
    root_z = Periodic.from_samples(period, design.root[:, 2:])
    events: tuple[tuple[str, str, float], ...] = ()
    if kind == "drop_landing":
        t_land, t_off, _ = _drop_timeline(period, float(controls.get("drop_height_m", 0.30)))
        events = tuple((side, k, time) for k, time in (("ic", t_land), ("tc", t_off)) for side in SIDES)
    return Motion(kind, controls, shape, period, curves, root_xy, root_z, events, info)
