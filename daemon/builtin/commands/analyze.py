"""Built-in command ``kinefuse analyze SESSION [--db PATH] [--mode live|offline] [--config PATH]
[--camera-offset DEVICE=S ...] [--json]``: process a stored session again from its raw samples and frames and
store the result beside the live stream as a new analysis (kinefuse.analyze; docs/fusion.md, "Offline
analysis")."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from kinefuse import hookimpl
from kinefuse.interfaces import CommandSpec


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "session",
        help="the session's id or (a unique prefix of) its uuid, as `kinefuse status --db` lists them",
    )
    parser.add_argument(
        "--db", type=Path, default=Path("kinefuse.db"), help="the database (default: kinefuse.db)"
    )
    modes = "live: the live processor's causal estimates again; offline: acausal smoothers"
    parser.add_argument("--mode", choices=("live", "offline"), default="live", help=modes)
    config = "take the motion processor's options from this config (default: the one the session ran with)"
    parser.add_argument("--config", type=Path, help=config)
    parser.add_argument("--camera-offset", action="append", default=[], metavar="DEVICE=S",
                        help="add S seconds to camera DEVICE's stored times first (e.g. what `kinefuse "
                        "calibrate sync` found)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _after(settings: dict) -> str:
    return ", ".join(c["id"] for c in settings["after_motion"]) or "none"


def run(args: argparse.Namespace) -> int:
    from kinefuse.analyze import analyze
    from kinefuse.configschema import ConfigInvalid
    from kinefuse.storage.schema import SchemaError

    try:
        result = analyze(args.db, args.session, args.mode, args.config, _offsets(args.camera_offset))
    except (LookupError, SchemaError, ValueError) as exc:
        print(f"kinefuse analyze: {exc}", file=sys.stderr)
        return 1
    except ConfigInvalid as exc:
        print(f"kinefuse analyze: {len(exc.errors)} config error(s):", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2))
        return 0
    rate = result.items / result.compute_s if result.compute_s else float("inf")
    print(f"{args.db}: session {result.session_id}: analysis {result.analysis_id} ({result.mode}, settings from "
          f"{result.settings['from']}): {result.samples} samples and {result.frames} frames over "
          f"{result.recording_s:.1f} s -> {result.items} motion items and {result.derived} metrics and events "
          f"(the processors after motion: {_after(result.settings)}) in {result.compute_s:.2f} s "
          f"({rate:.0f} items/s), stored in {result.write_s:.2f} s")  # fmt: skip
    return 0


def _offsets(items: list[str]) -> dict[str, float]:
    offsets = {}
    for item in items:
        device, _, seconds = item.partition("=")
        try:
            offsets[device] = float(seconds)
        except ValueError:
            raise ValueError(f"--camera-offset {item!r}: expected DEVICE=SECONDS, e.g. cam1=-0.102") from None
    return offsets


@hookimpl
def register_commands():
    return [
        CommandSpec(
            "analyze", "process a stored session again, live or offline, into a new analysis", configure, run
        )
    ]
