"""The ``Motion`` type and what every motion builder (``kinefuse.sim.walking``, ``kinefuse.sim.running``,
``kinefuse.sim.tasks``) is made of; nothing here knows a particular motion.

Every motion is periodic (a gait stride or one repetition of a task) and repeats for ever. It is built
on a dense grid over one period (about 2 ms apart) and stored as periodic cubic splines
(``scipy.interpolate.CubicSpline(..., bc_type="periodic")``): joint angles from their samples, the
pelvis's horizontal travel as the integral of a spline of its velocity (``PPoly.antiderivative``) and its
height from its samples. Angles, rates and accelerations are those splines and their derivatives,
analytic everywhere: the spline *is* the truth; nothing is differentiated numerically.

Here: ``Motion`` (what ``kinefuse.sim.motions.make_motion`` returns and ``kinefuse.sim.body.Body``
plays), ``Periodic`` (those splines) and ``curves_from_samples``; ``TimeWarp``, the seeded stride-to-stride
variation of timing a ``Body`` can play a periodic motion through; the C2 curve shapes the builders design
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
# stride-to-stride variability


class TimeWarp:
    """A seeded, smooth, monotone map τ(t) from true time to the motion's time, so a periodic motion played
    at τ(t) varies from stride to stride: ``Body`` evaluates every curve at τ and scales its derivatives by
    the chain rule (p'(τ)τ', p''(τ)τ'² + p'(τ)τ''), so rates and accelerations stay exact.

    Stride k of the motion, motion time [kT, (k + 1)T), is played over true time [s_k, s_(k+1)) with
    s_k = kT + D_k: the offsets D_k are a stationary first-order autoregression, D_k = φ D_(k-1) + e_k,
    φ = 1 - 1 / ``return_strides`` (the phase drifts from the mean cadence and comes back within about that
    many strides, as a walker keeping to a treadmill belt must), scaled so that the stride times
    s_(k+1) - s_k have the coefficient of variation ``cv`` about T (their lag-1 autocorrelation is
    -(1 - φ) / 2; the long-range persistence of real stride times, Hausdorff et al. 1995, is not modelled).
    D_k is the autoregression's moving-average sum truncated where φ^j < 1e-9, its innovations drawn in blocks
    of ``_WARP_BLOCK`` strides from ``numpy.random.default_rng((*seed, block))``: τ is a pure function of t, the
    same whatever times it is asked for and in whatever pieces (a simulation's chunks), for any t.

    Between the knots τ is the quintic with τ(s_k) = kT and the first and second derivatives of the parabola
    through the knots k - 1, k, k + 1 (so τ is C2, and local: each stride depends on its neighbours only).
    """

    def __init__(self, period: float, cv: float, seed: tuple[int, ...] | int, return_strides: float = 10.0):
        if not 0.0 <= cv <= 0.1:
            raise ValueError(f"stride-time coefficient of variation must be between 0 and 0.1, got {cv}")
        if not return_strides > 1.0:
            raise ValueError(f"return_strides must be above 1, got {return_strides}")
        self.period = float(period)
        self.cv = float(cv)
        self.seed = tuple(int(x) for x in np.atleast_1d(seed))
        self.phi = 1.0 - 1.0 / float(return_strides)
        # var(D) = var(e) / (1 - φ²); var(s_(k+1) - s_k) = 2 var(D) (1 - φ) = (cv T)²
        self._innovation = self.cv * self.period * math.sqrt((1.0 + self.phi) / 2.0)
        self._memory = int(math.ceil(math.log(1e-9) / math.log(self.phi)))

    def _innovations(self, first: int, last: int) -> np.ndarray:
        """e_k for k in [first, last]."""
        blocks = range(first // _WARP_BLOCK, last // _WARP_BLOCK + 1)
        draws = np.concatenate([
            np.random.default_rng((*self.seed, _WARP_TAG, 0 if b >= 0 else 1, abs(b))).standard_normal(_WARP_BLOCK)
            for b in blocks
        ])  # fmt: skip
        start = first - blocks[0] * _WARP_BLOCK
        return draws[start : start + last - first + 1] * self._innovation

    def knots(self, first: int, last: int) -> np.ndarray:
        """s_k, the true start of motion stride k, for k in [first, last]."""
        if self.cv == 0.0:
            return np.arange(first, last + 1) * self.period
        e = self._innovations(first - self._memory, last)
        weights = self.phi ** np.arange(self._memory + 1)
        offsets = np.convolve(e, weights, mode="valid")  # D_k = sum_j φ^j e_(k-j)
        return np.arange(first, last + 1) * self.period + offsets

    def _pieces(self, first: int, last: int):
        """Knots k in [first, last + 1] with each knot's τ, τ' and τ''."""
        s = self.knots(first - 1, last + 2)
        d = np.diff(s)  # stride durations, d[i] = s[i+1] - s[i]
        rate = self.period / d
        before, after = rate[:-1], rate[1:]  # the strides either side of knots first .. last + 1
        span = d[:-1] + d[1:]
        slope = (before * d[1:] + after * d[:-1]) / span
        curvature = 2.0 * (after - before) / span
        return s[1:-1], slope, curvature

    def __call__(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """τ(t), τ'(t), τ''(t) for true times t (n,)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if self.cv == 0.0 or len(t) == 0:
            return t.copy(), np.ones_like(t), np.zeros_like(t)
        first = int(np.floor(t.min() / self.period)) - 3
        last = int(np.floor(t.max() / self.period)) + 3
        s, slope, curvature = self._pieces(first, last)
        k = np.clip(np.searchsorted(s, t, side="right") - 1, 0, len(s) - 2)
        h = s[k + 1] - s[k]
        x = (t - s[k]) / h
        tau0 = (first + k) * self.period
        c = _quintic_coefficients(h, (tau0, slope[k], curvature[k]),
                                  (tau0 + self.period, slope[k + 1], curvature[k + 1]))  # fmt: skip
        tau = c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * (c[4] + x * c[5]))))
        d1 = c[1] + x * (2 * c[2] + x * (3 * c[3] + x * (4 * c[4] + x * 5 * c[5])))
        d2 = 2 * c[2] + x * (6 * c[3] + x * (12 * c[4] + x * 20 * c[5]))
        return tau, d1 / h, d2 / h**2

    def inverse(self, tau) -> np.ndarray:
        """The true times t (n,) at which the motion is at time ``tau`` (n,): Newton's method on the monotone
        quintic of the stride that holds it, to a picosecond."""
        tau = np.atleast_1d(np.asarray(tau, dtype=np.float64))
        if self.cv == 0.0 or len(tau) == 0:
            return tau.copy()
        first = int(np.floor(tau.min() / self.period)) - 1
        last = int(np.floor(tau.max() / self.period)) + 1
        s = self.knots(first, last + 1)
        k = np.clip(np.floor(tau / self.period).astype(np.int64) - first, 0, len(s) - 2)
        t = s[k] + (tau - (first + k) * self.period) / self.period * (s[k + 1] - s[k])
        for _ in range(50):
            value, rate, _ = self(t)
            step = (value - tau) / rate
            t = t - step
            if np.max(np.abs(step)) < 1e-12:
                break
        return t


_WARP_BLOCK = 256  # strides of innovations drawn at a time
_WARP_TAG = 0x57D  # keeps the warp's random stream apart from the devices' (seeded with the same seed)


def _quintic_coefficients(h, start, end) -> tuple[np.ndarray, ...]:
    """Coefficients c0..c5 in x = (t - t0) / h of the quintic with (value, first, second derivative in t)
    ``start`` at x = 0 and ``end`` at x = 1."""
    p0, v0, a0 = start
    p1, v1, a1 = end
    v0, v1, a0, a1 = v0 * h, v1 * h, a0 * h * h, a1 * h * h
    c3 = 10 * (p1 - p0) - 6 * v0 - 4 * v1 - 1.5 * a0 + 0.5 * a1
    c4 = -15 * (p1 - p0) + 8 * v0 + 7 * v1 + 1.5 * a0 - a1
    c5 = 6 * (p1 - p0) - 3 * v0 - 3 * v1 - 0.5 * a0 + 0.5 * a1
    return p0, v0, 0.5 * a0, c3, c4, c5


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


# ------------------------------------------------------------------------------------------------------
# a standing start


class StandingStart:
    """Quiet standing for ``still_s``, then the motion fades in over ``blend_s``: a ``Body`` plays every joint
    angle as w(t) times the motion's (neutral standing is every angle 0) and the pelvis between its standing
    place and the motion's, w = ``smoothstep`` of the time into the blend (C2: no step in any acceleration).
    The motion's clock runs at w too, c(t) = ∫ w, so the athlete speeds up from rest rather than being
    dragged into a stride already under way; after the blend c = t - still_s - blend_s / 2, and the motion
    (its time warp included) is played at c. During the blend the feet are not planted (the pose is a blend,
    not a solved gait): its steps are not gait events."""

    def __init__(self, still_s: float, blend_s: float = 2.0):
        if still_s < 0.0 or blend_s <= 0.0:
            raise ValueError(f"a standing start needs still_s >= 0 and blend_s > 0, got {still_s}, {blend_s}")
        self.still_s, self.blend_s = float(still_s), float(blend_s)

    @property
    def end_s(self) -> float:
        """When the motion plays in full."""
        return self.still_s + self.blend_s

    def _x(self, t: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(t, dtype=np.float64) - self.still_s) / self.blend_s, 0.0, 1.0)

    def weight(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """w, w', w'' at true times t: 0 standing, 1 from ``end_s``."""
        x, h = self._x(t), self.blend_s
        return smoothstep(x), 30.0 * x**2 * (1 - x) ** 2 / h, 60.0 * x * (1 - x) * (1 - 2 * x) / h**2

    def clock(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The motion's clock c(t) = ∫ w from the end of standing, with c' = w and c'' = w'."""
        t = np.asarray(t, dtype=np.float64)
        x = self._x(t)
        w, w1, _ = self.weight(t)
        c = self.blend_s * x**4 * (2.5 + x * (-3.0 + x)) + np.maximum(t - self.end_s, 0.0)
        return c, w, w1

    def inverse(self, c) -> np.ndarray:
        """The true times at which the clock reads ``c`` (>= 0; 0 maps to the end of standing)."""
        c = np.asarray(c, dtype=np.float64)
        lo, hi = np.full(c.shape, self.still_s), np.maximum(self.end_s, c + self.end_s)
        for _ in range(60):  # bisection on the monotone clock, to far below a nanosecond
            mid = 0.5 * (lo + hi)
            below = self.clock(mid)[0] < c
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)
