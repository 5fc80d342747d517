"""Scoring IMU + video fusion on the synthetic athlete, from what the pipeline stored: the knee angle (the
angle between the thigh's and the shank's long axes) from triangulated keypoints alone, from the two
straps alone, and fused, each against the truth.

The cameras' 2D keypoints are resampled onto a common 30 Hz timeline (each on its own aligned clock, with
validity) and triangulated; the straps' samples go through the orientation filter (6D: these straps have
no magnetometer) and are slerped onto the same timeline. The straps' mounting on their segments is taken
from the scenario (a sensor-to-segment calibration, which a real session gets from a calibration pose).
"IMU alone" gets one heading alignment to the video world, from the first ``_ALIGN_S`` seconds (the
circular median of the heading disagreements there), and then runs on its own, as after a calibration pose.
"""

from __future__ import annotations

import json

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.bench import make_row
from kinefuse.camera_calibration import triangulate
from kinefuse.fusion.orientation_filter import OrientationFilter
from kinefuse.fusion.segments import (
    angle_between,
    circular_median,
    fuse_heading,
    heading_disagreement,
    long_axis,
    segment_quaternion,
)
from kinefuse.fusion.timeline import common_grid, resample, resample_quaternions
from kinefuse.sim.detector_model import KEYPOINT_SETS

GRID_HZ = 30.0
WARMUP_S = 10.0  # clock alignment and the orientation filters settle first; the rest is scored
_ALIGN_S = 2.0
METRIC = "knee angle RMSE (thigh-shank axes)"


def knee_angle_rows(name: str, simulation, db, reader) -> list[dict]:
    straps = {d.segment: d for d in simulation.imus}
    side = next((s for s in ("left", "right") if f"{s}_thigh" in straps and f"{s}_shank" in straps), None)
    if side is None or len(simulation.cameras) < 2:
        return []  # the scenario is not set up for this measurement
    devices = {
        row["device_id"]: json.loads(row["meta"]) for row in db.query("SELECT device_id, meta FROM devices")
    }
    zero_ns = devices[simulation.cameras[0].name][
        "sim_time_zero_ns"
    ]  # the same for every device of the source
    frames = {
        cam.name: _relative(reader.keypoint_frames(db, device_id=cam.name), zero_ns)
        for cam in simulation.cameras
    }
    samples = {seg: _relative(reader.imu_samples(db, device_id=straps[f"{side}_{seg}"].name), zero_ns)
               for seg in ("thigh", "shank")}  # fmt: skip
    start = max(np.min(stored["t"]) for stored in [*frames.values(), *samples.values()])
    end = min(np.max(stored["t"]) for stored in [*frames.values(), *samples.values()])
    grid = common_grid(start, end, GRID_HZ)  # anchored at the simulation's time zero: the same grid every run
    video = _video_points(simulation, frames, grid, side)
    strap_axes = {
        seg: _strap_quaternions(stored, straps[f"{side}_{seg}"], grid) for seg, stored in samples.items()
    }
    thigh = straps[f"{side}_thigh"]
    marks = simulation.body.landmarks(
        grid - np.median(samples["thigh"]["t"] - samples["thigh"]["seq"] / thigh.rate_hz)
    )
    truth = angle_between(
        marks[f"{side}_knee"] - marks[f"{side}_hip"], marks[f"{side}_ankle"] - marks[f"{side}_knee"]
    )
    video_axes = {"thigh": video["knee"] - video["hip"], "shank": video["ankle"] - video["knee"]}
    fused = {seg: fuse_heading(grid, strap_axes[seg], video_axes[seg]) for seg in ("thigh", "shank")}
    estimates = {
        "video": angle_between(video_axes["thigh"], video_axes["shank"]),
        "imu": angle_between(
            *(_aligned_once(grid, strap_axes[s], video_axes[s]) for s in ("thigh", "shank"))
        ),
        "fused": angle_between(long_axis(fused["thigh"].quaternion), long_axis(fused["shank"].quaternion)),
    }
    scored = grid >= grid[0] + WARMUP_S
    rmse = {key: _rmse(value - truth, scored) for key, value in estimates.items()}
    coverage = {key: np.mean(np.isfinite(value[scored])) for key, value in estimates.items()}
    note = (f"{side} knee, 30 Hz timeline after {WARMUP_S:.0f} s; fused covers {coverage['fused']:.0%} of it, "
            f"video {coverage['video']:.0%}, IMU {coverage['imu']:.0%}")  # fmt: skip
    return [
        make_row(name, METRIC, "deg", rmse["fused"], "lower", peer="video alone (triangulated keypoints)",
                 peer_value=rmse["video"], note=note),
        make_row(name, METRIC, "deg", rmse["fused"], "lower",
                 peer="IMU alone (6D, heading aligned once as the walk starts)", peer_value=rmse["imu"], note=note),
    ]  # fmt: skip


def _video_points(simulation, frames, grid, side) -> dict[str, np.ndarray]:
    names = KEYPOINT_SETS["COCO-17"].keypoints
    wanted = {joint: names.index(f"{side}_{joint}") for joint in ("hip", "knee", "ankle")}
    pixels, weights = [], []
    for cam in simulation.cameras:
        stored = frames[cam.name]
        times = stored["t"]
        order = np.argsort(times, kind="stable")
        keep = order[np.concatenate([[True], np.diff(times[order]) > 0])]
        kp = np.asarray(stored["keypoints"], dtype=np.float64)[keep][:, list(wanted.values())]
        kp[kp[..., 2] < 0.3] = np.nan  # a detection this unsure is no detection
        xy, valid = resample(times[keep], kp[..., :2], grid, max_gap_s=0.05)
        pixels.append(xy)
        weights.append(
            np.where(valid[:, None], np.nan_to_num(resample(times[keep], kp[..., 2], grid, 0.05)[0]), 0)
        )
    points = triangulate([cam.calibration for cam in simulation.cameras], np.stack(pixels), np.stack(weights))
    return {joint: points[:, i] for i, joint in enumerate(wanted)}


def _strap_quaternions(stored, device, grid) -> np.ndarray:
    times = stored["t"]
    order = np.argsort(times, kind="stable")
    gyr, acc = (np.ascontiguousarray(np.asarray(stored[k], dtype=np.float64)[order]) for k in ("gyr", "acc"))
    sensor = OrientationFilter(device.rate_hz).update_batch(gyr, acc)["quat6d"]
    keep = np.concatenate([[True], np.diff(times[order]) > 0])
    q, _ = resample_quaternions(times[order][keep], sensor[keep], grid, max_gap_s=0.1)
    return segment_quaternion(np.nan_to_num(q, nan=1.0), device.mounting) * np.where(np.isnan(q), np.nan, 1.0)


def _relative(stored: dict, zero_ns: int) -> dict:
    """Stored rows with ``t``: aligned time in seconds since the simulation's time zero."""
    return {**stored, "t": (np.asarray(stored["time_ns"]) - zero_ns) / 1e9}


def _aligned_once(grid, quaternions, video_axis) -> np.ndarray:
    """The strap's long axis turned once by the heading disagreement with the video over the first
    ``_ALIGN_S`` seconds of usable video (a standing leg is too vertical to say a heading): their weighted
    circular median (weights h², as the fusion's measurement variances), since one sample's disagreement
    can be tens of degrees off."""
    disagreement, horizontal, usable = heading_disagreement(quaternions, video_axis)
    if not usable.any():
        return np.full((len(grid), 3), np.nan)
    window = usable & (grid <= grid[usable][0] + _ALIGN_S)
    psi = circular_median(disagreement[window], horizontal[window] ** 2)
    axis = Rotation.from_euler("z", float(np.nan_to_num(psi))).apply(np.nan_to_num(long_axis(quaternions)))
    axis[~np.isfinite(long_axis(quaternions)).all(axis=1)] = np.nan
    return axis if np.isfinite(psi) else np.full_like(axis, np.nan)


def _rmse(error: np.ndarray, scored: np.ndarray) -> float | None:
    usable = scored & np.isfinite(error)
    return float(np.sqrt(np.mean(error[usable] ** 2))) if usable.any() else None
