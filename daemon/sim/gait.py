"""What the two gaits, walking (``kinefuse.sim.walking``) and running (``kinefuse.sim.running``), share
before their own kinematics: the landmark tables of joint curves (``GaitTable``), the joint angles of a
stride from a table (``gait_samples``: each leg's landmark curves moved onto its own stance fraction, the
pelvis and trunk from both legs' phases, the arms swinging against the legs) and the timing and options
the controls fix (``gait_plan``: cadence, speed and step length from any two of them, the stance fractions
with ``stance_asymmetry``, the knee range, valgus and trunk leans).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy.interpolate import CubicSpline

from kinefuse.sim.body import BodyShape
from kinefuse.sim.motion import SIDES, knee_target


@dataclasses.dataclass(frozen=True)
class GaitTable:
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


def _bump(x: np.ndarray) -> np.ndarray:
    """64 x³ (1 - x)³ on [0, 1] (peak 1 at 0.5), zero outside: C2."""
    x = np.clip(x, 0.0, 1.0)
    return 64.0 * x**3 * (1.0 - x) ** 3


def _positive(controls: Mapping[str, object], name: str) -> float | None:
    value = controls.get(name)
    if value is None:
        return None
    value = float(value)  # type: ignore[arg-type]
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


def _resolve_speed(
    table: GaitTable, shape: BodyShape, controls: Mapping[str, object]
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


def gait_samples(
    table: GaitTable,
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
    table: GaitTable,
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
        knee_target=knee_target(float(reference.min()), float(reference.max()), controls),
        valgus=math.radians(float(controls.get("knee_valgus_deg", 0.0))),  # type: ignore[arg-type]
        lean=math.radians(float(controls.get("trunk_lean_deg", 0.0))),  # type: ignore[arg-type]
        lateral=math.radians(float(controls.get("trunk_lateral_lean_deg", 0.0))),  # type: ignore[arg-type]
    )
