"""A replay faster than real time waits for a slow sink instead of dropping: with channels of 16 items and a
sink that takes 20 ms a write, every sample the synthetic source replays reaches both sinks (before
``SourceContext.wait_for_room`` a slow CI runner's disk lost motion items this way); and so does every
value a processor makes, when one batch makes more than a channel holds and when its final flush does (the
accuracy suite's many metrics processors once lost 20 items so on a loaded machine)."""

import asyncio

from kinefuse import hookimpl
from kinefuse.interfaces import ProcessorSpec, SinkSpec
from kinefuse.types import DerivedValue, ImuBatch, Provenance, Quality, QualityLevel

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
VALUES: list[str] = []
MANY = 3 * CAPACITY  # values a processor makes of one batch, and at its flush
CHATTY_BATCHES = 20  # ... of its first this many batches (the slow sink takes 20 ms for each 16)


class SlowSink:
    def __init__(self, config):
        RECEIVED.clear()
        VALUES.clear()

    async def start(self, session) -> None:
        pass

    async def write(self, items) -> None:
        await asyncio.sleep(WRITE_S)  # a slow disk
        RECEIVED.extend(len(item) for item in items if isinstance(item, ImuBatch))
        VALUES.extend(item.name for item in items if isinstance(item, DerivedValue))

    async def update_source_stats(self, source_stats) -> None:
        pass

    async def stop(self, source_stats) -> None:
        pass


class Chatty:
    """Makes ``MANY`` values of each of its first ``CHATTY_BATCHES`` batches and ``MANY`` more at its flush."""

    def __init__(self, options, processor_id):
        self.processor_id, self.made, self.batches = processor_id, 0, 0

    def process(self, batch) -> list:
        self.batches += 1
        if self.batches > CHATTY_BATCHES:
            return []
        return self._values(batch.source_id, int(batch.time_ns[-1]) if batch.time_ns is not None else 0)

    def flush(self) -> list:
        return self._values("synth", 0)

    def _values(self, source_id: str, time_ns: int) -> list:
        self.made += MANY
        good = Quality(QualityLevel.GOOD)
        return [DerivedValue(f"chatty.{self.made - k}", time_ns, 1.0, "", Provenance.MEASURED, good, source_id,
                             None, self.processor_id) for k in range(MANY)]  # fmt: skip


class Plugin:
    @hookimpl
    def register_sinks(self):
        return [SinkSpec("slow", SlowSink, "takes 20 ms a write")]

    @hookimpl
    def register_processors(self):
        return [ProcessorSpec("chatty", Chatty, {}, "many values of each batch")]


def _replay(kinefuse_pipeline, tmp_path, processors=()):
    """The scenario replayed as fast as it goes into the sqlite sink and the slow one, channels of
    ``CAPACITY``; checked to stop cleanly with no channel dropping anything."""
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False}
    result = kinefuse_pipeline(
        sources=[source],
        processors=list(processors),
        plugins=[("slow_sink", Plugin())],
        duration_s=60.0,
        config_overrides={"daemon": {"sinks": ["sqlite", "slow"]},
                          "channels": {"ingest_capacity": CAPACITY, "sink_capacity": CAPACITY}},
    )  # fmt: skip
    assert result.exit_code == 0
    assert all(channel["dropped"] == 0 for channel in result.status["channels"].values()), result.status
    return result


def test_a_replay_waits_for_a_slow_sink_and_drops_nothing(kinefuse_pipeline, tmp_path):
    result = _replay(kinefuse_pipeline, tmp_path)
    received = result.status["sources"]["synth"]["received"]
    assert received > 20 * CAPACITY  # enough batches to overflow the channels many times over
    assert result.status["sources"]["synth"]["dropped"] == 0
    assert sum(RECEIVED) == received == len(result.imu_samples()["seq"])


def test_a_replay_keeps_every_value_of_a_processor_that_makes_more_than_a_channel_holds(
    kinefuse_pipeline, tmp_path
):
    result = _replay(kinefuse_pipeline, tmp_path, [{"id": "chatty", "type": "chatty"}])
    assert len(set(VALUES)) == len(VALUES) == (CHATTY_BATCHES + 1) * MANY  # the flush's too
    assert len(result.metrics()) == len(VALUES)  # and the sqlite sink has them all
