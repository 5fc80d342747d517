"""Emulated WitMotion, Polar and open-profile straps on the virtual radio (emulation.radio): the real
GATT services and packets of each protocol (built with the protocols' encoders), streaming a known
motion, for the tests and ``kinefuse bench ble``. Each has a Battery Service.

The motion every strap reports: gravity on +z while the strap swings about x at 1 Hz (amplitude 30 deg), so a
test can compare what reached storage with ``motion(t)``.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
from bumble.gatt import Characteristic, CharacteristicValue, Service

from kinefuse_plugins.ble_imu.emulation.radio import EmulatedPeripheral
from kinefuse_plugins.ble_imu.protocols import open_profile, polar_pmd, witmotion

BATTERY_SERVICE = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL = "00002a19-0000-1000-8000-00805f9b34fb"
_SWING_HZ, _SWING_RAD = 1.0, np.deg2rad(30.0)
_NOTIFY = Characteristic.Properties.NOTIFY
_WRITE = Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE


def motion(t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(acc in g, gyr in deg/s), each (n, 3), of a strap swinging about x: gravity turns in the y-z plane."""
    t_s = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
    angle = _SWING_RAD * np.sin(2 * np.pi * _SWING_HZ * t_s)
    rate = _SWING_RAD * 2 * np.pi * _SWING_HZ * np.cos(2 * np.pi * _SWING_HZ * t_s)
    acc = np.stack([np.zeros_like(t_s), np.sin(angle), np.cos(angle)], axis=1)
    gyr = np.stack([np.rad2deg(rate), np.zeros_like(t_s), np.zeros_like(t_s)], axis=1)
    return acc, gyr


def _battery(level: int) -> Service:
    return Service(BATTERY_SERVICE, [Characteristic(BATTERY_LEVEL, Characteristic.Properties.READ,
                                                    Characteristic.READABLE, bytes([level]))])  # fmt: skip


class EmulatedStrap(EmulatedPeripheral):
    """What the emulated straps share: a sample counter, bursts of ``per_notification`` samples, and the
    option to corrupt every ``corrupt_every``-th notification (a malformed packet)."""

    def __init__(self, name: str, address: str, services: list[Service], protocol_service: str, *,
                 per_notification: int = 1, corrupt_every: int = 0, battery: int = 87, **kwargs):  # fmt: skip
        super().__init__(name, address, [*services, _battery(battery)],
                         advertised_service_uuids=[protocol_service], **kwargs)  # fmt: skip
        self.per_notification, self.corrupt_every = per_notification, corrupt_every
        self.rate_hz = 100.0
        self.sent_samples = 0
        self.sent_times_ns: list[int] = []  # host monotonic ns at which each notification went out

    def _corrupt(self, tick: int, packet: bytes) -> bytes:
        if self.corrupt_every and tick % self.corrupt_every == self.corrupt_every - 1:
            return packet[: len(packet) // 2] + b"\xde\xad"  # cut short with junk: not what the protocol says
        return packet

    def _stop_streams(self) -> None:
        for stream in self.streams:
            stream.stop()
        self.streams.clear()

    def _stream(self, characteristic_uuid: str, produce) -> None:
        self._stop_streams()
        self.start_stream(characteristic_uuid, self.rate_hz / self.per_notification, self._stamped(produce))

    def _stamped(self, produce):
        def notification(tick: int) -> bytes:
            first = self.sent_samples
            self.sent_samples += self.per_notification
            self.sent_times_ns.append(time.monotonic_ns())
            return self._corrupt(tick, produce(first, self.per_notification))

        return notification


class EmulatedWitMotion(EmulatedStrap):
    """WitMotion BWT901BLE-class: 0x55 0x61 frames on FFE4, rate set through FFE9 (unlock, rate, save)."""

    def __init__(self, name: str, address: str, **kwargs):
        service = Service(witmotion.SERVICE_UUID, [
            Characteristic(witmotion.NOTIFY_UUID, _NOTIFY, Characteristic.READABLE, b""),
            Characteristic(witmotion.WRITE_UUID, _WRITE, Characteristic.WRITEABLE, b""),
        ])  # fmt: skip
        super().__init__(name, address, [service], witmotion.SERVICE_UUID, **kwargs)
        self.on_write(witmotion.WRITE_UUID, self._command)

    def _command(self, value: bytes) -> None:
        rate = witmotion.parse_rate_command(value)
        if rate is not None:
            self.rate_hz = rate
            self._stream(witmotion.NOTIFY_UUID, self._frames)

    def _frames(self, first: int, count: int) -> bytes:
        acc, gyr = motion((first + np.arange(count)) / self.rate_hz)
        return witmotion.encode(acc, gyr, np.zeros_like(acc))


class EmulatedOpenStrap(EmulatedStrap):
    """kinefuse's open profile: its 32-bit clock counts the host's monotonic microseconds, so a bench can read
    the latency from a sample's device time to its arrival."""

    CLOCK_HZ = 1_000_000

    def __init__(self, name: str, address: str, **kwargs):
        info = CharacteristicValue(read=lambda _connection: open_profile.encode_info(
            open_profile.StrapInfo(self.CLOCK_HZ, self.rate_hz, 16, 2000)))  # fmt: skip
        service = Service(open_profile.SERVICE_UUID, [
            Characteristic(open_profile.DATA_UUID, _NOTIFY, Characteristic.READABLE, b""),
            Characteristic(open_profile.CONTROL_UUID, _WRITE, Characteristic.WRITEABLE, b""),
            Characteristic(open_profile.INFO_UUID, Characteristic.Properties.READ, Characteristic.READABLE, info),
        ])  # fmt: skip
        super().__init__(name, address, [service], open_profile.SERVICE_UUID, **kwargs)
        self.on_write(open_profile.CONTROL_UUID, self._command)
        self._sequence = self._start_ticks = 0
        self.sent_ticks: list[int] = []  # each notification's first sample ticks, beside sent_times_ns

    def _command(self, value: bytes) -> None:
        command, rate = open_profile.parse_command(value)
        if command is open_profile.Command.SET_RATE:
            self.rate_hz = rate
        elif command is open_profile.Command.START:
            self._stream(open_profile.DATA_UUID, self._packet)
        else:
            self._stop_streams()

    def _packet(self, first: int, count: int) -> bytes:
        period = round(self.CLOCK_HZ / self.rate_hz)
        if first == 0:  # sampling starts: the sample clock is the host's, so latency can be read off it;
            # anchored at the stream's scheduled start, so no sample is stamped later than it is sent
            self._start_ticks = self.streams[-1].start_ns // 1000 - (count - 1) * period
        first_ticks = (self._start_ticks + first * period) % 2**32  # a 32-bit device counter
        self.sent_ticks.append(first_ticks)
        acc, gyr = motion((first_ticks + np.arange(count) * period) / self.CLOCK_HZ)
        self._sequence = (self._sequence + 1) % 65536
        return open_profile.encode(self._sequence, first_ticks, period, acc, gyr)


class EmulatedPolar(EmulatedStrap):
    """Polar Verity Sense-like PMD: ACC and GYRO at 26/52/104/208 Hz, started through the control point,
    delta-compressed frames of ``per_notification`` samples, stamped in ns since 2000 on its own clock."""

    RATES = (26, 52, 104, 208)
    OFFERED = {
        polar_pmd.MeasurementType.ACC: {polar_pmd.SettingType.SAMPLE_RATE: RATES,
                                        polar_pmd.SettingType.RESOLUTION: (16,), polar_pmd.SettingType.RANGE: (8,)},
        polar_pmd.MeasurementType.GYRO: {polar_pmd.SettingType.SAMPLE_RATE: RATES,
                                         polar_pmd.SettingType.RESOLUTION: (16,),
                                         polar_pmd.SettingType.RANGE: (2000,)},
    }  # fmt: skip
    # per LSB: compressed ACC frames are in g once multiplied by the factor (Polar SDK), gyro in deg/s
    FACTOR = {polar_pmd.MeasurementType.ACC: 1 / 4096, polar_pmd.MeasurementType.GYRO: 0.01}
    EPOCH_NS = 820_000_000_000_000_000  # its clock: ns since 2000-01-01, about 26 years in

    def __init__(self, name: str, address: str, **kwargs):
        service = Service(polar_pmd.SERVICE_UUID, [
            Characteristic(polar_pmd.CONTROL_POINT_UUID,
                           Characteristic.Properties.READ | Characteristic.Properties.WRITE | _NOTIFY,
                           Characteristic.READABLE | Characteristic.WRITEABLE,
                           polar_pmd.encode_features(list(self.OFFERED))),
            Characteristic(polar_pmd.DATA_UUID, _NOTIFY, Characteristic.READABLE, b""),
        ])  # fmt: skip
        super().__init__(name, address, [service], polar_pmd.SERVICE_UUID, **kwargs)
        self.on_write(polar_pmd.CONTROL_POINT_UUID, self._request)
        self.started: set[int] = set()
        self._replies: list[bytes] = []

    def _request(self, value: bytes) -> None:
        request = polar_pmd.parse_request(value)
        reply = polar_pmd.encode_control_response(request.op, request.measurement)
        if request.op is polar_pmd.ControlOp.GET_SETTINGS:
            reply = polar_pmd.encode_settings_response(request.measurement, self.OFFERED[request.measurement])
        elif request.op is polar_pmd.ControlOp.START:
            factor = {polar_pmd.SettingType.FACTOR: (self.FACTOR[request.measurement],)}
            reply = polar_pmd.encode_settings_response(
                request.measurement, factor, op=polar_pmd.ControlOp.START
            )
            self.rate_hz = float(request.settings[polar_pmd.SettingType.SAMPLE_RATE][0])
            self.started.add(request.measurement)
            if self.started == set(self.OFFERED):
                self._stream(polar_pmd.DATA_UUID, self._frames)
        elif request.op is polar_pmd.ControlOp.STOP:
            self.started.discard(request.measurement)
            self._stop_streams()
        asyncio.get_running_loop().create_task(self.notify(polar_pmd.CONTROL_POINT_UUID, reply))

    def _frames(self, first: int, count: int) -> bytes:
        acc_g, gyr_dps = motion((first + np.arange(count)) / self.rate_hz)
        last_ns = self.EPOCH_NS + round((first + count - 1) * 1e9 / self.rate_hz)
        acc_lsb = np.rint(acc_g / self.FACTOR[polar_pmd.MeasurementType.ACC])
        acc = polar_pmd.encode_frame(polar_pmd.MeasurementType.ACC, last_ns, acc_lsb, 0x80)
        gyro_lsb = np.rint(gyr_dps / self.FACTOR[polar_pmd.MeasurementType.GYRO])
        gyr = polar_pmd.encode_frame(polar_pmd.MeasurementType.GYRO, last_ns, gyro_lsb, 0x80)
        asyncio.get_running_loop().create_task(self.notify(polar_pmd.DATA_UUID, gyr))  # its own notification
        return acc


STRAP_TYPES = {"witmotion": EmulatedWitMotion, "polar": EmulatedPolar, "open": EmulatedOpenStrap}
