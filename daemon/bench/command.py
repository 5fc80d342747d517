"""The ``bench`` and ``report`` commands: run a bench any plugin registered and print (or write) its rows;
render a bench JSON file as a Markdown page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kinefuse import bench, hookimpl
from kinefuse.interfaces import CommandSpec, Registry

EXIT_USAGE = 2
_LOADED: list[Registry] = []  # the registry plugins_loaded announced: which benches exist


@hookimpl
def plugins_loaded(registry: Registry) -> None:
    _LOADED[:] = [registry]


def _configure_bench(parser: argparse.ArgumentParser) -> None:
    names = sorted(_LOADED[0].benches) if _LOADED else []
    parser.description = "benches: " + (", ".join(names) or "none registered")
    parser.add_argument("name")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--duration", type=float, help="seconds to run each case")
    parser.add_argument("--data", type=Path, help="data folder to score (default: the shared data)")


def _run_bench(args: argparse.Namespace) -> int:
    options = {"duration_s": args.duration, "shared_dir": args.data}
    try:
        rows = bench.run_bench(_LOADED[0], args.name, options)
    except bench.BenchError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    bench.print_table(args.name, rows, sys.stdout)
    if args.json is not None:
        bench.write_json(args.json, args.name, rows)
        print(f"wrote {args.json}")
    return 0


def _configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("json", type=Path, help="a file written by kinefuse bench NAME --json")
    parser.add_argument("--out", type=Path, help="write here instead of standard output")


def _run_report(args: argparse.Namespace) -> int:
    try:
        document = bench.read_json(args.json)
    except (OSError, ValueError, bench.BenchError) as exc:
        print(f"cannot read {args.json}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    text = bench.markdown(document, str(args.json))
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


@hookimpl
def register_commands():
    return [
        CommandSpec(
            "bench", "run a benchmark (kinefuse bench --help lists them)", _configure_bench, _run_bench
        ),
        CommandSpec("report", "render a bench JSON file as a Markdown page", _configure_report, _run_report),
    ]
