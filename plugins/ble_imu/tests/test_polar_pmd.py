import struct
from fractions import Fraction

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
    # frame type 1: int16 x3, stamped 3 s after 2000; factor 0.5 deg/s per count
    frame = bytes.fromhex("05 005ed0b200000000 01 b400 4cff 0000 0000 0000 0100")
    decoded = polar_pmd.decode(frame, {MeasurementType.GYRO: PmdSettings(sample_rate_hz=1, factor=0.5)})
    np.testing.assert_allclose(decoded.gyr, np.deg2rad([[90.0, -90.0, 0.0], [0.0, 0.0, 0.5]]))
    assert decoded.acc is None and decoded.device_time.tolist() == [2 * 10**9, 3 * 10**9]


def test_int24_acc_frame_is_in_milli_g():
    frame = bytes.fromhex("02 0000000000000010 02 e80300 18fcff 000000")  # frame type 2: int24 x3
    decoded = polar_pmd.decode(frame, ACC_52HZ)
    np.testing.assert_allclose(decoded.acc, [[STANDARD_GRAVITY, -STANDARD_GRAVITY, 0.0]])


MAG_50HZ = {MeasurementType.MAG: PmdSettings(50, factor=2**-10)}  # 3 channels: what MAG type 1 must ignore

# A compressed MAG frame of type 0 (0x80), built by hand:
#   06 | 00 ca 9a 3b 00 00 00 00 (1e9 ns) | 80
#   64 00  d8 ff  07 00         reference sample (100, -40, 7), int16 LE
#   02 01 0d                    block: 2-bit deltas, 1 sample (1, -1, 0): 10 11 00 LSB first -> 0b00001101
MAG_TYPE_0 = bytes.fromhex("06 00ca9a3b00000000 80 6400 d8ff 0700 02 01 0d")
MAG_TYPE_0_RAW = [[100, -40, 7], [101, -41, 7]]

# A compressed MAG frame of type 1 (0x81): four channels, x, y, z and the calibration status:
#   06 | 00 ca 9a 3b 00 00 00 00 | 81
#   f4 01  06 ff  e8 03  02 00  reference sample (500, -250, 1000, status 2), int16 LE
#   03 01 f1 02                 block: 3-bit deltas, 1 sample (1, -2, 3, +1):
#                               100 011 110 100 LSB first -> bits 0..7 = 1,0,0,0,1,1,1,1 = 0xf1; 8..11 -> 0x02
MAG_TYPE_1 = bytes.fromhex("06 00ca9a3b00000000 81 f401 06ff e803 0200 03 01 f102")
MAG_TYPE_1_RAW = [[500, -250, 1000, 2], [501, -252, 1003, 3]]


def test_the_hand_built_magnetometer_frames_are_what_the_encoder_builds():
    assert polar_pmd.encode_frame(MeasurementType.MAG, 10**9, np.array(MAG_TYPE_0_RAW), 0x80) == MAG_TYPE_0
    assert polar_pmd.encode_frame(MeasurementType.MAG, 10**9, np.array(MAG_TYPE_1_RAW), 0x81) == MAG_TYPE_1


def test_compressed_magnetometer_type_0_is_in_gauss():
    decoded = polar_pmd.decode(MAG_TYPE_0, MAG_50HZ)
    np.testing.assert_array_equal(decoded.extra["raw"], MAG_TYPE_0_RAW)
    # raw x factor is gauss (SDK MagData type 0); 1 G = 100 uT
    np.testing.assert_allclose(decoded.extra["mag_ut"], np.array(MAG_TYPE_0_RAW) * 2**-10 * 100)
    assert decoded.extra["mag_calibration"].tolist() == [-1, -1]  # type 0 carries none: "not available"
    assert decoded.acc is None and decoded.gyr is None and decoded.device_time.tolist() == [98 * 10**7, 10**9]


def test_compressed_magnetometer_type_1_has_four_channels_in_milligauss_and_a_calibration_status():
    decoded = polar_pmd.decode(MAG_TYPE_1, MAG_50HZ)  # whatever the settings say: four channels
    np.testing.assert_array_equal(decoded.extra["raw"], MAG_TYPE_1_RAW)
    xyz = np.array(MAG_TYPE_1_RAW)[:, :3]
    np.testing.assert_allclose(decoded.extra["mag_ut"], xyz * 2**-10 * 0.1)  # milligauss: 1 mG = 0.1 uT
    assert decoded.extra["mag_calibration"].tolist() == [2, 3]  # ok, good; the factor does not scale it


def test_the_same_magnetometer_counts_are_a_thousand_times_more_field_in_type_0_than_in_type_1():
    counts = np.array([[500, -250, 1000, 2]])
    type_0 = polar_pmd.encode_frame(MeasurementType.MAG, 10**9, counts[:, :3], 0x80)
    type_1 = polar_pmd.encode_frame(MeasurementType.MAG, 10**9, counts, 0x81)
    in_gauss, in_milligauss = (polar_pmd.decode(f, MAG_50HZ).extra["mag_ut"] for f in (type_0, type_1))
    np.testing.assert_allclose(in_gauss, 1000 * in_milligauss)


def test_calibration_ids_the_sdk_does_not_know_are_not_available():
    counts = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 3], [0, 0, 0, 4], [0, 0, 0, -2]])
    frame = polar_pmd.encode_frame(MeasurementType.MAG, 10**9, counts, 0x81)
    assert polar_pmd.decode(frame, MAG_50HZ).extra["mag_calibration"].tolist() == [0, 1, 3, -1, -1]


def test_uncompressed_magnetometer_frames_are_refused():
    # the SDK parses compressed MAG frames only: there is no documented unit for a raw one
    frame = polar_pmd.encode_frame(MeasurementType.MAG, 10**9, np.array([[1000, -500, 0]]), 1)
    with pytest.raises(DecodeError, match="uncompressed MAG frame type 1"):
        polar_pmd.decode(frame, MAG_50HZ)


ACC_50HZ = {MeasurementType.ACC: PmdSettings(50)}
_FOUR = np.array([[0, 0, 1000]] * 4)


def test_a_first_frame_whose_first_sample_would_precede_the_2000_epoch_is_refused():
    # 4 samples 20 ms apart: stamped at 80 ms, the first falls at 20 ms after the epoch (the SDK accepts it)...
    fits = polar_pmd.decode(polar_pmd.encode_frame(MeasurementType.ACC, 80_000_000, _FOUR, 1), ACC_50HZ)
    assert fits.device_time.tolist() == [20_000_000, 40_000_000, 60_000_000, 80_000_000]
    # ...one nanosecond earlier the frame time is less than samples x period, and the SDK refuses it
    early = polar_pmd.encode_frame(MeasurementType.ACC, 79_999_999, _FOUR, 1)
    message = (
        r"ACC frame \(type 0x01\) stamped 79999999 ns holds 4 samples at 50 Hz.*before the 2000-01-01 epoch"
    )
    with pytest.raises(DecodeError, match=message):
        polar_pmd.decode(early, ACC_50HZ)


def _acc_frame(last_ns: int, count: int = 4, frame_type: int = 1) -> bytes:
    return polar_pmd.encode_frame(MeasurementType.ACC, last_ns, np.array([[0, 0, 1000]] * count), frame_type)


T0 = 800_000_000_000_000_000  # about 25 years after 2000


def test_a_frame_after_the_first_spreads_its_samples_over_the_time_since_the_previous_frame():
    times = polar_pmd.FrameTimes()
    first = polar_pmd.decode(_acc_frame(T0), ACC_52HZ, times)
    # the first frame of a stream counts back at the nominal 52 Hz (19230769.2 ns)
    assert (T0 - first.device_time).tolist() == [57_692_308, 38_461_538, 19_230_769, 0]
    # the strap really samples at 50 Hz: the next frame ends 80 ms later and its samples are 20 ms apart
    second = polar_pmd.decode(_acc_frame(T0 + 80_000_000), ACC_52HZ, times)
    assert (second.device_time - T0).tolist() == [20_000_000, 40_000_000, 60_000_000, 80_000_000]


def test_spread_times_round_to_the_nearest_nanosecond_as_the_sdks_own_test_expects():
    # PmdTimeStampUtilsTest: previous frame at 100 ns, this one at 2 s, 3 samples
    times = polar_pmd.FrameTimes()
    times.advance(polar_pmd.FrameHeader(MeasurementType.ACC, 100, 1))
    decoded = polar_pmd.decode(_acc_frame(2 * 10**9, count=3), {MeasurementType.ACC: PmdSettings(1)}, times)
    assert decoded.device_time.tolist() == [666_666_733, 1_333_333_367, 2_000_000_000]


def _before_last(decoded) -> list[int]:
    """How long before the frame's timestamp each sample was taken, ns."""
    return (decoded.device_time[-1] - decoded.device_time).tolist()


NOMINAL_52HZ = [57_692_308, 38_461_538, 19_230_769, 0]  # counted back at the nominal rate
SPREAD_50HZ = [60_000_000, 40_000_000, 20_000_000, 0]  # spread over the 80 ms since the previous frame


def test_each_stream_keeps_its_own_previous_timestamp():
    times = polar_pmd.FrameTimes()
    settings = {**ACC_52HZ, MeasurementType.GYRO: PmdSettings(52)}
    polar_pmd.decode(_acc_frame(T0), settings, times)
    later = T0 + 80_000_000
    gyro = polar_pmd.encode_frame(MeasurementType.GYRO, later, _FOUR, 1)
    # GYRO has had no frame yet: counted back at its nominal rate, not spread back to ACC's frame
    assert _before_last(polar_pmd.decode(gyro, settings, times)) == NOMINAL_52HZ
    # ACC frame type 2 is another stream than type 1 (the SDK keys by measurement and frame type)...
    assert _before_last(polar_pmd.decode(_acc_frame(later, frame_type=2), settings, times)) == NOMINAL_52HZ
    # ...but the compressed bit is not part of the key: 0x81 follows type 1's previous frame
    assert _before_last(polar_pmd.decode(_acc_frame(later, frame_type=0x81), settings, times)) == SPREAD_50HZ


def test_a_frame_not_later_than_its_previous_is_refused_and_the_next_spreads_from_it():
    times = polar_pmd.FrameTimes()
    polar_pmd.decode(_acc_frame(T0), ACC_52HZ, times)
    with pytest.raises(DecodeError, match=f"ACC frame \\(type 0x01\\) stamped {T0 - 1} ns is not later"):
        polar_pmd.decode(_acc_frame(T0 - 1), ACC_52HZ, times)  # the strap's clock was set back
    after = polar_pmd.decode(_acc_frame(T0 - 1 + 80_000_000), ACC_52HZ, times)  # as the SDK: from the refused
    assert (after.device_time - (T0 - 1)).tolist() == [20_000_000, 40_000_000, 60_000_000, 80_000_000]


def test_forgotten_frame_times_count_back_at_the_nominal_rate_again():
    times = polar_pmd.FrameTimes()
    polar_pmd.decode(_acc_frame(T0), ACC_52HZ, times)
    times.forget()  # a new connection, a stopped measurement, or a notification lost before decoding
    again = polar_pmd.decode(_acc_frame(T0 + 80_000_000), ACC_52HZ, times)
    assert (T0 + 80_000_000 - again.device_time).tolist() == [57_692_308, 38_461_538, 19_230_769, 0]


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
        draw(st.lists(st.tuples(values, values, values, values), min_size=n, max_size=n)), dtype=np.int64
    )
    return frame_type, bits, samples, draw(st.integers(1, 255)), draw(st.integers(10**9, 2**63 - 1))


@settings(max_examples=300, deadline=None)
@given(frames(), st.sampled_from([MeasurementType.ACC, MeasurementType.GYRO, MeasurementType.MAG]))
def test_round_trip(frame, measurement):
    frame_type, bits, samples, block_samples, timestamp_ns = frame
    if measurement == MeasurementType.GYRO and frame_type == 0x81:
        measurement = MeasurementType.ACC  # GYRO 0x81 carries float32 deltas (unsupported, tested below)
    if measurement == MeasurementType.MAG and not frame_type & 0x80:
        measurement = MeasurementType.ACC  # MAG frames are compressed only (tested above)
    samples = samples[:, : 4 if (measurement, frame_type) == (MeasurementType.MAG, 0x81) else 3]
    packet = polar_pmd.encode_frame(measurement, timestamp_ns, samples, frame_type, bits, block_samples)
    decoded = polar_pmd.decode(packet, {measurement: PmdSettings(200, resolution_bits=bits)})
    np.testing.assert_array_equal(decoded.extra["raw"], samples)
    assert decoded.device_time[-1] == timestamp_ns and np.all(np.diff(decoded.device_time) == 5_000_000)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**63 - 2), st.integers(1, 2**63 - 1), st.integers(1, 300))
def test_spread_times_are_the_exact_even_spacing_rounded_to_the_ns(previous_ns, span_ns, count):
    last_ns = min(previous_ns + span_ns, 2**63 - 1)
    times = polar_pmd.FrameTimes()
    times.advance(polar_pmd.FrameHeader(MeasurementType.ACC, previous_ns, 1))
    frame = _acc_frame(last_ns, count)
    decoded = polar_pmd.decode(frame, {MeasurementType.ACC: PmdSettings(200, resolution_bits=16)}, times)
    exact = [previous_ns + Fraction(k * (last_ns - previous_ns), count) for k in range(1, count + 1)]
    assert decoded.device_time[-1] == last_ns
    assert all(abs(t - e) <= Fraction(1, 2) for t, e in zip(decoded.device_time.tolist(), exact, strict=True))
