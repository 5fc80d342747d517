"""The motion stream in the real pipeline: the synthetic walk with the left ankle hidden for ten frames at
every left foot strike. Read back from storage, those frames come out filled and flagged (within max_gap_s
of the last detection) or missing, never measured; and every stored value's provenance and quality agree."""

import numpy as np

from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse.storage import reader
from kinefuse.types import KeypointStatus

DURATION_S = 12.0
MAX_GAP_S = 0.15  # the motion processor's default
SCENARIO = f"""
[scenario]
name = "walk_ankle_hidden"
duration_s = {DURATION_S}
seed = 3
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
[cameras.detector]                   # the packaged walk's MoveNet fit, without left/right swaps
confidence_mean = 0.693
confidence_spread = 0.198
jitter_scale = 0.0186
jitter_dof = 4.31
jitter_confidence_power = 0.64
jitter_tail_power = 0.81
drift_scale = 0.0553
drift_time_s = 0.45
occlusion = true
frame_drop = 0.01
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
bias = [0.008, -0.008, 0.008]
[imus.link]
batch = 5
latency_min_s = 0.007
latency_jitter_s = 0.008
[[imus]]
name = "imu_pelvis"
segment = "pelvis"
magnetometer = false
"""


def run_walk(kinefuse_pipeline, tmp_path):
    scenario = tmp_path / "walk.toml"
    scenario.write_text(SCENARIO)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False,
              "chunk_s": DURATION_S}  # one chunk: the truth below is simulated the same way  # fmt: skip
    result = kinefuse_pipeline(
        sources=[source], processors=[{"id": "motion", "type": "motion"}], duration_s=60
    )
    assert result.exit_code == 0 and result.status["processors"]["motion"]["errors"] == 0
    # the replay waits for a slow disk rather than dropping (it did drop on a slow CI runner)
    assert all(channel["dropped"] == 0 for channel in result.status["channels"].values())
    return result, Simulation(load_scenario(scenario)).camera_chunk(0, 0.0, DURATION_S).track


def test_a_hidden_ankle_is_filled_and_flagged_or_missing_never_measured(kinefuse_pipeline, tmp_path):
    result, truth = run_walk(kinefuse_pipeline, tmp_path)
    ankle = truth.names.index("left_ankle")
    frames = result.keypoint_frames("cam0")
    order = np.argsort(np.asarray(frames["time_ns"]))
    frame_ns, frame_seq = np.asarray(frames["time_ns"])[order], frames["seq"][order]
    hidden = truth.scripted_missing[frame_seq, ankle]
    assert hidden.sum() >= 50  # ten frames at each of a dozen left foot strikes, less the dropped ones

    # the causal items say extrapolated where the smoothed revisions say filled
    for revision, filled in ((0, KeypointStatus.EXTRAPOLATED), (1, KeypointStatus.FILLED)):
        stored = reader.motion_keypoints(result.db, view="cam0", revision=revision)
        t_ns, status = stored["time_ns"], stored["status"][:, ankle]
        assert abs(len(t_ns) - DURATION_S * 30) <= 3 and (np.diff(t_ns) == round(1e9 / 30)).all()
        inside = (t_ns > frame_ns[0]) & (t_ns < frame_ns[-1])
        after = np.searchsorted(frame_ns, t_ns[inside], side="left")  # the first frame at or after each item
        before = np.searchsorted(frame_ns, t_ns[inside], side="right") - 1
        touched = hidden[after] | hidden[before]
        got = status[inside][touched]
        assert len(got) >= 50 and not (got == KeypointStatus.MEASURED).any()
        assert (got == KeypointStatus.MISSING).any() and (got == filled).any()
        assert set(np.unique(got)) <= {filled, KeypointStatus.MISSING, KeypointStatus.REJECTED}
        # filled or extrapolated only within max_gap_s of the last frame that showed the ankle
        seen_ns = np.where(hidden, -1, frame_ns)
        last_seen_ns = np.maximum.accumulate(seen_ns)[before[touched]]
        since_s = (t_ns[inside][touched] - last_seen_ns) / 1e9
        assert (since_s[got == filled] <= MAX_GAP_S + 1e-6).all()
        assert (got[since_s > MAX_GAP_S + 1 / 30] == KeypointStatus.MISSING).all()
        # elsewhere the ankle is mostly measured: the gaps are the hidden frames', not the smoother's
        assert (status[inside][~touched] == KeypointStatus.MEASURED).mean() > 0.9


def test_every_stored_value_says_what_it_is(kinefuse_pipeline, tmp_path):
    result, _ = run_walk(kinefuse_pipeline, tmp_path)
    keypoints = reader.motion_keypoints(result.db, view="cam0")
    missing = keypoints["status"] == KeypointStatus.MISSING
    assert (np.isnan(keypoints["position"]).any(axis=2) == missing).all()
    assert (np.isnan(keypoints["sigma"]) == missing).all()
    assert set(np.unique(keypoints["status"])) <= {int(s) for s in KeypointStatus}
    levels = {KeypointStatus.MEASURED: "good", KeypointStatus.FILLED: "degraded",
              KeypointStatus.REJECTED: "degraded", KeypointStatus.MISSING: "insufficient",
              KeypointStatus.EXTRAPOLATED: "degraded"}  # fmt: skip
    for code in np.unique(keypoints["status"]):  # what each code tells a reader
        status = KeypointStatus(int(code))
        assert (status.provenance is None) == (status is KeypointStatus.MISSING)
        assert status.quality.level.value == levels[status]
        assert status is KeypointStatus.MEASURED or status.quality.reason

    segments = reader.motion_segments(result.db)
    assert sorted(set(segments["segment"])) == ["left_shank", "pelvis"]
    assert len(segments["time_ns"]) == 2 * len(keypoints["time_ns"])
    no_value = np.isnan(segments["quaternion"]).any(axis=1)
    insufficient = segments["quality"] == "insufficient"
    assert (no_value == insufficient).all() and ((segments["provenance"] == None) == insufficient).all()  # noqa: E711
    assert all(reason.startswith("insufficient data") for reason in segments["reason"][insufficient])
    assert set(segments["quality"][~insufficient]) == {"degraded"}
    assert all("mounting not calibrated" in reason for reason in segments["reason"][~insufficient])
    assert set(segments["provenance"][~insufficient]) <= {"fused", "filled"}
    assert insufficient.mean() < 0.05
    norms = np.linalg.norm(segments["quaternion"][~no_value], axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    pelvis = segments["reason"][(segments["segment"] == "pelvis") & ~insufficient]
    assert all("no magnetometer" in reason for reason in pelvis)


RESTART_SCENARIO = """
[scenario]
name = "walk_restarted"
duration_s = 60.0
seed = 2
[motion]
kind = "walk"
treadmill = true
standing_start_s = 3.0
[[imus]]
name = "imu_left_shank"
segment = "left_shank"
mounting_deg = [12.0, -18.0, 8.0]
preset = "consumer"
magnetometer = false
"""
FAIL_AFTER_S = 9.0


def test_a_restarted_source_keeps_its_straps_filter_bias_and_mounting(kinefuse_pipeline, tmp_path):
    """The synthetic source fails after 9 s and the supervisor restarts it; the processor knows the strap
    (source, device) and keeps its state: after the restart nothing settles again and the mounting, found
    from the standing start's rest and 3 s of walking, stays applied. (Restarted, the athlete stands again.)"""
    scenario = tmp_path / "walk.toml"
    scenario.write_text(RESTART_SCENARIO)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": True, "loop": False,
              "fail_after_s": FAIL_AFTER_S}  # fmt: skip
    result = kinefuse_pipeline(
        sources=[source], processors=[{"id": "motion", "type": "motion", "mounting_window_s": 3.0}],
        duration_s=13.0, config_overrides={"supervisor": {"backoff_initial_s": 0.05, "restart_budget": 1}},
    )  # fmt: skip
    assert result.exit_code == 0 and result.status["sources"]["synth"]["restarts"] == 1
    segments = reader.motion_segments(result.db, segment="left_shank", revision=0)
    t = (segments["time_ns"] - segments["time_ns"][0]) / 1e9
    valid = segments["quality"] != "insufficient"
    reasons = segments["reason"]
    calibrated = np.array(["mounting" not in why for why in reasons]) & valid
    assert calibrated.any()
    first = t[calibrated][0]
    assert 5.0 < first < FAIL_AFTER_S  # the rest by 1.5 s; the walk fades in from 3 s; then 3 s of it
    # the restarted source's samples start again from sequence number 0, on arrival
    samples = result.imu_samples("imu_left_shank")
    order = np.argsort(np.asarray(samples["host_ns"]), kind="stable")
    seq, arrival_ns = np.asarray(samples["seq"])[order], np.asarray(samples["host_ns"])[order]
    (restart,) = np.flatnonzero(np.diff(seq) < 0) + 1
    back = (arrival_ns[restart] - segments["time_ns"][0]) / 1e9
    assert first < back < 11.0
    after = valid & (t >= back + 0.5)
    assert after.sum() > 30  # the stream goes on after the restart
    assert not any("settling" in why or "bias not" in why for why in reasons[after])
    assert not any("mounting" in why for why in reasons[after])  # still calibrated: no reason about it
    assert all("no magnetometer" in why for why in reasons[after])
