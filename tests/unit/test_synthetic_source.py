"""The synthetic walking source: devices on their own clocks, plausible signals, reproducible by seed."""

import asyncio
import contextlib

import numpy as np
import pytest

from kinefuse.builtin.synthetic import SCHEMA, SyntheticSource
from kinefuse.builtin.walking_model import GRAVITY, Walker
from kinefuse.configschema import REQUIRED
from kinefuse.types import ImuBatch, KeypointBatch

DEFAULTS = {key: field.default for key, field in SCHEMA.items() if field.default is not REQUIRED}


class Collector:
    source_id = "synth"

    def __init__(self):
        self.devices, self.batches = [], []

    def add_device(self, device):
        self.devices.append(device)

    def emit(self, batch):
        self.batches.append(batch)

    def decode_error(self, message):
        raise AssertionError(message)


def run_for(options, seconds):
    ctx = Collector()
    source = SyntheticSource({**DEFAULTS, **options}, "synth")

    async def scenario():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(source.run(ctx), seconds)

    asyncio.run(scenario())
    return ctx


def test_fast_mode_emits_every_device_with_its_own_clock():
    ctx = run_for({"realtime": False}, 0.3)
    imus = [b for b in ctx.batches if isinstance(b, ImuBatch)]
    frames = [b for b in ctx.batches if isinstance(b, KeypointBatch)]
    assert {b.device_id for b in imus} == {"imu_pelvis", "imu_left_shank", "imu_right_shank", "imu_trunk"}
    assert {b.device_id for b in frames} == {"cam0"}
    assert frames[0].keypoints.shape[1:] == (17, 3)
    first_ticks = {b.device_id: int(b.device_time[0]) for b in ctx.batches if b.seq[0] == 0}
    assert len(set(first_ticks.values())) == len(first_ticks)  # each device booted at its own time
    seq = np.concatenate([b.seq for b in imus if b.device_id == "imu_pelvis"])
    assert np.array_equal(seq, np.arange(len(seq)))  # no packet loss by default


def test_same_seed_same_data():
    a = run_for({"realtime": False, "seed": 7}, 0.2).batches[:10]
    b = run_for({"realtime": False, "seed": 7}, 0.2).batches[:10]
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.device_time, y.device_time)
        data = (x.acc, y.acc) if isinstance(x, ImuBatch) else (x.keypoints, y.keypoints)
        assert np.array_equal(*data)


def test_packet_loss_leaves_sequence_gaps():
    ctx = run_for({"realtime": False, "packet_loss": 0.2, "straps": 1, "cameras": 0}, 0.3)
    seq = np.concatenate([b.seq for b in ctx.batches])
    assert 0.1 < 1 - len(seq) / (seq[-1] + 1) < 0.3


def test_realtime_mode_keeps_pace_with_the_clock():
    ctx = run_for({"straps": 1, "cameras": 0}, 1.05)
    count = sum(len(b) for b in ctx.batches)
    assert 90 <= count <= 105


@pytest.mark.parametrize("segment", ["pelvis", "left_shank", "right_thigh", "trunk"])
def test_gyro_is_the_derivative_of_the_segment_angle(segment):
    walker = Walker()
    t = np.linspace(0, 3, 3001)
    angle, rate = walker.segment_angle(segment, t)
    assert np.allclose(np.gradient(angle, t)[5:-5], rate[5:-5], atol=1e-3)
    acc, gyr, _ = walker.imu(segment, t)
    assert np.allclose(gyr[:, 2], rate)
    assert abs(np.linalg.norm(acc, axis=1).mean() - GRAVITY) < 0.1
