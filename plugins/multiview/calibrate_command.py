"""Command ``kinefuse calibrate``:

- ``intrinsics --board 4x7 --square 0.06 --out FILE CAMERA=FOLDER...`` (or ``--charuco 5x7 --square S
  --marker M [--dictionary D]``): each camera's intrinsics from its folder of checkerboard or ChArUco
  images (``board_calibration``), each image's error or why it was left out, written as a Pose2Sim TOML
  without poses;
- ``extrinsics CALIB --scene POINTS.toml --out FILE`` or ``extrinsics CALIB --board 4x7 --square 0.06
  --image CAMERA=IMAGE... --out FILE``: the cameras of CALIB posed from measured scene points or from a
  board lying in the scene (``scene_calibration``), each camera's error and the points left out;
- ``import FILE [--format F] [--unit U] [--out OUT.toml]``: a calibration of another tool (Qualisys QTM's
  ``.qca.txt``, anipose's or Pose2Sim's TOML) read, each camera summarised, written as a Pose2Sim TOML;
- ``export FILE --to pose2sim|anipose [--unit U] --out OUT``: a calibration written for another tool;
- ``check SESSION [--db FILE] [--calibration FILE...] [--camera DEVICE=NAME...]``: how well each
  calibration (default: the ones the session's cameras declared) fits the session's keypoints, per camera
  (``calibration_check``);
- ``sync SESSION [--db FILE] [--max-offset S]``: the stored session's cameras' time offsets against its first
  camera, from their keypoints (``synchronisation.estimate_offsets``), on top of the clock alignment the
  stored times already carry, and the ``kinefuse analyze`` command that applies them."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from kinefuse.camera_calibration import CameraCalibration, read_calibration, write_calibration
from kinefuse.interfaces import CommandSpec
from kinefuse_plugins.multiview.board_calibration import Board, CharucoBoard, calibrate_intrinsics, read_gray
from kinefuse_plugins.multiview.calibration_check import check_calibration, match_frames
from kinefuse_plugins.multiview.calibration_formats import UNITS_M, read_anipose, read_qca, write_anipose
from kinefuse_plugins.multiview.scene_calibration import read_scene_points, solve_extrinsics
from kinefuse_plugins.multiview.session_tracks import declared_calibrations, stored_tracks
from kinefuse_plugins.multiview.synchronisation import estimate_offsets

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
FORMATS = ("qualisys", "pose2sim", "anipose")


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    intrinsics = actions.add_parser(
        "intrinsics", help="each camera's intrinsics from checkerboard or ChArUco images"
    )
    _board_arguments(intrinsics)
    intrinsics.add_argument(
        "cameras", nargs="+", metavar="CAMERA=FOLDER", help="a camera and its board images"
    )
    intrinsics.add_argument("--out", type=Path, required=True, help="the Pose2Sim TOML to write")
    extrinsics = actions.add_parser("extrinsics", help="the cameras' poses from scene points or a board")
    extrinsics.add_argument("calibration", type=Path, help="the cameras' intrinsics (Pose2Sim TOML)")
    extrinsics.add_argument("--scene", type=Path, help="measured scene points and their pixels (TOML)")
    _board_arguments(extrinsics)
    extrinsics.add_argument("--image", action="append", default=[], dest="images", metavar="CAMERA=IMAGE",
                            help="with --board: a camera's image of the board")  # fmt: skip
    extrinsics.add_argument("--out", type=Path, required=True, help="the Pose2Sim TOML to write")
    imported = actions.add_parser("import", help="read a Qualisys, anipose or Pose2Sim calibration")
    _file_arguments(imported)
    imported.add_argument("--out", type=Path, help="write the cameras here as a Pose2Sim TOML")
    export = actions.add_parser("export", help="write a calibration for another tool")
    _file_arguments(export)
    export.add_argument("--to", choices=("pose2sim", "anipose"), required=True, help="the format to write")
    export.add_argument("--out", type=Path, required=True, help="the file to write")
    check = actions.add_parser("check", help="how well calibrations fit a stored session's keypoints")
    _session_arguments(check)
    check.add_argument("--calibration", action="append", default=[], type=Path, dest="calibrations",
                       metavar="FILE", help="a calibration file to check (repeat to compare; default: the "
                       "session's own)")  # fmt: skip
    check.add_argument("--camera", action="append", default=[], metavar="DEVICE=NAME",
                       help="the session's camera DEVICE is NAME in the calibration files")  # fmt: skip
    sync = actions.add_parser("sync", help="a stored session's camera time offsets, from their keypoints")
    _session_arguments(sync)
    sync.add_argument(
        "--max-offset", type=float, default=0.25, help="the largest offset searched, s (default 0.25)"
    )


def _board_arguments(parser: argparse.ArgumentParser) -> None:
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--board", metavar="COLSxROWS", help="a checkerboard's inner corners, e.g. 4x7")
    kind.add_argument("--charuco", metavar="COLSxROWS", help="a ChArUco board's squares, e.g. 5x7")
    parser.add_argument("--square", type=float, help="the squares' side, metres")
    parser.add_argument("--marker", type=float, help="with --charuco: the markers' side, metres")
    parser.add_argument("--dictionary", default="DICT_4X4_50", help="with --charuco: its ArUco dictionary")


def board_of(args: argparse.Namespace) -> Board | CharucoBoard | None:
    """The board the arguments describe, None without --board or --charuco."""
    if args.board is None and args.charuco is None:
        return None
    if args.square is None:
        raise ValueError("a board needs --square (the squares' side, metres)")
    if args.board is not None:
        return Board.parse(args.board, args.square)
    return CharucoBoard.parse(args.charuco, args.square, args.marker, args.dictionary)


def _file_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the calibration file")
    parser.add_argument("--format", choices=FORMATS, help="default: by the name (.qca.txt, .toml Pose2Sim)")
    parser.add_argument("--unit", choices=tuple(UNITS_M), help="an anipose file's translation unit")


def _session_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session", help="the session's id or a prefix of its uuid (kinefuse status --db)")
    parser.add_argument(
        "--db", type=Path, default=Path("kinefuse.db"), help="the database (default: kinefuse.db)"
    )


def run(args: argparse.Namespace) -> int:
    action = {"intrinsics": _intrinsics, "extrinsics": _extrinsics, "import": _import, "export": _export,
              "check": _check, "sync": _sync}[args.action]  # fmt: skip
    try:
        return action(args)
    except (OSError, LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def read_any(path: Path, format: str | None = None, unit: str | None = None) -> list[CameraCalibration]:
    """The cameras of ``path`` in ``format`` (default: by its name, ``*.qca.txt`` QTM, ``*.toml`` Pose2Sim)."""
    format = format or (
        "qualisys" if path.name.endswith(".qca.txt") else "pose2sim" if path.suffix == ".toml" else None
    )
    if format is None:
        raise ValueError(f"{path}: unknown calibration format (a .qca.txt or .toml; or give --format)")
    if format == "anipose":
        if unit is None:
            raise ValueError(
                f"{path}: an anipose file does not say its translation unit: give --unit (mm, cm, m)"
            )
        return read_anipose(path, unit)
    return read_qca(path) if format == "qualisys" else read_calibration(path)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{item!r}: expected {what}")
        if name in pairs:
            raise ValueError(f"{item!r}: camera {name!r} given twice")
        pairs[name] = value
    return pairs


def _intrinsics(args: argparse.Namespace) -> int:
    board = board_of(args)
    if board is None:
        raise ValueError("intrinsics need a board: --board COLSxROWS or --charuco COLSxROWS, with --square")
    cameras = []
    for name, folder in _pairs(args.cameras, "CAMERA=FOLDER").items():
        images = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise ValueError(f"camera {name!r}: no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
        found = calibrate_intrinsics(name, images, board)
        (fx, _, cx), (_, fy, cy) = found.camera.matrix[:2]
        sx, sy, scx, scy = found.sigma
        print(f"{name}: {sum(i.error_px is not None for i in found.images)} of {len(images)} images, RMS "
              f"{found.rms_px:.3f} px; focal {fx:.1f}±{sx:.1f}/{fy:.1f}±{sy:.1f} px, principal point "
              f"({cx:.1f}±{scx:.1f}, {cy:.1f}±{scy:.1f})")  # fmt: skip
        for image in found.images:
            print(f"  {image.path.name}: " + (image.rejected or f"{image.error_px:.3f} px"))
        cameras.append(found.camera)
    write_calibration(args.out, cameras)
    print(f"wrote {args.out} (intrinsics only: pose the cameras with kinefuse calibrate extrinsics)")
    return 0


def _extrinsics(args: argparse.Namespace) -> int:
    cameras = {cam.name: cam for cam in read_calibration(args.calibration)}
    board = board_of(args)
    if (args.scene is None) == (board is None):
        raise ValueError("give either --scene POINTS.toml or a board (--board or --charuco, --square) with an "
                         "--image CAMERA=IMAGE per camera")  # fmt: skip
    observed = _scene_observations(args) if args.scene else _board_observations(args, board)
    where = args.scene or "the images given"
    unknown = sorted(set(observed) - set(cameras))
    missing = sorted(set(cameras) - set(observed))
    if unknown:
        raise ValueError(
            f"{where}: camera(s) {unknown} are not in {args.calibration} (its cameras: {sorted(cameras)})"
        )
    if missing:
        raise ValueError(f"{where}: no points for camera(s) {missing} of {args.calibration}")
    posed = []
    for name, (points, pixels) in observed.items():
        found = solve_extrinsics(cameras[name], points, pixels)
        x, y, z = found.camera.centre
        left_out = "".join(f"; left out {r}" for r in found.rejected)
        print(f"{name}: RMS {found.rms_px:.2f} px over {found.points_used} points, at ({x:.3f}, {y:.3f}, "
              f"{z:.3f}) m{left_out}")  # fmt: skip
        posed.append(found.camera)
    posed.sort(key=lambda cam: list(cameras).index(cam.name))
    write_calibration(args.out, posed)
    print(f"wrote {args.out}")
    return 0


def _scene_observations(args: argparse.Namespace) -> dict:
    if args.images:
        raise ValueError("--image goes with --board, not --scene")
    scene = read_scene_points(args.scene)
    return {name: (scene.points, pixels) for name, pixels in scene.pixels.items()}


def _board_observations(args: argparse.Namespace, board: Board | CharucoBoard) -> dict:
    observed = {}
    for name, image in _pairs(args.images, "CAMERA=IMAGE").items():
        found = board.find(read_gray(Path(image)))
        if found is None:
            raise ValueError(f"camera {name!r}: {image}: no {board.name} found")
        observed[name] = (found[0].astype(float), found[1].astype(float))
    if not observed:
        raise ValueError("a board needs an --image CAMERA=IMAGE per camera")
    return observed


def _import(args: argparse.Namespace) -> int:
    cameras = read_any(args.file, args.format, args.unit)
    print(f"{args.file}: {len(cameras)} cameras")
    for cam in cameras:
        (fx, _, cx), (_, fy, cy) = cam.matrix[0], cam.matrix[1]
        x, y, z = cam.centre
        print(f"  {cam.name}: {cam.size[0]:g}x{cam.size[1]:g} px, focal {fx:.1f}/{fy:.1f} px, principal point "
              f"({cx:.1f}, {cy:.1f}), at ({x:.3f}, {y:.3f}, {z:.3f}) m")  # fmt: skip
    if args.out is not None:
        write_calibration(args.out, cameras)
        print(f"wrote {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    cameras = read_any(args.file, args.format, args.unit if args.format == "anipose" else None)
    if args.to == "anipose":
        if args.unit is None:
            raise ValueError("anipose files carry no unit: give --unit for the translations (mm, cm, m)")
        write_anipose(args.out, cameras, args.unit)
    else:
        write_calibration(args.out, cameras)
    print(f"wrote {args.out}: {len(cameras)} cameras as {args.to}")
    return 0


def _check(args: argparse.Namespace) -> int:
    name, tracks = stored_tracks(args.db, args.session)
    if len(tracks) < 3:
        raise ValueError(f"{args.db}: session {name}: {len(tracks)} camera(s) with frames; check needs three "
                         "(each camera against the point the others triangulate)")  # fmt: skip
    devices = list(tracks)
    keypoints = match_frames([tracks[d] for d in devices])
    names = _pairs(args.camera, "DEVICE=NAME")
    sources = {path.name: read_calibration(path) for path in args.calibrations} or {
        "the session's own": declared_calibrations(args.db, args.session, devices)
    }
    print(f"{args.db}: session {name}: {keypoints.shape[1]} frames of {', '.join(devices)}")
    medians = {}
    for label, cameras in sources.items():
        chosen = _choose(label, cameras, devices, names)
        fits = check_calibration(chosen, keypoints)
        errors = [fit.median_px for fit in fits]
        medians[label] = float(sum(errors) / len(errors))
        print(f"{label}: mean of the cameras' median errors {medians[label]:.2f} px")
        for device, fit in zip(devices, fits, strict=True):
            print(f"  {device} ({fit.camera}): median {fit.median_px:.2f} px, 90th percentile {fit.p90_px:.2f} px "
                  f"over {fit.keypoints} keypoints")  # fmt: skip
    finite = {label: value for label, value in medians.items() if math.isfinite(value)}
    if len(sources) > 1 and finite:
        best = min(finite, key=finite.get)
        print(f"fits the keypoints best: {best}")
    return 0


def _choose(label: str, cameras: list[CameraCalibration], devices: list[str], names: dict[str, str]):
    by_name = {cam.name: cam for cam in cameras}
    chosen = []
    for device in devices:
        wanted = names.get(device, device)
        if wanted not in by_name:
            raise ValueError(f"{label}: no camera {wanted!r} for the session's {device!r} (its cameras: "
                             f"{sorted(by_name)}; map one with --camera {device}=NAME)")  # fmt: skip
        chosen.append(by_name[wanted])
    return chosen


def _sync(args: argparse.Namespace) -> int:
    name, tracks = stored_tracks(args.db, args.session)
    if len(tracks) < 2:
        raise ValueError(f"{args.db}: session {name}: {len(tracks)} camera(s) with frames; sync needs two")
    print(
        f"{args.db}: session {name}: offsets to add to each camera's stored times, against {next(iter(tracks))}"
    )
    found = {}
    for offset in estimate_offsets(tracks, args.max_offset):
        if offset.offset_s is None:
            print(f"  {offset.camera}: {offset.reason}")
        else:
            what = offset.reason or f"correlation {offset.correlation:.2f}"
            print(f"  {offset.camera}: {offset.offset_s * 1e3:+.1f} ms ({what})")
            found[offset.camera] = offset.offset_s
    found.pop(next(iter(tracks)), None)  # the reference: 0 by definition
    if found:
        moves = " ".join(f"--camera-offset {camera}={seconds:+.4f}" for camera, seconds in found.items())
        print(f"to analyse the session with them: kinefuse analyze {args.session} --db {args.db} --mode offline "
              f"{moves}")  # fmt: skip
    return 0


SPEC = CommandSpec("calibrate", "camera calibrations: from boards and scene points, import, export, check; "
                   "a session's camera offsets", configure, run)  # fmt: skip
