"""Strap-to-segment mounting calibration against the simulator's truth: the ``motion`` processor's own
per-strap code (``kinefuse.builtin.processors.motion_straps.StrapTrack``, with the processor's default
options) run on the synthetic athlete's strap samples, its mounting compared with the scenario's.

Each seed draws a new mounting for every leg strap, a rotation by 5 to 30 deg about a random axis (the
``mounting_deg`` of the scenario), and a new athlete (stride variation, sensor errors). The athlete stands
still first (the scenario's ``standing_start_s``): the strap's first rest is the static pose, the movement
after it the functional movement (Seel, Raisch & Schauer 2014, Sensors 14:6891). The error is the angle of
M_estᵀ M_true; the peer is the nominal mounting's (the identity's) error, what the stream had before."""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import tempfile
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.bench import make_row
from kinefuse.builtin.processors.motion_straps import MountingCalibration, StrapTrack
from kinefuse.builtin.processors.motion_stream import SCHEMA
from kinefuse.configschema import defaults
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse.types import imu_batch

SEEDS = tuple(range(8))
DURATION_S = 25.0  # standing 3 s, the rest found by 1.5 s, then 10 s from the first movement: by about 14 s
STANDING_S = 3.0
_BATCH = 5  # samples per notification, as the packaged straps send them
_BASES = {"walk": "walk.toml", "run": "run.toml"}


@dataclasses.dataclass(frozen=True)
class Calibrated:
    kind: str  # shank, thigh
    error_deg: float | None  # None: never calibrated
    nominal_deg: float  # the identity's error: the true mounting's angle
    calibration: MountingCalibration


def _random_mounting(rng: np.random.Generator) -> list[float]:
    axis = rng.standard_normal(3)
    rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(5.0, 30.0)))
    return [float(a) for a in rotation.as_euler("xyz", degrees=True)]


def _thigh(side: str, mounting_deg: list[float]) -> str:
    return (f'\n[[imus]]\nname = "imu_{side}_thigh"\nsegment = "{side}_thigh"\n'
            f"offset_m = [0.02, {0.08 if side == 'left' else -0.08}, -0.20]\nmounting_deg = {mounting_deg}\n"
            f'rate_hz = 100.0\npreset = "consumer"\n')  # fmt: skip


def scenario_text(base: str, seed: int) -> str:
    """The packaged scenario ``base`` with seed ``seed``, a standing start of ``STANDING_S``, every leg strap
    mounted at random and, for a walk, a thigh strap on each side."""
    rng = np.random.default_rng(seed)
    text = (importlib.resources.files("kinefuse.scenarios") / base).read_text()
    text = re.sub(r"(?m)^seed = \d+$", f"seed = {seed}", text)
    text = re.sub(r"(?m)^duration_s = .*$", f"duration_s = {DURATION_S}", text)
    text = re.sub(r"(?m)^standing_start_s = .*\n", "", text)
    text = text.replace("[motion]\n", f"[motion]\nstanding_start_s = {STANDING_S}\n", 1)
    blocks = text.split("[[imus]]")
    for i, block in enumerate(blocks[1:], start=1):
        if re.search(r'segment = "\w+_(shank|thigh)"', block):
            block = re.sub(r"(?m)^mounting_deg = .*\n", "", block)
            blocks[i] = block.replace("\nrate_hz", f"\nmounting_deg = {_random_mounting(rng)}\nrate_hz", 1)
    text = "[[imus]]".join(blocks)
    if base == _BASES["walk"]:
        text += _thigh("left", _random_mounting(rng)) + _thigh("right", _random_mounting(rng))
    return text


def run_strap(simulation: Simulation, index: int, duration_s: float = DURATION_S, **options) -> StrapTrack:
    """Strap ``index``'s samples through the processor's StrapTrack, in notifications of ``_BATCH``, on the
    simulation's true time (the processor's epoch at time 0)."""
    device = simulation.imus[index]
    chunk = simulation.imu_chunk(index, 0.0, duration_s)
    track = chunk.track
    settings = {**defaults(SCHEMA), **options}
    strap = StrapTrack("sim", device.name, device.segment, settings)
    time_ns = np.round(chunk.t * 1e9).astype(np.int64)
    for i in range(0, len(time_ns), _BATCH):
        rows = slice(i, i + _BATCH)
        mag = None if track.mag is None else track.mag[rows]
        batch = imu_batch("sim", device.name, chunk.seq[rows], chunk.ticks[rows], time_ns[rows],
                          track.acc[rows], track.gyr[rows], mag)  # fmt: skip
        strap.add(dataclasses.replace(batch, time_ns=time_ns[rows]), 0, settings["rate_samples"])
    return strap


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the rotation aᵀ b."""
    return float(np.degrees(Rotation.from_matrix(a.T @ b).magnitude()))


def calibrate(base: str, seeds=SEEDS, **options) -> list[Calibrated]:
    """Every leg strap of ``base`` (a packaged scenario) over ``seeds``, calibrated by the processor's code."""
    out = []
    with tempfile.TemporaryDirectory(prefix="kinefuse-mounting-") as tmp:
        for seed in seeds:
            path = Path(tmp) / f"{seed}.toml"
            path.write_text(scenario_text(base, seed))
            simulation = Simulation(load_scenario(path))
            for index, device in enumerate(simulation.imus):
                kind = device.segment.partition("_")[2]
                if kind not in ("shank", "thigh"):
                    continue
                calibration = run_strap(simulation, index, **options).mounting
                error = (
                    angle_deg(calibration.estimate.mounting, device.mounting)
                    if calibration.calibrated
                    else None
                )
                out.append(Calibrated(kind, error, angle_deg(np.eye(3), device.mounting), calibration))
    return out


def mounting_rows(seeds=SEEDS) -> list[dict]:
    """Rows: per scenario and segment kind, the median and the largest calibration error over the seeds'
    straps, beside the nominal mounting's."""
    rows = []
    for case, base in _BASES.items():
        results = calibrate(base, seeds)
        for kind in ("shank", "thigh"):
            rows += _kind_rows(f"{case} (mounting)", kind, [r for r in results if r.kind == kind], len(seeds))
    return rows


def _kind_rows(case: str, kind: str, results: list[Calibrated], seeds: int) -> list[dict]:
    if not results:
        return []
    metric = f"{kind} strap mounting calibration error"
    errors = [r.error_deg for r in results if r.error_deg is not None]
    nominal = [r.nominal_deg for r in results]
    times = [r.calibration.calibrated_s for r in results if r.calibration.calibrated]
    if not errors:
        why = results[-1].calibration.estimate
        reason = why.quality.reason if why is not None else "no rest found"
        return [
            make_row(case, f"{metric}, median", "deg", None, "lower", note=f"insufficient data: {reason}")
        ]
    window_s = defaults(SCHEMA)["mounting_window_s"]
    note = (f"{len(errors)} of {len(results)} straps calibrated ({seeds} seeds, mountings 5-30 deg about "
            f"random axes), by {np.median(times):.1f} s median: the standing start's rest, then {window_s:g} s "
            "of movement; the processor's StrapTrack on the simulated samples")  # fmt: skip
    return [
        make_row(case, f"{metric}, median", "deg", float(np.median(errors)), "lower",
                 peer="nominal mounting", peer_value=float(np.median(nominal)), note=note),
        make_row(case, f"{metric}, max", "deg", float(np.max(errors)), "lower",
                 peer="nominal mounting", peer_value=float(np.max(nominal)), note=note),
    ]  # fmt: skip
