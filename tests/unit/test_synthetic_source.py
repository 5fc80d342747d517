"""The synthetic source streams a scenario: every device on its own clock and link, reproducible by seed."""

import asyncio
import contextlib
import textwrap

import numpy as np

from kinefuse.builtin.sources.synthetic import SCHEMA, SyntheticSource
from kinefuse.configschema import defaults
from kinefuse.types import ImuBatch, KeypointBatch

DEFAULTS = defaults(SCHEMA)
SMALL = """
[scenario]
name = "small"
duration_s = 4.0
[motion]
kind = "walk"
treadmill = true
[[cameras]]
name = "cam0"
position = [0.0, -4.0, 1.0]
target = [0.0, 0.0, 0.9]
clock_offset_s = 100.0
[[imus]]
name = "imu_a"
segment = "left_shank"
clock_offset_s = 5.0
clock_skew_ppm = 100.0
[imus.link]
batch = 5
loss = {loss}
latency_min_s = 0.01
"""


class Collector:
    source_id = "synth"

    def __init__(self):
        self.devices, self.batches = [], []

    def add_device(self, device):
        self.devices.append(device)

    def emit(self, batch):
        self.batches.append(batch)

    async def wait_for_room(self):
        await asyncio.sleep(0)  # nothing downstream to wait for

    def decode_error(self, message):
        raise AssertionError(message)


def run_source(options, timeout_s=30.0):
    ctx = Collector()
    source = SyntheticSource({**DEFAULTS, **options}, "synth")

    async def scenario():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(source.run(ctx), timeout_s)

    asyncio.run(scenario())
    return ctx


def small(tmp_path, loss=0.0):
    path = tmp_path / "small.toml"
    path.write_text(textwrap.dedent(SMALL.format(loss=loss)))
    return str(path)


def test_fast_mode_delivers_the_whole_scenario_then_finishes(tmp_path):
    ctx = run_source({"scenario": small(tmp_path), "realtime": False, "loop": False})
    assert {d.device_id for d in ctx.devices} == {"imu_a", "cam0"}
    imu = [b for b in ctx.batches if isinstance(b, ImuBatch)]
    frames = [b for b in ctx.batches if isinstance(b, KeypointBatch)]
    seq = np.concatenate([b.seq for b in imu])
    assert np.array_equal(seq, np.arange(400))  # 4 s at 100 Hz, nothing lost
    assert {len(b) for b in imu} == {5}  # one batch per BLE notification of five samples
    ticks = np.concatenate([b.device_time for b in imu])
    assert ticks[0] == 5_000_000 and abs(np.diff(ticks).mean() - 10_001) < 1  # 100 ppm fast
    assert sum(len(b) for b in frames) <= 120 and frames[0].keypoints.shape[1:] == (17, 3)
    host = np.concatenate([b.host_ns for b in imu])
    assert (np.diff(host) >= 0).all()  # arrivals in order, on the simulated host clock


def test_lost_notifications_leave_sequence_gaps(tmp_path):
    ctx = run_source({"scenario": small(tmp_path, loss=0.2), "realtime": False, "loop": False})
    seq = np.concatenate([b.seq for b in ctx.batches if isinstance(b, ImuBatch)])
    assert 0.1 < 1 - len(seq) / 400 < 0.3


def test_same_seed_same_data(tmp_path):
    path = small(tmp_path)
    a = run_source({"scenario": path, "realtime": False, "loop": False, "seed": 7}).batches
    b = run_source({"scenario": path, "realtime": False, "loop": False, "seed": 7}).batches
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.device_time, y.device_time)
        assert np.array_equal(*((x.acc, y.acc) if isinstance(x, ImuBatch) else (x.keypoints, y.keypoints)),
                              equal_nan=True)  # fmt: skip


def test_realtime_mode_keeps_pace_with_the_clock(tmp_path):
    ctx = run_source({"scenario": small(tmp_path)}, timeout_s=1.5)
    count = sum(len(b) for b in ctx.batches if isinstance(b, ImuBatch))
    assert 120 <= count <= 150  # 100 Hz for 1.5 s, less what is still in flight


def test_the_default_scenario_is_the_packaged_walk():
    source = SyntheticSource({**DEFAULTS, "chunk_s": 1.0}, "synth")
    assert source.simulation.scenario.name == "walk"
    assert len(source.simulation.imus) == 4 and len(source.simulation.cameras) == 2
