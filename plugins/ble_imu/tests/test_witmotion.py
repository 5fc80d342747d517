import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kinefuse_plugins.ble_imu.protocols import witmotion
from kinefuse_plugins.ble_imu.protocols.common import STANDARD_GRAVITY, DecodeError, hexdump

# ax=2048, ay=0, az=-2048, wx=16384, wy=-16384, wz=1, roll=16384, pitch=8192, yaw=-32768 (int16 LE)
FRAME = bytes.fromhex("55 61 0008 0000 00f8 0040 00c0 0100 0040 0020 0080")


def test_frame_known_answer():
    decoded = witmotion.decode(FRAME)
    np.testing.assert_allclose(decoded.acc, [[STANDARD_GRAVITY, 0.0, -STANDARD_GRAVITY]])  # +-1 g
    np.testing.assert_allclose(decoded.gyr, np.deg2rad([[1000.0, -1000.0, 2000 / 32768]]))
    np.testing.assert_allclose(decoded.extra["angle_deg"], [[90.0, 45.0, -180.0]])
    assert decoded.device_time is None and decoded.clock_hz is None and decoded.seq is None


def test_two_frames_in_one_notification():
    decoded = witmotion.decode(FRAME + FRAME)
    assert decoded.acc.shape == (2, 3) and np.array_equal(decoded.acc[0], decoded.acc[1])


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (FRAME[:19], "whole number of 20-byte frames"),
        (b"", "whole number"),
        (FRAME + bytes.fromhex("55 71") + FRAME[2:], "header 55 61 at offset 20"),
    ],
)
def test_malformed_notifications_say_what_and_where(packet, message):
    with pytest.raises(DecodeError, match=message):
        witmotion.decode(packet)


def test_rate_commands_unlock_set_save():
    assert witmotion.rate_commands(100) == [
        bytes.fromhex("ff aa 69 88 b5"),
        bytes.fromhex("ff aa 03 09 00"),
        bytes.fromhex("ff aa 00 00 00"),
    ]
    assert witmotion.rate_commands(0.2)[1] == bytes.fromhex("ff aa 03 01 00")
    assert witmotion.rate_commands(200)[1] == bytes.fromhex("ff aa 03 0b 00")
    with pytest.raises(ValueError, match="not offered"):
        witmotion.rate_commands(60)


@pytest.mark.parametrize("hz", sorted(witmotion.RATE_CODES.values()))
def test_parse_rate_command_inverts_rate_commands(hz):
    unlock, set_rate, save = witmotion.rate_commands(hz)
    assert witmotion.parse_rate_command(set_rate) == hz
    assert witmotion.parse_rate_command(unlock) is None and witmotion.parse_rate_command(save) is None


def test_hexdump_shows_bytes_and_what_it_left_out():
    assert hexdump(b"\x55\x61\x00") == "55 61 00"
    assert hexdump(bytes(70), limit=2) == "00 00 ... (+68 bytes)"


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.int16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=8).map(lambda s: (s[0], 9))
    )
)
def test_round_trip(raw):
    acc_g, gyr_dps, angle_deg = (
        raw[:, k : k + 3] / 32768.0 * full for k, full in ((0, 16), (3, 2000), (6, 180))
    )
    packet = witmotion.encode(acc_g, gyr_dps, angle_deg)
    assert len(packet) == 20 * len(raw)
    decoded = witmotion.decode(packet)
    np.testing.assert_array_equal(decoded.acc, acc_g * STANDARD_GRAVITY)
    np.testing.assert_allclose(decoded.gyr, np.deg2rad(gyr_dps), rtol=1e-15)
    np.testing.assert_array_equal(decoded.extra["angle_deg"], angle_deg)


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=True))
def test_rate_commands_reject_what_they_cannot_set(hz):
    if hz in witmotion.RATE_CODES.values():
        assert witmotion.parse_rate_command(witmotion.rate_commands(hz)[1]) == hz
    else:
        with pytest.raises(ValueError):
            witmotion.rate_commands(hz)
