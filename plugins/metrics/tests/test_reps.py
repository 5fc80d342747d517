"""The reps processor: on clean repetitions the count is exact and each one's range, peak and tempo are the
curve's; noise below the smallest range counts nothing; a dropout inside a repetition is reported, not
counted, and the count says it is a lower bound from then on; sit-to-stand counts downward excursions; in
the daemon it reads the joint angles listed before it."""

import numpy as np
import pytest

from kinefuse.types import DerivedValue, Provenance, Quality, QualityLevel
from kinefuse_plugins.metrics.reps import SCHEMA, SPEC, Reps

OPTIONS = {name: field.default for name, field in SCHEMA.items()}
RATE_HZ = 30.0


def _angle(t: np.ndarray, reps: int, period: float = 3.0, rest: float = 5.0, depth: float = 100.0):
    """``reps`` squats (knee flexion rest -> depth -> rest, a raised cosine each), then rest."""
    phase = np.clip(t / period, 0, reps)
    return rest + (depth - rest) * 0.5 * (1 - np.cos(2 * np.pi * phase))


def _values(angles, quality=None, name="right_knee.flexion"):
    t = np.arange(len(angles)) / RATE_HZ
    out = []
    for ti, a in zip(t, angles, strict=True):
        level = quality(ti) if quality else Quality(QualityLevel.GOOD)
        value = None if level.level is QualityLevel.INSUFFICIENT else float(a)
        out.append(DerivedValue(name, int(ti * 1e9), value, "deg", Provenance.FUSED, level, "joint_angles", None,
                                "joint_angles"))  # fmt: skip
    return out


def _run(values, **options) -> list[DerivedValue]:
    processor = Reps({**OPTIONS, **options}, "reps")
    return [m for v in values for m in processor.observe([v])]


def _last(metrics, name):
    return [m for m in metrics if m.name == name][-1]


def test_clean_repetitions_are_counted_exactly_with_their_range_peak_and_tempo():
    t = np.arange(0, 40.0, 1 / RATE_HZ)
    metrics = _run(_values(_angle(t, reps=12)))
    counts = [m.value for m in metrics if m.name == "reps.count"]
    assert counts == list(range(1, 13)) and _last(metrics, "reps.count").quality.level is QualityLevel.GOOD
    assert _last(metrics, "reps.rom").value == pytest.approx(95.0, abs=0.01)
    assert _last(metrics, "reps.peak").value == pytest.approx(100.0, abs=0.01)
    # ends back within a quarter of the excursion: the raised cosine is there at 1/2 + acos(-0.5)/2pi of 3 s
    end = 3.0 * (1 - np.arccos(1 - 2 * 0.25) / (2 * np.pi))
    start = 3.0 * np.arccos(1 - 2 * 0.0) / (2 * np.pi)
    assert _last(metrics, "reps.duration").value == pytest.approx(end - start, abs=2 / RATE_HZ)
    assert _last(metrics, "reps.to_peak").value == pytest.approx(1.5, abs=1 / RATE_HZ)
    assert all(m.unit.endswith("right_knee.flexion") for m in metrics if m.name in ("reps.rom", "reps.peak"))


def test_noise_below_the_smallest_range_counts_nothing():
    t = np.arange(0, 30.0, 1 / RATE_HZ)
    wobble = 5.0 + 10.0 * np.sin(2 * np.pi * t / 2.0) + np.random.default_rng(1).normal(0, 1.0, len(t))
    assert np.ptp(wobble) < OPTIONS["min_rom_deg"]
    assert _run(_values(wobble)) == []


def test_a_dropout_inside_a_repetition_is_reported_and_the_count_becomes_a_lower_bound():
    t = np.arange(0, 30.0, 1 / RATE_HZ)
    lost = Quality(QualityLevel.INSUFFICIENT, "right_thigh: no value")

    def quality(ti):  # the strap lost from 7.0 to 8.2 s: inside the third repetition (6-9 s)
        return lost if 7.0 <= ti < 8.2 else Quality(QualityLevel.GOOD)

    metrics = _run(_values(_angle(t, reps=10), quality))
    interrupted = [m for m in metrics if m.name == "reps.interrupted"]
    assert len(interrupted) == 1 and "right_thigh: no value" in interrupted[0].quality.reason
    counts = [m for m in metrics if m.name == "reps.count"]
    assert [m.value for m in counts] == list(range(1, 10))  # the third is not counted
    assert counts[1].quality.level is QualityLevel.GOOD
    assert counts[2].quality.level is QualityLevel.DEGRADED and "at least: 1.2 s" in counts[2].quality.reason


def test_a_silence_longer_than_max_gap_is_a_dropout_too():
    t = np.arange(0, 30.0, 1 / RATE_HZ)
    values = [v for v in _values(_angle(t, reps=10)) if not 7.0 <= v.time_ns / 1e9 < 8.0]
    metrics = _run(values)
    assert len([m for m in metrics if m.name == "reps.interrupted"]) == 1
    assert _last(metrics, "reps.count").value == 9


def test_sit_to_stand_counts_the_excursions_down_from_sitting():
    t = np.arange(0, 40.0, 1 / RATE_HZ)
    flexion = 95.0 - (_angle(t, reps=8, period=4.0, rest=0.0, depth=90.0))  # sitting 95, standing 5
    other = flexion + 3.0  # the left knee stays 3 deg more bent throughout
    stream = sorted(_values(flexion) + _values(other, name="left_knee.flexion"), key=lambda v: v.time_ns)
    metrics = _run(stream, direction="down", compare="left_knee.flexion")
    assert _last(metrics, "reps.count").value == 8
    assert _last(metrics, "reps.peak").value == pytest.approx(5.0, abs=0.01)  # the lowest flexion reached
    assert _last(metrics, "reps.rom").value == pytest.approx(90.0, abs=0.01)
    # peak against peak in the same direction (the lowest), not the other knee's largest (sitting) value
    assert _last(metrics, "reps.difference").value == pytest.approx(-3.0, abs=0.01)


def test_only_the_configured_metric_of_the_configured_processor_counts():
    t = np.arange(0, 20.0, 1 / RATE_HZ)
    assert _run(_values(_angle(t, reps=5), name="left_knee.flexion")) == []
    assert SPEC.name == "reps" and "sit-to-stand" in SPEC.doc


def test_each_repetition_carries_the_extremes_it_observes_and_its_left_right_difference():
    t = np.arange(0, 20.0, 1 / RATE_HZ)
    right, left = _angle(t, reps=5), _angle(t, reps=5, depth=90.0)  # the left knee bends 10 deg less
    valgus = 12.0 * np.sin(np.pi * np.clip(t / 3.0, 0, 5)) ** 2  # FPPA peaking at depth
    valgus_values = _values(valgus, name="right_knee.fppa")
    for k in range(126, 131):  # the camera loses the knee briefly in the second repetition: degraded, kept
        v = valgus_values[k]
        valgus_values[k] = DerivedValue(v.name, v.time_ns, None, v.unit, v.provenance,
                                        Quality(QualityLevel.INSUFFICIENT, "keypoints missing"), "cam", None,
                                        "joint_angles")  # fmt: skip
    stream = sorted(_values(right) + _values(left, name="left_knee.flexion") + valgus_values,
                    key=lambda v: v.time_ns)  # fmt: skip
    metrics = _run(stream, observe=["joint_angles/right_knee.fppa"], compare="left_knee.flexion")
    differences = [m for m in metrics if m.name == "reps.difference"]
    assert [m.value for m in differences] == pytest.approx([10.0] * 5, abs=0.01)
    assert "less left_knee.flexion" in differences[0].unit
    fppa = [m for m in metrics if m.name == "reps.right_knee.fppa"]
    assert [m.value for m in fppa] == pytest.approx([12.0] * 5, abs=0.1)
    assert [m.quality.level for m in fppa] == [QualityLevel.GOOD, QualityLevel.DEGRADED] + [
        QualityLevel.GOOD
    ] * 3
    assert "keypoints missing" in fppa[1].quality.reason


def test_an_observed_name_must_be_processor_slash_metric():
    assert SPEC.check({**OPTIONS, "observe": ["joint_angles/right_knee.fppa"]}) == []
    assert SPEC.check({**OPTIONS, "observe": ["right_knee.fppa"]}) == [
        ("observe", "'right_knee.fppa' is not processor/metric")
    ]
