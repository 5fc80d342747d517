"""Scoring on public data sets (and users' recordings in the same formats) found under a folder.

Each stage that is not built yet yields rows whose value is None with "not available yet"; the public
data are still loaded and counted, so a reader sees what will be scored. BROAD orientation is scored with
kinefuse's orientation filter beside pure gyroscope integration as the reference peer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.datasets import broad, gaitmap
from kinefuse.bench.datasets.markers import read_c3d, read_trc
from kinefuse.bench.scoring.orientation_error import ORIENTATION_METRICS, score_orientation
from kinefuse.bench.scoring.strapdown import integrate_gyro
from kinefuse.camera_calibration import read_calibration

NOT_YET = "not available yet"
STRAPDOWN = "gyroscope strapdown (no fusion, reference)"


def public_rows(folder: Path) -> list[dict]:
    """Rows for every BROAD trial and gaitmap-style recording below ``folder``."""
    folders = [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]
    rows = []
    for path in (trial for f in folders for trial in broad.find_trials(f)):
        rows += broad_rows(path)
    for recording in (r for f in folders for r in gaitmap.find_recordings(f)):
        rows += gaitmap_rows(recording)
    for calibration in sorted(p for f in folders for p in f.glob("*.toml") if _is_calibration(p)):
        rows.append(multiview_row(calibration))
    for path in sorted(p for f in folders for p in f.iterdir() if p.suffix.lower() in (".trc", ".c3d")):
        rows.append(marker_row(path))
    return rows


def _is_calibration(path: Path) -> bool:
    try:
        read_calibration(path)
    except ValueError:
        return False
    return True


def multiview_row(calibration: Path) -> dict:
    """3D keypoint error on a Pose2Sim project (calibration + videos or keypoint JSON): not available yet,
    with what was found, so a reader sees what will be scored."""
    cameras = read_calibration(calibration)
    project = calibration.parent.parent if calibration.parent.name == "calibration" else calibration.parent
    videos = sorted(p for p in project.rglob("*") if p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv"))
    json_folders = sorted({p.parent for p in project.rglob("*_keypoints.json")})
    note = (
        f"{NOT_YET}: pose estimation and triangulation come with the camera and fusion issues; "
        f"{len(cameras)} cameras in {calibration.name}, {len(videos)} videos, {len(json_folders)} keypoint JSON "
        "folders"
    )
    return make_row(f"Pose2Sim {project.name} ({calibration.stem})", "3D keypoint error", "mm", None, "lower",
                    note=note)  # fmt: skip


def marker_row(path: Path) -> dict:
    """Markers (TRC/C3D) are the reference for 3D keypoints; loaded and counted until that stage exists."""
    markers = read_trc(path) if path.suffix.lower() == ".trc" else read_c3d(path)
    note = (
        f"{NOT_YET}: 3D keypoints come with the camera and fusion issues; {len(markers.names)} markers, "
        f"{len(markers.time)} frames"
    )
    return make_row(f"markers {path.name}", "3D keypoint error", "mm", None, "lower", note=note)


def broad_rows(path: Path) -> list[dict]:
    """kinefuse's orientation error on one BROAD trial beside the gyroscope strapdown baseline."""
    from kinefuse.fusion.orientation_filter import OrientationFilter

    trial = broad.load_trial(path)
    q0 = _first_valid(trial.opt_quat)
    baseline = integrate_gyro(trial.gyr, trial.rate_hz, q0)
    gyr, acc, mag = (np.ascontiguousarray(x, dtype=np.float64) for x in (trial.gyr, trial.acc, trial.mag))
    ours = {"9d": OrientationFilter(trial.rate_hz).update_batch(gyr, acc, mag)["quat9d"],
            "6d": OrientationFilter(trial.rate_hz).update_batch(gyr, acc)["quat6d"]}  # fmt: skip
    case = f"BROAD {trial.name}"
    rows = []
    for mode, metric, key in ORIENTATION_METRICS:
        mine = score_orientation(ours[mode], trial.opt_quat, trial.movement, mode=mode, align_sensor=False)
        peer = score_orientation(baseline, trial.opt_quat, trial.movement, mode=mode, align_sensor=False)
        note = f"orientation filter (VQF algorithm), {mine['samples']} movement samples; vqf and imufusion: bench ahrs"
        rows.append(make_row(case, metric, "deg", mine[key], "lower", peer=STRAPDOWN, peer_value=peer[key],
                             note=note))  # fmt: skip
    return rows


def _first_valid(quats: np.ndarray) -> np.ndarray:
    """The strapdown starts from the truth's first valid orientation, as a filter would after alignment."""
    return quats[np.flatnonzero(np.isfinite(quats).all(axis=1))[0]]


def gaitmap_rows(recording) -> list[dict]:
    """Gait event timing against the reference events (not available yet), with the reference counted."""
    events = gaitmap.load_stride_events(recording.stride_events)
    rows = []
    for side, strides in sorted(events.items()):
        note = (
            f"{NOT_YET}: gait event detection comes with the gait metrics; {len(strides)} reference strides"
        )
        for label in ("initial contact", "terminal contact"):
            rows.append(make_row(f"gaitmap {recording.name} {side}", f"{label} timing RMSE", "ms", None, "lower",
                                 note=note))  # fmt: skip
    return rows
