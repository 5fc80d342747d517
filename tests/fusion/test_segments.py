"""IMU + video fusion of a segment's heading: the video fixes the drift, the IMU bridges the gaps, and
every sample says which of them it rests on."""

import asyncio
import importlib.resources

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.bench.accuracy import recorded
from kinefuse.bench.scoring.fusion import knee_angle_rows
from kinefuse.fusion.segments import (
    HeadingFusion,
    angle_between,
    circular_median,
    fuse_heading,
    long_axis,
)
from kinefuse.storage import reader
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


def test_on_the_synthetic_athlete_the_fused_knee_angle_beats_video_alone_and_is_near_imu_alone():
    """The knee angle from the offline fusion of the two straps with the triangulated keypoints: better than
    the video alone, and close to the straps alone aligned once. Since walk_fusion starts standing, the
    straps alone are aligned on the first walking seconds and their heading drifts are alike on thigh and
    shank, so alone they give this angle as well as fused (1.04 against 1.15 deg, seed 6); the segments'
    own orientations are where fusion wins (tests/integration/test_motion_fusion.py)."""
    path = importlib.resources.files("kinefuse.scenarios") / "walk_fusion.toml"

    async def knee_rows():
        async with recorded(path) as (simulation, db):
            return knee_angle_rows(simulation.scenario.name, simulation, db, reader)

    rows = asyncio.run(knee_rows())
    assert len(rows) == 2
    video, imu = rows
    assert video["value"] < 3.0 and video["value"] < 0.5 * video["peer_value"], video
    assert imu["value"] < 1.5 * imu["peer_value"], imu


def test_missing_imu_samples_stay_missing():
    t, _, imu, video = swinging_segment(n=150)
    imu[100:110] = np.nan
    fused = fuse_heading(t, imu, video)
    assert np.isfinite(fused.quaternion[80:100]).all() and np.isnan(fused.quaternion[100:110]).all()
    assert np.isfinite(fused.quaternion[110:]).all()


def test_the_heading_is_not_fixed_from_one_wild_sample():
    """The first video samples pointing the wrong way (an axis flipped end for end, as a near-vertical
    segment's noisy axis can be) must not set the heading: it is fixed from the median of the first
    ``init_s`` of video, and nothing is reported before that."""
    t, truth, imu, video = swinging_segment()
    fused_clean = fuse_heading(t, imu, video)
    first = int(np.flatnonzero(np.isfinite(fused_clean.heading_correction))[0])
    assert t[first] >= 2.0 and np.isnan(fused_clean.quaternion[:first]).all()
    assert fused_clean.provenance(first - 1) is None
    seen = np.flatnonzero(np.linalg.norm(video[:, :2], axis=1) > 0.3)
    video[seen[:8]] *= -1.0  # half a turn off
    fused = fuse_heading(t, imu, video)
    error = angle_between(long_axis(fused.quaternion), truth.apply([0.0, 0.0, -1.0]))
    assert np.nanmax(error) < 3.0


def test_heavy_tailed_video_errors_have_a_bounded_pull():
    """One video sample in ten pointing anywhere (a detector's heavy tail) moves the heading little."""
    t, truth, imu, video = swinging_segment()
    rng = np.random.default_rng(1)
    wild = rng.random(len(t)) < 0.1
    video[wild] = rng.normal(size=(wild.sum(), 3))
    fused = fuse_heading(t, imu, video)
    error = angle_between(long_axis(fused.quaternion), truth.apply([0.0, 0.0, -1.0]))
    assert np.max(error[150:]) < 3.0


def test_circular_median_wraps_and_weighs():
    assert abs(abs(circular_median([3.10, -3.10, 3.12, 0.0])) - 3.10) < 0.05  # across +-pi, not 0
    assert circular_median([0.0, 1.0, 2.0], [1.0, 1.0, 10.0]) == 2.0
    assert np.isnan(circular_median([]))


def test_the_causal_filter_fed_sample_by_sample_equals_the_offline_function():
    """``HeadingFusion`` is what the live motion stream runs: one sample at a time it must give what
    ``fuse_heading`` gives for the whole series (gaps, wild samples and the start included)."""
    t, _, imu, video = swinging_segment(n=600)
    video[:20] = np.nan
    imu[300:305] = np.nan
    video[::37] = np.random.default_rng(2).normal(size=(len(video[::37]), 3))
    offline = fuse_heading(t, imu, video)
    live = HeadingFusion()
    steps = [live.step(t[i], imu[i], video[i]) for i in range(len(t))]
    for field in ("quaternion", "heading_correction", "heading_sigma", "since_video_s"):
        stepped = np.concatenate([getattr(s, field) for s in steps])
        np.testing.assert_allclose(stepped, getattr(offline, field), rtol=0, atol=1e-12, err_msg=field)
    assert np.isfinite(offline.heading_correction).sum() > 500  # the comparison covers the fixed heading
    batched = HeadingFusion()
    parts = [
        batched.update_batch(t[a : a + 50], imu[a : a + 50], video[a : a + 50]) for a in range(0, len(t), 50)
    ]
    np.testing.assert_allclose(np.concatenate([p.quaternion for p in parts]), offline.quaternion, atol=1e-12)


def test_a_magnetometer_held_heading_is_one_constant_the_video_bias_does_not_move():
    """A strap with a magnetometer is off the cameras' world by one constant heading (no drift); the video's
    heading errors are slow (a detector's drift: +-8 deg over seconds). Modelled as drifting, the correction
    follows them; with the motion stream's magnetic settings it holds the constant."""
    from kinefuse.builtin.processors.motion_fusion import heading_settings
    from kinefuse.builtin.processors.motion_stream import SCHEMA
    from kinefuse.configschema import defaults

    n, rate = 3000, 30.0
    t = np.arange(n) / rate
    swing = np.radians(40.0) * np.sin(2 * np.pi * 0.9 * t)
    truth = Rotation.from_euler("zy", np.column_stack([np.full(n, 0.3), swing]))
    imu = (Rotation.from_euler("z", np.radians(30.0)) * truth).as_quat(scalar_first=True)
    bias = Rotation.from_euler("z", np.radians(8.0) * np.sin(2 * np.pi * t / 7.0)[:, None])
    video = (bias * truth).apply([0.0, 0.0, -1.0])
    options = defaults(SCHEMA)
    spread = {}
    for magnetic in (False, True):
        psi = fuse_heading(t, imu, video, **heading_settings(options, magnetic)).heading_correction
        spread[magnetic] = np.ptp(np.degrees(psi[n // 2 :]))
    assert spread[False] > 1.5  # a drifting model follows the video's bias (2.1 deg peak to peak here)
    assert spread[True] < 0.3 * spread[False]  # 0.4 deg here
