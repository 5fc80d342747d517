"""``kinefuse calibrate sync`` on a session the real daemon recorded: two cameras whose links differ by 100 ms
in their latency floor, which the clock alignment cannot see (it maps each camera's clock to the host by
arrivals), so their stored times disagree by about that much; the command finds the disagreement the
stored times have against the simulator's truth, within a frame."""

import json
import subprocess
import sys

import numpy as np

from kinefuse.storage import reader
from kinefuse.testing import walking_scenario

FPS = 30.0
CAMERAS = [  # the second camera's link 100 ms slower
    {"name": "cam0", "position": [0.0, -4.0, 1.0], "target": [0.0, 0.0, 0.9], "fps": FPS,
     "link": {"latency_min_s": 0.030, "latency_jitter_s": 0.008}},
    {"name": "cam1", "position": [3.0, -3.0, 1.2], "target": [0.0, 0.0, 0.9], "fps": FPS,
     "link": {"latency_min_s": 0.130, "latency_jitter_s": 0.008}},
]  # fmt: skip


def _stored_lateness(db, device):
    """How much later than the truth the session's stored times put the camera's frames (median, s)."""
    frames = reader.keypoint_frames(db, 1, device)
    zero = reader.device_meta(db, device)["sim_time_zero_ns"]
    stored = np.asarray(frames["time_ns"])[~np.ma.getmaskarray(frames["time_ns"])]
    seq = frames["seq"][~np.ma.getmaskarray(frames["time_ns"])]
    return float(np.median(stored - zero - np.round(seq / FPS * 1e9))) / 1e9


def test_sync_finds_what_the_clock_alignment_left(kinefuse_pipeline, tmp_path):
    scenario = walking_scenario(tmp_path / "two.toml", CAMERAS, duration_s=20.0, seed=3)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False}
    result = kinefuse_pipeline(sources=[source], duration_s=120.0)
    assert result.exit_code == 0
    truth = _stored_lateness(result.db_path, "cam0") - _stored_lateness(result.db_path, "cam1")
    assert abs(truth + 0.1) < 0.02  # cam1's stored times are about 100 ms later than cam0's
    out = subprocess.run([sys.executable, "-m", "kinefuse", "calibrate", "sync", "1", "--db", str(result.db_path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.strip().startswith("cam1:"))
    found = float(line.split(":")[1].split("ms")[0]) / 1e3
    assert abs(found - truth) < 1.0 / FPS, (out.stdout, truth)

    # the command it suggests: the offline analysis with the offsets applied triangulates consistent views
    suggested = next(line for line in out.stdout.splitlines() if "kinefuse analyze" in line)
    command = suggested.split(": ", 1)[1].split()
    assert f"--camera-offset cam1={found:+.4f}" in suggested
    plain = _analysis_error(result.db_path, command[: command.index("--camera-offset")])
    synced = _analysis_error(result.db_path, command)
    # two views of a walker 100 ms apart disagree by where the limbs moved meanwhile
    assert synced < 0.7 * plain, (synced, plain)


def _analysis_error(db, command):
    """Run ``command`` (kinefuse analyze ...); the median reprojection error of its 3D keypoints (px)."""
    out = subprocess.run(
        [sys.executable, "-m", *command, "--json"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    analysis = json.loads(out.stdout)["analysis_id"]
    return float(np.nanmedian(reader.motion_keypoints(db, view="3d", analysis_id=analysis)["error_px"]))


def test_sync_needs_two_cameras_and_names_the_session(tmp_path):
    out = subprocess.run([sys.executable, "-m", "kinefuse", "calibrate", "sync", "1", "--db", str(tmp_path / "no.db")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1 and "no.db" in out.stderr
