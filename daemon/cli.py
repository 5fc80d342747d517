"""The ``kinefuse`` command line: parse, call, print. Plugins add subcommands with register_commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from kinefuse import __version__
from kinefuse.config import Config, default_config_path, load_config
from kinefuse.configschema import ConfigInvalid
from kinefuse.interfaces import Registry
from kinefuse.plugin_loader import load_plugins

EXIT_CONFIG = 2


def _load_config(path: Path, registry: Registry) -> Config | None:
    try:
        return load_config(path, registry)
    except ConfigInvalid as exc:
        print(f"{len(exc.errors)} config error(s):", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return None


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )


def cmd_run(args: argparse.Namespace, registry: Registry) -> int:
    config = _load_config(args.config, registry)
    if config is None:
        return EXIT_CONFIG
    if args.db is not None:
        config["storage"]["path"] = str(args.db.resolve())
    _setup_logging(config["daemon"]["log_level"])
    from kinefuse.agent import run_agent

    return asyncio.run(run_agent(config, registry, args.duration))


def cmd_check_config(args: argparse.Namespace, registry: Registry) -> int:
    config = _load_config(args.path, registry)
    if config is None:
        return EXIT_CONFIG
    print(f"{args.path}: valid ({len(config.sources)} sources, {len(config.processors)} processors)")
    return 0


def cmd_plugins(args: argparse.Namespace, registry: Registry) -> int:
    rows = [vars(p) for p in registry.plugins]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    headers = ("name", "version", "origin", "status", "hooks")
    table = [(r["name"], r["version"], r["origin"], r["status"], ", ".join(r["hooks"]) or "-") for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *table, strict=False)]
    for row in (headers, *table):
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    for r in rows:
        if r["status"] == "quarantined":
            print(f"quarantined {r['name']}: {r['reason']}")
    return 0


def cmd_status(args: argparse.Namespace, registry: Registry) -> int:
    from kinefuse import control
    from kinefuse.control import client
    from kinefuse.storage import reader

    if args.db is not None:
        report = reader.summary(args.db)
        print(json.dumps(report, indent=2) if args.json else reader.format_summary(report))
        return 0
    config = _load_config(args.config, registry)
    if config is None:
        return EXIT_CONFIG
    return client.print_status(control.socket_path(config), as_json=args.json)


def cmd_tail(args: argparse.Namespace, registry: Registry) -> int:
    from kinefuse import control
    from kinefuse.control import client

    config = _load_config(args.config, registry)
    if config is None:
        return EXIT_CONFIG
    return client.tail(control.socket_path(config), kinds=args.kind, limit=args.count)


def build_parser(registry: Registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kinefuse", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kinefuse {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config_help = "config file (default: $KINEFUSE_CONFIG or ./config.toml)"

    run = commands.add_parser("run", help="run the daemon until SIGTERM/SIGINT (or --duration)")
    run.add_argument("--config", type=Path, default=default_config_path(), help=config_help)
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    run.add_argument("--db", type=Path, help="SQLite file to write (overrides [storage] path)")
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check-config", help="validate a config file; exit 2 listing every error")
    check.add_argument("path", nargs="?", type=Path, default=default_config_path())
    check.set_defaults(handler=cmd_check_config)

    plugins = commands.add_parser("plugins", help="list plugins: version, origin, hooks, status")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(handler=cmd_plugins)

    status = commands.add_parser(
        "status", help="the running daemon's status, or a database's summary with --db"
    )
    status.add_argument("--db", type=Path, help="summarise this database instead of asking the daemon")
    status.add_argument("--config", type=Path, default=default_config_path(), help=config_help)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)

    tail = commands.add_parser("tail", help="print the live time-aligned stream as JSON lines")
    tail.add_argument("--config", type=Path, default=default_config_path(), help=config_help)
    tail.add_argument(
        "--kind",
        action="append",
        help="only these record types (imu, keypoints, metric, event, motion, device)",
    )
    tail.add_argument("--count", type=int, help="stop after this many records")
    tail.set_defaults(handler=cmd_tail)

    for spec in registry.commands.values():
        sub = commands.add_parser(spec.name, help=spec.help)
        spec.configure(sub)
        sub.set_defaults(handler=lambda args, _registry, run=spec.run: run(args))
    return parser


def main(argv: list[str] | None = None) -> int:
    _setup_logging("warning")  # until a config sets the level: plugin quarantines are warnings worth seeing
    registry = load_plugins()
    args = build_parser(registry).parse_args(argv)
    return args.handler(args, registry)


if __name__ == "__main__":
    sys.exit(main())
