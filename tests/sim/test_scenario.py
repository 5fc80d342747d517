"""Scenario files are validated as strictly as the config, every error with its line."""

import textwrap
from pathlib import Path

import pytest

from kinefuse.configschema import ConfigInvalid
from kinefuse.sim.imu import PRESETS
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_shipped_scenarios_are_valid(path):
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    assert scenario.cameras or scenario.imus


def write(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_every_error_is_reported_with_its_line(tmp_path):
    path = write(
        tmp_path,
        """
        [scenario]
        name = "bad"
        duraton_s = 10.0

        [motion]
        kind = "moonwalk"

        [[imus]]
        name = "a"
        segment = "left_wing"
        preset = "military"
        [imus.errors.gyr]
        noise_density = "lots"
        [imus.link]
        batch = 2
        colour = "red"
    """,
    )
    with pytest.raises(ConfigInvalid) as info:
        load_scenario(path)
    found = {(e.line, e.key) for e in info.value.errors}
    assert found == {
        (3, "scenario.duraton_s"),
        (6, "motion.kind"),
        (10, "imus[0].segment"),
        (11, "imus[0].preset"),
        (13, "imus[0].errors.gyr.noise_density"),
        (16, "imus[0].link.colour"),
    }


def test_error_overrides_apply_on_top_of_the_preset(tmp_path):
    path = write(
        tmp_path,
        """
        [scenario]
        name = "o"
        [[imus]]
        name = "a"
        segment = "left_shank"
        preset = "consumer"
        [imus.errors.acc]
        full_scale = 78.45
        bias = [0.1, 0.2, 0.3]
    """,
    )
    (imu,) = Simulation(load_scenario(path)).imus
    assert imu.errors.acc.full_scale == 78.45 and imu.errors.acc.bias == (0.1, 0.2, 0.3)
    assert imu.errors.gyr == PRESETS["consumer"].gyr
    assert imu.errors.acc.noise_density == PRESETS["consumer"].acc.noise_density


def test_a_camera_following_another_person_needs_one_and_a_span(tmp_path):
    path = write(
        tmp_path,
        """
        [scenario]
        name = "who"

        [[cameras]]
        name = "a"
        position = [0.0, -4.0, 1.2]
        target = [0.0, 0.0, 0.9]
        follows_person_s = [5.0, 2.0]

        [[cameras]]
        name = "b"
        position = [4.0, 0.0, 1.2]
        target = [0.0, 0.0, 0.9]
        follows_person_s = [0.0, 2.0]
    """,
    )
    with pytest.raises(ConfigInvalid) as info:
        load_scenario(path)
    found = {(e.key, e.message.split(":")[0]) for e in info.value.errors}
    assert found == {
        ("cameras[0].follows_person_s", "expected [from, to] with 0 <= from < to, got [5.0, 2.0]"),
        ("cameras[1].follows_person_s", "there is nobody else"),
    }
