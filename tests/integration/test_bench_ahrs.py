"""``kinefuse bench ahrs`` scores a folder of BROAD trials against vqf and imufusion in one run."""

import subprocess
import sys

import pytest

from kinefuse.bench import read_json
from kinefuse.bench.datasets import paths
from kinefuse.bench.scoring.orientation_error import ORIENTATION_METRICS

BROAD = paths.shared_dir() / "data" / "broad"
needs_shared = pytest.mark.skipif(not BROAD.is_dir(), reason=f"shared data folder {BROAD} is absent")


@needs_shared
def test_bench_ahrs_on_a_folder_of_one_trial(tmp_path):
    trial = sorted(BROAD.glob("*.hdf5"))[0]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / trial.name).symlink_to(trial)
    out = tmp_path / "ahrs.json"
    command = [
        sys.executable,
        "-m",
        "kinefuse",
        "bench",
        "ahrs",
        "--data",
        str(tmp_path / "data"),
        "--json",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = read_json(out)["rows"]
    accuracy = [row for row in rows if row["unit"] == "deg" and not row["case"].endswith(" offline")]
    # each metric of both protocols (fitted frames, BROAD's own), against each peer
    assert [row["metric"] for row in accuracy] == [m for _, _, m, _ in ORIENTATION_METRICS for _ in range(2)]
    assert [row["peer"].split()[0] for row in accuracy] == ["vqf", "imufusion"] * len(ORIENTATION_METRICS)
    assert all(row["value"] <= row["peer_value"] + 1e-9 for row in accuracy if row["peer"].startswith("vqf"))
    # the offline smoother against vqf's offlineVQF (the same algorithm, a stricter rule for magnetic
    # disturbances: at least as accurate; 1e-5 deg for the fitted frames' joint fit) and the live filter
    offline = [row for row in rows if row["unit"] == "deg" and row["case"].endswith(" offline")]
    assert [row["peer"].split()[0] for row in offline] == ["vqf", "kinefuse"] * len(ORIENTATION_METRICS)
    assert all(row["value"] <= row["peer_value"] + 1e-5 for row in offline if row["peer"].startswith("vqf"))
    live = {row["metric"]: row["value"] for row in accuracy if row["peer"].startswith("vqf")}
    assert all(
        row["peer_value"] == live[row["metric"]] for row in offline if row["peer"].startswith("kinefuse")
    )
    speed = [row for row in rows if row["unit"] == "samples/s"]
    assert [row["case"] for row in speed] == ["batch", "per sample", "per sample", "offline"]
    assert all(row["value"] > 0 and row["peer_value"] > 0 for row in speed)


def test_bench_ahrs_says_when_a_folder_has_no_trials(tmp_path):
    command = [sys.executable, "-m", "kinefuse", "bench", "ahrs", "--data", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"no BROAD trials (.hdf5 or .mat) in {tmp_path}" in result.stderr
