"""IMU + video fusion of a segment's heading: the video fixes the drift, the IMU bridges the gaps, and
every sample says which of them it rests on."""

import asyncio
import importlib.resources

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.bench.accuracy import scenario_rows
from kinefuse.fusion.segments import angle_between, fuse_heading, long_axis
from kinefuse.types import Provenance, QualityLevel


def swinging_segment(n=1500, rate=30.0):
    """A shank swinging +-40 deg about a horizontal axis, its IMU heading off by 30 deg and drifting
    0.5 deg/s; the video sees the true axis with noise and misses 1.3 s in the middle."""
    t = np.arange(n) / rate
    swing = np.radians(40.0) * np.sin(2 * np.pi * 0.9 * t)
    truth = Rotation.from_euler("zy", np.column_stack([np.full(n, 0.3), swing]))
    imu = Rotation.from_euler("z", np.radians(30.0 + 0.5 * t)[:, None]) * truth
    video = truth.apply([0.0, 0.0, -1.0]) + np.random.default_rng(0).normal(0, 0.02, (n, 3))
    video[600:640] = np.nan
    return t, truth, imu.as_quat(scalar_first=True), video


def test_the_video_removes_the_imu_heading_drift():
    t, truth, imu, video = swinging_segment()
    fused = fuse_heading(t, imu, video)
    true_axis = truth.apply([0.0, 0.0, -1.0])
    error = angle_between(long_axis(fused.quaternion), true_axis)
    assert np.max(error[150:]) < 3.0  # degrees, once the correction has converged
    drift = angle_between(long_axis(imu), true_axis)
    assert np.mean(drift[150:]) > 10 * np.mean(error[150:])


def test_provenance_says_what_each_sample_rests_on():
    t, _, imu, video = swinging_segment()
    video[:10] = np.nan  # nothing from the cameras at the start
    fused = fuse_heading(t, imu, video, bridge_s=0.5)
    assert fused.provenance(0) is None and np.isnan(fused.quaternion[0]).all()
    assert fused.quality(0).level is QualityLevel.INSUFFICIENT
    assert fused.provenance(300) is Provenance.FUSED and fused.quality(300).level is QualityLevel.GOOD
    gap_end = 639  # 1.3 s without video: IMU only, flagged
    assert fused.provenance(gap_end) is Provenance.MEASURED
    assert (
        fused.quality(gap_end).level is QualityLevel.DEGRADED and "IMU only" in fused.quality(gap_end).reason
    )


def test_on_the_synthetic_athlete_fusion_beats_video_alone_and_imu_alone():
    path = importlib.resources.files("kinefuse.scenarios") / "walk_fusion.toml"
    rows = [r for r in asyncio.run(scenario_rows(path)) if r["metric"].startswith("knee angle RMSE")]
    assert len(rows) == 2
    for row in rows:
        assert row["value"] < row["peer_value"], row
        assert row["value"] < 3.0


def test_missing_imu_samples_stay_missing():
    t, _, imu, video = swinging_segment(n=100)
    imu[40:50] = np.nan
    fused = fuse_heading(t, imu, video)
    assert np.isnan(fused.quaternion[40:50]).all() and np.isfinite(fused.quaternion[60:]).all()
