"""WitMotion BWT901BLE-class straps (WT901BLECL, BWT901BLE5.0): notification frames and config commands.

Sources (public vendor documents):
- WT901BLECL Datasheet v20-0707, section 6 "Communication Protocol" (data packet 0x55 0x61: acceleration,
  angular velocity, angle as little-endian int16; register writes ``FF AA <reg> <lo> <hi>``).
- WitMotion "Bluetooth 5.0 communication protocol" (wit-motion.gitbook.io, BLE 5.0 protocol): the GATT
  service 0xFFE5 with notify 0xFFE4 and write 0xFFE9, unlock ``FF AA 69 88 B5``, save ``FF AA 00 00 00``,
  scaling acc = raw/32768*16 g, gyro = raw/32768*2000 deg/s, angle = raw/32768*180 deg.
- HWT905/WT901 Datasheet v20-0707, section 5.2.9 "Return Rate": the RATE register (0x03) codes below.

The frames carry no timestamp, so ``decode`` gives no device time: the caller counts samples at the
configured rate.
"""

from __future__ import annotations

import numpy as np

from kinefuse_plugins.ble_imu.protocols.common import STANDARD_GRAVITY, Decoded, DecodeError, hexdump

SERVICE_UUID = "0000ffe5-0000-1000-8000-00805f9b34fb"
NOTIFY_UUID = "0000ffe4-0000-1000-8000-00805f9b34fb"
WRITE_UUID = "0000ffe9-0000-1000-8000-00805f9b34fb"

FRAME_HEADER = b"\x55\x61"
FRAME_SIZE = 20  # header + 9 int16
ACC_FULL_SCALE_G = 16.0
GYR_FULL_SCALE_DPS = 2000.0
ANGLE_FULL_SCALE_DEG = 180.0
_INT16_SCALE = 32768.0

UNLOCK = b"\xff\xaa\x69\x88\xb5"
SAVE = b"\xff\xaa\x00\x00\x00"
_COMMAND_PREFIX = b"\xff\xaa"
_RATE_REGISTER = 0x03

# RATE register code -> output rate in Hz (HWT905/WT901 datasheet v20-0707, 5.2.9; the BLE 5.0 protocol
# uses the same register).  Codes 0x0C (single shot) and 0x0D (no output) are not rates.
RATE_CODES: dict[int, float] = {
    0x01: 0.2,
    0x02: 0.5,
    0x03: 1.0,
    0x04: 2.0,
    0x05: 5.0,
    0x06: 10.0,
    0x07: 20.0,
    0x08: 50.0,
    0x09: 100.0,
    0x0A: 125.0,
    0x0B: 200.0,
}
_CODE_FOR_RATE = {hz: code for code, hz in RATE_CODES.items()}


def register_write(register: int, value: int) -> bytes:
    """The 5-byte command writing a 16-bit ``value`` to ``register``."""
    return _COMMAND_PREFIX + bytes([register]) + value.to_bytes(2, "little")


def rate_commands(hz: float) -> list[bytes]:
    """Unlock, set the output rate to ``hz``, save; ValueError for a rate the strap does not offer."""
    code = _CODE_FOR_RATE.get(float(hz))
    if code is None:
        raise ValueError(f"WitMotion output rate {hz} Hz not offered; choose one of {sorted(_CODE_FOR_RATE)}")
    return [UNLOCK, register_write(_RATE_REGISTER, code), SAVE]


def parse_rate_command(command: bytes) -> float | None:
    """The rate in Hz a set-rate command asks for; None for any other command (or an unknown code)."""
    if len(command) != 5 or command[:3] != _COMMAND_PREFIX + bytes([_RATE_REGISTER]) or command[4] != 0:
        return None
    return RATE_CODES.get(command[3])


def encode(acc_g: np.ndarray, gyr_dps: np.ndarray, angle_deg: np.ndarray) -> bytes:
    """Concatenated 0x55 0x61 frames, one per row of the (n, 3) arrays; values beyond full scale saturate."""
    scaled = np.hstack(
        [
            np.asarray(acc_g, dtype=np.float64) / ACC_FULL_SCALE_G,
            np.asarray(gyr_dps, dtype=np.float64) / GYR_FULL_SCALE_DPS,
            np.asarray(angle_deg, dtype=np.float64) / ANGLE_FULL_SCALE_DEG,
        ]
    )
    raw = np.clip(np.rint(scaled * _INT16_SCALE), -32768, 32767).astype("<i2")
    return b"".join(FRAME_HEADER + row.tobytes() for row in raw)


def decode(packet: bytes) -> Decoded:
    """All 0x55 0x61 frames of one notification (a strap may batch several into one)."""
    packet = bytes(packet)
    if not packet or len(packet) % FRAME_SIZE:
        raise DecodeError(
            f"WitMotion: expected a whole number of {FRAME_SIZE}-byte frames, got {len(packet)} bytes: "
            f"{hexdump(packet)}"
        )
    frames = np.frombuffer(packet, dtype=np.uint8).reshape(-1, FRAME_SIZE)
    bad = np.flatnonzero((frames[:, 0] != FRAME_HEADER[0]) | (frames[:, 1] != FRAME_HEADER[1]))
    if bad.size:
        offset = int(bad[0]) * FRAME_SIZE
        raise DecodeError(
            f"WitMotion: expected header 55 61 at offset {offset}, got {packet[offset : offset + 2].hex(' ')}: "
            f"{hexdump(packet)}"
        )
    values = frames[:, 2:].copy().view("<i2").astype(np.float64) / _INT16_SCALE
    return Decoded(
        acc=values[:, 0:3] * (ACC_FULL_SCALE_G * STANDARD_GRAVITY),
        gyr=np.deg2rad(values[:, 3:6] * GYR_FULL_SCALE_DPS),
        device_time=None,
        clock_hz=None,
        seq=None,
        extra={"angle_deg": values[:, 6:9] * ANGLE_FULL_SCALE_DEG},
    )
