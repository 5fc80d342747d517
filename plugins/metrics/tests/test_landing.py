"""The landing processor: on the synthetic drop landing's shank straps every landing after the first window is
found within 10 ms of the truth, with its free fall; the knee's flexion at and after it comes from the angle
metric it reads; samples lost at a landing make it insufficient; walking has no free fall and gives none."""

import importlib.resources

import numpy as np

from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse.types import (
    DerivedValue,
    DeviceAdded,
    DeviceInfo,
    DeviceKind,
    Event,
    Provenance,
    Quality,
    QualityLevel,  # fmt: skip
    imu_batch,
)
from kinefuse_plugins.metrics.landing import SCHEMA, SPEC, Landing

OPTIONS = {name: field.default for name, field in SCHEMA.items()}


def _simulation(name: str) -> Simulation:
    return Simulation(load_scenario(str(importlib.resources.files("kinefuse.scenarios") / name)))


def _run(simulation: Simulation, lost=(), knee=None) -> list:
    """The processor over each shank strap's simulated samples (true times, in batches of 10; the samples
    numbered in ``lost`` never arrive), the knee's flexion ``knee(side, t)`` fed beside them at 100 Hz."""
    processor, out = Landing(OPTIONS, "landing"), []
    for index, device in enumerate(simulation.imus):
        info = DeviceInfo(device.name, DeviceKind.IMU, device.rate_hz, meta={"segment": device.segment})
        processor.device_added(DeviceAdded("sim", info))
        chunk = simulation.imu_chunk(index, 0.0, simulation.duration_s)
        seq = np.arange(len(chunk.track.acc))
        keep = ~np.isin(seq, lost)
        for first in range(0, len(seq), 10):
            part = slice(first, first + 10)
            s = seq[part][keep[part]]
            if not len(s):
                continue
            t_ns = (s / device.rate_hz * 1e9).astype(np.int64)
            if knee is not None:
                side = device.segment.split("_")[0]
                for t in np.arange(first, first + 10, device.rate_hz / 100.0) / device.rate_hz:
                    good = Quality(QualityLevel.GOOD)
                    value = DerivedValue(f"{side}_knee.flexion", int(t * 1e9), knee(side, t), "deg",
                                         Provenance.MEASURED, good, "sim", None, "joint_angles")  # fmt: skip
                    processor.observe([value])
            out += processor.process(
                imu_batch("sim", device.name, s, s, t_ns, chunk.track.acc[s], chunk.track.gyr[s])
            )
    return out + processor.flush()


def test_every_landing_of_the_synthetic_drop_landing_is_found_with_its_knee_flexion():
    simulation = _simulation("drop_landing.toml")
    truth = simulation.body.gait_events(0.0, simulation.duration_s)
    angles = simulation.body.joint_angles
    out = _run(simulation, knee=lambda side, t: float(angles(np.array([t]))[f"{side}_knee"][0, 0]))
    for side in ("left", "right"):
        found = [e.time_ns / 1e9 for e in out if isinstance(e, Event) and e.detail["side"] == side]
        true = np.array([e.time_s for e in truth if e.side == side and e.kind == "ic"])
        true = true[(true > OPTIONS["delay_s"]) & (true < simulation.duration_s - 0.2)]
        errors = np.array([min(abs(true - t)) for t in found]) * 1e3
        assert len(found) == len(true) and errors.max() < 10.0, errors  # 7.0-7.7 ms measured
        peaks = [m for m in out if getattr(m, "name", "") == f"landing.{side}.knee_flexion_peak"]
        t = np.array([m.time_ns / 1e9 for m in peaks])
        true_peak = [angles(np.linspace(x, x + 0.5, 51))[f"{side}_knee"][:, 0].max() for x in t]
        assert np.max(np.abs(np.array([m.value for m in peaks]) - true_peak)) < 1.0
        falls = [m.value for m in out if getattr(m, "name", "") == f"landing.{side}.free_fall_time"]
        assert all(0.4 < f < 0.5 for f in falls)  # 0.45 s of free fall at the shank of a 0.495 s flight


def test_samples_lost_at_a_landing_make_it_insufficient():
    simulation = _simulation("drop_landing.toml")
    rate = simulation.imus[0].rate_hz
    first = next(e.time_s for e in simulation.body.gait_events(5.0, 40.0) if e.kind == "ic")
    out = _run(simulation, lost=range(int(first * rate) - 2, int(first * rate) + 2))
    landings = [e for e in out if isinstance(e, Event) and abs(e.time_ns / 1e9 - first) < 0.05]
    assert {e.quality.level for e in landings} >= {QualityLevel.INSUFFICIENT}
    assert any("samples missing" in e.quality.reason for e in landings)


def test_walking_has_no_free_fall_and_gives_no_landing():
    assert not [e for e in _run(_simulation("walk.toml")) if isinstance(e, Event)]


def test_the_delay_must_be_shorter_than_the_window():
    assert SPEC.check({**OPTIONS, "delay_s": 20.0}) == [("delay_s", "must be shorter than window_s (10.0)")]
