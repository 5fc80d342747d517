"""Strap-to-segment mounting: from walking on the synthetic athlete (shank and thigh straps mounted up to
30 deg off the segment axes, several seeds) and from a constructed static pose with a known answer.

Thresholds, from 30 seeds (30 s of walking each, mountings 0-30 deg): the flexion axis is within 5.4 deg
of the shank's y axis (median 3.5) and within 13.7 deg of the thigh's (median 12.6: the thigh also turns
with the pelvis, so its main rotation axis is tilted off the hip's flexion axis); with a static pose the
full rotation is within 2.0 deg for the shank (median 1.1) and 8.3 deg for the thigh (median 6.9)."""

import importlib.resources
import re

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kinefuse.builtin.processors.motion_straps import _MOVING_RAD_S, LEAN_SIGNS, SIGN_CUE
from kinefuse.fusion.mounting import estimate_mounting
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import Simulation
from kinefuse.types import QualityLevel

SEEDS = range(6)
AXIS_LIMIT_DEG = {"shank": 8.0, "thigh": 18.0}
STATIC_LIMIT_DEG = {"shank": 4.0, "thigh": 11.0}


def _thigh(side: str, mounting_deg: list[float]) -> str:
    return f"""
[[imus]]
name = "imu_{side}_thigh"
segment = "{side}_thigh"
offset_m = [0.02, {0.08 if side == "left" else -0.08}, -0.20]
mounting_deg = {mounting_deg}
rate_hz = 100.0
preset = "consumer"
"""


def _random_mounting(rng) -> list[float]:
    """Euler angles of a rotation about a random axis by 10 to 30 deg (far enough from the identity that
    an estimator ignoring the data fails)."""
    axis = rng.standard_normal(3)
    rotation = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(10.0, 30.0)))
    return [float(a) for a in rotation.as_euler("xyz", degrees=True)]


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees((Rotation.from_matrix(a) * Rotation.from_matrix(b).inv()).magnitude()))


@pytest.fixture(scope="module")
def walks(tmp_path_factory):
    """Per seed and leg strap: (segment kind, true mounting, gyr, acc) over 30 s of walking."""
    text = (importlib.resources.files("kinefuse.scenarios") / "walk.toml").read_text()
    out = []
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        scenario = re.sub(
            r"mounting_deg = \[-90.0, 0.0, 0.0\]", f"mounting_deg = {_random_mounting(rng)}", text
        )
        scenario = re.sub(
            r"mounting_deg = \[90.0, 0.0, 0.0\]", f"mounting_deg = {_random_mounting(rng)}", scenario
        )
        scenario = re.sub(r"(?m)^seed = 0$", f"seed = {seed}", scenario)
        scenario += _thigh("left", _random_mounting(rng)) + _thigh("right", _random_mounting(rng))
        path = tmp_path_factory.mktemp("mounting") / f"walk{seed}.toml"
        path.write_text(scenario)
        simulation = Simulation(load_scenario(str(path)))
        assert simulation.seed == seed
        for index, device in enumerate(simulation.imus):
            kind = device.segment.partition("_")[2]
            if kind in ("shank", "thigh"):
                chunk = simulation.imu_chunk(index, 0.0, 30.0)
                out.append((kind, device.mounting, chunk.track.gyr, chunk.track.acc))
    assert {w[0] for w in out} == {"shank", "thigh"} and len(out) == 4 * len(SEEDS)
    return out


@pytest.mark.parametrize("kind", ["shank", "thigh"])
def test_walking_finds_the_flexion_axis_with_its_sign(walks, kind):
    errors, unmounted = [], []
    for segment, mounting, gyr, acc in walks:
        if segment != kind:
            continue
        estimate = estimate_mounting(gyr, acc)
        true_axis = mounting.T @ [0.0, 1.0, 0.0]  # the segment's y axis in the sensor frame
        errors.append(np.degrees(np.arccos(np.clip(estimate.axis @ true_axis, -1.0, 1.0))))
        unmounted.append(np.degrees(np.arccos(np.clip(true_axis[1], -1.0, 1.0))))  # assuming no mounting
        # the mounting maps the estimated axis onto the segment's y, signed the same for every seed and side
        assert (estimate.mounting @ estimate.axis)[1] > 0.999
        assert estimate.quality.level is QualityLevel.DEGRADED and "mean pitch" in estimate.quality.reason
        assert estimate.axis_ratio > 4.0 and estimate.axis_sigma_deg < 1.0
    assert max(errors) < AXIS_LIMIT_DEG[kind]
    assert max(unmounted) > AXIS_LIMIT_DEG[kind]  # the limit catches an estimator that ignores the data


@pytest.mark.parametrize("kind", ["shank", "thigh"])
def test_walking_with_the_true_mean_pitch_gives_the_full_rotation(walks, kind):
    """Given the segment's true mean inclination, the only remaining error is the axis's."""
    for segment, mounting, gyr, acc in walks:
        if segment != kind:
            continue
        up = mounting @ acc.mean(axis=0)
        pitch = np.degrees(np.arctan2(up[0], up[2]))
        estimate = estimate_mounting(gyr, acc, mean_pitch_deg=pitch)
        assert _angle_deg(estimate.mounting, mounting) < AXIS_LIMIT_DEG[kind]
        # assuming zero pitch errs by about the pitch, about the flexion axis
        assumed = estimate_mounting(gyr, acc)
        assert abs(_angle_deg(assumed.mounting, mounting) - abs(pitch)) < AXIS_LIMIT_DEG[kind]


@pytest.mark.parametrize("kind", ["shank", "thigh"])
def test_static_pose_plus_walking_is_good(walks, kind):
    rng = np.random.default_rng(7)
    for segment, mounting, gyr, acc in walks:
        if segment != kind:
            continue
        standing = mounting.T @ [0.0, 0.0, 9.81] + 0.05 * rng.standard_normal((200, 3))
        estimate = estimate_mounting(gyr, acc, static_acc=standing)
        assert estimate.quality.level is QualityLevel.GOOD
        assert _angle_deg(estimate.mounting, mounting) < min(
            STATIC_LIMIT_DEG[kind], _angle_deg(np.eye(3), mounting)
        )
        # the long axis is then exact up to the static pose's noise
        assert np.degrees(np.arccos((estimate.mounting @ mounting.T @ [0, 0, 1.0])[2])) < 0.5


def _constructed(seed: int, n: int = 3000):
    """A strap mounted by a random rotation, swinging about the segment's y (swing forward, i.e. negative,
    fastest) with a little off-axis motion and noise; and a static pose, standing."""
    rng = np.random.default_rng(seed)
    mounting = Rotation.random(random_state=seed).as_matrix()
    t = np.arange(n) / 100.0
    phase = 2 * np.pi * 0.9 * t
    omega_segment = np.column_stack(
        [0.05 * np.sin(phase + 1.0), -4.0 * np.maximum(np.sin(phase), 0) ** 2 + 1.2, 0.05 * np.cos(phase)]
    )
    gyr = omega_segment @ mounting + 0.02 * rng.standard_normal((n, 3))
    standing = mounting.T @ [0.0, 0.0, 9.81] + 0.05 * rng.standard_normal((100, 3))
    return mounting, gyr, standing


@pytest.mark.parametrize("seed", range(5))
def test_constructed_static_pose_fixes_the_inclination_and_with_movement_all(seed):
    mounting, gyr, standing = _constructed(seed)
    static = estimate_mounting(static_acc=standing)
    assert static.quality.level is QualityLevel.DEGRADED and "long axis" in static.quality.reason
    z = static.mounting @ mounting.T @ [0.0, 0.0, 1.0]  # the true segment z, mapped by the estimate
    assert np.degrees(np.arccos(z[2])) < 0.5
    both = estimate_mounting(gyr, static_acc=standing)
    assert both.quality.level is QualityLevel.GOOD
    assert _angle_deg(both.mounting, mounting) < 2.0
    assert _angle_deg(np.eye(3), mounting) > 10.0  # a random rotation, far from the identity


def test_insufficient_data_says_why():
    mounting, gyr, standing = _constructed(0)
    rng = np.random.default_rng(0)
    cases = {
        "fewer than": estimate_mounting(gyr[:50], static_acc=standing),
        "too little rotation": estimate_mounting(0.01 * gyr, static_acc=standing),
        "single out an axis": estimate_mounting(rng.standard_normal((3000, 3)), static_acc=standing),
        "not static": estimate_mounting(gyr, static_acc=standing + 3.0 * rng.standard_normal(standing.shape)),
        "neither": estimate_mounting(),
        "without the specific force": estimate_mounting(gyr),
    }
    for reason, estimate in cases.items():
        assert estimate.quality.level is QualityLevel.INSUFFICIENT, reason
        assert reason in estimate.quality.reason
        assert estimate.mounting is None


def test_an_axis_that_wanders_is_insufficient():
    # about y for the first half, about a direction 60 deg away for the second: the blocks disagree
    t = np.arange(6000) / 100.0
    rate = 3.0 * np.sin(2 * np.pi * 0.9 * t)[:, None]
    other = Rotation.from_euler("z", 60, degrees=True).apply([0.0, 1.0, 0.0])
    gyr = np.where(t[:, None] < 30.0, rate * [0.0, 1.0, 0.0], rate * other)
    estimate = estimate_mounting(gyr, np.tile([0.0, 0.0, 9.81], (6000, 1)))
    assert estimate.quality.level is QualityLevel.INSUFFICIENT


def test_walking_shanks_tell_forward_by_their_swing(walks):
    rng = np.random.default_rng(3)
    for segment, mounting, gyr, acc in walks:
        if segment == "shank":
            standing = mounting.T @ [0.0, 0.0, 9.81] + 0.05 * rng.standard_normal((200, 3))
            estimate = estimate_mounting(gyr, acc, static_acc=standing, min_sign_cue=SIGN_CUE)
            assert estimate.quality.level is QualityLevel.GOOD


def _exercise_straps(name: str):
    """Per thigh and shank strap of a packaged scenario: (segment, true mounting, the moving gyroscope and
    specific force samples of 5-25 s, as the motion processor calibrates on them, a static pose)."""
    simulation = Simulation(load_scenario(str(importlib.resources.files("kinefuse.scenarios") / name)))
    for index, device in enumerate(simulation.imus):
        if device.segment.partition("_")[2] in LEAN_SIGNS:
            track = simulation.imu_chunk(index, 5.0, 25.0).track
            moving = np.linalg.norm(track.gyr, axis=1) > _MOVING_RAD_S
            standing = np.tile(device.mounting.T @ [0.0, 0.0, 9.81], (200, 1))
            yield device.segment, device.mounting, track.gyr[moving], track.acc[moving], standing


def _forward_right(estimate, mounting) -> bool:
    """Whether the estimated mounting turns the segment's true forward (x) within 30 deg of its forward."""
    return (estimate.mounting @ mounting.T @ [1.0, 0.0, 0.0])[0] > np.cos(np.radians(30.0))


@pytest.mark.parametrize("name", ["squat.toml", "lunge.toml", "sit_to_stand.toml"])
def test_outside_walking_the_lean_tells_forward_where_the_swing_does_not(name):
    """Both directions turn about as fast there, so the swing is no cue (it picked the wrong sign on these
    shanks once and called it good: the legs 180 deg off about the vertical); the mean lean is, on every
    strap but a lunge's front shank (its knee over its ankle), whose lean is too small (that one says so).
    Not good where the lean alone tells: the movement's main axis need not be the knee's flexion axis (with
    the squat's valgus a shank's mounting comes out 11-12 deg off)."""
    told = 0
    for segment, mounting, gyr, acc, standing in _exercise_straps(name):
        kind = segment.partition("_")[2]
        estimate = estimate_mounting(gyr, acc, static_acc=standing, min_sign_cue=SIGN_CUE,
                                     lean_sign=LEAN_SIGNS[kind])  # fmt: skip
        if estimate.quality.level is QualityLevel.GOOD:  # a lunge's front thigh swings faster one way (1.38)
            assert (name, segment) == ("lunge.toml", "left_thigh")
            assert _angle_deg(estimate.mounting, mounting) < STATIC_LIMIT_DEG[kind]
            continue
        assert estimate.quality.level is QualityLevel.DEGRADED, (segment, estimate.quality)
        if "the mean lean does" in estimate.quality.reason:
            told += 1
            assert _forward_right(estimate, mounting), segment
            # told the other way round it turns forward backward: the sign came from the lean
            flipped = estimate_mounting(gyr, acc, static_acc=standing, min_sign_cue=SIGN_CUE,
                                        lean_sign=-LEAN_SIGNS[kind])  # fmt: skip
            assert not _forward_right(flipped, mounting), segment
        else:
            assert "forward from backward" in estimate.quality.reason, (segment, estimate.quality)
            assert (name, segment) == ("lunge.toml", "right_shank")
    assert told == (2 if name == "lunge.toml" else 4)


def test_walking_thighs_tell_forward_by_their_lean(walks):
    """A walker's thigh mostly swings about as fast both ways (cue 1.05-1.11 on the packaged walks): its
    lean tells forward then, and on every seed the forward is right."""
    rng = np.random.default_rng(4)
    by_lean = 0
    for segment, mounting, gyr, acc in walks:
        if segment == "thigh":
            standing = mounting.T @ [0.0, 0.0, 9.81] + 0.05 * rng.standard_normal((200, 3))
            estimate = estimate_mounting(gyr, acc, static_acc=standing, min_sign_cue=SIGN_CUE, lean_sign=1.0)
            by_lean += "the mean lean does" in estimate.quality.reason
            assert (
                estimate.quality.level is QualityLevel.GOOD or "the mean lean does" in estimate.quality.reason
            )
            assert _angle_deg(estimate.mounting, mounting) < STATIC_LIMIT_DEG["thigh"]
    assert by_lean > 0
