"""Twin of ``kinefuse._ext.one_euro``: the same floating-point operations in the same order
(bit-identical; change both together)."""

from __future__ import annotations

import math

import numpy as np

_PI = 3.141592653589793


def _alpha(te, cutoff):
    tau = 1.0 / (2.0 * _PI * cutoff)
    return 1.0 / (1.0 + tau / te)


class OneEuroFilter:
    def __init__(self, channels, min_cutoff=1.0, beta=0.05, d_cutoff=1.0):
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        for name, v in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            if not (math.isfinite(v) and v > 0.0):
                raise ValueError(f"{name} must be a positive finite number (Hz), got {v!r}")
        if not (math.isfinite(beta) and beta >= 0.0):
            raise ValueError(f"beta must be a non-negative finite number, got {beta!r}")
        self.channels, self.min_cutoff, self.beta, self.d_cutoff = channels, min_cutoff, beta, d_cutoff
        self.value, self.slope = [0.0] * channels, [0.0] * channels
        self.last_t, self.started = [0.0] * channels, [0] * channels

    def filter_one(self, channel, t, x):
        if not 0 <= channel < self.channels:
            raise IndexError(f"channel {channel} out of range 0..{self.channels - 1}")
        if not math.isfinite(x):
            return math.nan
        if not self.started[channel]:
            self.started[channel] = 1
            self.value[channel], self.slope[channel], self.last_t[channel] = x, 0.0, t
            return x
        te = t - self.last_t[channel]
        if not te > 0.0:
            raise ValueError(f"channel {channel}: time {t!r} does not follow {self.last_t[channel]!r}")
        a_d = _alpha(te, self.d_cutoff)
        slope = a_d * ((x - self.value[channel]) / te) + (1.0 - a_d) * self.slope[channel]
        a = _alpha(te, self.min_cutoff + self.beta * abs(slope))
        value = a * x + (1.0 - a) * self.value[channel]
        self.value[channel], self.slope[channel], self.last_t[channel] = value, slope, t
        return value

    def filter(self, t, values):
        if len(values) != self.channels:
            raise ValueError(f"expected {self.channels} values, got {len(values)}")
        return np.array([self.filter_one(c, float(t), float(v)) for c, v in enumerate(values)])

    def filter_batch(self, times, values):
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(times), self.channels):
            raise ValueError(f"expected ({len(times)}, {self.channels}) values, got {values.shape[:2]}")
        return np.array([self.filter(t, row) for t, row in zip(times, values, strict=True)]).reshape(
            values.shape
        )

    def get_state(self):
        return {name: np.array(getattr(self, name)) for name in ("value", "slope", "last_t", "started")}

    def set_state(self, state):
        for name in ("value", "slope", "last_t", "started"):
            if len(state[name]) != self.channels:
                raise ValueError(f"state {name} has {len(state[name])} channels, not {self.channels}")
            setattr(self, name, [type(getattr(self, name)[0])(v) for v in state[name]])
