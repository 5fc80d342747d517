"""The body model's kinematics are exact: derivatives agree with finite differences of the positions and
orientations, segments stay rigid, and the joint angles can be read back from the segment orientations."""

import numpy as np
import pytest

from kinefuse.sim.body import CHAIN, JOINT_SIGNS, SEGMENTS, Body, BodyShape
from kinefuse.sim.motions import make_motion
from kinefuse.sim.rotations import skew, yxz_from_matrix

H = 1e-5  # s, central differences


@pytest.fixture(scope="module", params=["walk", "run", "squat", "drop_landing"])
def body(request):
    controls = {"knee_valgus_deg": 8.0}
    shape = BodyShape(1.8)
    return Body(shape, make_motion(request.param, shape=shape, **controls), (1.0, -2.0), np.radians(30.0))


def _times(body):
    return np.linspace(0.05, 2 * body.motion.period_s - 0.05, 97)


@pytest.mark.parametrize("segment", SEGMENTS)
def test_angular_velocity_and_acceleration_match_the_orientation(body, segment):
    t = _times(body)
    before, now, after = (body.segment(segment, t + d) for d in (-H, 0.0, H))
    dR = (after.R - before.R) / (2 * H)
    omega_from_R = np.einsum("nji,njk->nik", now.R, dR)  # R^T R' = skew(omega)
    np.testing.assert_allclose(omega_from_R, skew(now.omega), atol=2e-4 * (1 + np.abs(now.omega).max()))
    alpha = (after.omega - before.omega) / (2 * H)
    np.testing.assert_allclose(alpha, now.alpha, atol=2e-3 * (1 + np.abs(now.alpha).max()))


@pytest.mark.parametrize("segment", ["pelvis", "left_shank", "right_foot", "left_forearm"])
def test_velocity_and_acceleration_match_the_position(body, segment):
    t = _times(body)
    before, now, after = (body.segment(segment, t + d) for d in (-H, 0.0, H))
    offset = np.array([0.05, 0.02, -0.1])
    p0, v0, a0 = before.point(offset)
    p1, v1, a1 = now.point(offset)
    p2, v2, a2 = after.point(offset)
    np.testing.assert_allclose((p2 - p0) / (2 * H), v1, atol=1e-5 * (1 + np.abs(v1).max()))
    np.testing.assert_allclose((v2 - v0) / (2 * H), a1, atol=2e-3 * (1 + np.abs(a1).max()))


def test_segments_stay_rigid(body):
    t = _times(body)
    marks = body.landmarks(t)
    shape = body.shape
    for side in ("left", "right"):
        thigh = np.linalg.norm(marks[f"{side}_knee"] - marks[f"{side}_hip"], axis=1)
        shank = np.linalg.norm(marks[f"{side}_ankle"] - marks[f"{side}_knee"], axis=1)
        np.testing.assert_allclose(thigh, shape.thigh_length, atol=1e-12)
        np.testing.assert_allclose(shank, shape.shank_length, atol=1e-12)
    hips = np.linalg.norm(marks["left_hip"] - marks["right_hip"], axis=1)
    np.testing.assert_allclose(hips, shape.hip_separation, atol=1e-12)


def test_joint_angles_read_back_from_the_segment_orientations(body):
    t = _times(body)
    states = body.segments(t)
    angles = body.joint_angles(t)
    for segment, (parent, joint) in CHAIN.items():
        if parent is None:
            continue
        relative = np.swapaxes(states[parent].R, 1, 2) @ states[segment].R
        recovered = np.degrees(yxz_from_matrix(relative)) / np.array(JOINT_SIGNS[joint])
        np.testing.assert_allclose(recovered, angles[joint], atol=1e-9, err_msg=joint)


def test_segment_lengths_scale_with_height():
    small, tall = BodyShape(1.5), BodyShape(2.0)
    assert tall.thigh_length / small.thigh_length == pytest.approx(2.0 / 1.5)
    assert tall.hip_height == pytest.approx(0.530 * 2.0)  # Winter (2009)
    with pytest.raises(ValueError, match="height_m"):
        BodyShape(3.5)


def test_heading_and_origin_move_the_body_without_changing_its_shape():
    motion = make_motion("squat")
    here = Body(BodyShape(), motion)
    there = Body(BodyShape(), motion, (3.0, 4.0), np.pi / 2)
    t = np.linspace(0, 4, 9)
    a, b = here.landmarks(t), there.landmarks(t)
    turn = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for name in ("nose", "left_ankle", "right_wrist"):
        np.testing.assert_allclose(b[name], a[name] @ turn.T + [3.0, 4.0, 0.0], atol=1e-12)
