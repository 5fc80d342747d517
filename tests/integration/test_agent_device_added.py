"""The agent tells processors that define ``device_added`` about each device before its first batch; one that
raises there is counted and the pipeline runs on."""

from kinefuse import hookimpl
from kinefuse.interfaces import ProcessorSpec
from kinefuse.types import DeviceAdded

SCENARIO = """
[scenario]
name = "one_strap"
duration_s = 1.0
[motion]
kind = "walk"
treadmill = true
[[imus]]
name = "strap"
segment = "left_thigh"
"""
SEEN: list = []


class Recorder:
    def __init__(self, options, processor_id):
        SEEN.clear()

    def device_added(self, declaration: DeviceAdded) -> list:
        SEEN.append(declaration)
        return []

    def process(self, batch) -> list:
        SEEN.append(batch.device_id)
        return []

    def flush(self) -> list:
        return []


class Broken(Recorder):
    def device_added(self, declaration: DeviceAdded) -> list:
        raise RuntimeError("cannot take devices")


class Plugin:
    @hookimpl
    def register_processors(self):
        return [ProcessorSpec("recorder", Recorder, {}, "records declarations and batches"),
                ProcessorSpec("broken", Broken, {}, "fails on declarations")]  # fmt: skip


def test_processors_learn_each_device_before_its_batches(kinefuse_pipeline, tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    result = kinefuse_pipeline(
        sources=[
            {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False}
        ],
        processors=[{"id": "broken", "type": "broken"}, {"id": "recorder", "type": "recorder"}],
        plugins=[("device_listeners", Plugin())],
        duration_s=10.0,
    )
    assert result.exit_code == 0
    declaration, first_batch = SEEN[0], SEEN[1]
    assert isinstance(declaration, DeviceAdded) and declaration.source_id == "synth"
    assert declaration.device.device_id == first_batch == "strap"
    assert declaration.device.meta["segment"] == "left_thigh"
    assert result.status["processors"] == {"broken": {"errors": 1}, "recorder": {"errors": 0}}
    assert len(result.imu_samples("strap")["seq"]) == 100
