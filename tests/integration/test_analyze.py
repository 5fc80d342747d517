"""``kinefuse analyze`` on a session the real daemon recorded (the synthetic walk, not in real time: a
consumer shank strap with a magnetometer, a pelvis strap without, one camera with dropped frames and the
left ankle hidden at every left foot strike).

- live: the stored batches replayed through the motion processor reproduce the stored live stream;
- offline: the same grid and devices, acausal estimates closer to the simulator's truth than the live ones;
- bad input (an unknown session, a missing file) fails naming the file and the session.
"""

import asyncio
import importlib.resources
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from kinefuse.analyze import analyze
from kinefuse.analyze.offline import first_rest
from kinefuse.bench.scoring import segment_error
from kinefuse.config import load_config
from kinefuse.inprocess import run_in_process, write_config
from kinefuse.plugin_loader import load_plugins
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse.storage import reader
from kinefuse.types import KeypointStatus

DURATION_S = 20.0
SCENARIO = f"""
[scenario]
name = "walk_for_analysis"
duration_s = {DURATION_S}
seed = 5
[motion]
kind = "walk"
treadmill = true
[[cameras]]
name = "cam0"
position = [0.0, -4.0, 1.0]
target = [0.0, 0.0, 0.9]
size = [1280, 720]
focal_px = 900.0
fps = 30.0
[cameras.detector]
confidence_mean = 0.693
confidence_spread = 0.198
jitter_scale = 0.0186
jitter_dof = 4.31
jitter_confidence_power = 0.64
jitter_tail_power = 0.81
drift_scale = 0.0553
drift_time_s = 0.45
occlusion = true
frame_drop = 0.02
timestamp_jitter_s = 0.002
[[cameras.occluders]]
keypoints = ["left_ankle"]
around = "left_ic"
frames = 10
[cameras.link]
latency_min_s = 0.030
latency_jitter_s = 0.008
[[imus]]
name = "imu_left_shank"
segment = "left_shank"
preset = "consumer"
[imus.errors.gyr]
bias = [0.02, -0.02, 0.01]
[imus.link]
batch = 5
latency_min_s = 0.007
latency_jitter_s = 0.008
[[imus]]
name = "imu_pelvis"
segment = "pelvis"
magnetometer = false
"""
# a non-default option, so that a replay with the defaults would not pass for one with the session's settings
MOTION = {"id": "motion", "type": "motion", "lag_s": 0.05, "max_gap_s": 0.12}
GAIT = {"id": "gait", "type": "gait", "delay_s": 2.0}  # listed after motion: an analysis runs it again


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analyze")
    scenario = folder / "walk.toml"
    scenario.write_text(SCENARIO)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False,
              "chunk_s": DURATION_S}  # one chunk: the truth below is simulated the same way  # fmt: skip
    tables = {"daemon": {"athlete": "pytest"}, "storage": {"path": str(folder / "kinefuse.db")},
              "status": {"socket_path": str(folder / "kinefuse.sock")}, "sources": [source],
              "processors": [MOTION, GAIT]}  # fmt: skip
    registry = load_plugins(entry_points=False)
    config = load_config(write_config(folder / "config.toml", tables), registry)
    agent, exit_code = asyncio.run(run_in_process(config, registry, 120))
    status = agent.status()
    assert (
        exit_code == 0
        and status["processors"]["motion"]["errors"] == status["processors"]["gait"]["errors"] == 0
    )
    # a replay faster than real time waits for the sink rather than dropping what the processor published
    assert all(channel["dropped"] == 0 for channel in status["channels"].values()), status["channels"]
    return folder / "kinefuse.db", Simulation(load_scenario(scenario))


@pytest.fixture(scope="module")
def live_analysis(recorded):
    return analyze(recorded[0], 1, "live")


@pytest.fixture(scope="module")
def offline_analysis(recorded):
    return analyze(recorded[0], 1, "offline")


def test_live_mode_reproduces_the_stored_live_stream(recorded, live_analysis):
    db = recorded[0]
    assert live_analysis.settings["from"].endswith("config.toml")
    assert live_analysis.settings["options"]["lag_s"] == MOTION["lag_s"]
    for segment in ("left_shank", "pelvis"):
        # per revision: how causal items and revisions interleave depends on where batches end
        live = reader.motion_segments(db, segment=segment, revision=1)
        again = reader.motion_segments(db, segment=segment, analysis_id=live_analysis.analysis_id, revision=1)
        assert len(live["time_ns"]) > DURATION_S * 25
        np.testing.assert_array_equal(again["time_ns"], live["time_ns"])
        for key in ("provenance", "quality", "reason", "processor", "revision"):
            np.testing.assert_array_equal(again[key], live[key], err_msg=f"{segment} {key}")
        # the replay's filter sees the samples as stored (float32), the live one saw them as simulated
        # (float64): a relative change of at most 2^-24 per input, carried into the quaternion at about that
        # size, which is itself stored as float32 (ulp 6e-8 near 1): within a few ulp
        np.testing.assert_allclose(again["quaternion"], live["quaternion"], rtol=0, atol=2.5e-7)
    live = reader.motion_keypoints(db, view="cam0", revision=1)
    again = reader.motion_keypoints(db, view="cam0", analysis_id=live_analysis.analysis_id, revision=1)
    np.testing.assert_array_equal(again["time_ns"], live["time_ns"])
    np.testing.assert_array_equal(again["status"], live["status"])
    np.testing.assert_array_equal(
        again["position"], live["position"]
    )  # same float32 frames in: bit-identical
    np.testing.assert_array_equal(again["sigma"], live["sigma"])
    assert (live["status"] == KeypointStatus.MISSING).any() and (
        live["status"] == KeypointStatus.FILLED
    ).any()


def test_the_analysis_row_says_what_was_done(recorded, live_analysis, offline_analysis):
    db = reader.open_for_reading(recorded[0])
    rows = {r["id"]: r for r in db.query("SELECT * FROM analyses")}
    for result in (live_analysis, offline_analysis):
        row = rows[result.analysis_id]
        assert (row["session_id"], row["mode"], row["status"]) == (1, result.mode, "done")
        assert row["finished_wall"] >= row["started_wall"]
        assert json.loads(row["settings"])["options"]["max_gap_s"] == MOTION["max_gap_s"]
    db.close()


def _gait_rows(db, table: str, analysis_id: int | None) -> list[dict]:
    which = "analysis_id IS NULL" if analysis_id is None else f"analysis_id = {int(analysis_id)}"
    return list(
        db.query(f"SELECT * FROM {table} WHERE processor = 'gait' AND {which} ORDER BY time_ns, rowid")
    )


def test_the_processors_after_motion_run_again_in_the_analysis(recorded, live_analysis, offline_analysis):
    db = reader.open_for_reading(recorded[0])
    live_events, live_metrics = (_gait_rows(db, table, None) for table in ("events", "metrics"))
    assert len(live_events) > 20 and {e["kind"] for e in live_events} == {"initial_contact", "final_contact"}
    assert any(m["name"] == "gait.left.stride_time" and m["quality"] == "good" for m in live_metrics)
    for result in (live_analysis, offline_analysis):
        assert [c["id"] for c in result.settings["after_motion"]] == ["gait"]
        events, metrics = (_gait_rows(db, table, result.analysis_id) for table in ("events", "metrics"))
        assert result.derived == len(events) + len(metrics)
        # the gait processor reads the stored batches (float32 samples, the live run's were float64): the
        # same contacts, their times within a microsecond
        assert [(e["kind"], e["quality"], e["detail"]) for e in events] == [
            (e["kind"], e["quality"], e["detail"]) for e in live_events
        ]
        np.testing.assert_allclose(
            [e["time_ns"] for e in events], [e["time_ns"] for e in live_events], atol=1e3
        )
        assert [(m["name"], m["quality"]) for m in metrics] == [
            (m["name"], m["quality"]) for m in live_metrics
        ]
    db.close()


def _latest(read, db, **selection):
    """The rows of the stream's last revision (the live stream's smoothed one where it publishes two)."""
    revision = int(read(db, **selection)["revision"].max())
    return read(db, **selection, revision=revision)


def _inclination_errors(db, simulation, analysis_id):
    """Per item of the shank strap: the angle (deg) between the estimated and the true vertical in the sensor
    frame, the truth slerped onto the item's time through the stored samples' aligned times."""
    samples = reader.imu_samples(db, device_id="imu_left_shank")
    order = np.argsort(np.asarray(samples["time_ns"]))
    sample_ns, seq = np.asarray(samples["time_ns"])[order], samples["seq"][order]
    rising = np.concatenate([[True], np.diff(sample_ns) > 0])  # a clock fit's step can repeat a time
    sample_ns, seq = sample_ns[rising], seq[rising]
    track = simulation.imu_chunk(0, 0.0, DURATION_S).track
    truth = Slerp(sample_ns / 1e9, Rotation.from_matrix(track.R_world_sensor[seq]))
    stored = _latest(reader.motion_segments, db, segment="left_shank", analysis_id=analysis_id)
    t_ns, quats = stored["time_ns"], stored["quaternion"].astype(np.float64)
    valid = ~np.isnan(quats).any(axis=1) & (t_ns > sample_ns[0]) & (t_ns < sample_ns[-1])
    estimate = Rotation.from_quat(quats[valid][:, [1, 2, 3, 0]])
    up_est = estimate.inv().apply([0.0, 0.0, 1.0])
    up_true = truth(t_ns[valid] / 1e9).inv().apply([0.0, 0.0, 1.0])
    cosine = np.clip(np.sum(up_est * up_true, axis=1), -1.0, 1.0)
    return t_ns[valid], np.degrees(np.arccos(cosine))


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def test_offline_orientation_is_closer_to_the_truth(recorded, offline_analysis):
    db, simulation = recorded
    live_t, live_err = _inclination_errors(db, simulation, None)
    offline_t, offline_err = _inclination_errors(db, simulation, offline_analysis.analysis_id)
    assert len(offline_t) >= len(live_t) - 1 and np.isin(live_t, offline_t).mean() > 0.99
    # over the whole walk, and over its second half where the live filter has settled
    assert _rms(offline_err) < _rms(live_err)
    half = DURATION_S / 2 * 1e9 + live_t[0]
    assert _rms(offline_err[offline_t > half]) < _rms(live_err[live_t > half])
    segments = reader.motion_segments(db, analysis_id=offline_analysis.analysis_id)
    present = segments["quality"] != "insufficient"
    assert present.mean() > 0.95 and not any("settling" in r for r in segments["reason"][present])
    assert all("mounting not calibrated" in r for r in segments["reason"][present])


def test_offline_keypoints_are_closer_to_the_truth_and_flag_the_same_gaps(recorded, offline_analysis):
    db, simulation = recorded
    frames = reader.keypoint_frames(db, device_id="cam0")
    order = np.argsort(np.asarray(frames["time_ns"]))
    frame_s, seq = np.asarray(frames["time_ns"])[order] / 1e9, frames["seq"][order]
    truth = simulation.camera_chunk(0, 0.0, DURATION_S).track
    live = _latest(reader.motion_keypoints, db, view="cam0")
    offline = reader.motion_keypoints(db, view="cam0", analysis_id=offline_analysis.analysis_id)
    np.testing.assert_array_equal(
        offline["time_ns"][: len(live["time_ns"])], live["time_ns"][: len(offline["time_ns"])]
    )
    n = min(len(live["time_ns"]), len(offline["time_ns"]))
    t = live["time_ns"][:n] / 1e9
    inside = (t > frame_s[0]) & (t < frame_s[-1])
    # the target a temporal smoother can reach: the projection plus the detector's slow error (its drift)
    target = truth.truth_xy + truth.slow_error_xy
    true_xy = np.stack([[np.interp(t, frame_s, target[seq, k, axis]) for axis in (0, 1)]
                        for k in range(target.shape[1])]).transpose(2, 0, 1)  # fmt: skip
    both = (
        inside[:, None]
        & (live["status"][:n] == KeypointStatus.MEASURED)
        & (offline["status"][:n] == KeypointStatus.MEASURED)
    )
    assert both.mean() > 0.6
    live_err = np.linalg.norm(live["position"][:n] - true_xy, axis=2)[both]
    offline_err = np.linalg.norm(offline["position"][:n] - true_xy, axis=2)[both]
    assert _rms(offline_err) < _rms(live_err)
    # a hidden ankle is never measured offline either
    ankle = truth.names.index("left_ankle")
    hidden = truth.scripted_missing[seq, ankle]
    after = np.searchsorted(frame_s, t[inside], side="left")
    before = np.searchsorted(frame_s, t[inside], side="right") - 1
    touched = hidden[after] | hidden[before]
    assert touched.sum() >= 50
    assert not (offline["status"][:n][inside][touched, ankle] == KeypointStatus.MEASURED).any()


def _kinefuse(*args):
    return subprocess.run([sys.executable, "-m", "kinefuse", "analyze", *args], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_the_command_names_the_file_and_the_session_it_cannot_use(recorded, tmp_path):
    db = recorded[0]
    result = _kinefuse("7", "--db", str(db))
    assert result.returncode == 1
    assert f"{db}: session '7': no such session (sessions: 1 (" in result.stderr
    missing = tmp_path / "nowhere.db"
    result = _kinefuse("1", "--db", str(missing))
    assert result.returncode == 1 and f"{missing}: no such database file" in result.stderr
    result = _kinefuse("1", "--db", str(db), "--camera-offset", "imu_left_shank=0.1")
    assert (
        result.returncode == 1
        and "no camera ['imu_left_shank'] in the session (its cameras: [" in result.stderr
    )
    result = _kinefuse("1", "--db", str(db), "--camera-offset", "cam0=soon")
    assert result.returncode == 1 and "--camera-offset 'cam0=soon': expected DEVICE=SECONDS" in result.stderr


def test_a_devices_meta_is_read_back_as_declared(recorded):
    db = recorded[0]
    meta = reader.device_meta(db, "imu_left_shank")
    assert meta["segment"] == "left_shank" and isinstance(meta["sim_time_zero_ns"], int)
    with pytest.raises(LookupError, match=f"{db}: no device 'imu_nowhere'"):
        reader.device_meta(db, "imu_nowhere")


def test_the_command_prints_the_analysis(recorded):
    db = recorded[0]
    uuid = reader.find_session(db, 1)["uuid"]
    result = _kinefuse(uuid[:8], "--db", str(db), "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["session_id"] == 1 and out["mode"] == "live" and out["items"] > DURATION_S * 25
    assert out["samples"] > 0 and out["frames"] > 0


def test_bench_analyze_times_both_modes_against_real_time(tmp_path):
    out = tmp_path / "analyze.json"
    command = [sys.executable, "-m", "kinefuse", "bench", "analyze", "--duration", "6", "--json", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(row["case"], row["unit"]) for row in rows] == [
        (f"analyze {mode}", unit) for mode in ("live", "offline") for unit in ("frames/s", "items/s")
    ]
    for (
        row
    ) in rows:  # the peer is the session's own rate: the walk's two cameras give 60 frames a second, and
        # there are 30 item times a second, live each published causally and revised
        expected = 30.0 if row["case"] == "analyze offline" and row["unit"] == "items/s" else 60.0
        assert row["peer"] == "the session in real time" and abs(row["peer_value"] - expected) < 1.0
        assert row["value"] > 0 and "6.0 s recorded" in row["note"]


def test_offline_finds_the_rest_the_live_processor_finds():
    """The first rest by the live stationarity test, a consumer strap's 4 deg/s bias included (a test on the
    raw rate, as an orientation smoother's own rest detection is, finds none), a steady turn not taken."""
    from kinefuse.builtin.processors.motion_stream import SCHEMA
    from kinefuse.configschema import defaults

    rng = np.random.default_rng(1)
    rate_hz, options = 100.0, defaults(SCHEMA)
    gyr = rng.normal(0.0, 0.015 * np.pi / 180 * 10, (600, 3)) + np.radians([4.0, -2.0, 1.0])
    acc = rng.normal(0.0, 230e-6 * 9.81 * 10, (600, 3)) + [0.0, 0.0, 9.81]
    gyr[:200] += np.radians([0.0, 0.0, 200.0])  # turning steadily first
    gyr[350:] += rng.normal(0.0, 2.0, (250, 3))  # then moving
    found = first_rest(gyr, acc, rate_hz, options)
    assert (
        found is not None and found.start == 200 and found.stop - found.start == 150
    )  # right after the turn
    assert first_rest(gyr[350:], acc[350:], rate_hz, options) is None


# --- offline with the live stream's calibration and video fusion, on walk_fusion (issue 14) ---
# Measured (60 s, scored after 10 s on the items both streams have, 1500 per segment and seed; offline / live
# long-axis error RMS, deg): seeds 1, 2, 3, 6: thigh 2.25 / 3.69, 1.58 / 2.62, 1.28 / 2.46, 1.00 / 2.52; shank
# 2.83 / 4.59, 1.20 / 2.63, 2.65 / 3.96, 1.78 / 2.84: offline at most 0.67 of live (0.87, seed 1's thigh, with
# the live processor before its latest heading changes); over the first 10 s at most 0.51 of live (0.62-2.20
# against 4.24-5.02): live calibrates the mounting and fixes the heading only after its first seconds, offline
# has both from the first item. The mounting found: shank 1.0-1.1 deg off the truth, thigh 8.1 deg (the
# thigh's known bias: the pelvis's rotation tilts its rotation axis).
FUSION_SCENARIO = importlib.resources.files("kinefuse.scenarios") / "walk_fusion.toml"
FUSION_SEGMENTS = ("left_thigh", "left_shank")


# the scenario's own seed (6) is scored by the committed accuracy table (its offline rows); this is another
# (a second seed here cost make test 30 s of its 15-minute budget)
FUSION_SEED = 1


@pytest.fixture(scope="module")
def fusion_walk(tmp_path_factory):
    """walk_fusion recorded through the pipeline with the fused and the IMU-only motion processors (as the
    segment-error scoring runs it), then analysed offline."""
    folder = tmp_path_factory.mktemp("fusion")
    db = asyncio.run(segment_error._run(Path(str(FUSION_SCENARIO)), folder, FUSION_SEED))
    analysis = analyze(folder / "segments.db", 1, "offline")
    yield db, Simulation(load_scenario(FUSION_SCENARIO), FUSION_SEED), analysis
    db.close()


def test_offline_fused_segments_beat_the_live_stream(fusion_walk):
    db, simulation, analysis = fusion_walk
    for segment in FUSION_SEGMENTS:
        errors = segment_error.offline_segment_errors(simulation, db, segment, analysis.analysis_id)
        both = np.isfinite(errors["fused"]) & np.isfinite(errors["offline"])
        assert both.mean() > 0.99, segment  # the same items, every one of them with a value
        late, early = (
            both & (errors["t"] >= segment_error.WARMUP_S),
            both & (errors["t"] < segment_error.WARMUP_S),
        )
        assert _rms(errors["offline"][late]) < 0.95 * _rms(errors["fused"][late]), segment
        assert _rms(errors["offline"][early]) < 0.7 * _rms(errors["fused"][early]), segment
    rows = reader.motion_segments(db, analysis_id=analysis.analysis_id)
    fused = np.isin(rows["segment"], FUSION_SEGMENTS) & (rows["provenance"] == "fused")
    assert fused.mean() > 0.99  # from the first item: the backward filter covers the forward one's start
    assert not any("no video heading" in why or "no magnetometer" in why for why in rows["reason"])
    triangulated = reader.motion_keypoints(db, view="3d", analysis_id=analysis.analysis_id)
    assert len(triangulated["time_ns"]) == len(np.unique(rows["time_ns"]))


def test_the_offline_analysis_records_the_mounting_it_found(fusion_walk):
    db, simulation, analysis = fusion_walk
    row = next(db.query("SELECT settings FROM analyses WHERE id = ?", [analysis.analysis_id]))
    found = json.loads(row["settings"])["found"]
    for device in simulation.imus:
        mounting = found["mounting"][device.segment]
        assert mounting["fixed"] == "all three angles", mounting
        # a walker's thigh swings about as fast both ways: its mean lean tells forward (kinefuse.fusion.mounting)
        assert mounting["quality"] == "good" or "the mean lean does" in mounting["reason"], mounting
        off = Rotation.from_matrix(np.array(mounting["matrix"]).T @ device.mounting).magnitude()
        # the live calibration's error on the synthetic walker (docs/fusion.md): shank 0.2-2.3 deg, thigh 4.5-8.3;
        # here 1.0-1.1 and 8.1 over seeds 1, 2, 3, 6
        assert np.degrees(off) < (3.0 if device.segment.endswith("shank") else 9.0), (device.segment, off)
    # applied from the first item: the shank says nothing about its mounting, the thigh its known bias
    rows = reader.motion_segments(db, analysis_id=analysis.analysis_id)
    assert not any("mounting not calibrated" in why for why in rows["reason"])
    shank = rows["segment"] == "left_shank"
    assert (rows["quality"][shank] == "good").mean() > 0.9
    assert set(found["camera_offset_ms"]) == {camera.name for camera in simulation.cameras}
