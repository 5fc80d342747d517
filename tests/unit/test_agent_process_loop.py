"""The agent's processing loop sends each item's output on as soon as it is made: a backlog of input
batches never holds the stream (subscribers, sinks) behind the last batch of the take."""

import asyncio
import gc

import numpy as np

from kinefuse.agent import Agent
from kinefuse.config import load_config
from kinefuse.inprocess import write_config
from kinefuse.plugin_loader import load_plugins
from kinefuse.types import DeviceAdded, DeviceInfo, DeviceKind, imu_batch

BATCHES = 40


class Watcher:
    """Notes, as each batch comes in, how many items the subscriber already holds."""

    def __init__(self, subscription):
        self.subscription, self.held = subscription, []

    def process(self, batch) -> list:
        self.held.append(len(self.subscription.channel))
        return []


def test_each_batch_reaches_subscribers_before_the_next_is_processed(tmp_path):
    registry = load_plugins(entry_points=False)
    tables = {
        "daemon": {"sinks": []},
        "storage": {"path": str(tmp_path / "k.db")},
        "sources": [{"id": "synth", "type": "synthetic", "scenario": "walk"}],
    }
    config = load_config(write_config(tmp_path / "config.toml", tables), registry)

    async def run() -> list[int]:
        agent = Agent(config, registry)
        subscription = agent.subscribe(10 * BATCHES)
        watcher = Watcher(subscription)
        agent.processors, agent.processor_errors = {"watcher": watcher}, {"watcher": 0}
        # the whole backlog is in the ingest channel before the loop takes any of it: one take
        agent.ingest.put(DeviceAdded("synth", DeviceInfo("strap", DeviceKind.IMU, 1000.0)))
        for k in range(BATCHES):
            agent.ingest.put(imu_batch("synth", "strap", [k], [10 * k], [10_000_000 * (k + 1)],
                                       np.zeros((1, 3)), np.zeros((1, 3))))  # fmt: skip
        agent.ingest.close()
        await agent._process_loop()
        return watcher.held

    held = asyncio.run(run())
    # the declaration, then each earlier batch (aligned) is already out when batch k is processed
    assert held == [1 + k for k in range(BATCHES)]


def test_a_run_freezes_what_existed_at_its_start_and_leaves_the_collector_as_it_found_it(tmp_path):
    # streaming, a full collection skips what the agent started with (it paused the stream 35-65 ms);
    # an agent run inside a longer process (tests, benches, analyze) unfreezes it again at its end
    registry = load_plugins(entry_points=False)
    tables = {
        "storage": {"path": str(tmp_path / "k.db")},
        "status": {"socket_path": str(tmp_path / "k.sock")},
        "sources": [
            {
                "id": "synth",
                "type": "synthetic",
                "scenario": "walk",
                "realtime": False,
                "loop": False,
                "chunk_s": 1.0,
            }
        ],  # fmt: skip
    }
    config = load_config(write_config(tmp_path / "config.toml", tables), registry)
    frozen = []

    async def run() -> int:
        agent = Agent(config, registry)
        task = asyncio.create_task(agent.run(1.0))
        await agent.ready.wait()
        frozen.append(gc.get_freeze_count())
        return await task

    assert asyncio.run(run()) == 0
    assert frozen[0] > 10_000 and gc.get_freeze_count() == 0
