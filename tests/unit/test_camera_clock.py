"""Cameras with a declared frame rate: the aligner regularises their jittered stamps onto the frame grid."""

import numpy as np
import pytest

from kinefuse._native import clock_map
from kinefuse.clock import ClockAligner, FrameGrid, frame_period_ticks
from kinefuse.types import DeviceInfo, DeviceKind, keypoint_batch

HZ, FPS = 90_000.0, 30.0
PERIOD = HZ / FPS
CAMERA = DeviceInfo("cam-0", DeviceKind.CAMERA, clock_hz=HZ, keypoint_set="coco17", meta={"fps": FPS})


def _stream(n=1800, jitter_s=0.003, drop=0.02, seed=1, skew=40e-6):
    """``n`` frames at 30 fps: true times, jittered device stamps, arrivals 25 ms (+ exp 1 ms) later."""
    rng = np.random.default_rng(seed)
    seq = np.arange(n)
    seq = seq[rng.random(n) >= drop]
    true_s = seq / FPS
    ticks = np.floor((5.0 + (true_s + rng.normal(0.0, jitter_s, len(seq))) * (1 + skew)) * HZ).astype(
        np.int64
    )
    host_ns = 10**9 + np.round((true_s + 0.025 + rng.exponential(0.001, len(seq))) * 1e9).astype(np.int64)
    return seq, ticks, host_ns, true_s


def _aligned(device, seq, ticks, host_ns, chunk=15):
    aligner = ClockAligner()
    aligner.add_device("cams", device)
    out = []
    for i in range(0, len(seq), chunk):
        sl = slice(i, i + chunk)
        batch = keypoint_batch(
            "cams", "cam-0", seq[sl], ticks[sl], host_ns[sl], "coco17", np.zeros((len(seq[sl]), 17, 3))
        )
        out.append(aligner.align(batch).time_ns)
    return aligner, np.concatenate(out)


def _p95_spread_ms(time_ns, true_s, after_s=10.0):
    keep = true_s >= after_s
    err = (time_ns[keep] - 10**9) / 1e6 - true_s[keep] * 1e3
    return float(np.percentile(np.abs(err - np.median(err)), 95))


def test_jittered_camera_stamps_come_out_with_the_jitter_removed():
    seq, ticks, host_ns, true_s = _stream()
    aligner, time_ns = _aligned(CAMERA, seq, ticks, host_ns)
    assert _p95_spread_ms(time_ns, true_s) < 1.5  # the stamps' own jitter: 1.96 * 3 ms
    assert aligner.fits()[("cams", "cam-0")]["clock_skew_ppm"] == pytest.approx(-40.0, abs=10.0)
    # without a declared frame rate the stamps are mapped as they are, and their jitter stays
    plain = DeviceInfo("cam-0", DeviceKind.CAMERA, clock_hz=HZ, keypoint_set="coco17")
    _, raw = _aligned(plain, seq, ticks, host_ns)
    assert _p95_spread_ms(raw, true_s) > 4.0
    mapper = clock_map.ClockMapper(HZ)
    assert np.array_equal(raw, mapper.update_batch(ticks.astype(np.float64), host_ns))


def test_only_devices_with_a_frame_rate_get_a_grid():
    assert frame_period_ticks(CAMERA) == PERIOD
    assert (
        frame_period_ticks(DeviceInfo("s", DeviceKind.IMU, 1e6, meta={"fps": 30.0, "rate_hz": 100.0})) is None
    )
    assert frame_period_ticks(DeviceInfo("c", DeviceKind.CAMERA, HZ, meta={"fps": 0.0})) is None
    assert frame_period_ticks(DeviceInfo("c", DeviceKind.CAMERA, HZ, meta={"fps": "x"})) is None


def test_a_drop_keeps_the_grid():
    grid = FrameGrid(PERIOD, clock_hz=HZ)
    seq = np.concatenate([np.arange(300), np.arange(330, 600)])  # 30 frames lost
    rng = np.random.default_rng(2)
    ticks = 1000.0 + seq * PERIOD + rng.normal(0.0, 0.003 * HZ, len(seq))
    out = grid.regularise(seq, ticks)
    truth = 1000.0 + seq * PERIOD
    after = seq >= 330  # the frames after the gap are on the grid they would have had without it
    assert np.percentile(np.abs(out[after] - truth[after]), 95) < 0.0015 * HZ
    assert np.std(out[after] - truth[after]) < np.std(ticks[after] - truth[after]) / 3
    assert grid.restarts == 0


def test_a_wild_stamp_is_passed_through_and_not_learnt():
    grid = FrameGrid(PERIOD, clock_hz=HZ)
    seq = np.arange(200)
    ticks = 1000.0 + seq * PERIOD
    ticks[120] += 0.05 * HZ
    out = grid.regularise(seq, ticks)
    assert out[120] == ticks[120]
    keep = seq >= 16
    keep[120] = False
    assert np.abs(out[keep] - ticks[keep]).max() < 1.0
    assert grid.restarts == 0


@pytest.mark.parametrize("seq_restarts", [True, False])
def test_a_restart_with_a_new_time_base_is_followed(seq_restarts):
    grid = FrameGrid(PERIOD, clock_hz=HZ)
    rng = np.random.default_rng(3)
    first = np.arange(300)
    second = np.arange(600) if seq_restarts else np.arange(300, 900)
    base2 = 7e6 - (second[0] * PERIOD * 1.001)  # another time base and a rate 0.1 % off
    ticks1 = 1000.0 + first * PERIOD + rng.normal(0.0, 0.002 * HZ, 300)
    ticks2 = base2 + second * PERIOD * 1.001 + rng.normal(0.0, 0.002 * HZ, 600)
    out = grid.regularise(np.concatenate([first, second]), np.concatenate([ticks1, ticks2]))[300:]
    assert grid.restarts == 1
    truth2 = base2 + second * PERIOD * 1.001
    assert np.abs(out - truth2).max() < 0.01 * HZ  # never the old line's times
    settled = np.abs(out[150:] - truth2[150:])  # the new grid, jitter removed
    assert np.percentile(settled, 95) < 0.0015 * HZ and settled.max() < 0.003 * HZ
    assert np.std(out[150:] - truth2[150:]) < np.std(ticks2[150:] - truth2[150:]) / 2


def test_re_adding_a_camera_keeps_its_grid_unless_its_rate_changed():
    aligner = ClockAligner()
    aligner.add_device("cams", CAMERA)
    grid = aligner._grids[("cams", "cam-0")]
    aligner.add_device("cams", CAMERA)
    assert aligner._grids[("cams", "cam-0")] is grid
    aligner.add_device("cams", DeviceInfo("cam-0", DeviceKind.CAMERA, HZ, meta={"fps": 60.0}))
    assert aligner._grids[("cams", "cam-0")] is not grid
