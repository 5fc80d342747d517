"""A stored session's triangulated keypoints (the motion stream's view "3d") as a TRC file, the marker format
OpenSim and Pose2Sim read.

TRC (Motion Analysis Corporation's track row column format, as OpenSim's TRCFileAdapter reads it), tab
separated: line 1 ``PathFileType 4 (X/Y/Z) NAME``; line 2 the header keys ``DataRate CameraRate NumFrames
NumMarkers Units OrigDataRate OrigDataStartFrame OrigNumFrames`` and line 3 their values; line 4 ``Frame#
Time`` then each marker's name followed by two empty columns; line 5 ``X1 Y1 Z1 X2 ...`` under them; then
one row per frame, numbered from 1. A marker without a value in a frame is written ``NaN``.

Axes: kinefuse's world is the calibration's, z up; OpenSim's models are y up (x forward), so by default the
file has (x, z, -y) of kinefuse's (x, y, z): a rotation, lengths and handedness kept. ``up="z"`` keeps
kinefuse's axes. Units: metres."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinefuse.keypoints import KEYPOINT_NAMES
from kinefuse.storage import reader
from kinefuse.types import TRIANGULATED_VIEW, KeypointStatus, TriangulationCheck

_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # (x, y, z) -> (x, z, -y)


def session_markers(db: Path, session_id: int, analysis_id: int | None, good_only: bool):
    """The session's "3d" keypoints (the live stream's, or analysis ``analysis_id``'s), their most refined
    revision, on the stream's grid: (times s from the first item, positions (n, K, 3) m, NaN where there is
    no value (or, ``good_only``, no good one), marker names, rate Hz); ValueError when there are none."""
    views = reader.motion_keypoints(db, session_id, TRIANGULATED_VIEW, analysis_id=analysis_id)
    if not len(views["time_ns"]):
        raise ValueError(f"{db}: session {session_id} has no triangulated keypoints (the view \"3d\": two "
                         "calibrated cameras and the motion processor)")  # fmt: skip
    revision = max(views["revision"])
    keep = np.asarray(views["revision"]) == revision
    status, checks = views["status"][keep], views["checks"][keep]
    positions = views["position"][keep].astype(np.float64)
    wanted = status == KeypointStatus.MEASURED if good_only else status != KeypointStatus.MISSING
    if good_only:  # and no bone or drift check against it
        wanted &= (checks & (TriangulationCheck.BONE_LENGTH | TriangulationCheck.CAMERA_DRIFT)) == 0
    positions[~wanted] = np.nan
    # the items' times are on the stream's grid; a frame the session has no item for is a row of NaN
    times = np.asarray(views["time_ns"])[keep]
    period = float(np.median(np.diff(np.unique(times)))) if len(times) > 1 else 1e9
    frame = np.round((times - times.min()) / period).astype(np.int64)
    grid = np.full((frame.max() + 1, *positions.shape[1:]), np.nan)
    grid[frame] = positions
    return np.arange(len(grid)) * period / 1e9, grid, KEYPOINT_NAMES[views["keypoint_set"][0]], 1e9 / period


def write_trc(
    path: Path, times: np.ndarray, positions: np.ndarray, names, rate_hz: float, up: str = "y"
) -> None:
    """``positions`` (n, K, 3) at ``times`` (s) as TRC, in OpenSim's y-up axes (``up="y"``) or kinefuse's."""
    if up not in ("y", "z"):
        raise ValueError(f"up must be 'y' or 'z', got {up!r}")
    values = positions @ _Y_UP.T if up == "y" else positions
    frames, markers = values.shape[:2]
    header = [
        f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate_hz:g}\t{rate_hz:g}\t{frames}\t{markers}\tm\t{rate_hz:g}\t1\t{frames}",
        "Frame#\tTime\t" + "\t\t\t".join(names) + "\t\t",
        "\t\t" + "\t".join(f"X{i}\tY{i}\tZ{i}" for i in range(1, markers + 1)),
        "",
    ]
    rows = [
        f"{frame + 1}\t{time:.6f}\t" + "\t".join("NaN" if np.isnan(v) else f"{v:.6f}" for v in row.ravel())
        for frame, (time, row) in enumerate(zip(times, values, strict=True))
    ]
    path.write_text("\n".join(header + rows) + "\n", encoding="ascii")
