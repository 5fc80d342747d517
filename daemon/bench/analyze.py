"""Built-in bench ``kinefuse bench analyze [--duration S]``: how fast ``kinefuse analyze`` reprocesses a stored
session. The default synthetic walk (4 straps at 100 Hz, one 30 fps camera) is recorded by the real agent
(not in real time, its motion processor on) for S seconds (default 60), then analysed live and offline;
each row's peer is the session's own real-time rate, so the ratio is how many times faster than real time
the analysis ran. Timed: the whole ``analyze`` call (reading the rows, computing, writing the items)."""

from __future__ import annotations

import asyncio
import tempfile
import time
import tomllib
from pathlib import Path

from kinefuse import hookimpl
from kinefuse.bench import make_row
from kinefuse.builtin.sources.synthetic import scenario_path
from kinefuse.config import load_config
from kinefuse.inprocess import replay_in_process, write_config
from kinefuse.interfaces import BenchSpec
from kinefuse.plugin_loader import load_plugins

DEFAULT_DURATION_S = 60.0


async def _record(folder: Path, duration_s: float) -> Path:
    """A session of the default walk, ``duration_s`` long, stored in ``folder``; its database."""
    walk = tomllib.loads(scenario_path("").read_text(encoding="utf-8"))
    walk["scenario"]["duration_s"] = duration_s
    scenario = write_config(folder / "walk.toml", walk)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False}
    tables = {"daemon": {"log_level": "warning"}, "storage": {"path": str(folder / "bench.db")},
              "status": {"socket_path": str(folder / "kinefuse.sock")}, "sources": [source],
              "processors": [{"id": "motion", "type": "motion"}]}  # fmt: skip
    registry = load_plugins(entry_points=False)
    config = load_config(write_config(folder / "config.toml", tables), registry)
    await replay_in_process(config, registry, "the recorded session")  # until the scenario ends
    return folder / "bench.db"


def _rows(db: Path) -> list[dict]:
    from kinefuse.analyze import MODES, analyze  # the whole analysis stack: not at every command's start

    rows = []
    for mode in MODES:
        started = time.perf_counter()
        result = analyze(db, 1, mode)
        wall = time.perf_counter() - started
        note = (f"default synthetic walk, {result.recording_s:.1f} s recorded: {result.samples} IMU samples, "
                f"{result.frames} camera frames, {result.items} motion items; {wall:.2f} s in all "
                f"({result.compute_s:.2f} s computing, {result.write_s:.2f} s writing)")  # fmt: skip
        real_time = "the session in real time"
        rows += [
            make_row(f"analyze {mode}", "camera frames/s", "frames/s", result.frames / wall, "higher",
                     peer=real_time, peer_value=result.frames / result.recording_s, note=note),
            make_row(f"analyze {mode}", "motion items/s", "items/s", result.items / wall, "higher",
                     peer=real_time, peer_value=result.items / result.recording_s, note=note),
        ]  # fmt: skip
    return rows


def run(options: dict) -> list[dict]:
    duration = options.get("duration_s") or DEFAULT_DURATION_S
    with tempfile.TemporaryDirectory(prefix="kinefuse-bench-analyze-") as folder:
        db = asyncio.run(_record(Path(folder), duration))  # analyze runs its own loop: none may be running
        return _rows(db)


@hookimpl
def register_benches():
    return [BenchSpec("analyze", __doc__.strip(), run)]
