"""The synthetic athlete's body: a 13-segment rigid-body chain driven by a Motion, with exact kinematics.

Frames and units
----------------
World: x forward (the direction of travel at heading 0), y left, z up, metres; gravity (0, 0, -9.81) m/s².
Every segment frame is aligned with the world in neutral standing (x anterior, y left, z up) and has its
origin at the segment's proximal joint: pelvis at the mid-point of the hip joint centres, trunk at the
lumbosacral joint, head at the neck joint (the base of the neck, level with the shoulder joints), thigh at
the hip, shank at the knee, foot at the ankle, upper arm at the shoulder, forearm at the elbow. Times ``t``
are numpy arrays of true time in seconds.

Joints and angles
-----------------
Each joint is three Cardan angles (flexion, adduction, rotation) in the ISB joint-coordinate-system order
(Grood & Suntay 1983; Wu et al. 2002, J Biomech 35:543; Wu et al. 2005, J Biomech 38:981): the relative
rotation parent->child is ``Ry(sf*a0) · Rx(sa*a1) · Rz(sr*a2)`` (intrinsic y-x'-z'', see
``kinefuse.sim.rotations``), where (sf, sa, sr) = ``JOINT_SIGNS[joint]`` turn the right-handed rotations
about the body's axes into the clinical signs below. Radians in the API, degrees in ``joint_angles``.

=============  ===============================  ================================  ===========================
joint          angle 0 (about y)                angle 1 (about floating x)        angle 2 (about distal z)
=============  ===============================  ================================  ===========================
pelvis         anterior tilt +                  obliquity +: left hip up          rotation +: facing left
lumbar, neck   flexion + (leans forward)        lateral bending + to the left     axial rotation + to the left
hip            flexion +                        adduction +                       internal rotation +
knee           flexion +                        adduction (varus) +; valgus -     internal rotation +
ankle          dorsiflexion +                   inversion +                       internal rotation (toe-in) +
shoulder       flexion +                        adduction +                       internal rotation +
elbow          flexion +                        adduction (varus) +               pronation +
=============  ===============================  ================================  ===========================

The pelvis angles are relative to the motion's travel frame (the world turned by ``heading_rad`` about z).
The shoulder uses the same flexion-adduction-rotation Cardan sequence as the other joints rather than the
ISB's y-x-y humerothoracic sequence, which is singular with the arm hanging at the side.

Anthropometry
-------------
Segment lengths are fractions of body height H from Winter, "Biomechanics and Motor Control of Human
Movement", 4th ed. (2009), Fig. 4.1 (after Drillis & Contini 1966): ankle height 0.039 H, knee 0.285 H,
hip 0.530 H, shoulder 0.818 H, chin 0.870 H, eyes 0.936 H; thigh 0.245 H, shank 0.246 H, upper arm 0.186 H,
forearm 0.146 H, hand 0.108 H, foot length 0.152 H, foot width 0.055 H, hip width 0.191 H, shoulder width
0.259 H. Model choices (not from Winter): the hip joint centres are half the hip width apart (0.0955 H,
0.167 m at 1.75 m, close to the 0.33·pelvic width + 7.3 mm per side of Harrington et al. 2007, J Biomech
40:595, for a 0.23 m inter-ASIS width), the shoulder joint centres 0.8 of the shoulder width apart, the
lumbosacral joint 0.06 H above the hip centres, the heel 0.2 and the toe tip 0.8 of the foot length
behind/ahead of the ankle on the sole, the head landmarks at the offsets in ``BodyShape.head_landmarks``
(tragion-to-tragion 0.084 H, interpupillary 0.036 H), and the capsule radii in ``BodyShape.radius``.
Everything scales linearly with height.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from kinefuse.joint_angles import CHAIN, JOINT_SIGNS
from kinefuse.sim.rotations import cardan_yxz, rot_z
from kinefuse.types import SEGMENTS

if TYPE_CHECKING:
    from kinefuse.sim.motion import Motion, StandingStart, TimeWarp

GRAVITY = np.array([0.0, 0.0, -9.81])


# each segment's joint with its parent (kinefuse.joint_angles.CHAIN, shared with the joint-angle metrics: one
# definition of the angles); the pelvis is the root, driven by joint "pelvis"
JOINTS = tuple(CHAIN[s][1] for s in SEGMENTS)


def _side_sign(side: str) -> float:
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    return 1.0 if side == "left" else -1.0


@dataclasses.dataclass(frozen=True)
class BodyShape:
    """Segment lengths and landmark offsets (metres) of an adult of ``height_m``, scaled from Winter (2009)."""

    height_m: float = 1.75

    def __post_init__(self) -> None:
        if not 0.5 <= self.height_m <= 2.6:
            raise ValueError(f"height_m must be between 0.5 and 2.6 m, got {self.height_m}")

    # --- lengths (Winter 2009, Fig. 4.1) -------------------------------------------------------------
    @property
    def ankle_height(self) -> float:
        return 0.039 * self.height_m

    @property
    def knee_height(self) -> float:
        return 0.285 * self.height_m

    @property
    def hip_height(self) -> float:
        """Height of the hip joint centres in neutral standing."""
        return 0.530 * self.height_m

    @property
    def shoulder_height(self) -> float:
        return 0.818 * self.height_m

    @property
    def thigh_length(self) -> float:
        return self.hip_height - self.knee_height  # 0.245 H

    @property
    def shank_length(self) -> float:
        return self.knee_height - self.ankle_height  # 0.246 H

    @property
    def leg_length(self) -> float:
        """Hip joint centre to the floor in neutral standing."""
        return self.hip_height

    @property
    def upper_arm_length(self) -> float:
        return 0.186 * self.height_m

    @property
    def forearm_length(self) -> float:
        return 0.146 * self.height_m

    @property
    def hand_length(self) -> float:
        return 0.108 * self.height_m

    @property
    def foot_length(self) -> float:
        return 0.152 * self.height_m

    @property
    def foot_width(self) -> float:
        return 0.055 * self.height_m

    @property
    def hip_width(self) -> float:
        """Bitrochanteric width (Winter's hip width)."""
        return 0.191 * self.height_m

    @property
    def shoulder_width(self) -> float:
        return 0.259 * self.height_m

    # --- model choices ------------------------------------------------------------------------------
    @property
    def hip_separation(self) -> float:
        """Distance between the hip joint centres: half the hip width."""
        return 0.5 * self.hip_width

    @property
    def shoulder_separation(self) -> float:
        """Distance between the shoulder joint centres: 0.8 of the shoulder width."""
        return 0.8 * self.shoulder_width

    @property
    def lumbar_height(self) -> float:
        """Lumbosacral joint above the hip centres."""
        return 0.06 * self.height_m

    @property
    def trunk_length(self) -> float:
        """Lumbosacral joint to the neck joint (shoulder level)."""
        return self.shoulder_height - self.hip_height - self.lumbar_height

    @property
    def heel_offset(self) -> np.ndarray:
        """The heel's lowest point in the foot frame (on the sole, behind the ankle)."""
        return np.array([-0.2 * self.foot_length, 0.0, -self.ankle_height])

    @property
    def toe_offset(self) -> np.ndarray:
        """The tip of the big toe in the foot frame (on the sole)."""
        return np.array([0.8 * self.foot_length, 0.0, -self.ankle_height])

    @property
    def head_landmarks(self) -> dict[str, np.ndarray]:
        """Head landmarks in the head frame (origin at the neck joint); the left ones, y > 0."""
        h = self.height_m
        return {
            "nose": np.array([0.062, 0.0, 0.090]) * h,
            "left_eye": np.array([0.047, 0.018, 0.118]) * h,
            "right_eye": np.array([0.047, -0.018, 0.118]) * h,
            "left_ear": np.array([0.0, 0.042, 0.105]) * h,
            "right_ear": np.array([0.0, -0.042, 0.105]) * h,
            "chin": np.array([0.055, 0.0, 0.052]) * h,
            "head_top": np.array([0.010, 0.0, 0.182]) * h,
        }

    @property
    def radius(self) -> dict[str, float]:
        """Capsule radius of each segment."""
        h = self.height_m
        return {
            "pelvis": 0.060 * h,
            "trunk": 0.085 * h,
            "head": 0.055 * h,
            "thigh": 0.040 * h,
            "shank": 0.028 * h,
            "foot": 0.020 * h,
            "upper_arm": 0.025 * h,
            "forearm": 0.020 * h,
        }

    def joint_offset(self, segment: str) -> np.ndarray:
        """Where ``segment``'s origin (its proximal joint) sits in its parent's frame."""
        if segment == "pelvis":
            return np.zeros(3)
        if segment == "trunk":
            return np.array([0.0, 0.0, self.lumbar_height])
        if segment == "head":
            return np.array([0.0, 0.0, self.trunk_length])
        side, _, part = segment.partition("_")
        s = _side_sign(side)
        if part == "thigh":
            return np.array([0.0, s * self.hip_separation / 2, 0.0])
        if part == "shank":
            return np.array([0.0, 0.0, -self.thigh_length])
        if part == "foot":
            return np.array([0.0, 0.0, -self.shank_length])
        if part == "upper_arm":
            return np.array([0.0, s * self.shoulder_separation / 2, self.trunk_length])
        if part == "forearm":
            return np.array([0.0, 0.0, -self.upper_arm_length])
        raise ValueError(f"unknown segment {segment!r}; expected one of {', '.join(SEGMENTS)}")

    def landmark_offsets(self) -> dict[str, tuple[str, np.ndarray]]:
        """Every landmark as (segment, offset in that segment's frame)."""
        out: dict[str, tuple[str, np.ndarray]] = {"pelvis_centre": ("pelvis", np.zeros(3))}
        out["lumbosacral"] = ("trunk", np.zeros(3))
        out["neck"] = ("head", np.zeros(3))
        for name, offset in self.head_landmarks.items():
            out[name] = ("head", offset)
        for side in ("left", "right"):
            s = _side_sign(side)
            out[f"{side}_hip"] = (f"{side}_thigh", np.zeros(3))
            out[f"{side}_knee"] = (f"{side}_shank", np.zeros(3))
            out[f"{side}_ankle"] = (f"{side}_foot", np.zeros(3))
            out[f"{side}_heel"] = (f"{side}_foot", self.heel_offset)
            out[f"{side}_toe"] = (f"{side}_foot", self.toe_offset)
            out[f"{side}_small_toe"] = (
                f"{side}_foot",
                np.array([0.62 * self.foot_length, s * 0.4 * self.foot_width, -self.ankle_height]),
            )
            out[f"{side}_shoulder"] = (f"{side}_upper_arm", np.zeros(3))
            out[f"{side}_elbow"] = (f"{side}_forearm", np.zeros(3))
            out[f"{side}_wrist"] = (f"{side}_forearm", np.array([0.0, 0.0, -self.forearm_length]))
        return out

    def capsule_offsets(self) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
        """Each segment's capsule as (start, end) in the segment frame and a radius."""
        r = self.radius
        h = self.height_m
        z = np.zeros(3)
        out = {
            "pelvis": (
                np.array([0.0, self.hip_separation / 2, 0.0]),
                np.array([0.0, -self.hip_separation / 2, 0.0]),
                r["pelvis"],
            ),
            "trunk": (
                np.array([0.0, 0.0, 0.02 * h]),
                np.array([0.0, 0.0, self.trunk_length - 0.03 * h]),
                r["trunk"],
            ),
            "head": (np.array([0.02 * h, 0.0, 0.070 * h]), np.array([0.02 * h, 0.0, 0.127 * h]), r["head"]),
        }
        for side in ("left", "right"):
            out[f"{side}_thigh"] = (z, np.array([0.0, 0.0, -self.thigh_length]), r["thigh"])
            out[f"{side}_shank"] = (z, np.array([0.0, 0.0, -self.shank_length]), r["shank"])
            lift = np.array([0.0, 0.0, r["foot"]])
            out[f"{side}_foot"] = (self.heel_offset + lift, self.toe_offset + lift, r["foot"])
            out[f"{side}_upper_arm"] = (z, np.array([0.0, 0.0, -self.upper_arm_length]), r["upper_arm"])
            out[f"{side}_forearm"] = (z, np.array([0.0, 0.0, -self.forearm_length]), r["forearm"])
        return out


@dataclasses.dataclass(frozen=True)
class SegmentState:
    """A segment's exact kinematics at n times.

    R: (n, 3, 3) world-from-segment rotation; omega, alpha: (n, 3) angular velocity (rad/s) and angular
    acceleration (rad/s², the time derivative of omega) in the segment frame; position, velocity,
    acceleration: (n, 3) of the segment origin in the world (m, m/s, m/s²).
    """

    R: np.ndarray
    omega: np.ndarray
    alpha: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray

    @property
    def omega_world(self) -> np.ndarray:
        return np.einsum("nij,nj->ni", self.R, self.omega)

    @property
    def alpha_world(self) -> np.ndarray:
        """d/dt of omega_world (which equals R·alpha: the frame's own rotation adds w x w = 0)."""
        return np.einsum("nij,nj->ni", self.R, self.alpha)

    def point(self, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World position, velocity and acceleration of a point fixed in this segment."""
        r = self.R @ np.asarray(offset, dtype=np.float64)
        w = self.omega_world
        wd = self.alpha_world
        return (
            self.position + r,
            self.velocity + np.cross(w, r),
            self.acceleration + np.cross(wd, r) + np.cross(w, np.cross(w, r)),
        )


@dataclasses.dataclass(frozen=True)
class GaitEvent:
    side: str  # "left" | "right"
    kind: str  # "ic" (initial contact) | "tc" (toe-off, terminal contact)
    time_s: float


def chain_kinematics(
    shape: BodyShape,
    angles: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    root: tuple[np.ndarray, np.ndarray, np.ndarray],
    heading_rad: float = 0.0,
    origin_xy: tuple[float, float] = (0.0, 0.0),
    segments: tuple[str, ...] = SEGMENTS,
) -> dict[str, SegmentState]:
    """Forward kinematics of the chain (and of every segment on the way to those asked for).

    ``angles[joint]`` = clinical angles, rates and accelerations (n, 3) in rad, rad/s, rad/s²;
    ``root`` = position, velocity and acceleration (n, 3) of the pelvis origin in the travel frame.
    R, omega and alpha propagate by R_c = R_p R_j, w_c = w_p + R_p w_j, w_c' = w_p' + w_p x (R_p w_j)
    + R_p w_j' (w_j, w_j' the joint's own rate in the parent frame, from ``cardan_yxz``), and origins by
    o_c = o_p + R_p d, o_c' = o_p' + w_p x r, o_c'' = o_p'' + w_p' x r + w_p x (w_p x r), r = R_p d,
    all in the world frame.
    """
    needed: list[str] = []
    for name in segments:
        chain = []
        seg: str | None = name
        while seg is not None and seg not in needed and seg not in chain:
            if seg not in CHAIN:
                raise ValueError(f"unknown segment {seg!r}; expected one of {', '.join(SEGMENTS)}")
            chain.append(seg)
            seg = CHAIN[seg][0]
        needed.extend(reversed(chain))
    heading = rot_z(np.asarray(heading_rad, dtype=np.float64))
    p0, v0, a0 = (np.asarray(x, dtype=np.float64) for x in root)
    world: dict[str, tuple[np.ndarray, ...]] = {}
    for name in needed:
        parent, joint = CHAIN[name]
        q, qd, qdd = angles[joint]
        signs = np.array(JOINT_SIGNS[joint])
        Rj, wj, wdj = cardan_yxz(q * signs, qd * signs, qdd * signs)
        if parent is None:
            R = heading @ Rj
            w = wj @ heading.T
            wd = wdj @ heading.T
            p = p0 @ heading.T + np.array([origin_xy[0], origin_xy[1], 0.0])
            v = v0 @ heading.T
            a = a0 @ heading.T
        else:
            Rp, wp, wdp, pp, vp, ap = world[parent]
            R = Rp @ Rj
            wj_world = np.einsum("nij,nj->ni", Rp, wj)
            w = wp + wj_world
            wd = wdp + np.cross(wp, wj_world) + np.einsum("nij,nj->ni", Rp, wdj)
            r = Rp @ shape.joint_offset(name)
            p = pp + r
            v = vp + np.cross(wp, r)
            a = ap + np.cross(wdp, r) + np.cross(wp, np.cross(wp, r))
        world[name] = (R, w, wd, p, v, a)
    out = {}
    for name in needed:
        R, w, wd, p, v, a = world[name]
        Rt = np.swapaxes(R, 1, 2)
        out[name] = SegmentState(
            R=R,
            omega=np.einsum("nij,nj->ni", Rt, w),
            alpha=np.einsum("nij,nj->ni", Rt, wd),
            position=p,
            velocity=v,
            acceleration=a,
        )
    return out


class Body:
    """A person of ``shape`` performing ``motion``, placed at ``origin_xy`` and walking towards ``heading_rad``
    (counter-clockwise from +x). If ``motion`` was made for another shape it is remade for this one with
    the same controls (so a taller person asked for 1.4 m/s still walks at 1.4 m/s, feet planted). On a
    ``treadmill`` the mean travel is taken out: the body stays in place (fixed cameras keep it in view),
    the belt carries the stance foot backwards, and every acceleration is unchanged.

    ``time_warp`` (a ``kinefuse.sim.motion.TimeWarp``) plays the periodic motion at its time τ(t): every
    angle and the pelvis's travel are the motion's at τ, their rates scaled by τ' and their accelerations
    p''(τ)τ'² + p'(τ)τ'', so everything stays exact and the feet stay planted (a planted foot's place does
    not depend on time, warped or not); the gait events are the motion's, mapped back through the inverse
    warp. The treadmill's belt keeps its constant speed (the mean travel taken out is the belt's times the
    true time), so a walker whose strides vary drifts a little forward and back on the belt, as people do.

    ``standing_start`` (a ``kinefuse.sim.motion.StandingStart``): the person first stands still in neutral
    standing (every joint angle 0, the pelvis at hip height above the floor), then the motion fades in; its
    clock c(t) runs under the time warp (τ = warp(c)), the belt speeds up with it (the belt's travel is its
    speed times c), and the gait events are those after the blend."""

    def __init__(
        self,
        shape: BodyShape,
        motion: Motion,
        origin_xy: tuple[float, float] = (0.0, 0.0),
        heading_rad: float = 0.0,
        treadmill: bool = False,
        time_warp: TimeWarp | None = None,
        standing_start: StandingStart | None = None,
    ) -> None:
        self.shape = shape
        self.standing_start = standing_start
        self.treadmill = treadmill
        self.motion = motion if motion.shape == shape else motion.for_shape(shape)
        self.origin_xy = (float(origin_xy[0]), float(origin_xy[1]))
        self.heading_rad = float(heading_rad)
        if (
            time_warp is not None
            and abs(time_warp.period - self.motion.period_s) > 1e-9 * self.motion.period_s
        ):
            raise ValueError(
                f"the time warp's stride ({time_warp.period} s) is not the motion's ({self.motion.period_s} s)"
            )
        self.time_warp = time_warp
        self._cache: tuple[bytes, dict[str, SegmentState]] | None = None

    # --- kinematics ---------------------------------------------------------------------------------
    def _times(self, t) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if t.ndim != 1:
            raise ValueError(f"t must be a 1-D array of times, got shape {t.shape}")
        return t

    def clock(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The motion's clock c before the time warp, with dc/dt and d²c/dt² (t, 1, 0 without a standing
        start)."""
        t = self._times(t)
        if self.standing_start is None:
            return t, np.ones_like(t), np.zeros_like(t)
        return self.standing_start.clock(t)

    def motion_time(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The motion's time τ at true times ``t``, with dτ/dt and d²τ/dt² (t, 1 and 0 without a warp and
        without a standing start)."""
        c, c1, c2 = self.clock(t)
        if self.time_warp is None:
            return c, c1, c2
        tau, rate, curvature = self.time_warp(c)
        return tau, rate * c1, curvature * c1**2 + rate * c2

    def _blend(self, t: np.ndarray, curve, neutral) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A curve (value, rate, acceleration) faded in from ``neutral`` by the standing start's weight w:
        n + w (p - n), its rate w' (p - n) + w p', its acceleration w'' (p - n) + 2 w' p' + w p''."""
        if self.standing_start is None:
            return curve
        w, w1, w2 = (x[:, None] for x in self.standing_start.weight(t))
        p, v, a = curve
        d = p - neutral
        return neutral + w * d, w1 * d + w * v, w2 * d + 2 * w1 * v + w * a

    @staticmethod
    def _chain_rule(curve, rate, curvature) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A curve's value, rate and acceleration at τ(t) turned into d/dt: p, p'τ', p''τ'² + p'τ''."""
        p, v, a = curve
        return p, v * rate[:, None], a * (rate**2)[:, None] + v * curvature[:, None]

    def _angles(self, t: np.ndarray, joints) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        tau, rate, curvature = self.motion_time(t)
        return {j: self._blend(t, self._chain_rule(self.motion.angles(j, tau), rate, curvature), 0.0)
                for j in joints}  # fmt: skip

    def _root(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tau, rate, curvature = self.motion_time(t)
        position, velocity, acceleration = self._chain_rule(self.motion.root(tau), rate, curvature)
        if self.treadmill:
            c, c1, c2 = self.clock(t)
            belt = self.motion.travel_velocity
            position, velocity = position - c[:, None] * belt, velocity - c1[:, None] * belt
            acceleration = acceleration - c2[:, None] * belt
        return self._blend(t, (position, velocity, acceleration), self._standing_root())

    def _standing_root(self) -> np.ndarray:
        """The pelvis origin standing: where the motion starts, at hip height (straight legs, feet flat)."""
        start = self.motion.root(self.motion_time(np.zeros(1))[0])[0][0]
        return np.array([start[0], start[1], self.shape.hip_height])

    def segments(self, t) -> dict[str, SegmentState]:
        """All segments at times ``t`` (the last call's result is reused for the same ``t``)."""
        t = self._times(t)
        key = hashlib.blake2b(t.tobytes(), digest_size=16).digest()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        states = chain_kinematics(
            self.shape,
            self._angles(t, JOINTS),
            self._root(t),
            self.heading_rad,
            self.origin_xy,
        )
        self._cache = (key, states)
        return states

    def segment(self, name: str, t) -> SegmentState:
        """One segment's exact state at times ``t`` (see ``SegmentState``)."""
        if name not in CHAIN:
            raise ValueError(f"unknown segment {name!r}; expected one of {', '.join(SEGMENTS)}")
        t = self._times(t)
        if self._cache is not None:
            key = hashlib.blake2b(t.tobytes(), digest_size=16).digest()
            if self._cache[0] == key:
                return self._cache[1][name]
        joints = []
        seg: str | None = name
        while seg is not None:
            joints.append(CHAIN[seg][1])
            seg = CHAIN[seg][0]
        states = chain_kinematics(
            self.shape,
            self._angles(t, joints),
            self._root(t),
            self.heading_rad,
            self.origin_xy,
            segments=(name,),
        )
        return states[name]

    def point(self, segment: str, offset_in_segment, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World position, velocity and acceleration (n, 3) of a point fixed in ``segment``."""
        return self.segment(segment, t).point(np.asarray(offset_in_segment, dtype=np.float64))

    def landmarks(self, t) -> dict[str, np.ndarray]:
        """World positions (n, 3) of joint centres, feet and head landmarks: every keypoint name of
        ``kinefuse.sim.detector_model.KEYPOINT_SETS`` and more (``left_heel``, ``left_toe``, ``left_small_toe``,
        ``neck``, ``head_top``, ``chin``, ``pelvis_centre``, ``lumbosacral``, the same for the right)."""
        states = self.segments(t)
        out = {}
        for name, (segment, offset) in self.shape.landmark_offsets().items():
            state = states[segment]
            out[name] = state.position + state.R @ offset
        return out

    def landmark_velocities(self, t) -> dict[str, np.ndarray]:
        """World velocities (n, 3) of the landmarks."""
        states = self.segments(t)
        return {
            name: states[segment].point(offset)[1]
            for name, (segment, offset) in self.shape.landmark_offsets().items()
        }

    def capsules(self, t) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
        """Each segment's volume as a capsule: start (n, 3), end (n, 3) in the world, radius (m)."""
        states = self.segments(t)
        out = {}
        for name, (start, end, radius) in self.shape.capsule_offsets().items():
            state = states[name]
            out[name] = (state.position + state.R @ start, state.position + state.R @ end, radius)
        return out

    def joint_angles(self, t) -> dict[str, np.ndarray]:
        """The true joint angles (n, 3) in degrees, (flexion, adduction, rotation) with the signs in the
        module docstring, for every joint (hip, knee, ankle per side, lumbar, shoulder, elbow, and also
        pelvis and neck)."""
        return {j: np.degrees(curve[0]) for j, curve in self._angles(self._times(t), JOINTS).items()}

    def gait_events(self, t_start: float, t_end: float) -> list[GaitEvent]:
        """Initial contacts and toe-offs with t_start <= time < t_end, in time order. They are the instants
        the kinematics put the heel on (``ic``) and take the toe off (``tc``) the floor (through the time
        warp, when there is one); empty for tasks without them (squat, lunge, sit-to-stand, balance). Drop
        landings report both feet's landing (``ic``) and take-off (``tc``)."""
        out = []
        period = self.motion.period_s
        tau_start, tau_end = self.motion_time(np.array([t_start, t_end], dtype=np.float64))[0]
        for side, kind, phase_time in self.motion.event_times:
            k0 = int(np.floor((tau_start - phase_time) / period)) - 1
            k1 = int(np.ceil((tau_end - phase_time) / period)) + 1
            taus = phase_time + np.arange(k0, k1 + 1) * period
            times = self._true_times(taus)
            out += [GaitEvent(side, kind, float(time)) for time in times if t_start <= time < t_end]
        out.sort(key=lambda e: (e.time_s, e.side, e.kind))
        return out

    def _true_times(self, taus: np.ndarray) -> np.ndarray:
        """The true times of motion times ``taus``; with a standing start only those after its blend (NaN
        for the others: the blend's steps are not gait events)."""
        clock = taus if self.time_warp is None else self.time_warp.inverse(taus)
        if self.standing_start is None:
            return clock
        start = self.standing_start
        after = clock >= self.clock(np.array([start.end_s]))[0][0]
        return np.where(after, start.inverse(np.maximum(clock, 0.0)), np.nan)
