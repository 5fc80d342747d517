"""Command ``kinefuse calibrate import FILE [--out OUT.toml]``: a calibration from another tool (Qualisys QTM's
``.qca.txt``, or a Pose2Sim TOML) read, each camera summarised (image size, focal length, principal point,
position in the world), and written as a Pose2Sim TOML that the camera source's ``calibration`` option and
Pose2Sim read. Board and scene calibration (``intrinsics``, ``extrinsics``) and ``check`` are to come
(issue 15)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kinefuse.camera_calibration import CameraCalibration, read_calibration, write_calibration
from kinefuse.interfaces import CommandSpec
from kinefuse_plugins.multiview.calibration_formats import read_qca


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imported = actions.add_parser("import", help="read a .qca.txt (Qualisys) or Pose2Sim .toml calibration")
    imported.add_argument("file", type=Path, help="the calibration file")
    imported.add_argument("--out", type=Path, help="write the cameras here as a Pose2Sim TOML")


def read_any(path: Path) -> list[CameraCalibration]:
    """The cameras of ``path``, by its name: ``*.qca.txt`` QTM, ``*.toml`` Pose2Sim."""
    if path.name.endswith(".qca.txt"):
        return read_qca(path)
    if path.suffix == ".toml":
        return read_calibration(path)
    raise ValueError(f"{path}: unknown calibration format (expected a .qca.txt or a Pose2Sim .toml)")


def run(args: argparse.Namespace) -> int:
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


SPEC = CommandSpec("calibrate", "camera calibrations: import one from another tool", configure, run)
