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
from kinefuse.inprocess import run_in_process, write_config
from kinefuse.interfaces import BenchSpec
from kinefuse.plugin_loader import load_plugins

DEFAULT_LOAD = (
    4 * 100 + 30
)  # samples/s of the default scenario (scenarios/walk.toml): 4 straps at 100 Hz, 30 fps
LOAD_NAME = "default synthetic load (4 IMU x 100 Hz + 1 camera x 30 fps)"
FLAT_OUT = {"realtime": False}  # the default scenario, as fast as it can go
# 20x the default load: 4 straps at 2000 Hz and 3 cameras at 200 fps = 8600 samples/s, perfect sensors
TWENTY_X_SCENARIO = {
    "scenario": {"name": "twenty_x", "duration_s": 60.0},
    "motion": {"kind": "walk", "treadmill": True},
    "imus": [
        {"name": f"imu_{segment}", "segment": segment, "rate_hz": 2000.0, "link": {"batch": 20}}
        for segment in ("pelvis", "left_shank", "right_shank", "trunk")
    ],
    "cameras": [
        {
            "name": f"cam{i}",
            "position": [4.0 * np.cos(a), 4.0 * np.sin(a), 1.0],
            "target": [0.0, 0.0, 0.9],
            "fps": 200.0,
        }
        for i, a in enumerate((-1.2, -1.6, -2.0))
    ],
}


def _config_tables(folder: Path, source: dict) -> dict:
    return {
        "daemon": {"log_level": "warning"},
        "storage": {"path": folder / "bench.db"},
        "status": {"socket_path": folder / "kinefuse.sock"},
        "sources": [{"id": "synth", "type": "synthetic", **source}],
    }


async def _run_case(source: dict, duration_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="kinefuse-bench-") as tmp:
        folder = Path(tmp)
        if "scenario" in source and isinstance(source["scenario"], dict):
            source = {**source, "scenario": write_config(folder / "scenario.toml", source["scenario"])}
        config_path = write_config(folder / "config.toml", _config_tables(folder, source))
        registry = load_plugins(entry_points=False)
        started = time.perf_counter()
        agent, exit_code = await run_in_process(load_config(config_path, registry), registry, duration_s)
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
    paced = await _run_case({"scenario": TWENTY_X_SCENARIO, "realtime": True}, duration)
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
