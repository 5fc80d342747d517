"""Stride-to-stride variability: the seeded time warp a body plays its periodic motion through keeps every
signal exact (the chain rule, not differences), the feet planted, the events where the feet touch down, the
treadmill's belt at its speed, and is the same whatever pieces of time it is asked for."""

import textwrap

import numpy as np
import pytest

from kinefuse.bench.scoring.imu_realism import stride_time_cv_pct
from kinefuse.configschema import ConfigInvalid
from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.motion import TimeWarp
from kinefuse.sim.motions import make_motion
from kinefuse.sim.scenario import DEFAULT_STRIDE_TIME_CV_PCT, load_scenario
from kinefuse.sim.simulate import Simulation

SHAPE = BodyShape(1.75)


@pytest.fixture(scope="module")
def motion():
    return make_motion("walk", shape=SHAPE, cadence_spm=110.0, speed_mps=1.3)


def test_the_warp_is_smooth_monotone_and_passes_through_its_stride_starts():
    warp = TimeWarp(1.1, 0.03, (5,))
    t = np.linspace(-4.0, 40.0, 440_001)
    tau, rate, curvature = warp(t)
    step = t[1] - t[0]
    assert rate.min() > 0.8 and rate.max() < 1.2
    np.testing.assert_allclose(np.gradient(tau, step)[1:-1], rate[1:-1], atol=1e-6)
    np.testing.assert_allclose(np.gradient(rate, step)[2:-2], curvature[2:-2], atol=1e-4)  # C2: no jumps
    knots = warp.knots(-3, 35)
    np.testing.assert_allclose(warp(knots)[0], np.arange(-3, 36) * 1.1, atol=1e-12)
    np.testing.assert_allclose(warp(warp.inverse(tau[::997]))[0], tau[::997], atol=1e-9)


def test_the_warp_is_the_same_in_any_pieces_and_seeded():
    warp = TimeWarp(1.1, 0.02, (0, 1))
    t = np.linspace(0.0, 300.0, 30_001)
    whole = warp(t)[0]
    pieces = np.concatenate([warp(part)[0] for part in np.array_split(t, 7)])
    np.testing.assert_array_equal(pieces, whole)
    np.testing.assert_array_equal(TimeWarp(1.1, 0.02, (0, 1))(t)[0], whole)
    assert np.abs(TimeWarp(1.1, 0.02, (0, 2))(t)[0] - whole).max() > 0.01
    np.testing.assert_array_equal(TimeWarp(1.1, 0.0, (0, 1))(t)[0], t)


def test_stride_times_vary_by_the_coefficient_asked_for_and_the_phase_stays_near_the_mean_cadence():
    warp = TimeWarp(1.1, 0.02, (3,))
    starts = warp.knots(0, 20_000)
    strides = np.diff(starts)
    assert np.std(strides) / np.mean(strides) == pytest.approx(0.02, rel=0.05)
    assert np.mean(strides) == pytest.approx(1.1, rel=1e-3)
    # the phase drifts from the mean cadence and comes back: a walker keeps to a treadmill's belt
    assert np.abs(starts - np.arange(20_001) * 1.1).max() < 0.5


@pytest.mark.parametrize("treadmill", [False, True])
def test_a_warped_body_stays_exact_planted_and_on_its_events(motion, treadmill):
    body = Body(SHAPE, motion, treadmill=treadmill, time_warp=TimeWarp(motion.period_s, 0.04, (11,)))
    t = np.linspace(20.0, 24.0, 40_001)
    step = t[1] - t[0]
    shank = body.segment("left_shank", t)
    position, velocity, acceleration = shank.point(np.array([0.02, 0.05, -0.15]))
    # what the IMU reads is the chain rule's exact derivative, not a difference of positions
    np.testing.assert_allclose(np.gradient(position, step, axis=0)[2:-2], velocity[2:-2], atol=1e-4)
    np.testing.assert_allclose(np.gradient(velocity, step, axis=0)[2:-2], acceleration[2:-2], atol=0.1)
    np.testing.assert_allclose(np.gradient(shank.omega, step, axis=0)[2:-2], shank.alpha[2:-2], atol=0.6)
    events = body.gait_events(20.0, 24.0)
    assert len(events) >= 12
    belt = motion.travel_velocity[0] if treadmill else 0.0
    for event in events:
        heel = body.landmarks(np.array([event.time_s]))[f"{event.side}_heel"][0]
        if event.kind == "ic":
            assert abs(heel[2]) < 2e-3, event
            # flat foot a little after contact: planted, or carried back at the belt's speed
            later = np.linspace(event.time_s + 0.12, event.time_s + 0.25, 20)
            heel_velocity = body.landmark_velocities(later)[f"{event.side}_heel"]
            np.testing.assert_allclose(heel_velocity[:, 0], -belt, atol=1e-6)
            np.testing.assert_allclose(heel_velocity[:, 1:], 0.0, atol=1e-6)


def test_a_warped_body_is_the_periodic_one_at_the_motions_time(motion):
    warp = TimeWarp(motion.period_s, 0.03, (2,))
    warped, periodic = Body(SHAPE, motion, time_warp=warp), Body(SHAPE, motion)
    t = np.linspace(5.0, 9.0, 401)
    tau = warp(t)[0]
    np.testing.assert_allclose(
        warped.landmarks(t)["left_ankle"], periodic.landmarks(tau)["left_ankle"], atol=1e-12
    )
    for joint, angles in warped.joint_angles(t).items():
        np.testing.assert_allclose(angles, periodic.joint_angles(tau)[joint], atol=1e-12)
    events = warped.gait_events(5.0, 9.0)
    expected = periodic.gait_events(float(tau[0]), float(tau[-1]))
    assert [(e.side, e.kind) for e in events] == [(e.side, e.kind) for e in expected]
    np.testing.assert_allclose(warp([e.time_s for e in events])[0], [e.time_s for e in expected], atol=1e-9)


SCENARIO = """
[scenario]
name = "varied"
duration_s = 60.0
seed = {seed}
[motion]
kind = "{kind}"
treadmill = {treadmill}
{cv}
[[imus]]
name = "strap"
segment = "left_shank"
"""


def _scenario(tmp_path, seed=0, kind="walk", treadmill="true", cv=""):
    path = tmp_path / f"s{seed}.toml"
    path.write_text(textwrap.dedent(SCENARIO.format(seed=seed, kind=kind, treadmill=treadmill, cv=cv)))
    return load_scenario(path)


def _contacts(simulation, side="left"):
    return [
        e.time_s
        for e in simulation.body.gait_events(0.0, simulation.duration_s)
        if e.side == side and e.kind == "ic"
    ]


def test_a_scenarios_strides_vary_by_default_and_by_its_seed(tmp_path):
    first = Simulation(_scenario(tmp_path))
    assert first.body.time_warp is not None
    cv = np.mean([stride_time_cv_pct(_contacts(first, side)) for side in ("left", "right")])
    assert 0.5 * DEFAULT_STRIDE_TIME_CV_PCT < cv < 1.5 * DEFAULT_STRIDE_TIME_CV_PCT
    assert _contacts(Simulation(_scenario(tmp_path))) == _contacts(first)  # the same seed, the same strides
    assert _contacts(Simulation(_scenario(tmp_path), seed=1)) != _contacts(first)
    fixed = Simulation(_scenario(tmp_path, cv="stride_time_cv_pct = 0.0"))
    assert fixed.body.time_warp is None and stride_time_cv_pct(_contacts(fixed)) == 0.0


def test_a_chunk_boundary_changes_nothing(tmp_path):
    simulation = Simulation(_scenario(tmp_path, cv="stride_time_cv_pct = 3.0"))
    whole = simulation.imu_chunk(0, 0.0, 20.0)
    parts = [
        simulation.imu_chunk(0, start, start + 5.0, index)
        for index, start in enumerate((0.0, 5.0, 10.0, 15.0))
    ]
    np.testing.assert_array_equal(np.concatenate([p.t for p in parts]), whole.t)
    np.testing.assert_array_equal(np.concatenate([p.track.truth_acc for p in parts]), whole.track.truth_acc)
    np.testing.assert_array_equal(np.concatenate([p.track.truth_gyr for p in parts]), whole.track.truth_gyr)


def test_stride_variability_is_refused_where_there_are_no_strides(tmp_path):
    with pytest.raises(ConfigInvalid, match="stride_time_cv_pct"):
        _scenario(tmp_path, kind="squat", treadmill="false", cv="stride_time_cv_pct = 2.0")
    assert Simulation(_scenario(tmp_path, kind="squat", treadmill="false")).body.time_warp is None
