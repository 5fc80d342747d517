"""Scoring whether the motion stream's "good" is honest (issue 14): every segment orientation flagged good that
states a tolerance (kinefuse.types.SegmentOrientation.tolerance_deg) against the simulator's truth.

The error is the angle of the whole rotation between the value and the truth (not only the long axis). A value's
world is its own claim: a fused value's is the cameras' (the simulator's world); a strap's own value with a
magnetometer is magnetic ENU (x magnetic east, y magnetic north, z up), so the truth is turned into it with
the simulator's Earth field; a value that states no tolerance makes no claim to score. Items of both
revisions count, from the first item on (no warm-up is excused: a settling value must not say good).
Counted apart: values flagged good that state no tolerance, which a reader cannot check.

Keypoints: a measured keypoint (quality good) states its ``tolerance`` (px; the smoother's sigma with the
pose model's error as a floor, kinefuse.types.KeypointView), scored the same way against the simulator's
true landmark projected into the camera, both revisions; the note also gives the share beyond twice 2
sigma, the claim the smoother's sigma alone would make. The triangulated "3d" view (metres; its tolerance
the cameras' carried through the geometry) is scored against the true landmarks themselves.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.bench import make_row
from kinefuse.camera_calibration import project
from kinefuse.sim.detector_model import KEYPOINT_SETS
from kinefuse.storage.reader import device_meta
from kinefuse.types import TRIANGULATED_VIEW, WORLD_MAGNETIC, KeypointStatus, QualityLevel

METRIC = "good segment values beyond twice their tolerance"
KEYPOINT_METRIC = "good keypoints beyond twice their tolerance"
STREAM = "motion"  # the processor scored: the motion stream with its defaults


def honesty_rows(name: str, simulation, db, reader) -> list[dict]:
    """One row per scenario: the share of good, tolerance-stating segment values whose error exceeds twice
    the tolerance (goal 0), with the counts behind it."""
    rows = _of(reader.motion_segments(db), STREAM)
    if not len(rows["time_ns"]):
        return []
    errors, tolerance, good = _errors(simulation, db, rows), rows["tolerance_deg"], _good(rows)
    claimed = good & np.isfinite(tolerance)
    beyond = claimed & (errors > 2.0 * tolerance)
    share = float(beyond.sum() / claimed.sum()) if claimed.any() else None
    ratio = errors[claimed] / tolerance[claimed]
    spread = (
        f"; error over tolerance p99 {np.percentile(ratio, 99):.2f}, max {ratio.max():.2f}"
        if len(ratio)
        else ""
    )
    note = (f"{int(good.sum())} of {len(good)} segment values good, {int(claimed.sum())} of them with a tolerance "
            f"(the rest state none: {int((good & ~claimed).sum())}); {int(beyond.sum())} beyond twice it{spread}; "
            f"tolerances {_span(tolerance[claimed])} deg; goal 0")  # fmt: skip
    if share is None:
        note = f"insufficient data: no good segment value stated a tolerance to check; {note}"
    return [make_row(name, METRIC, "share", share, "lower", note=note)]


def keypoint_honesty_rows(name: str, simulation, db, reader) -> list[dict]:
    """Per camera, and for the triangulated "3d" view where there is one: the share of measured (good)
    keypoints whose error exceeds twice their stated tolerance."""
    rows = []
    for cam in simulation.cameras:
        views = _of(reader.motion_keypoints(db, view=cam.name), STREAM)
        if not len(views["time_ns"]):
            continue
        points = _true_landmarks(simulation, db, cam.keypoint_set, views["time_ns"])
        truth = project(cam.calibration, points.reshape(-1, 3)).reshape(points.shape[0], points.shape[1], 2)
        rows.append(_keypoint_row(name, cam.name, views, truth, "px"))
    views = _of(reader.motion_keypoints(db, view=TRIANGULATED_VIEW), STREAM)
    if len(views["time_ns"]):
        truth = _true_landmarks(simulation, db, simulation.cameras[0].keypoint_set, views["time_ns"])
        rows.append(_keypoint_row(name, TRIANGULATED_VIEW, views, truth, "m"))
    return rows


def _true_landmarks(simulation, db, keypoint_set: str, time_ns: np.ndarray) -> np.ndarray:
    """The simulator's true 3D landmarks (m, K, 3) of ``keypoint_set`` at the stream's item times."""
    meta = device_meta(db, simulation.cameras[0].name)  # every simulated device shares the time zero
    landmarks = simulation.body.landmarks((time_ns - meta["sim_time_zero_ns"]) / 1e9)
    return np.stack([landmarks[m] for m in KEYPOINT_SETS[keypoint_set].landmarks], axis=1)


def _keypoint_row(name: str, view: str, views: dict, truth: np.ndarray, unit: str) -> dict:
    error = np.linalg.norm(views["position"] - truth, axis=2)
    good = views["status"] == KeypointStatus.MEASURED
    claimed = good & np.isfinite(views["tolerance"])
    ratio = error[claimed] / views["tolerance"][claimed]
    share = float(np.mean(ratio > 2.0)) if len(ratio) else None
    by_sigma = float(np.mean(error[good] > 4.0 * views["sigma"][good])) if good.any() else float("nan")
    scale, shown = (1000.0, "mm") if unit == "m" else (1.0, unit)
    note = (f"{view}: {int(claimed.sum())} measured keypoints with a tolerance of {good.size} (both "
            f"revisions; {int((good & ~claimed).sum())} good without one); error over tolerance p50 "
            f"{np.median(ratio):.2f}, p99 {np.percentile(ratio, 99):.2f}, max {ratio.max():.1f}; error p50 "
            f"{scale * np.median(error[claimed]):.1f} {shown}, tolerance p50 "
            f"{scale * np.median(views['tolerance'][claimed]):.1f} {shown}; beyond twice 2 sigma alone: "
            f"{by_sigma:.3f}; goal 0"
            if len(ratio) else f"insufficient data: {view} measured no keypoint with a tolerance")  # fmt: skip
    return make_row(name, f"{KEYPOINT_METRIC} ({view})", "share", share, "lower", note=note)


def _of(rows: dict, processor: str) -> dict:
    """The rows of one processor (the scenario may run others beside it)."""
    keep = rows["processor"] == processor
    return {key: value[keep] for key, value in rows.items()}


def _good(rows: dict) -> np.ndarray:
    return np.array([q == QualityLevel.GOOD.value for q in rows["quality"]], dtype=bool)


def _errors(simulation, db, rows: dict) -> np.ndarray:
    """Each row's whole-rotation error (deg) against the truth in the value's own world; NaN without a value."""
    errors = np.full(len(rows["time_ns"]), np.nan)
    to_magnetic = _magnetic_from_world(simulation)
    for device in set(rows["device_id"].tolist()):
        mine = rows["device_id"] == device
        meta = device_meta(db, device)
        t = (rows["time_ns"][mine] - meta["sim_time_zero_ns"]) / 1e9
        truth = Rotation.from_matrix(simulation.body.segment(meta["segment"], t).R)
        quaternion = rows["quaternion"][mine].astype(np.float64)
        known = np.isfinite(quaternion).all(axis=1)
        value = Rotation.from_quat(np.where(known[:, None], quaternion, [1.0, 0, 0, 0]), scalar_first=True)
        magnetic = rows["world"][mine] == WORLD_MAGNETIC
        world_truth = np.where(magnetic[:, None], (to_magnetic * truth).as_quat(), truth.as_quat())
        error = np.degrees((Rotation.from_quat(world_truth).inv() * value).magnitude())
        errors[np.flatnonzero(mine)] = np.where(known, error, np.nan)
    return errors


def _magnetic_from_world(simulation) -> Rotation:
    """The turn about the vertical from the simulator's world to magnetic ENU (its y on the horizontal field)."""
    field = simulation.magnetic.earth_field_world()
    return Rotation.from_euler("z", np.arctan2(field[0], field[1]))


def _span(values: np.ndarray) -> str:
    return f"{values.min():.1f}-{values.max():.1f}" if len(values) else "none"
