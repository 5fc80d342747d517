"""Cross-modal offset on the synthetic athlete: each stream mapped onto host time by its own clock
aligner, as in the daemon; the remaining offset between them is found from the shank's angular velocity
(the packaged walk's camera has MoveNet's heavy-tailed, drifting detector errors)."""

import importlib.resources

import numpy as np
import pytest

from kinefuse._native import clock_map
from kinefuse.fusion.cross_modal import estimate_offset, estimate_skew, segment_angle_rate
from kinefuse.inprocess import write_config
from kinefuse.sim.detector_model import KEYPOINT_SETS
from kinefuse.sim.scenario import load_scenario
from kinefuse.sim.simulate import ImuChunk, Simulation

NAMES = KEYPOINT_SETS["COCO-17"].keypoints
HOST_ZERO_NS = 10**12


def _aligned(chunks):
    """True and aligned times of the delivered samples, and which rows they were."""
    mapper = clock_map.ClockMapper(chunks[0].device.clock.hz)
    true_t, aligned, rows = [], [], []
    for chunk in chunks:
        kept = chunk.delivery.kept if isinstance(chunk, ImuChunk) else chunk.delivered
        arrival = (chunk.delivery.arrival_s[kept] * 1e9).astype(np.int64) + HOST_ZERO_NS
        mapped = mapper.update_batch(chunk.ticks[kept].astype(np.float64), arrival)
        aligned.append((mapped - HOST_ZERO_NS) / 1e9)
        true_t.append(chunk.t[kept])
        rows.append(np.flatnonzero(kept))
    return np.concatenate(true_t), np.concatenate(aligned), rows


WALK = importlib.resources.files("kinefuse.scenarios") / "walk.toml"


@pytest.fixture(scope="module")
def walk():
    return _left_shank(WALK)


def _left_shank(scenario_path):
    """The left shank strap's aligned times and gyroscope, the first camera's left knee-ankle angle rate at
    its aligned times, and the true offset between the two timelines."""
    simulation = Simulation(load_scenario(str(scenario_path)))
    strap = [d.name for d in simulation.imus].index("imu_left_shank")
    chunks = [simulation.chunk(i, 10.0, 60.0) for i in range(6)]
    imu_chunks, cam_chunks = [c[strap] for c in chunks], [c[len(simulation.imus)] for c in chunks]
    imu_true, imu_t, imu_rows = _aligned(imu_chunks)
    cam_true, cam_t, cam_rows = _aligned(cam_chunks)
    gyr = np.concatenate([c.track.gyr[r] for c, r in zip(imu_chunks, imu_rows, strict=True)])
    keypoints = np.concatenate([c.track.keypoints[r] for c, r in zip(cam_chunks, cam_rows, strict=True)])
    mid, rate = segment_angle_rate(cam_t, keypoints.astype(np.float64), NAMES.index("left_knee"),
                                   NAMES.index("left_ankle"))  # fmt: skip
    truth = np.median(imu_t - imu_true) - np.median(cam_t - cam_true)
    return imu_t, gyr, mid, rate, truth


def test_the_offset_between_strap_and_camera_is_found_within_5_ms(walk):
    imu_t, gyr, mid, rate, truth = walk
    estimate = estimate_offset(imu_t, gyr, mid, rate)
    assert estimate.sufficient and estimate.confidence > 0.5
    assert abs(estimate.offset_s - truth) < 0.005
    shifted = estimate_offset(
        imu_t, gyr, mid + 0.12, rate
    )  # the camera 120 ms late: found, with the same truth
    assert abs(shifted.offset_s - (truth - 0.12)) < 0.005


def test_a_camera_in_front_of_a_walker_is_refused_not_fitted_at_a_wrong_lag(tmp_path):
    # seen from the front, the shank's in-image rotation is its frontal-plane one: with a clean detector it
    # correlates with the sagittal rate the strap measures (|r| about 0.7) at a lag of its own, 337 ms off,
    # with a jackknife error of about 1 ms; the side camera, the same athlete, is right
    def scenario(position):
        return write_config(tmp_path / "front.toml", {
            "scenario": {"name": "front", "duration_s": 30.0}, "motion": {"kind": "walk", "treadmill": True},
            "imus": [{"name": "imu_left_shank", "segment": "left_shank", "rate_hz": 200.0}],
            "cameras": [{"name": "cam", "position": position, "target": [0.0, 0.0, 0.9], "fps": 30.0}],
        })  # fmt: skip

    imu_t, gyr, mid, rate, _ = _left_shank(scenario([4.0, 0.0, 1.0]))
    estimate = estimate_offset(imu_t, gyr, mid, rate)
    assert not estimate.sufficient
    assert "looks along the plane of motion" in estimate.reason
    imu_t, gyr, mid, rate, truth = _left_shank(scenario([0.0, -4.0, 1.0]))
    assert abs(estimate_offset(imu_t, gyr, mid, rate).offset_s - truth) < 0.001


def test_the_sign_is_found_from_the_data(walk):
    # a strap mounted the other way round (or a camera on the other side) flips the sign, not the offset
    imu_t, gyr, mid, rate, truth = walk
    estimate, flipped = estimate_offset(imu_t, gyr, mid, rate), estimate_offset(imu_t, -gyr, mid, rate)
    assert flipped.sufficient and flipped.offset_s == pytest.approx(estimate.offset_s, abs=1e-9)
    # the jackknife's standard error (1-3 ms) within the 5 ms the offset itself is held to above
    assert estimate.uncertainty_s < 0.005


def test_unrelated_signals_are_insufficient_data(walk):
    imu_t, gyr, mid, rate, _ = walk
    scrambled = np.random.default_rng(0).permutation(rate)
    estimate = estimate_offset(imu_t, gyr, mid, scrambled)
    assert not estimate.sufficient and estimate.reason.startswith("insufficient data: correlation")


def _skewed_pair(seed: int, skew_ppm: float, offset_s: float, duration_s: float = 240.0):
    """A swinging segment's angular velocity seen by a 100 Hz IMU on the true clock (with a bias) and, the
    other way round, by a 30 fps camera whose clock runs ``skew_ppm`` fast and ``offset_s`` behind, about
    the recording's middle: the answer is known."""
    rng = np.random.default_rng(seed)
    frequency, phase, amplitude = (
        rng.uniform(0.4, 3.0, 12),
        rng.uniform(0, 2 * np.pi, 12),
        rng.uniform(0.2, 1, 12),
    )

    def velocity(t):  # about no net rotation, with a gait-like band of rhythms
        return np.sum(amplitude[:, None] * np.sin(2 * np.pi * frequency[:, None] * t + phase[:, None]), 0)

    imu_t, true_cam_t = np.arange(0.0, duration_s, 0.01), np.arange(0.013, duration_s, 1 / 30)
    middle = duration_s / 2
    cam_t = middle + (true_cam_t - middle) * (1 + skew_ppm * 1e-6) - offset_s
    gyr = np.column_stack([velocity(imu_t) + 0.05, np.zeros((len(imu_t), 2))])
    return imu_t, gyr, cam_t, -velocity(true_cam_t)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("skew_ppm", [150.0, -400.0])
def test_a_known_skew_is_found_within_its_stated_uncertainty(seed, skew_ppm):
    imu_t, gyr, cam_t, rate = _skewed_pair(seed, skew_ppm, offset_s=0.04)
    skew = estimate_skew(imu_t, gyr, cam_t, rate)
    assert skew.skew_ppm is not None and skew.uncertainty_ppm <= 20.0, skew.reason
    # over 30 seeds and both skews the error stayed within 2.4 standard errors (at most 1.4 ppm)
    assert abs(skew.skew_ppm - skew_ppm) <= 4.0 * skew.uncertainty_ppm
    assert abs(skew.offset_s - 0.04) < 0.001  # the camera is 40 ms behind at the middle


def test_unrelated_signals_give_no_skew():
    imu_t, gyr, cam_t, rate = _skewed_pair(0, 150.0, offset_s=0.04)
    skew = estimate_skew(imu_t, gyr, cam_t, np.random.default_rng(1).permutation(rate))
    assert skew.skew_ppm is None and skew.reason == "insufficient data: 0 windows gave an offset, 3 needed"


def test_a_minute_of_walking_is_too_short_to_claim_a_skew(walk):
    # of the 8 windows of 20 s, enough give an offset for a line (5 with the default walk's stride
    # variability; the others refuse, ambiguous), scattering by a millisecond or two: the slope's standard
    # error (62 ppm) is above the 20 ppm the estimate must reach, so no skew is claimed; 20 s gives too few
    imu_t, gyr, mid, rate, _ = walk
    skew = estimate_skew(imu_t, gyr, mid, rate)
    assert skew.skew_ppm is None and 3 <= skew.windows <= 8 and skew.uncertainty_ppm > 20.0
    assert skew.reason.startswith("insufficient data: skew uncertain by")
    short = estimate_skew(imu_t[:2000], gyr[:2000], mid[mid < 20.0], rate[mid < 20.0])
    assert short.skew_ppm is None and "windows" in short.reason


def test_a_rhythm_alone_cannot_tell_its_cycles_apart():
    # a pure 1.4 Hz swing: every cycle, and (the sign being unknown) every half cycle, fits as well
    rng = np.random.default_rng(0)
    imu_t, cam_t = np.arange(0.0, 60.0, 0.01), np.arange(0.013, 60.0, 1 / 30)

    def swing(t):
        return 3.0 * np.sin(2 * np.pi * 1.4 * t)

    noise = 0.1 * rng.standard_normal((len(imu_t), 3))
    gyr = np.column_stack([swing(imu_t), np.zeros((len(imu_t), 2))]) + noise
    estimate = estimate_offset(imu_t, gyr, cam_t, swing(cam_t + 0.03) + 0.3 * rng.standard_normal(len(cam_t)))
    assert estimate.confidence > 0.9 and not estimate.sufficient
    assert "fits about as well" in estimate.reason


def test_the_angle_rate_shrugs_off_an_outlier_and_says_nothing_next_to_a_gap():
    # a segment turning at 2 rad/s seen at 30 fps, one frame's distal keypoint thrown 40 px, 0.3 s unseen
    times = np.arange(0.0, 3.0, 1 / 30)
    angle = 2.0 * times
    keypoints = np.zeros((len(times), 2, 3))
    keypoints[:, 1, :2] = 100.0 * np.column_stack([np.cos(angle), np.sin(angle)])
    keypoints[:, :, 2] = 0.9
    keypoints[40, 1, :2] += 40.0
    keypoints[(times > 2.0) & (times < 2.3), :, 2] = 0.1
    t, rate = segment_angle_rate(times, keypoints, 0, 1)
    assert np.abs(rate - 2.0).max() < 0.05
    assert not np.any((t > 2.0 - 0.15) & (t < 2.3 + 0.15))  # a one-sided window would be biased
