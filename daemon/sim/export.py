"""``kinefuse simulate``: a scenario written to a folder as a recording plus its exact truth.

Layout (all CSV with a header row; times in seconds of true time unless named otherwise):

- ``scenario.toml``: the scenario as given; ``calibration.toml``: every camera, Pose2Sim format
- ``imu/NAME.csv``: what reached the host: seq, device_ticks, arrival_s, acc (m/s²), gyr (rad/s), mag (µT)
- ``keypoints/NAME.csv``: delivered frames: seq, device_ticks, arrival_s, then x, y, c per keypoint;
  ``keypoints/NAME_personN.csv`` the same for the N-th other person in the scenario (``[[people]]``)
- ``video/NAME.mp4``: rendered frames, for cameras with ``render = true``
- ``truth/clocks.json``: each device's clock (hz, offset, skew) and link
- ``truth/imu/NAME.csv``: every sample taken: seq, t, kept, arrival_s, saturated, ideal acc/gyr/mag, biases,
  sensor orientation (quaternion w, x, y, z)
- ``truth/keypoints/NAME[_personN].csv``: every frame taken: seq, t, reported_t, delivered, swapped, dropped, and per
  keypoint the perfect projection and the occluded / scripted_missing / out_of_view flags
- ``truth/joint_angles.csv``, ``truth/segments.csv`` (quaternion and position of each segment),
  ``truth/landmarks.csv`` (3D, metres), at ``TRUTH_RATE_HZ``; ``truth/events.csv``: gait events

Numbers are written with a fixed format, so the same scenario and seed give the same bytes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.camera_calibration import write_calibration
from kinefuse.sim.body import SEGMENTS
from kinefuse.sim.render import render_video
from kinefuse.sim.simulate import CameraChunk, ImuChunk, Simulation

TRUTH_RATE_HZ = 100.0
CHUNK_S = 10.0  # as the live source's default, so both give the same data
_FORMAT = "%.9g"
_AXES = ("x", "y", "z")


def export(simulation: Simulation, out: Path, scenario_text: str) -> list[Path]:
    """Simulate the whole scenario into ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    duration = simulation.duration_s
    chunks = [simulation.chunk(i, CHUNK_S, duration) for i in range(int(np.ceil(duration / CHUNK_S)))]
    written = [_write_text(out / "scenario.toml", scenario_text)]
    cameras = [c.calibration for c in simulation.cameras]
    if cameras:
        write_calibration(out / "calibration.toml", cameras)
        written.append(out / "calibration.toml")
    for device_chunks in zip(*chunks, strict=True):  # one device's chunks, in time order
        written += _device_files(out, simulation, device_chunks)
    written.append(_write_text(out / "truth" / "clocks.json", _clocks_json(simulation)))
    written += _body_truth(out / "truth", simulation)
    return written


def _device_files(out: Path, simulation: Simulation, chunks: tuple) -> list[Path]:
    if isinstance(chunks[0], ImuChunk):
        return _imu_files(out, chunks)
    files = _camera_files(out, chunks)
    device = chunks[0].device
    if device.render:
        t = np.concatenate([c.t for c in chunks])
        path = out / "video" / f"{device.name}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        landmarks = _merged_landmarks(simulation, t)
        render_video(path, device.calibration, landmarks, t, device.fps, simulation.capsules(t))
        files.append(path)
    return files


def _merged_landmarks(simulation: Simulation, t: np.ndarray) -> dict:
    landmarks = dict(simulation.body.landmarks(t))
    for number, other in enumerate(simulation.others, start=1):
        landmarks |= {f"person{number}_{name}": xyz for name, xyz in other.landmarks(t).items()}
    return landmarks


def _imu_files(out: Path, chunks: tuple[ImuChunk, ...]) -> list[Path]:
    name = chunks[0].device.name
    seq, t, ticks = (np.concatenate([getattr(c, f) for c in chunks]) for f in ("seq", "t", "ticks"))
    track = {f: _cat(chunks, f) for f in ("acc", "gyr", "mag", "truth_acc", "truth_gyr", "truth_mag",
                                          "acc_bias", "gyr_bias", "saturated", "R_world_sensor")}  # fmt: skip
    kept = np.concatenate([c.delivery.kept for c in chunks])
    arrival = np.concatenate([c.delivery.arrival_s for c in chunks])
    measured = {"seq": seq, "device_ticks": ticks, "arrival_s": arrival}
    measured |= _vectors("acc", track["acc"]) | _vectors("gyr", track["gyr"])
    if track["mag"] is not None:
        measured |= _vectors("mag", track["mag"])
    truth = {"seq": seq, "t": t, "kept": kept, "arrival_s": arrival, "saturated": track["saturated"]}
    for field in ("truth_acc", "truth_gyr", "truth_mag", "acc_bias", "gyr_bias"):
        if track[field] is not None:
            truth |= _vectors(
                field.removeprefix("truth_"), track[field], prefix="" if "bias" in field else "ideal_"
            )
    truth |= _quaternion("sensor", Rotation.from_matrix(track["R_world_sensor"]).as_quat(scalar_first=True))
    return [
        _write_csv(out / "imu" / f"{name}.csv", {k: v[kept] for k, v in measured.items()}),
        _write_csv(out / "truth" / "imu" / f"{name}.csv", truth),
    ]


def _camera_files(out: Path, chunks: tuple[CameraChunk, ...]) -> list[Path]:
    files = _keypoint_files(out, chunks[0].device.name, chunks, [c.track for c in chunks])
    for number in range(1, len(chunks[0].others) + 1):
        tracks = [c.others[number - 1] for c in chunks]
        files += _keypoint_files(out, f"{chunks[0].device.name}_person{number}", chunks, tracks)
    return files


def _keypoint_files(out: Path, name: str, chunks: tuple[CameraChunk, ...], tracks: list) -> list[Path]:
    names = tracks[0].names
    seq, t, ticks = (np.concatenate([getattr(c, f) for c in chunks]) for f in ("seq", "t", "ticks"))
    delivered = np.concatenate([c.delivered for c in chunks])
    arrival = np.concatenate([c.delivery.arrival_s for c in chunks])
    keypoints = np.concatenate([track.keypoints for track in tracks])
    measured = {"seq": seq, "device_ticks": ticks, "arrival_s": arrival}
    for k, keypoint in enumerate(names):
        measured |= {f"{keypoint}_x": keypoints[:, k, 0], f"{keypoint}_y": keypoints[:, k, 1],
                     f"{keypoint}_c": keypoints[:, k, 2]}  # fmt: skip
    truth = {"seq": seq, "t": t, "reported_t": _cat_track(tracks, "reported_time_s"), "delivered": delivered,
             "swapped": _cat_track(tracks, "swapped"), "dropped": _cat_track(tracks, "dropped")}  # fmt: skip
    truth_xy = _cat_track(tracks, "truth_xy")
    flags = {f: _cat_track(tracks, f) for f in ("occluded", "scripted_missing", "out_of_view")}
    for k, keypoint in enumerate(names):
        truth |= {f"{keypoint}_x": truth_xy[:, k, 0], f"{keypoint}_y": truth_xy[:, k, 1]}
        truth |= {f"{keypoint}_{flag}": values[:, k] for flag, values in flags.items()}
    return [
        _write_csv(out / "keypoints" / f"{name}.csv", {k: v[delivered] for k, v in measured.items()}),
        _write_csv(out / "truth" / "keypoints" / f"{name}.csv", truth),
    ]


def _cat(chunks: tuple, field: str):
    parts = [getattr(c.track, field) for c in chunks]
    return None if parts[0] is None else np.concatenate(parts)


def _cat_track(tracks: list, field: str) -> np.ndarray:
    return np.concatenate([getattr(track, field) for track in tracks])


def _body_truth(folder: Path, simulation: Simulation) -> list[Path]:
    body = simulation.body
    t = np.arange(int(simulation.duration_s * TRUTH_RATE_HZ)) / TRUTH_RATE_HZ
    angles = {"t": t}
    for joint, values in body.joint_angles(t).items():
        angles |= {
            f"{joint}_{axis}": values[:, i] for i, axis in enumerate(("flexion", "adduction", "rotation"))
        }
    segments = {"t": t}
    for name, state in body.segments(t).items():
        if name in SEGMENTS:
            segments |= _quaternion(name, Rotation.from_matrix(state.R).as_quat(scalar_first=True))
            segments |= _vectors(f"{name}_p", state.position)
    landmarks = {"t": t}
    for name, xyz in body.landmarks(t).items():
        landmarks |= _vectors(name, xyz)
    events = body.gait_events(0.0, simulation.duration_s)
    events_text = "side,kind,time_s\n" + "".join(f"{e.side},{e.kind},{_FORMAT % e.time_s}\n" for e in events)
    return [
        _write_csv(folder / "joint_angles.csv", angles),
        _write_csv(folder / "segments.csv", segments),
        _write_csv(folder / "landmarks.csv", landmarks),
        _write_text(folder / "events.csv", events_text),
    ]


def _clocks_json(simulation: Simulation) -> str:
    devices = {}
    for device in [*simulation.imus, *simulation.cameras]:
        devices[device.name] = {
            "clock": dataclasses.asdict(device.clock),
            "link": dataclasses.asdict(device.link),
        }
    return json.dumps({"seed": simulation.seed, "devices": devices}, indent=2, sort_keys=True) + "\n"


def _vectors(name: str, values: np.ndarray, prefix: str = "") -> dict:
    return {f"{prefix}{name}_{axis}": values[:, i] for i, axis in enumerate(_AXES)}


def _quaternion(name: str, quat_wxyz: np.ndarray) -> dict:
    return {f"{name}_q{part}": quat_wxyz[:, i] for i, part in enumerate("wxyz")}


def _write_csv(path: Path, columns: dict[str, np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([np.asarray(v, dtype=np.float64) for v in columns.values()])
    formats = [("%d" if np.asarray(v).dtype.kind in "biu" else _FORMAT) for v in columns.values()]
    np.savetxt(path, table, fmt=formats, delimiter=",", header=",".join(columns), comments="")
    return path


def _write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
