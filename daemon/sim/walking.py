"""Walking: Perry & Burnfield's normative joint curves (``_WALK``) with the pelvis carried by the stance
foot.

Ground contact
--------------
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

The hip range is solved so that the stride is two steps of the step length asked for;
``step_asymmetry`` splits it between the sides (a left-long split is built as the mirror image of the
right-long one, ``Motion.mirrored``), and the swinging ankle is dorsiflexed where the normative curves
would drag the toe (``_toe_clearance``).

Running is built differently (``kinefuse.sim.running``): normative running curves in this foot-locked
chain make the pelvis rise through stance, the opposite of what runners do, so there the pelvis is
designed and the legs follow by inverse kinematics.

Sources
-------
- Walking: landmark values of sagittal hip, knee and ankle angles over the gait cycle (initial contact,
  loading response, mid stance, terminal stance, pre-swing, initial/mid/terminal swing; toe-off at 62 %)
  read from the normal curves of Perry & Burnfield, "Gait Analysis: Normal and Pathological Function",
  2nd ed. (2010), chs. 4-7, with the pelvic and frontal-plane hip patterns of Kadaba, Ramakrishnan &
  Wootten, "Measurement of lower extremity kinematics during level walking", J Orthop Res 8:383 (1990).
  The trunk's counter-rotation and the arm swing are designed from plausible ranges (shoulder ±9°, elbow
  15-25°; Murray, Sepic & Barnard 1967 report similar magnitudes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.integrate import cumulative_simpson
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import brentq, root_scalar

from kinefuse.sim.body import BodyShape, chain_kinematics
from kinefuse.sim.gait import GaitTable, gait_plan, gait_samples
from kinefuse.sim.motion import (
    SIDES,
    Motion,
    Periodic,
    align,
    curves_from_samples,
    joint_angles_of,
    joint_rotation,
    smoothstep,
)

_ROLL_DEG = 5.0  # foot pitch over which the contact point rolls from heel to toe
_HANDOVER = 0.10  # of the stride: before heel contact the pelvis hands over to the leading foot's constraint
_RELEASE = 0.09  # of the stride: after toe-off the trailing leg's correction fades over this long
_TOE_CLEARANCE_M = 0.012
_CLEARANCE_RAMP = 0.06  # of the stride after toe-off
_CLEARANCE_SMOOTHING = 0.012  # of the stride: Gaussian width of the dorsiflexion added for clearance
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
# leg inverse kinematics


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
    R_pelvis = joint_rotation("pelvis", pelvis)
    R_thigh = R_pelvis @ joint_rotation(f"{side}_hip", hip)
    R_shank = R_thigh @ joint_rotation(f"{side}_knee", knee)
    R_foot = R_shank @ joint_rotation(f"{side}_ankle", ankle)
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
    R_knee = joint_rotation(f"{side}_knee", new_knee)
    reach = np.einsum("nij,nj->ni", R_thigh, down_t + R_knee @ down_s)
    R_thigh_new = align(reach, target) @ R_thigh
    new_hip = joint_angles_of(f"{side}_hip", np.swapaxes(R_pelvis, 1, 2) @ R_thigh_new)
    R_shank_new = R_thigh_new @ R_knee
    new_ankle = joint_angles_of(f"{side}_ankle", np.swapaxes(R_shank_new, 1, 2) @ R_foot)
    return new_hip, new_knee, new_ankle, reachable


# ------------------------------------------------------------------------------------------------------
# windows of the cycle


def _cyclic_ramp(t: np.ndarray, start: float, end: float, period: float) -> np.ndarray:
    """0 at ``start``, 1 at ``end`` (smoothstep), measured forward around the cycle from ``start``."""
    length = (end - start) % period
    return smoothstep(((t - start) % period) / length)


def _in_window(t: np.ndarray, start: float, end: float, period: float) -> np.ndarray:
    return ((t - start) % period) <= ((end - start) % period)


def _window_indices(t: np.ndarray, start: float, end: float, period: float) -> np.ndarray:
    """Grid indices from ``start`` to ``end`` going forward around the cycle, in time order."""
    n = len(t)
    first = int(math.ceil((start % period) / (period / n))) % n
    count = int(math.floor(((end - start) % period) / (period / n))) + 1
    return (first + np.arange(count)) % n


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


def _toe_clearance(
    shape: BodyShape,
    samples: dict[str, np.ndarray],
    period: float,
    root_xy: Periodic,
    root_z: Periodic,
    ic: Mapping[str, float],
    to: Mapping[str, float],
) -> None:
    """Dorsiflex the swinging ankle where the normative curves would drag the toe below
    ``_TOE_CLEARANCE_M`` (reached ``_CLEARANCE_RAMP`` of the stride after toe-off): real walkers clear the
    floor by 1-2 cm in swing, and this chain, with its rigid flat foot, would scuff it otherwise."""
    t = Periodic.grid(period)
    (pxy, vxy, axy), (pz, vz, az) = root_xy(t), root_z(t)
    root = (np.concatenate([pxy, pz], 1), np.concatenate([vxy, vz], 1), np.concatenate([axy, az], 1))
    sigma = _CLEARANCE_SMOOTHING * len(t)
    for _ in range(3):  # the lift is linear in the angle only for small angles: repeat
        curves = curves_from_samples(period, samples)
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
    return Motion(kind, controls, shape, period, curves, root_xy, root_z, event_times, info)
