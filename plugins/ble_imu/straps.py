"""Strap drivers: how each protocol is set up over a connected BleakClient, and how its notifications become
samples with the sequence numbers and device clock the pipeline needs.

``samples(packet, host_ns)`` returns ``(seq, device_time, host_ns, acc, gyr, mag)`` arrays (possibly empty)
or raises DecodeError; a driver lives across reconnections, so sequence numbers and device time run on and the
samples missed while the link was down show as a gap. ``packet_lost()`` tells it that a notification was
dropped before decoding (the source's queue was full).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from kinefuse_plugins.ble_imu.protocols import open_profile, polar_pmd, witmotion
from kinefuse_plugins.ble_imu.protocols.common import DecodeError

# seq, device time, host ns, acc (m/s^2), gyr (rad/s), mag (uT) or None
Samples = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]
Notify = Callable[[object, bytearray], None]
_NS = 1_000_000_000


def _samples(seq, device_time, host_ns: int, acc, gyr, mag=None) -> Samples:
    n = len(seq)
    return (np.asarray(seq, np.int64), np.asarray(device_time, np.int64), np.full(n, host_ns, np.int64),
            np.asarray(acc, np.float64).reshape(n, 3), np.asarray(gyr, np.float64).reshape(n, 3),
            None if mag is None else np.asarray(mag, np.float64).reshape(n, 3))  # fmt: skip


class WitMotionStrap:
    """WitMotion frames carry no clock: device time is the sample count at the configured rate. Across a
    reconnection the count resumes from the host time elapsed since the first connection, so the gap shows."""

    protocol, service_uuid = "witmotion", witmotion.SERVICE_UUID

    def __init__(self, rate_hz: float):
        witmotion.rate_commands(rate_hz)  # refuses, at configuration, a rate the strap does not offer
        self.rate_hz = self.clock_hz = rate_hz
        self.packets = self.dropped = 0
        self._first_connection_ns: int | None = None
        self._next_seq = 0

    async def start(self, client, on_notification: Notify) -> None:
        for command in witmotion.rate_commands(self.rate_hz):
            await client.write_gatt_char(witmotion.WRITE_UUID, command, response=True)
        now = time.monotonic_ns()
        self._first_connection_ns = self._first_connection_ns or now
        elapsed = round((now - self._first_connection_ns) / _NS * self.rate_hz)
        self._next_seq = max(self._next_seq, elapsed)
        await client.start_notify(witmotion.NOTIFY_UUID, on_notification)

    async def stop(self, client) -> None:
        await client.stop_notify(witmotion.NOTIFY_UUID)  # the strap streams while powered: nothing to stop

    def packet_lost(self) -> None:
        pass  # no state spans notifications but the sample count

    def samples(self, packet: bytes, host_ns: int) -> Samples:
        decoded = witmotion.decode(packet)
        seq = np.arange(self._next_seq, self._next_seq + len(decoded.acc))
        self._next_seq += len(seq)
        self.packets += 1
        return _samples(seq, seq, host_ns, decoded.acc, decoded.gyr)


class OpenProfileStrap:
    """kinefuse's open profile (docs/ble-profile.md): the device's own clock, unwrapped past 32 bits; after a
    reboot (the clock-restarted flag) device time is re-based to continue from the host time elapsed."""

    protocol, service_uuid = "open", open_profile.SERVICE_UUID

    def __init__(self, rate_hz: float):
        open_profile.encode_command(open_profile.Command.SET_RATE, rate_hz)  # refuses a bad rate early
        self.rate_hz = rate_hz
        self.clock_hz: float | None = None
        self.packets = self.dropped = 0
        self._last: tuple[int, int] | None = None  # (device ticks, host ns) of the last sample decoded
        self._rebase = 0

    async def start(self, client, on_notification: Notify) -> None:
        info = open_profile.decode_info(await client.read_gatt_char(open_profile.INFO_UUID))
        if self.clock_hz not in (None, info.clock_hz):
            raise DecodeError(
                f"open profile: the strap's clock changed from {self.clock_hz} to {info.clock_hz} Hz"
            )
        self.clock_hz = info.clock_hz
        command = open_profile.encode_command
        await client.write_gatt_char(open_profile.CONTROL_UUID, command(open_profile.Command.SET_RATE, self.rate_hz),
                                     response=True)  # fmt: skip
        await client.start_notify(open_profile.DATA_UUID, on_notification)
        await client.write_gatt_char(
            open_profile.CONTROL_UUID, command(open_profile.Command.START), response=True
        )

    async def stop(self, client) -> None:
        command = open_profile.encode_command(open_profile.Command.STOP)
        await client.write_gatt_char(open_profile.CONTROL_UUID, command, response=True)

    def packet_lost(self) -> None:
        pass  # every packet carries its own clock and sequence number

    def samples(self, packet: bytes, host_ns: int) -> Samples:
        previous = None if self._last is None else self._last[0] - self._rebase
        decoded = open_profile.decode(packet, self.clock_hz, previous)
        if decoded.extra["clock_restarted"] and self._last is not None:
            ticks, then_ns = self._last
            self._rebase = (
                ticks + round((host_ns - then_ns) / _NS * self.clock_hz) - int(decoded.device_time[0])
            )
        device_time = decoded.device_time + self._rebase
        self._last = (int(device_time[-1]), host_ns)
        self.packets += 1
        seq = np.rint(device_time * (self.rate_hz / self.clock_hz))
        return _samples(seq, device_time, host_ns, decoded.acc, decoded.gyr, decoded.extra.get("mag_ut"))


class PolarStrap:
    """Polar PMD: accelerometer and gyroscope are separate measurements, each started through the control
    point at the settings the device offers nearest the asked rate, and arrive in separate frames stamped in
    ns since 2000. A frame's samples are spread over the time since its stream's previous frame (the SDK's
    rule, polar_pmd.FrameTimes), forgotten at each connection and after a lost notification. Samples are
    paired by time (within half a period); one that can no longer find a partner is dropped and counted."""

    protocol, service_uuid, clock_hz = "polar", polar_pmd.SERVICE_UUID, polar_pmd.CLOCK_HZ
    MEASUREMENTS = (polar_pmd.MeasurementType.ACC, polar_pmd.MeasurementType.GYRO)

    def __init__(self, rate_hz: float):
        self.rate_hz = rate_hz
        self.packets = self.dropped = 0
        self.settings: dict[int, polar_pmd.PmdSettings] = {}
        self.frame_times = polar_pmd.FrameTimes()
        self._pending = {m: (np.empty(0, np.int64), np.empty((0, 3))) for m in self.MEASUREMENTS}
        self._first_ns: int | None = None

    async def start(self, client, on_notification: Notify) -> None:
        self.frame_times.forget()  # a new connection: the SDK starts each stream afresh too
        responses: asyncio.Queue[bytes] = asyncio.Queue()
        await client.start_notify(
            polar_pmd.CONTROL_POINT_UUID, lambda _, data: responses.put_nowait(bytes(data))
        )
        await client.start_notify(polar_pmd.DATA_UUID, on_notification)
        for measurement in self.MEASUREMENTS:
            offered = (
                await self._ask(client, responses, polar_pmd.get_settings_request(measurement))
            ).settings
            selected = self._choose(measurement, offered)
            started = await self._ask(client, responses, polar_pmd.start_request(measurement, selected))
            factor = started.settings.get(polar_pmd.SettingType.FACTOR, (1.0,))[0]
            self.settings[measurement] = polar_pmd.PmdSettings.from_selected(
                {**selected, polar_pmd.SettingType.FACTOR: factor}
            )

    async def stop(self, client) -> None:
        for measurement in self.MEASUREMENTS:
            await client.write_gatt_char(polar_pmd.CONTROL_POINT_UUID, polar_pmd.stop_request(measurement),
                                         response=True)  # fmt: skip

    def packet_lost(self) -> None:
        # the next frame's predecessor never reached us: spreading its samples back to the last frame decoded
        # would stretch them over the lost one's time, so count it back at the nominal rate (a first frame)
        self.frame_times.forget()

    def _choose(self, measurement, offered: dict) -> dict:
        kinds = polar_pmd.SettingType
        if kinds.SAMPLE_RATE not in offered:
            raise DecodeError(
                f"Polar: no sample rates offered for {polar_pmd.MeasurementType(measurement).name}"
            )
        chosen = {kinds.SAMPLE_RATE: min(offered[kinds.SAMPLE_RATE], key=lambda hz: abs(hz - self.rate_hz))}
        for kind in (kinds.RESOLUTION, kinds.RANGE, kinds.CHANNELS):
            if kind in offered:
                chosen[kind] = max(
                    offered[kind]
                )  # finest resolution, widest range: no clipping of hard landings
        return chosen

    @staticmethod
    async def _ask(client, responses: asyncio.Queue, request: bytes) -> polar_pmd.ControlResponse:
        await client.write_gatt_char(polar_pmd.CONTROL_POINT_UUID, request, response=True)
        while True:
            response = polar_pmd.parse_control_response(await asyncio.wait_for(responses.get(), 5.0))
            if (response.op, response.measurement) == (request[0], request[1]):
                break
        if response.status != polar_pmd.ResponseStatus.SUCCESS:
            status = polar_pmd.ResponseStatus(response.status).name
            raise ConnectionError(f"Polar refused {polar_pmd.ControlOp(request[0]).name} "
                                  f"{polar_pmd.MeasurementType(request[1]).name}: {status}")  # fmt: skip
        return response

    def samples(self, packet: bytes, host_ns: int) -> Samples:
        decoded = polar_pmd.decode(packet, self.settings, self.frame_times)
        measurement = decoded.extra["measurement"]
        if measurement not in self._pending:
            return _samples([], [], host_ns, [], [])  # a magnetometer frame: not asked for, not used
        times, values = self._pending[measurement]
        vectors = decoded.acc if decoded.acc is not None else decoded.gyr
        self._pending[measurement] = (
            np.concatenate([times, decoded.device_time]),
            np.vstack([values, vectors]),
        )
        self.packets += 1
        return self._pair(host_ns)

    def _pair(self, host_ns: int) -> Samples:
        (acc_t, acc), (gyr_t, gyr) = (self._pending[m] for m in self.MEASUREMENTS)
        rate = self.settings[polar_pmd.MeasurementType.ACC].sample_rate_hz
        half_period = _NS // (2 * rate)
        nearest = np.clip(np.searchsorted(gyr_t, acc_t), 1, max(len(gyr_t) - 1, 1)) if len(gyr_t) else None
        if nearest is None or not len(acc_t):
            return _samples([], [], host_ns, [], [])
        candidates = np.stack([nearest - 1, nearest]) if len(gyr_t) > 1 else np.zeros((1, len(acc_t)), int)
        best = candidates[np.argmin(np.abs(gyr_t[candidates] - acc_t), axis=0), np.arange(len(acc_t))]
        matched = np.abs(gyr_t[best] - acc_t) <= half_period
        self._keep_unmatched(acc_t, acc, gyr_t, gyr, matched, best)
        times = acc_t[matched]
        self._first_ns = (
            self._first_ns if self._first_ns is not None else (int(times[0]) if len(times) else None)
        )
        seq = np.rint((times - (self._first_ns or 0)) * (rate / _NS))
        return _samples(seq, times, host_ns, acc[matched], gyr[best[matched]])

    def _keep_unmatched(self, acc_t, acc, gyr_t, gyr, matched, best) -> None:
        """Unpaired samples wait for a partner while one may still come; older ones are dropped and counted."""
        used = np.zeros(len(gyr_t), bool)
        used[best[matched]] = True
        newest = min(acc_t[-1], gyr_t[-1])  # a partner for anything later than this may still arrive
        kept_acc, kept_gyr = ~matched & (acc_t > newest), ~used & (gyr_t > newest)
        self.dropped += int((~matched & ~kept_acc).sum() + (~used & ~kept_gyr).sum())
        self._pending[polar_pmd.MeasurementType.ACC] = (acc_t[kept_acc], acc[kept_acc])
        self._pending[polar_pmd.MeasurementType.GYRO] = (gyr_t[kept_gyr], gyr[kept_gyr])


STRAPS = {strap.protocol: strap for strap in (WitMotionStrap, PolarStrap, OpenProfileStrap)}


def make_strap(protocol: str, rate_hz: float):
    if protocol not in STRAPS:
        raise ValueError(f"unknown strap protocol {protocol!r}; known: {', '.join(STRAPS)}")
    return STRAPS[protocol](rate_hz)


def protocol_of(service_uuids) -> str | None:
    """The strap protocol named by an advertisement's service UUIDs, if any."""
    advertised = {u.lower() for u in service_uuids}
    return next((name for name, strap in STRAPS.items() if strap.service_uuid in advertised), None)
