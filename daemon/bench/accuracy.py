"""Built-in bench ``kinefuse bench accuracy``: runs a fixed suite of synthetic-athlete scenarios through the
real pipeline and scores what reached storage against the simulator's truth, then scores the public data
sets, then sets the synthetic athlete's signals beside real ones (``kinefuse.bench.realism``; ``--data DIR``
scores the BROAD trials in any folder instead). Every row is a measurement; a value is
None only where a measurement was tried and could not give a number, and its note says why.
docs/accuracy.md is generated from this bench's JSON (``make accuracy``)."""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import tempfile
from pathlib import Path

import numpy as np

from kinefuse import hookimpl
from kinefuse.bench import BenchError, make_row
from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.bench.realism import realism_rows
from kinefuse.bench.scoring.clock_error import score_alignment, true_mapper_skew_ppm
from kinefuse.bench.scoring.demo_triangulation import demo_rows
from kinefuse.bench.scoring.detector_realism import real_tracks
from kinefuse.bench.scoring.fusion import knee_angle_rows
from kinefuse.bench.scoring.gait_error import gait_rows
from kinefuse.bench.scoring.honesty import honesty_rows, keypoint_honesty_rows
from kinefuse.bench.scoring.joint_angle_error import joint_angle_rows
from kinefuse.bench.scoring.landing_error import landing_rows
from kinefuse.bench.scoring.mounting_error import mounting_rows
from kinefuse.bench.scoring.public import public_rows
from kinefuse.bench.scoring.rep_error import rep_rows
from kinefuse.bench.scoring.segment_error import processors as segment_processors
from kinefuse.bench.scoring.segment_error import recorded_rows
from kinefuse.bench.scoring.sway_error import sway_rows
from kinefuse.bench.scoring.triangulation_error import triangulation_rows
from kinefuse.fusion.cross_modal import estimate_offset, segment_angle_rate
from kinefuse.interfaces import BenchSpec
from kinefuse.sim.detector_model import KEYPOINT_SETS
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse.storage.schema import db_path

SUITE = (
    "walk.toml",
    "walk_asymmetric.toml",
    "walk_fusion.toml",
    "walk_four_cameras.toml",
    "run.toml",
    "squat.toml",
    "lunge.toml",
    "sit_to_stand.toml",
    "drop_landing.toml",
    "single_leg_balance.toml",
)
WARMUP_S = 10.0  # the clock aligner's fit settles in this long; earlier samples are not scored


async def run(options: dict) -> list[dict]:
    if options.get("shared_dir") is not None:  # --data: score the user's folder only
        return folder_rows(Path(options["shared_dir"]))
    return await suite_rows() + data_rows(shared_dir() / "data")


def data_rows(data: Path) -> list[dict]:
    """Everything after the suite: the mountings, triangulation (and the demo videos in 3D), the public data
    and the realism rows; the shipped pose model runs on the demo videos once, for both."""
    demo = real_tracks(data)
    return (mounting_rows() + triangulation_rows(data) + demo_rows(data, demo) + public_rows(data)
            + realism_rows(data, demo))  # fmt: skip


async def suite_rows(names: tuple[str, ...] = SUITE) -> list[dict]:
    """The packaged scenarios ``names`` (default: the whole suite) through the pipeline, scored."""
    rows = []
    for name in names:
        rows += await scenario_rows(_packaged(name))
    return rows


def folder_rows(folder: Path) -> list[dict]:
    """``--data DIR``: a folder with nothing to measure is an error, not an empty table."""
    if not folder.is_dir():
        raise BenchError(f"{folder} is not a folder")
    rows = public_rows(folder)
    if not rows:
        raise BenchError(
            f"nothing to score in {folder}: no BROAD trial (.hdf5 or .mat) in it or below it, and BROAD "
            "orientation is the only public format kinefuse measures yet"
        )
    return rows


def _packaged(name: str) -> Path:
    return Path(str(importlib.resources.files("kinefuse.scenarios") / name))


async def scenario_rows(path: Path) -> list[dict]:
    """Run one scenario through the pipeline as fast as possible and score what reached storage."""
    from kinefuse.storage import reader

    async with recorded(path) as (simulation, db):
        name = simulation.scenario.name
        rows = _clock_rows(name, simulation, db, reader)
        rows += _cross_modal_rows(name, simulation, db, reader)
        rows += knee_angle_rows(name, simulation, db, reader)
        rows += joint_angle_rows(name, simulation, db)
        rows += gait_rows(name, simulation, db)
        rows += rep_rows(name, simulation, db)
        rows += landing_rows(name, simulation, db)
        rows += sway_rows(name, simulation, db)
        rows += honesty_rows(name, simulation, db, reader)
        rows += keypoint_honesty_rows(name, simulation, db, reader)
        rows += await recorded_rows(simulation, db, Path(db_path(db)))  # the motion stream's segments
    return rows


@contextlib.asynccontextmanager
async def recorded(path: Path):
    """The scenario at ``path`` run through the pipeline as fast as possible, nothing dropped: its
    ``Simulation`` and the database it left (open for reading), for as long as the context lasts."""
    from kinefuse.config import load_config
    from kinefuse.inprocess import replay_in_process, write_config
    from kinefuse.plugin_loader import load_plugins
    from kinefuse.storage import reader

    path = Path(path).resolve()  # the config written below resolves relative paths against its own folder
    scenario = load_scenario(path)
    with tempfile.TemporaryDirectory(prefix="kinefuse-accuracy-") as tmp:
        folder = Path(tmp)
        config_path = write_config(folder / "config.toml", _config_tables(folder, path))
        registry = load_plugins(entry_points=False)
        await replay_in_process(load_config(config_path, registry), registry, f"scenario {scenario.name}")
        db = reader.open_for_reading(folder / "accuracy.db")
        try:
            yield Simulation(scenario), db
        finally:
            db.close()


def _config_tables(folder: Path, scenario: Path) -> dict:
    return {
        "daemon": {"athlete": "accuracy", "log_level": "warning"},
        "storage": {"path": folder / "accuracy.db"},
        "status": {"socket_path": folder / "k.sock"},
        "sources": [
            {"id": "sim", "type": "synthetic", "scenario": scenario, "realtime": False, "loop": False}
        ],
        # the motion stream with its defaults, as make run, and an IMU-only one beside it (segment_error)
        "processors": segment_processors(),
    }


def _clock_rows(name: str, simulation: Simulation, db, reader) -> list[dict]:
    """Aligned-time error and skew error, worst over the IMUs and over the cameras."""
    devices = {row["device_id"]: row for row in db.query("SELECT * FROM devices")}
    rows = []
    for kind, sims, load, rate in (
        ("IMU", simulation.imus, reader.imu_samples, lambda d: d.rate_hz),
        ("camera", simulation.cameras, reader.keypoint_frames, lambda d: d.fps),
    ):
        scores = []
        for device in sims:
            stored = load(db, device_id=device.name)
            zero_ns = _meta(devices[device.name])["sim_time_zero_ns"]
            score = score_alignment(
                np.asarray(stored["time_ns"]), stored["seq"] / rate(device), zero_ns, WARMUP_S
            )
            skew_error = abs(devices[device.name]["clock_skew_ppm"] - true_mapper_skew_ppm(device.clock))
            scores.append((device.name, score, skew_error))
        if scores:
            rows += _worst_rows(name, kind, scores)
    return rows


def _cross_modal_rows(name: str, simulation: Simulation, db, reader) -> list[dict]:
    """Offset between a shank strap's and a camera's aligned timelines, from the shank's angular velocity
    seen by both, against the truth (each stream's aligned-time error is known from the sample numbers)."""
    metric = "cross-modal IMU-camera offset error"
    shanks = [d for d in simulation.imus if d.segment.endswith("_shank")]
    camera = simulation.cameras[0] if simulation.cameras else None
    if not shanks or camera is None or camera.keypoint_set != "COCO-17":
        return [make_row(name, metric, "ms", None, "lower",
                         note="insufficient data: the scenario has no shank strap and COCO-17 camera")]  # fmt: skip
    frames = reader.keypoint_frames(db, device_id=camera.name)
    names = KEYPOINT_SETS["COCO-17"].keypoints
    shank = max(shanks, key=lambda d: _seen_share(frames["keypoints"], names, d.segment.split("_")[0]))
    side = shank.segment.split("_")[0]
    imu = reader.imu_samples(db, device_id=shank.name)
    zero_ns = reader.device_meta(db, shank.name)["sim_time_zero_ns"]
    # seconds since the simulation's time zero: the correlation grid then falls the same way every run
    imu_t, cam_t = (
        (np.asarray(imu["time_ns"]) - zero_ns) / 1e9,
        (np.asarray(frames["time_ns"]) - zero_ns) / 1e9,
    )
    mid, rate = segment_angle_rate(
        cam_t, frames["keypoints"], names.index(f"{side}_knee"), names.index(f"{side}_ankle")
    )
    estimate = estimate_offset(imu_t, np.asarray(imu["gyr"], dtype=np.float64), mid, rate)
    truth = np.median(imu_t - imu["seq"] / shank.rate_hz) - np.median(cam_t - frames["seq"] / camera.fps)
    note = f"{shank.name} against {camera.name}, {side} knee-ankle angular velocity"
    note += f"; correlation {estimate.confidence:.2f}"
    if estimate.uncertainty_s is not None:
        note += f", lag standard error {estimate.uncertainty_s * 1e3:.1f} ms"
    if not estimate.sufficient:
        return [make_row(name, metric, "ms", None, "lower", note=f"{estimate.reason}; {note}")]
    return [make_row(name, metric, "ms", abs(estimate.offset_s - truth) * 1e3, "lower", note=note)]


def _seen_share(keypoints: np.ndarray, names: tuple[str, ...], side: str) -> float:
    """The share of frames in which the camera is sure of both the knee and the ankle of ``side``: the
    shank it sees best (the near leg of a side view) is the one to compare with its strap."""
    pair = [names.index(f"{side}_knee"), names.index(f"{side}_ankle")]
    return float(np.mean((np.asarray(keypoints)[:, pair, 2] > 0.3).all(axis=1)))


def _worst_rows(name: str, kind: str, scores: list) -> list[dict]:
    spread_device, spread, _ = max(scores, key=lambda s: s[1]["p95_spread_ms"])
    skew_device, _, skew = max(scores, key=lambda s: s[2])
    after = f"after the first {WARMUP_S:.0f} s, worst of {len(scores)} {kind}(s)"
    return [
        make_row(name, f"{kind} aligned time: p95 error spread", "ms", spread["p95_spread_ms"], "lower",
                 note=f"{spread_device}, {after}; median offset {spread['median_ms']:.1f} ms is the link's latency"
                 " floor"),
        make_row(name, f"{kind} clock skew error", "ppm", skew, "lower", note=f"{skew_device}, {after}"),
    ]  # fmt: skip


def _meta(device_row: dict) -> dict:
    return json.loads(device_row["meta"])


@hookimpl
def register_benches():
    return [BenchSpec("accuracy", __doc__.strip(), run)]
