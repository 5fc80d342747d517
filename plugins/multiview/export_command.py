"""Command ``kinefuse export trc SESSION --out FILE [--db FILE] [--analysis ID] [--good-only] [--up y|z]``: a
stored session's triangulated keypoints as a TRC marker file for OpenSim and Pose2Sim (``trc_export``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from kinefuse.interfaces import CommandSpec
from kinefuse.storage import reader
from kinefuse_plugins.multiview.trc_export import session_markers, write_trc


def configure(parser: argparse.ArgumentParser) -> None:
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    trc = formats.add_parser(
        "trc", help="the triangulated keypoints as a TRC marker file (OpenSim, Pose2Sim)"
    )
    trc.add_argument("session", help="the session's id or a prefix of its uuid (kinefuse status --db)")
    trc.add_argument(
        "--db", type=Path, default=Path("kinefuse.db"), help="the database (default: kinefuse.db)"
    )
    trc.add_argument("--out", type=Path, required=True, help="the .trc file to write")
    trc.add_argument(
        "--analysis", type=int, help="an offline analysis's keypoints (kinefuse analyze) instead"
    )
    trc.add_argument("--good-only", action="store_true", help="leave out (NaN) every value not good")
    trc.add_argument("--up", choices=("y", "z"), default="y",
                     help="the vertical axis: y as OpenSim's models (default), z as kinefuse's world")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        session = reader.find_session(args.db, args.session)
        times, positions, names, rate = session_markers(args.db, session["id"], args.analysis, args.good_only)
        write_trc(args.out, times, positions, names, rate, args.up)
    except (OSError, LookupError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    seen = (~np.isnan(positions).any(axis=-1)).mean()
    print(f"wrote {args.out}: {len(times)} frames at {rate:g} Hz, {len(names)} markers, {seen:.1%} of the values "
          f"present; {args.up} up")  # fmt: skip
    return 0


SPEC = CommandSpec("export", "a stored session's triangulated keypoints as a TRC file", configure, run)
