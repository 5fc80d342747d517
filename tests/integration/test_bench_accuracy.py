"""``kinefuse bench accuracy``: synthetic scenarios through the real pipeline scored against their truth,
public data (or a user's folder) scored in the same formats, the realism rows (synthetic signals beside real
ones), docs/accuracy.md generated from the JSON, and docs/accuracy.json checked against a fresh run so stale
figures fail."""

import asyncio
import concurrent.futures
import importlib.resources
import math
import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kinefuse.bench import BenchError, markdown, read_json
from kinefuse.bench.accuracy import SUITE, data_rows, folder_rows, scenario_rows, suite_rows
from kinefuse.bench.datasets import paths
from kinefuse.bench.scoring.demo_triangulation import CASE as DEMO_CASE
from kinefuse.bench.scoring.orientation_error import ORIENTATION_METRICS
from kinefuse.bench.scoring.public import public_rows
from kinefuse.camera_calibration import write_calibration
from kinefuse.sim.camera_rig import look_at
from kinefuse.sim.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "docs" / "accuracy.json"
BROAD = paths.shared_dir() / "data" / "broad"
needs_shared = pytest.mark.skipif(not BROAD.is_dir(), reason=f"shared data folder {BROAD} is absent")
# The simulator is seeded and the scoring deterministic, so a rerun differs from the committed figures only
# by floating-point rounding that varies between CPUs (NumPy's SIMD kernels, OpenBLAS's per-CPU kernels,
# libm variants). Rerunning the whole suite with NumPy held to its x86-64-v2 baseline and OpenBLAS on its
# Prescott kernels moved no figure by more than 3e-13 relative; 1e-6 leaves six orders of magnitude for
# that, while any change of data, algorithm or constant moves figures far more. No row depends on timing:
# the source is stamped with simulated arrival times and every channel is deep enough to drop nothing.
RELATIVE_TOLERANCE = 1e-6

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
    assert set(rows) == {
        "IMU aligned time: p95 error spread", "IMU clock skew error", "camera aligned time: p95 error spread",
        "camera clock skew error", "cross-modal IMU-camera offset error",
        "good segment values beyond twice their tolerance", "good keypoints beyond twice their tolerance (cam)",
        "initial contact |error| median (gait, from shank straps)",
        "final contact |error| median (gait, from shank straps)",
        "honesty: good contacts beyond twice their tolerance (gait, from shank straps)",
        "hip flexion RMSE (2D projection, cam)", "knee flexion RMSE (2D projection, cam)",
        "trunk lean RMSE (2D projection, cam)",
        "honesty: good joint angles beyond twice their tolerance (2D projection)",
        "honesty: good stride values beyond twice their tolerance (gait, from shank straps)",
        *(f"{what} (gait, from cam's 2D keypoints)" for what in (
            "initial contact |error| median", "final contact |error| median",
            "stride time asymmetry |error| median", "stance time asymmetry |error| median",
            "step time asymmetry |error| median", "honesty: good contacts beyond twice their tolerance",
            "honesty: good stride values beyond twice their tolerance")),
    }  # fmt: skip
    # one shank strap: its foot's contacts, every true one found (no symmetry rows: that needs both feet)
    for kind in ("initial", "final"):
        assert "found (0 missed" in rows[f"{kind} contact |error| median (gait, from shank straps)"]["note"]
    # the motion stream ran with its defaults; whatever it called good is within twice its tolerance
    honesty = rows["good segment values beyond twice their tolerance"]
    assert honesty["value"] in (0.0, None) and " 0 beyond twice it" in honesty["note"], honesty
    assert rows["IMU aligned time: p95 error spread"]["value"] < 5.0  # ms, jitter 10 ms, batches of 4
    assert rows["IMU clock skew error"]["value"] < 20.0  # ppm, of a -80 ppm clock
    assert rows["camera aligned time: p95 error spread"]["value"] < 5.0
    assert rows["camera clock skew error"]["value"] < 20.0
    # every row is a measurement: a value, or None where the measurement could not give one, saying why
    for row in rows.values():
        assert row["value"] is not None or row["note"].startswith("insufficient data"), row


def test_a_folder_without_broad_trials_is_refused_by_name(tmp_path):
    # formats kinefuse reads but measures nothing against yet (a Pose2Sim project, TRC markers) give no rows
    project = tmp_path / "session1"
    (project / "calibration").mkdir(parents=True)
    cameras = [look_at(f"cam{i}", (3.0 * np.cos(a), 3.0 * np.sin(a), 1.2), (0, 0, 1), (640, 480), 600.0)
               for i, a in enumerate((0.0, 1.6, 3.2))]  # fmt: skip
    write_calibration(project / "calibration" / "Calib_scene.toml", cameras)
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
    assert public_rows(tmp_path) == []
    with pytest.raises(BenchError, match=f"nothing to score in {tmp_path}: no BROAD trial"):
        folder_rows(tmp_path)
    with pytest.raises(BenchError, match="is not a folder"):
        folder_rows(tmp_path / "absent")


def test_the_cli_says_an_empty_folder_has_nothing_to_score(tmp_path):
    out = tmp_path / "acc.json"
    result = subprocess.run(
        [sys.executable, "-m", "kinefuse", "bench", "accuracy", "--data", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"nothing to score in {tmp_path}: no BROAD trial (.hdf5 or .mat)" in result.stderr
    assert result.stdout == "" and not out.exists()


@needs_shared
def test_broad_trials_are_scored_beside_the_strapdown_baseline(tmp_path):
    trial = sorted(BROAD.glob("*.hdf5"))[0]
    (tmp_path / trial.name).symlink_to(trial)
    rows = public_rows(tmp_path)
    assert [row["metric"] for row in rows] == [metric for _, _, metric, _ in ORIENTATION_METRICS]
    for row in rows:
        assert 0.1 < row["value"] < 5.0  # the orientation filter, measured
        assert row["value"] < row["peer_value"] < 45.0  # better than a drifting gyroscope, also measured
        assert ("BROAD protocol" in row["metric"]) == ("BROAD protocol:" in row["note"])


@needs_shared
def test_the_cli_scores_a_folder_of_broad_trials(tmp_path):
    trial = sorted(BROAD.glob("*.hdf5"))[0]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / trial.name).symlink_to(trial)
    out = tmp_path / "acc.json"
    command = [sys.executable, "-m", "kinefuse", "bench", "accuracy", "--data", str(tmp_path / "data"),
               "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rows = read_json(out)["rows"]
    assert {row["case"] for row in rows} == {f"BROAD {trial.stem}"}
    assert len(rows) == len(ORIENTATION_METRICS)


def test_the_accuracy_page_is_generated_from_the_json():
    document = read_json(COMMITTED)
    page = (REPO / "docs" / "accuracy.md").read_text()
    assert page == markdown(document, "docs/accuracy.json")


def test_the_committed_scenario_figures_are_a_fresh_run():
    names = {load_scenario(_packaged(name)).name for name in SUITE}
    committed = [row for row in read_json(COMMITTED)["rows"] if row["case"] in names]
    # one scenario per process, two at a time: each replay is deterministic and uses one core, and the suite
    # is the longest test in make test
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        fresh = [row for rows in pool.map(_suite_rows_of, SUITE) for row in rows]
    assert_same_rows(fresh, committed)


def _suite_rows_of(name: str) -> list[dict]:
    return asyncio.run(suite_rows((name,)))


@needs_shared
def test_the_committed_public_data_and_realism_figures_are_a_fresh_run():
    names = {load_scenario(_packaged(name)).name for name in SUITE}
    committed = [row for row in read_json(COMMITTED)["rows"] if row["case"] not in names]
    data = paths.shared_dir() / "data"
    assert_same_rows(data_rows(data), committed)


def _packaged(name: str) -> Path:
    return Path(str(importlib.resources.files("kinefuse.scenarios") / name))


def assert_same_rows(fresh: list[dict], committed: list[dict]) -> None:
    """Every committed row is in the fresh run, in order, with its figures within RELATIVE_TOLERANCE."""
    stale = "docs/accuracy.json is stale; regenerate it with `make accuracy`"
    key = ("case", "metric", "unit", "better", "peer")
    assert [[row[k] for k in key] for row in fresh] == [[row[k] for k in key] for row in committed], stale
    problems = [
        f"{new['case']} / {new['metric']}: {field} committed {old[field]!r}, measured now {new[field]!r}"
        for new, old in zip(fresh, committed, strict=True)
        for field in _compared(new, old)
        if not _same(new[field], old[field])
    ]
    assert not problems, stale + ":\n" + "\n".join(problems)


def _compared(new: dict, old: dict) -> tuple[str, ...]:
    # Rows on MoveNet int8's output on the demo videos move with the CPU's int8 kernels (up to 23 % between
    # paths, measured), and their note names the path: on the same path the same kernels give the same
    # figures; on another, only the seeded twin's side (the detector rows' value) is the same. The demo-in-3D
    # rows are all MoveNet's.
    if "depends on the CPU's int8 kernels" not in new["note"]:
        return ("value", "peer_value", "note")
    if new["note"] == old["note"]:
        return ("value", "peer_value")
    return () if new["case"] == DEMO_CASE else ("value",)


def _same(new, old) -> bool:
    if isinstance(new, float) and isinstance(old, int | float):
        return math.isclose(new, old, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0)
    return new == old
