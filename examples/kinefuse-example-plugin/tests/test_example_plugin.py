"""The example plugin's tests: the processor alone, then inside the real daemon via ``kinefuse_pipeline``
(a fixture kinefuse's pytest plugin provides; nothing to import or configure)."""

import dataclasses

import numpy as np
import pytest
from kinefuse_example import plugin

from kinefuse.types import QualityLevel, imu_batch

PLUGINS = [("example", plugin)]
PEAK = {"id": "peak", "type": "acc_magnitude_peak"}


def batch(seq, seconds, acc_z):
    """An IMU batch already clock-aligned at ``seconds``."""
    n = len(seq)
    acc = np.zeros((n, 3))
    acc[:, 2] = acc_z
    aligned = imu_batch("src", "imu", seq, seq, np.zeros(n), acc, np.zeros((n, 3)))
    return dataclasses.replace(aligned, time_ns=(np.asarray(seconds) * 1e9).astype(np.int64))


def test_one_value_per_second_with_its_quality():
    peak = plugin.AccMagnitudePeak({"min_samples": 3}, "peak")
    # seconds 0 and 1; sequence number 4 never arrived
    first = peak.process(batch([0, 1, 2, 3, 5, 6], [0.2, 0.5, 0.8, 1.1, 1.5, 1.9], [9, -12, 10, 9, 9.5, 9]))
    assert [(v.time_ns, v.value, v.quality.level) for v in first] == [(1e9, 12.0, QualityLevel.GOOD)]
    # second 3: second 1 closes, second 2 held no samples at all
    later = peak.process(batch([7, 8, 9], [3.1, 3.2, 3.3], [9.0, 9.0, 9.0]))
    assert [v.quality.level for v in later] == [QualityLevel.DEGRADED, QualityLevel.INSUFFICIENT]
    assert later[0].value == 9.5 and later[0].quality.reason == "samples missing by sequence number: 1"
    assert later[1].value is None and later[1].quality.reason == "fewer than 3 samples in the window"
    (last,) = peak.flush()
    assert (last.time_ns, last.value, last.quality.level) == (4_000_000_000, 9.0, QualityLevel.GOOD)
    assert peak.flush() == []


def test_peak_of_a_sine_is_gravity_plus_its_amplitude(kinefuse_pipeline):
    sine = {"id": "sine", "type": "sine_imu", "rate_hz": 100.0, "amplitude": 3.0}
    result = kinefuse_pipeline(sources=[sine], processors=[PEAK], plugins=PLUGINS, duration_s=2.5)
    assert result.exit_code == 0
    assert len(result.imu_samples("sine")["seq"]) >= 200
    assert result.source_stats("sine")["received"] >= 200
    values = result.metrics("acc_magnitude_peak")
    assert {(v["device_id"], v["unit"], v["provenance"], v["processor"]) for v in values} == {
        ("sine", "m/s^2", "measured", "peak")
    }
    good = [v["value"] for v in values if v["quality"] == "good"]
    # only whole seconds surely hold the sine's crest; none may exceed it
    assert max(good) == pytest.approx(plugin.GRAVITY + 3.0, abs=0.01)
    assert max(good) <= plugin.GRAVITY + 3.0 + 1e-9


def test_a_slow_device_gets_insufficient_values(kinefuse_pipeline):
    sine = {"id": "sine", "type": "sine_imu", "rate_hz": 5.0}
    result = kinefuse_pipeline(sources=[sine], processors=[PEAK], plugins=PLUGINS, duration_s=1.5)
    values = result.metrics("acc_magnitude_peak")
    assert values
    assert {(v["quality"], v["value"], v["reason"]) for v in values} == {
        ("insufficient", None, "fewer than 10 samples in the window")
    }


LOSSY_STRAP = """
[scenario]
name = "lossy"
[[imus]]
name = "imu_pelvis"
segment = "pelvis"
[imus.link]
loss = 0.3
"""


def test_lost_samples_degrade_the_peak(kinefuse_pipeline, tmp_path):
    scenario = tmp_path / "lossy.toml"
    scenario.write_text(LOSSY_STRAP)
    lossy = {"id": "synth", "type": "synthetic", "scenario": str(scenario)}
    result = kinefuse_pipeline(sources=[lossy], processors=[PEAK], plugins=PLUGINS, duration_s=2.0)
    degraded = [v for v in result.metrics("acc_magnitude_peak") if v["quality"] == "degraded"]
    assert degraded and all(v["device_id"] == "imu_pelvis" and v["value"] > 0 for v in degraded)
    assert all(v["reason"].startswith("samples missing by sequence number: ") for v in degraded)


def test_bad_options_fail_the_test_with_the_config_error(kinefuse_pipeline):
    expected = r"sources\[0\]\.rate_hz: expected a number from 1.0 to 2000.0, got 0.5"
    with pytest.raises(pytest.fail.Exception, match=expected):
        kinefuse_pipeline(sources=[{"type": "sine_imu", "rate_hz": 0.5}], plugins=PLUGINS)
