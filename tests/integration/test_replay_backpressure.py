"""A replay faster than real time waits for a slow sink instead of dropping: with channels of 16 items and a
sink that takes 20 ms a write, every sample the synthetic source replays reaches both sinks (before
``SourceContext.wait_for_room`` a slow CI runner's disk lost motion items this way)."""

import asyncio

from kinefuse import hookimpl
from kinefuse.interfaces import SinkSpec
from kinefuse.types import ImuBatch

SCENARIO = """
[scenario]
name = "two_straps"
duration_s = 2.0
[motion]
kind = "walk"
treadmill = true
[[imus]]
name = "thigh"
segment = "left_thigh"
[[imus]]
name = "shank"
segment = "left_shank"
"""
CAPACITY = 16
WRITE_S = 0.02
RECEIVED: list[int] = []


class SlowSink:
    def __init__(self, config):
        RECEIVED.clear()

    async def start(self, session) -> None:
        pass

    async def write(self, items) -> None:
        await asyncio.sleep(WRITE_S)  # a slow disk
        RECEIVED.extend(len(item) for item in items if isinstance(item, ImuBatch))

    async def update_source_stats(self, source_stats) -> None:
        pass

    async def stop(self, source_stats) -> None:
        pass


class Plugin:
    @hookimpl
    def register_sinks(self):
        return [SinkSpec("slow", SlowSink, "takes 20 ms a write")]


def test_a_replay_waits_for_a_slow_sink_and_drops_nothing(kinefuse_pipeline, tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False}
    result = kinefuse_pipeline(
        sources=[source],
        plugins=[("slow_sink", Plugin())],
        duration_s=30.0,
        config_overrides={"daemon": {"sinks": ["sqlite", "slow"]},
                          "channels": {"ingest_capacity": CAPACITY, "sink_capacity": CAPACITY}},
    )  # fmt: skip
    assert result.exit_code == 0
    received = result.status["sources"]["synth"]["received"]
    assert received > 20 * CAPACITY  # enough batches to overflow the channels many times over
    assert all(channel["dropped"] == 0 for channel in result.status["channels"].values()), result.status
    assert result.status["sources"]["synth"]["dropped"] == 0
    assert sum(RECEIVED) == received == len(result.imu_samples()["seq"])
