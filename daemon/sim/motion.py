"""The ``Motion`` type and what every motion builder (``kinefuse.sim.walking``, ``kinefuse.sim.running``,
``kinefuse.sim.tasks``) is made of; nothing here knows a particular motion.

Every motion is periodic (a gait stride or one repetition of a task) and repeats for ever. It is built
on a dense grid over one period (about 2 ms apart) and stored as periodic cubic splines
(``scipy.interpolate.CubicSpline(..., bc_type="periodic")``): joint angles from their samples, the
pelvis's horizontal travel as the integral of a spline of its velocity (``PPoly.antiderivative``) and its
height from its samples. Angles, rates and accelerations are those splines and their derivatives,
analytic everywhere: the spline *is* the truth; nothing is differentiated numerically.

Here: ``Motion`` (what ``kinefuse.sim.motions.make_motion`` returns and ``kinefuse.sim.body.Body``
plays), ``Periodic`` (those splines) and ``curves_from_samples``; the C2 curve shapes the builders design
with (``smoothstep``, ``quintic_hermite``); the knee-range controls (``knee_target``); and the joint
rotations their inverse kinematics work in (``joint_rotation``, ``joint_angles_of``, ``align``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
from scipy.interpolate import CubicSpline, PPoly

from kinefuse.sim.body import JOINT_SIGNS, JOINTS, BodyShape
from kinefuse.sim.rotations import cardan_yxz, skew, yxz_from_matrix

SIDES = ("left", "right")
_OTHER_SIDE = {"left": "right", "right": "left"}

_GRID_DT = 0.002  # seconds between the dense samples a motion is built from
_MIN_GRID = 800


# ------------------------------------------------------------------------------------------------------
# periodic splines


class Periodic:
    """A periodic vector function of time from a PPoly over [0, period], plus an optional linear drift."""

    def __init__(self, period: float, position: PPoly, drift: np.ndarray | None = None) -> None:
        self.period = float(period)
        self._p = position
        self._v = position.derivative(1)
        self._a = position.derivative(2)
        self.drift = None if drift is None else np.asarray(drift, dtype=np.float64)

    def columns(self, which: slice) -> Periodic:
        """Some components of the curve."""
        drift = None if self.drift is None else self.drift[which]
        return Periodic(self.period, PPoly(self._p.c[..., which], self._p.x), drift)

    def scaled(self, factors: np.ndarray) -> Periodic:
        """The same curve with each component multiplied by ``factors`` (k,)."""
        factors = np.asarray(factors, dtype=np.float64)
        drift = None if self.drift is None else self.drift * factors
        return Periodic(self.period, PPoly(self._p.c * factors, self._p.x), drift)

    @staticmethod
    def grid(period: float) -> np.ndarray:
        n = max(_MIN_GRID, int(math.ceil(period / _GRID_DT)))
        return np.arange(n) * (period / n)

    @classmethod
    def from_samples(cls, period: float, values: np.ndarray) -> Periodic:
        """Interpolate samples (N, k) taken at ``grid(period)`` with a periodic cubic spline."""
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        x = np.arange(n + 1) * (period / n)
        y = np.concatenate([values, values[:1]], axis=0)
        return cls(period, CubicSpline(x, y, bc_type="periodic", axis=0))

    @classmethod
    def from_rates(
        cls, period: float, rates: np.ndarray, keep_drift: np.ndarray
    ) -> tuple[Periodic, np.ndarray]:
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


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, 10x³ - 15x⁴ + 6x⁵ between: C2 (zero slope and curvature at both ends)."""
    x = np.clip(x, 0.0, 1.0)
    return x**3 * (10.0 + x * (-15.0 + 6.0 * x))


def quintic_hermite(
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
        curves: Mapping[str, Periodic],
        root_xy: Periodic,
        root_z: Periodic,
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
        # how to build it again (``for_shape``): set by the entry point that made it,
        # ``kinefuse.sim.motions.make_motion``, which builds on this module and so cannot be imported here
        self.remake: Callable[..., Motion] | None = None

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
        if self.remake is None:
            raise ValueError(f"{self!r} was not made by make_motion: it cannot be remade for another body")
        return self.remake(self.kind, shape=shape, **self.controls)

    def mirrored(self, controls: Mapping[str, object]) -> Motion:
        """This motion reflected left-right, made with ``controls``: sides swap; clinical angles are already
        mirror-symmetric, except the midline joints' lateral angles (adduction, rotation), which change sign,
        as does sideways travel."""
        curves = {}
        for joint, curve in self._curves.items():
            side, _, rest = joint.partition("_")
            if side in _OTHER_SIDE:
                curves[f"{_OTHER_SIDE[side]}_{rest}"] = curve
            else:
                curves[joint] = curve.scaled(np.array([1.0, -1.0, -1.0]))
        events = tuple((_OTHER_SIDE[side], kind, time) for side, kind, time in self.event_times)
        info = {k: ({_OTHER_SIDE[s]: v for s, v in value.items()} if isinstance(value, dict) else value)
                for k, value in self.info.items()}  # fmt: skip
        root_xy = self._root_xy.scaled(np.array([1.0, -1.0]))
        return Motion(self.kind, controls, self.shape, self.period_s, curves, root_xy, self._root_z, events,
                      info)  # fmt: skip

    def __repr__(self) -> str:
        controls = ", ".join(f"{k}={v!r}" for k, v in self.controls.items())
        return f"Motion({self.kind!r}, period_s={self.period_s:.4f}{', ' if controls else ''}{controls})"


def curves_from_samples(period: float, samples: Mapping[str, np.ndarray]) -> dict[str, Periodic]:
    missing = [j for j in JOINTS if j not in samples]
    if missing:
        raise AssertionError(f"motion builder left joints out: {missing}")
    whole = Periodic.from_samples(period, np.concatenate([samples[j] for j in JOINTS], axis=1))
    return {j: whole.columns(slice(3 * i, 3 * i + 3)) for i, j in enumerate(JOINTS)}  # one spline fit for all


def knee_target(reference_min: float, reference_max: float, controls: Mapping[str, object]) -> float:
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


# ------------------------------------------------------------------------------------------------------
# joint rotations, for inverse kinematics


def joint_rotation(joint: str, q: np.ndarray) -> np.ndarray:
    signs = np.array(JOINT_SIGNS[joint])
    zero = np.zeros_like(q)
    return cardan_yxz(q * signs, zero, zero)[0]


def joint_angles_of(joint: str, R: np.ndarray) -> np.ndarray:
    return yxz_from_matrix(R) / np.array(JOINT_SIGNS[joint])


def align(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotations (n, 3, 3) turning directions u (n, 3) onto v (n, 3)."""
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    k = np.cross(u, v)
    c = np.sum(u * v, axis=1)
    K = skew(k)
    return np.eye(3) + K + (K @ K) / (1.0 + c)[:, None, None]
