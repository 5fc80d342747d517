"""Running: a designed pelvis path, and legs by inverse kinematics onto a rolling stance foot and a swing
path designed relative to the hip.

Walking takes the pelvis from the feet (``kinefuse.sim.walking``). Normative running curves put into a
foot-locked chain make the pelvis rise through stance, the opposite of the spring-mass behaviour of
runners (Cavagna et al., J Physiol 268:467, 1976; Novacheck, Gait & Posture 7:77, 1998: the centre of
mass is lowest at mid stance and highest in mid flight). So here the pelvis is designed and the legs
follow:

- Pelvis: constant forward speed; height exactly ballistic in flight (z'' = -g) and in stance a quintic
  through touchdown (matching the flight's height, velocity and -g), mid stance (lowest, vertically at
  rest, ``_MID_STANCE_ACC`` upward) and toe-off. Tilt, obliquity, rotation, trunk and arms follow the
  Novacheck landmarks in ``_RUN`` the way the walk's follow Perry's.
- Stance foot: lands on the heel pitched ``_TOUCHDOWN_PITCH_DEG`` toe-up and at rest, rolls about the
  fixed heel point to flat, stays flat, then rolls about the fixed toe point to ``_TOE_OFF_PITCH_DEG``
  toe-down, still turning at toe-off (``_TOE_OFF_RATE``), as the foot of a runner does. The leg reaches
  it by inverse kinematics (``kinefuse.sim.tasks.planted_leg``): no slip at all. The pelvis heights put
  the knee at ``_TOUCHDOWN_KNEE_DEG`` at touchdown and ``_TOE_OFF_KNEE_DEG`` at toe-off, and the pelvis
  ``_STANCE_DROP`` of body height lower at mid stance (leg compression).
- Swing: the ankle's path is two quintics per axis (x and y relative to the hip, z in the world so the
  foot comes down onto the floor from above): from toe-off (matching the stance foot's position, velocity
  and acceleration) through the point behind the hip where the thigh is ``_SWING_HIP_DEG`` forward and
  the knee at its peak flexion (Novacheck: about 90 deg), to touchdown (matching again); the pitch is a
  quintic between its toe-off and touchdown states. Two smooth corrections keep the path possible: a
  softplus cap on the hip-ankle distance at a ``_STRAIGHTEST_KNEE_DEG`` knee (the quintics overshoot near
  contact, and a nearly straight knee makes the angles ill-conditioned) and a softplus lift that keeps the
  sole ``_TOE_CLEARANCE_M`` above the floor, both faded in and out over ``_CONTACT_RAMP`` of the swing so
  contact stays exact. The same inverse kinematics gives the angles, so they are C2 through contact.
  Pelvis heights are set for the knee at ``_TOUCHDOWN_KNEE_DEG`` / ``_TOE_OFF_KNEE_DEG`` (more than the
  20 deg Novacheck reports) to leave the swing leg room near contact.
- Stance time: the pelvis travels ``_CONTACT_LENGTH`` of body height per stance, so faster running has
  shorter stances, as measured (Novacheck's 39 % of the cycle at 3.2 m/s sets the constant).
Initial contact and toe-off are the designed instants, exact by construction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy.interpolate import CubicSpline

from kinefuse.sim.body import BodyShape
from kinefuse.sim.gait import GaitPlan, GaitTable, gait_plan, gait_samples
from kinefuse.sim.motion import SIDES, Motion, Periodic, curves_from_samples, quintic_hermite, smoothstep
from kinefuse.sim.rotations import rot_y
from kinefuse.sim.tasks import planted_leg

GRAVITY = 9.81
_TOUCHDOWN_PITCH_DEG = 10.0
_TOE_OFF_PITCH_DEG = 50.0
_TOE_OFF_RATE = 2.0  # pitch rate at toe-off, in toe-off pitch per unit of the toe-roll phase
_HEEL_ROLL_END = 0.2  # fractions of stance: heel pivot until here, flat until _TOE_ROLL_START
_TOE_ROLL_START = 0.4
_FLAT_ANKLE_AT = 0.30  # the flat foot's ankle is under the pelvis at this fraction of stance
_MID_STANCE = 0.40
_MID_STANCE_ACC = 15.0  # m/s², upward, at the lowest point
_TOUCHDOWN_KNEE_DEG = 35.0
_TOE_OFF_KNEE_DEG = 40.0
_STANCE_DROP = 0.02  # of body height: the pelvis at mid stance below the lower of touchdown and toe-off
_SWING_PEAK = 0.4  # of swing: the foot passes its highest point behind the hip
_SWING_HIP_DEG = 30.0
_JET_STEP_S = 1e-4
_STRAIGHTEST_KNEE_DEG = 15.0
_CONTACT_LENGTH = 0.52  # of body height: pelvis travel during a stance (Novacheck's 39 % at 3.2 m/s)
_TOE_CLEARANCE_M = 0.01
_FLOOR_SOFTNESS_M = 0.01
_SWING_REACH_TOLERANCE_M = 0.001
_MAX_DUTY = 0.44  # stance fraction of the stride at most: running keeps a flight phase
_CONTACT_RAMP = 0.15  # of swing: the toe clearance is reached this long after toe-off and before touchdown
_REACH_SOFTNESS_M = 0.01

# fmt: off
# Novacheck (1998), running at about 3.2 m/s: toe-off at 39 % of the cycle, stance knee peak ~40 deg,
# swing ~90 deg, hip 35-40 deg flexion at contact; here only the pelvis, trunk and arms are taken from
# it (and the knee range, which sets the swing peak); the legs come from the designed feet.
_RUN = GaitTable(
    toe_off=0.39,
    hip=((0, 40), (10, 36), (20, 24), (30, 10), (39, 1), (45, -1), (55, 10), (65, 30), (75, 48), (82, 53),
         (90, 49), (95, 44)),
    knee=((0, 20), (8, 35), (15, 42), (25, 33), (33, 22), (39, 18), (48, 40), (58, 75), (66, 90), (74, 85),
          (84, 55), (92, 30), (97, 21)),
    ankle=((0, 5), (8, 15), (16, 22), (26, 15), (33, 0), (39, -20), (45, -22), (55, -10), (65, 0), (75, 8),
           (88, 8), (95, 6)),
    hip_adduction=((0, 3), (12, 9), (25, 6), (39, 0), (50, -5), (65, -6), (80, -2), (92, 1)),
    obliquity=((0, 0), (12, 5), (30, 2), (50, 0), (62, -5), (80, -2)),
    tilt_mean=8.0, tilt_amplitude=2.0, tilt_peak=0.3, rotation_amplitude=5.0, trunk_lean=7.0,
    shoulder_mean=5.0, shoulder_gain=-0.6, shoulder_abduction=-8.0, elbow_mean=85.0, elbow_gain=0.2,
    cadence_spm=170.0, step_length_per_height=0.666,
)
# fmt: on


def _reach(shape: BodyShape, knee_deg: float) -> float:
    t, s = shape.thigh_length, shape.shank_length
    return math.sqrt(t * t + s * s + 2 * t * s * math.cos(math.radians(knee_deg)))


def _toe_roll(x: np.ndarray) -> np.ndarray:
    """Toe-down pitch (rad) over the toe-roll phase x in [0, 1]: from flat at rest to the toe-off pitch,
    still turning (past 1 the polynomial continues, which is what the derivatives at toe-off need)."""
    theta = math.radians(_TOE_OFF_PITCH_DEG)
    out = np.zeros_like(x)
    inside = x > 0
    out[inside] = quintic_hermite(x[inside], 1.0, (0.0, 0.0, 0.0), (theta, _TOE_OFF_RATE * theta, 0.0))
    return out


class _Runner:
    """The designed pelvis and feet of one stride, evaluated at (unwrapped) times."""

    def __init__(self, shape: BodyShape, plan: GaitPlan, base: Mapping[str, np.ndarray], t: np.ndarray):
        self.shape, self.plan = shape, plan
        period = plan.period
        x = np.append(t, period)
        self.pelvis_angles = CubicSpline(x, np.vstack([base["pelvis"], base["pelvis"][:1]]),
                                         bc_type="periodic", axis=0)  # fmt: skip
        self.knee_adduction = {
            side: CubicSpline(
                x, np.append(base[f"{side}_knee"][:, 1], base[f"{side}_knee"][0, 1]), bc_type="periodic"
            )  # fmt: skip
            for side in SIDES
        }
        self.stance_s = {s: plan.stance[s] * period for s in SIDES}
        self.t_to = {s: plan.t_ic[s] + self.stance_s[s] for s in SIDES}
        self.flat_ankle_x = {
            s: plan.speed * (plan.t_ic[s] + _FLAT_ANKLE_AT * self.stance_s[s]) for s in SIDES
        }
        self._heights()

    def side_y(self, side: str) -> float:
        return (1.0 if side == "left" else -1.0) * self.shape.hip_separation / 2

    # --- stance foot ---------------------------------------------------------------------------------
    def stance_foot(self, side: str, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ankle position (n, 3) and foot rotation (n, 3, 3) at stance fractions ``a`` (any real: the
        heel and toe pivots continue outside [0, 1], which gives the derivatives at contact)."""
        shape = self.shape
        up = math.radians(_TOUCHDOWN_PITCH_DEG) * (1 - smoothstep(a / _HEEL_ROLL_END))
        down = _toe_roll((a - _TOE_ROLL_START) / (1 - _TOE_ROLL_START))
        R = rot_y(down - up)  # rot_y(+) pitches the toe down
        flat = np.array([self.flat_ankle_x[side], self.side_y(side), shape.ankle_height])
        ankle = np.tile(flat, (len(a), 1))
        heel, toe = a < _HEEL_ROLL_END, a > _TOE_ROLL_START
        ankle[heel] = flat + shape.heel_offset - R[heel] @ shape.heel_offset
        ankle[toe] = flat + shape.toe_offset - R[toe] @ shape.toe_offset
        return ankle, R

    def _stance_jet(self, side: str, time: float, field: int, stride: int = 0) -> tuple[np.ndarray, ...]:
        """Value, rate, acceleration at ``time`` of the ankle (field 0: x and y relative to the nominal hip,
        z in the world) or of the foot's pitch (field 1), by central differences of the design of
        ``stride``'s stance (0: this one)."""
        h = _JET_STEP_S
        times = np.array([time - h, time, time + h])
        start = self.plan.t_ic[side] + stride * self.plan.period
        ankle, R = self.stance_foot(side, (times - start) / self.stance_s[side])
        ankle[:, 0] += stride * self.plan.speed * self.plan.period
        if field == 0:
            values = ankle - self.hip(side, times) * [1.0, 1.0, 0.0]
        else:
            values = -np.arcsin(np.clip(R[:, 2, 0], -1, 1))[:, None]
        return values[1], (values[2] - values[0]) / (2 * h), (values[2] - 2 * values[1] + values[0]) / h**2

    # --- pelvis --------------------------------------------------------------------------------------
    def _height_for_knee(self, side: str, a: float, time: float, knee_deg: float) -> float:
        ankle, _ = self.stance_foot(side, np.array([a]))
        dx = ankle[0, 0] - self.plan.speed * time
        reach = _reach(self.shape, knee_deg)
        if abs(dx) >= reach:
            raise ValueError(
                f"run: speed {self.plan.speed:.2f} m/s with cadence {self.plan.cadence:g} steps/min puts the "
                f"{side} foot {abs(dx):.2f} m from the hip, beyond the leg's reach"
            )
        return float(ankle[0, 2]) + math.sqrt(reach * reach - dx * dx)

    def _heights(self) -> None:
        """Knots (time, z, z', z'') of the pelvis height in each stance, and the ballistic flights."""
        plan = self.plan
        z_td, z_to = {}, {}
        for s in SIDES:
            z_td[s] = self._height_for_knee(s, 0.0, plan.t_ic[s], _TOUCHDOWN_KNEE_DEG)
            z_to[s] = self._height_for_knee(s, 1.0, self.t_to[s], _TOE_OFF_KNEE_DEG)
        self.flights, v_td, v_to = [], {}, {}
        for s, other in (("left", "right"), ("right", "left")):
            flight = (plan.t_ic[other] - self.t_to[s]) % plan.period
            if flight <= 0.02:
                raise ValueError("run: the stance times leave no flight phase (stance_asymmetry too large?)")
            v_to[s] = (z_td[other] - z_to[s]) / flight + 0.5 * GRAVITY * flight
            v_td[other] = v_to[s] - GRAVITY * flight
            self.flights.append((self.t_to[s], flight, z_to[s], v_to[s]))
        self.stances = []
        for s in SIDES:
            z_mid = min(z_td[s], z_to[s]) - _STANCE_DROP * self.shape.height_m
            self.stances.append([
                (plan.t_ic[s], z_td[s], v_td[s], -GRAVITY),
                (plan.t_ic[s] + _MID_STANCE * self.stance_s[s], z_mid, 0.0, _MID_STANCE_ACC),
                (self.t_to[s], z_to[s], v_to[s], -GRAVITY),
            ])  # fmt: skip

    def height(self, t: np.ndarray) -> np.ndarray:
        period = self.plan.period
        z = np.full_like(t, np.nan)
        for start, flight, z0, v0 in self.flights:
            tau = (t - start) % period
            inside = tau <= flight
            z[inside] = z0 + v0 * tau[inside] - 0.5 * GRAVITY * tau[inside] ** 2
        for knots in self.stances:
            for (t0, *a), (t1, *b) in zip(knots, knots[1:], strict=False):
                tau = (t - t0) % period
                inside = tau <= (t1 - t0)
                z[inside] = quintic_hermite(tau[inside], t1 - t0, tuple(a), tuple(b))
        return z

    def root(self, t: np.ndarray) -> np.ndarray:
        return np.stack([self.plan.speed * t, np.zeros_like(t), self.height(t)], axis=1)

    def hip(self, side: str, t: np.ndarray) -> np.ndarray:
        """The hip centre ignoring the pelvis's small rotations: what the swing path is designed against."""
        return self.root(t) + np.array([0.0, self.side_y(side), 0.0])

    # --- swing foot ----------------------------------------------------------------------------------
    def _swing_peak(self, side: str) -> np.ndarray:
        """Ankle relative to the hip at peak knee flexion: the thigh ``_SWING_HIP_DEG`` forward."""
        thigh, shank = self.shape.thigh_length, self.shape.shank_length
        hip_angle = math.radians(_SWING_HIP_DEG)
        shank_angle = hip_angle - self.plan.knee_target
        return np.array([
            thigh * math.sin(hip_angle) + shank * math.sin(shank_angle),
            0.0,
            -thigh * math.cos(hip_angle) - shank * math.cos(shank_angle),
        ])  # fmt: skip

    def swing_foot(self, side: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ankle (n, 3) and foot rotation (n, 3, 3) at unwrapped swing times after this stride's toe-off."""
        t_to, t_td = self.t_to[side], self.plan.t_ic[side] + self.plan.period
        t_peak = t_to + _SWING_PEAK * (t_td - t_to)
        lift, land = self._stance_jet(side, t_to, 0), self._stance_jet(side, t_td, 0, stride=1)
        peak = self._swing_peak(side)
        peak_rate = np.array([(land[0][0] - peak[0]) / (t_td - t_peak), 0.0, 0.0])
        peak = peak + [0.0, 0.0, self.hip(side, np.array([t_peak]))[0, 2]]
        mixed = np.empty((len(t), 3))
        first = t <= t_peak
        for c in range(3):
            mixed[first, c] = quintic_hermite(t[first] - t_to, t_peak - t_to, tuple(x[c] for x in lift),
                                              (peak[c], peak_rate[c], 0.0))  # fmt: skip
            mixed[~first, c] = quintic_hermite(t[~first] - t_peak, t_td - t_peak, (peak[c], peak_rate[c], 0.0),
                                               tuple(x[c] for x in land))  # fmt: skip
        relative = mixed - self.hip(side, t) * [0.0, 0.0, 1.0]
        pitch_off, pitch_on = self._stance_jet(side, t_to, 1), self._stance_jet(side, t_td, 1, stride=1)
        pitch = quintic_hermite(t - t_to, t_td - t_to, tuple(x[0] for x in pitch_off),
                                tuple(x[0] for x in pitch_on))  # fmt: skip
        R = rot_y(pitch)
        phase = (t - t_to) / (t_td - t_to)
        window = smoothstep(phase / _CONTACT_RAMP) * smoothstep((1 - phase) / _CONTACT_RAMP)
        ankle = self.hip(side, t) + relative + window[:, None] * (self._within_reach(relative) - relative)
        toe = ankle[:, 2] + (R @ self.shape.toe_offset)[:, 2]
        heel = ankle[:, 2] + (R @ self.shape.heel_offset)[:, 2]
        lowest = np.minimum(toe, heel)
        ankle[:, 2] += (
            window * _FLOOR_SOFTNESS_M * np.logaddexp(0.0, (_TOE_CLEARANCE_M - lowest) / _FLOOR_SOFTNESS_M)
        )
        return ankle, R

    def _within_reach(self, relative: np.ndarray) -> np.ndarray:
        """Shorten hip-to-ankle vectors that would overstretch the leg, smoothly (a softplus cap
        ``_REACH_SOFTNESS_M`` wide below a nearly straight leg): the swing quintics can overshoot near
        contact, where they match the stance foot's motion. Far below the cap nothing changes (by less than
        a micrometre at the contact instants)."""
        length = np.linalg.norm(relative, axis=1, keepdims=True)
        cap = _reach(self.shape, _STRAIGHTEST_KNEE_DEG)
        capped = cap - _REACH_SOFTNESS_M * np.logaddexp(0.0, (cap - length) / _REACH_SOFTNESS_M)
        return relative * capped / length

    # --- legs ---------------------------------------------------------------------------------------
    def leg(self, side: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hip, knee, ankle angles (n, 3) at times ``t`` in [0, period)."""
        tau = (t - self.plan.t_ic[side]) % self.plan.period
        unwrapped = self.plan.t_ic[side] + tau
        stance = tau <= self.stance_s[side]
        ankle, R = np.empty((len(t), 3)), np.empty((len(t), 3, 3))
        ankle[stance], R[stance] = self.stance_foot(side, tau[stance] / self.stance_s[side])
        ankle[~stance], R[~stance] = self.swing_foot(side, unwrapped[~stance])
        angles = tuple(np.empty((len(t), 3)) for _ in range(3))
        for phase, in_air in ((stance, False), (~stance, True)):
            # the stance foot is reached exactly or not at all; in the air a foot a fraction of a millimetre
            # beyond reach (near contact, where the softened cap fades out) is reached short
            solved = planted_leg(self.shape, side, self.pelvis_angles(unwrapped[phase]), self.root(unwrapped[phase]),
                                 ankle[phase], R[phase], self.knee_adduction[side](unwrapped[phase]),
                                 reach_tolerance_m=_SWING_REACH_TOLERANCE_M if in_air else 0.0)  # fmt: skip
            for out, values in zip(angles, solved, strict=True):
                out[phase] = values
        return angles


def run_motion(shape: BodyShape, controls: Mapping[str, object]) -> Motion:
    plan = gait_plan(
        _RUN, shape, controls, contact_length_m=_CONTACT_LENGTH * shape.height_m, max_duty=_MAX_DUTY
    )
    t = Periodic.grid(plan.period)
    samples = gait_samples(_RUN, t, plan.period, plan.t_ic, plan.stance, 1.0, 0.0, plan.knee_target, plan.valgus,
                           plan.lean, plan.lateral)  # fmt: skip
    runner = _Runner(shape, plan, samples, t)
    for side in SIDES:
        samples[f"{side}_hip"], samples[f"{side}_knee"], samples[f"{side}_ankle"] = runner.leg(side, t)
    x = np.append(t, plan.period)
    still = CubicSpline(x, np.zeros((len(x), 2)), bc_type="periodic", axis=0)
    root_xy = Periodic(plan.period, still, drift=np.array([plan.speed, 0.0]))
    root_z = Periodic.from_samples(plan.period, runner.height(t)[:, None])
    events = sorted(
        [(s, "ic", plan.t_ic[s]) for s in SIDES] + [(s, "tc", runner.t_to[s] % plan.period) for s in SIDES],
        key=lambda e: e[2],
    )
    info = {
        "cadence_spm": plan.cadence,
        "speed_mps": plan.speed,
        "step_length_m": plan.speed * plan.period / 2,
        "stride_time_s": plan.period,
        "stance_time_s": dict(runner.stance_s),
    }
    return Motion("run", controls, shape, plan.period, curves_from_samples(plan.period, samples), root_xy,
                  root_z, tuple(events), info)  # fmt: skip
