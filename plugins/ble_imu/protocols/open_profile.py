"""kinefuse open GATT profile (version 1): what a strap's firmware sends so kinefuse can read it.

The full specification, with byte tables, is docs/ble-profile.md; this module is its reference codec.
Public standards it relies on: Bluetooth Core Specification v5.4 Vol 3 Part G (GATT notifications, ATT MTU)
and the CRC-16/CCITT-FALSE parameters (poly 0x1021, init 0xFFFF, no reflection, no final XOR) as catalogued
in Greg Cook's "Catalogue of parametrised CRC algorithms" (reveng.sourceforge.io); Python's
``binascii.crc_hqx(data, 0xFFFF)`` computes exactly that.
"""

from __future__ import annotations

import binascii
import dataclasses
import enum
import math
import struct

import numpy as np

from kinefuse_plugins.ble_imu.protocols.common import (
    STANDARD_GRAVITY,
    Decoded,
    DecodeError,
    hexdump,
    require_length,
)

_UUID_BASE = "0000{:04x}-6b69-4e65-8675-73652d696d75"  # random v4 base; the tail spells "se-imu" in ASCII
SERVICE_UUID = _UUID_BASE.format(0xA000)
DATA_UUID = _UUID_BASE.format(0xA001)  # notify: sample packets
CONTROL_UUID = _UUID_BASE.format(0xA002)  # write: commands
INFO_UUID = _UUID_BASE.format(0xA003)  # read: StrapInfo

VERSION = 1
FLAG_MAG = 0x01  # samples carry a magnetometer vector
FLAG_CLOCK_RESTARTED = 0x02  # the device clock restarted (reboot) since the previous packet
_KNOWN_FLAGS = FLAG_MAG | FLAG_CLOCK_RESTARTED

ACC_LSB_PER_G = 2048.0  # +-16 g full scale
GYR_LSB_PER_DPS = 16.4  # +-2000 deg/s full scale
MAG_LSB_PER_UT = 16.0  # +-2048 uT full scale

_HEADER = struct.Struct("<BBHIBH")  # version, flags, sequence, first sample ticks, count, period ticks
_CRC = struct.Struct("<H")
_TICKS_MODULUS = 1 << 32
_SEQUENCE_MODULUS = 1 << 16
_INFO = struct.Struct("<BBIIBHH")


@dataclasses.dataclass(frozen=True)
class StrapInfo:
    """The info characteristic: what the device samples at and what its sensors can measure."""

    clock_hz: int  # device ticks per second
    sample_rate_hz: float  # carried in milli-Hz
    acc_range_g: int
    gyr_range_dps: int
    mag_range_ut: int = 0  # 0: no magnetometer
    version: int = VERSION

    @property
    def has_mag(self) -> bool:
        return self.mag_range_ut > 0


class Command(enum.IntEnum):
    START = 0x01
    STOP = 0x02
    SET_RATE = 0x03  # argument: rate in milli-Hz, u32 LE


def _crc(data: bytes) -> int:
    return binascii.crc_hqx(data, 0xFFFF)


def _samples_per_row(flags: int) -> int:
    return 9 if flags & FLAG_MAG else 6


def encode(
    sequence: int,
    first_ticks: int,
    period_ticks: int,
    acc_g: np.ndarray,
    gyr_dps: np.ndarray,
    mag_ut: np.ndarray | None = None,
    clock_restarted: bool = False,
) -> bytes:
    """One data notification of n samples ((n, 3) arrays); values beyond full scale saturate.

    ``sequence`` and ``first_ticks`` are taken modulo 2**16 and 2**32, as the firmware's counters wrap.
    """
    columns = [np.asarray(acc_g, float) * ACC_LSB_PER_G, np.asarray(gyr_dps, float) * GYR_LSB_PER_DPS]
    flags = FLAG_CLOCK_RESTARTED if clock_restarted else 0
    if mag_ut is not None:
        columns.append(np.asarray(mag_ut, float) * MAG_LSB_PER_UT)
        flags |= FLAG_MAG
    rows = np.hstack(columns)
    if not 1 <= len(rows) <= 255 or not 1 <= period_ticks <= 0xFFFF:
        raise ValueError(
            f"need 1..255 samples and a period of 1..65535 ticks, got {len(rows)}, {period_ticks}"
        )
    raw = np.clip(np.rint(rows), -32768, 32767).astype("<i2")
    header = _HEADER.pack(
        VERSION, flags, sequence % _SEQUENCE_MODULUS, first_ticks % _TICKS_MODULUS, len(rows), period_ticks
    )
    body = header + raw.tobytes()
    return body + _CRC.pack(_crc(body))


def unwrap_ticks(previous: int, ticks32: int) -> int:
    """The unwrapped tick count congruent to ``ticks32`` nearest ``previous`` (an earlier unwrapped time)."""
    step = (ticks32 - previous + _TICKS_MODULUS // 2) % _TICKS_MODULUS - _TICKS_MODULUS // 2
    return previous + step


def packets_lost(previous_sequence: int, sequence: int) -> int:
    """How many packets fell between two received sequence numbers (modulo 2**16)."""
    return (sequence - previous_sequence - 1) % _SEQUENCE_MODULUS


def _check_header(packet: bytes) -> tuple[int, int, int, int, int]:
    require_length(packet, _HEADER.size + _CRC.size, "open profile header and CRC")
    version, flags, sequence, first_ticks, count, period = _HEADER.unpack_from(packet)
    if version != VERSION:
        raise DecodeError(f"open profile: version {version} at offset 0, this decoder reads {VERSION}")
    if flags & ~_KNOWN_FLAGS:
        raise DecodeError(f"open profile: reserved flag bits {flags & ~_KNOWN_FLAGS:#04x} set at offset 1")
    if count == 0 or period == 0:
        raise DecodeError(
            f"open profile: sample count {count} (offset 8) and period {period} (offset 9) must be > 0"
        )
    expected = _HEADER.size + count * _samples_per_row(flags) * 2 + _CRC.size
    if len(packet) != expected:
        raise DecodeError(
            f"open profile: {count} samples with flags {flags:#04x} make {expected} bytes, got {len(packet)}: "
            f"{hexdump(packet)}"
        )
    (crc,) = _CRC.unpack_from(packet, expected - _CRC.size)
    if crc != _crc(packet[: expected - _CRC.size]):
        raise DecodeError(
            f"open profile: CRC {crc:04X} at offset {expected - _CRC.size} does not match the packet"
        )
    return flags, sequence, first_ticks, count, period


def decode(packet: bytes, clock_hz: float, previous_ticks: int | None = None) -> Decoded:
    """One data notification from a strap whose info says ``clock_hz``.  With ``previous_ticks`` (the last
    device_time decoded from this strap) the 32-bit timestamp is unwrapped next to it; without, or when the
    packet says the clock restarted, device_time starts at the raw 32-bit value."""
    packet = bytes(packet)
    flags, sequence, first_ticks, count, period = _check_header(packet)
    if previous_ticks is not None and not flags & FLAG_CLOCK_RESTARTED:
        first_ticks = unwrap_ticks(previous_ticks, first_ticks)
    raw = np.frombuffer(packet, dtype="<i2", count=count * _samples_per_row(flags), offset=_HEADER.size)
    values = raw.reshape(count, -1).astype(np.float64)
    extra = {"mag_ut": values[:, 6:9] / MAG_LSB_PER_UT} if flags & FLAG_MAG else {}
    extra["clock_restarted"] = bool(flags & FLAG_CLOCK_RESTARTED)
    return Decoded(
        acc=values[:, 0:3] * (STANDARD_GRAVITY / ACC_LSB_PER_G),
        gyr=np.deg2rad(values[:, 3:6] / GYR_LSB_PER_DPS),
        device_time=first_ticks + period * np.arange(count, dtype=np.int64),
        clock_hz=clock_hz,
        seq=sequence,
        extra=extra,
    )


def encode_info(info: StrapInfo) -> bytes:
    flags = FLAG_MAG if info.has_mag else 0
    millihertz = round(info.sample_rate_hz * 1000)
    return _INFO.pack(
        info.version,
        flags,
        info.clock_hz,
        millihertz,
        info.acc_range_g,
        info.gyr_range_dps,
        info.mag_range_ut,
    )


def decode_info(value: bytes) -> StrapInfo:
    value = bytes(value)
    if len(value) != _INFO.size:
        raise DecodeError(
            f"open profile info: expected {_INFO.size} bytes, got {len(value)}: {hexdump(value)}"
        )
    version, flags, clock_hz, millihertz, acc_g, gyr_dps, mag_ut = _INFO.unpack(value)
    if version != VERSION:
        raise DecodeError(f"open profile info: version {version} at offset 0, this decoder reads {VERSION}")
    if clock_hz == 0 or millihertz == 0:
        raise DecodeError(
            f"open profile info: clock {clock_hz} Hz (offset 2) and rate (offset 6) must be > 0"
        )
    if bool(flags & FLAG_MAG) != (mag_ut > 0):
        raise DecodeError(
            f"open profile info: mag flag (offset 1) says {bool(flags & FLAG_MAG)}, range {mag_ut} uT"
        )
    return StrapInfo(clock_hz, millihertz / 1000, acc_g, gyr_dps, mag_ut, version)


def encode_command(command: Command, rate_hz: float | None = None) -> bytes:
    if command is Command.SET_RATE:
        if rate_hz is None or not math.isfinite(rate_hz) or not 0 < rate_hz * 1000 < 2**32:
            raise ValueError(f"SET_RATE needs a rate in (0, 4.29e6) Hz, got {rate_hz}")
        return bytes([command]) + round(rate_hz * 1000).to_bytes(4, "little")
    return bytes([command])


def parse_command(packet: bytes) -> tuple[Command, float | None]:
    """(command, rate in Hz for SET_RATE else None), as the device sees a control write."""
    packet = bytes(packet)
    require_length(packet, 1, "open profile command")
    try:
        command = Command(packet[0])
    except ValueError:
        raise DecodeError(f"open profile: unknown command {packet[0]:#04x} at offset 0") from None
    expected = 5 if command is Command.SET_RATE else 1
    if len(packet) != expected:
        raise DecodeError(
            f"open profile: {command.name} is {expected} bytes, got {len(packet)}: {hexdump(packet)}"
        )
    if command is Command.SET_RATE:
        millihertz = int.from_bytes(packet[1:5], "little")
        if millihertz == 0:
            raise DecodeError("open profile: SET_RATE of 0 mHz at offset 1")
        return command, millihertz / 1000
    return command, None
