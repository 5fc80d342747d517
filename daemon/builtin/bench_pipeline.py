"""Built-in bench ``kinefuse bench pipeline``: samples/s from a synthetic source through the channels and
clock alignment to committed SQLite rows, on one core, and arrival-to-commit latency at 20x the default load."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from kinefuse import hookimpl
from kinefuse.bench import make_row
from kinefuse.config import load_config
from kinefuse.interfaces import BenchSpec
from kinefuse.plugins import load_plugins

DEFAULT_LOAD = 4 * 100 + 30  # samples/s of config.toml's synthetic source: 4 straps at 100 Hz, 30 fps
LOAD_NAME = "default synthetic load (4 IMU x 100 Hz + 1 camera x 30 fps)"
# 20x the default load: 4 straps at 2000 Hz and 3 cameras at 200 fps = 8600 samples/s
TWENTY_X = {"straps": 4, "imu_rate_hz": 2000.0, "cameras": 3, "camera_fps": 200.0, "realtime": True}
FLAT_OUT = {"straps": 4, "imu_rate_hz": 100.0, "cameras": 1, "camera_fps": 30.0, "realtime": False}


def _config_text(folder: Path, source: dict) -> str:
    options = "\n".join(
        f"{key} = {str(value).lower() if isinstance(value, bool) else value}" for key, value in source.items()
    )
    return f"""
[daemon]
log_level = "warning"
[storage]
path = "{folder / "bench.db"}"
[status]
socket_path = "{folder / "kinefuse.sock"}"
[[sources]]
id = "synth"
type = "synthetic"
{options}
"""


async def _run_case(source: dict, duration_s: float) -> dict:
    from kinefuse.agent import Agent  # here, not at the top: every CLI command loads this plugin

    with tempfile.TemporaryDirectory(prefix="kinefuse-bench-") as tmp:
        folder = Path(tmp)
        config_path = folder / "config.toml"
        config_path.write_text(_config_text(folder, source))
        registry = load_plugins(entry_points=False)
        agent = Agent(load_config(config_path, registry), registry)
        started = time.perf_counter()
        exit_code = await agent.run(duration_s)
        elapsed = time.perf_counter() - started
        if exit_code != 0:
            raise RuntimeError(f"the agent did not stop cleanly (exit {exit_code}); no figures from this run")
        sink = agent.sinks["sqlite"].sink
        stats = agent.status()["sources"]["synth"]
        return {
            # flat out counts start and drain too; a paced run is judged over the time its source ran
            "committed_per_s": sink.rows_committed / (elapsed if not source["realtime"] else duration_s),
            "offered_per_s": stats["received"] / duration_s,
            "dropped": stats["dropped"],
            "latency_ms": np.asarray(sink.latency_ns, dtype=np.float64) / 1e6,
        }


def _times_default(rate: float) -> str:
    return f"{rate / DEFAULT_LOAD:.1f}x the default load"


def _pin_to_one_core() -> str:
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[0]})
    return f"pinned to core {cores[0]}"


async def run(options: dict) -> list[dict]:
    duration = options.get("duration_s") or 10.0
    pinned = _pin_to_one_core()
    flat = await _run_case(FLAT_OUT, duration)
    paced = await _run_case(TWENTY_X, duration)
    p50, p99 = (
        (np.percentile(paced["latency_ms"], q) for q in (50, 99))
        if len(paced["latency_ms"])
        else (None, None)
    )
    note_20x = (
        f"{duration:.0f} s at 8600 samples/s offered, {pinned}; {_times_default(paced['committed_per_s'])}"
    )
    flat_note = f"{duration:.0f} s, source unthrottled, {pinned}; {_times_default(flat['committed_per_s'])}"
    return [
        make_row(
            "flat out",
            "committed samples/s",
            "samples/s",
            flat["committed_per_s"],
            "higher",
            peer=LOAD_NAME,
            peer_value=DEFAULT_LOAD,
            note=flat_note,
        ),
        make_row(
            "20x default load",
            "committed samples/s",
            "samples/s",
            paced["committed_per_s"],
            "higher",
            peer=LOAD_NAME,
            peer_value=DEFAULT_LOAD,
            note=note_20x,
        ),
        make_row(
            "20x default load",
            "offered samples/s",
            "samples/s",
            paced["offered_per_s"],
            "higher",
            note=note_20x,
        ),
        make_row("20x default load", "samples dropped", "samples", paced["dropped"], "lower", note=note_20x),
        make_row("20x default load", "arrival to commit p50", "ms", p50, "lower", note=note_20x),
        make_row("20x default load", "arrival to commit p99", "ms", p99, "lower", note=note_20x),
    ]


@hookimpl
def register_benches():
    return [BenchSpec("pipeline", __doc__.strip(), run)]
