"""Benchmark rows, their text table and JSON forms, and running a registered bench by name.

A row is ``{"case", "metric", "unit", "value", "better", "peer", "peer_value", "note"}``: ``better`` is
"lower" or "higher"; ``value`` is None when it could not be measured, and ``note`` then says why;
``peer`` names something measured the same way for comparison (the pure-Python twin, a baseline) and
``peer_value`` is its value, so the table can show value / peer_value.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import math
import os
import platform
import sys
from collections.abc import Awaitable
from typing import Any, TextIO

ROW_KEYS = ("case", "metric", "unit", "value", "better", "peer", "peer_value", "note")
BETTER = ("lower", "higher")
_COLUMNS = ("case", "metric", "value", "unit", "better", "peer", "peer_value", "ratio", "note")
_RIGHT_ALIGNED = {"value", "peer_value", "ratio"}


class BenchError(Exception):
    """An unknown bench, or a row that breaks the row format."""


def make_row(
    case: str,
    metric: str,
    unit: str,
    value: float | None,
    better: str,
    *,
    peer: str | None = None,
    peer_value: float | None = None,
    note: str = "",
) -> dict:
    """A checked bench row; pass ``value=None`` with a ``note`` when the value cannot be measured."""
    row = {"case": case, "metric": metric, "unit": unit, "value": value, "better": better}
    return check_row(row | {"peer": peer, "peer_value": peer_value, "note": note})


def check_row(row: Any) -> dict:
    """Return ``row`` if it has exactly the row keys, each valid; else raise BenchError saying what is off."""
    if not isinstance(row, dict):
        raise BenchError(f"a bench row must be a dict, got {type(row).__name__}")
    missing, extra = set(ROW_KEYS) - row.keys(), row.keys() - set(ROW_KEYS)
    if missing or extra:
        raise BenchError(
            f"bench row {row!r}: missing keys {sorted(missing)}, unknown keys {sorted(map(str, extra))}"
        )
    where = f"bench row {row.get('case')!r}/{row.get('metric')!r}"
    for key in ("case", "metric", "unit", "note"):
        if not isinstance(row[key], str):
            raise BenchError(f"{where}: {key} must be a string, got {row[key]!r}")
    if not row["case"] or not row["metric"]:
        raise BenchError(f"{where}: case and metric must not be empty")
    if row["better"] not in BETTER:
        raise BenchError(f"{where}: better must be 'lower' or 'higher', got {row['better']!r}")
    if row["peer"] is not None and not isinstance(row["peer"], str):
        raise BenchError(f"{where}: peer must be a name or None, got {row['peer']!r}")
    for key in ("value", "peer_value"):
        _check_number(where, key, row[key])
    if row["value"] is None and not row["note"]:
        raise BenchError(f"{where}: a value that could not be measured (None) needs a note saying why")
    if row["peer_value"] is not None and row["peer"] is None:
        raise BenchError(f"{where}: peer_value needs a peer naming what it measured")
    return row


def _check_number(where: str, key: str, value: Any) -> None:
    # bool is an int to Python, but True is no measurement; NaN and inf would not survive strict JSON
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BenchError(f"{where}: {key} must be a finite number or None, got {value!r}")


def print_table(name: str, rows: list[dict], file: TextIO | None = None) -> None:
    """Print the rows as an aligned plain-text table under a ``bench: NAME`` title."""
    out = sys.stdout if file is None else file
    cells = [_cells(check_row(row)) for row in rows]
    widths = {col: max([len(col)] + [len(c[col]) for c in cells]) for col in _COLUMNS}
    print(f"bench: {name}", file=out)
    for line in [{col: col for col in _COLUMNS}, *cells]:
        parts = [
            line[col].rjust(widths[col]) if col in _RIGHT_ALIGNED else line[col].ljust(widths[col])
            for col in _COLUMNS
        ]
        print("  ".join(parts).rstrip(), file=out)


def _cells(row: dict) -> dict[str, str]:
    cells = {col: _format(row[col]) for col in ROW_KEYS}
    value, peer_value = row["value"], row["peer_value"]
    cells["ratio"] = f"{_format(value / peer_value)}x" if value is not None and peer_value else "-"
    if row["peer"] is None:
        cells["peer"] = cells["peer_value"] = "-"
    return cells


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def machine() -> str:
    """What the figures were measured on: speed is a property of the machine as much as of the code."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        model = next(
            (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model
        )
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def write_json(path: str | os.PathLike, name: str, rows: list[dict]) -> None:
    """Write ``{"bench": NAME, "machine": ..., "rows": [...]}`` to ``path``."""
    document = {"bench": name, "machine": machine(), "rows": [check_row(row) for row in rows]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, allow_nan=False)
        f.write("\n")


def run_bench(registry, name: str, options: dict) -> list[dict]:
    """Run the bench ``name`` from ``registry.benches`` and return its checked rows.

    A bench may return its rows or an awaitable of them; the awaitable runs in its own event loop, so call
    this from synchronous code (the CLI), not from inside a running loop.
    """
    spec = registry.benches.get(name)
    if spec is None:
        available = ", ".join(sorted(registry.benches)) or "none are registered"
        raise BenchError(f"unknown bench {name!r}; available benches: {available}")
    result = spec.run(options)
    if inspect.isawaitable(result):
        result = asyncio.run(_wait(result))
    if not isinstance(result, list):
        raise BenchError(f"bench {name!r} returned {type(result).__name__}, expected a list of rows")
    try:
        return [check_row(row) for row in result]
    except BenchError as exc:
        raise BenchError(f"bench {name!r}: {exc}") from None


async def _wait(awaitable: Awaitable) -> Any:
    return await awaitable  # asyncio.run takes only coroutines; a bench may return any awaitable


def read_json(path: str | os.PathLike) -> dict:
    """Read a bench JSON file, checking every row."""
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    if not isinstance(document, dict) or not {"bench", "rows"} <= set(document) <= {
        "bench",
        "machine",
        "rows",
    }:
        raise BenchError(f"{path}: expected {{'bench': NAME, 'machine': TEXT (optional), 'rows': [...]}}")
    try:
        document["rows"] = [check_row(row) for row in document["rows"]]
    except BenchError as exc:
        raise BenchError(f"{path}: {exc}") from None
    return document


def markdown(document: dict, source: str) -> str:
    """A bench document as a Markdown page; ``source`` names the JSON it came from."""
    lines = [
        f"# Bench: {document['bench']}",
        "",
        f"Generated by `kinefuse report {source}` from the output of `kinefuse bench {document['bench']}`;",
        "do not edit by hand. `n/a` marks a value that could not be measured; its note says why.",
        *([f"Measured on: {document['machine']}.", ""] if document.get("machine") else [""]),
        "| case | metric | value | unit | better | peer | peer value | ratio | note |",
        "|---|---|---:|---|---|---|---:|---:|---|",
    ]
    for row in document["rows"]:
        cells = _cells(row)
        lines.append("| " + " | ".join(cells[col].replace("|", "\\|") for col in _COLUMNS) + " |")
    return "\n".join(lines) + "\n"
