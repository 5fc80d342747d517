"""The One Euro filter (Casiez, Roussel & Vogel, "1 Euro filter: a simple speed-based low-pass filter for
noisy input in interactive systems", CHI 2012): a first-order low-pass whose cutoff rises with the
signal's speed, so it is smooth when still and quick when moving, with no lag buffer. The low-latency
alternative to the Kalman smoother for keypoints.

Per sample, with te the time since the channel's previous sample and alpha(te, fc) = 1 / (1 + tau / te),
tau = 1 / (2 pi fc): the derivative (x - x_prev_filtered) / te is low-passed at ``d_cutoff``; the cutoff
is fc = ``min_cutoff`` + ``beta`` |derivative|; the value is low-passed at fc. A NaN input gives NaN and
leaves the channel as it was. ``kinefuse._pure.one_euro`` is the twin: the same operations in the same
order, so the two are bit-identical.
"""

cimport cython
from libc.math cimport NAN, fabs, isfinite

import numpy as np

cdef double _PI = 3.141592653589793


cdef inline double _alpha(double te, double cutoff) noexcept nogil:
    cdef double tau = 1.0 / (2.0 * _PI * cutoff)
    return 1.0 / (1.0 + tau / te)


cdef class OneEuroFilter:
    """``channels`` independent signals. ``filter_one(channel, t, x)`` is the per-sample API; ``filter``
    takes one time and a value per channel; ``filter_batch`` whole arrays."""

    cdef readonly int channels
    cdef readonly double min_cutoff, beta, d_cutoff
    cdef double[::1] value, slope, last_t
    cdef cython.uchar[::1] started

    def __init__(self, int channels, double min_cutoff=1.0, double beta=0.05, double d_cutoff=1.0):
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        for name, v in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            if not (isfinite(v) and v > 0.0):
                raise ValueError(f"{name} must be a positive finite number (Hz), got {v!r}")
        if not (isfinite(beta) and beta >= 0.0):
            raise ValueError(f"beta must be a non-negative finite number, got {beta!r}")
        self.channels, self.min_cutoff, self.beta, self.d_cutoff = channels, min_cutoff, beta, d_cutoff
        self.value = np.zeros(channels)
        self.slope = np.zeros(channels)
        self.last_t = np.zeros(channels)
        self.started = np.zeros(channels, dtype=np.uint8)

    cpdef double filter_one(self, int channel, double t, double x) except? -1.0:
        if not 0 <= channel < self.channels:
            raise IndexError(f"channel {channel} out of range 0..{self.channels - 1}")
        if not isfinite(x):
            return NAN
        if not self.started[channel]:
            self.started[channel] = 1
            self.value[channel], self.slope[channel], self.last_t[channel] = x, 0.0, t
            return x
        cdef double te = t - self.last_t[channel]
        if not te > 0.0:
            raise ValueError(f"channel {channel}: time {t!r} does not follow {self.last_t[channel]!r}")
        cdef double a_d = _alpha(te, self.d_cutoff)
        cdef double slope = a_d * ((x - self.value[channel]) / te) + (1.0 - a_d) * self.slope[channel]
        cdef double a = _alpha(te, self.min_cutoff + self.beta * fabs(slope))
        cdef double value = a * x + (1.0 - a) * self.value[channel]
        self.value[channel], self.slope[channel], self.last_t[channel] = value, slope, t
        return value

    def filter(self, double t, double[::1] values):
        """One time, one value per channel; returns the filtered values."""
        if values.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} values, got {values.shape[0]}")
        out = np.empty(self.channels)
        cdef double[::1] o = out
        cdef int c
        for c in range(self.channels):
            o[c] = self.filter_one(c, t, values[c])
        return out

    def filter_batch(self, double[::1] times, double[:, ::1] values):
        """Rows of values (n, channels) at ``times`` (n,)."""
        if values.shape[0] != times.shape[0] or values.shape[1] != self.channels:
            raise ValueError(f"expected ({times.shape[0]}, {self.channels}) values, got {tuple(values.shape)[:2]}")
        out = np.empty((values.shape[0], self.channels))
        cdef double[:, ::1] o = out
        cdef Py_ssize_t i
        cdef int c
        for i in range(values.shape[0]):
            for c in range(self.channels):
                o[i, c] = self.filter_one(c, times[i], values[i, c])
        return out

    def get_state(self):
        return {"value": np.array(self.value), "slope": np.array(self.slope), "last_t": np.array(self.last_t),
                "started": np.array(self.started)}

    def set_state(self, dict state):
        for name in ("value", "slope", "last_t", "started"):
            if len(state[name]) != self.channels:
                raise ValueError(f"state {name} has {len(state[name])} channels, not {self.channels}")
        np.asarray(self.value)[:] = state["value"]
        np.asarray(self.slope)[:] = state["slope"]
        np.asarray(self.last_t)[:] = state["last_t"]
        np.asarray(self.started)[:] = state["started"]
