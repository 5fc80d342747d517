"""Built-in bench ``kinefuse bench ble``: eight emulated open-profile straps (one sample per notification at
``rate_hz``, default 200 Hz) on the virtual radio, each read by the real ``ble_imu`` source through bleak and
the bumble backend: notifications per second decoded in all, and the latency from the strap sending a sample
to the source handing it to the pipeline's channel (percentiles). The emulated strap's clock counts the
host's monotonic microseconds, so a sample's device time is the moment it was sent."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from kinefuse.bench import make_row
from kinefuse.configschema import defaults
from kinefuse.interfaces import BenchSpec

STRAPS = 8
_WRAP = 2**32  # the strap's 32-bit microsecond counter


class _Collector:
    """A SourceContext keeping what the channel would receive: per sample, how long since it was sent."""

    def __init__(self, source_id: str):
        self.source_id, self.log = source_id, logging.getLogger(f"kinefuse.bench.ble.{source_id}")
        self.device, self.samples, self.errors, self.dropped = None, 0, 0, 0
        self.database_path = None  # no daemon database: the straps go unlabelled
        self.latency_us: list[np.ndarray] = []

    def add_device(self, device):
        self.device = device

    def emit(self, batch):
        now_us = time.monotonic_ns() // 1000
        self.samples += len(batch)
        self.latency_us.append((now_us - np.asarray(batch.device_time)) % _WRAP)

    def decode_error(self, message):
        self.errors += 1

    def note_dropped(self, samples):
        self.dropped += samples


async def _stream(radio, straps, rate_hz: float, duration_s: float) -> list[_Collector]:
    from kinefuse_plugins.ble_imu.source import SCHEMA, BleImuSource

    contexts = [_Collector(strap.name) for strap in straps]
    sources = [BleImuSource({**defaults(SCHEMA), "protocol": "open", "address": strap.address, "backend": "bumble",
                             "bumble_transport": radio.transport, "rate_hz": rate_hz}, strap.name)
               for strap in straps]  # fmt: skip
    tasks = [asyncio.ensure_future(s.run(c)) for s, c in zip(sources, contexts, strict=True)]
    try:
        async with asyncio.timeout(60):
            while not all(c.device and c.samples for c in contexts):  # every strap connected and streaming
                await asyncio.sleep(0.1)
        for c in contexts:
            c.samples, c.latency_us = 0, []
        await asyncio.sleep(duration_s)
        return contexts
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run(options: dict) -> list[dict]:
    from kinefuse_plugins.ble_imu.emulation.peripherals import EmulatedOpenStrap
    from kinefuse_plugins.ble_imu.emulation.radio import VirtualRadio

    duration_s = options.get("duration_s") or 10.0
    rate_hz = float(options.get("rate_hz") or 200.0)
    straps = [EmulatedOpenStrap(f"KF-bench-{i}", f"F1:00:00:00:0B:{i:02X}") for i in range(STRAPS)]
    with VirtualRadio(straps) as radio:
        contexts = asyncio.run(_stream(radio, straps, rate_hz, duration_s))
    received = sum(c.samples for c in contexts)
    latency_ms = np.concatenate([np.concatenate(c.latency_us) for c in contexts if c.latency_us]) / 1e3
    lost = sum(c.dropped + c.errors for c in contexts)
    note = (f"{STRAPS} emulated open-profile straps at {rate_hz:g} Hz, one sample per notification, "
            f"{duration_s:g} s; bumble virtual radio over TCP, real bleak + ble_imu source; "
            f"offered {STRAPS * rate_hz:g}/s; dropped or undecodable: {lost}")  # fmt: skip
    rows = [
        make_row(
            f"{STRAPS} straps", "notifications decoded", "1/s", received / duration_s, "higher", note=note
        )
    ]
    for label in (50, 90, 99):
        rows.append(make_row(f"{STRAPS} straps", f"latency p{label}, send to channel", "ms",
                             float(np.percentile(latency_ms, label)), "lower", note=note))  # fmt: skip
    rows.append(make_row(f"{STRAPS} straps", "latency max, send to channel", "ms", float(latency_ms.max()),
                         "lower", note=note))  # fmt: skip
    return rows


SPEC = BenchSpec("ble", __doc__.strip(), run)
