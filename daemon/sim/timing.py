"""Device clocks and the transport between a device and the host: when each sample was taken (true
time), what the device stamped on it (ticks of a clock with offset and skew), whether it arrived, and
when (latency jitter, BLE-style batching of several samples per notification, frame drops).

All times here are seconds of true time unless a name says otherwise; the host's monotonic clock is
taken as true time (it is the reference every device is aligned to).
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class DeviceClock:
    """ticks = floor((offset_s + t * (1 + skew_ppm * 1e-6)) * hz)."""

    hz: float
    offset_s: float = 0.0
    skew_ppm: float = 0.0

    def ticks(self, t: np.ndarray) -> np.ndarray:
        return np.floor((self.offset_s + np.asarray(t) * (1.0 + self.skew_ppm * 1e-6)) * self.hz).astype(
            np.int64
        )


@dataclasses.dataclass(frozen=True)
class Link:
    """How samples travel to the host. Every error can be switched off: the defaults are a perfect link."""

    loss: float = 0.0  # probability a sample (or, with batching, a whole notification) is lost
    batch: int = 1  # samples per notification
    latency_min_s: float = 0.0  # the transport's floor
    latency_jitter_s: float = 0.0  # mean of the exponential delay above the floor
    spike_probability: float = 0.0  # probability of a long stall on a notification
    spike_s: float = 0.0  # its length

    def validate(self) -> None:
        if not 0.0 <= self.loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {self.loss}")
        if self.batch < 1:
            raise ValueError(f"batch must be at least 1, got {self.batch}")


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What the host receives of a stream of samples taken at ``sample_times``."""

    kept: np.ndarray  # bool (n,): the sample arrived
    arrival_s: np.ndarray  # float (n,): host arrival time of every sample (also of lost ones, for truth)
    notification: np.ndarray  # int (n,): which notification carried it


def deliver(sample_times: np.ndarray, link: Link, rng: np.random.Generator) -> Delivery:
    """Batch samples into notifications, delay each notification, and lose some.

    A notification is sent when its last sample is taken, so earlier samples in it wait longer: the
    latency spread that batching adds, which clock alignment must be robust to.
    """
    link.validate()
    n = len(sample_times)
    notification = np.arange(n) // link.batch
    count = int(notification[-1]) + 1 if n else 0
    last_in = np.minimum((np.arange(count) + 1) * link.batch, n) - 1
    delay = (
        link.latency_min_s + rng.exponential(link.latency_jitter_s, count)
        if link.latency_jitter_s
        else (np.full(count, link.latency_min_s))
    )
    if link.spike_probability:
        delay = delay + np.where(rng.random(count) < link.spike_probability, link.spike_s, 0.0)
    sent = sample_times[last_in] + delay
    arrival = np.maximum.accumulate(sent)  # one connection delivers in order
    lost = rng.random(count) < link.loss if link.loss else np.zeros(count, dtype=bool)
    return Delivery(kept=~lost[notification], arrival_s=arrival[notification], notification=notification)
