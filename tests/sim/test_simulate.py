"""The simulated devices agree with the body's truth: the gyroscope integrates to the orientation, a strap
at rest reads gravity, gait events sit where the feet touch down and lift off, error models off give
perfect data, and ``kinefuse simulate`` gives the same bytes for the same seed."""

import filecmp
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kinefuse.fusion.strapdown import integrate_gyro
from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.imu import ImuErrors, simulate_imu
from kinefuse.sim.motions import make_motion
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import CameraChunk, ImuChunk, Simulation

PERFECT = """
[scenario]
name = "perfect"
duration_s = 4.0
[motion]
kind = "{kind}"
[[cameras]]
name = "cam"
position = [1.0, -4.0, 1.0]
target = [0.0, 0.0, 0.9]
[[imus]]
name = "strap"
segment = "right_thigh"
offset_m = [0.06, -0.02, -0.2]
mounting_deg = [10.0, -90.0, 5.0]
"""


def _strap(body, rate, seconds=10.0, segment="left_shank"):
    t = np.arange(int(seconds * rate)) / rate
    state = body.segment(segment, t)
    position, _, acceleration = state.point(np.array([0.05, 0.0, -0.12]))
    return simulate_imu(t, state.R, state.omega, acceleration, position, np.eye(3), ImuErrors(), None,
                        np.random.default_rng(0))  # fmt: skip


def _gyro_orientation_error_deg(body, rate):
    track = _strap(body, rate)
    truth = Rotation.from_matrix(track.R_world_sensor)
    midpoints = 0.5 * (track.gyr[:-1] + track.gyr[1:])  # the rate over each interval, to second order
    q = integrate_gyro(midpoints, rate, truth[0].as_quat(scalar_first=True))
    return np.degrees((Rotation.from_quat(q, scalar_first=True).inv() * truth[1:]).magnitude().max())


@pytest.mark.parametrize("kind", ["walk", "run"])
def test_integrating_the_gyroscope_reproduces_the_orientation(kind):
    body = Body(BodyShape(), make_motion(kind))
    coarse, fine = _gyro_orientation_error_deg(body, 400.0), _gyro_orientation_error_deg(body, 800.0)
    assert fine < 0.01  # degrees after 10 s of walking or running
    assert 3.0 < coarse / fine < 5.0  # the integration error is the scheme's: second order in the step


def test_a_strap_at_rest_reads_gravity_and_no_rotation():
    body = Body(BodyShape(), make_motion("squat", rep_period_s=4.0))
    track = _strap(body, 100.0, seconds=0.5, segment="left_thigh")  # the squat holds still for 0.6 s
    up = np.einsum("nji,j->ni", track.R_world_sensor, [0.0, 0.0, 9.81])
    np.testing.assert_allclose(track.acc, up, atol=1e-9)
    np.testing.assert_allclose(track.gyr, 0.0, atol=1e-9)


@pytest.mark.parametrize("kind", ["walk", "run"])
def test_gait_events_sit_at_contact_and_at_the_feet_velocity_minima(kind):
    body = Body(BodyShape(), make_motion(kind))
    period = body.motion.period_s
    lead = 0.1 * period
    for event in body.gait_events(period, 3 * period):
        point = "heel" if event.kind == "ic" else "toe"
        offset = body.shape.heel_offset if point == "heel" else body.shape.toe_offset
        times = np.array([event.time_s - lead, event.time_s, event.time_s + lead])
        position, velocity, _ = body.point(f"{event.side}_foot", offset, times)
        speed = np.linalg.norm(velocity, axis=1)
        assert abs(position[1, 2]) < 2e-3, event  # on the floor
        assert speed[1] < 0.05, event  # at rest: the minimum of the foot's speed
        moving = speed[0] if event.kind == "ic" else speed[2]  # swinging in before, or lifting off after
        assert moving > 0.3, event


@pytest.mark.parametrize("kind", ["walk", "drop_landing"])
def test_error_models_off_give_perfect_data(tmp_path, kind):
    path = tmp_path / "perfect.toml"
    path.write_text(PERFECT.format(kind=kind))
    simulation = Simulation(load_scenario(path))
    for chunk in simulation.chunk(0, 2.0):
        if isinstance(chunk, ImuChunk):
            np.testing.assert_array_equal(chunk.track.acc, chunk.track.truth_acc)
            np.testing.assert_array_equal(chunk.track.gyr, chunk.track.truth_gyr)
            np.testing.assert_array_equal(chunk.track.mag, chunk.track.truth_mag)
            assert chunk.delivery.kept.all()
            np.testing.assert_allclose(chunk.ticks, (chunk.t * 1e6).round(), atol=0.5)
        else:
            assert isinstance(chunk, CameraChunk)
            seen = chunk.track.keypoints[..., 2] > 0
            assert seen.any()
            np.testing.assert_array_equal(
                ~seen, chunk.track.out_of_view
            )  # only what left the image is missing
            keypoints = chunk.track.keypoints[..., :2][seen]  # float32, as a detector reports them
            np.testing.assert_allclose(keypoints, chunk.track.truth_xy[seen], rtol=0, atol=1e-4)
            assert chunk.delivered.all()


def _simulate(scenario, out, *seed):
    command = [sys.executable, "-m", "kinefuse", "simulate", str(scenario), "--out", str(out), *seed]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())


def test_kinefuse_simulate_same_seed_same_bytes(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(PERFECT.format(kind="lunge").replace("[[imus]]", '[[imus]]\npreset = "consumer"'))
    first = _simulate(path, tmp_path / "a", "--seed", "3")
    assert first == _simulate(path, tmp_path / "b", "--seed", "3")
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", first, shallow=False)
    assert not mismatch and not errors and len(match) == len(first) >= 8
    _simulate(path, tmp_path / "c", "--seed", "4")
    assert not filecmp.cmp(
        tmp_path / "a" / "imu" / "strap.csv", tmp_path / "c" / "imu" / "strap.csv", shallow=False
    )
