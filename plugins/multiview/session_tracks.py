"""A stored session's cameras as the multiview commands read them: each camera's keypoint frames on their
clock-aligned times, and the calibrations the cameras declared when they were recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinefuse.camera_calibration import CameraCalibration, calibration_from_meta
from kinefuse.storage import reader
from kinefuse.types import DeviceKind


def stored_tracks(db: Path, session: str) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The session's name for messages and, per camera with aligned frames, (times s, keypoints (n, K, 3)) in
    time order."""
    row = reader.find_session(db, session)
    tracks = {}
    for device in reader.session_devices(db, row["id"]):
        if device["kind"] != DeviceKind.CAMERA:
            continue
        frames = reader.keypoint_frames(db, row["id"], device["device_id"])
        aligned = ~np.ma.getmaskarray(frames["time_ns"])
        times = np.asarray(frames["time_ns"])[aligned] / 1e9
        order = np.argsort(times, kind="stable")
        if len(order) > 1:
            tracks[device["device_id"]] = (
                times[order],
                frames["keypoints"][aligned][order].astype(np.float64),
            )
    return f"{row['id']} ({row['uuid'][:8]})", tracks


def declared_calibrations(db: Path, session: str, devices: list[str]) -> list[CameraCalibration]:
    """The calibration each of the session's cameras ``devices`` declared in its device meta; ValueError naming
    the cameras that declared none."""
    metas = {
        d["device_id"]: d["meta"] for d in reader.session_devices(db, reader.find_session(db, session)["id"])
    }
    cameras = [calibration_from_meta(device, metas.get(device, {})) for device in devices]
    undeclared = [device for device, cam in zip(devices, cameras, strict=True) if cam is None]
    if undeclared:
        raise ValueError(f"{db}: camera(s) {undeclared} declared no calibration: give calibration files")
    return cameras
