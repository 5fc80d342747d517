"""Walking: Perry & Burnfield's normative joint curves (``_WALK``) on a designed pelvis path, the legs
solved onto planted feet.

The reference walk
------------------
Joint angles come from published curves. Carried by the feet (foot-locked: the stance foot's contact point,
rolling from the heel to the toe tip by the foot's pitch, does not move and touches z = 0; in double
support the pelvis is handed over from the trailing to the leading foot over ``_HANDOVER`` of the stride
before contact), they give a *reference* walk: its contact instants (the swinging heel's closest approach
to the floor; toe-off a stance fraction later), where its heels land, how its feet pitch, its travel. The
hip range is solved so that the stride is two steps of the step length asked for; ``step_asymmetry``
splits it between the sides (a left-long split is built as the mirror image of the right-long one,
``Motion.mirrored``).

The reference is not what the athlete does: normative curves are not consistent with a rigid foot, so
its pelvis path has a corner at every contact (the vertical velocity jumps by about 0.9 m/s and the
forward one by 0.6-0.8 m/s within the double support), its stance foot rolls with its heel a centimetre
off the floor in mid stance and slides 6 cm backwards over the stance, and its trailing toe still moves
at 2 m/s at toe-off. Played as it was (with the pelvis blended between the feet's constraints and the
trailing leg re-posed by inverse kinematics), that made the pelvis strap read 4 g at each contact and
the shank 13 g at each toe-off (docs/simulation.md, "Realism of the IMU signals").

The designed walk
-----------------
``_Walker`` builds what is played, from the reference:

- Stance feet planted, rigid: the foot lands on its heel where the normative swing puts it, pitched as the
  reference's foot is, rocks about the fixed heel at the rate that shortens the leg as fast as the
  normative knee flexes (``_contact_jet``), comes to rest flat (C2), stays flat until the heel rises
  (``_HEEL_RISE``: Perry's terminal stance, 31 % of the cycle), then pivots about the fixed toe tip to its
  toe-off state (``_toe_off_jet``): the reference's pitch, turning at the rate at which a foot rolling
  over its toe moves its ankle as the normative swing moves it there (``_TOE_OFF_TURN`` of the way from the
  reference's own, much slower, rate). The quintic from the flat foot to that state lifts the heel slowly
  at first and fast at the end, as real feet do, and keeps the trailing leg long through terminal stance.
- Pelvis surge: a linear inverted pendulum over the centre of pressure (Kajita et al., "The 3D linear
  inverted pendulum mode", IROS 2001): x'' = (g / h)(x - p), p moving from the heel at contact to the toe
  tip at toe-off and handed from foot to foot over double support, solved harmonic by harmonic for its
  periodic motion; its stride harmonic is the reference's (which carries a left-right difference), a least
  stride-harmonic correction keeps the step lengths exactly the reference's, and its mean sits
  ``_PENDULUM_MEAN`` of the way from the reference's place to the centre of pressure's (the pendulum's own,
  where the mean forward force is zero).
- Pelvis sway: the same pendulum across (Kajita's 3D mode treats both axes alike), so the pelvis is over
  the stance foot in single support and crosses the midline in double support (the reference's sway,
  carried by the feet, was leftmost at the left heel's landing and moved right through the left stance,
  away from the foot it stood on: see docs/simulation.md, "Lateral sway").
- Pelvis height: the periodic path nearest the height that lets the planted legs carry it with their knees
  bent ``_CARRYING_KNEE_DEG``, penalised by its vertical acceleration (``_HEIGHT_SMOOTHING``), and never
  higher than a knee bent ``_STRAIGHTEST_KNEE_DEG`` allows (``_smooth_below``: a quadratic programme with
  bounds).
- Legs: inverse kinematics onto the planted feet in stance (``kinefuse.sim.tasks.planted_leg``). The swing
  starts from the leg solved onto the toe-off state: each joint joins the normative swing by a quintic in
  time from its mismatch at toe-off (value, rate, acceleration) to zero (``_lift_off``): the knee by the
  normative knee's peak flexion, which is thereby the swing's (and the knee-range controls keep their
  meaning), the hip over ``_LIFT_OFF`` of the swing, the ankle within ``_TURN_OVER_S`` (the foot stops
  turning toe-down). The foot then follows the normative swing (under the designed pelvis) and settles
  onto its landing (``_touch_down``): each joint, again in joint space, by a quintic in time from zero to
  its mismatch with the leg solved onto the contact state over ``_TOUCH_DOWN_S``, so the foot leaves and
  lands exactly as the stance design says (C2). (Settled in the foot's place instead, the ankle's path
  swung out beyond the nearly straight leg's reach before contact, and the knee, solved from the
  hip-ankle distance, snapped from straight: an 18 g spike in the shank of the longer-stance leg.) The
  swinging toe clears the floor by ``_TOE_CLEARANCE_M`` by dorsiflexing the foot (a softplus of the
  shortfall, faded in after toe-off and out before contact), not by bending the knee; a heel the normative
  swing would put into the floor before contact is lifted out of it (``_ramp``).
Contact and toe-off are the reference's instants, exact by construction.

Running is built differently (``kinefuse.sim.running``): normative running curves in this foot-locked
chain make the pelvis rise through stance, the opposite of what runners do, so there the pelvis is
designed from a spring-mass model and the legs follow by inverse kinematics.

Sources
-------
- Walking: landmark values of sagittal hip, knee and ankle angles over the gait cycle (initial contact,
  loading response, mid stance, terminal stance, pre-swing, initial/mid/terminal swing; toe-off at 62 %)
  read from the normal curves of Perry & Burnfield, "Gait Analysis: Normal and Pathological Function",
  2nd ed. (2010), chs. 4-7, with the pelvic and frontal-plane hip patterns of Kadaba, Ramakrishnan &
  Wootten, "Measurement of lower extremity kinematics during level walking", J Orthop Res 8:383 (1990).
  The trunk's counter-rotation and the arm swing are designed from plausible ranges (shoulder ±9°, elbow
  15-25°; Murray, Sepic & Barnard 1967 report similar magnitudes).
- The pelvis is lowest at each contact and highest in single support (Orendurff et al., "The effect of
  walking speed on center of mass displacement", J Rehabil Res Dev 41:829, 2004), as the design makes it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.linalg import circulant
from scipy.optimize import brentq, nnls, root_scalar

from kinefuse.sim.body import Body, BodyShape, chain_kinematics
from kinefuse.sim.gait import GaitTable, gait_plan, gait_samples
from kinefuse.sim.motion import (
    SIDES,
    Motion,
    Periodic,
    curves_from_samples,
    joint_rotation,
    quintic_hermite,
    smoothstep,
)
from kinefuse.sim.rotations import cardan_yxz, rot_y, rot_z, yxz_from_matrix
from kinefuse.sim.tasks import planted_leg

GRAVITY = 9.81
# the reference walk (normative angles, pelvis carried by the feet)
_ROLL_DEG = 5.0  # foot pitch over which the contact point rolls from heel to toe
_HANDOVER = 0.10  # of the stride: before heel contact the pelvis hands over to the leading foot
_RELEASE = 0.09  # of the stride: the single support the stance times must leave after toe-off
# the designed walk
_HEEL_RISE = 0.5  # of stance (Perry: terminal stance begins with heel rise, at 31 % of the cycle)
_TOE_OFF_TURN = 0.8  # calibrated (``_toe_off_jet``): how far the toe-off turn goes to the swing's
_STEP_WIDTH_M = 0.10  # heel centre to heel centre: healthy adults' steps are 8-12 cm wide
_PENDULUM_MEAN = 0.75  # the surge's mean: this far from the reference's place to the centre of pressure's
_CARRYING_KNEE_DEG = 8.0  # the pelvis rides on planted legs bent about this much
_STRAIGHTEST_KNEE_DEG = 3.0  # and never higher than legs bent this much allow
_HEIGHT_SMOOTHING = 0.006  # s²: the weight of the pelvis's vertical acceleration against riding the legs
_HEIGHT_MARGIN_M = 0.0005  # kept below the straightest legs' height
_DESIGN_ROUNDS = 3  # landing places, contact rates and the pelvis settle together in this many rounds
_LIFT_OFF = 0.6  # of swing: the hip joins the normative swing (the knee by its peak flexion)
_TURN_OVER_S = 0.05  # and the ankle within this long (the foot stops turning toe-down, as real feet do)
_KNEE_PEAK_SOONEST = 0.2  # of swing: a normative knee peaking sooner after toe-off is joined as the hip is
_TOUCH_DOWN_S = 0.08  # and settles from the normative swing onto its landing over this long
_SWING_REACH_TOLERANCE_M = 0.001  # a swinging foot this far beyond reach is reached short (knee straight)
_TOE_CLEARANCE_M = 0.010
_CLEARANCE_RAMP = 0.3  # of swing: the clearance is faded in after toe-off and out before contact
_FLOOR_SOFTNESS_M = 0.008
_FLOOR_TOLERANCE_M = 0.02  # a foot deeper under the floor is refused (asymmetric steps dip ~1 cm)
_HEEL_SOFTNESS_M = 0.008  # a heel kept out of the floor ends at most half this below it (and starts gently)
_MAX_DORSIFLEXION = math.radians(40.0)  # the most the foot turns up for clearance
_LEVER_FLOOR_M = 0.03
_JET_STEP_S = 1e-4
STEP_ASYMMETRY_LIMIT = 0.1


# fmt: off
# Perry & Burnfield (2010) sagittal curves (the hip as the thigh against the vertical, their convention:
# 20 deg flexion at initial contact, 20 deg apparent hyperextension in terminal stance, 25 deg in terminal
# swing); frontal plane and pelvis after Kadaba et al. (1990).
_WALK = GaitTable(
    toe_off=0.62,
    hip=((0, 20), (8, 19), (15, 14), (25, 5), (35, -5), (45, -14), (52, -19), (57, -17), (62, -10),
         (68, 2), (75, 14), (82, 22), (88, 25), (94, 23)),
    knee=((0, 5), (6, 12), (13, 18), (20, 15), (30, 8), (40, 4), (46, 4), (52, 8), (57, 19), (62, 38),
          (67, 54), (72, 60), (77, 58), (84, 42), (90, 22), (95, 8)),
    ankle=((0, 0), (4, -4), (8, -6), (14, -2), (24, 3), (34, 7), (44, 10), (50, 8), (55, 0), (60, -12),
           (64, -17), (70, -10), (78, -3), (86, 0)),
    hip_adduction=((0, 2), (12, 7), (25, 5), (40, 2), (52, -2), (60, -6), (68, -7), (80, -3), (90, 0)),
    obliquity=((0, 0), (17, 4), (35, 2), (50, 0), (67, -4), (85, -2)),
    tilt_mean=1.0, tilt_amplitude=1.5, tilt_peak=0.45, rotation_amplitude=4.0, trunk_lean=3.0,
    shoulder_mean=-3.0, shoulder_gain=-0.45, shoulder_abduction=-6.0, elbow_mean=20.0, elbow_gain=0.4,
    cadence_spm=110.0, step_length_per_height=0.42,
)

# fmt: on


# ------------------------------------------------------------------------------------------------------
# the stance foot


def _evaluate(curves: Mapping[str, Periodic], t: np.ndarray) -> dict[str, tuple[np.ndarray, ...]]:
    return {j: c(t) for j, c in curves.items()}


def _feet(
    shape: BodyShape, curves: Mapping[str, Periodic], t: np.ndarray
) -> dict[str, dict[str, np.ndarray]]:
    """Heel and toe of both feet relative to a pelvis origin held still (travel frame): position,
    material velocity and acceleration, the foot's pitch (toe up +) and the rolling contact point."""
    n = len(t)
    zero = np.zeros((n, 3))
    states = chain_kinematics(
        shape, _evaluate(curves, t), (zero, zero, zero), segments=("left_foot", "right_foot")
    )
    delta = math.radians(_ROLL_DEG)
    out = {}
    for side in SIDES:
        foot = states[f"{side}_foot"]
        hp, hv, ha = foot.point(shape.heel_offset)
        tp, tv, ta = foot.point(shape.toe_offset)
        pitch = np.arcsin(np.clip(foot.R[:, 2, 0], -1.0, 1.0))
        s = smoothstep((delta - pitch) / (2 * delta))[:, None]  # 0: heel, 1: toe
        out[side] = {
            "heel": hp,
            "heel_v": hv,
            "heel_a": ha,
            "toe": tp,
            "toe_v": tv,
            "toe_a": ta,
            "pitch": pitch,
            "anchor": (1 - s) * hp + s * tp,
            "anchor_v": (1 - s) * hv + s * tv,  # material velocity of the contact point
            "anchor_a": (1 - s) * ha + s * ta,
        }
    return out


def _closest_approach(
    t: np.ndarray, h: np.ndarray, period: float, centre: float, half_window: float
) -> float:
    """The time of the lowest point of periodic samples ``h`` within ``half_window`` of ``centre``, refined
    between samples by the parabola through the lowest and its neighbours (so it moves continuously with
    the motion's parameters, which the solvers need)."""
    distance = np.abs((t - centre + period / 2) % period - period / 2)
    inside = np.nonzero(distance <= half_window)[0]
    k = int(inside[np.argmin(h[inside])])
    before, here, after = h[k - 1], h[k], h[(k + 1) % len(h)]
    curvature = before - 2 * here + after
    shift = 0.5 * (before - after) / curvature if curvature > 0 else 0.0
    return float((t[k] + shift * (period / len(t))) % period)


# ------------------------------------------------------------------------------------------------------
# windows of the cycle


def _cyclic_ramp(t: np.ndarray, start: float, end: float, period: float) -> np.ndarray:
    """0 at ``start``, 1 at ``end`` (smoothstep), measured forward around the cycle from ``start``."""
    length = (end - start) % period
    return smoothstep(((t - start) % period) / length)


def _in_window(t: np.ndarray, start: float, end: float, period: float) -> np.ndarray:
    return ((t - start) % period) <= ((end - start) % period)


# ------------------------------------------------------------------------------------------------------
# the pelvis from the feet


def _gait_root(
    shape: BodyShape,
    curves: Mapping[str, Periodic],
    period: float,
    t_ic: Mapping[str, float],
    stance: Mapping[str, float],
) -> tuple[Periodic, Periodic, dict[str, float], dict[str, float], dict[str, object]]:
    """The pelvis's travel from the feet (module docstring). Returns its horizontal and vertical curves,
    initial contact and toe-off times, and the dense quantities the double-support correction needs."""
    t = Periodic.grid(period)
    feet = _feet(shape, curves, t)
    other = {"left": "right", "right": "left"}
    lock_z = {s: -feet[s]["anchor"][:, 2] for s in SIDES}
    lock_v = {s: -feet[s]["anchor_v"] for s in SIDES}
    # initial contact: the swinging heel's closest approach to the floor near the designed phase while
    # the other foot holds the pelvis (the normative curves leave it a centimetre or so short; the
    # hand-over blend closes that gap)
    ic = {}
    for x in SIDES:
        height = feet[x]["heel"][:, 2] - feet[other[x]]["anchor"][:, 2]
        ic[x] = _closest_approach(t, height, period, t_ic[x], 0.1 * period)
    to = {s: (ic[s] + stance[s] * period) % period for s in SIDES}
    tau = _HANDOVER * period
    marks = [ic["left"] - tau, ic["left"], to["right"], to["right"] + _RELEASE * period]
    marks += [ic["right"] - tau, ic["right"], to["left"], to["left"] + _RELEASE * period]
    steps = [(b - a) % period for a, b in zip(marks, marks[1:] + marks[:1], strict=True)]
    if min(steps) <= 0 or abs(sum(steps) - period) > 1e-6 * period:
        raise ValueError("walk: the stance times leave no single support (stance_asymmetry too large?)")
    w = np.where(
        _in_window(t, ic["left"] - tau, ic["left"], period),
        _cyclic_ramp(t, ic["left"] - tau, ic["left"], period),
        np.where(
            _in_window(t, ic["left"], ic["right"] - tau, period),
            1.0,
            np.where(
                _in_window(t, ic["right"] - tau, ic["right"], period),
                1.0 - _cyclic_ramp(t, ic["right"] - tau, ic["right"], period),
                0.0,
            ),
        ),
    )
    z = w * lock_z["left"] + (1 - w) * lock_z["right"]
    v = w[:, None] * lock_v["left"] + (1 - w[:, None]) * lock_v["right"]
    root_xy, mean_v = Periodic.from_rates(period, v[:, :2], keep_drift=np.array([True, False]))
    root_z = Periodic.from_samples(period, z[:, None])
    dense = {
        "t": t,
        "v": v,
        "z": z,
        "lock_v": lock_v,
        "lock_z": lock_z,
        "lateral_drift_mps": float(mean_v[1]),
    }
    return root_xy, root_z, ic, to, dense


def _step_lengths(
    shape: BodyShape,
    curves: Mapping[str, Periodic],
    root_xy: Periodic,
    root_z: Periodic,
    ic: Mapping[str, float],
    period: float,
) -> dict[str, float]:
    """Each side's step: how far its heel lands ahead of the other heel's last landing (along travel)."""
    heel_x = {}
    for side in SIDES:
        times = np.array([ic[side], ic[side] + period])
        (pxy, vxy, axy), (pz, vz, az) = root_xy(times), root_z(times)
        root = (np.concatenate([pxy, pz], 1), np.concatenate([vxy, vz], 1), np.concatenate([axy, az], 1))
        foot = chain_kinematics(shape, _evaluate(curves, times), root, segments=(f"{side}_foot",))[
            f"{side}_foot"
        ]
        heel_x[side] = foot.point(shape.heel_offset)[0][:, 0]
    first, second = sorted(SIDES, key=lambda side: ic[side])
    return {
        second: float(heel_x[second][0] - heel_x[first][0]),
        first: float(heel_x[first][1] - heel_x[second][0]),
    }


# ------------------------------------------------------------------------------------------------------
# the designed pelvis and the legs on planted feet


def _smooth_below(attract: np.ndarray, upper: np.ndarray, dt: float, smoothing: float) -> np.ndarray:
    """The periodic samples z (n,) that minimise ‖z - attract‖² + smoothing² ‖z''‖² (z'' the periodic second
    difference over ``dt``) subject to z <= upper.

    The quadratic's matrix H = I + smoothing² D2ᵀD2 is circulant, so the discrete Fourier transform
    diagonalises it (eigenvalues 1 + smoothing² (2 - 2 cos θ_k)² / dt⁴). The bounds are handled through
    the dual: the multipliers λ >= 0 minimise ½ λᵀH⁻¹λ - λᵀ(H⁻¹ attract - upper), which with H⁻¹ = A² (A
    the circulant square root) is the non-negative least squares problem ‖Aλ - A⁻¹(H⁻¹ attract - upper)‖²
    (Lawson & Hanson, "Solving Least Squares Problems", 1974, ch. 23: ``scipy.optimize.nnls``, which ends
    in finitely many steps); then z = H⁻¹(attract - λ)."""
    n = len(upper)
    theta = 2 * np.pi * np.arange(n) / n
    eigen = 1.0 + smoothing**2 * (2.0 - 2.0 * np.cos(theta)) ** 2 / dt**4

    def apply(values: np.ndarray, power: float) -> np.ndarray:
        return np.fft.ifft(np.fft.fft(values) * eigen**power).real

    root = circulant(np.fft.ifft(eigen**-0.5).real)  # A, symmetric: A² = H⁻¹
    multipliers, _ = nnls(root, apply(apply(attract, -1.0) - upper, 0.5), maxiter=50 * n)
    return np.minimum(apply(attract - multipliers, -1.0), upper)


class _Walker:
    """The designed pelvis path and planted feet of one stride, and the legs that reach them (module
    docstring). Made from the reference walk (normative angles, pelvis carried by the feet,
    ``_gait_root``): its contact times, its step lengths, how its feet pitch, its travel."""

    def __init__(
        self,
        shape: BodyShape,
        period: float,
        samples: Mapping[str, np.ndarray],
        curves: Mapping[str, Periodic],
        root_xy: Periodic,
        root_z: Periodic,
        ic: Mapping[str, float],
        to: Mapping[str, float],
    ) -> None:
        self.shape, self.period = shape, period
        self.t = Periodic.grid(period)
        self.samples, self.curves = samples, curves
        self.ic, self.to = dict(ic), dict(to)
        self.stance_s = {s: (to[s] - ic[s]) % period for s in SIDES}
        self._ref = (root_xy, root_z)
        self.feet = {s: self._foot_design(s) for s in SIDES}
        self.drift = np.asarray(root_xy.drift, dtype=np.float64)
        self._reference_spectrum = np.fft.rfft(root_xy(self.t)[0] - self.t[:, None] * self.drift, axis=0)
        # the heels land where the normative swing puts them under the designed pelvis, which in turn depends
        # a little on where they land and on how fast they rock at contact: a few rounds settle all three
        for _ in range(_DESIGN_ROUNDS):
            self._travel()
            for side in SIDES:
                self.feet[side]["contact"] = self._contact_jet(side)
                self.feet[side]["toe_off"] = self._toe_off_jet(side)
            self._land()
        self._travel()

    def _travel(self) -> None:
        self.sway = self._pendulum()
        self.z = self._height()
        self._root = self.root_curves()

    def _root_at(self, time: float) -> np.ndarray:
        """The designed root at ``time`` (linear between grid samples)."""
        grid = np.append(self.t, self.period)
        tau = time % self.period
        periodic = [np.interp(tau, grid, np.append(c, c[0])) for c in (*self.sway.T, self.z)]
        return np.array(periodic) + np.array([*(time * self.drift), 0.0])

    def _land(self) -> None:
        """Put each heel's landing place under the normative swing's heel at contact, on the floor, both heels
        moved out alike until they are the step width apart (the normative swing under a pelvis crossing the
        midline in double support puts them 6 cm apart: too narrow)."""
        heels = {side: self._swing_heel(side) for side in SIDES}
        out = 0.5 * (_STEP_WIDTH_M - (heels["left"][1] - heels["right"][1]))
        for side, heel in heels.items():
            design = self.feet[side]
            across = heel[1] + (out if side == "left" else -out)
            design["ankle"] = np.array([heel[0], across, 0.0]) - design["R_yaw"] @ self.shape.heel_offset

    def _swing_heel(self, side: str) -> np.ndarray:
        """Where the normative swing under the designed pelvis puts the heel at its contact."""
        ic = np.array([self.ic[side]])
        zero = np.zeros((1, 3))
        foot = chain_kinematics(self.shape, _evaluate(self.curves, ic), (self._root_at(ic[0])[None], zero, zero),
                                segments=(f"{side}_foot",))[f"{side}_foot"]  # fmt: skip
        return foot.point(self.shape.heel_offset)[0][0]

    # --- reference -----------------------------------------------------------------------------------
    def _ref_root(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        (pxy, vxy, axy), (pz, vz, az) = self._ref[0](times), self._ref[1](times)
        return (np.concatenate([pxy, pz], 1), np.concatenate([vxy, vz], 1), np.concatenate([axy, az], 1))

    def _reference_foot(self, side: str, times: np.ndarray):
        states = chain_kinematics(self.shape, _evaluate(self.curves, times), self._ref_root(times),
                                  segments=(f"{side}_foot",))  # fmt: skip
        return states[f"{side}_foot"]

    def _pitch_jet(self, side: str, time: float, stance_s: float) -> tuple[float, float, float]:
        """Toe-down pitch of the reference foot at ``time``, its rate and acceleration per unit of stance
        (central differences)."""
        h = _JET_STEP_S
        R = self._reference_foot(side, time + np.array([-h, 0.0, h])).R
        p = -np.arcsin(np.clip(R[:, 2, 0], -1.0, 1.0))
        return (float(p[1]), float((p[2] - p[0]) / (2 * h)) * stance_s,
                float((p[2] - 2 * p[1] + p[0]) / h**2) * stance_s**2)  # fmt: skip

    # --- stance foot ---------------------------------------------------------------------------------
    def _reference_pitch(self, side: str, times: np.ndarray) -> np.ndarray:
        """Toe-down pitch (rad) of the reference foot: the normative angles' own."""
        return -np.arcsin(np.clip(self._reference_foot(side, times).R[:, 2, 0], -1.0, 1.0))

    def _foot_design(self, side: str) -> dict[str, object]:
        shape, stance = self.shape, self.stance_s[side]
        ic = self.ic[side]
        heel = self._reference_foot(side, np.array([ic])).point(shape.heel_offset)[0][0]
        # the sole comes level where the reference foot first does after contact
        scan = np.linspace(0.0, 0.5, 501)
        level = np.nonzero(self._reference_pitch(side, ic + scan * stance) >= 0.0)[0]
        flat = float(np.clip(scan[level[0]] if len(level) else 0.15, 0.05, _HEEL_RISE - 0.1))
        middle = self._reference_foot(side, np.array([ic + 0.5 * (flat + _HEEL_RISE) * stance])).R[0]
        R_yaw = rot_z(np.array(math.atan2(middle[1, 0], middle[0, 0])))
        landing = np.array([heel[0], heel[1], 0.0])
        return {
            "flat": flat,
            "R_yaw": R_yaw,
            "ankle": landing
            - R_yaw @ shape.heel_offset,  # the ankle while the sole is flat (``_land`` moves it)
            "contact": self._pitch_jet(side, ic, stance),
            "toe_off": self._pitch_jet(side, ic + stance, stance),  # until ``_toe_off_jet`` designs it
        }

    def _contact_jet(self, side: str) -> tuple[float, float, float]:
        """The foot's pitch state at contact: the reference's pitch, rocking about the heel at the rate that
        shortens the leg as fast as the normative knee flexes there. The knee is nearly straight at contact,
        so a leg shortening at any other rate would need the knee to flex or extend at hundreds of degrees a
        second; real feet rock about the heel at a few hundred degrees a second just after contact."""
        shape, ic = self.shape, self.ic[side]
        dt = self.period / len(self.t)
        hip = self.root() + joint_rotation("pelvis", self.samples["pelvis"]) @ shape.joint_offset(
            f"{side}_thigh"
        )
        step = np.roll(hip, -1, axis=0) - np.roll(hip, 1, axis=0)
        step[0, :2] += self.drift * self.period
        step[-1, :2] += self.drift * self.period
        k = int(round(ic / dt)) % len(self.t)
        hip_at, hip_velocity = hip[k] + (ic - self.t[k]) * step[k] / (2 * dt), step[k] / (2 * dt)
        ankle, R = self.stance_foot(side, np.array([0.0]))
        ankle, heel = ankle[0], ankle[0] + R[0] @ shape.heel_offset
        towards = ankle - hip_at
        distance = float(np.linalg.norm(towards))
        knee_at, knee_rate, _ = self.curves[f"{side}_knee"](np.array([ic]))
        flexion, adduction, rate = float(knee_at[0, 0]), float(knee_at[0, 1]), float(knee_rate[0, 0])
        lengthening = (
            -shape.thigh_length * shape.shank_length * math.sin(flexion) * math.cos(adduction) * rate
        )
        lengthening /= distance
        # the ankle turns about the heel: its velocity is w (axis x (ankle - heel)), axis the foot's lateral one
        axis = self.feet[side]["R_yaw"] @ np.array([0.0, 1.0, 0.0])
        per_rate = float(np.cross(axis, ankle - heel) @ towards) / distance
        pitch_rate = (lengthening + float(hip_velocity @ towards) / distance) / per_rate
        return (self._pitch_jet(side, ic, self.stance_s[side])[0], pitch_rate * self.stance_s[side], 0.0)

    def _toe_off_jet(self, side: str) -> tuple[float, float, float]:
        """The foot's pitch state at toe-off (per unit of stance). Its pitch is the reference's there; it turns
        about the fixed toe tip at ``_TOE_OFF_TURN`` of the way from the reference's own rate to the rate, and
        angular acceleration, that moves the ankle as nearly as a foot turning about its toe can (least
        squares) as the normative swing moves it at toe-off. The reference's foot turns at under 200 deg/s at
        toe-off while its ankle already moves at walking speed and more: a foot that leaves the floor that
        slowly must make up the difference in the air, which was the 8-9 g spike of the early swing. Matched
        fully, the foot would turn at about 680 deg/s here (the default walk); real feet peak at 580-630 deg/s
        just before toe-off (the gaitmap recording's motion capture, heel-to-toe marker line, median over its
        57 strides): ``_TOE_OFF_TURN`` = 0.8 is calibrated to that (580 deg/s), not to the IMU statistics."""
        shape, stance = self.shape, self.stance_s[side]
        time = np.array([self.ic[side] + stance])
        (pxy, vxy, axy), (pz, vz, az) = self._root[0](time), self._root[1](time)
        root = (np.concatenate([pxy, pz], 1), np.concatenate([vxy, vz], 1), np.concatenate([axy, az], 1))
        free = chain_kinematics(shape, _evaluate(self.curves, time), root,
                                segments=(f"{side}_foot",))[f"{side}_foot"]  # fmt: skip
        pitch, own_rate, own_acceleration = self._pitch_jet(side, float(time[0]), 1.0)
        # the ankle about the toe tip: ankle = tip - R_yaw rot_y(pitch) toe_offset
        c, s = math.cos(pitch), math.sin(pitch)
        turn = np.array([[-s, 0.0, c], [0.0, 0.0, 0.0], [-c, 0.0, -s]])  # d rot_y / d pitch
        bend = np.array([[-c, 0.0, -s], [0.0, 0.0, 0.0], [s, 0.0, -c]])  # d² rot_y / d pitch²
        R_yaw = self.feet[side]["R_yaw"]
        J, K = -R_yaw @ turn @ shape.toe_offset, -R_yaw @ bend @ shape.toe_offset
        rate = float(J @ free.velocity[0]) / float(J @ J)
        acceleration = float(J @ (free.acceleration[0] - K * rate**2)) / float(J @ J)
        rate = own_rate + _TOE_OFF_TURN * (rate - own_rate)
        acceleration = own_acceleration + _TOE_OFF_TURN * (acceleration - own_acceleration)
        return pitch, rate * stance, acceleration * stance**2

    def stance_foot(
        self, side: str, a: np.ndarray, t: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ankle (n, 3) and foot rotation (n, 3, 3) at stance fractions ``a``. The foot pivots on its heel
        from contact (pitching from the reference's contact state) until the sole is level, stays flat until
        the heel rises, then pivots on its toe tip to its toe-off state (``_toe_off_jet``, a quintic);
        before contact the heel pivot goes on at its contact rate, after toe-off the toe pivot with its
        toe-off state (to second order), so the differences that take the jets there see one smooth curve. Given
        the times ``t`` (n,) the fractions are seen at, the foot is placed in their stride (the design is
        for the stance that starts at the contact time in [0, period))."""
        design, shape, stance = self.feet[side], self.shape, self.stance_s[side]
        flat = design["flat"]
        pitch = self._reference_pitch(side, self.ic[side] + a * stance)
        on_heel, on_toe = a < flat, a > _HEEL_RISE
        before = a < 0.0  # rocking back about the heel at the contact rate
        contact = design["contact"]
        pitch[before] = contact[0] + contact[1] * a[before]
        designed = (a >= 0.0) & on_heel
        pitch[designed] = quintic_hermite(a[designed], flat, design["contact"], (0.0, 0.0, 0.0))
        pitch[(a >= flat) & (a <= _HEEL_RISE)] = 0.0
        designed = on_toe & (a <= 1.0)
        pitch[designed] = quintic_hermite(a[designed] - _HEEL_RISE, 1.0 - _HEEL_RISE, (0.0, 0.0, 0.0),
                                          design["toe_off"])  # fmt: skip
        after = a > 1.0  # on past toe-off with its toe-off state, to second order
        p0, v0, a0 = design["toe_off"]
        pitch[after] = p0 + v0 * (a[after] - 1.0) + 0.5 * a0 * (a[after] - 1.0) ** 2
        R_yaw = design["R_yaw"]
        R = R_yaw @ rot_y(pitch)  # rot_y(+) pitches the toe down
        ankle = np.tile(design["ankle"], (len(a), 1))
        for mask, pivot in ((on_heel, shape.heel_offset), (on_toe, shape.toe_offset)):
            ankle[mask] += R_yaw @ pivot - R[mask] @ pivot
        if t is not None:
            ankle[:, :2] += (t - (self.ic[side] + a * stance))[:, None] * self.drift
        return ankle, R

    def _stance_phase(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        """Stance fraction on the grid (continued past toe-off and before contact, to mid swing) and the
        mask of the stance samples."""
        tau = (self.t - self.ic[side]) % self.period
        stance = self.stance_s[side]
        before = tau > stance + 0.5 * (self.period - stance)
        a = np.where(before, tau - self.period, tau) / stance
        return a, (a >= 0.0) & (a <= 1.0)

    # --- pelvis --------------------------------------------------------------------------------------
    def _centre_of_pressure(self) -> np.ndarray:
        """The centre of pressure (n, 2) on the grid: along each stance foot's sole from the heel at contact
        to the toe tip at toe-off, the load handed from the trailing to the leading foot over double support
        (smoothstep)."""
        t, period = self.t, self.period
        load, point = {}, {}
        for side, other in (("left", "right"), ("right", "left")):
            a, stance = self._stance_phase(side)
            stance_s = self.stance_s[side]
            since = a * stance_s
            taking = (self.to[other] - self.ic[side]) % period  # double support after this contact
            giving = (self.to[side] - self.ic[other]) % period  # double support before this toe-off
            load[side] = np.where(
                stance,
                smoothstep(since / taking) * (1.0 - smoothstep((since - stance_s + giving) / giving)),
                0.0,
            )
            design = self.feet[side]
            heel = design["ankle"] + design["R_yaw"] @ self.shape.heel_offset
            toe = design["ankle"] + design["R_yaw"] @ self.shape.toe_offset
            along = np.clip(a, 0.0, 1.0)[:, None]
            point[side] = ((1.0 - along) * heel + along * toe)[:, :2] + (t - (self.ic[side] + since))[
                :, None
            ] * self.drift
        total = load["left"] + load["right"]
        return sum(load[s][:, None] * point[s] for s in SIDES) / total[:, None]

    def _pendulum(self) -> np.ndarray:
        """The periodic motion (n, 2) about steady travel of a linear inverted pendulum of the standing hip
        height over the centre of pressure, x'' = (g / h)(x - p) (Kajita et al. 2001), harmonic by harmonic:
        X_k = P_k (g / h) / (g / h + (k w)²): surge and sway. The surge's mean is ``_PENDULUM_MEAN`` of the
        centre of pressure's (the reference's place is 0), its stride harmonic the reference's, corrected so
        the steps stay the reference's; the sway's mean is the reference's."""
        n = len(self.t)
        pressure = self._centre_of_pressure() - self.t[:, None] * self.drift
        spectrum = np.fft.rfft(pressure, axis=0)
        stiffness = GRAVITY / self.shape.hip_height
        k = np.arange(len(spectrum))[:, None]
        spectrum *= stiffness / (stiffness + (2 * np.pi * k / self.period) ** 2)
        spectrum[0] = (_PENDULUM_MEAN * spectrum[0, 0], self._reference_spectrum[0, 1])
        # the surge's stride harmonic: a left-right difference stays the reference's
        spectrum[1, 0] = self._reference_spectrum[1, 0]
        travel = np.fft.irfft(spectrum, n=n, axis=0)
        # the heels land under the normative swing (``_land``), so each lands as far from the reference's
        # landing as the pelvis is from the reference's there: make that the same for both heels, by the
        # least stride harmonic that does, and the steps stay the reference's (the lengths asked for)
        grid, omega = np.append(self.t, self.period), 2 * np.pi / self.period
        ic = np.array([self.ic["left"], self.ic["right"]])
        reference = self._ref[0](ic)[0][:, 0] - ic * self.drift[0]
        apart = [
            np.interp(ic[i], grid, np.append(travel[:, 0], travel[0, 0])) - reference[i] for i in range(2)
        ]
        gradient = np.array(
            [np.cos(omega * ic[0]) - np.cos(omega * ic[1]), np.sin(omega * ic[0]) - np.sin(omega * ic[1])]
        )
        p, q = -(apart[0] - apart[1]) * gradient / (gradient @ gradient)
        travel[:, 0] += p * np.cos(omega * self.t) + q * np.sin(omega * self.t)
        return travel

    def root(self) -> np.ndarray:
        """The designed root position on the grid (n, 3)."""
        xy = self.t[:, None] * self.drift + self.sway
        return np.concatenate([xy, self.z[:, None]], axis=1)

    def _reach_height(self, side: str, ankle: np.ndarray, idx: np.ndarray, knee_deg: float) -> np.ndarray:
        """Root height that puts ``side``'s ankle at ``ankle`` with the knee bent ``knee_deg``."""
        shape = self.shape
        R_pelvis = joint_rotation("pelvis", self.samples["pelvis"][idx])
        hip = R_pelvis @ shape.joint_offset(f"{side}_thigh")
        adduction = self.samples[f"{side}_knee"][idx, 1]
        thigh, shank = shape.thigh_length, shape.shank_length
        reach2 = (
            thigh**2 + shank**2 + 2 * thigh * shank * math.cos(math.radians(knee_deg)) * np.cos(adduction)
        )
        xy = self.t[idx, None] * self.drift + self.sway[idx]
        d2 = np.sum((ankle[:, :2] - xy - hip[:, :2]) ** 2, axis=1)
        if np.any(d2 >= reach2):
            raise ValueError(f"walk: the {side} leg cannot reach its planted foot")
        return ankle[:, 2] - hip[:, 2] + np.sqrt(reach2 - d2)

    def _height(self) -> np.ndarray:
        """The pelvis height: as near as it can be (least squares) to the height at which the planted legs
        carry it with their knees bent ``_CARRYING_KNEE_DEG`` (the lower leg's, in double support), with
        the least vertical acceleration (least squared second difference, weighted ``_HEIGHT_SMOOTHING``),
        and never higher than a knee bent ``_STRAIGHTEST_KNEE_DEG`` allows."""
        n = len(self.t)
        bound, carried = np.full(n, np.inf), np.full(n, np.inf)
        for side in SIDES:
            a, stance = self._stance_phase(side)
            idx = np.nonzero(stance)[0]
            ankle, _ = self.stance_foot(side, a[idx], self.t[idx])
            bound[idx] = np.minimum(bound[idx], self._reach_height(side, ankle, idx, _STRAIGHTEST_KNEE_DEG))
            carried[idx] = np.minimum(carried[idx], self._reach_height(side, ankle, idx, _CARRYING_KNEE_DEG))
        if not np.isfinite(bound).all():
            raise ValueError("walk: the stance times leave a moment with no foot on the floor")
        return _smooth_below(carried, bound - _HEIGHT_MARGIN_M, self.period / n, _HEIGHT_SMOOTHING)

    # --- legs ---------------------------------------------------------------------------------------
    def _free_foot(self, side: str, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ankle (n, 3) and foot Cardan angles (n, 3) under the normative angles and the designed pelvis."""
        (pxy, vxy, axy), (pz, vz, az) = self._root[0](times), self._root[1](times)
        root = (np.concatenate([pxy, pz], 1), np.concatenate([vxy, vz], 1), np.concatenate([axy, az], 1))
        foot = chain_kinematics(self.shape, _evaluate(self.curves, times), root,
                                segments=(f"{side}_foot",))[f"{side}_foot"]  # fmt: skip
        return foot.position, yxz_from_matrix(foot.R)

    def _planted_foot(self, side: str, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ankle (n, 3) and foot Cardan angles (n, 3) of the stance design (continued outside stance)."""
        u = (times - self.ic[side]) % self.period
        a = np.where(u > self.stance_s[side] + 0.5 * (self.period - self.stance_s[side]), u - self.period, u)
        ankle, R = self.stance_foot(side, a / self.stance_s[side], times)
        return ankle, yxz_from_matrix(R)

    def _planted_joints(self, side: str, times: np.ndarray) -> dict[str, np.ndarray]:
        """The leg's joint angles (hip, knee, ankle; n, 3 each) solved onto the stance design at ``times``."""
        ankle, angles = self._planted_foot(side, times)
        R = cardan_yxz(angles, np.zeros_like(angles), np.zeros_like(angles))[0]
        (pxy, _, _), (pz, _, _) = self._root[0](times), self._root[1](times)
        hip, knee, ankle_angles = planted_leg(self.shape, side, self.curves["pelvis"](times)[0],
                                              np.concatenate([pxy, pz], 1), ankle, R,
                                              self.curves[f"{side}_knee"](times)[0][:, 1])  # fmt: skip
        return {f"{side}_hip": hip, f"{side}_knee": knee, f"{side}_ankle": ankle_angles}

    def _lift_off(self, side: str, times: np.ndarray, since: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ankle (n, 3) and foot Cardan angles (n, 3) of the early swing at ``times`` (``since`` toe-off): the
        normative swing's joint angles plus, for each joint of the leg, a quintic in time from the stance
        design's mismatch at toe-off (the leg solved onto the toe-off state minus the normative angles: value,
        rate, acceleration) to zero, played by forward kinematics under the designed pelvis. The knee's ends
        at the normative knee's peak flexion, which is thereby the swing's own (and the knee-range controls
        keep their meaning), unless that peak comes within ``_KNEE_PEAK_SOONEST`` of the swing after toe-off
        (a reference whose toe-off falls at the top of the normative knee's rise, as a much larger knee range
        makes it: no leg could get there), when it ends with the hip's; the hip's after ``_LIFT_OFF`` of the
        swing (the stance design plants the foot a few centimetres from where the normative angles would have
        it, and the swing takes that up gently);
        the ankle's within ``_TURN_OVER_S``: the foot leaves the floor still turning toe-down and stops
        turning within a few hundredths of a second, as real feet do."""
        to, h = self.to[side], _JET_STEP_S
        planted = self._planted_joints(side, to + np.array([-h, 0.0, h]))
        angles = {j: (q.copy(), qd, qdd) for j, (q, qd, qdd) in _evaluate(self.curves, times).items()}
        swing_s = self.period - self.stance_s[side]
        peak = float(since[np.argmax(self.curves[f"{side}_knee"](times)[0][:, 0])])
        horizon = {
            f"{side}_hip": _LIFT_OFF * swing_s,
            f"{side}_knee": peak if peak >= _KNEE_PEAK_SOONEST * swing_s else _LIFT_OFF * swing_s,
            f"{side}_ankle": min(_TURN_OVER_S, 0.5 * swing_s),
        }
        for joint, q in planted.items():
            q0, qd0, qdd0 = self.curves[joint](np.array([to]))
            mismatch = (
                q[1] - q0[0],
                (q[2] - q[0]) / (2 * h) - qd0[0],
                (q[2] - 2 * q[1] + q[0]) / h**2 - qdd0[0],
            )
            length = horizon[joint]
            inside = since < length
            for k in (0,) if joint.endswith("knee") else (0, 1, 2):  # the knee's adduction is not solved for
                start = tuple(float(x[k]) for x in mismatch)
                angles[joint][0][inside, k] += quintic_hermite(since[inside], length, start, (0.0, 0.0, 0.0))
        (pxy, vxy, axy), (pz, vz, az) = self._root[0](times), self._root[1](times)
        root = (np.concatenate([pxy, pz], 1), np.concatenate([vxy, vz], 1), np.concatenate([axy, az], 1))
        foot = chain_kinematics(self.shape, angles, root, segments=(f"{side}_foot",))[f"{side}_foot"]
        return foot.position, yxz_from_matrix(foot.R)

    def _touch_down(self, side: str, times: np.ndarray, until: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ankle (n, 3) and foot Cardan angles (n, 3) of the late swing at ``times`` (``until`` the next
        contact, at most ``_TOUCH_DOWN_S``): the normative swing's joint angles plus, for each joint of the
        leg, a quintic in time from zero to the stance design's mismatch at contact (the leg solved onto the
        contact state minus the normative angles: value, rate, acceleration), played by forward kinematics
        under the designed pelvis, so the foot lands exactly as the stance design says (C2). In joint space,
        as ``_lift_off``, not in the foot's place: a quintic taking the ankle from the normative swing's path
        to the planted foot's swings it out along the heel's approach (the foot slows from the swing's
        speed to the heel's standstill within the window), and with the knee nearly straight before contact
        that path left the leg's reach: the knee, solved from the hip-ankle distance (an arccos, whose rate
        is unbounded at full extension), was held straight and then flexed at 800 deg/s within a sample,
        an 18 g spike in the shank of a leg with the longer stance (its landing pelvis rides higher)."""
        contact, h = self.to[side] + self.period - self.stance_s[side], _JET_STEP_S
        planted = self._planted_joints(side, contact + np.array([-h, 0.0, h]))
        angles = {j: (q.copy(), qd, qdd) for j, (q, qd, qdd) in _evaluate(self.curves, times).items()}
        for joint, q in planted.items():
            q0, qd0, qdd0 = self.curves[joint](np.array([contact]))
            mismatch = (
                q[1] - q0[0],
                (q[2] - q[0]) / (2 * h) - qd0[0],
                (q[2] - 2 * q[1] + q[0]) / h**2 - qdd0[0],
            )
            for k in (0,) if joint.endswith("knee") else (0, 1, 2):  # the knee's adduction is not solved for
                end = tuple(float(x[k]) for x in mismatch)
                angles[joint][0][:, k] += quintic_hermite(
                    _TOUCH_DOWN_S - until, _TOUCH_DOWN_S, (0.0, 0.0, 0.0), end
                )
        (pxy, vxy, axy), (pz, vz, az) = self._root[0](times), self._root[1](times)
        root = (np.concatenate([pxy, pz], 1), np.concatenate([vxy, vz], 1), np.concatenate([axy, az], 1))
        foot = chain_kinematics(self.shape, angles, root, segments=(f"{side}_foot",))[f"{side}_foot"]
        return foot.position, yxz_from_matrix(foot.R)

    def legs(self) -> dict[str, np.ndarray]:
        """The walk's joint samples: the normative ones with the legs solved onto the designed feet. In
        swing the foot leaves the stance design as ``_lift_off`` says (the leg's joints joining the normative
        swing), follows the normative swing, and settles onto its landing as ``_touch_down`` says (the leg's
        joints joining the stance design's contact state over ``_TOUCH_DOWN_S``), so the foot leaves and
        lands exactly as the stance design says (C2)."""
        shape, t, period = self.shape, self.t, self.period
        out = {k: v.copy() for k, v in self.samples.items()}
        root = self.root()
        for side in SIDES:
            stance_s = self.stance_s[side]
            swing_s = period - stance_s
            ankle, angles = self._planted_foot(side, t)
            since = (t - self.to[side]) % period  # time into the swing
            swing = since < swing_s
            if _LIFT_OFF * swing_s + _TOUCH_DOWN_S >= swing_s:
                raise ValueError(f"walk: a swing of {swing_s:.3f} s is too short to leave the floor and land")
            free_ankle, free_angles = self._free_foot(side, t[swing])
            early = since[swing] < swing_s - _TOUCH_DOWN_S
            late = ~early
            free_ankle[early], free_angles[early] = self._lift_off(side, t[swing][early], since[swing][early])
            free_ankle[late], free_angles[late] = self._touch_down(
                side, t[swing][late], swing_s - since[swing][late]
            )
            ankle[swing], angles[swing] = free_ankle, free_angles
            R = cardan_yxz(angles, np.zeros_like(angles), np.zeros_like(angles))[0]
            # the swinging toe clears the floor by dorsiflexing the foot about the ankle rather than by bending
            # the knee further (the knee keeps its normative swing, and its range control), by at most
            # _MAX_DORSIFLEXION, faded in after toe-off and out before contact
            phase = since / swing_s
            window = np.where(
                swing, smoothstep(phase / _CLEARANCE_RAMP) * smoothstep((1.0 - phase) / _CLEARANCE_RAMP), 0.0
            )
            toe = R @ shape.toe_offset
            short = (
                window
                * _FLOOR_SOFTNESS_M
                * np.logaddexp(0.0, (_TOE_CLEARANCE_M - ankle[:, 2] - toe[:, 2]) / _FLOOR_SOFTNESS_M)
            )
            lever = np.sqrt(
                toe[:, 0] ** 2 + toe[:, 1] ** 2 + _LEVER_FLOOR_M**2
            )  # toe's reach ahead of the ankle
            turn = _MAX_DORSIFLEXION * np.tanh(short / lever / _MAX_DORSIFLEXION)
            angles[:, 0] -= turn  # rot_y(-) lifts the toe
            R = cardan_yxz(angles, np.zeros_like(angles), np.zeros_like(angles))[0]
            # and a heel the normative swing would put into the floor before contact (its foot reaches lower under
            # the designed pelvis than under the reference's) is lifted, by a C2 ramp of its depth, 0 at and above
            # the floor (at contact the heel is on it, still: nothing changes there)
            depth = np.where(swing, -(ankle[:, 2] + (R @ shape.heel_offset)[:, 2]), 0.0)
            ankle[:, 2] += _ramp(depth, _HEEL_SOFTNESS_M)
            hip, knee, ankle_angles = planted_leg(shape, side, self.samples["pelvis"], root, ankle, R,
                                                  self.samples[f"{side}_knee"][:, 1],
                                                  reach_tolerance_m=_SWING_REACH_TOLERANCE_M)  # fmt: skip
            out[f"{side}_hip"], out[f"{side}_knee"], out[f"{side}_ankle"] = hip, knee, ankle_angles
        return out

    def root_curves(self) -> tuple[Periodic, Periodic]:
        x = np.append(self.t, self.period)
        sway = CubicSpline(x, np.vstack([self.sway, self.sway[:1]]), bc_type="periodic", axis=0)
        return (Periodic(self.period, sway, drift=self.drift),
                Periodic.from_samples(self.period, self.z[:, None]))  # fmt: skip


def _ramp(x: np.ndarray, softness: float) -> np.ndarray:
    """0 for x <= 0, x³ / (x² + softness²) above: C2 at 0, and x less at most softness / 2."""
    x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    return x**3 / (x**2 + softness**2)


def _mirror_controls(controls: Mapping[str, object]) -> dict[str, object]:
    """Controls for the mirror image: right/left ratios inverted, lateral lean to the other side."""
    out = dict(controls)
    if "stance_asymmetry" in out:
        out["stance_asymmetry"] = 1.0 / (1.0 + float(out["stance_asymmetry"])) - 1.0  # type: ignore[arg-type]
    if "step_asymmetry" in out:
        out["step_asymmetry"] = -float(out["step_asymmetry"])  # type: ignore[arg-type]
    if "trunk_lateral_lean_deg" in out:
        out["trunk_lateral_lean_deg"] = -float(out["trunk_lateral_lean_deg"])  # type: ignore[arg-type]
    return out


def walk_motion(kind: str, shape: BodyShape, controls: Mapping[str, object]) -> Motion:
    if float(controls.get("step_asymmetry", 0.0)) < 0:  # type: ignore[arg-type]
        # the left-long case is built as its mirror image (the right-long one) and reflected: the walk's
        # double-support correction does not reach every left-long split
        return walk_motion(kind, shape, _mirror_controls(controls)).mirrored(controls)
    table = _WALK
    plan = gait_plan(table, shape, controls)
    cadence, speed, step, period = plan.cadence, plan.speed, plan.step, plan.period
    t_ic, stance = plan.t_ic, plan.stance
    t = Periodic.grid(period)

    def build(hip_scale: float, asymmetry: float):
        samples = gait_samples(table, t, period, t_ic, stance, hip_scale, asymmetry, plan.knee_target,
                               plan.valgus, plan.lean, plan.lateral)  # fmt: skip
        curves = curves_from_samples(period, samples)
        return samples, curves, _gait_root(shape, curves, period, t_ic, stance)

    def hip_scale_for(asymmetry: float) -> float:
        def stride_error(hip_scale: float) -> float:
            root_xy = build(hip_scale, asymmetry)[2][0]
            return float(root_xy.drift[0]) * period - 2 * step

        # the stride is nearly linear in the hip range: a few secant steps usually find it
        guess = root_scalar(stride_error, x0=1.0, x1=1.3, method="secant", xtol=1e-7)
        if guess.converged and 0.3 <= guess.root <= 2.5 and abs(stride_error(guess.root)) < 1e-6:
            return float(guess.root)
        low, high = 0.3, 2.5
        try:
            e_low, e_high = stride_error(low), stride_error(high)
        except ValueError as exc:
            raise ValueError(f"{kind}: cannot build a gait for step_length_m={step:.3f}: {exc}") from exc
        if not e_low < 0 < e_high:
            raise ValueError(
                f"{kind}: step_length_m={step:.3f} m (cadence {cadence:g} steps/min, speed {speed:.3f} m/s) is "
                f"outside what this gait can make for a {shape.height_m:g} m body "
                f"({(e_low / 2 + step):.2f} to {(e_high / 2 + step):.2f} m)"
            )
        return brentq(stride_error, low, high, xtol=1e-7)  # the stride to about a tenth of a micrometre

    wanted = float(controls.get("step_asymmetry", 0.0))  # type: ignore[arg-type]
    symmetric = hip_scale_for(0.0)

    def ratio_error(asymmetry: float) -> float:
        _, curves, (root_xy, root_z, ic, _, _) = build(symmetric, asymmetry)
        steps = _step_lengths(shape, curves, root_xy, root_z, ic, period)
        return steps["right"] / steps["left"] - (1.0 + wanted)

    asymmetry, hip_scale = 0.0, symmetric
    try:
        if wanted:  # the stride barely depends on the split: solve it at the symmetric range, then the range
            asymmetry = brentq(ratio_error, -0.5, 0.5, xtol=1e-6)
            hip_scale = hip_scale_for(asymmetry)
        samples, curves, (root_xy, root_z, ic, to, dense) = build(hip_scale, asymmetry)
        steps = _step_lengths(shape, curves, root_xy, root_z, ic, period)
        walker = _Walker(shape, period, samples, curves, root_xy, root_z, ic, to)
        samples = walker.legs()
    except ValueError as exc:
        if not wanted:
            raise
        raise ValueError(
            f"{kind}: step_asymmetry={wanted:g} is beyond what this walk can make ({exc}); about "
            f"{STEP_ASYMMETRY_LIMIT:g} either way works"
        ) from None
    root_xy, root_z = walker.root_curves()
    curves = curves_from_samples(period, samples)
    info = {
        "cadence_spm": cadence,
        "speed_mps": float(root_xy.drift[0]),
        "step_length_m": float(root_xy.drift[0]) * period / 2,
        "step_lengths_m": steps,
        "stride_time_s": period,
        "hip_scale": hip_scale,
        "stance_time_s": {s: (to[s] - ic[s]) % period for s in SIDES},
        "lateral_drift_removed_mps": dense["lateral_drift_mps"],
    }
    event_times = tuple(
        sorted([(s, "ic", ic[s]) for s in SIDES] + [(s, "tc", to[s]) for s in SIDES], key=lambda e: e[2])
    )
    motion = Motion(kind, controls, shape, period, curves, root_xy, root_z, event_times, info)
    _refuse_feet_through_the_floor(motion, kind, cadence)
    return motion


def _refuse_feet_through_the_floor(motion: Motion, kind: str, cadence: float) -> None:
    """A gait whose swing drives a heel or toe through the floor is refused rather than played: steps too
    long for the body's legs at that cadence otherwise build, with the feet several centimetres under it."""
    t = np.linspace(0.0, motion.period_s, 2001)
    marks = Body(motion.shape, motion).landmarks(t)
    lowest = min(float(marks[f"{side}_{part}"][:, 2].min()) for side in SIDES for part in ("heel", "toe"))
    if lowest < -_FLOOR_TOLERANCE_M:
        raise ValueError(
            f"{kind}: at {cadence:g} steps/min and {motion.info['speed_mps']:.2f} m/s the steps "
            f"({motion.info['step_length_m']:.2f} m) are too long for this body: a foot would pass "
            f"{-lowest * 100:.1f} cm through the floor"
        )
