"""Pure-Python twin of ``kinefuse._ext.clock_map``; ext/clock_map.pyx explains the method and its sources.

Every floating-point operation happens here in the same order as in the compiled kernel, so the two give
bit-identical results (tests/ext/test_clock_map_equivalence.py holds them to that): change both together.
"""

import math
import operator

import numpy as np

STATE_VERSION = 1
_STATE_LEN = 25
_MIN_SCALE_S = 1e-4  # gate scale floor: a jitter-free stream must not reject its own rounding noise
_SAMPLE_ALPHA = 0.01  # weight of one sample in the samples' running robust scale (memory ~100 samples)
_BLOCK_ALPHA = 0.1  # weight of one block minimum in the blocks' running robust scale (memory ~10 blocks)
_BLOCK_WARMUP = 5  # block minima fitted ungated while the line forms
_STEP_BLOCKS = 3  # consecutive block minima off the line, on one side, that make an offset step
_MAX_SPAN_S = 1e8  # device seconds from the first sample beyond this are nonsense (and would overflow ns)


def _check_params(clock_hz, forgetting, block_s, leak_per_s, gate, warmup):
    if not (math.isfinite(clock_hz) and clock_hz > 0.0):
        raise ValueError(f"clock_hz must be a positive finite number, got {clock_hz!r}")
    if not 0.0 < forgetting <= 1.0:
        raise ValueError(f"forgetting must be in (0, 1], got {forgetting!r}")
    if not (math.isfinite(block_s) and block_s > 0.0):
        raise ValueError(f"block_s must be a positive finite number, got {block_s!r}")
    if not (math.isfinite(leak_per_s) and leak_per_s >= 0.0):
        raise ValueError(f"leak_per_s must be a non-negative finite number, got {leak_per_s!r}")
    if not (math.isfinite(gate) and gate > 0.0):
        raise ValueError(f"gate must be a positive finite number, got {gate!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup!r}")


def _robust_gate(scale, n, warmup, alpha, gate, e):
    """Accept ``e`` unless it lies beyond ``gate`` running scales; returns (accepted, updated scale).

    The scale is the mean |e| over the first ``warmup`` values, then an exponentially weighted mean of
    |e| winsorised at the threshold: one outlier cannot drag it far, yet a lasting wider spread widens it
    step by step until the new values are accepted again.
    """
    a = abs(e)
    if n <= warmup:
        return True, scale + (a - scale) / n
    thr = gate * (scale if scale > _MIN_SCALE_S else _MIN_SCALE_S)
    accepted = a <= thr
    return accepted, scale + alpha * ((a if accepted else thr) - scale)


class ClockMapper:
    """Maps a device clock (ticks at ``clock_hz``) onto host ``time.monotonic_ns()``, online.

    Model: host = offset + (1 + skew) * device_seconds.  ``offset_ns`` is the host monotonic time (ns) the
    current model gives device tick 0, so ``host_ns ~= offset_ns + (1 + skew_ppm * 1e-6) * ticks / clock_hz
    * 1e9`` for the minimum-latency path (None before the first sample).  ``forgetting`` is per block of
    ``block_s`` device seconds; ``leak_per_s`` is how fast (s/s) the latency floor may rise; ``gate`` is
    in running robust scales; the first ``warmup`` samples are never rejected.
    """

    __slots__ = (
        "_clock_hz", "_forgetting", "_block_s", "_leak", "_gate_k", "_warmup",
        "_anchored", "_host0", "_n_gated", "_n_blocks", "_run", "_count", "_rejected", "_clamped",
        "_ticks0", "_level", "_t_env", "_skew", "_w", "_mt", "_mr", "_ctt", "_ctr",
        "_blk_t0", "_blk_t", "_blk_r", "_blk_q", "_scale", "_bscale",
    )  # fmt: skip

    def __init__(
        self,
        clock_hz: float,
        forgetting: float = 0.98,
        block_s: float = 2.0,
        leak_per_s: float = 5e-4,
        gate: float = 5.0,
        warmup: int = 100,
    ) -> None:
        clock_hz, forgetting, block_s = float(clock_hz), float(forgetting), float(block_s)
        leak_per_s, gate, warmup = float(leak_per_s), float(gate), operator.index(warmup)
        _check_params(clock_hz, forgetting, block_s, leak_per_s, gate, warmup)
        self._clock_hz = clock_hz
        self._forgetting = forgetting
        self._block_s = block_s
        self._leak = leak_per_s
        self._gate_k = gate
        self._warmup = warmup
        self.set_state((STATE_VERSION, clock_hz) + (0,) * 8 + (0.0,) * 15)  # nothing learnt yet

    # -- the per-sample step -------------------------------------------------------------------------

    def update(self, device_ticks: float, host_ns: int) -> int:
        """Learn from one sample and return its mapped host time (ns), never later than ``host_ns``."""
        return self._step(float(device_ticks), operator.index(host_ns))

    def _step(self, ticks, host_ns):
        self._count += 1
        if not self._anchored:
            if not math.isfinite(ticks):
                self._rejected += 1
                return host_ns
            self._anchor(ticks, host_ns)
            return host_ns
        t = (ticks - self._ticks0) / self._clock_hz
        if not (abs(t) <= _MAX_SPAN_S):  # also catches NaN and inf
            self._rejected += 1
            return host_ns
        host_rel_ns = float(host_ns - self._host0)  # exact below 2**53 ns (104 days)
        r = host_rel_ns / 1e9 - t
        dt = t - self._t_env
        pred = self._level + self._skew * dt
        self._n_gated += 1
        accepted, self._scale = _robust_gate(
            self._scale, self._n_gated, self._warmup, _SAMPLE_ALPHA, self._gate_k, r - pred
        )
        if accepted:
            leaked = pred + self._leak * (dt if dt > 0.0 else 0.0)
            self._level = r if r < leaked else leaked
            self._t_env = t
            self._block_add(t, r)
            x = t + self._level
        else:
            self._rejected += 1
            x = t + pred
        return self._to_host(x, host_rel_ns, host_ns)

    def _anchor(self, ticks, host_ns):
        # All later arithmetic is relative to the first sample, so it stays in small, exact numbers.
        self._anchored = 1
        self._ticks0 = ticks
        self._host0 = host_ns

    def _block_add(self, t, r):
        q = r - self._skew * t
        if t >= self._blk_t0 + self._block_s:
            self._fit_block(self._blk_t, self._blk_r)
            self._blk_t0 = t
            self._blk_t, self._blk_r, self._blk_q = t, r, q
        elif q < self._blk_q:
            self._blk_t, self._blk_r, self._blk_q = t, r, q

    def _fit_block(self, t, r):
        # A latency floor that steps (another BLE connection interval, a suspended host) moves every later
        # block minimum off the line; fitting them would tilt the slope for the whole forgetting memory.
        # A lasting step moves the line's intercept instead and keeps its slope.
        self._n_blocks += 1
        if self._n_blocks > 1:  # the first minimum has no line to be off
            d = r - (self._mr + self._skew * (t - self._mt))
            accepted, self._bscale = _robust_gate(
                self._bscale, self._n_blocks - 1, _BLOCK_WARMUP, _BLOCK_ALPHA, self._gate_k, d
            )
            if not accepted:
                self._run = _extend_run(self._run, d)
                if abs(self._run) < _STEP_BLOCKS:
                    return
                self._mr = self._mr + d
        self._run = 0
        self._fit_point(t, r)

    def _fit_point(self, t, r):
        # Exponentially weighted least squares (the closed form of RLS with forgetting factor), updated
        # in West's weighted incremental form so that no large sums cancel.
        lam = self._forgetting
        self._w = lam * self._w + 1.0
        k = 1.0 / self._w
        dt = t - self._mt
        dr = r - self._mr
        self._mt = self._mt + k * dt
        self._mr = self._mr + k * dr
        self._ctt = lam * self._ctt + dt * (t - self._mt)
        self._ctr = lam * self._ctr + dt * (r - self._mr)
        if self._ctt > 0.0:
            self._skew = self._ctr / self._ctt

    def _to_host(self, x, host_rel_ns, host_ns):
        rounded = math.floor(x * 1e9 + 0.5)
        if rounded > host_rel_ns:  # a sample cannot have happened after it arrived
            self._clamped += 1
            return host_ns
        return self._host0 + rounded

    # -- batch and read-only API ----------------------------------------------------------------------

    def update_batch(self, device_ticks, host_ns) -> np.ndarray:
        """``update`` for each sample in turn; returns the mapped times as an int64 array."""
        ticks = np.asarray(device_ticks, dtype=np.float64)
        hosts = np.asarray(host_ns, dtype=np.int64)
        if ticks.ndim != 1 or ticks.shape != hosts.shape:
            raise ValueError(
                "device_ticks and host_ns must be 1-D and of equal length, "
                f"got {ticks.shape} and {hosts.shape}"
            )
        step = self._step
        mapped = [step(tk, h) for tk, h in zip(ticks.tolist(), hosts.tolist(), strict=True)]
        return np.array(mapped, dtype=np.int64)

    def map(self, device_ticks: float) -> int:
        """The current model's host time (ns) for ``device_ticks``, without learning or clamping."""
        ticks = float(device_ticks)
        if not self._anchored:
            raise ValueError("ClockMapper.map: no sample yet, so there is no mapping")
        if not math.isfinite(ticks):
            raise ValueError(f"ClockMapper.map: device_ticks must be finite, got {ticks!r}")
        t = (ticks - self._ticks0) / self._clock_hz
        x = t + (self._level + self._skew * (t - self._t_env))
        return self._host0 + math.floor(x * 1e9 + 0.5)

    @property
    def clock_hz(self) -> float:
        return self._clock_hz

    @property
    def skew_ppm(self) -> float:
        return self._skew * 1e6

    @property
    def offset_ns(self) -> int | None:
        return self.map(0.0) if self._anchored else None

    @property
    def count(self) -> int:
        return self._count

    @property
    def rejected(self) -> int:
        return self._rejected

    @property
    def clamped(self) -> int:
        return self._clamped

    # -- persistence ------------------------------------------------------------------------------------

    def get_state(self) -> tuple:
        """Everything the mapper has learnt, as plain ints and floats, for ``set_state`` after a restart."""
        return (
            STATE_VERSION, self._clock_hz,
            self._anchored, self._host0, self._n_gated, self._n_blocks, self._run,
            self._count, self._rejected, self._clamped,
            self._ticks0, self._level, self._t_env, self._skew, self._w, self._mt, self._mr, self._ctt,
            self._ctr, self._blk_t0, self._blk_t, self._blk_r, self._blk_q, self._scale, self._bscale,
        )  # fmt: skip

    def set_state(self, state: tuple) -> None:
        """Resume from ``get_state()`` of a mapper for the same clock; it then continues bit-identically."""
        if len(state) != _STATE_LEN or state[0] != STATE_VERSION:
            raise ValueError(f"not a version-{STATE_VERSION} ClockMapper state: {state!r:.200}")
        if float(state[1]) != self._clock_hz:
            raise ValueError(f"state is for a {state[1]} Hz clock, this mapper's runs at {self._clock_hz} Hz")
        ints = [operator.index(v) for v in state[2:10]]  # convert all before assigning any
        floats = [float(v) for v in state[10:]]
        anchored, self._host0, self._n_gated, self._n_blocks, self._run, self._count = ints[:6]
        self._rejected, self._clamped = ints[6:]
        self._anchored = 1 if anchored else 0
        (
            self._ticks0, self._level, self._t_env, self._skew, self._w, self._mt, self._mr, self._ctt,
            self._ctr, self._blk_t0, self._blk_t, self._blk_r, self._blk_q, self._scale, self._bscale,
        ) = floats  # fmt: skip


def _extend_run(run, d):
    """The signed count of consecutive off-line block minima, extended by one off by ``d``."""
    if d > 0.0:
        return run + 1 if run > 0 else 1
    return run - 1 if run < 0 else -1
