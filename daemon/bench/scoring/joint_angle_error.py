"""Scoring the ``joint_angles`` metrics on the synthetic athlete: each joint whose two segments carry straps,
its three ISB angles (kinefuse.joint_angles) as the daemon stored them, and the hips' and knees' flexion and
adduction from the 3D keypoints, against the simulator's true joint angles (kinefuse.sim.body.Body.joint_angles,
built on the same definitions), at the metrics' times; and the hips' and knees' flexion as each camera's
image shows them (2D projection), both sides pooled; and the trunk's forward lean, from each camera's image and
from the 3D keypoints, against the true trunk line's (shoulders' to hips' midpoint) angle from vertical along
the athlete's heading.

Scored: every value from ``WARMUP_S`` on; the note gives the share of each quality level and the error of the
values reported good alone. Times: a metric's time is its motion item's (aligned host time); the
true angles are taken at that time less the first strap's (or, without straps, the first camera's)
aligned-time offset, as the segment scoring does.
"""

from __future__ import annotations

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.scoring.segment_error import sim_time_s
from kinefuse.joint_angles import ANGLES, KEYPOINT_ANGLES, joints_between

WARMUP_S = 10.0
# the processor ids the accuracy runs give the joint_angles processors (segment_error.processors)
SEGMENTS_PROCESSOR, KEYPOINTS_PROCESSOR = "joint_angles", "joint_angles_keypoints"
CAMERA_PROCESSOR = "joint_angles_camera"


def joint_angle_rows(name: str, simulation, db) -> list[dict]:
    """Rows of both joint_angles processors the accuracy runs have: from the straps' segments and from the
    3D keypoints."""
    straps = {d.segment: d for d in simulation.imus}
    from_straps = {joint: ANGLES for joint in joints_between(straps)}
    from_keypoints = {
        f"{side}_{joint}": KEYPOINT_ANGLES for side in ("left", "right") for joint in ("hip", "knee")
    }
    clock = simulation.imus[0] if simulation.imus else simulation.cameras[0] if simulation.cameras else None
    if clock is None:
        return []
    keypoint_trunk = _keypoint_trunk_rows(name, simulation, db, clock)
    return [*_rows(name, simulation, db, clock, SEGMENTS_PROCESSOR, from_straps, "from straps"),
            *_rows(name, simulation, db, clock, KEYPOINTS_PROCESSOR, from_keypoints, "from 3D keypoints",
                   keypoint_trunk),
            *_camera_rows(name, simulation, db)]  # fmt: skip


def _camera_rows(name: str, simulation, db) -> list[dict]:
    """Per camera, the hip and knee flexion RMSE of its 2D projection, both sides pooled; one honesty row."""
    rows, good_errors = [], []
    for camera in simulation.cameras:
        for joint in ("hip", "knee"):
            errors, levels, ratios, sides = _camera_joint(simulation, db, camera, joint)
            if not len(errors):
                continue
            good = levels == "good"
            good_errors.append(ratios)
            share = ", ".join(f"{np.mean(levels == level):.0%} {level}" for level in ("good", "degraded",
                                                                                      "insufficient"))  # fmt: skip
            valued = np.isfinite(errors)
            note = (f"{len(errors)} values of both sides after {WARMUP_S:.0f} s ({share}); over the good ones "
                    f"only: {_fmt(_rms(errors[good & valued]))} deg; {sides}; signed median "
                    f"{np.nanmedian(errors):+.1f} deg; "
                    f"the {CAMERA_PROCESSOR} metric, {camera.name}'s image")  # fmt: skip
            rows.append(make_row(name, f"{joint} flexion RMSE (2D projection, {camera.name})", "deg",
                                 _rms(errors[valued]), "lower", note=note))  # fmt: skip
        rows += _trunk_lean_row(name, simulation, db, camera, good_errors)
    return rows + _honesty_row(name, "2D projection", CAMERA_PROCESSOR, good_errors) if rows else rows


def _trunk_lean_row(name: str, simulation, db, camera, good_errors: list) -> list[dict]:
    query = ("SELECT m.time_ns, m.value, m.quality, m.tolerance FROM metrics m JOIN devices d "
             "ON d.id = m.device_ref WHERE m.analysis_id IS NULL AND m.processor = ? AND m.name = 'trunk.lean' "
             "AND d.device_id = ?")  # fmt: skip
    rows = list(db.query(query, [CAMERA_PROCESSOR, camera.name]))
    return _lean_row(name, simulation, db, camera, rows, good_errors, f"2D projection, {camera.name}",
                     f"{camera.name}'s image")  # fmt: skip


def _keypoint_trunk_rows(name: str, simulation, db, clock):
    """The trunk's lean from the 3D keypoints, as ``_rows`` takes its extra rows: given its good values'
    |error| / tolerance list, the row (none where the processor gave no lean)."""
    query = ("SELECT time_ns, value, quality, tolerance FROM metrics WHERE analysis_id IS NULL AND processor = ? "
             "AND name = 'trunk.lean' ORDER BY time_ns")  # fmt: skip
    rows = list(db.query(query, [KEYPOINTS_PROCESSOR]))
    return lambda good_errors: _lean_row(name, simulation, db, clock, rows, good_errors, "from 3D keypoints",
                                         f"the {KEYPOINTS_PROCESSOR} metric")  # fmt: skip


def _lean_row(name: str, simulation, db, clock, rows: list, good_errors: list, what: str, where: str) -> list:
    """The trunk lean's RMSE against the true trunk line's lean along the heading, for stored ``rows``."""
    if not rows:
        return []
    sim_t = sim_time_s(db, clock, np.array([r["time_ns"] for r in rows], dtype=np.int64))
    marks = simulation.body.landmarks(sim_t)
    trunk = 0.5 * (marks["left_shoulder"] + marks["right_shoulder"] - marks["left_hip"] - marks["right_hip"])
    heading = simulation.body.heading_rad
    ahead = trunk[:, 0] * np.cos(heading) + trunk[:, 1] * np.sin(heading)
    error = np.array([np.nan if r["value"] is None else r["value"] for r in rows]) - np.degrees(
        np.arctan2(ahead, trunk[:, 2])
    )
    level = np.array([r["quality"] for r in rows])
    tolerance = np.array([np.nan if r["tolerance"] is None else r["tolerance"] for r in rows])
    after = sim_t >= WARMUP_S
    stated = after & (level == "good") & np.isfinite(tolerance)
    good_errors.append(np.abs(error[stated]) / tolerance[stated])
    valued = after & np.isfinite(error)
    share = ", ".join(
        f"{np.mean(level[after] == lv):.0%} {lv}" for lv in ("good", "degraded", "insufficient")
    )
    note = (f"{int(after.sum())} values after {WARMUP_S:.0f} s ({share}); over the good ones only: "
            f"{_fmt(_rms(error[valued & (level == 'good')]))} deg; signed median {np.nanmedian(error[valued]):+.1f} "
            f"deg; against the true trunk line's lean along the heading; {where}")  # fmt: skip
    return [make_row(name, f"trunk lean RMSE ({what})", "deg", _rms(error[valued]), "lower", note=note)]


def _camera_joint(simulation, db, camera, joint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """A camera's flexion values of one joint, both sides, after the warm-up: error (deg, NaN where none),
    quality level, |error| / tolerance of the good ones stating one, and each side's RMSE in words."""
    query = ("SELECT m.time_ns, m.value, m.quality, m.tolerance FROM metrics m JOIN devices d "
             "ON d.id = m.device_ref WHERE m.analysis_id IS NULL AND m.processor = ? AND m.name = ? "
             "AND d.device_id = ?")  # fmt: skip
    errors, levels, ratios, sides = [], [], [], []
    for side in ("left", "right"):
        rows = list(db.query(query, [CAMERA_PROCESSOR, f"{side}_{joint}.flexion", camera.name]))
        if not rows:
            continue
        sim_t = sim_time_s(db, camera, np.array([r["time_ns"] for r in rows], dtype=np.int64))
        truth = simulation.body.joint_angles(sim_t)[f"{side}_{joint}"][:, 0]
        value = np.array([np.nan if r["value"] is None else r["value"] for r in rows])
        level = np.array([r["quality"] for r in rows])
        tolerance = np.array([np.nan if r["tolerance"] is None else r["tolerance"] for r in rows])
        after = sim_t >= WARMUP_S
        stated = after & (level == "good") & np.isfinite(tolerance)
        errors.append((value - truth)[after])
        levels.append(level[after])
        ratios.append(np.abs(value - truth)[stated] / tolerance[stated])
        valued = (value - truth)[after]
        sides.append(f"{side} {_fmt(_rms(valued[np.isfinite(valued)]))} deg")
    if not errors:
        return np.empty(0), np.empty(0), np.empty(0), ""
    return np.concatenate(errors), np.concatenate(levels), np.concatenate(ratios), ", ".join(sides)


def _rows(
    name: str, simulation, db, clock, processor: str, joints: dict, what: str, extra=None
) -> list[dict]:
    """Each joint angle's RMSE row, ``extra(good_errors)``'s rows, and their honesty row."""
    rows, good_errors = [], []  # good_errors: (|error| / tolerance) of every good value stating one
    for joint, angles in joints.items():
        times, values, levels, tolerance = _stored(db, processor, joint, angles)
        if not len(times):
            continue
        sim_t = sim_time_s(db, clock, times)
        truth = simulation.body.joint_angles(sim_t)[joint]
        after = sim_t >= WARMUP_S
        for i, angle in enumerate(angles):  # a joint's angles may differ in quality (a leg joint turned)
            valued = after & np.isfinite(values[:, i])
            good = valued & (levels[:, i] == "good")
            share = ", ".join(f"{np.mean(levels[after, i] == level):.0%} {level}"
                              for level in ("good", "degraded", "insufficient"))  # fmt: skip
            error = values[:, i] - truth[:, i]
            stated = good & np.isfinite(tolerance[:, i])
            good_errors.append(np.abs(error[stated]) / tolerance[stated, i])
            note = (f"{int(valued.sum())} values after {WARMUP_S:.0f} s ({share}); over the good ones only: "
                    f"{_fmt(_rms(error[good]))} deg; ISB joint coordinate system, the {processor} metric")  # fmt: skip
            rows.append(make_row(name, f"{joint.replace('_', ' ')} {angle} RMSE ({what})", "deg",
                                 _rms(error[valued]), "lower", note=note))  # fmt: skip
    rows += extra(good_errors) if rows and extra is not None else []
    return rows + _honesty_row(name, what, processor, good_errors) if rows else rows


def _honesty_row(name: str, what: str, processor: str, good_errors: list) -> list[dict]:
    """honesty: the share of good values, with a stated tolerance, whose error exceeds twice it."""
    ratios = np.concatenate(good_errors) if good_errors else np.empty(0)
    metric = f"honesty: good joint angles beyond twice their tolerance ({what})"
    if not len(ratios):
        why = f"insufficient data: no value reported good with a tolerance (the {processor} metric)"
        return [make_row(name, metric, "share", None, "lower", note=why)]
    return [make_row(name, metric, "share", float(np.mean(ratios > 2.0)), "lower",
                     note=f"{len(ratios)} good values with a tolerance after {WARMUP_S:.0f} s; error over "
                          f"tolerance p50 {np.median(ratios):.2f}, max {np.max(ratios):.2f}")]  # fmt: skip


def _stored(db, processor: str, joint: str, angles) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The joint's stored angles: item times (ns), and per angle (n, len(angles)) the values in degrees (NaN
    where none), their quality levels and tolerances (deg, NaN where none)."""
    query = (
        "SELECT time_ns, value, quality, tolerance FROM metrics WHERE analysis_id IS NULL "
        "AND processor = ? AND name = ? ORDER BY time_ns"
    )  # the live stream's
    columns = {angle: list(db.query(query, [processor, f"{joint}.{angle}"])) for angle in angles}
    first = columns[angles[0]]
    times = np.array([r["time_ns"] for r in first], dtype=np.int64)
    shape = (len(times), len(angles))
    values, tolerance = (
        np.array([[np.nan if r[key] is None else r[key] for r in columns[a]] for a in angles], dtype=np.float64)
        .T.reshape(shape) for key in ("value", "tolerance")
    )  # fmt: skip
    levels = np.array([[r["quality"] for r in columns[a]] for a in angles]).T.reshape(shape)
    return times, values, levels, tolerance


def _rms(error: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(error**2))) if len(error) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
