"""Scoring the live motion stream's segment orientations on the synthetic athlete: per strap segment with
two end keypoints (thigh: hip to knee; shank: knee to ankle), the error of the segment's long axis against
the simulator's truth, from the IMU alone, the video alone (the stream's triangulated "3d" view) and fused
(the stream's segment orientation), on the same samples for all three.

The scenario runs once through the pipeline (as fast as possible) with two motion processors on the same
data: ``motion`` as configured by default (video fusion on) and ``motion_imu`` with ``video_fusion`` off,
whose segments are the straps' own orientations. Those live in each strap's own heading frame (no
magnetometer), so "IMU alone" gets one heading alignment to the cameras' world: the weighted circular median
of its heading disagreements with the triangulated axis over the first ``ALIGN_S`` seconds of usable video
(as after a calibration pose), then runs on its own. The long axis is the one thing all three define (the
video has no rotation about it).

Scored: items from ``WARMUP_S`` on (clock alignment and the filters settle) where all three have a value.
"Well seen": those of them where both end keypoints are measured (not filled) in the 3D view.

"Offline": the same session analysed offline afterwards (``kinefuse analyze --mode offline``, its acausal
fused segments), scored on the same items against the live fused stream.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.bench import make_row
from kinefuse.builtin.processors.motion_fusion import SEGMENT_ENDS, segment_axis
from kinefuse.fusion.segments import angle_between, circular_median, heading_disagreement, long_axis
from kinefuse.keypoints import KEYPOINT_NAMES
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse.types import TRIANGULATED_VIEW, KeypointStatus, KeypointView

WARMUP_S = 10.0
ALIGN_S = 2.0
METRIC = "segment long-axis error RMS"
_FUSED, _IMU = "motion", "motion_imu"


async def segment_error_rows(path: Path, seed: int | None = None) -> list[dict]:
    """Rows for one scenario file, run here with ``PROCESSORS``: per strap segment, fused against video alone
    and against IMU alone, and offline against live."""
    simulation = Simulation(load_scenario(path), seed)
    if not _measurable(simulation):
        return []
    with tempfile.TemporaryDirectory(prefix="kinefuse-segment-error-") as tmp:
        db = await _run(Path(path).resolve(), Path(tmp), seed)
        try:
            return await recorded_rows(simulation, db, Path(tmp) / "segments.db")
        finally:
            db.close()


async def recorded_rows(simulation, db, db_path: Path) -> list[dict]:
    """The rows of a scenario already run with ``PROCESSORS`` into ``db`` (the file ``db_path``)."""
    if not _measurable(simulation):
        return []
    # analyze runs its own event loop (asyncio.run), so off this one
    analysis_id = await asyncio.to_thread(offline_analysis, db_path)
    segments = [d.segment for d in simulation.imus if d.segment in SEGMENT_ENDS]
    return [row for segment in segments
            for row in segment_rows(simulation.scenario.name, simulation, db, segment, analysis_id)]  # fmt: skip


def _measurable(simulation) -> bool:
    """Two cameras to triangulate, and a thigh or shank strap."""
    return len(simulation.cameras) >= 2 and any(d.segment in SEGMENT_ENDS for d in simulation.imus)


async def _run(path: Path, folder: Path, seed: int | None, options: dict | None = None):
    """Run the scenario with the fused and the IMU-only motion processors (``options``: more of their keys)."""
    from kinefuse.config import load_config
    from kinefuse.inprocess import replay_in_process, write_config
    from kinefuse.plugin_loader import load_plugins
    from kinefuse.storage import reader

    source = {"id": "sim", "type": "synthetic", "scenario": path, "realtime": False, "loop": False}
    if seed is not None:
        source["seed"] = seed
    tables = {
        "daemon": {"athlete": "segment-error", "log_level": "warning"},
        "storage": {"path": folder / "segments.db"},
        "status": {"socket_path": folder / "k.sock"},
        "sources": [source],
        "processors": processors(options),
    }
    registry = load_plugins(entry_points=False)
    await replay_in_process(
        load_config(write_config(folder / "config.toml", tables), registry), registry, path
    )
    return reader.open_for_reading(folder / "segments.db")


def processors(options: dict | None = None) -> list[dict]:
    """The fused motion stream and an IMU-only one on the same data (``options``: more of their keys), and the
    joint angles of the fused one from its segments and from its 3D keypoints (the ``joint_angles`` metrics,
    scoring.joint_angle_error), the ``gait`` metrics (scoring.gait_error) and the ``reps`` metrics on the right
    knee's flexion from the straps (scoring.rep_error)."""
    return [
        {"id": _FUSED, "type": "motion", **(options or {})},
        {"id": _IMU, "type": "motion", **(options or {}), "video_fusion": False},
        {"id": "joint_angles", "type": "joint_angles", "motion": _FUSED, "revision": 1},
        {
            "id": "joint_angles_keypoints",
            "type": "joint_angles",
            "motion": _FUSED,
            "revision": 1,
            "source": "keypoints",
        },
        {
            "id": "joint_angles_camera",
            "type": "joint_angles",
            "motion": _FUSED,
            "revision": 1,
            "source": "camera",
        },
        {"id": "gait", "type": "gait", "source": "straps"},  # from foot or shank straps (gait_error)
        {"id": "gait_lower_back", "type": "gait", "source": "lower_back"},  # from a lower-back strap alone
        {"id": "gait_keypoints", "type": "gait", "source": "keypoints", "motion": _FUSED, "revision": 1},
        {"id": "gait_camera", "type": "gait", "source": "camera", "motion": _FUSED, "revision": 1},
        {
            "id": "reps",
            "type": "reps",
            "processor": "joint_angles",
            "metric": "right_knee.flexion",
            "compare": "left_knee.flexion",
            "observe": ["joint_angles_camera/right_knee.fppa", "joint_angles_camera/trunk.lean"],
        },  # rep_error
        {
            "id": "reps_down",
            "type": "reps",
            "processor": "joint_angles",
            "metric": "right_knee.flexion",
            "direction": "down",
            "compare": "left_knee.flexion",
        },  # rep_error: sit-to-stand, from sitting
        {"id": "landing", "type": "landing", "angles": "joint_angles_camera"},  # landing_error
        {"id": "sway", "type": "sway", "motion": _FUSED},  # sway_error: single-leg balance
    ]


def segment_errors(simulation, db, segment: str) -> dict:
    """Per item of the live stream (its smoothed revision): time (s since the simulation's time zero), the long-axis
    error (deg) of "fused", "video" and "imu" (NaN where that one has no value) and "well_seen"."""
    from kinefuse.storage import reader

    fused = _live(reader.motion_segments(db, segment=segment), _FUSED)
    imu = _live(reader.motion_segments(db, segment=segment), _IMU)
    views = _live(reader.motion_keypoints(db, view=TRIANGULATED_VIEW), _FUSED)
    strap = str(fused["device_id"][0])
    zero_ns = reader.device_meta(db, strap)["sim_time_zero_ns"]
    times = (fused["time_ns"] - zero_ns) / 1e9
    video = _video_axis(views, fused["time_ns"], segment)
    imu_q = _on(imu, fused["time_ns"], "quaternion")
    truth = _true_axis(simulation, db, strap, zero_ns, times, segment)
    estimates = {
        "fused": long_axis(fused["quaternion"].astype(np.float64)),
        "video": video["axis"],
        "imu": _aligned_once(times, imu_q, video["axis"], _calibrated(imu, fused["time_ns"])),
    }
    errors = {key: angle_between(axis, truth) for key, axis in estimates.items()}
    return {"t": times, **errors, "well_seen": video["well_seen"]}


def segment_rows(name: str, simulation, db, segment: str, analysis_id: int | None = None) -> list[dict]:
    errors = segment_errors(simulation, db, segment)
    scored = errors["t"] >= WARMUP_S
    for key in ("fused", "video", "imu"):
        scored &= np.isfinite(errors[key])
    rms = {key: _rms(errors[key][scored]) for key in ("fused", "video", "imu")}
    well = scored & errors["well_seen"]
    rms_well = {key: _rms(errors[key][well]) for key in ("fused", "video", "imu")}
    note = (f"{segment}, live stream at 30 Hz after {WARMUP_S:.0f} s, {int(scored.sum())} samples with all three "
            f"values ({scored.sum() / max(np.sum(errors['t'] >= WARMUP_S), 1):.0%} of the items); where the "
            f"camera sees both ends measured ({int(well.sum())} samples): fused {_fmt(rms_well['fused'])}, "
            f"video {_fmt(rms_well['video'])}, IMU {_fmt(rms_well['imu'])} deg")  # fmt: skip
    metric = f"{METRIC} ({segment})"
    return [
        make_row(name, metric, "deg", rms["fused"], "lower", peer="video alone (triangulated keypoints)",
                 peer_value=rms["video"], note=note),
        make_row(name, metric, "deg", rms["fused"], "lower",
                 peer="IMU alone (heading aligned once to the video)", peer_value=rms["imu"], note=note),
    ] + ([] if analysis_id is None else offline_rows(name, simulation, db, segment, analysis_id, errors))  # fmt: skip


def offline_analysis(db_path: Path) -> int:
    """The recorded session (the only one) analysed offline, with the config it ran with; its analysis id."""
    from kinefuse.analyze import analyze

    return analyze(db_path, 1, "offline").analysis_id


def offline_segment_errors(
    simulation, db, segment: str, analysis_id: int, errors: dict | None = None
) -> dict:
    """``segment_errors`` (given or computed) with "offline": the long-axis error (deg) of the offline
    analysis ``analysis_id``'s segment at the live stream's items (NaN where it has none)."""
    from kinefuse.storage import reader

    errors = errors if errors is not None else segment_errors(simulation, db, segment)
    fused = _live(reader.motion_segments(db, segment=segment), _FUSED)
    rows = reader.motion_segments(db, segment=segment, analysis_id=analysis_id)
    order = np.argsort(rows["time_ns"], kind="stable")
    offline = _on({key: value[order] for key, value in rows.items()}, fused["time_ns"], "quaternion")
    strap = str(fused["device_id"][0])
    zero_ns = reader.device_meta(db, strap)["sim_time_zero_ns"]
    truth = _true_axis(simulation, db, strap, zero_ns, errors["t"], segment)
    return {**errors, "offline": angle_between(long_axis(offline), truth)}


def offline_rows(name: str, simulation, db, segment: str, analysis_id: int, errors: dict) -> list[dict]:
    """The offline analysis's error against the live fused stream's, on the items both have after the warm-up."""
    from kinefuse.storage import reader

    errors = offline_segment_errors(simulation, db, segment, analysis_id, errors)
    # the same samples as the live rows: where the live strap's mounting is calibrated (before it the live
    # value is the strap's nominal one, which offline, calibrating from the whole recording, never is)
    fused = _live(reader.motion_segments(db, segment=segment), _FUSED)
    scored = (errors["t"] >= WARMUP_S) & np.isfinite(errors["fused"]) & np.isfinite(errors["offline"])
    scored &= _calibrated(fused, fused["time_ns"])
    rms = {key: _rms(errors[key][scored]) for key in ("fused", "offline")}
    note = (f"{segment}, offline analysis (acausal: RTS keypoints, offline VQF, two-way heading fusion) against "
            f"the live stream's fused segment, on the {int(scored.sum())} items after {WARMUP_S:.0f} s where the live "
            "strap's mounting is calibrated")  # fmt: skip
    return [make_row(name, f"{METRIC} ({segment})", "deg", rms["offline"], "lower",
                     peer="live stream (fused)", peer_value=rms["fused"], note=note)]  # fmt: skip


def _live(rows: dict, processor: str) -> dict:
    """One processor's live items as revised (revision 1: the keypoints fixed-lag smoothed), in time order."""
    keep = (rows["processor"] == processor) & (rows["revision"] == 1)
    order = np.argsort(rows["time_ns"][keep], kind="stable")
    return {key: value[keep][order] for key, value in rows.items()}


def _on(rows: dict, time_ns: np.ndarray, key: str) -> np.ndarray:
    """``rows[key]`` at each of ``time_ns`` (NaN where that item is absent)."""
    index = np.searchsorted(rows["time_ns"], time_ns).clip(0, max(len(rows["time_ns"]) - 1, 0))
    value = np.asarray(rows[key], dtype=np.float64)[index]
    value[rows["time_ns"][index] != time_ns] = np.nan
    return value


def _video_axis(views: dict, time_ns: np.ndarray, segment: str) -> dict:
    position, status = _on(views, time_ns, "position"), _on(views, time_ns, "status")
    names = KEYPOINT_NAMES[str(views["keypoint_set"][0])]
    ends = [names.index(joint) for joint in SEGMENT_ENDS[segment]]
    as_views = [KeypointView(TRIANGULATED_VIEW, "", str(views["keypoint_set"][0]), "m", p, np.zeros(len(p)), s)
                for p, s in zip(position, status, strict=True)]  # fmt: skip
    return {
        "axis": segment_axis(as_views, segment),
        "well_seen": (status[:, ends] == KeypointStatus.MEASURED).all(axis=1),
    }


def _true_axis(simulation, db, strap: str, zero_ns: int, times: np.ndarray, segment: str) -> np.ndarray:
    """The segment's true long axis at each item: the item's aligned time less the strap's aligned-time
    offset (its link's latency floor, the median of aligned time minus true sample time)."""
    device = next(d for d in simulation.imus if d.name == strap)
    marks = simulation.body.landmarks(times - aligned_offset_s(db, device, zero_ns))
    start, end = SEGMENT_ENDS[segment]
    return marks[end] - marks[start]


def aligned_offset_s(db, device, zero_ns: int) -> float:
    """A simulated device's (IMU or camera) aligned-time offset in s: its link's latency floor, the median of
    its stored aligned times (from the simulation's time zero, ``zero_ns``) minus its true sample times."""
    from kinefuse.storage import reader

    imu = hasattr(device, "rate_hz")
    stored = (reader.imu_samples if imu else reader.keypoint_frames)(db, device_id=device.name)
    rate = device.rate_hz if imu else device.fps
    return np.median((np.asarray(stored["time_ns"]) - zero_ns) / 1e9 - stored["seq"] / rate)


def sim_time_s(db, device, time_ns: np.ndarray) -> np.ndarray:
    """Stored (aligned host) times, ns, as the simulation's true time, s: less the device's aligned-time
    offset."""
    from kinefuse.storage import reader

    zero_ns = reader.device_meta(db, device.name)["sim_time_zero_ns"]
    return (np.asarray(time_ns) - zero_ns) / 1e9 - aligned_offset_s(db, device, zero_ns)


def sim_times_by_device(db, devices: dict, rows: list[dict]) -> np.ndarray:
    """Each stored row's ``time_ns`` as the simulation's time (s), by its device's (``row["device_id"]``, a
    key of ``devices``) aligned-time offset, looked up once per device: it reads the device's samples."""
    out = np.empty(len(rows))
    for name, device in devices.items():
        mine = [i for i, row in enumerate(rows) if row["device_id"] == name]
        if mine:
            out[mine] = sim_time_s(db, device, np.array([rows[i]["time_ns"] for i in mine], dtype=np.int64))
    return out


def _calibrated(rows: dict, time_ns: np.ndarray) -> np.ndarray:
    """At each of ``time_ns``: whether the strap's mounting was calibrated in that item (its reason no longer
    says it is not)."""
    done = np.array(["mounting not calibrated yet" not in why for why in rows["reason"]])
    at = np.searchsorted(rows["time_ns"], time_ns).clip(0, len(done) - 1)
    return done[at] & (rows["time_ns"][at] == time_ns)


def _aligned_once(times, quaternions, video_axis, calibrated) -> np.ndarray:
    """The strap's long axis turned once about the vertical by the weighted circular median (weights h^2,
    as the fusion's measurement variances) of its heading disagreements with the video over the first
    ``ALIGN_S`` seconds of usable video once its mounting is calibrated (as after a calibration pose); no
    value before."""
    disagreement, horizontal, usable = heading_disagreement(quaternions, video_axis)
    usable &= calibrated
    axis = long_axis(quaternions)
    axis[~calibrated] = np.nan
    if not usable.any():
        return np.full_like(axis, np.nan)
    window = usable & (times <= times[usable][0] + ALIGN_S)
    psi = circular_median(disagreement[window], horizontal[window] ** 2)
    return Rotation.from_euler("z", psi).apply(np.nan_to_num(axis)) + np.where(np.isnan(axis), np.nan, 0.0)


def _rms(error: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(error**2))) if len(error) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
