"""IMU + video fusion live in the motion stream, through the real pipeline: the packaged walk_fusion scenario
(thigh and shank straps without magnetometer, two calibrated left-side cameras). The stream triangulates the
cameras into a "3d" view and takes the segments' heading from it; read back from storage, the fused long axes
beat video alone and IMU alone against the simulator's truth, on the same samples, and every value says what
it rests on.

Thresholds from the data: over seeds 1-6 (60 s, scored after 10 s, 1499-1500 samples per segment) the
fused long-axis error was 1.3-3.3 deg RMS, video alone 8.0-9.6 deg, IMU alone (heading aligned once) 2.1-12.9
deg; fused was at most 0.37 of video alone and at most 0.87 of IMU alone."""

import importlib.resources

import numpy as np
import pytest

from kinefuse.bench.scoring.segment_error import WARMUP_S, segment_errors
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse.storage import reader
from kinefuse.types import WORLD_CAMERAS, WORLD_STRAP, KeypointStatus

SCENARIO = importlib.resources.files("kinefuse.scenarios") / "walk_fusion.toml"
SEGMENTS = ("left_thigh", "left_shank")


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """One run shared by the tests here (the pipeline takes about 10 s on this scenario)."""
    from kinefuse.testing import _Pipeline

    monkeypatch = pytest.MonkeyPatch()
    pipeline = _Pipeline(tmp_path_factory.mktemp("fusion"), monkeypatch)
    source = {"id": "sim", "type": "synthetic", "scenario": str(SCENARIO), "realtime": False, "loop": False}
    result = pipeline(
        sources=[source],
        processors=[
            {"id": "motion", "type": "motion"},
            {"id": "motion_imu", "type": "motion", "video_fusion": False},
        ],
        duration_s=120,
    )
    assert result.exit_code == 0 and result.status["processors"]["motion"]["errors"] == 0
    yield result, Simulation(load_scenario(SCENARIO))
    pipeline.close()
    monkeypatch.undo()


@pytest.mark.parametrize("segment", SEGMENTS)
def test_fused_segments_beat_video_alone_and_imu_alone(walk, segment):
    result, simulation = walk
    errors = segment_errors(simulation, result.db, segment)
    scored = errors["t"] >= WARMUP_S
    for key in ("fused", "video", "imu"):
        scored &= np.isfinite(errors[key])
    # the same samples, nearly every item from the calibrated mounting on (the IMU alone has none before)
    assert scored.sum() > 0.95 * np.sum((errors["t"] >= WARMUP_S) & np.isfinite(errors["imu"]))
    rms = {key: np.sqrt(np.mean(errors[key][scored] ** 2)) for key in ("fused", "video", "imu")}
    assert rms["fused"] < 4.5, rms
    assert rms["fused"] < 0.5 * rms["video"], rms
    assert rms["fused"] < rms["imu"], rms
    well = scored & errors["well_seen"]  # both ends measured in the 3D view: fused strictly better
    assert well.sum() > 0.8 * scored.sum()
    assert np.sqrt(np.mean(errors["fused"][well] ** 2)) < np.sqrt(np.mean(errors["imu"][well] ** 2))


def test_fused_values_say_what_they_rest_on(walk):
    result, _ = walk
    rows = reader.motion_segments(result.db, revision=1)
    fused = rows["processor"] == "motion"
    imu_only = rows["processor"] == "motion_imu"
    assert set(rows["segment"][fused]) == set(SEGMENTS)
    valued = fused & (rows["quality"] != "insufficient")
    waiting = valued & np.array(["no video heading" in r for r in rows["reason"]])
    heading = valued & (rows["world"] == WORLD_CAMERAS)
    assert not (waiting & heading).any() and (waiting | heading)[valued].all()
    # the heading is fixed once the mounting is calibrated and init_s of usable video seen; then it stays
    # fixed (or says it is fixed again): the waiting items come first, nearly all of them
    for segment in SEGMENTS:
        mine = rows["segment"] == segment
        assert (waiting & mine).sum() > 0 and (heading & mine).sum() > 1200
        first = rows["time_ns"][heading & mine].min()
        assert ((waiting & mine) & (rows["time_ns"] > first)).sum() < 0.02 * (heading & mine).sum()
        before = rows["reason"][waiting & mine & (rows["time_ns"] < first)]
        assert any("until the strap's mounting is calibrated" in r for r in before)
    # a fused heading is the cameras', no longer relative to where the strap started
    assert not any("no magnetometer" in r for r in rows["reason"][heading])
    assert all("no magnetometer" in r for r in rows["reason"][waiting])
    assert (rows["world"][waiting] == WORLD_STRAP).all() and np.isnan(rows["tolerance_deg"][waiting]).all()
    assert all("no magnetometer" in r for r in rows["reason"][imu_only & (rows["quality"] != "insufficient")])
    assert set(rows["quality"][heading]) <= {"good", "degraded"}
    good = heading & (rows["quality"] == "good")
    assert good.any() and all(r == "" for r in rows["reason"][good])
    assert (rows["tolerance_deg"][good] > 0).all()  # a good fused value says how good


def test_the_triangulated_view_is_flagged_per_keypoint(walk):
    result, simulation = walk
    view = reader.motion_keypoints(result.db, view="3d", revision=1)
    assert set(view["processor"]) == {"motion"}  # the IMU-only processor does not triangulate
    assert (view["unit"] == "m").all() and view["position"].shape[2] == 3
    assert all(device is None for device in view["device_id"])  # no one device's view
    missing = view["status"] == KeypointStatus.MISSING
    assert (np.isnan(view["position"]).any(axis=2) == missing).all()
    assert (np.isnan(view["sigma"]) == missing).all()
    assert (view["sigma"][~missing] > 0).all()
    # measured only where every camera's keypoint was; missing where fewer than two cameras have it
    cameras = [reader.motion_keypoints(result.db, view=cam.name, revision=1) for cam in simulation.cameras]
    cameras = [{k: v[c["processor"] == "motion"] for k, v in c.items()} for c in cameras]  # the fused run's
    common = np.intersect1d(view["time_ns"], cameras[0]["time_ns"])
    common = np.intersect1d(common, cameras[1]["time_ns"])
    assert len(common) > 0.95 * len(view["time_ns"])
    pick = [np.searchsorted(rows["time_ns"], common) for rows in (view, *cameras)]
    status = view["status"][pick[0]]
    per_camera = [c["status"][i] for c, i in zip(cameras, pick[1:], strict=True)]
    all_measured = np.logical_and.reduce([s == KeypointStatus.MEASURED for s in per_camera])
    seen = np.sum([np.isin(s, (KeypointStatus.MEASURED, KeypointStatus.FILLED, KeypointStatus.REJECTED))
                   for s in per_camera], axis=0)  # fmt: skip
    assert (status[seen < 2] == KeypointStatus.MISSING).all()
    valued = status != KeypointStatus.MISSING
    assert ((status == KeypointStatus.MEASURED) == all_measured)[valued].all()
    assert valued.mean() > 0.9


def test_the_cameras_are_put_on_the_straps_timeline(walk):
    """Each camera's cross-modal offset against the shank strap, reported as events and applied: on seeds
    1, 2, 4 and 6 every applied offset was within 8.7 ms of the truth (22.9 ms, the links' latency floors
    differing), the last within 7.0 ms; here within half the uncorrected error."""
    import json

    result, _ = walk
    db = result.db
    imu = reader.imu_samples(db, device_id="imu_left_shank")
    imu_floor = np.median(np.asarray(imu["time_ns"]) / 1e9 - imu["seq"] / 100.0)
    devices = {row["id"]: row["device_id"] for row in db.query("SELECT id, device_id FROM devices")}
    events = list(
        db.query("SELECT device_ref, detail, quality, reason FROM events WHERE kind = 'camera_offset'")
    )
    for camera in ("left", "front_left"):
        frames = reader.keypoint_frames(db, device_id=camera)
        truth_ms = (imu_floor - np.median(np.asarray(frames["time_ns"]) / 1e9 - frames["seq"] / 30.0)) * 1e3
        mine = [e for e in events if devices[e["device_ref"]] == camera]
        applied = [json.loads(e["detail"])["applied_ms"] for e in mine]
        assert len(mine) >= 8 and all(a is not None for a in applied[1:])
        assert np.max(np.abs(np.array(applied[1:]) - truth_ms)) < abs(truth_ms) / 2, (applied, truth_ms)
        assert all((e["quality"] == "good") == (e["reason"] == "") for e in mine)
    # once both cameras are corrected the fused segments no longer say their timing is only clock-aligned
    rows = reader.motion_segments(db, revision=1)
    late = (rows["processor"] == "motion") & (rows["time_ns"] > rows["time_ns"].max() - 20e9)
    assert late.sum() > 500 and not any("only clock-aligned" in reason for reason in rows["reason"][late])
