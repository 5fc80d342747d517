"""Polar Measurement Data (PMD) service: accelerometer, gyroscope and magnetometer of Verity Sense / H10.

Sources (public; paths in github.com/polarofficial/polar-ble-sdk, ``pmd/`` standing for
``sources/Android/android-communications/library/src/main/java/com/polar/androidcommunications/api/ble/model/
gatt/client/pmd/`` and ``pmd-tests/`` for the same package under ``library/src/test/java/``):
- technical_documentation/Polar_Measurement_Data_Specification.pdf: service and characteristic UUIDs, control
  point op codes and response layout, data frame header (type, 64-bit timestamp of the last sample, frame type).
- pmd/PmdSetting.kt, pmd/PmdControlPointResponse.kt: the settings TLV field sizes, the factor as an IEEE 754
  float32.
- pmd/PmdDataFrame.kt: the header read as measurement type, u64 LE timestamp, frame type byte (bit 7 = delta
  compressed, low 7 bits = frame type); each frame is handed its stream's previous timestamp, looked up by
  measurement type and frame type (compression bit masked off).
- pmd/BlePMDClient.kt: parseDeltaFramesAll (reference sample, then blocks of [bit width][count] with deltas
  packed LSB first); processPmdData records every frame's timestamp as its stream's previous one before the
  frame is parsed; the record is cleared by reset() (disconnection) and by stopMeasurement.
- pmd/model/AccData.kt, pmd/model/GyrData.kt: ACC in mG except compressed frame type 0, which is in G; GYRO in
  deg/s; each integer sample multiplied by the factor.
- pmd/model/MagData.kt: MAG has compressed frames only (raw frame types are refused); compressed type 0 has 3
  channels of 16 bits and is in gauss (sample x factor); compressed type 1 has 4 channels, x, y, z in
  milligauss ((sample x factor) / 1000 to gauss) and the 4th the calibration status, taken unscaled
  (CalibrationStatus: 0 unknown, 1 poor, 2 ok, 3 good, any other id -1 "not available", which type 0 samples
  carry).
- pmd/model/PmdTimeStampUtils.kt (and its iOS twin, sources/iOS/ios-communications/Sources/iOSCommunications/
  ble/api/model/gatt/client/pmd/model/PmdTimeStampUtils.swift): sample times. With a previous frame timestamp
  the samples are spread evenly over (previous, this] (delta = (this - previous) / n, the last sample at this
  frame's timestamp); without one (0) they are counted back from the frame's timestamp at 1e9 / sample rate
  ns; a frame whose timestamp is below n x delta (its first sample before the epoch) is refused, and so is,
  explicitly on iOS, one not later than the previous frame.
- pmd-tests/model/PmdTimeStampUtilsTest.kt: the expected times (10 samples at 1 Hz ending at 10 s start at
  1 s, so a timestamp equal to n x delta is accepted; previous 100 ns, this 2 s, 3 samples: 666666733,
  1333333367, 2000000000; 100 samples at 52 Hz ending at 100000 ns are refused).
- pmd-tests/model/MagDataTest.kt: hand-built compressed type 0 and type 1 MAG frames and their values (type 1
  divided by 1000, the status channel delta-coded like the others).
- technical_documentation/TimeSystemExplained.md: timestamps are ns since 2000-01-01T00:00:00Z.

kinefuse's units: m/s^2, rad/s and microtesla (1 G = 100 uT, 1 mG = 0.1 uT). A MAG frame's calibration status
goes to ``Decoded.extra["mag_calibration"]`` (int8 per sample, the SDK's ids). The SDK computes sample times in
float64; here they are exact integer ns (rounded to nearest), since float64 resolves only ~128 ns at today's
timestamps.

Assumptions where the documents leave room: the factor multiplies every integer sample (1.0 when the start
response carries none); a compressed frame's reference sample has the resolution of the settings in force;
a delta block of bit width 0 or over 32 is malformed; the two high bits of the measurement type byte are
flags and are ignored; compressed GYRO frame type 1 (float32 deltas) is not supported.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import struct
from collections.abc import Mapping, Sequence

import numpy as np

from kinefuse_plugins.ble_imu.protocols.common import (
    STANDARD_GRAVITY,
    Decoded,
    DecodeError,
    hexdump,
    require_length,
    signed_le,
)

SERVICE_UUID = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
CONTROL_POINT_UUID = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"
DATA_UUID = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"

CLOCK_HZ = 1e9  # timestamps are nanoseconds
CONTROL_RESPONSE_CODE = 0xF0
FEATURES_CODE = 0x0F  # first byte of the control point's read value (the features bitmask)
COMPRESSED_BIT = 0x80
_MEASUREMENT_MASK = 0x3F
_FRAME_HEADER = struct.Struct("<BQB")
_INT64_MAX = 2**63 - 1
_MAX_DELTA_BITS = 32
_MAX_BLOCK_SAMPLES = 255
UT_PER_GAUSS = 100.0  # 1 G = 1e-4 T; kinefuse's magnetometer unit is the microtesla
CALIBRATION_STATUS = {0: "unknown", 1: "poor", 2: "ok", 3: "good"}  # MAG type 1's 4th channel (SDK MagData)
CALIBRATION_NOT_AVAILABLE = -1  # type 0 frames, and ids the SDK does not know


class MeasurementType(enum.IntEnum):
    ECG = 0
    PPG = 1
    ACC = 2
    PPI = 3
    GYRO = 5
    MAG = 6


class ControlOp(enum.IntEnum):
    GET_SETTINGS = 1
    START = 2
    STOP = 3


class SettingType(enum.IntEnum):
    SAMPLE_RATE = 0
    RESOLUTION = 1
    RANGE = 2
    RANGE_MILLIUNIT = 3
    CHANNELS = 4
    FACTOR = 5


class ResponseStatus(enum.IntEnum):
    SUCCESS = 0
    INVALID_OP_CODE = 1
    INVALID_MEASUREMENT_TYPE = 2
    NOT_SUPPORTED = 3
    INVALID_LENGTH = 4
    INVALID_PARAMETER = 5
    ALREADY_IN_STATE = 6
    INVALID_RESOLUTION = 7
    INVALID_SAMPLE_RATE = 8
    INVALID_RANGE = 9
    INVALID_MTU = 10
    INVALID_NUMBER_OF_CHANNELS = 11
    INVALID_STATE = 12
    DEVICE_IN_CHARGER = 13


_SETTING_SIZE = {
    SettingType.SAMPLE_RATE: 2,
    SettingType.RESOLUTION: 2,
    SettingType.RANGE: 2,
    SettingType.RANGE_MILLIUNIT: 4,
    SettingType.CHANNELS: 1,
    SettingType.FACTOR: 4,
}
_UNCOMPRESSED_WIDTH = {0: 1, 1: 2, 2: 3}  # frame type -> bytes per channel value


@dataclasses.dataclass(frozen=True)
class PmdSettings:
    """The settings in force for one measurement, as needed to decode its frames."""

    sample_rate_hz: int
    resolution_bits: int = 16
    channels: int = 3
    factor: float = 1.0

    def __post_init__(self) -> None:
        if self.sample_rate_hz <= 0:
            raise ValueError(f"sample rate must be positive, got {self.sample_rate_hz}")
        if not 1 <= self.resolution_bits <= 32:
            raise ValueError(f"resolution must be 1..32 bits, got {self.resolution_bits}")
        if self.channels < 3:
            raise ValueError(f"an IMU stream has at least 3 channels (x, y, z), got {self.channels}")
        if not math.isfinite(self.factor):
            raise ValueError(f"factor must be finite, got {self.factor}")

    @classmethod
    def from_selected(cls, selected: Mapping[SettingType, float]) -> PmdSettings:
        """From the values chosen in the start request plus the factor of the start response."""
        return cls(
            sample_rate_hz=int(selected[SettingType.SAMPLE_RATE]),
            resolution_bits=int(selected.get(SettingType.RESOLUTION, 16)),
            channels=int(selected.get(SettingType.CHANNELS, 3)),
            factor=float(selected.get(SettingType.FACTOR, 1.0)),
        )


@dataclasses.dataclass(frozen=True)
class ControlRequest:
    op: ControlOp
    measurement: int
    settings: dict[SettingType, tuple[float, ...]]  # START only: the values asked for


@dataclasses.dataclass(frozen=True)
class ControlResponse:
    op: int
    measurement: int
    status: int
    more: bool
    params: bytes
    settings: dict[SettingType, tuple[float, ...]]  # parsed params of a successful GET_SETTINGS or START


# --- settings TLV ---------------------------------------------------------------------------------------


def _setting_value_bytes(kind: SettingType, value: float) -> bytes:
    if kind is SettingType.FACTOR:
        return struct.pack("<f", value)
    return int(value).to_bytes(_SETTING_SIZE[kind], "little")


def encode_settings(settings: Mapping[SettingType, Sequence[float]]) -> bytes:
    """The TLV list: per setting [type u8][count u8][count values]; FACTOR values are float32."""
    out = bytearray()
    for kind, values in settings.items():
        kind = SettingType(kind)
        out += bytes([kind, len(values)])
        for value in values:
            out += _setting_value_bytes(kind, value)
    return bytes(out)


def parse_settings(data: bytes, start: int = 0) -> dict[SettingType, tuple[float, ...]]:
    """The TLV list filling ``data`` from ``start`` on; values are ints except FACTOR (float)."""
    settings: dict[SettingType, tuple[float, ...]] = {}
    at = start
    while at < len(data):
        require_length(data, 2, "PMD setting type and count", at)
        try:
            kind = SettingType(data[at])
        except ValueError:
            raise DecodeError(
                f"PMD: unknown setting type {data[at]} at offset {at}: {hexdump(data)}"
            ) from None
        count, size = data[at + 1], _SETTING_SIZE[kind]
        at += 2
        require_length(data, count * size, f"PMD setting {kind.name} values", at)
        if kind is SettingType.FACTOR:
            settings[kind] = struct.unpack_from(f"<{count}f", data, at)
        else:
            settings[kind] = tuple(
                int.from_bytes(data[i : i + size], "little") for i in range(at, at + count * size, size)
            )
        at += count * size
    return settings


# --- control point --------------------------------------------------------------------------------------


def get_settings_request(measurement: MeasurementType) -> bytes:
    return bytes([ControlOp.GET_SETTINGS, measurement])


def start_request(measurement: MeasurementType, selected: Mapping[SettingType, int]) -> bytes:
    """Start ``measurement`` with one value per setting; the factor is the device's to say, not asked for."""
    chosen = {kind: (value,) for kind, value in selected.items() if kind is not SettingType.FACTOR}
    return bytes([ControlOp.START, measurement]) + encode_settings(chosen)


def stop_request(measurement: MeasurementType) -> bytes:
    return bytes([ControlOp.STOP, measurement])


def parse_request(packet: bytes) -> ControlRequest:
    """A control point write, as the emulated device sees it."""
    packet = bytes(packet)
    require_length(packet, 2, "PMD control point request (op, measurement type)")
    try:
        op = ControlOp(packet[0])
    except ValueError:
        raise DecodeError(
            f"PMD: unknown control point op code {packet[0]} at offset 0: {hexdump(packet)}"
        ) from None
    if op is not ControlOp.START and len(packet) != 2:
        raise DecodeError(f"PMD: {op.name} request is 2 bytes, got {len(packet)}: {hexdump(packet)}")
    settings = parse_settings(packet, start=2) if op is ControlOp.START else {}
    return ControlRequest(op=op, measurement=packet[1], settings=settings)


def encode_control_response(
    op: int, measurement: int, status: int = ResponseStatus.SUCCESS, params: bytes = b"", more: bool = False
) -> bytes:
    """[0xF0][op][measurement type][status][more][params...]."""
    return bytes([CONTROL_RESPONSE_CODE, op, measurement, status, int(more)]) + bytes(params)


def encode_settings_response(
    measurement: MeasurementType,
    settings: Mapping[SettingType, Sequence[float]],
    op: ControlOp = ControlOp.GET_SETTINGS,
) -> bytes:
    """A successful GET_SETTINGS answer listing what the device offers (or, with op START, the factor)."""
    return encode_control_response(op, measurement, ResponseStatus.SUCCESS, encode_settings(settings))


def parse_control_response(packet: bytes) -> ControlResponse:
    """A control point notification; the settings TLV list is parsed for successful GET_SETTINGS and START."""
    packet = bytes(packet)
    require_length(packet, 4, "PMD control point response (F0, op, type, status)")
    if packet[0] != CONTROL_RESPONSE_CODE:
        raise DecodeError(
            f"PMD: expected response code F0 at offset 0, got {packet[0]:02X}: {hexdump(packet)}"
        )
    op, measurement, status = packet[1], packet[2], packet[3]
    more = len(packet) > 4 and packet[4] != 0
    params = packet[5:]
    has_settings = status == ResponseStatus.SUCCESS and op in (ControlOp.GET_SETTINGS, ControlOp.START)
    settings = parse_settings(packet, start=5) if has_settings else {}
    return ControlResponse(
        op=op, measurement=measurement, status=status, more=more, params=params, settings=settings
    )


def encode_features(measurements: Sequence[MeasurementType]) -> bytes:
    """The control point's read value: 0x0F then a little-endian bitmask of the measurements offered."""
    mask = sum(1 << MeasurementType(m) for m in set(measurements))  # bit n = measurement type n
    return bytes([FEATURES_CODE]) + mask.to_bytes(2, "little")


def parse_features(value: bytes) -> set[MeasurementType]:
    value = bytes(value)
    require_length(value, 2, "PMD features (0F, bitmask)")
    if value[0] != FEATURES_CODE:
        raise DecodeError(f"PMD: expected features code 0F at offset 0, got {value[0]:02X}: {hexdump(value)}")
    mask = int.from_bytes(value[1:], "little")
    return {m for m in MeasurementType if mask >> m & 1}


# --- data frames: encoding ------------------------------------------------------------------------------


def _check_fits(samples: np.ndarray, bits: int, what: str) -> None:
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if samples.size and (samples.min() < low or samples.max() > high):
        raise ValueError(f"{what} must lie in [{low}, {high}] for {bits} bits")


def _little_endian_bytes(values: np.ndarray, width: int) -> bytes:
    """Two's complement little-endian ``width``-byte fields of ``values`` (in order)."""
    shifts = 8 * np.arange(width, dtype=np.int64)
    return ((values.reshape(-1, 1) >> shifts) & 0xFF).astype(np.uint8).tobytes()


def _signed_bits_needed(values: np.ndarray) -> int:
    magnitude = int(np.max(np.where(values < 0, ~values, values)))
    return magnitude.bit_length() + 1


def _pack_bits(values: np.ndarray, width: int) -> bytes:
    """``values`` as ``width``-bit two's complement fields, LSB first, packed from bit 0 of byte 0."""
    shifts = np.arange(width, dtype=np.int64)
    bits = ((values.reshape(-1, 1) >> shifts) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def _compressed_payload(samples: np.ndarray, resolution_bits: int, block_samples: int) -> bytes:
    _check_fits(samples[:1], resolution_bits, "the reference sample")
    out = bytearray(_little_endian_bytes(samples[0], (resolution_bits + 7) // 8))
    deltas = np.diff(samples, axis=0)
    for start in range(0, len(deltas), block_samples):
        block = deltas[start : start + block_samples]
        width = _signed_bits_needed(block)
        if width > _MAX_DELTA_BITS:
            raise ValueError(f"a delta needs {width} bits, more than {_MAX_DELTA_BITS}")
        out += bytes([width, len(block)]) + _pack_bits(block, width)
    return bytes(out)


def encode_frame(
    measurement: MeasurementType,
    timestamp_ns: int,
    samples_int: np.ndarray,
    frame_type: int,
    resolution_bits: int = 16,
    block_samples: int = _MAX_BLOCK_SAMPLES,
) -> bytes:
    """A data notification: [type][timestamp of the last sample, u64 LE ns][frame type][payload].

    ``samples_int`` is (n, channels) integers.  Frame types 0, 1, 2 carry int8, int16, int24 values;
    with bit 0x80 set the frame is compressed: a reference sample of ``resolution_bits`` per channel, then
    delta blocks of up to ``block_samples`` samples, each at the narrowest bit width that holds its deltas.
    """
    samples = np.asarray(samples_int, dtype=np.int64)
    if samples.ndim != 2 or len(samples) == 0:
        raise ValueError(f"samples must be (n >= 1, channels), got shape {samples.shape}")
    if measurement == MeasurementType.GYRO and frame_type == COMPRESSED_BIT | 1:
        raise ValueError(
            "compressed GYRO frame type 1 carries float32 deltas, which this codec does not support"
        )
    if frame_type & COMPRESSED_BIT:
        if not 1 <= block_samples <= _MAX_BLOCK_SAMPLES:
            raise ValueError(f"block_samples must be 1..{_MAX_BLOCK_SAMPLES}, got {block_samples}")
        payload = _compressed_payload(samples, resolution_bits, block_samples)
    else:
        width = _UNCOMPRESSED_WIDTH.get(frame_type)
        if width is None:
            raise ValueError(f"uncompressed frame type {frame_type} not supported (0, 1, 2)")
        _check_fits(samples, 8 * width, f"samples of frame type {frame_type}")
        payload = _little_endian_bytes(samples, width)
    return _FRAME_HEADER.pack(measurement, timestamp_ns, frame_type) + payload


# --- data frames: decoding ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FrameHeader:
    """[measurement type][timestamp of the last sample, u64 LE ns since 2000-01-01][frame type]."""

    measurement: MeasurementType
    timestamp_ns: int
    frame_type: int

    @property
    def stream(self) -> tuple[int, int]:
        """What the SDK keys a previous timestamp by: measurement and frame type, compression bit aside."""
        return int(self.measurement), self.frame_type & ~COMPRESSED_BIT

    def __str__(self) -> str:
        return f"{self.measurement.name} frame (type {self.frame_type:#04x}) stamped {self.timestamp_ns} ns"


def parse_header(packet: bytes) -> FrameHeader:
    packet = bytes(packet)
    require_length(packet, _FRAME_HEADER.size, "PMD data frame header (type, timestamp, frame type)")
    type_byte, last_ns, frame_type = _FRAME_HEADER.unpack_from(packet)
    measurement = type_byte & _MEASUREMENT_MASK
    if measurement not in (MeasurementType.ACC, MeasurementType.GYRO, MeasurementType.MAG):
        raise DecodeError(f"PMD: measurement type {measurement} at offset 0 is not ACC, GYRO or MAG")
    if last_ns > _INT64_MAX:
        raise DecodeError(f"PMD: timestamp {last_ns} at offset 1 is beyond year 2292 (over int64 ns)")
    return FrameHeader(MeasurementType(measurement), last_ns, frame_type)


class FrameTimes:
    """Each stream's previous frame timestamp, the state behind the SDK's sample times (its
    previousTimeStampMap). One per connection: the SDK forgets them at a disconnection and at a measurement
    stop, and so should the owner, also when frames were lost before reaching the decoder."""

    def __init__(self) -> None:
        self._previous: dict[tuple[int, int], int] = {}

    def advance(self, header: FrameHeader) -> int | None:
        """The previous timestamp of ``header``'s stream (None for its first frame); ``header``'s replaces it."""
        previous = self._previous.get(header.stream)
        self._previous[header.stream] = header.timestamp_ns
        return previous

    def forget(self) -> None:
        self._previous.clear()


def _decode_uncompressed(payload: bytes, frame_type: int, channels: int) -> np.ndarray:
    width = _UNCOMPRESSED_WIDTH.get(frame_type)
    if width is None:
        raise DecodeError(f"PMD: unknown uncompressed frame type {frame_type} at offset 9")
    sample_size = width * channels
    if not payload or len(payload) % sample_size:
        raise DecodeError(
            f"PMD: frame type {frame_type} payload from offset 10 must be a whole number (>= 1) of "
            f"{sample_size}-byte samples, got {len(payload)} bytes"
        )
    return signed_le(payload, width, len(payload) // width).reshape(-1, channels)


def _unpack_signed_bits(data: bytes, width: int, count: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[: count * width]
    weights = np.left_shift(np.int64(1), np.arange(width, dtype=np.int64))
    unsigned = bits.reshape(count, width).astype(np.int64) @ weights
    sign_bit = np.int64(1) << (width - 1)
    return (unsigned ^ sign_bit) - sign_bit


def _decode_compressed(payload: bytes, resolution_bits: int, channels: int) -> np.ndarray:
    value_size = (resolution_bits + 7) // 8
    require_length(payload, value_size * channels, "PMD compressed reference sample", 0)
    raw_reference = signed_le(payload, value_size, channels)
    sign_bit = 1 << (resolution_bits - 1)
    reference = ((raw_reference & ((1 << resolution_bits) - 1)) ^ sign_bit) - sign_bit
    deltas = [np.zeros((1, channels), dtype=np.int64)]
    at = value_size * channels
    while at < len(payload):
        require_length(payload, 2, "PMD delta block header (bit width, sample count)", at)
        width, count = payload[at], payload[at + 1]
        if not 1 <= width <= _MAX_DELTA_BITS:
            raise DecodeError(
                f"PMD: delta bit width {width} at payload offset {at} not in 1..{_MAX_DELTA_BITS}"
            )
        block_bytes = (width * count * channels + 7) // 8
        require_length(payload, block_bytes, f"PMD delta block of {count} samples x {width} bits", at + 2)
        block = payload[at + 2 : at + 2 + block_bytes]
        deltas.append(_unpack_signed_bits(block, width, count * channels).reshape(count, channels))
        at += 2 + block_bytes
    return reference + np.cumsum(np.concatenate(deltas), axis=0)


def _nominal_times(last_ns: int, count: int, sample_rate_hz: int) -> np.ndarray:
    """Times of ``count`` samples ending at ``last_ns``, spaced by the sample period (rounded to ns)."""
    steps_back = np.arange(count - 1, -1, -1, dtype=np.int64)
    return last_ns - (steps_back * 1_000_000_000 + sample_rate_hz // 2) // sample_rate_hz


def _spread_times(previous_ns: int, last_ns: int, count: int) -> np.ndarray:
    """``count`` samples evenly over (previous_ns, last_ns], the last exactly at ``last_ns``.

    Integer arithmetic, rounded to the nearest ns: float64 holds only ~128 ns steps at today's timestamps."""
    quotient, remainder = divmod(last_ns - previous_ns, count)
    k = np.arange(1, count + 1, dtype=np.int64)
    return previous_ns + k * quotient + (2 * k * remainder + count) // (2 * count)


def _sample_times(header: FrameHeader, count: int, rate_hz: int, previous_ns: int | None) -> np.ndarray:
    """The SDK's rule (PmdTimeStampUtils): spread over the time since the stream's previous frame when there
    is one, else count back at the nominal rate; a first sample before the 2000 epoch is refused."""
    if previous_ns is not None:
        if header.timestamp_ns <= previous_ns:
            raise DecodeError(
                f"PMD: {header} is not later than the previous frame of its stream ({previous_ns} ns)"
            )
        return _spread_times(previous_ns, header.timestamp_ns, count)
    if header.timestamp_ns * rate_hz < count * 1_000_000_000:  # frame time < samples x period, exactly
        raise DecodeError(f"PMD: {header} holds {count} samples at {rate_hz} Hz, so its first sample would fall "
                          "before the 2000-01-01 epoch")  # fmt: skip
    return _nominal_times(header.timestamp_ns, count, rate_hz)


def _calibration(raw_status: np.ndarray) -> np.ndarray:
    """The SDK's CalibrationStatus ids; any other value is 'not available' (CalibrationStatus.getById)."""
    known = (raw_status >= 0) & (raw_status <= max(CALIBRATION_STATUS))
    return np.where(known, raw_status, CALIBRATION_NOT_AVAILABLE).astype(np.int8)


def _mag_extra(frame_type: int, raw: np.ndarray, factor: float) -> dict:
    """Compressed MAG type 0 is in gauss with no status; type 1 in milligauss, its 4th channel the calibration
    status (MagData.kt; the factor scales the field, not the status)."""
    if frame_type == COMPRESSED_BIT:
        status = np.full(len(raw), CALIBRATION_NOT_AVAILABLE, dtype=np.int8)
        return {"mag_ut": raw[:, :3] * (factor * UT_PER_GAUSS), "mag_calibration": status}
    return {"mag_ut": raw[:, :3] * (factor * UT_PER_GAUSS / 1000), "mag_calibration": _calibration(raw[:, 3])}


def _to_si(measurement: int, frame_type: int, raw: np.ndarray, factor: float) -> dict:
    """Decoded fields in the measurement's physical unit, each integer sample multiplied by the factor."""
    if measurement == MeasurementType.ACC:
        # Compressed ACC frame type 0 carries G, every other ACC frame mG (Polar SDK AccData).
        per_unit = 1.0 if frame_type == COMPRESSED_BIT else 1e-3
        return {"acc": raw[:, :3] * (factor * per_unit * STANDARD_GRAVITY), "gyr": None, "extra": {}}
    if measurement == MeasurementType.GYRO:
        return {"acc": None, "gyr": np.deg2rad(raw[:, :3] * factor), "extra": {}}
    return {"acc": None, "gyr": None, "extra": _mag_extra(frame_type, raw, factor)}


def _check_supported(header: FrameHeader) -> None:
    kind = header.frame_type & ~COMPRESSED_BIT
    if header.frame_type & COMPRESSED_BIT and kind not in (0, 1):
        raise DecodeError(f"PMD: unknown compressed frame type {header.frame_type:#04x} at offset 9")
    if header.measurement == MeasurementType.GYRO and header.frame_type == COMPRESSED_BIT | 1:
        raise DecodeError("PMD: compressed GYRO frame type 1 (float32 deltas) is not supported (offset 9)")
    if header.measurement == MeasurementType.MAG and not header.frame_type & COMPRESSED_BIT:
        # the SDK parses no uncompressed magnetometer frame, so no unit is documented for one
        raise DecodeError(f"PMD: uncompressed MAG frame type {header.frame_type} (offset 9) is not supported")


def _channels(header: FrameHeader, in_force: PmdSettings) -> int:
    """MAG frames fix their channels by frame type (type 1 adds the calibration status); others as set."""
    if header.measurement == MeasurementType.MAG:
        return 4 if header.frame_type == COMPRESSED_BIT | 1 else 3
    return in_force.channels


def decode(
    packet: bytes, settings: Mapping[int, PmdSettings], frame_times: FrameTimes | None = None
) -> Decoded:
    """One data notification, given the settings in force per measurement type (ACC, GYRO, MAG).

    ``frame_times`` is the connection's record of each stream's previous frame timestamp: read for this
    frame's sample times and updated with this frame's (even when its payload then fails to decode, as the
    SDK does). Without it every frame is a first frame (counted back at the nominal rate).
    """
    packet = bytes(packet)
    header = parse_header(packet)
    previous_ns = None if frame_times is None else frame_times.advance(header)
    in_force = settings.get(header.measurement)
    if in_force is None:
        raise DecodeError(f"PMD: no settings in force for {header.measurement.name} (offset 0)")
    _check_supported(header)
    payload, channels = packet[_FRAME_HEADER.size :], _channels(header, in_force)
    if header.frame_type & COMPRESSED_BIT:
        raw = _decode_compressed(payload, in_force.resolution_bits, channels)
    else:
        raw = _decode_uncompressed(payload, header.frame_type, channels)
    device_time = _sample_times(header, len(raw), in_force.sample_rate_hz, previous_ns)
    fields = _to_si(header.measurement, header.frame_type, raw, in_force.factor)
    return Decoded(acc=fields["acc"], gyr=fields["gyr"], device_time=device_time, clock_hz=CLOCK_HZ, seq=None,
                   extra={"measurement": header.measurement, "raw": raw, **fields["extra"]})  # fmt: skip
