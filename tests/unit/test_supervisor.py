"""The supervisor restarts a failing source with backoff inside its budget, then marks it failed."""

import asyncio
import random

import numpy as np

from kinefuse.config import ComponentConfig
from kinefuse.interfaces import SourceSpec
from kinefuse.supervisor import RestartPolicy, SourceState, SourceSupervisor
from kinefuse.types import DeviceAdded, DeviceInfo, DeviceKind, imu_batch

IMU = DeviceInfo("imu0", DeviceKind.IMU, 1e6)


class FlakySource:
    """Emits one good batch, one malformed batch, then raises."""

    instances = 0

    def __init__(self, options, source_id):
        FlakySource.instances += 1
        self.source_id = source_id

    async def run(self, ctx):
        ctx.add_device(IMU)
        ctx.emit(
            imu_batch(self.source_id, "imu0", [0, 1], [0, 10], [5, 5], np.zeros((2, 3)), np.zeros((2, 3)))
        )
        ctx.emit(imu_batch(self.source_id, "imu0", [2], [20], [6], np.full((1, 3), np.nan), np.zeros((1, 3))))
        await asyncio.sleep(0)
        raise OSError("device vanished")


def make_supervisor(budget, items):
    FlakySource.instances = 0
    policy = RestartPolicy(budget, window_s=60, initial_s=0.01, max_s=0.02, rng=random.Random(1))
    spec = SourceSpec("flaky", FlakySource, {}, "test source")
    return SourceSupervisor(ComponentConfig("f", "flaky", {}), spec, items.append, policy)


def test_restarts_within_budget_then_fails_with_reason():
    items = []
    supervisor = make_supervisor(budget=2, items=items)
    asyncio.run(asyncio.wait_for(supervisor.run(), 5))
    assert supervisor.state is SourceState.FAILED
    assert "restart budget spent" in supervisor.reason and "OSError: device vanished" in supervisor.reason
    assert FlakySource.instances == 3  # a fresh instance for every start
    assert supervisor.restarts == 2
    assert supervisor.received == 6 and supervisor.decode_errors == 3
    declarations = [i for i in items if isinstance(i, DeviceAdded)]
    assert len(declarations) == 1  # redeclaring the same device after a restart is not news


def test_backoff_doubles_with_jitter_and_caps():
    policy = RestartPolicy(10, window_s=1000, initial_s=1.0, max_s=5.0, rng=random.Random(0))
    delays = [policy.next_delay(i) for i in range(6)]
    for attempt, delay in enumerate(delays):
        base = min(5.0, 2.0**attempt)
        assert 0.5 * base <= delay < 1.5 * base


def test_budget_refills_after_the_window():
    policy = RestartPolicy(1, window_s=1.0, initial_s=0.0, max_s=0.0, rng=random.Random(0))
    assert policy.next_delay(0) is not None
    assert policy.next_delay(500_000_000) is None
    assert policy.next_delay(2_000_000_000) is not None


def test_cancel_marks_stopped():
    class Forever:
        def __init__(self, options, source_id):
            pass

        async def run(self, ctx):
            await asyncio.sleep(3600)

    async def scenario():
        spec = SourceSpec("forever", Forever, {}, "")
        policy = RestartPolicy(1, 60, 0.0, 0.0, random.Random(0))
        supervisor = SourceSupervisor(ComponentConfig("x", "forever", {}), spec, lambda item: None, policy)
        task = asyncio.create_task(supervisor.run())
        await asyncio.sleep(0.01)
        assert supervisor.state is SourceState.RUNNING
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return supervisor.state

    assert asyncio.run(scenario()) is SourceState.STOPPED
