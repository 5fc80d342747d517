import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kinefuse_plugins.ble_imu.protocols import polar_pmd
from kinefuse_plugins.ble_imu.protocols.common import STANDARD_GRAVITY, DecodeError
from kinefuse_plugins.ble_imu.protocols.polar_pmd import (
    ControlOp,
    MeasurementType,
    PmdSettings,
    ResponseStatus,
    SettingType,
)

ACC_52HZ = {MeasurementType.ACC: PmdSettings(sample_rate_hz=52, resolution_bits=16)}

# A compressed ACC frame (type 0x81), built bit by bit:
#   02                          measurement ACC
#   00 ca 9a 3b 00 00 00 00     timestamp of the last sample: 1e9 ns after 2000-01-01
#   81                          compressed, frame type 1
#   64 00 38 ff e8 03           reference sample (100, -200, 1000), int16 LE
#   03 02 b9 38 00              block: 3-bit deltas, 2 samples: (1, -1, 2), (-4, 3, 0)
#                               LSB first: 001 111 010 001 110 000 (each value's bits low to high)
#                               -> bits 0..7 = 1,0,0,1,1,1,0,1 = 0xb9; bits 8..15 = 0,0,0,1,1,1,0,0 = 0x38
#   02 01 39                    block: 2-bit deltas, 1 sample: (1, -2, -1) -> 10 01 11 -> 0b00111001
COMPRESSED_ACC = bytes.fromhex("02 00ca9a3b00000000 81 6400 38ff e803 03 02 b93800 02 01 39")
COMPRESSED_ACC_MG = [[100, -200, 1000], [101, -201, 1002], [97, -198, 1002], [98, -200, 1001]]


def test_compressed_frame_known_answer():
    decoded = polar_pmd.decode(COMPRESSED_ACC, ACC_52HZ)
    np.testing.assert_array_equal(decoded.extra["raw"], COMPRESSED_ACC_MG)
    np.testing.assert_allclose(decoded.acc, np.array(COMPRESSED_ACC_MG) * 1e-3 * STANDARD_GRAVITY)
    assert (
        decoded.gyr is None
        and decoded.clock_hz == 1e9
        and decoded.extra["measurement"] is MeasurementType.ACC
    )
    # 52 Hz: 19230769.23 ns apart, counted back from the last sample and rounded to the nanosecond
    assert decoded.device_time.tolist() == [1e9 - 57692308, 1e9 - 38461538, 1e9 - 19230769, 1e9]


def test_encoder_reproduces_the_hand_built_frame():
    frame = polar_pmd.encode_frame(
        MeasurementType.ACC, 10**9, np.array(COMPRESSED_ACC_MG), 0x81, block_samples=2
    )
    assert frame == COMPRESSED_ACC


def test_uncompressed_gyro_frame_with_factor():
    # frame type 1: int16 x3; factor 0.5 deg/s per count
    frame = bytes.fromhex("05 0100000000000000 01 b400 4cff 0000 0000 0000 0100")
    decoded = polar_pmd.decode(frame, {MeasurementType.GYRO: PmdSettings(sample_rate_hz=1, factor=0.5)})
    np.testing.assert_allclose(decoded.gyr, np.deg2rad([[90.0, -90.0, 0.0], [0.0, 0.0, 0.5]]))
    assert decoded.acc is None and decoded.device_time.tolist() == [1 - 10**9, 1]


def test_int24_acc_and_magnetometer_units():
    frame = bytes.fromhex("02 0000000000000010 02 e80300 18fcff 000000")  # frame type 2: int24 x3
    decoded = polar_pmd.decode(frame, ACC_52HZ)
    np.testing.assert_allclose(decoded.acc, [[STANDARD_GRAVITY, -STANDARD_GRAVITY, 0.0]])
    mag = polar_pmd.encode_frame(MeasurementType.MAG, 10**12, np.array([[1000, -500, 0]]), 1)
    decoded = polar_pmd.decode(mag, {MeasurementType.MAG: PmdSettings(50)})
    np.testing.assert_allclose(decoded.extra["mag_ut"], [[100.0, -50.0, 0.0]])  # 1000 mG = 100 uT


def test_compressed_acc_frame_type_0_is_in_g():
    frame = polar_pmd.encode_frame(MeasurementType.ACC, 10**12, np.array([[1, 0, -1]]), 0x80)
    np.testing.assert_allclose(
        polar_pmd.decode(frame, ACC_52HZ).acc, [[STANDARD_GRAVITY, 0, -STANDARD_GRAVITY]]
    )


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (COMPRESSED_ACC[:9], "needs 10 bytes at offset 0"),
        (COMPRESSED_ACC[:14], "reference sample"),
        (COMPRESSED_ACC[:-1], "delta block of 1 samples x 2 bits"),
        (COMPRESSED_ACC + b"\x03", "block header"),
        (COMPRESSED_ACC[:16] + b"\x00\x02" + COMPRESSED_ACC[18:], "bit width 0"),
        (b"\x00" + COMPRESSED_ACC[1:], "measurement type 0 at offset 0"),
        (b"\x05" + COMPRESSED_ACC[1:], "no settings in force for GYRO"),
        (COMPRESSED_ACC[:9] + b"\x83" + COMPRESSED_ACC[10:], "compressed frame type 0x83"),
        (COMPRESSED_ACC[:9] + b"\x01" + b"\x00" * 5, "whole number"),
        (COMPRESSED_ACC[:1] + b"\xff" * 8 + COMPRESSED_ACC[9:], "int64"),
    ],
)
def test_malformed_frames_say_what_and_where(frame, message):
    with pytest.raises(DecodeError, match=message):
        polar_pmd.decode(frame, ACC_52HZ)


def test_float_gyro_frames_are_refused():
    with pytest.raises(DecodeError, match="float32 deltas"):
        polar_pmd.decode(b"\x05" + COMPRESSED_ACC[1:], {MeasurementType.GYRO: PmdSettings(52)})


def test_control_point_requests():
    assert polar_pmd.get_settings_request(MeasurementType.ACC) == b"\x01\x02"
    assert polar_pmd.stop_request(MeasurementType.GYRO) == b"\x03\x05"
    start = polar_pmd.start_request(
        MeasurementType.ACC, {SettingType.SAMPLE_RATE: 52, SettingType.RESOLUTION: 16, SettingType.RANGE: 8}
    )
    assert start == bytes.fromhex("02 02 00 01 3400 01 01 1000 02 01 0800")
    request = polar_pmd.parse_request(start)
    assert request.op is ControlOp.START and request.measurement == MeasurementType.ACC
    assert request.settings == {
        SettingType.SAMPLE_RATE: (52,),
        SettingType.RESOLUTION: (16,),
        SettingType.RANGE: (8,),
    }
    with pytest.raises(DecodeError, match="STOP request is 2 bytes"):
        polar_pmd.parse_request(b"\x03\x02\x00")


def test_settings_response_known_answer():
    packet = bytes.fromhex("f0 01 02 00 00 00 02 1a00 3400 01 01 1000 02 01 0800 04 01 03")
    response = polar_pmd.parse_control_response(packet)
    assert (response.op, response.measurement, response.status, response.more) == (1, 2, 0, False)
    assert response.settings == {
        SettingType.SAMPLE_RATE: (26, 52),
        SettingType.RESOLUTION: (16,),
        SettingType.RANGE: (8,),
        SettingType.CHANNELS: (3,),
    }
    assert polar_pmd.encode_settings_response(MeasurementType.ACC, response.settings) == packet


def test_start_response_factor_gives_the_settings_in_force():
    factor_bits = struct.pack("<f", 0.061)
    response = polar_pmd.parse_control_response(bytes.fromhex("f0 02 05 00 00 05 01") + factor_bits)
    selected = {
        SettingType.SAMPLE_RATE: 52,
        SettingType.RESOLUTION: 16,
        **{k: v[0] for k, v in response.settings.items()},
    }
    assert polar_pmd.PmdSettings.from_selected(selected) == PmdSettings(
        52, 16, 3, struct.unpack("<f", factor_bits)[0]
    )


def test_error_response_has_no_settings():
    response = polar_pmd.parse_control_response(
        polar_pmd.encode_control_response(
            ControlOp.START, MeasurementType.ACC, ResponseStatus.INVALID_SAMPLE_RATE
        )
    )
    assert response.status == ResponseStatus.INVALID_SAMPLE_RATE and response.settings == {}
    with pytest.raises(DecodeError, match="unknown setting type 9 at offset 5"):
        polar_pmd.parse_control_response(bytes.fromhex("f0 01 02 00 00 09 01 00"))


def test_features_bitmask():
    value = polar_pmd.encode_features([MeasurementType.ACC, MeasurementType.GYRO, MeasurementType.MAG])
    assert value == bytes.fromhex("0f 64 00")
    assert polar_pmd.parse_features(value) == {MeasurementType.ACC, MeasurementType.GYRO, MeasurementType.MAG}


_FRAME_KINDS = [
    (0, 8),
    (1, 16),
    (2, 24),
    (0x80, 16),
    (0x81, 8),
    (0x81, 12),
    (0x81, 16),
    (0x81, 22),
    (0x81, 24),
]


@st.composite
def frames(draw):
    frame_type, bits = draw(st.sampled_from(_FRAME_KINDS))
    n = draw(st.integers(1, 40))
    values = st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    samples = np.array(
        draw(st.lists(st.tuples(values, values, values), min_size=n, max_size=n)), dtype=np.int64
    )
    return frame_type, bits, samples, draw(st.integers(1, 255)), draw(st.integers(10**9, 2**63 - 1))


@settings(max_examples=300, deadline=None)
@given(frames(), st.sampled_from([MeasurementType.ACC, MeasurementType.GYRO, MeasurementType.MAG]))
def test_round_trip(frame, measurement):
    frame_type, bits, samples, block_samples, timestamp_ns = frame
    if measurement == MeasurementType.GYRO and frame_type == 0x81:
        measurement = MeasurementType.ACC  # GYRO 0x81 carries float32 deltas (unsupported, tested below)
    packet = polar_pmd.encode_frame(measurement, timestamp_ns, samples, frame_type, bits, block_samples)
    decoded = polar_pmd.decode(packet, {measurement: PmdSettings(200, resolution_bits=bits)})
    np.testing.assert_array_equal(decoded.extra["raw"], samples)
    assert decoded.device_time[-1] == timestamp_ns and np.all(np.diff(decoded.device_time) == 5_000_000)
