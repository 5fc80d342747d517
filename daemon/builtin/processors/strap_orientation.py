"""Built-in processor: each IMU's orientation, live, by the orientation filter (the VQF algorithm,
kinefuse.fusion.orientation_filter); reports its inclination and heading ``output_hz`` times a second.

A device's sample rate is measured from its first ``rate_samples`` aligned sample times, then its filter
starts and carries its state from batch to batch. Every value is ``fused`` (gyroscope, accelerometer and,
for heading, magnetometer). Quality: inclination is degraded while the filter settles (``tau_acc``);
heading is insufficient without a magnetometer (it would be relative to where the strap started) and
degraded while the field is disturbed (the filter then holds its heading on the gyroscope). The filter
expects gyroscope biases within its ``bias_clip`` (2 deg/s): straps calibrate at power-up (docs/fusion.md).
"""

from __future__ import annotations

import math

import numpy as np

from kinefuse import hookimpl
from kinefuse.configschema import Field
from kinefuse.fusion.orientation_filter import OrientationFilter
from kinefuse.interfaces import ProcessorSpec
from kinefuse.types import GOOD, DerivedValue, ImuBatch, Provenance, Quality, QualityLevel, SampleBatch

SCHEMA = {
    "output_hz": Field(float, 10.0, "values reported per second and device", min=0.1, max=1000.0),
    "rate_samples": Field(int, 50, "samples used to measure a device's sample rate", min=5, max=10_000),
}
SETTLING_S = 3.0  # the filter's accelerometer time constant: inclination is settling before this


def measured_rate(waiting: list[ImuBatch], rate_samples: int) -> float | None:
    """A device's sample rate (Hz) from the median interval of its first batches, once they hold
    ``rate_samples`` samples; None before."""
    if sum(len(b) for b in waiting) < rate_samples:
        return None
    times = np.sort(np.concatenate([b.time_ns for b in waiting]))
    return round(1e9 / float(np.median(np.diff(times))), 3)


class _Device:
    def __init__(self):
        self.waiting: list[ImuBatch] = []
        self.filter: OrientationFilter | None = None
        self.started_ns = 0
        self.next_output_ns = 0


class Orientation:
    def __init__(self, options: dict, processor_id: str):
        self.processor_id = processor_id
        self.period_ns = int(1e9 / options["output_hz"])
        self.rate_samples = options["rate_samples"]
        self._devices: dict[tuple[str, str], _Device] = {}

    def process(self, batch: SampleBatch) -> list[DerivedValue]:
        if not isinstance(batch, ImuBatch) or batch.time_ns is None:
            return []
        device = self._devices.setdefault((batch.source_id, batch.device_id), _Device())
        if device.filter is None:
            device.waiting.append(batch)
            rate_hz = measured_rate(device.waiting, self.rate_samples)
            if rate_hz is None:
                return []
            device.filter = OrientationFilter(rate_hz)
            device.started_ns = device.next_output_ns = min(int(b.time_ns.min()) for b in device.waiting)
            waiting, device.waiting = device.waiting, []
            return [value for b in waiting for value in self._run(device, b)]
        return self._run(device, batch)

    def _run(self, device: _Device, batch: ImuBatch) -> list[DerivedValue]:
        gyr, acc = (np.ascontiguousarray(x, dtype=np.float64) for x in (batch.gyr, batch.acc))
        mag = None if batch.mag is None else np.ascontiguousarray(batch.mag, dtype=np.float64)
        out = device.filter.update_batch(gyr, acc, mag)
        values = []
        for i in np.flatnonzero(batch.time_ns >= device.next_output_ns):
            if batch.time_ns[i] < device.next_output_ns:
                continue
            device.next_output_ns = int(batch.time_ns[i]) + self.period_ns
            values += self._values(batch, int(batch.time_ns[i]), device, out, i, mag is not None)
        return values

    def _values(self, batch, time_ns, device, out, i, with_mag) -> list[DerivedValue]:
        q6, q9 = out["quat6d"][i], out["quat9d"][i]
        # the sensor z axis against the vertical: its earth z component is 1 - 2 (x² + y²)
        inclination = math.degrees(math.acos(max(-1.0, min(1.0, 1.0 - 2.0 * (q6[1] ** 2 + q6[2] ** 2)))))
        settled = time_ns - device.started_ns >= SETTLING_S * 1e9
        tilt_quality = GOOD if settled else Quality(QualityLevel.DEGRADED, "orientation filter settling")
        if not with_mag:
            heading, heading_quality = (
                None,
                Quality(
                    QualityLevel.INSUFFICIENT,
                    "insufficient data: no magnetometer, heading only relative to the start",
                ),
            )
        else:
            # heading of the sensor x axis, counter-clockwise from east (earth x east, y north)
            heading = math.degrees(
                math.atan2(2 * (q9[1] * q9[2] + q9[0] * q9[3]), 1 - 2 * (q9[2] ** 2 + q9[3] ** 2))
            )
            heading_quality = (
                Quality(QualityLevel.DEGRADED, "magnetic disturbance: heading held on the gyroscope")
                if out["mag_disturbed"][i]
                else tilt_quality
            )
        common = {"time_ns": time_ns, "provenance": Provenance.FUSED, "source_id": batch.source_id,
                  "device_id": batch.device_id, "processor": self.processor_id}  # fmt: skip
        return [
            DerivedValue(name="inclination", value=inclination, unit="deg", quality=tilt_quality, **common),
            DerivedValue(name="heading", value=heading, unit="deg", quality=heading_quality, **common),
        ]

    def flush(self) -> list[DerivedValue]:
        return []  # nothing is held back: a device still measuring its rate has produced nothing yet


@hookimpl
def register_processors():
    return [ProcessorSpec("orientation", Orientation, SCHEMA, __doc__.strip())]
