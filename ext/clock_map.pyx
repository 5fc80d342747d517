"""Online mapping of a device clock onto host ``time.monotonic_ns()``: ``ClockMapper``.

Each sample brings its device timestamp and its host arrival time, which is the true time plus a
non-negative, jittered latency (BLE batching makes several samples share one arrival).  The model is
host = offset + (1 + skew) * device_seconds.  Per sample, relative to the first sample (so numbers stay
small and exact): ``t`` device seconds, residual ``r = host seconds - t = offset + skew * t + latency``.

* Offset: a lower envelope of the residuals.  Latency is never negative, so the minimum-latency samples
  sit on the lowest line under the residuals; the idea is the lower-envelope / convex-hull estimation of
  Moon, Skelly & Towsley, "Estimation and removal of clock skew from network delay measurements" (IEEE
  INFOCOM 1999).  Online, the envelope level follows the current skew from sample to sample, drops to any
  residual below it, and rises by ``leak_per_s`` per device second so it can follow a latency floor that
  rises and forgives a skew estimate that is slightly off.
* Skew: the slope of exponentially weighted least squares (the closed form of recursive least squares
  with forgetting factor, e.g. Haykin, "Adaptive Filter Theory"), fitted to the minimum residual
  of each block of ``block_s`` device seconds -- the per-interval minimum-delay idea found in Paxson, "On
  calibrating measurements of packet transit times" (SIGMETRICS 1998) -- because raw residuals carry the
  full latency jitter (and BLE batching's sawtooth), while a block minimum is within a fraction of a ms of
  the floor.  The sums are kept in West's weighted incremental form ("Updating mean and variance
  estimates: an improved method", CACM 1979) so that nothing large cancels.  A block minimum that is off
  the fitted line by more than ``gate`` running scales is left out; three in a row on one side are an
  offset step, which moves the line's intercept and keeps its slope.
* Outliers: after ``warmup`` samples, a sample whose residual is more than ``gate`` running scales from
  the envelope (a latency spike, a corrupt timestamp) is rejected: it teaches nothing and is mapped by the
  model.  The scale is a mean |deviation| winsorised at the threshold (Huber-style), so a lasting change
  of the spread is followed while single spikes barely move it.
* A mapped time is never later than the sample's own arrival: such results are clamped and counted.

``kinefuse._pure.clock_map`` is the pure-Python twin: the same floating-point operations in the same order
(setup.py builds with -ffp-contract=off), so the two are bit-identical.  Change both together.
"""

cimport cython
from cpython.number cimport PyNumber_Index
from libc.math cimport fabs, floor, isfinite
from libc.stdint cimport int64_t

import operator

import numpy as np

STATE_VERSION = 1
cdef int _STATE_LEN = 25
cdef double _MIN_SCALE_S = 1e-4  # scale floor: a jitter-free stream must not reject its own rounding noise
cdef double _SAMPLE_ALPHA = 0.01  # weight of one sample in the samples' running robust scale (~100 samples)
cdef double _BLOCK_ALPHA = 0.1  # weight of one block minimum in the blocks' running robust scale (~10 blocks)
cdef long long _BLOCK_WARMUP = 5  # block minima fitted ungated while the line forms
cdef long long _STEP_BLOCKS = 3  # consecutive block minima off the line on one side: an offset step
cdef double _MAX_SPAN_S = 1e8  # device seconds from the first sample beyond this are nonsense (overflow ns)


def _check_params(clock_hz, forgetting, block_s, leak_per_s, gate, warmup):
    if not (isfinite(clock_hz) and clock_hz > 0.0):
        raise ValueError(f"clock_hz must be a positive finite number, got {clock_hz!r}")
    if not 0.0 < forgetting <= 1.0:
        raise ValueError(f"forgetting must be in (0, 1], got {forgetting!r}")
    if not (isfinite(block_s) and block_s > 0.0):
        raise ValueError(f"block_s must be a positive finite number, got {block_s!r}")
    if not (isfinite(leak_per_s) and leak_per_s >= 0.0):
        raise ValueError(f"leak_per_s must be a non-negative finite number, got {leak_per_s!r}")
    if not (isfinite(gate) and gate > 0.0):
        raise ValueError(f"gate must be a positive finite number, got {gate!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup!r}")


cdef inline bint _robust_gate(
    double* scale, long long n, long long warmup, double alpha, double gate, double e
) noexcept nogil:
    """Accept ``e`` unless it lies beyond ``gate`` running scales, updating ``scale``.

    The scale is the mean |e| over the first ``warmup`` values, then an exponentially weighted mean of
    |e| winsorised at the threshold: one outlier cannot drag it far, yet a lasting wider spread widens it
    step by step until the new values are accepted again.
    """
    cdef double a = fabs(e)
    cdef double thr
    cdef bint accepted
    if n <= warmup:
        scale[0] = scale[0] + (a - scale[0]) / <double>n
        return True
    thr = gate * (scale[0] if scale[0] > _MIN_SCALE_S else _MIN_SCALE_S)
    accepted = a <= thr
    scale[0] = scale[0] + alpha * ((a if accepted else thr) - scale[0])
    return accepted


cdef inline long long _extend_run(long long run, double d) noexcept nogil:
    """The signed count of consecutive off-line block minima, extended by one off by ``d``."""
    if d > 0.0:
        return run + 1 if run > 0 else 1
    return run - 1 if run < 0 else -1


@cython.final
cdef class ClockMapper:
    """Maps a device clock (ticks at ``clock_hz``) onto host ``time.monotonic_ns()``, online.

    Model: host = offset + (1 + skew) * device_seconds.  ``offset_ns`` is the host monotonic time (ns) the
    current model gives device tick 0, so ``host_ns ~= offset_ns + (1 + skew_ppm * 1e-6) * ticks / clock_hz
    * 1e9`` for the minimum-latency path (None before the first sample).  ``forgetting`` is per block of
    ``block_s`` device seconds; ``leak_per_s`` is how fast (s/s) the latency floor may rise; ``gate`` is
    in running robust scales; the first ``warmup`` samples are never rejected.
    """

    cdef double _clock_hz, _forgetting, _block_s, _leak, _gate_k
    cdef long long _warmup
    cdef long long _anchored, _host0, _n_gated, _n_blocks, _run, _count, _rejected, _clamped
    cdef double _ticks0, _level, _t_env, _skew, _w, _mt, _mr, _ctt, _ctr
    cdef double _blk_t0, _blk_t, _blk_r, _blk_q, _scale, _bscale

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

    def update(self, double device_ticks, host_ns):
        """Learn from one sample and return its mapped host time (ns), never later than ``host_ns``."""
        # PyNumber_Index: an int host time, never a float silently truncated
        return self._step(device_ticks, PyNumber_Index(host_ns))

    cdef long long _step(self, double ticks, long long host_ns) noexcept nogil:
        cdef double t, host_rel_ns, r, dt, pred, leaked, x
        cdef bint accepted
        self._count += 1
        if not self._anchored:
            if not isfinite(ticks):
                self._rejected += 1
                return host_ns
            self._anchor(ticks, host_ns)
            return host_ns
        t = (ticks - self._ticks0) / self._clock_hz
        if not (fabs(t) <= _MAX_SPAN_S):  # also catches NaN and inf
            self._rejected += 1
            return host_ns
        host_rel_ns = <double>(host_ns - self._host0)  # exact below 2**53 ns (104 days)
        r = host_rel_ns / 1e9 - t
        dt = t - self._t_env
        pred = self._level + self._skew * dt
        self._n_gated += 1
        accepted = _robust_gate(
            &self._scale, self._n_gated, self._warmup, _SAMPLE_ALPHA, self._gate_k, r - pred
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

    cdef inline void _anchor(self, double ticks, long long host_ns) noexcept nogil:
        # All later arithmetic is relative to the first sample, so it stays in small, exact numbers.
        self._anchored = 1
        self._ticks0 = ticks
        self._host0 = host_ns

    cdef inline void _block_add(self, double t, double r) noexcept nogil:
        cdef double q = r - self._skew * t
        if t >= self._blk_t0 + self._block_s:
            self._fit_block(self._blk_t, self._blk_r)
            self._blk_t0 = t
            self._blk_t, self._blk_r, self._blk_q = t, r, q
        elif q < self._blk_q:
            self._blk_t, self._blk_r, self._blk_q = t, r, q

    cdef void _fit_block(self, double t, double r) noexcept nogil:
        # A latency floor that steps (another BLE connection interval, a suspended host) moves every later
        # block minimum off the line; fitting them would tilt the slope for the whole forgetting memory.
        # A lasting step moves the line's intercept instead and keeps its slope.
        cdef double d
        cdef bint accepted
        self._n_blocks += 1
        if self._n_blocks > 1:  # the first minimum has no line to be off
            d = r - (self._mr + self._skew * (t - self._mt))
            accepted = _robust_gate(
                &self._bscale, self._n_blocks - 1, _BLOCK_WARMUP, _BLOCK_ALPHA, self._gate_k, d
            )
            if not accepted:
                self._run = _extend_run(self._run, d)
                if (self._run if self._run > 0 else -self._run) < _STEP_BLOCKS:
                    return
                self._mr = self._mr + d
        self._run = 0
        self._fit_point(t, r)

    cdef void _fit_point(self, double t, double r) noexcept nogil:
        # Exponentially weighted least squares (the closed form of RLS with forgetting factor), updated
        # in West's weighted incremental form so that no large sums cancel.
        cdef double lam = self._forgetting
        cdef double k, dt, dr
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

    cdef inline long long _to_host(self, double x, double host_rel_ns, long long host_ns) noexcept nogil:
        cdef double rounded = floor(x * 1e9 + 0.5)
        if rounded > host_rel_ns:  # a sample cannot have happened after it arrived
            self._clamped += 1
            return host_ns
        return self._host0 + <long long>rounded

    # -- batch and read-only API ----------------------------------------------------------------------

    def update_batch(self, device_ticks, host_ns):
        """``update`` for each sample in turn; returns the mapped times as an int64 array."""
        ticks_arr = np.asarray(device_ticks, dtype=np.float64)
        hosts_arr = np.asarray(host_ns, dtype=np.int64)
        if ticks_arr.ndim != 1 or ticks_arr.shape != hosts_arr.shape:
            raise ValueError(
                "device_ticks and host_ns must be 1-D and of equal length, "
                f"got {ticks_arr.shape} and {hosts_arr.shape}"
            )
        out = np.empty(ticks_arr.shape[0], dtype=np.int64)
        cdef const double[:] ticks = ticks_arr
        cdef const int64_t[:] hosts = hosts_arr
        cdef int64_t[::1] mapped = out
        cdef Py_ssize_t i
        with nogil:
            for i in range(ticks.shape[0]):
                mapped[i] = self._step(ticks[i], hosts[i])
        return out

    def map(self, device_ticks: float) -> int:
        """The current model's host time (ns) for ``device_ticks``, without learning or clamping."""
        cdef double ticks = float(device_ticks)
        cdef double t, x
        if not self._anchored:
            raise ValueError("ClockMapper.map: no sample yet, so there is no mapping")
        if not isfinite(ticks):
            raise ValueError(f"ClockMapper.map: device_ticks must be finite, got {ticks!r}")
        t = (ticks - self._ticks0) / self._clock_hz
        x = t + (self._level + self._skew * (t - self._t_env))
        return self._host0 + int(float(floor(x * 1e9 + 0.5)))

    @property
    def clock_hz(self) -> float:
        return self._clock_hz

    @property
    def skew_ppm(self) -> float:
        return self._skew * 1e6

    @property
    def offset_ns(self):
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
        )

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
        ) = floats
