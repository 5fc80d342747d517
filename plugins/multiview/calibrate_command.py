"""Command ``kinefuse calibrate``:

- ``import FILE [--out OUT.toml]``: a calibration from another tool (Qualisys QTM's ``.qca.txt``, or a
  Pose2Sim TOML) read, each camera summarised (image size, focal length, principal point, position in the
  world), and written as a Pose2Sim TOML that the camera source's ``calibration`` option and Pose2Sim read;
- ``sync SESSION [--db FILE] [--max-offset S]``: the stored session's cameras' time offsets against its first
  camera, from their keypoints (``synchronisation.estimate_offsets``), on top of the clock alignment the
  stored times already carry.

Board and scene calibration (``intrinsics``, ``extrinsics``) and ``check`` are to come (issue 15)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from kinefuse.camera_calibration import CameraCalibration, read_calibration, write_calibration
from kinefuse.interfaces import CommandSpec
from kinefuse.storage import reader
from kinefuse.types import DeviceKind
from kinefuse_plugins.multiview.calibration_formats import read_qca
from kinefuse_plugins.multiview.synchronisation import estimate_offsets


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imported = actions.add_parser("import", help="read a .qca.txt (Qualisys) or Pose2Sim .toml calibration")
    imported.add_argument("file", type=Path, help="the calibration file")
    imported.add_argument("--out", type=Path, help="write the cameras here as a Pose2Sim TOML")
    sync = actions.add_parser("sync", help="a stored session's camera time offsets, from their keypoints")
    sync.add_argument("session", help="the session's id or a prefix of its uuid (kinefuse status --db)")
    sync.add_argument(
        "--db", type=Path, default=Path("kinefuse.db"), help="the database (default: kinefuse.db)"
    )
    sync.add_argument(
        "--max-offset", type=float, default=0.25, help="the largest offset searched, s (default 0.25)"
    )


def read_any(path: Path) -> list[CameraCalibration]:
    """The cameras of ``path``, by its name: ``*.qca.txt`` QTM, ``*.toml`` Pose2Sim."""
    if path.name.endswith(".qca.txt"):
        return read_qca(path)
    if path.suffix == ".toml":
        return read_calibration(path)
    raise ValueError(f"{path}: unknown calibration format (expected a .qca.txt or a Pose2Sim .toml)")


def run(args: argparse.Namespace) -> int:
    return _sync(args) if args.action == "sync" else _import(args)


def _sync(args: argparse.Namespace) -> int:
    try:
        name, tracks = stored_tracks(args.db, args.session)
    except (OSError, LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if len(tracks) < 2:
        print(f"error: {args.db}: session {name}: {len(tracks)} camera(s) with frames; sync needs two",
              file=sys.stderr)  # fmt: skip
        return 1
    print(
        f"{args.db}: session {name}: offsets to add to each camera's stored times, against {next(iter(tracks))}"
    )
    for offset in estimate_offsets(tracks, args.max_offset):
        if offset.offset_s is None:
            print(f"  {offset.camera}: {offset.reason}")
        else:
            what = offset.reason or f"correlation {offset.correlation:.2f}"
            print(f"  {offset.camera}: {offset.offset_s * 1e3:+.1f} ms ({what})")
    return 0


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


def _import(args: argparse.Namespace) -> int:
    try:
        cameras = read_any(args.file)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: {len(cameras)} cameras")
    for cam in cameras:
        (fx, _, cx), (_, fy, cy) = cam.matrix[0], cam.matrix[1]
        x, y, z = cam.centre
        print(f"  {cam.name}: {cam.size[0]:g}x{cam.size[1]:g} px, focal {fx:.1f}/{fy:.1f} px, principal point "
              f"({cx:.1f}, {cy:.1f}), at ({x:.3f}, {y:.3f}, {z:.3f}) m")  # fmt: skip
    if args.out is not None:
        try:
            write_calibration(args.out, cameras)
        except (OSError, ValueError) as exc:
            print(f"error: {args.out}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.out}")
    return 0


SPEC = CommandSpec("calibrate", "camera calibrations: import one from another tool; a session's camera offsets",
                   configure, run)  # fmt: skip
