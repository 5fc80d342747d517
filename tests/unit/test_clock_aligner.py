import dataclasses

import numpy as np
import pytest

from kinefuse._native import clock_map
from kinefuse.clock import ClockAligner, UnknownDeviceError
from kinefuse.types import DeviceInfo, DeviceKind, imu_batch, keypoint_batch

STRAP = DeviceInfo("strap-1", DeviceKind.IMU, clock_hz=1e6)
CAMERA = DeviceInfo("cam-0", DeviceKind.CAMERA, clock_hz=90_000.0, keypoint_set="coco17")


def _imu(device_id="strap-1", source_id="ble", start=0, n=50, skew=30e-6):
    """``n`` samples at 100 Hz on a us clock, arriving 5 at a time 4 ms after the last of them."""
    seq = np.arange(start, start + n)
    device_time = 10_000_000 + seq * 10_000
    last_of_arrival = device_time + (4 - seq % 5) * 10_000
    host_ns = 2_000_000_000 + np.round(last_of_arrival * 1e3 * (1 + skew)).astype(np.int64) + 4_000_000
    zeros = np.zeros((n, 3))
    return imu_batch(source_id, device_id, seq, device_time, host_ns, zeros, zeros)


def _fed(aligner, batches=40):
    for i in range(batches):
        aligner.align(_imu(start=i * 50))
    return aligner


def test_align_fills_time_ns_like_the_kernel_and_leaves_the_rest():
    aligner = ClockAligner()
    aligner.add_device("ble", STRAP)
    reference = clock_map.ClockMapper(STRAP.clock_hz)
    for i in range(3):
        batch = _imu(start=i * 50)
        aligned = aligner.align(batch)
        expected = reference.update_batch(batch.device_time.astype(np.float64), batch.host_ns)
        assert aligned.time_ns.dtype == np.int64
        assert np.array_equal(aligned.time_ns, expected)
        assert batch.time_ns is None  # the input batch is not changed
        assert aligned.seq is batch.seq and aligned.acc is batch.acc
        assert (aligned.time_ns <= aligned.host_ns).all()


def test_keypoint_batches_are_aligned_too():
    aligner = ClockAligner()
    aligner.add_device("cams", CAMERA)
    ticks = np.arange(10) * 3000  # 30 fps on a 90 kHz clock
    batch = keypoint_batch(
        "cams", "cam-0", np.arange(10), ticks, 10**9 + ticks * 100_000 // 9, "coco17", np.zeros((10, 17, 3))
    )
    assert aligner.align(batch).time_ns.shape == (10,)


def test_unknown_device_names_source_and_device():
    aligner = ClockAligner()
    aligner.add_device("ble", STRAP)
    with pytest.raises(KeyError) as info:
        aligner.align(_imu(device_id="strap-9"))
    assert isinstance(info.value, UnknownDeviceError)
    assert "'ble'" in str(info.value) and "'strap-9'" in str(info.value) and "add_device" in str(info.value)
    with pytest.raises(UnknownDeviceError, match="'other'"):
        aligner.align(_imu(source_id="other"))


def test_fits_report_each_device():
    aligner = ClockAligner()
    aligner.add_device("ble", STRAP)
    aligner.add_device("cams", CAMERA)
    fits = _fed(aligner).fits()
    assert set(fits) == {("ble", "strap-1"), ("cams", "cam-0")}
    strap = fits[("ble", "strap-1")]
    assert strap["samples"] == 2000 and strap["rejected"] == 0 and strap["clamped"] == 0
    assert strap["clock_skew_ppm"] == pytest.approx(30.0, abs=0.5)
    # host = offset + (1 + skew) * device seconds, with this stream's offset 2 s + 4 ms latency
    assert strap["clock_offset_ns"] == pytest.approx(2_004_000_000, abs=20_000)
    assert isinstance(strap["clock_offset_ns"], int)
    assert fits[("cams", "cam-0")] == {
        "clock_offset_ns": None,
        "clock_skew_ppm": 0.0,
        "samples": 0,
        "rejected": 0,
        "clamped": 0,
    }


def test_re_adding_a_device_keeps_its_fit_unless_the_clock_changed():
    aligner = ClockAligner()
    aligner.add_device("ble", STRAP)
    _fed(aligner)
    aligner.add_device("ble", STRAP)  # the source restarted
    assert aligner.fits()[("ble", "strap-1")]["samples"] == 2000
    aligner.add_device("ble", DeviceInfo("strap-1", DeviceKind.IMU, clock_hz=32768.0))
    assert aligner.fits()[("ble", "strap-1")]["samples"] == 0


def test_a_device_whose_clock_started_again_gets_a_new_fit_and_a_late_batch_does_not():
    """Sequence numbers and device time both back at the start (a power-cycled strap, a restarted
    simulation): the old mapping would put the new samples 20 s in the past; a new fit maps them to their
    arrival. A batch only half a second back (a late notification) keeps the fit."""
    aligner = ClockAligner()
    aligner.add_device("ble", STRAP)
    _fed(aligner)  # 20 s of samples
    again = _imu(start=0)
    again = dataclasses.replace(again, host_ns=again.host_ns + 25_000_000_000)  # arriving 25 s later
    aligned = aligner.align(again)
    assert aligner.clock_restarts[("ble", "strap-1")] == 1
    assert np.all(np.abs(aligned.host_ns - aligned.time_ns) < 50_000_000)  # within the batching delay
    kept = ClockAligner()
    kept.add_device("ble", STRAP)
    _fed(kept, batches=4)
    kept.align(_imu(start=150))  # 0.5 s back: late, not restarted
    assert kept.clock_restarts == {}


def test_same_device_id_under_two_sources_is_two_devices():
    aligner = ClockAligner()
    aligner.add_device("ble", STRAP)
    aligner.add_device("replay", STRAP)
    _fed(aligner, batches=2)
    assert aligner.fits()[("replay", "strap-1")]["samples"] == 0


def test_mapper_options_reach_each_mapper():
    aligner = ClockAligner(forgetting=2.0)
    with pytest.raises(ValueError, match="forgetting"):
        aligner.add_device("ble", STRAP)
