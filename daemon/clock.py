"""Clock alignment: each device's clock mapped onto host monotonic time, one ClockMapper per device.

The mapping itself (lower envelope of the residuals for the offset, forgetting least squares on block
minima for the skew) lives in the ``clock_map`` kernel; see ext/clock_map.pyx.
"""

from __future__ import annotations

import dataclasses

from kinefuse._native import clock_map
from kinefuse.types import DeviceInfo, SampleBatch


class UnknownDeviceError(KeyError):
    """A batch came from a device that was never added."""

    def __str__(self) -> str:  # KeyError would print the message quoted, as if it were a key
        return str(self.args[0])


class ClockAligner:
    """Fills in ``time_ns`` of every batch; ``mapper_options`` (forgetting, ...) go to each ClockMapper."""

    def __init__(self, **mapper_options) -> None:
        self._options = mapper_options
        self._mappers: dict[tuple[str, str], clock_map.ClockMapper] = {}

    def add_device(self, source_id: str, device: DeviceInfo) -> None:
        """Start mapping a device's clock.  Adding it again (a restarted source) keeps what was learnt,
        unless its clock rate changed."""
        key = (source_id, device.device_id)
        mapper = self._mappers.get(key)
        if mapper is None or mapper.clock_hz != float(device.clock_hz):
            self._mappers[key] = clock_map.ClockMapper(device.clock_hz, **self._options)

    def align(self, batch: SampleBatch) -> SampleBatch:
        """The batch with ``time_ns`` set to its samples' device times mapped onto host monotonic ns."""
        mapper = self._mappers.get((batch.source_id, batch.device_id))
        if mapper is None:
            raise UnknownDeviceError(
                f"source {batch.source_id!r} emitted a batch for device {batch.device_id!r} before adding it "
                "(call add_device first)"
            )
        return dataclasses.replace(batch, time_ns=mapper.update_batch(batch.device_time, batch.host_ns))

    def fits(self) -> dict[tuple[str, str], dict]:
        """Per (source_id, device_id): the current fit and its counters; offset None before any sample."""
        return {
            key: {
                "clock_offset_ns": m.offset_ns,
                "clock_skew_ppm": m.skew_ppm,
                "samples": m.count,
                "rejected": m.rejected,
                "clamped": m.clamped,
            }
            for key, m in self._mappers.items()
        }
