"""The example plugin: the ``acc_magnitude_peak`` metric and the ``sine_imu`` source.

kinefuse finds this module through the ``kinefuse.plugins`` entry point in pyproject.toml and calls
each ``@hookimpl`` function once, at start-up.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import numpy as np

from kinefuse import hookimpl
from kinefuse.configschema import Field
from kinefuse.interfaces import ProcessorSpec, SourceContext, SourceSpec
from kinefuse.types import (
    GOOD,
    DerivedValue,
    DeviceInfo,
    DeviceKind,
    ImuBatch,
    ImuSample,
    Provenance,
    Quality,
    QualityLevel,
    SampleBatch,
    imu_batch,
)

_NS = 1_000_000_000
GRAVITY = 9.80665  # m/s^2

# --- the acc_magnitude_peak metric -------------------------------------------------------------------
METRIC = "acc_magnitude_peak"
PEAK_SCHEMA = {
    "min_samples": Field(int, 10, "a second holding fewer samples gives an insufficient value", min=1),
}


@dataclasses.dataclass
class _Window:
    """One second of one device's aligned time, reduced as its samples arrive."""

    second: int  # time_ns // 1 s
    peak: float = 0.0
    count: int = 0
    missing: int = 0  # samples the device numbered but never delivered


class AccMagnitudePeak:
    """Per IMU device, once per second of aligned time: the peak |acc| in m/s^2, stamped at the end of
    its second.  Insufficient when the second holds fewer than ``min_samples`` samples, degraded when
    sequence numbers show samples were lost."""

    def __init__(self, options: dict, processor_id: str):
        self.min_samples = options["min_samples"]
        self.processor_id = processor_id
        self._open: dict[tuple[str, str], _Window] = {}
        self._last_seq: dict[tuple[str, str], int] = {}

    def process(self, batch: SampleBatch) -> list[DerivedValue]:
        if not isinstance(batch, ImuBatch):
            return []  # camera frames carry no acceleration
        key = (batch.source_id, batch.device_id)
        # a batch the clock aligner could not map yet still has its arrival times
        seconds = (batch.time_ns if batch.time_ns is not None else batch.host_ns) // _NS
        magnitude = np.linalg.norm(batch.acc, axis=1)
        missing = self._missing_before(key, batch.seq)
        # one run of consecutive samples per second: a few numpy reductions per batch, not per sample
        starts = np.flatnonzero(np.diff(seconds, prepend=seconds[0] - 1)).tolist()
        out: list[DerivedValue] = []
        for start, end in zip(starts, [*starts[1:], len(batch)], strict=True):
            run = slice(start, end)
            peak, lost = float(magnitude[run].max()), int(missing[run].sum())
            out += self._add(key, int(seconds[start]), peak, end - start, lost)
        return out

    def flush(self) -> list[DerivedValue]:
        out = [self._value(key, window) for key, window in self._open.items()]
        self._open.clear()
        return out

    def _missing_before(self, key: tuple[str, str], seq: np.ndarray) -> np.ndarray:
        """How many sequence numbers were skipped just before each sample."""
        previous = self._last_seq.get(key, int(seq[0]) - 1)
        self._last_seq[key] = int(seq[-1])
        # a restarted source numbers from 0 again: a step back is not a loss
        return np.clip(np.diff(seq, prepend=previous) - 1, 0, None)

    def _add(self, key: tuple[str, str], second: int, peak: float, count: int, missing: int) -> list:
        window = self._open.get(key)
        closed: list[DerivedValue] = []
        if window is None or second > window.second:
            if window is not None:
                closed.append(self._value(key, window))
                # a silent device still gets one value per second: insufficient, saying why
                closed += [self._value(key, _Window(s)) for s in range(window.second + 1, second)]
            window = self._open[key] = _Window(second)
        # samples aligned a little into the past (the clock fit moved) still count in the open second
        window.peak = max(window.peak, peak)
        window.count += count
        window.missing += missing
        return closed

    def _value(self, key: tuple[str, str], window: _Window) -> DerivedValue:
        value: float | None = window.peak
        quality = GOOD
        if window.count < self.min_samples:
            value = None
            quality = Quality(
                QualityLevel.INSUFFICIENT, f"fewer than {self.min_samples} samples in the window"
            )
        elif window.missing:
            quality = Quality(QualityLevel.DEGRADED, f"samples missing by sequence number: {window.missing}")
        source_id, device_id = key
        return DerivedValue(
            name=METRIC,
            time_ns=(window.second + 1) * _NS,
            value=value,
            unit=ImuSample.ACC_UNIT,
            provenance=Provenance.MEASURED,
            quality=quality,
            source_id=source_id,
            device_id=device_id,
            processor=self.processor_id,
        )


# --- the sine_imu source ---------------------------------------------------------------------------
SINE_SCHEMA = {
    "rate_hz": Field(float, 100.0, "sample rate", min=1.0, max=2000.0),
    "amplitude": Field(float, 2.0, "amplitude of the 1 Hz sine added to gravity, m/s^2", min=0.0, max=100.0),
}
SINE_HZ = 1.0
CLOCK_HZ = 32_768.0  # a watch crystal: the device counts its own ticks, unrelated to the host's clock
BOOT_TICKS = 7 * 3600 * 32_768  # the device was switched on hours before the daemon connected
PUSH_INTERVAL_S = 0.05


class SineImu:
    """One IMU lying still whose vertical acceleration is gravity plus a 1 Hz sine, on its own clock."""

    def __init__(self, options: dict, source_id: str):
        self.rate_hz, self.amplitude = options["rate_hz"], options["amplitude"]
        self.source_id = source_id
        self.device = DeviceInfo("sine", DeviceKind.IMU, CLOCK_HZ, meta={"model": "kinefuse example sine"})

    async def run(self, ctx: SourceContext) -> None:
        ctx.add_device(self.device)
        start = time.monotonic()
        sent = 0
        while True:
            # await, never block: every source shares the daemon's one event loop
            await asyncio.sleep(PUSH_INTERVAL_S)
            due = int((time.monotonic() - start) * self.rate_hz)
            if due > sent:
                ctx.emit(self._batch(np.arange(sent, due)))  # one batch per push, not one call per sample
                sent = due

    def _batch(self, seq: np.ndarray) -> ImuBatch:
        t = seq / self.rate_hz
        acc = np.zeros((len(seq), 3))
        acc[:, 2] = GRAVITY + self.amplitude * np.sin(2 * math.pi * SINE_HZ * t)
        ticks = BOOT_TICKS + np.round(t * CLOCK_HZ)
        arrival = np.full(len(seq), time.monotonic_ns())
        return imu_batch(self.source_id, self.device.device_id, seq, ticks, arrival, acc, np.zeros_like(acc))


@hookimpl
def register_processors():
    return [ProcessorSpec(METRIC, AccMagnitudePeak, PEAK_SCHEMA, AccMagnitudePeak.__doc__)]


@hookimpl
def register_sources():
    return [SourceSpec("sine_imu", SineImu, SINE_SCHEMA, SineImu.__doc__)]
