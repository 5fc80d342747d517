"""Reference twin of ``kinefuse._ext.keypoint_kalman``, written with NumPy matrices for clarity rather than
speed: the same model and API (see the compiled module's docstring). Tests check the two agree."""

from __future__ import annotations

import math

import numpy as np

MEASURED, FILLED, REJECTED, MISSING = 0, 1, 2, 3
STATE_VERSION = 2
ROBUST_ITERATIONS = 3


class _Model:
    def __init__(self, dim, q, r0, min_confidence, gate, max_gap_s, init_velocity_sigma,
                 init_acceleration_sigma, power=1.0, nu=math.inf, robust_after=-1):  # fmt: skip
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 (constant velocity) or 3 (constant acceleration), got {dim}")
        for name, value in (("q", q), ("r0", r0), ("gate", gate), ("max_gap_s", max_gap_s),
                            ("init_velocity_sigma", init_velocity_sigma),
                            ("init_acceleration_sigma", init_acceleration_sigma)):  # fmt: skip
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not 0.0 <= min_confidence < 1.0:
            raise ValueError(f"min_confidence must be in [0, 1), got {min_confidence!r}")
        if not (math.isfinite(power) and power >= 0.0):
            raise ValueError(f"confidence_power must be a non-negative finite number, got {power!r}")
        if not nu > 0.0:
            raise ValueError(f"measurement_dof must be positive (infinity: Gaussian), got {nu!r}")
        self.power, self.nu = power, nu
        self.robust_after = 2 * dim + 1 if robust_after < 0 else robust_after
        if not 1 <= self.robust_after <= 100:
            raise ValueError(f"robust_after must be in 1..100, got {robust_after}")
        self.dim, self.q, self.r0, self.min_confidence, self.gate = dim, q, r0, min_confidence, gate
        self.max_gap_s = max_gap_s
        self.init = (init_velocity_sigma, init_acceleration_sigma)
        self.H = np.eye(1, dim)

    def params(self):
        return (self.dim, self.q, self.r0, self.min_confidence, self.gate, self.max_gap_s, *self.init,
                self.power, self.nu, self.robust_after)  # fmt: skip

    def transition(self, dt):
        """F and the continuous-white-noise Q (Bar-Shalom et al. 2001, sec. 6.2) for a step of dt."""
        if self.dim == 2:
            F = np.array([[1.0, dt], [0.0, 1.0]])
            Q = np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
        else:
            F = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])
            Q = np.array([[dt**5 / 20, dt**4 / 8, dt**3 / 6], [dt**4 / 8, dt**3 / 3, dt**2 / 2],
                          [dt**3 / 6, dt**2 / 2, dt]])  # fmt: skip
        return F, Q * self.q

    def usable(self, zx, zy, c):
        return math.isfinite(zx) and math.isfinite(zy) and math.isfinite(c) and c > self.min_confidence

    def variance(self, c):
        """Measurement variance: (r0 c^-power)², (r0 / c)² when power is 1 (as the kernel computes it)."""
        sigma = self.r0 / c if self.power == 1.0 else self.r0 * c**-self.power
        return sigma * sigma

    def robust_weight(self, e2, P00, R):
        """The Student-t update's weight w (the update uses R / w): the kernel's _robust_weight, the same
        scalar operations in the same order."""
        w = 1.0
        if not math.isfinite(self.nu):
            return w
        rho, eps = P00 / R, e2 / R
        for _ in range(ROBUST_ITERATIONS):
            u = 1.0 + w * rho
            w = (self.nu + 2.0) * u * u / (self.nu * u * u + 2.0 * rho * u + eps)
        return w

    def start(self, z, R):
        x = np.zeros((2, self.dim))
        x[:, 0] = z
        P = np.diag([R, self.init[0] ** 2, self.init[1] ** 2][: self.dim])
        return x, P


class _Track:
    """One keypoint's filter: states x (2 axes, dim) sharing covariance P; ``used`` counts the detections the
    track segment has used, up to ``robust_after`` (0: no track)."""

    def __init__(self, model):
        self.m = model
        self.used, self.last = 0, math.nan
        self.x, self.P = np.zeros((2, model.dim)), np.zeros((model.dim, model.dim))

    def step(self, t, dt, zx, zy, c):
        """Returns (status, starts, predicted x, predicted P); self.x, self.P end filtered."""
        m = self.m
        usable = m.usable(zx, zy, c)
        if self.used:
            F, Q = m.transition(dt)
            self.x = self.x @ F.T
            self.P = F @ self.P @ F.T + Q
            xp, Pp = self.x.copy(), self.P.copy()
        else:
            xp, Pp = np.full_like(self.x, np.nan), np.full_like(self.P, np.nan)
        if self.used and not usable and t - self.last > m.max_gap_s:
            self.used = 0
        if not self.used:
            if not usable:
                return MISSING, False, xp, Pp
            self.x, self.P = m.start((zx, zy), m.variance(c))
            self.used, self.last = 1, t
            return MEASURED, True, xp, Pp
        if not usable:
            return FILLED, False, xp, Pp
        R = m.variance(c)
        innovation = np.array([zx, zy]) - self.x[:, 0]
        e2 = float(innovation @ innovation)
        if e2 / (self.P[0, 0] + R) > m.gate:
            if t - self.last > m.max_gap_s:
                self.used = 0
                return MISSING, False, xp, Pp
            return REJECTED, False, xp, Pp
        if self.used >= m.robust_after:  # a segment's first detections are taken at face value
            R = R / m.robust_weight(e2, float(self.P[0, 0]), R)  # R itself unless measurement_dof is finite
        self.used = min(self.used + 1, m.robust_after)
        S = self.P[0, 0] + R
        K = self.P[:, :1] / S
        self.x = self.x + innovation[:, None] * K[:, 0]
        A = np.eye(m.dim) - K @ m.H
        self.P = A @ self.P @ A.T + K @ K.T * R  # Joseph form
        self.last = t
        return MEASURED, False, xp, Pp


def _check_times(times, keypoints):
    if keypoints.ndim != 3 or keypoints.shape[2] != 3 or len(times) != len(keypoints):
        raise ValueError(f"keypoints must be (n, K, 3) with n = len(times); got {keypoints.shape[:3]} "
                         f"and {len(times)} times")  # fmt: skip
    for f in range(1, len(times)):
        if not times[f] > times[f - 1]:
            raise ValueError(f"times must increase; frame {f} at {times[f]!r} follows {times[f - 1]!r}")


def filter_track(times, keypoints, dim=2, q=5.0e4, r0=3.0, min_confidence=0.05, gate=13.8, max_gap_s=0.15,
                 init_velocity_sigma=1000.0, init_acceleration_sigma=2000.0, confidence_power=1.0,
                 measurement_dof=math.inf, robust_after=-1):  # fmt: skip
    model = _Model(dim, q, r0, min_confidence, gate, max_gap_s, init_velocity_sigma, init_acceleration_sigma,
                   confidence_power, measurement_dof, robust_after)  # fmt: skip
    times, keypoints = np.asarray(times, dtype=np.float64), np.asarray(keypoints, dtype=np.float64)
    _check_times(times, keypoints)
    n, K = keypoints.shape[:2]
    out = {
        "x": np.full((n, K, 2, dim), np.nan), "P": np.full((n, K, dim, dim), np.nan),
        "x_pred": np.full((n, K, 2, dim), np.nan), "P_pred": np.full((n, K, dim, dim), np.nan),
        "status": np.empty((n, K), dtype=np.int8), "starts": np.zeros((n, K), dtype=bool),
    }  # fmt: skip
    for k in range(K):
        track = _Track(model)
        for f in range(n):
            dt = times[f] - times[f - 1] if f > 0 else 0.0
            code, start, xp, Pp = track.step(times[f], dt, *keypoints[f, k])
            out["status"][f, k], out["starts"][f, k] = code, start
            out["x_pred"][f, k], out["P_pred"][f, k] = xp, Pp
            if code != MISSING:
                out["x"][f, k], out["P"][f, k] = track.x, track.P
    return out


def _smooth_step(model, dt, xf, Pf, xp_next, Pp_next, xs_next, Ps_next):
    F, _ = model.transition(dt)
    try:
        C = Pf @ F.T @ np.linalg.inv(Pp_next)
    except np.linalg.LinAlgError:
        return xf, Pf
    return xf + (xs_next - xp_next) @ C.T, Pf + C @ (Ps_next - Pp_next) @ C.T


def rts_smooth(times, filtered, dim=2, q=5.0e4):
    model = _Model(dim, q, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0)
    if filtered["x"].shape[3] != dim:
        raise ValueError(f"the filtered states have dim {filtered['x'].shape[3]}, not {dim}")
    if len(times) != len(filtered["x"]):
        raise ValueError(f"{len(times)} times for {len(filtered['x'])} filtered frames")
    xs, Ps = filtered["x"].copy(), filtered["P"].copy()
    status, starts = filtered["status"], filtered["starts"]
    n, K = status.shape
    for k in range(K):
        for f in range(n - 2, -1, -1):
            if status[f, k] == MISSING or status[f + 1, k] == MISSING or starts[f + 1, k]:
                continue
            xs[f, k], Ps[f, k] = _smooth_step(model, times[f + 1] - times[f], filtered["x"][f, k],
                                              filtered["P"][f, k], filtered["x_pred"][f + 1, k],
                                              filtered["P_pred"][f + 1, k], xs[f + 1, k], Ps[f + 1, k])  # fmt: skip
    return xs, Ps


def smooth_track(times, keypoints, dim=2, q=5.0e4, r0=3.0, min_confidence=0.05, gate=13.8, max_gap_s=0.15,
                 init_velocity_sigma=1000.0, init_acceleration_sigma=2000.0, confidence_power=1.0,
                 measurement_dof=math.inf, robust_after=-1):  # fmt: skip
    """``filter_track`` then ``rts_smooth``: smoothed x and P, with the filter's status and starts."""
    filtered = filter_track(times, keypoints, dim, q, r0, min_confidence, gate, max_gap_s,
                            init_velocity_sigma, init_acceleration_sigma, confidence_power,
                            measurement_dof, robust_after)  # fmt: skip
    xs, Ps = rts_smooth(times, filtered, dim, q)
    return {"x": xs, "P": Ps, "status": filtered["status"], "starts": filtered["starts"]}


class LiveKeypointFilter:
    def __init__(self, n_keypoints, dim=2, q=5.0e4, r0=3.0, min_confidence=0.05, gate=13.8, max_gap_s=0.15,
                 init_velocity_sigma=1000.0, init_acceleration_sigma=2000.0, lag_s=0.1, capacity=256,
                 confidence_power=1.0, measurement_dof=math.inf, robust_after=-1):  # fmt: skip
        self.m = _Model(dim, q, r0, min_confidence, gate, max_gap_s, init_velocity_sigma,
                        init_acceleration_sigma, confidence_power, measurement_dof, robust_after)  # fmt: skip
        if n_keypoints < 1:
            raise ValueError(f"n_keypoints must be at least 1, got {n_keypoints}")
        if not (math.isfinite(lag_s) and lag_s >= 0.0):
            raise ValueError(f"lag_s must be a non-negative finite number, got {lag_s!r}")
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2 frames, got {capacity}")
        self.n_keypoints, self.capacity, self.lag_s = n_keypoints, capacity, lag_s
        self.tracks = [_Track(self.m) for _ in range(n_keypoints)]
        self.history: list[dict] = []  # frames not yet emitted, oldest first
        self.frame: dict | None = None
        self.previous_t = math.nan

    @property
    def dim(self):
        return self.m.dim

    def begin_frame(self, t):
        if self.frame is not None:
            raise RuntimeError("the previous frame is still open: call end_frame first")
        if math.isfinite(self.previous_t) and not t > self.previous_t:
            raise ValueError(f"frame time {t!r} does not follow the previous one")
        out = self._emit(1) if len(self.history) >= self.capacity else []
        K, d = self.n_keypoints, self.m.dim
        self.frame = {"t": t, "x": np.zeros((K, 2, d)), "P": np.zeros((K, d, d)), "x_pred": np.zeros((K, 2, d)),
                      "P_pred": np.zeros((K, d, d)), "status": np.zeros(K, dtype=np.int8),
                      "starts": np.zeros(K, dtype=bool), "stepped": np.zeros(K, dtype=bool)}  # fmt: skip
        return out

    def step(self, k, x, y, confidence):
        if self.frame is None:
            raise RuntimeError("no frame is open: call begin_frame first")
        if not 0 <= k < self.n_keypoints:
            raise IndexError(f"keypoint {k} out of range 0..{self.n_keypoints - 1}")
        frame = self.frame
        if frame["stepped"][k]:
            raise RuntimeError(f"keypoint {k} was already filtered in this frame")
        dt = frame["t"] - self.previous_t if math.isfinite(self.previous_t) else 0.0
        track = self.tracks[k]
        code, start, xp, Pp = track.step(frame["t"], dt, x, y, confidence)
        frame["status"][k], frame["starts"][k], frame["stepped"][k] = code, start, True
        frame["x_pred"][k], frame["P_pred"][k] = xp, Pp
        frame["x"][k], frame["P"][k] = track.x, track.P
        return code

    def end_frame(self):
        if self.frame is None:
            raise RuntimeError("no frame is open")
        for k in np.flatnonzero(~self.frame["stepped"]):
            self.step(int(k), math.nan, math.nan, math.nan)
        t = self.frame["t"]
        self.history.append(self.frame)
        self.frame, self.previous_t = None, t
        due = sum(1 for frame in self.history if frame["t"] <= t - self.lag_s)
        return self._emit(due)

    def estimate(self, k):
        track = self.tracks[k]
        if not track.used:
            return (math.nan,) * 5
        return (track.x[0, 0], track.x[1, 0], track.x[0, 1], track.x[1, 1], track.P[0, 0])

    def push(self, t, keypoints):
        keypoints = np.asarray(keypoints, dtype=np.float64)
        if keypoints.shape != (self.n_keypoints, 3):
            raise ValueError(f"expected ({self.n_keypoints}, 3) keypoints, got {keypoints.shape[:2]}")
        out = self.begin_frame(t)
        for k in range(self.n_keypoints):
            self.step(k, *keypoints[k])
        return out + self.end_frame()

    def flush(self):
        if self.frame is not None:
            raise RuntimeError("a frame is still open: call end_frame first")
        return self._emit(len(self.history))

    def _emit(self, count):
        """Smooth back from the newest frame; emit (and drop) the oldest ``count`` frames."""
        if count <= 0:
            return []
        frames = self.history
        K = self.n_keypoints
        means, variances = np.full((count, K, 2), np.nan), np.full((count, K), np.nan)
        statuses = np.empty((count, K), dtype=np.int8)
        for k in range(K):
            xs, Ps = frames[-1]["x"][k], frames[-1]["P"][k]
            for f in range(len(frames) - 1, -1, -1):
                here = frames[f]
                if f < len(frames) - 1:
                    after = frames[f + 1]
                    if here["status"][k] == MISSING:
                        pass
                    elif after["status"][k] == MISSING or after["starts"][k]:
                        xs, Ps = here["x"][k], here["P"][k]
                    else:
                        xs, Ps = _smooth_step(self.m, after["t"] - here["t"], here["x"][k], here["P"][k],
                                              after["x_pred"][k], after["P_pred"][k], xs, Ps)  # fmt: skip
                if f < count:
                    statuses[f, k] = here["status"][k]
                    if here["status"][k] != MISSING:
                        means[f, k], variances[f, k] = xs[:, 0], Ps[0, 0]
        out = [(frames[j]["t"], means[j], variances[j], statuses[j]) for j in range(count)]
        del frames[:count]
        return out

    def get_state(self):
        if self.frame is not None:
            raise RuntimeError("a frame is open: save the state between frames")
        return {"version": STATE_VERSION, "model": self.m.params(), "n_keypoints": self.n_keypoints,
                "capacity": self.capacity, "lag_s": self.lag_s, "previous_t": self.previous_t,
                "tracks": [(t.used, t.last, t.x.copy(), t.P.copy()) for t in self.tracks],
                "history": [{k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in f.items()}
                            for f in self.history]}  # fmt: skip

    def set_state(self, state):
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version {state.get('version')!r} is not {STATE_VERSION}")
        if (state["n_keypoints"], state["capacity"]) != (self.n_keypoints, self.capacity):
            raise ValueError("state was saved by a filter of another size")
        self.m = _Model(*state["model"])
        self.lag_s, self.previous_t = state["lag_s"], state["previous_t"]
        self.tracks = [_Track(self.m) for _ in range(self.n_keypoints)]
        for track, (used, last, x, P) in zip(self.tracks, state["tracks"], strict=True):
            track.used, track.last, track.x, track.P = used, last, x.copy(), P.copy()
        self.history = [dict(f) for f in state["history"]]
