"""``kinefuse bench kalman`` measures ours and filterpy in one run, on the same frames, and its filterpy peer
computes what ours computes on the bench's data. Nothing here is timed: speed is the bench's to report."""

import math
from types import SimpleNamespace

import numpy as np

from kinefuse._native import keypoint_kalman
from kinefuse.bench import kalman as bench_kalman
from kinefuse.fusion.keypoint_smoothing import KeypointFilterSettings

CASES = [
    "filter (batch)",
    "filter + RTS (batch)",
    "filter + RTS (batch), Student-t update (the default)",
    "live (filter + 100 ms fixed-lag RTS, per frame)",
]


def test_the_bench_measures_ours_and_filterpy_on_the_same_frames(monkeypatch):
    monkeypatch.setattr(bench_kalman, "FRAMES", 40)
    calls = []

    def spy(function):
        def call(times, keypoints, *args, **kwargs):
            calls.append((function.__name__, times, keypoints))
            return function(times, keypoints, *args, **kwargs)

        return call

    monkeypatch.setattr(bench_kalman, "filterpy_track", spy(bench_kalman.filterpy_track))
    kernel = SimpleNamespace(
        filter_track=spy(keypoint_kalman.filter_track),
        smooth_track=spy(keypoint_kalman.smooth_track),
        REJECTED=keypoint_kalman.REJECTED,
    )
    monkeypatch.setattr(bench_kalman, "keypoint_kalman", kernel)
    rows = bench_kalman.run({})
    assert [row["case"] for row in rows] == CASES
    for row in rows:
        assert math.isfinite(row["value"]) and row["value"] > 0
    for row in rows[:2]:  # the batch rows carry filterpy, measured in this run
        assert row["peer"].startswith("filterpy") and "batch_filter" in row["peer"]
        assert row["peer_value"] is not None and math.isfinite(row["peer_value"]) and row["peer_value"] > 0
    assert "rts_smoother" in rows[1]["peer"]
    for row in rows[2:]:  # no fair peer: filterpy has no Student-t update, nor a live smoother like ours
        assert row["peer"] is None and row["peer_value"] is None
    assert {name for name, *_ in calls} == {"filter_track", "smooth_track", "filterpy_track"}
    times, keypoints = bench_kalman.recording(40)
    for _, seen_times, seen_keypoints in calls:  # every side ran on the same frames
        np.testing.assert_array_equal(seen_times, times)
        np.testing.assert_array_equal(seen_keypoints, keypoints)


def test_the_peer_smooths_the_bench_frames_as_ours_does():
    # the bench's own recording (dropped detections included): with the gate off, which filterpy lacks,
    # filterpy driven as the bench drives it gives our smoothed states and covariances
    times, keypoints = bench_kalman.recording(200)
    args = {**KeypointFilterSettings(measurement_dof=math.inf).kernel_args(), "gate": 1e12}
    ours = keypoint_kalman.smooth_track(times, keypoints, **args)
    assert (ours["status"] == keypoint_kalman.FILLED).any()
    model = {key: args[key] for key in ("dim", "q", "r0", "min_confidence")}
    for k, theirs in enumerate(bench_kalman.filterpy_track(times, keypoints, **model)):
        mean, covariance = ours["x"][:, k], ours["P"][:, k]
        np.testing.assert_allclose(
            mean, theirs["x"].reshape(mean.shape), rtol=1e-9, atol=1e-9 * abs(mean).max()
        )
        np.testing.assert_allclose(
            covariance, theirs["P"][:, :2, :2], rtol=1e-9, atol=1e-9 * covariance.max()
        )
