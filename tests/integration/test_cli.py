"""The command line as a user meets it."""

import subprocess
import sys

from .daemon_process import REPO


def kinefuse(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "kinefuse", *args], cwd=cwd, capture_output=True, text=True)


def test_check_config_reports_every_error_with_its_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[daemon]\nathlete = "ana"\nfavourite_colour = "blue"\n\n[channels]\ningest_capacity = "big"\n\n'
        '[[sources]]\nid = "s"\ntype = "synthetic"\nchunk_s = 1000.0\n'
    )
    result = kinefuse("check-config", str(bad))
    assert result.returncode == 2
    assert f"{bad}:3: daemon.favourite_colour: unknown key" in result.stderr
    assert f"{bad}:6: channels.ingest_capacity: expected an integer" in result.stderr
    assert f"{bad}:11: sources[0].chunk_s: expected a number from 1.0 to 600.0, got 1000.0" in result.stderr
    assert "3 config error(s)" in result.stderr


def test_check_config_accepts_the_default():
    result = kinefuse("check-config", "config.toml")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_version_and_help():
    assert kinefuse("--version").stdout.startswith("kinefuse ")
    for command in ("run", "check-config", "plugins", "status", "tail", "bench"):
        result = kinefuse(command, "--help")
        assert result.returncode == 0 and "usage: kinefuse" in result.stdout, command


def test_run_refuses_a_bad_config_without_starting(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage]\nflush_interval_s = 30\n")
    result = kinefuse("run", "--config", str(bad), "--db", str(tmp_path / "k.db"))
    assert result.returncode == 2 and "storage.flush_interval_s" in result.stderr
    assert not (tmp_path / "k.db").exists()


IMPOSSIBLE_CAMERAS = """[[sources]]
id = "synth"
type = "synthetic"

[[sources]]
id = "front"
type = "camera"
path = "front.mp4"
model = "mediapipe_pose_full"
detector = "rtmdet_nano_person"

[[sources]]
id = "side"
type = "camera"
path = "side.mp4"
athlete = "region"
"""


def test_options_that_can_never_run_together_are_refused_before_start(tmp_path):
    config = tmp_path / "cameras.toml"
    config.write_text(IMPOSSIBLE_CAMERAS)
    checked = kinefuse("check-config", str(config))
    assert checked.returncode == 2
    assert (
        f"{config}:10: sources[1].detector: model mediapipe_pose_full runs on the whole image"
        in checked.stderr
    )
    # athlete_region is not in the file: the error points at its entry's [[sources]] line
    assert (
        f"{config}:12: sources[2].athlete_region: athlete = 'region' needs athlete_region" in checked.stderr
    )
    assert "2 config error(s)" in checked.stderr
    ran = kinefuse("run", "--config", str(config), "--db", str(tmp_path / "k.db"))
    assert ran.returncode == 2 and "sources[1].detector" in ran.stderr
    assert not (tmp_path / "k.db").exists()
