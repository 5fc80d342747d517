"""Contacts from one strap on the lower back (kinefuse_plugins.metrics.lower_back_contacts) on the synthetic
athlete: every contact found within what it claims (McCamley et al.'s published error), each foot told
apart, whichever way the strap is worn; none outside walking; through the daemon, strides and symmetry from
the lower back alone. No recording in ../shared has a lower-back sensor with reference contacts (docs/metrics.md)."""

from importlib.resources import files

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kinefuse.bench.scoring.events import match_events
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse_plugins.metrics.gait import _FINAL_OVER_INITIAL, SCHEMA
from kinefuse_plugins.metrics.lower_back_contacts import detect_lower_back_contacts
from kinefuse_plugins.metrics.tests.daemon_runs import run_scenario

LOWER_BACK = """
[[imus]]
name = "imu_lower_back"
segment = "pelvis"
offset_m = [-0.10, 0.0, 0.05]
"""
INITIAL_S = SCHEMA["lower_back_tolerance_s"].default
FINAL_S = INITIAL_S * _FINAL_OVER_INITIAL
IDENTITY = np.eye(3)


def _with_lower_back(name: str, tmp_path) -> tuple[Simulation, int]:
    """The packaged scenario with a lower-back strap (its own, else one added), and that strap's index."""
    text = (files("kinefuse.scenarios") / name).read_text()
    if 'segment = "pelvis"' not in text:
        text += LOWER_BACK
    path = tmp_path / name
    path.write_text(text)
    simulation = Simulation(load_scenario(str(path)))
    return simulation, next(i for i, d in enumerate(simulation.imus) if d.segment == "pelvis")


def _windows(simulation: Simulation, index: int, turn: np.ndarray = IDENTITY):
    """The detector over 10 s windows 5 s apart (as the processor runs it); per window its middle 5 s's
    contacts (s) with their feet, and the truth there."""
    rate = simulation.imus[index].rate_hz
    chunk = simulation.imu_chunk(index, 0.0, simulation.duration_s)
    acc, gyr = chunk.track.acc @ turn.T, chunk.track.gyr @ turn.T
    for start in np.arange(0.0, simulation.duration_s - 10.0, 5.0):
        first, last = int(start * rate), int((start + 10.0) * rate)
        found = detect_lower_back_contacts(acc[first:last], gyr[first:last], rate)
        truth = simulation.body.gait_events(start + 2.5, start + 7.5)
        yield start, found, truth


@pytest.mark.parametrize("name", ["walk.toml", "walk_asymmetric.toml"])
def test_every_contact_is_found_within_its_claim_and_on_its_foot(name, tmp_path):
    simulation, index = _with_lower_back(name, tmp_path)
    rate = simulation.imus[index].rate_hz
    for start, found, truth in _windows(simulation, index):
        for kind, where, sides, claim in (("ic", found.initial, found.initial_side, INITIAL_S),
                                          ("tc", found.final, found.final_side, FINAL_S)):  # fmt: skip
            t = start + where / rate  # the whole window's, against the truth in its middle
            true = [e for e in truth if e.kind == kind]
            match = match_events(t, np.array([e.time_s for e in true]), 0.15)
            assert not len(match.missed) and np.abs(match.errors_s).max() < claim, (start, kind, match)
            for event in true:
                assert sides[int(np.argmin(np.abs(t - event.time_s)))] == event.side, (start, kind, event)


def test_a_strap_worn_another_way_round_gives_the_same_contacts(tmp_path):
    simulation, index = _with_lower_back("walk.toml", tmp_path)
    turn = Rotation.from_euler("xyz", [180.0, 30.0, -70.0], degrees=True).as_matrix()
    for (_, worn, _), (_, turned, _) in zip(_windows(simulation, index), _windows(simulation, index, turn),
                                           strict=True):  # fmt: skip
        assert (
            np.allclose(worn.initial, turned.initial, atol=1e-6) and worn.initial_side == turned.initial_side
        )
        assert np.allclose(worn.final, turned.final, atol=1e-6) and worn.final_side == turned.final_side


@pytest.mark.parametrize("name, why", [
    ("squat.toml", "no regular steps"), ("sit_to_stand.toml", "no regular steps"),
    ("lunge.toml", "no regular steps"), ("drop_landing.toml", "no regular steps"), ("run.toml", "running"),
])  # fmt: skip
def test_outside_walking_there_are_no_contacts_and_it_says_why(name, why, tmp_path):
    simulation, index = _with_lower_back(name, tmp_path)
    for _, found, _ in _windows(simulation, index):
        assert not len(found.initial) and not len(found.final) and why in found.reason, found.reason


LOWER_BACK_ONLY = (
    """
[scenario]
name = "lower_back_walk"
duration_s = 40.0
seed = 5
[motion]
kind = "walk"
treadmill = true
cadence_spm = 110.0
speed_mps = 1.3
"""
    + LOWER_BACK
)


def test_in_the_daemon_a_lower_back_strap_alone_gives_both_feet_strides_and_symmetry(
    kinefuse_pipeline, tmp_path
):
    result = run_scenario(kinefuse_pipeline, tmp_path, LOWER_BACK_ONLY, [{"id": "gait", "type": "gait"}])
    contacts = result.events("initial_contact") + result.events("final_contact")
    for side in ("left", "right"):
        own = [c for c in contacts if c["detail"]["side"] == side]
        assert len(own) > 40 and all(c["detail"]["segment"] == "pelvis" for c in own)
    claims = {(c["kind"], c["detail"]["tolerance_s"]) for c in contacts}
    assert claims == {("initial_contact", INITIAL_S), ("final_contact", FINAL_S)}
    stride = [m for m in result.metrics("gait.left.stride_time") if m["value"] is not None]
    # 110 steps/min; each stride varies (the walker's stride variability), their median does not
    assert len(stride) > 15 and abs(np.median([m["value"] for m in stride]) - 60.0 / 55.0) < 0.01
    assert {m["quality"] for m in stride} == {"good"}  # one foot's contacts: their bias cancels
    # between the feet or the kinds of contact it does not (walk_asymmetric's step-time asymmetry reversed)
    for name in ("gait.left.stance_time", "gait.right.step_time", "gait.step_time_si"):
        values = [m for m in result.metrics(name) if m["value"] is not None]
        assert values and all(m["quality"] == "degraded" and "from the trunk" in m["reason"] for m in values)
    assert any(m["quality"] == "good" for m in result.metrics("gait.stride_time_si"))
