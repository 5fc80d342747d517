"""``kinefuse export trc`` on a session the real daemon recorded (three simulated cameras around a walker):
the TRC file's header, marker names and frame grid as OpenSim's reader expects them, its values the stored
3D keypoints turned to y up; a session without triangulated keypoints is refused with the reason."""

import subprocess
import sys

import numpy as np

from kinefuse.keypoints import KEYPOINT_NAMES
from kinefuse.storage import reader
from kinefuse.testing import walking_scenario
from plugins.multiview.tests.scenes import THREE_CAMERAS


def _export(db, out, *args):
    command = [
        sys.executable,
        "-m",
        "kinefuse",
        "export",
        "trc",
        "1",
        "--db",
        str(db),
        "--out",
        str(out),
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def _read_trc(path):
    lines = path.read_text().split("\n")
    keys, values = lines[1].split("\t"), lines[2].split("\t")
    names = [name for name in lines[3].split("\t")[2:] if name]
    rows = np.array([[float(v) for v in line.split("\t")] for line in lines[6:] if line])
    return lines, dict(zip(keys, values, strict=True)), names, rows


def test_the_stored_3d_keypoints_as_a_trc_file(kinefuse_pipeline, tmp_path):
    scenario = walking_scenario(tmp_path / "three.toml", THREE_CAMERAS, duration_s=6.0, seed=8)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False}
    result = kinefuse_pipeline(sources=[source], processors=[{"type": "motion"}], duration_s=60.0)
    assert result.exit_code == 0
    out = _export(result.db_path, tmp_path / "walk.trc")
    assert out.returncode == 0, out.stderr
    lines, header, names, rows = _read_trc(tmp_path / "walk.trc")
    assert lines[0] == "PathFileType\t4\t(X/Y/Z)\twalk.trc"
    assert names == list(KEYPOINT_NAMES["COCO-17"])
    assert header["NumMarkers"] == "17" and header["Units"] == "m" and float(header["DataRate"]) == 30.0
    assert lines[4].split("\t")[2:5] == ["X1", "Y1", "Z1"] and rows.shape == (
        int(header["NumFrames"]),
        2 + 51,
    )
    assert rows[0, 0] == 1 and rows[0, 1] == 0.0 and np.allclose(np.diff(rows[:, 1]), 1 / 30.0, atol=1e-6)

    stored = reader.motion_keypoints(result.db_path, view="3d", revision=1)
    first = np.asarray(stored["time_ns"]) == np.min(stored["time_ns"])
    position = stored["position"][first][0].astype(float)  # (17, 3), z up
    position[stored["status"][first][0] == 3] = np.nan
    written = rows[0, 2:].reshape(17, 3)
    np.testing.assert_allclose(written, position[:, [0, 2, 1]] * [1, 1, -1], atol=1e-6)  # (x, z, -y)
    assert np.nanmedian(written[:, 1]) > 0.5  # y is up: the body stands above the floor

    out = _export(result.db_path, tmp_path / "z.trc", "--up", "z", "--good-only")
    assert out.returncode == 0, out.stderr
    _, _, _, z_up = _read_trc(tmp_path / "z.trc")
    present = ~np.isnan(z_up[:, 2:])
    assert present.sum() <= (~np.isnan(rows[:, 2:])).sum()  # good only: never more values
    np.testing.assert_allclose(z_up[0, 2:].reshape(17, 3)[present[0].reshape(17, 3)],
                               position[present[0].reshape(17, 3)], atol=1e-6)  # fmt: skip


def test_a_session_without_3d_keypoints_is_refused(kinefuse_pipeline, tmp_path):
    result = kinefuse_pipeline(duration_s=1.0)  # the default synthetic source, no motion processor
    out = _export(result.db_path, tmp_path / "none.trc")
    assert out.returncode == 1 and "has no triangulated keypoints" in out.stderr
