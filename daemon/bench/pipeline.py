"""Built-in bench ``kinefuse bench pipeline``: the real agent from the synthetic source to committed SQLite
rows and to the live stream. Flat out on one core, committed rows/s against bare sqlite3 writing the same
rows; a paced 20x the default load with arrival-to-commit latency; and, on every core, arrival-to-live-stream
latency as a subscriber of the Unix socket sees it (8 IMU x 200 Hz + 2 cameras x 30 fps)."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from kinefuse import hookimpl
from kinefuse.bench import make_row, pipeline_latency
from kinefuse.bench.pipeline_sqlite import arrival_span_s, bare_write_rate, count_rows
from kinefuse.builtin.sources.synthetic import scenario_path
from kinefuse.config import load_config
from kinefuse.inprocess import run_in_process, write_config
from kinefuse.interfaces import BenchSpec
from kinefuse.plugin_loader import load_plugins

FLAT_OUT = {"realtime": False}  # the default scenario, as fast as it can go
PEER = "bare sqlite3 executemany, same rows and schema"
_REDIRECTING_ENV = ("KINEFUSE_DB", "KINEFUSE_SOCKET")  # [storage] path, [status] socket_path
GOAL_P99_MS = 20.0  # issue 12: arrival to the live stream, excluding pose inference
# 20x the default load: 4 straps at 2000 Hz and 3 cameras at 200 fps, perfect sensors
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
# simulating a second ahead at a time, the source starts within a run of any length and its simulation
# work is spread evenly over the run (a 10 s chunk of this scenario takes a good fraction of a second)
PACED = {"scenario": TWENTY_X_SCENARIO, "realtime": True, "chunk_s": 1.0}


def scenario_rate(scenario: dict) -> float:
    """Samples per second a scenario's devices offer: every strap's rate plus every camera's frame rate."""
    return sum(d["rate_hz"] for d in scenario["imus"]) + sum(c["fps"] for c in scenario["cameras"])


def describe(scenario: dict) -> str:
    """Its devices, as "4 IMU x 100 Hz + 1 camera x 30 fps" (the straps, and the cameras, all run alike)."""
    imus, cameras = scenario["imus"], scenario["cameras"]
    camera = "camera" if len(cameras) == 1 else "cameras"
    return f"{len(imus)} IMU x {imus[0]['rate_hz']:.0f} Hz + {len(cameras)} {camera} x {cameras[0]['fps']:.0f} fps"


def default_load() -> tuple[float, str]:
    """Samples/s of the scenario the synthetic source runs by default, and its devices."""
    from kinefuse.sim.scenario import load_scenario  # the simulator: not at every kinefuse command's start

    loaded = load_scenario(scenario_path(""))
    scenario = {"imus": loaded.imus, "cameras": loaded.cameras}
    return scenario_rate(scenario), describe(scenario)


def _config_tables(folder: Path, source: dict, processors: list[dict]) -> dict:
    return {
        "daemon": {"log_level": "warning"},
        "storage": {"path": folder / "bench.db"},
        "status": {"socket_path": folder / "kinefuse.sock"},
        "sources": [{"id": "synth", "type": "synthetic", **source}],
        **({"processors": processors} if processors else {}),
    }


def case_config(folder: Path, source: dict, processors: list[dict] | None = None) -> Path:
    """A bench case's config file in ``folder``: the synthetic ``source`` (its scenario a table or a path),
    storage and socket in the folder, and ``processors`` (none by default)."""
    if isinstance(source.get("scenario"), dict):
        source = {**source, "scenario": write_config(folder / "scenario.toml", source["scenario"])}
    return write_config(folder / "config.toml", _config_tables(folder, source, processors or []))


async def _run_case(folder: Path, source: dict, duration_s: float) -> dict:
    config_path = case_config(folder, source)
    registry = load_plugins(entry_points=False)
    started = time.perf_counter()
    agent, exit_code = await run_in_process(load_config(config_path, registry), registry, duration_s)
    elapsed = time.perf_counter() - started
    if exit_code != 0:
        raise RuntimeError(f"the agent did not stop cleanly (exit {exit_code}); no figures from this run")
    sink = agent.sinks["sqlite"].sink
    stats = agent.status()["sources"]["synth"]
    # flat out counts start and drain too; a paced run is judged over the time its samples arrived in
    # (its source's clock starts only once the first stretch of the scenario is simulated)
    span_s = elapsed if not source["realtime"] else arrival_span_s(folder / "bench.db")
    return {
        "committed_per_s": sink.rows_committed / span_s,
        "offered_per_s": stats["received"] / span_s,
        "dropped": stats["dropped"],
        "latency_ms": np.asarray(sink.latency_ns, dtype=np.float64) / 1e6,
        "elapsed_s": elapsed,
        "batch_max_rows": sink.batch_max_rows,
    }


async def _flat_out(duration_s: float) -> dict:
    """The default scenario unthrottled, then its committed sample rows written again by bare sqlite3."""
    with tempfile.TemporaryDirectory(prefix="kinefuse-bench-") as tmp:
        folder = Path(tmp)
        case = await _run_case(folder, FLAT_OUT, duration_s)
        counts = count_rows(folder / "bench.db")
        bare = bare_write_rate(folder / "bench.db", folder / "bare.db", case["batch_max_rows"])
    return case | {"counts": counts, "rows_per_s": sum(counts.values()) / case["elapsed_s"], "bare": bare}


async def _paced(duration_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="kinefuse-bench-") as tmp:
        return await _run_case(Path(tmp), PACED, duration_s)


async def _live(duration_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="kinefuse-bench-") as tmp:
        config = case_config(Path(tmp), pipeline_latency.live_source(duration_s))
        return await pipeline_latency.measure(config, duration_s)


@contextlib.contextmanager
def own_files():
    """Hide the variables that would override the bench's database and socket paths: its agents must not
    write into the user's database nor listen on a running daemon's socket."""
    saved = {name: os.environ.pop(name) for name in _REDIRECTING_ENV if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.contextmanager
def _pinned_to_one_core():
    """Run the body on the first core this process may use, then give it back every core it had."""
    cores = os.sched_getaffinity(0)
    core = min(cores)
    os.sched_setaffinity(0, {core})
    try:
        yield f"pinned to core {core}"
    finally:
        os.sched_setaffinity(0, cores)


def _percentiles(values: np.ndarray) -> tuple[float | None, float | None]:
    if not len(values):
        return None, None
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


_LIVE_METRICS = (
    ("arrival to subscriber p50", "ms", "lower"),
    ("arrival to subscriber p99", "ms", "lower"),
    ("sample records received", "records", "higher"),
)


def _live_rows(live: dict, duration: float) -> list[dict]:
    scenario = pipeline_latency.LIVE_SCENARIO
    note = (
        f"{duration:.0f} s realtime, {describe(scenario)} = {scenario_rate(scenario):.0f} samples/s, one "
        "sample per notification, keypoints without pose inference; not pinned "
        f"({live['cores']} cores); a subscriber process on the Unix socket takes monotonic time on reading "
        "each sample record, minus the record's host_ns (its notification's arrival stamp); "
        f"{live['offered']} samples offered, {live['dropped']} dropped at ingest, {live['skipped']} stream "
        "items skipped for the subscriber; "
        f"goal p99 <= {GOAL_P99_MS:.0f} ms"
    )
    if not len(live["latency_ms"]):
        note += "; no sample record reached the subscriber"
    values = (*_percentiles(live["latency_ms"]), len(live["latency_ms"]))
    return [
        make_row("live stream", metric, unit, value, better, note=note)
        for (metric, unit, better), value in zip(_LIVE_METRICS, values, strict=True)
    ]


def _of_default(rate: float, default: tuple[float, str]) -> str:
    load, devices = default
    return f"{rate / load:.1f}x the default load of {load:.0f} samples/s ({devices})"


def _flat_rows(flat: dict, duration: float, pinned: str, default: tuple[float, str]) -> list[dict]:
    bare, counts = flat["bare"], flat["counts"]
    pragmas = ", ".join(f"{name}={value}" for name, value in bare["pragmas"].items())
    note = (
        f"{duration:.0f} s, source unthrottled, {pinned}; daemon: sample rows committed per second of wall time, "
        f"start-up, simulation and drain included, {_of_default(flat['rows_per_s'], default)}; peer: the same "
        f"{counts['imu_samples']} IMU and {counts['keypoint_frames']} keypoint rows, read back from the daemon's "
        f"file, into a fresh file of the same schema ({pragmas}) in {bare['transactions']} transactions of the "
        f"writer's batch_max_rows ({flat['batch_max_rows']}), timing only executemany and commit"
    )
    row = make_row("flat out", "committed samples/s", "samples/s", flat["rows_per_s"], "higher",
                   peer=PEER, peer_value=bare["per_s"], note=note)  # fmt: skip
    return [row]


def _paced_rows(paced: dict, duration: float, pinned: str, default: tuple[float, str]) -> list[dict]:
    offered = scenario_rate(TWENTY_X_SCENARIO)
    note = (
        f"{duration:.0f} s realtime, {describe(TWENTY_X_SCENARIO)} = {offered:.0f} samples/s scheduled, "
        f"{_of_default(offered, default)}, {pinned}; rates per second from the first to the last arrival "
        f"stamp; committed {paced['committed_per_s'] / default[0]:.1f}x the default load"
    )
    p50, p99 = _percentiles(paced["latency_ms"])
    case = "20x default load"
    return [
        make_row(case, "committed samples/s", "samples/s", paced["committed_per_s"], "higher", note=note),
        make_row(case, "offered samples/s", "samples/s", paced["offered_per_s"], "higher", note=note),
        make_row(case, "samples dropped", "samples", paced["dropped"], "lower", note=note),
        make_row(case, "arrival to commit p50", "ms", p50, "lower", note=note),
        make_row(case, "arrival to commit p99", "ms", p99, "lower", note=note),
    ]


async def run(options: dict) -> list[dict]:
    duration = options.get("duration_s") or 10.0
    default = default_load()
    with own_files():
        # the live case first, on every core this process may use; the throughput cases on one
        live = await _live(duration)
        with _pinned_to_one_core() as pinned:
            flat = await _flat_out(duration)
            paced = await _paced(duration)
    return [
        *_live_rows(live, duration),
        *_flat_rows(flat, duration, pinned, default),
        *_paced_rows(paced, duration, pinned, default),
    ]


@hookimpl
def register_benches():
    return [BenchSpec("pipeline", __doc__.strip(), run)]
