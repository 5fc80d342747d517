"""``kinefuse bench accuracy``: synthetic scenarios through the real pipeline scored against their truth,
public data (or a user's folder) scored in the same formats, and docs/accuracy.md generated from the JSON."""

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kinefuse.bench import markdown, read_json
from kinefuse.bench.accuracy import scenario_rows
from kinefuse.bench.datasets import paths
from kinefuse.bench.scoring.public import NOT_YET, public_rows
from kinefuse.camera_calibration import write_calibration
from kinefuse.sim.camera_rig import look_at

REPO = Path(__file__).resolve().parents[2]
BROAD = paths.shared_dir() / "data" / "broad"
needs_shared = pytest.mark.skipif(not BROAD.is_dir(), reason=f"shared data folder {BROAD} is absent")

SCENARIO = """
[scenario]
name = "short"
duration_s = 40.0
seed = 5
[motion]
kind = "walk"
treadmill = true
[[cameras]]
name = "cam"
position = [0.0, -4.0, 1.0]
target = [0.0, 0.0, 0.9]
clock_offset_s = 30.0
clock_skew_ppm = 40.0
[cameras.link]
latency_min_s = 0.02
latency_jitter_s = 0.005
[[imus]]
name = "strap"
segment = "left_shank"
clock_offset_s = 7.0
clock_skew_ppm = -80.0
[imus.link]
batch = 4
latency_min_s = 0.008
latency_jitter_s = 0.01
"""


def test_a_scenario_is_scored_through_the_pipeline(tmp_path):
    path = tmp_path / "short.toml"
    path.write_text(SCENARIO)
    rows = {row["metric"]: row for row in asyncio.run(scenario_rows(path))}
    assert rows["IMU aligned time: p95 error spread"]["value"] < 5.0  # ms, jitter 10 ms, batches of 4
    assert rows["IMU clock skew error"]["value"] < 20.0  # ppm, of a -80 ppm clock
    assert rows["camera aligned time: p95 error spread"]["value"] < 5.0
    assert rows["camera clock skew error"]["value"] < 20.0
    for metric in (
        "joint angles: RMSE per joint",
        "gait event timing RMSE",
        "honesty: truly bad samples flagged",
    ):
        assert rows[metric]["value"] is None
        assert rows[metric]["note"].startswith(NOT_YET)


def test_a_users_folder_is_scored_in_the_same_formats(tmp_path):
    project = tmp_path / "session1"
    (project / "calibration").mkdir(parents=True)
    (project / "videos").mkdir()
    cameras = [look_at(f"cam{i}", (3.0 * np.cos(a), 3.0 * np.sin(a), 1.2), (0, 0, 1), (640, 480), 600.0)
               for i, a in enumerate((0.0, 1.6, 3.2))]  # fmt: skip
    write_calibration(project / "calibration" / "Calib_scene.toml", cameras)
    (project / "videos" / "cam0.mp4").write_bytes(b"")
    (tmp_path / "walk.trc").write_text(
        textwrap.dedent("""\
        PathFileType\t4\t(X/Y/Z)\twalk.trc
        DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames
        100\t100\t2\t1\tmm\t100\t1\t2
        Frame#\tTime\tHip\t\t
        \t\tX1\tY1\tZ1
        1\t0.00\t1\t2\t3
        2\t0.01\t1\t2\t4
        """)
    )
    rows = public_rows(tmp_path)
    by_case = {row["case"]: row for row in rows}
    multiview = by_case["Pose2Sim session1 (Calib_scene)"]
    assert multiview["value"] is None and "3 cameras in Calib_scene.toml, 1 videos" in multiview["note"]
    assert "1 markers, 2 frames" in by_case["markers walk.trc"]["note"]


@needs_shared
def test_broad_trials_are_scored_beside_the_strapdown_baseline(tmp_path):
    trial = sorted(BROAD.glob("*"))[0]
    (tmp_path / trial.name).symlink_to(trial)
    rows = public_rows(tmp_path)
    assert {row["metric"] for row in rows} == {
        "9D heading RMSE", "9D inclination RMSE", "9D total RMSE", "6D inclination RMSE"
    }  # fmt: skip
    for row in rows:
        assert 0.1 < row["value"] < 5.0  # the orientation filter, measured
        assert row["value"] < row["peer_value"] < 45.0  # better than a drifting gyroscope, also measured


def test_the_accuracy_page_is_generated_from_the_json():
    document = read_json(REPO / "docs" / "accuracy.json")
    page = (REPO / "docs" / "accuracy.md").read_text()
    assert page == markdown(document, "docs/accuracy.json")


def test_the_cli_takes_data(tmp_path):
    out = tmp_path / "acc.json"
    result = subprocess.run(
        [sys.executable, "-m", "kinefuse", "bench", "accuracy", "--data", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert read_json(out)["bench"] == "accuracy"
