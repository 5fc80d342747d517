"""Strap drivers turn notifications into samples: sequence numbers that show gaps, device time that runs on
across reboots, and Polar's separate accelerometer and gyroscope frames paired by time."""

import numpy as np
import pytest

from kinefuse_plugins.ble_imu.protocols import open_profile, polar_pmd, witmotion
from kinefuse_plugins.ble_imu.protocols.common import STANDARD_GRAVITY
from kinefuse_plugins.ble_imu.straps import (
    OpenProfileStrap,
    PolarStrap,
    WitMotionStrap,
    make_strap,
    protocol_of,
)

M = polar_pmd.MeasurementType


def test_witmotion_counts_samples_across_batched_notifications():
    strap = WitMotionStrap(100.0)
    two = witmotion.encode([[0, 0, 1], [0, 0, 1]], [[0, 0, 90], [0, 0, 90]], [[0, 0, 0], [0, 0, 0]])
    seq, device_time, host_ns, acc, gyr, mag = strap.samples(two, 5)
    seq2, *_ = strap.samples(two[:20], 6)
    assert (
        list(seq) == [0, 1] and list(seq2) == [2] and list(device_time) == [0, 1] and list(host_ns) == [5, 5]
    )
    np.testing.assert_allclose(acc[:, 2], STANDARD_GRAVITY, rtol=1e-3)
    np.testing.assert_allclose(gyr[:, 2], np.pi / 2, rtol=1e-3)


def test_witmotion_refuses_a_rate_it_does_not_offer():
    with pytest.raises(ValueError, match="not offered"):
        make_strap("witmotion", 300.0)


def _open_packet(sequence, first_ticks, clock_restarted=False, count=4, period=10_000):
    acc = np.tile([0.0, 0.0, 1.0], (count, 1))
    return open_profile.encode(
        sequence, first_ticks, period, acc, np.zeros((count, 3)), clock_restarted=clock_restarted
    )


def test_open_profile_unwraps_its_clock_and_runs_on_after_a_reboot():
    strap = OpenProfileStrap(100.0)
    strap.clock_hz = 1_000_000  # as its info characteristic would say: 1 MHz ticks, 100 Hz samples
    _, first, *_ = strap.samples(_open_packet(0, 2**32 - 20_000), 0)
    seq, wrapped, *_ = strap.samples(_open_packet(1, 20_000), 40_000_000)  # the 32-bit counter wrapped
    assert wrapped[0] == first[-1] + 10_000 and wrapped[0] > 2**32
    # the strap reboots: its clock starts again near zero; 1 s of host time later, device time continues
    seq2, rebooted, *_ = strap.samples(_open_packet(0, 500, clock_restarted=True), 1_040_000_000)
    assert abs((rebooted[0] - wrapped[-1]) - 1_000_000) < 20_000
    assert seq2[0] - seq[-1] == pytest.approx(100, abs=2)  # about 1 s of samples missing: a visible gap


def _polar_strap(rate=52):
    strap = PolarStrap(float(rate))
    strap.settings = {m: polar_pmd.PmdSettings(rate) for m in PolarStrap.MEASUREMENTS}
    return strap


def _frame(measurement, last_ns, values):
    return polar_pmd.encode_frame(measurement, last_ns, np.asarray(values), frame_type=1)


def test_polar_pairs_accelerometer_and_gyroscope_by_time_and_counts_the_unpaired():
    strap, period = _polar_strap(), round(1e9 / 52)
    t0 = 800_000_000_000_000_000
    acc = [[0, 0, 1000]] * 4  # mG
    gyr = [[0, 0, 90]] * 4  # deg/s
    nothing = strap.samples(_frame(M.ACC, t0 + 3 * period, acc), 1)
    assert len(nothing[0]) == 0  # no gyroscope yet: the accelerometer samples wait
    # the gyroscope's frame is stamped 2 ms later and lost its first sample
    seq, times, _, a, g, _ = strap.samples(_frame(M.GYRO, t0 + 3 * period + 2_000_000, gyr[:3]), 2)
    assert list(seq) == [0, 1, 2] and times[0] == t0 + period  # the first accelerometer sample had no partner
    np.testing.assert_allclose(a[:, 2], STANDARD_GRAVITY)
    np.testing.assert_allclose(g[:, 2], np.pi / 2)
    assert strap.dropped == 1


def test_protocols_are_recognised_by_their_advertised_service():
    assert protocol_of([witmotion.SERVICE_UUID.upper()]) == "witmotion"
    assert protocol_of(["0000180f-0000-1000-8000-00805f9b34fb", open_profile.SERVICE_UUID]) == "open"
    assert protocol_of(["0000180f-0000-1000-8000-00805f9b34fb"]) is None


def test_open_profile_magnetometer_reaches_the_samples_in_microtesla():
    strap = OpenProfileStrap(100.0)
    strap.clock_hz = 1_000_000
    field = [[20.0, -5.0, 40.0]] * 2
    packet = open_profile.encode(
        0, 1000, 10_000, np.tile([0.0, 0.0, 1.0], (2, 1)), np.zeros((2, 3)), mag_ut=field
    )
    *_, mag = strap.samples(packet, 0)
    np.testing.assert_allclose(mag, field, atol=1 / 16)


def test_polar_spreads_a_frame_over_the_time_since_its_stream_s_previous_one_until_a_packet_is_lost():
    strap, real_period = _polar_strap(52), 20_000_000  # asked for 52 Hz; the strap's clock says 50 Hz
    t0, acc, gyr = 800_000_000_000_000_000, [[0, 0, 1000]] * 4, [[0, 0, 90]] * 4

    def both(last_ns):
        strap.samples(_frame(M.ACC, last_ns, acc), 1)
        return strap.samples(_frame(M.GYRO, last_ns, gyr), 1)[1]  # device times of the pairs

    first = both(t0)
    assert list(t0 - first) == [57_692_308, 38_461_538, 19_230_769, 0]  # no previous frame: nominal 52 Hz
    spread = both(t0 + 4 * real_period)
    assert list(spread - t0) == [20_000_000, 40_000_000, 60_000_000, 80_000_000]  # the strap's own 50 Hz
    strap.packet_lost()  # a notification dropped before decoding: the next frame's predecessor is unknown
    after_loss = both(t0 + 12 * real_period)
    assert list(t0 + 12 * real_period - after_loss) == [57_692_308, 38_461_538, 19_230_769, 0]
