import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kinefuse_plugins.ble_imu.protocols import open_profile
from kinefuse_plugins.ble_imu.protocols.common import STANDARD_GRAVITY, DecodeError
from kinefuse_plugins.ble_imu.protocols.open_profile import Command, StrapInfo


def crc16_ccitt_false(data: bytes) -> int:
    """Bit by bit, as a firmware author would write it: poly 0x1021, init 0xFFFF, MSB first."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = (crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def test_crc_is_ccitt_false():
    assert crc16_ccitt_false(b"123456789") == 0x29B1  # the catalogue's check value


# version 1, flags 0, sequence 0x1234, first sample at tick 0xfffffff0, 2 samples 328 ticks apart, then
# acc (2048, 0, -2048) gyr (164, 0, -16400); acc (0, 1024, 0) gyr (0, 0, 0)
BODY = bytes.fromhex(
    "01 00 3412 f0ffffff 02 4801 0008 0000 00f8 a400 0000 f0bf 0000 0004 0000 0000 0000 0000"
)
PACKET = BODY + crc16_ccitt_false(BODY).to_bytes(2, "little")


def test_packet_known_answer():
    decoded = open_profile.decode(PACKET, clock_hz=32768.0)
    g = STANDARD_GRAVITY
    np.testing.assert_allclose(decoded.acc, [[g, 0, -g], [0, g / 2, 0]])
    np.testing.assert_allclose(decoded.gyr, np.deg2rad([[10.0, 0, -1000.0], [0, 0, 0]]))
    assert decoded.seq == 0x1234 and decoded.clock_hz == 32768.0
    assert decoded.device_time.tolist() == [0xFFFFFFF0, 0xFFFFFFF0 + 328]  # continues past 2**32 in a packet


def test_timestamp_unwraps_next_to_the_previous_packet():
    decoded = open_profile.decode(PACKET, 32768.0, previous_ticks=5 * 2**32 + 0xFFFFFF00)
    assert decoded.device_time[0] == 5 * 2**32 + 0xFFFFFFF0
    wrapped = open_profile.encode(0x1235, 2**32 + 10, 328, np.zeros((1, 3)), np.zeros((1, 3)))
    assert (
        open_profile.decode(wrapped, 32768.0, previous_ticks=5 * 2**32 + 0xFFFFFFF0).device_time[0]
        == 6 * 2**32 + 10
    )
    assert open_profile.packets_lost(0xFFFF, 0x0001) == 1 and open_profile.packets_lost(7, 8) == 0


def test_clock_restart_is_not_unwrapped():
    packet = open_profile.encode(0, 100, 328, np.zeros((1, 3)), np.zeros((1, 3)), clock_restarted=True)
    decoded = open_profile.decode(packet, 32768.0, previous_ticks=10**12)
    assert decoded.device_time.tolist() == [100] and decoded.extra["clock_restarted"]


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (PACKET[:20], "make 37 bytes, got 20"),
        (PACKET[:-1] + bytes([PACKET[-1] ^ 1]), "CRC"),
        (b"\x02" + PACKET[1:], "version 2"),
        (PACKET[:1] + b"\x80" + PACKET[2:], "reserved flag bits 0x80"),
        (PACKET[:8] + b"\x00" + PACKET[9:], "sample count 0"),
        (PACKET[:4], "needs 13 bytes"),
    ],
)
def test_malformed_packets_say_what_and_where(packet, message):
    with pytest.raises(DecodeError, match=message):
        open_profile.decode(packet, 32768.0)


def test_info_and_commands_round_trip():
    info = StrapInfo(
        clock_hz=32768, sample_rate_hz=104.0, acc_range_g=16, gyr_range_dps=2000, mag_range_ut=4900
    )
    assert open_profile.decode_info(open_profile.encode_info(info)) == info
    assert open_profile.encode_command(Command.SET_RATE, 0.2) == bytes.fromhex("03 c8000000")
    assert open_profile.parse_command(bytes.fromhex("03 c8000000")) == (Command.SET_RATE, 0.2)
    assert open_profile.parse_command(b"\x01") == (Command.START, None)
    with pytest.raises(DecodeError, match="mag flag"):
        open_profile.decode_info(b"\x01\x01" + open_profile.encode_info(info)[2:-2] + b"\x00\x00")


vectors = hnp.arrays(np.int16, st.tuples(st.integers(1, 20), st.just(3)))


@settings(max_examples=200, deadline=None)
@given(
    vectors,
    vectors,
    st.booleans(),
    st.integers(0, 2**16 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(1, 2**16 - 1),
)
def test_round_trip(acc_raw, gyr_raw, with_mag, sequence, first_ticks, period):
    n = min(len(acc_raw), len(gyr_raw))
    acc_g, gyr_dps = acc_raw[:n] / 2048.0, gyr_raw[:n] / 16.4
    mag_ut = acc_raw[:n] / 16.0 if with_mag else None
    decoded = open_profile.decode(
        open_profile.encode(sequence, first_ticks, period, acc_g, gyr_dps, mag_ut), 1e6
    )
    np.testing.assert_array_equal(decoded.acc, acc_raw[:n] * (STANDARD_GRAVITY / 2048.0))
    np.testing.assert_allclose(decoded.gyr, np.deg2rad(gyr_dps), rtol=1e-12)
    assert ("mag_ut" in decoded.extra) == with_mag and decoded.seq == sequence
    assert decoded.device_time.tolist() == [first_ticks + i * period for i in range(n)]
