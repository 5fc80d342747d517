"""``kinefuse calibrate check`` on a session the real daemon recorded (three simulated cameras around a
walker, keypoints through the detector model fitted to MoveNet): the cameras' own calibrations fit their
keypoints to about the detector's error; a calibration file in which one camera is turned by a degree (a
bumped camera) names that camera, and the command says which file fits better."""

import dataclasses
import subprocess
import sys

import cv2
import numpy as np

from kinefuse.camera_calibration import calibration_from_meta, write_calibration
from kinefuse.storage import reader
from kinefuse.testing import walking_scenario
from plugins.multiview.tests.scenes import THREE_CAMERAS


def _check(db, *args):
    command = [sys.executable, "-m", "kinefuse", "calibrate", "check", "1", "--db", str(db), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _medians(stdout, label):
    block = stdout.split(f"{label}:")[1].splitlines()[1:4]
    return {line.split()[0]: float(line.split("median ")[1].split(" px")[0]) for line in block}


def test_check_on_a_recorded_session(kinefuse_pipeline, tmp_path):
    scenario = walking_scenario(tmp_path / "three.toml", THREE_CAMERAS, duration_s=8.0, seed=5)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False}
    result = kinefuse_pipeline(sources=[source], duration_s=60.0)
    assert result.exit_code == 0
    db = result.db_path
    cameras = [calibration_from_meta(name, reader.device_meta(db, name)) for name in ("cam0", "cam1", "cam2")]

    # the cameras' own (true) calibrations fit to about the detector's error
    out = _check(db)
    assert out.returncode == 0, out.stderr
    own = _medians(out.stdout, "the session's own")
    assert set(own) == {"cam0", "cam1", "cam2"} and all(value < 6.0 for value in own.values()), out.stdout

    # cam1 turned by a degree stands out, and the true file is said to fit better
    turn = cv2.Rodrigues(cv2.Rodrigues(np.radians([0.0, 1.0, 0.0]))[0] @ cameras[1].rotation_matrix)[
        0
    ].ravel()
    bumped = [cam if cam.name != "cam1" else dataclasses.replace(cam, rotation=turn) for cam in cameras]
    write_calibration(tmp_path / "true.toml", cameras)
    write_calibration(tmp_path / "bumped.toml", bumped)
    out = _check(db, "--calibration", tmp_path / "true.toml", "--calibration", tmp_path / "bumped.toml")
    assert out.returncode == 0, out.stderr
    true, wrong = _medians(out.stdout, "true.toml"), _medians(out.stdout, "bumped.toml")
    assert wrong["cam1"] > 3 * true["cam1"], out.stdout
    assert "fits the keypoints best: true.toml" in out.stdout

    # a camera the file lacks is named, with the way to map it
    write_calibration(tmp_path / "two.toml", cameras[:2])
    out = _check(db, "--calibration", tmp_path / "two.toml")
    assert out.returncode == 1 and "two.toml: no camera 'cam2' for the session's 'cam2'" in out.stderr
    assert "--camera cam2=NAME" in out.stderr
