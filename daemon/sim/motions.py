"""Motions of the synthetic athlete: joint-angle and pelvis trajectories, smooth in time, with exact
first and second derivatives.

Every motion is periodic (a gait stride or one repetition of a task) and repeats for ever. It is built
on a dense grid over one period (about 2 ms apart) and stored as periodic cubic splines
(``scipy.interpolate.CubicSpline(..., bc_type="periodic")``): joint angles from their samples, the
pelvis's horizontal travel as the integral of a spline of its velocity (``PPoly.antiderivative``) and its
height from its samples. Angles, rates and accelerations are those splines and their derivatives,
analytic everywhere: the spline *is* the truth; nothing is differentiated numerically.

Ground contact (walk, run)
--------------------------
Joint angles come from published curves; the pelvis's translation comes from the feet (foot-locked
kinematics). The foot is rigid with a straight sole from the heel to the toe tip; its contact point rolls
from the heel (foot pitched toe-up by more than 2°) to the toe tip (toe-down by more than 2°), blended
smoothly in between. The pelvis moves so that this contact point of the stance foot does not move (zero
material velocity: rolling without slipping) and so that it touches z = 0. In double support the two
feet's constraints are blended smoothly from the trailing to the leading foot; initial contact is the
instant the swinging heel reaches the floor and toe-off the instant the trailing toe leaves it, both
computed from the kinematics. Because normative joint curves are not exactly consistent with a rigid-foot
double support, the swinging heel reaches its lowest point about a centimetre above the floor; initial
contact is that closest approach, and the hand-over to the leading foot (``_HANDOVER`` of the stride)
lowers the pelvis onto it; the trailing leg is re-posed by inverse kinematics meanwhile so its toe stays
planted. The swinging toe can graze below the floor by up to about a centimetre in early swing; tests
bound it.

Running is built differently (``kinefuse.sim.running``): normative running curves in this foot-locked
chain make the pelvis rise through stance, the opposite of what runners do, so there the pelvis is
designed and the legs follow by inverse kinematics.

Closed-chain tasks (squat, sit-to-stand, lunge, balance, drop landing) keep the feet planted exactly: the
ankle angles are solved from the foot's orientation on the floor and, where the design fixes the pelvis
path (drop landing, the lunge's rear leg, knee valgus), the legs follow by inverse kinematics.

Sources
-------
- Walking: landmark values of sagittal hip, knee and ankle angles over the gait cycle (initial contact,
  loading response, mid stance, terminal stance, pre-swing, initial/mid/terminal swing; toe-off at 62 %)
  read from the normal curves of Perry & Burnfield, "Gait Analysis: Normal and Pathological Function",
  2nd ed. (2010), chs. 4-7, with the pelvic and frontal-plane hip patterns of Kadaba, Ramakrishnan &
  Wootten, "Measurement of lower extremity kinematics during level walking", J Orthop Res 8:383 (1990).
  The trunk's counter-rotation and the arm swing are designed from plausible ranges (shoulder ±9°, elbow
  15-25°; Murray, Sepic & Barnard 1967 report similar magnitudes).
- Squat, sit-to-stand, lunge, single-leg balance, drop landing: designed here from stated plausible
  ranges (each builder's docstring), not from a data set.

Controls (all optional): ``cadence_spm``, ``speed_mps``, ``step_length_m`` (walk; speed = cadence ·
step length / 60, steps per minute times metres per step; give any two, or all three consistently),
``stance_asymmetry`` (0.10: right stance time 10 % longer than left), ``step_asymmetry`` (0.10: right
step 10 % longer than left, -0.10: left 10 % longer than right, by scaling each hip's flexion range; up to
about 0.1 either way), ``knee_valgus_deg``,
``trunk_lean_deg`` (forward) and ``trunk_lateral_lean_deg`` (to the left), ``rep_period_s`` (non-cyclic
tasks), ``knee_rom_scale``, ``knee_flexion_change_deg_per_week`` with ``session_week``, ``sway_deg``
(single-leg balance), ``drop_height_m`` (drop landing), ``stance_leg`` (single-leg balance: "left"/"right"),
``lead_leg`` (lunge). ``shape`` (a BodyShape) sizes the motion.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Callable, Mapping

import numpy as np
from scipy.integrate import cumulative_simpson
from scipy.interpolate import CubicSpline, PPoly
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import brentq, root_scalar

from kinefuse.sim.body import JOINT_SIGNS, JOINTS, BodyShape, chain_kinematics
from kinefuse.sim.rotations import cardan_yxz, skew, yxz_from_matrix

KINDS = ("walk", "run", "squat", "sit_to_stand", "lunge", "single_leg_balance", "drop_landing")
GAIT_KINDS = ("walk", "run")
_KNEE_RANGE_CONTROLS = ("knee_rom_scale", "knee_flexion_change_deg_per_week", "session_week")
_WALK_ONLY_CONTROLS = (*_KNEE_RANGE_CONTROLS, "step_asymmetry")
GAIT_CONTROLS = (
    "cadence_spm",
    "speed_mps",
    "step_length_m",
    "stance_asymmetry",
    "step_asymmetry",
    "knee_valgus_deg",
    "trunk_lean_deg",
    "trunk_lateral_lean_deg",
    "knee_rom_scale",
    "knee_flexion_change_deg_per_week",
    "session_week",
)
SIDES = ("left", "right")
GRAVITY = 9.81

_GRID_DT = 0.002  # seconds between the dense samples a motion is built from
_MIN_GRID = 800
_ROLL_DEG = 5.0  # foot pitch over which the contact point rolls from heel to toe


# ------------------------------------------------------------------------------------------------------
# periodic splines


class _Periodic:
    """A periodic vector function of time from a PPoly over [0, period], plus an optional linear drift."""

    def __init__(self, period: float, position: PPoly, drift: np.ndarray | None = None) -> None:
        self.period = float(period)
        self._p = position
        self._v = position.derivative(1)
        self._a = position.derivative(2)
        self.drift = None if drift is None else np.asarray(drift, dtype=np.float64)

    def columns(self, which: slice) -> _Periodic:
        """Some components of the curve."""
        drift = None if self.drift is None else self.drift[which]
        return _Periodic(self.period, PPoly(self._p.c[..., which], self._p.x), drift)

    def scaled(self, factors: np.ndarray) -> _Periodic:
        """The same curve with each component multiplied by ``factors`` (k,)."""
        factors = np.asarray(factors, dtype=np.float64)
        drift = None if self.drift is None else self.drift * factors
        return _Periodic(self.period, PPoly(self._p.c * factors, self._p.x), drift)

    @staticmethod
    def grid(period: float) -> np.ndarray:
        n = max(_MIN_GRID, int(math.ceil(period / _GRID_DT)))
        return np.arange(n) * (period / n)

    @classmethod
    def from_samples(cls, period: float, values: np.ndarray) -> _Periodic:
        """Interpolate samples (N, k) taken at ``grid(period)`` with a periodic cubic spline."""
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        x = np.arange(n + 1) * (period / n)
        y = np.concatenate([values, values[:1]], axis=0)
        return cls(period, CubicSpline(x, y, bc_type="periodic", axis=0))

    @classmethod
    def from_rates(
        cls, period: float, rates: np.ndarray, keep_drift: np.ndarray
    ) -> tuple[_Periodic, np.ndarray]:
        """Integrate rates (N, k) sampled at ``grid(period)``: a periodic cubic spline of the rate minus its
        mean, integrated exactly, plus the mean as a drift where ``keep_drift`` (k,) is true (elsewhere the
        mean is dropped). The position's periodic part has zero mean. Returns the curve and the means."""
        rates = np.asarray(rates, dtype=np.float64)
        n = len(rates)
        x = np.arange(n + 1) * (period / n)
        spline = CubicSpline(x, np.concatenate([rates, rates[:1]], axis=0), bc_type="periodic", axis=0)
        mean = spline.integrate(0.0, period) / period
        periodic = CubicSpline(
            x, np.concatenate([rates, rates[:1]], axis=0) - mean, bc_type="periodic", axis=0
        )
        position = periodic.antiderivative(1)
        offset = position.integrate(0.0, period) / period
        position.c[-1] -= offset  # the constant term of every piece
        drift = np.where(np.asarray(keep_drift, dtype=bool), mean, 0.0)
        return cls(period, position, drift), mean

    def __call__(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.asarray(t, dtype=np.float64)
        tau = np.mod(t, self.period)
        p, v, a = self._p(tau), self._v(tau), self._a(tau)
        if self.drift is not None:
            p = p + t[:, None] * self.drift
            v = v + self.drift
        return p, v, a


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, 10x³ - 15x⁴ + 6x⁵ between: C2 (zero slope and curvature at both ends)."""
    x = np.clip(x, 0.0, 1.0)
    return x**3 * (10.0 + x * (-15.0 + 6.0 * x))


def _bump(x: np.ndarray) -> np.ndarray:
    """64 x³ (1 - x)³ on [0, 1] (peak 1 at 0.5), zero outside: C2."""
    x = np.clip(x, 0.0, 1.0)
    return 64.0 * x**3 * (1.0 - x) ** 3


def _ramp_profile(phase: np.ndarray, knots: list[tuple[float, float]]) -> np.ndarray:
    """A C2 profile through (phase, level) knots with smoothstep transitions between consecutive knots;
    phases in [0, 1] ascending, the first at 0 and the last at 1 with the same level (periodic)."""
    phase = np.mod(phase, 1.0)
    out = np.full_like(phase, knots[0][1])
    for (p0, v0), (p1, v1) in zip(knots[:-1], knots[1:], strict=True):
        if p1 > p0 and v1 != v0:
            out = out + (v1 - v0) * _smoothstep((phase - p0) / (p1 - p0))
    return out


def _cycle_spline(
    points: tuple[tuple[float, float], ...], warp: Callable[[np.ndarray], np.ndarray]
) -> CubicSpline:
    """A periodic spline over the unit cycle through landmark (percent of cycle, degrees) points whose
    phases are moved by ``warp``; values in radians."""
    pct = np.array([p for p, _ in points], dtype=np.float64) / 100.0
    val = np.radians([v for _, v in points])
    if pct[0] != 0.0:
        raise ValueError("landmarks must start at 0 % of the cycle")
    if pct[-1] == 1.0:
        pct, val = pct[:-1], val[:-1]
    u = warp(pct)
    return CubicSpline(np.append(u, 1.0), np.append(val, val[0]), bc_type="periodic")


def _quintic_hermite(
    tau: np.ndarray, h: float, start: tuple[float, float, float], end: tuple[float, float, float]
) -> np.ndarray:
    """The quintic on [0, h] with position, velocity and acceleration ``start`` at 0 and ``end`` at h."""
    p0, v0, a0 = start
    p1, v1, a1 = end
    s = np.asarray(tau, dtype=np.float64) / h
    h00 = 1 - 10 * s**3 + 15 * s**4 - 6 * s**5
    h10 = s - 6 * s**3 + 8 * s**4 - 3 * s**5
    h20 = 0.5 * s**2 - 1.5 * s**3 + 1.5 * s**4 - 0.5 * s**5
    h01 = 10 * s**3 - 15 * s**4 + 6 * s**5
    h11 = -4 * s**3 + 7 * s**4 - 3 * s**5
    h21 = 0.5 * s**3 - s**4 + 0.5 * s**5
    return p0 * h00 + v0 * h * h10 + a0 * h * h * h20 + p1 * h01 + v1 * h * h11 + a1 * h * h * h21


# ------------------------------------------------------------------------------------------------------
# gait tables


@dataclasses.dataclass(frozen=True)
class _GaitTable:
    """Landmark (percent of the gait cycle from initial contact, degrees) curves of one leg and the
    whole-body parameters of a gait."""

    toe_off: float  # fraction of the cycle at toe-off in the source
    hip: tuple[tuple[float, float], ...]  # flexion
    knee: tuple[tuple[float, float], ...]  # flexion
    ankle: tuple[tuple[float, float], ...]  # dorsiflexion
    hip_adduction: tuple[tuple[float, float], ...]
    obliquity: tuple[tuple[float, float], ...]  # own side up; antisymmetric over half a cycle
    tilt_mean: float  # pelvic anterior tilt (deg) relative to standing
    tilt_amplitude: float
    tilt_peak: float  # phase of the maximum anterior tilt (twice per stride)
    rotation_amplitude: float  # pelvic rotation, own side forward at own initial contact
    trunk_lean: float  # forward lean of the trunk (deg)
    shoulder_mean: float
    shoulder_gain: float  # shoulder flexion per degree of ipsilateral hip flexion (arm swing)
    shoulder_abduction: float
    elbow_mean: float
    elbow_gain: float  # elbow flexion per degree of shoulder flexion
    cadence_spm: float
    step_length_per_height: float


# fmt: off
# Perry & Burnfield (2010) sagittal curves (the hip as the thigh against the vertical, their convention:
# 20 deg flexion at initial contact, 20 deg apparent hyperextension in terminal stance, 25 deg in terminal
# swing); frontal plane and pelvis after Kadaba et al. (1990).
_WALK = _GaitTable(
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
# the Motion


class Motion:
    """Joint-angle and pelvis trajectories of one person, periodic with ``period_s``.

    ``angles(joint, t)`` -> (angle, rate, acceleration), each (n, 3) in rad, rad/s, rad/s², the clinical
    (flexion, adduction, rotation) angles of ``kinefuse.sim.body``; ``root(t)`` -> position, velocity,
    acceleration (n, 3) of the pelvis origin in the travel frame (x forward, y left, z up; the body model
    turns it by its heading and moves it to its origin). ``event_times`` lists (side, "ic"|"tc", time in
    [0, period)) of the contacts the kinematics make; ``info`` holds what the builder measured or chose
    (cadence, speed, step length, stance times, hip-range scale, ...).
    """

    def __init__(
        self,
        kind: str,
        controls: Mapping[str, object],
        shape: BodyShape,
        period_s: float,
        curves: Mapping[str, _Periodic],
        root_xy: _Periodic,
        root_z: _Periodic,
        event_times: tuple[tuple[str, str, float], ...] = (),
        info: Mapping[str, object] | None = None,
    ) -> None:
        self.kind = kind
        self.controls = dict(controls)
        self.shape = shape
        self.period_s = float(period_s)
        self._curves = dict(curves)
        self._root_xy = root_xy
        self._root_z = root_z
        self.event_times = tuple(event_times)
        self.info = dict(info or {})

    @property
    def joints(self) -> tuple[str, ...]:
        return tuple(self._curves)

    def angles(self, joint: str, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if joint not in self._curves:
            raise ValueError(f"unknown joint {joint!r}; expected one of {', '.join(self._curves)}")
        return self._curves[joint](np.atleast_1d(np.asarray(t, dtype=np.float64)))

    def root(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        pxy, vxy, axy = self._root_xy(t)
        pz, vz, az = self._root_z(t)
        return (np.concatenate([pxy, pz], 1), np.concatenate([vxy, vz], 1), np.concatenate([axy, az], 1))

    @property
    def travel_velocity(self) -> np.ndarray:
        """Mean velocity of the pelvis in the travel frame (m/s; zero for tasks done on the spot)."""
        drift = self._root_xy.drift
        return np.zeros(3) if drift is None else np.array([drift[0], drift[1], 0.0])

    def for_shape(self, shape: BodyShape) -> Motion:
        """The same task with the same controls, for another body."""
        return make_motion(self.kind, shape=shape, **self.controls)

    def __repr__(self) -> str:
        controls = ", ".join(f"{k}={v!r}" for k, v in self.controls.items())
        return f"Motion({self.kind!r}, period_s={self.period_s:.4f}{', ' if controls else ''}{controls})"


def _curves_from_samples(period: float, samples: Mapping[str, np.ndarray]) -> dict[str, _Periodic]:
    missing = [j for j in JOINTS if j not in samples]
    if missing:
        raise AssertionError(f"motion builder left joints out: {missing}")
    whole = _Periodic.from_samples(period, np.concatenate([samples[j] for j in JOINTS], axis=1))
    return {j: whole.columns(slice(3 * i, 3 * i + 3)) for i, j in enumerate(JOINTS)}  # one spline fit for all


def _evaluate(curves: Mapping[str, _Periodic], t: np.ndarray) -> dict[str, tuple[np.ndarray, ...]]:
    return {j: c(t) for j, c in curves.items()}


def _feet(
    shape: BodyShape, curves: Mapping[str, _Periodic], t: np.ndarray
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
        s = _smoothstep((delta - pitch) / (2 * delta))[:, None]  # 0: heel, 1: toe
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
# walk and run


def _positive(controls: Mapping[str, object], name: str) -> float | None:
    value = controls.get(name)
    if value is None:
        return None
    value = float(value)  # type: ignore[arg-type]
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


def _resolve_speed(
    table: _GaitTable, shape: BodyShape, controls: Mapping[str, object]
) -> tuple[float, float, float]:
    """(cadence steps/min, speed m/s, step length m) from any two of them (speed = cadence · step / 60)."""
    cadence = _positive(controls, "cadence_spm")
    speed = _positive(controls, "speed_mps")
    step = _positive(controls, "step_length_m")
    if cadence is not None and speed is not None and step is not None:
        implied = cadence * step / 60.0
        if abs(implied - speed) > 0.01 * speed:
            raise ValueError(
                f"cadence_spm={cadence:g} and step_length_m={step:g} give a speed of {implied:.3f} m/s, which "
                f"conflicts with speed_mps={speed:g} (speed = cadence x step length / 60); give two of the three, "
                "or three that agree within 1 %"
            )
    elif cadence is not None and step is not None:
        speed = cadence * step / 60.0
    elif cadence is not None and speed is not None:
        step = 60.0 * speed / cadence
    elif step is not None and speed is not None:
        cadence = 60.0 * speed / step
    elif cadence is not None:
        step = table.step_length_per_height * shape.height_m
        speed = cadence * step / 60.0
    elif speed is not None:
        cadence = table.cadence_spm
        step = 60.0 * speed / cadence
    elif step is not None:
        cadence = table.cadence_spm
        speed = cadence * step / 60.0
    else:
        cadence = table.cadence_spm
        step = table.step_length_per_height * shape.height_m
        speed = cadence * step / 60.0
    return float(cadence), float(speed), float(step)  # type: ignore[arg-type]


def _knee_target(reference_min: float, reference_max: float, controls: Mapping[str, object]) -> float:
    """Peak knee flexion (rad) after ``knee_rom_scale`` and ``knee_flexion_change_deg_per_week`` x ``session_week``."""
    scale = float(controls.get("knee_rom_scale", 1.0))  # type: ignore[arg-type]
    per_week = float(controls.get("knee_flexion_change_deg_per_week", 0.0))  # type: ignore[arg-type]
    week = float(controls.get("session_week", 0.0))  # type: ignore[arg-type]
    if not scale > 0:
        raise ValueError(f"knee_rom_scale must be positive, got {scale}")
    target = reference_min + (reference_max - reference_min) * scale + math.radians(per_week * week)
    if target <= reference_min + math.radians(5.0):
        raise ValueError(
            f"knee_rom_scale={scale:g} with {per_week:g} deg/week at week {week:g} leaves no knee flexion range"
        )
    return target


def _gait_samples(
    table: _GaitTable,
    t: np.ndarray,
    period: float,
    t_ic: Mapping[str, float],
    stance: Mapping[str, float],
    hip_scale: float,
    step_asymmetry: float,
    knee_target: float,
    valgus: float,
    lean: float,
    lateral_lean: float,
) -> dict[str, np.ndarray]:
    """Joint angles (rad) of a stride at times ``t``: each leg's landmark curves moved onto its own
    stance fraction, the pelvis and trunk from both legs' phases, the arms swinging against the legs."""
    p_to = table.toe_off

    def warp_for(f: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: np.where(p <= p_to, p * f / p_to, f + (p - p_to) * (1 - f) / (1 - p_to))

    reference = np.linspace(0.0, 1.0, 2001)[:-1]
    identity = warp_for(p_to)
    hip_mean = float(np.mean(_cycle_spline(table.hip, identity)(reference)))
    knee_ref = _cycle_spline(table.knee, identity)(reference)
    knee_min, knee_max = float(knee_ref.min()), float(knee_ref.max())
    knee_gain = (knee_target - knee_min) / (knee_max - knee_min)
    rad = math.radians
    side_scale = {"left": 1.0 - step_asymmetry / 2, "right": 1.0 + step_asymmetry / 2}
    leg: dict[str, dict[str, np.ndarray]] = {}
    for side in SIDES:
        f = stance[side]
        warp = warp_for(f)
        u = np.mod((t - t_ic[side]) / period, 1.0)
        leg[side] = {
            "u": u,
            "hip": hip_mean + hip_scale * side_scale[side] * (_cycle_spline(table.hip, warp)(u) - hip_mean),
            "knee": knee_min + knee_gain * (_cycle_spline(table.knee, warp)(u) - knee_min),
            "ankle": _cycle_spline(table.ankle, warp)(u),
            "add": _cycle_spline(table.hip_adduction, warp)(u),
            "obl": _cycle_spline(table.obliquity, warp)(u),
            "valgus": valgus * _bump(u / f),
        }
    u_l, u_r = leg["left"]["u"], leg["right"]["u"]
    tilt = rad(table.tilt_mean) + 0.5 * rad(table.tilt_amplitude) * (
        np.cos(4 * np.pi * (u_l - table.tilt_peak)) + np.cos(4 * np.pi * (u_r - table.tilt_peak))
    )
    obliquity = 0.5 * (leg["left"]["obl"] - leg["right"]["obl"])
    rotation = (
        hip_scale * 0.5 * rad(table.rotation_amplitude) * (np.cos(2 * np.pi * u_r) - np.cos(2 * np.pi * u_l))
    )
    tilt_mean = rad(table.tilt_mean)
    lumbar = np.stack(
        [
            rad(table.trunk_lean) + lean - tilt_mean - 0.6 * (tilt - tilt_mean),
            0.8 * obliquity + lateral_lean,
            -1.4 * rotation,
        ],
        axis=1,
    )
    out = {"pelvis": np.stack([tilt, obliquity, rotation], axis=1), "lumbar": lumbar}
    out["neck"] = np.stack(
        [-(tilt + lumbar[:, 0]), obliquity - lumbar[:, 1], -(rotation + lumbar[:, 2])], axis=1
    )
    zero = np.zeros_like(t)
    for side, sign in (("left", 1.0), ("right", -1.0)):
        g = leg[side]
        own_obliquity, own_rotation = sign * obliquity, sign * rotation
        out[f"{side}_hip"] = np.stack([g["hip"], g["add"], own_rotation], axis=1)
        out[f"{side}_knee"] = np.stack([g["knee"], -g["valgus"], zero], axis=1)
        # inversion keeps the sole level across the pelvis, hip and knee's frontal-plane rotations
        out[f"{side}_ankle"] = np.stack([g["ankle"], own_obliquity - g["add"] + g["valgus"], zero], axis=1)
        shoulder = rad(table.shoulder_mean) + table.shoulder_gain * (g["hip"] - hip_mean)
        out[f"{side}_shoulder"] = np.stack([shoulder, zero + rad(table.shoulder_abduction), zero], axis=1)
        elbow = rad(table.elbow_mean) + table.elbow_gain * (shoulder - rad(table.shoulder_mean))
        out[f"{side}_elbow"] = np.stack([elbow, zero, zero], axis=1)
    return out


def controls_for(kind: str) -> tuple[str, ...]:
    """The controls ``make_motion`` accepts for ``kind``."""
    if kind == "run":  # the designed swing sets the knee's range and the steps (kinefuse.sim.running)
        return tuple(c for c in GAIT_CONTROLS if c not in _WALK_ONLY_CONTROLS)
    if kind in GAIT_KINDS:
        return GAIT_CONTROLS
    from kinefuse.sim.tasks import COMMON_CONTROLS, TASK_CONTROLS  # tasks builds on this module

    return COMMON_CONTROLS + TASK_CONTROLS[kind]


def make_motion(kind: str, shape: BodyShape | None = None, **controls: object) -> Motion:
    """A motion of ``kind`` (one of ``KINDS``) for ``shape`` (default ``BodyShape()``); see the module
    docstring for the controls. Unknown controls, and controls that do not apply to ``kind``, are errors."""
    if kind not in KINDS:
        raise ValueError(f"unknown motion kind {kind!r}; expected one of {', '.join(KINDS)}")
    shape = shape or BodyShape()
    controls = {k: v for k, v in controls.items() if v is not None}
    unknown = sorted(set(controls) - set(controls_for(kind)))
    if unknown:
        raise ValueError(f"{kind}: controls {unknown} do not apply; it takes {', '.join(controls_for(kind))}")
    with (
        _BUILD_LOCK
    ):  # sources are built in worker threads: the second asking for a motion reuses the first's
        return _build_motion(kind, shape, tuple(sorted(controls.items())))


@functools.lru_cache(maxsize=32)
def _build_motion(kind: str, shape: BodyShape, controls: tuple[tuple[str, object], ...]) -> Motion:
    """Motions are immutable and take a fraction of a second to build: a restarted source reuses them."""
    if kind == "run":
        from kinefuse.sim.running import run_motion  # running builds on this module's splines

        return run_motion(shape, dict(controls))
    if kind in GAIT_KINDS:
        return _gait_motion(kind, shape, dict(controls))
    from kinefuse.sim.tasks import task_motion  # tasks builds on this module's splines

    return task_motion(kind, shape, dict(controls))


# ------------------------------------------------------------------------------------------------------
# leg inverse kinematics


def _joint_rotation(joint: str, q: np.ndarray) -> np.ndarray:
    signs = np.array(JOINT_SIGNS[joint])
    zero = np.zeros_like(q)
    return cardan_yxz(q * signs, zero, zero)[0]


def _joint_angles_of(joint: str, R: np.ndarray) -> np.ndarray:
    return yxz_from_matrix(R) / np.array(JOINT_SIGNS[joint])


def _align(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotations (n, 3, 3) turning directions u (n, 3) onto v (n, 3)."""
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    k = np.cross(u, v)
    c = np.sum(u * v, axis=1)
    K = skew(k)
    return np.eye(3) + K + (K @ K) / (1.0 + c)[:, None, None]


def _leg_ik(
    shape: BodyShape,
    side: str,
    pelvis: np.ndarray,
    hip: np.ndarray,
    knee: np.ndarray,
    ankle: np.ndarray,
    shift: np.ndarray | None = None,
    knee_adduction: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Re-pose a leg so the ankle moves by ``shift`` relative to the hip ((n, 3), travel frame; default:
    it stays) with the knee's adduction set to ``knee_adduction`` (default: unchanged),
    keeping the pelvis, the foot's orientation and the knee's axial rotation.

    The knee flexion comes from the hip-ankle distance (|d|² = Lt² + Ls² + 2 Lt Ls cos f cos b), the thigh
    turns by the smallest rotation that points the leg at the target, and the ankle angles take up the
    difference to the foot's unchanged orientation. Returns hip, knee, ankle angles and a mask of the
    samples the leg could reach (elsewhere the knee is straight and the ankle falls short)."""
    thigh, shank = shape.thigh_length, shape.shank_length
    down_t = np.array([0.0, 0.0, -thigh])
    down_s = np.array([0.0, 0.0, -shank])
    R_pelvis = _joint_rotation("pelvis", pelvis)
    R_thigh = R_pelvis @ _joint_rotation(f"{side}_hip", hip)
    R_shank = R_thigh @ _joint_rotation(f"{side}_knee", knee)
    R_foot = R_shank @ _joint_rotation(f"{side}_ankle", ankle)
    target = np.einsum("nij,j->ni", R_thigh, down_t) + np.einsum("nij,j->ni", R_shank, down_s)
    if shift is not None:
        target = target + shift
    new_knee = knee.copy()
    if knee_adduction is not None:
        new_knee[:, 1] = knee_adduction
    length2 = np.sum(target * target, axis=1)
    cos_f = (length2 - thigh**2 - shank**2) / (2 * thigh * shank * np.cos(new_knee[:, 1]))
    reachable = cos_f <= 1.0
    new_knee[:, 0] = np.arccos(np.clip(cos_f, -1.0, 1.0))
    R_knee = _joint_rotation(f"{side}_knee", new_knee)
    reach = np.einsum("nij,nj->ni", R_thigh, down_t + R_knee @ down_s)
    R_thigh_new = _align(reach, target) @ R_thigh
    new_hip = _joint_angles_of(f"{side}_hip", np.swapaxes(R_pelvis, 1, 2) @ R_thigh_new)
    R_shank_new = R_thigh_new @ R_knee
    new_ankle = _joint_angles_of(f"{side}_ankle", np.swapaxes(R_shank_new, 1, 2) @ R_foot)
    return new_hip, new_knee, new_ankle, reachable


def _cyclic_ramp(t: np.ndarray, start: float, end: float, period: float) -> np.ndarray:
    """0 at ``start``, 1 at ``end`` (smoothstep), measured forward around the cycle from ``start``."""
    length = (end - start) % period
    return _smoothstep(((t - start) % period) / length)


def _in_window(t: np.ndarray, start: float, end: float, period: float) -> np.ndarray:
    return ((t - start) % period) <= ((end - start) % period)


def _window_indices(t: np.ndarray, start: float, end: float, period: float) -> np.ndarray:
    """Grid indices from ``start`` to ``end`` going forward around the cycle, in time order."""
    n = len(t)
    first = int(math.ceil((start % period) / (period / n))) % n
    count = int(math.floor(((end - start) % period) / (period / n))) + 1
    return (first + np.arange(count)) % n


# ------------------------------------------------------------------------------------------------------
# walk and run: the pelvis from the feet

_HANDOVER = 0.10  # of the stride: before heel contact the pelvis hands over to the leading foot's constraint
_RELEASE = 0.09  # of the stride: after toe-off the trailing leg's correction fades over this long
_TOE_CLEARANCE_M = 0.012
_CLEARANCE_RAMP = 0.06  # of the stride after toe-off
_CLEARANCE_SMOOTHING = 0.012  # of the stride: Gaussian width of the dorsiflexion added for clearance


def _gait_root(
    shape: BodyShape,
    curves: Mapping[str, _Periodic],
    period: float,
    t_ic: Mapping[str, float],
    stance: Mapping[str, float],
) -> tuple[_Periodic, _Periodic, dict[str, float], dict[str, float], dict[str, object]]:
    """The pelvis's travel from the feet (module docstring). Returns its horizontal and vertical curves,
    initial contact and toe-off times, and the dense quantities the double-support correction needs."""
    t = _Periodic.grid(period)
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
    root_xy, mean_v = _Periodic.from_rates(period, v[:, :2], keep_drift=np.array([True, False]))
    root_z = _Periodic.from_samples(period, z[:, None])
    dense = {
        "t": t,
        "v": v,
        "z": z,
        "lock_v": lock_v,
        "lock_z": lock_z,
        "lateral_drift_mps": float(mean_v[1]),
    }
    return root_xy, root_z, ic, to, dense


def _double_support_ik(
    shape: BodyShape,
    samples: dict[str, np.ndarray],
    period: float,
    dense: Mapping[str, object],
    ic: Mapping[str, float],
    to: Mapping[str, float],
) -> None:
    """Keep the trailing foot where its own constraint put it while the pelvis follows the leading foot:
    from the hand-over before the other heel's contact to this foot's toe-off the trailing leg is re-posed
    (``_leg_ik``) so the ankle sits at its planted place; the correction then fades over ``_RELEASE``."""
    t: np.ndarray = dense["t"]  # type: ignore[assignment]
    v: np.ndarray = dense["v"]  # type: ignore[assignment]
    z: np.ndarray = dense["z"]  # type: ignore[assignment]
    dt = period / len(t)
    for trail, lead in (("left", "right"), ("right", "left")):
        start = ic[lead] - _HANDOVER * period
        release, end = to[trail], to[trail] + _RELEASE * period
        idx = _window_indices(t, start, end, period)
        lock_v = dense["lock_v"][trail][idx]  # type: ignore[index]
        lock_z = dense["lock_z"][trail][idx]  # type: ignore[index]
        gap_xy = cumulative_simpson(v[idx, :2] - lock_v[:, :2], dx=dt, axis=0, initial=0.0)
        gap = np.concatenate(
            [gap_xy, (z[idx] - lock_z)[:, None]], axis=1
        )  # pelvis minus where the foot puts it
        tt = t[idx]
        hold = np.where(
            _in_window(tt, start, release, period), 1.0, 1.0 - _cyclic_ramp(tt, release, end, period)
        )
        hip, knee, ankle, ok = _leg_ik(
            shape,
            trail,
            samples["pelvis"][idx],
            samples[f"{trail}_hip"][idx],
            samples[f"{trail}_knee"][idx],
            samples[f"{trail}_ankle"][idx],
            shift=-hold[:, None] * gap,
        )
        if not ok.all():
            raise ValueError("walk: the trailing leg cannot reach its planted foot in double support")
        samples[f"{trail}_hip"][idx] = hip
        samples[f"{trail}_knee"][idx] = knee
        samples[f"{trail}_ankle"][idx] = ankle


@dataclasses.dataclass(frozen=True)
class GaitPlan:
    """What the controls fix for a gait before any kinematics: timing, speed and the joint-curve options."""

    cadence: float
    speed: float
    step: float
    period: float
    stance: dict[str, float]  # stance time as a fraction of the stride, per side
    t_ic: dict[str, float]  # designed initial-contact time in the stride, per side
    knee_target: float
    valgus: float
    lean: float
    lateral: float


def gait_plan(
    table: _GaitTable,
    shape: BodyShape,
    controls: Mapping[str, object],
    contact_length_m: float | None = None,
    max_duty: float = 1.0,
) -> GaitPlan:
    """Timing and options of a gait. The mean stance fraction is the table's toe-off, or, given
    ``contact_length_m``, the fraction that lets the pelvis travel that far during each stance, at most
    ``max_duty``."""
    cadence, speed, step = _resolve_speed(table, shape, controls)
    period = 120.0 / cadence
    asym = float(controls.get("stance_asymmetry", 0.0))  # type: ignore[arg-type]
    if not -0.5 < asym < 0.5:
        raise ValueError(f"stance_asymmetry must be between -0.5 and 0.5, got {asym}")
    duty = table.toe_off if contact_length_m is None else min(max_duty, contact_length_m / speed / period)
    f_left = 2 * duty / (2 + asym)
    stance = {"left": f_left, "right": (1 + asym) * f_left}
    reference = _cycle_spline(table.knee, lambda p: p)(np.linspace(0.0, 1.0, 2001)[:-1])
    return GaitPlan(
        cadence=cadence,
        speed=speed,
        step=step,
        period=period,
        stance=stance,
        t_ic={"left": 0.0, "right": period * (1 + stance["left"] - stance["right"]) / 2},
        knee_target=_knee_target(float(reference.min()), float(reference.max()), controls),
        valgus=math.radians(float(controls.get("knee_valgus_deg", 0.0))),  # type: ignore[arg-type]
        lean=math.radians(float(controls.get("trunk_lean_deg", 0.0))),  # type: ignore[arg-type]
        lateral=math.radians(float(controls.get("trunk_lateral_lean_deg", 0.0))),  # type: ignore[arg-type]
    )


def _step_lengths(
    shape: BodyShape,
    curves: Mapping[str, _Periodic],
    root_xy: _Periodic,
    root_z: _Periodic,
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


def _toe_clearance(
    shape: BodyShape,
    samples: dict[str, np.ndarray],
    period: float,
    root_xy: _Periodic,
    root_z: _Periodic,
    ic: Mapping[str, float],
    to: Mapping[str, float],
) -> None:
    """Dorsiflex the swinging ankle where the normative curves would drag the toe below
    ``_TOE_CLEARANCE_M`` (reached ``_CLEARANCE_RAMP`` of the stride after toe-off): real walkers clear the
    floor by 1-2 cm in swing, and this chain, with its rigid flat foot, would scuff it otherwise."""
    t = _Periodic.grid(period)
    (pxy, vxy, axy), (pz, vz, az) = root_xy(t), root_z(t)
    root = (np.concatenate([pxy, pz], 1), np.concatenate([vxy, vz], 1), np.concatenate([axy, az], 1))
    sigma = _CLEARANCE_SMOOTHING * len(t)
    for _ in range(3):  # the lift is linear in the angle only for small angles: repeat
        curves = _curves_from_samples(period, samples)
        feet = chain_kinematics(shape, _evaluate(curves, t), root, segments=("left_foot", "right_foot"))
        for side in SIDES:
            foot = feet[f"{side}_foot"]
            toe = foot.point(shape.toe_offset)[0]
            lever = np.linalg.norm((toe - foot.position)[:, :2], axis=1)
            after_off = _cyclic_ramp(t, to[side], to[side] + _CLEARANCE_RAMP * period, period)
            swing = _in_window(t, to[side], ic[side] - _HANDOVER * period, period)
            wanted = np.where(swing, _TOE_CLEARANCE_M * after_off, -np.inf)
            lift = np.maximum(0.0, wanted - toe[:, 2]) / lever
            smooth = gaussian_filter1d(lift, sigma, mode="wrap") * np.where(swing, after_off, 0.0)
            samples[f"{side}_ankle"][:, 0] += 1.2 * smooth  # (smoothing must not reach back into stance)


_OTHER_SIDE = {"left": "right", "right": "left"}
_BUILD_LOCK = threading.Lock()
STEP_ASYMMETRY_LIMIT = 0.1


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


def _mirrored(motion: Motion, controls: Mapping[str, object]) -> Motion:
    """``motion`` reflected left-right: sides swap; clinical angles are already mirror-symmetric, except the
    midline joints' lateral angles (adduction, rotation), which change sign, as does sideways travel."""
    curves = {}
    for joint, curve in motion._curves.items():
        side, _, rest = joint.partition("_")
        if side in _OTHER_SIDE:
            curves[f"{_OTHER_SIDE[side]}_{rest}"] = curve
        else:
            curves[joint] = curve.scaled(np.array([1.0, -1.0, -1.0]))
    events = tuple((_OTHER_SIDE[side], kind, time) for side, kind, time in motion.event_times)
    info = {k: ({_OTHER_SIDE[s]: v for s, v in value.items()} if isinstance(value, dict) else value)
            for k, value in motion.info.items()}  # fmt: skip
    root_xy = motion._root_xy.scaled(np.array([1.0, -1.0]))
    return Motion(motion.kind, controls, motion.shape, motion.period_s, curves, root_xy, motion._root_z, events,
                  info)  # fmt: skip


def _gait_motion(kind: str, shape: BodyShape, controls: Mapping[str, object]) -> Motion:
    if float(controls.get("step_asymmetry", 0.0)) < 0:  # type: ignore[arg-type]
        # the left-long case is built as its mirror image (the right-long one) and reflected: the walk's
        # double-support correction does not reach every left-long split
        return _mirrored(_gait_motion(kind, shape, _mirror_controls(controls)), controls)
    table = _WALK
    plan = gait_plan(table, shape, controls)
    cadence, speed, step, period = plan.cadence, plan.speed, plan.step, plan.period
    t_ic, stance = plan.t_ic, plan.stance
    t = _Periodic.grid(period)

    def build(hip_scale: float, asymmetry: float):
        samples = _gait_samples(table, t, period, t_ic, stance, hip_scale, asymmetry, plan.knee_target,
                                plan.valgus, plan.lean, plan.lateral)  # fmt: skip
        curves = _curves_from_samples(period, samples)
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
        _double_support_ik(shape, samples, period, dense, ic, to)
    except ValueError as exc:
        if not wanted:
            raise
        raise ValueError(
            f"{kind}: step_asymmetry={wanted:g} is beyond what this walk can make ({exc}); about "
            f"{STEP_ASYMMETRY_LIMIT:g} either way works"
        ) from None
    steps = _step_lengths(shape, curves, root_xy, root_z, ic, period)
    _toe_clearance(shape, samples, period, root_xy, root_z, ic, to)
    curves = _curves_from_samples(period, samples)
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
    return Motion(kind, controls, shape, period, curves, root_xy, root_z, event_times, info)
