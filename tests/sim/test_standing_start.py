"""A standing start: the athlete stands still in neutral standing, then the motion fades in smoothly (C2),
and every signal follows the one body motion: the truth, the straps, the camera's keypoints, the events.
After the blend the body is the motion played from its time 0."""

import importlib.resources
import textwrap

import numpy as np
import pytest

from kinefuse.configschema import ConfigInvalid
from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.motion import StandingStart, TimeWarp
from kinefuse.sim.motions import make_motion
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation

SHAPE = BodyShape(1.75)
STILL_S = 3.0


@pytest.fixture(scope="module", params=[("walk", True), ("walk", False), ("run", True), ("squat", False)])
def bodies(request):
    """(standing start, plain) bodies of one motion, both with the same stride variation."""
    kind, treadmill = request.param
    motion = make_motion(kind, shape=SHAPE)
    warp = TimeWarp(motion.period_s, 0.02, (4,)) if kind in ("walk", "run") else None
    standing = Body(SHAPE, motion, treadmill=treadmill, time_warp=warp, standing_start=StandingStart(STILL_S))
    return standing, Body(SHAPE, motion, treadmill=treadmill, time_warp=warp)


def test_the_clock_and_weight_are_smooth_and_invert():
    start = StandingStart(STILL_S, 2.0)
    t = np.linspace(0.0, 8.0, 80_001)
    step = t[1] - t[0]
    c, rate, curvature = start.clock(t)
    w, w1, w2 = start.weight(t)
    assert (c[t <= STILL_S] == 0).all() and (w[t <= STILL_S] == 0).all() and (w[t >= 5.0] == 1).all()
    np.testing.assert_allclose(rate, w)
    np.testing.assert_allclose(curvature, w1)
    np.testing.assert_allclose(np.gradient(c, step)[1:-1], rate[1:-1], atol=1e-6)
    np.testing.assert_allclose(np.gradient(w, step)[1:-1], w1[1:-1], atol=1e-6)
    np.testing.assert_allclose(np.gradient(w1, step)[2:-2], w2[2:-2], atol=1e-3)  # w'' has kinks at the ends
    np.testing.assert_allclose(c[t >= 5.0], t[t >= 5.0] - STILL_S - 1.0, atol=1e-12)
    later = t[t > STILL_S + 0.01][::500]
    np.testing.assert_allclose(start.inverse(start.clock(later)[0]), later, atol=1e-9)


def test_the_athlete_stands_still_then_moves_with_exact_derivatives(bodies):
    standing, _ = bodies
    t = np.arange(0.0, 8.0, 0.0005)
    states = standing.segments(t)
    still = t < STILL_S
    for name, state in states.items():
        assert np.abs(state.omega[still]).max() == 0.0 and np.abs(state.velocity[still]).max() == 0.0, name
        np.testing.assert_allclose(
            state.R[still], np.broadcast_to(np.eye(3), state.R[still].shape), atol=1e-12
        )
    lowest = np.minimum.reduce([standing.landmarks(t)[k][:, 2] for k in ("left_heel", "left_toe")])
    np.testing.assert_allclose(lowest[still], 0.0, atol=1e-9)  # upright, feet flat on the floor
    # rates and accelerations are the derivatives of what they are rates of: through the blend the finite
    # differences miss them by no more than after it (where the motion's own curves are exact), so the blend
    # adds no step or kink
    blend, after = (t > STILL_S) & (t < STILL_S + 2.0), t > STILL_S + 2.0
    blend[[0, -1]] = after[[0, -1]] = False
    for name in ("pelvis", "left_shank", "right_thigh"):
        state = states[name]
        for derivative, exact in ((np.gradient(state.position, t, axis=0), state.velocity),
                                  (np.gradient(state.velocity, t, axis=0), state.acceleration),
                                  (np.gradient(state.omega_world, t, axis=0), state.alpha_world)):  # fmt: skip
            miss = np.abs(derivative - exact).max(axis=1)
            assert miss[blend].max() <= 2.0 * miss[after].max() + 1e-6, name
    assert max(np.abs(s.omega[t > STILL_S + 2.0]).max() for s in states.values()) > 0.5  # it does move


def test_after_the_blend_the_motion_plays_from_its_time_zero(bodies):
    standing, plain = bodies
    t = np.arange(5.0, 15.0, 0.01)
    shift = STILL_S + 1.0  # the clock after the blend: t - still_s - blend_s / 2
    a, b = standing.segments(t), plain.segments(t - shift)
    for name in a:
        np.testing.assert_allclose(a[name].R, b[name].R, atol=1e-9)
        np.testing.assert_allclose(a[name].omega, b[name].omega, atol=1e-9)
        np.testing.assert_allclose(a[name].acceleration, b[name].acceleration, atol=1e-7)
    events = standing.gait_events(0.0, 30.0)
    assert all(e.time_s >= STILL_S + 2.0 for e in events)  # the blend's steps are not events
    expected = [e for e in plain.gait_events(1.0 - 1e-9, 30.0 - shift)]
    assert [(e.side, e.kind) for e in events] == [(e.side, e.kind) for e in expected]
    np.testing.assert_allclose([e.time_s for e in events], [e.time_s + shift for e in expected], atol=1e-8)


def _scenario(tmp_path, standing: str) -> str:
    path = tmp_path / "s.toml"
    path.write_text(
        textwrap.dedent(f"""
        [scenario]
        name = "s"
        duration_s = 10.0
        [motion]
        kind = "walk"
        treadmill = true
        {standing}
        [[cameras]]
        name = "cam"
        position = [0.0, -4.0, 1.0]
        target = [0.0, 0.0, 0.9]
        [[imus]]
        name = "strap"
        segment = "left_shank"
        preset = "consumer"
    """)
    )
    return path


def test_the_straps_and_the_camera_follow_the_standing_start(tmp_path):
    simulation = Simulation(load_scenario(_scenario(tmp_path, "standing_start_s = 3.0")))
    imu = simulation.imu_chunk(0, 0.0, 10.0)
    camera = simulation.camera_chunk(0, 0.0, 10.0)
    still, moving = imu.t < STILL_S, imu.t > 5.0
    gyr, acc = imu.track.gyr, imu.track.acc
    assert gyr[still].std(axis=0).max() < 0.01 < gyr[moving].std(axis=0).max()  # noise only, then walking
    truth = imu.track.truth_acc[still]
    np.testing.assert_allclose(np.linalg.norm(truth, axis=1), 9.81, atol=1e-9)  # gravity alone
    assert np.ptp(truth, axis=0).max() < 1e-9
    assert np.linalg.norm(acc[still].mean(axis=0)) == pytest.approx(9.81, abs=0.5)  # the consumer's errors
    truth = camera.track.truth_xy
    frames_still = camera.t < STILL_S
    assert (
        np.nanmax(np.ptp(truth[frames_still], axis=0))
        < 1e-9
        < np.nanmax(np.ptp(truth[camera.t > 5.0], axis=0))
    )


def test_the_key_defaults_to_no_standing_and_is_checked(tmp_path):
    scenario = load_scenario(_scenario(tmp_path, ""))
    assert scenario.sections["motion"]["standing_start_s"] == 0.0
    assert Simulation(scenario).body.standing_start is None
    with pytest.raises(ConfigInvalid, match="standing_start_s"):
        load_scenario(_scenario(tmp_path, "standing_start_s = -1.0"))
    for name in ("run.toml", "walk_asymmetric.toml"):  # the packaged runs and walks that stand first
        path = importlib.resources.files("kinefuse.scenarios") / name
        assert load_scenario(str(path)).sections["motion"]["standing_start_s"] == 3.0
