import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kinefuse.bench.scoring.orientation_error import (
    ORIENTATION_METRICS,
    heading_inclination_error,
    quat_conjugate,
    score_broad_protocol,
    score_metrics,
    score_orientation,
)
from kinefuse.fusion.strapdown import integrate_gyro, quat_multiply

N = 3000


def _quat(rotation: Rotation) -> np.ndarray:
    return rotation.as_quat(scalar_first=True)


def _random_motion(seed: int, n: int = N) -> np.ndarray:
    """A body tumbling about every axis: a random walk of the rotation vector."""
    steps = np.random.default_rng(seed).normal(0.0, 0.05, (n, 3))
    return _quat(Rotation.from_rotvec(np.cumsum(steps, axis=0)))


def _about(axis: str, degrees) -> np.ndarray:
    """Rotation(s) about one axis: (4,) for a number, (n, 4) for an array of angles."""
    return _quat(
        Rotation.from_euler(axis, np.reshape(degrees, (-1, 1)) if np.ndim(degrees) else degrees, True)
    )


def _misaligned(truth: np.ndarray, seed: int) -> np.ndarray:
    """The truth seen through arbitrary constant reference (O -> E) and sensor (S -> B) rotations."""
    reference, sensor = _quat(Rotation.random(2, random_state=seed))
    return quat_multiply(reference, quat_multiply(truth, sensor))


def test_truth_against_itself_scores_zero():
    truth, movement = _random_motion(1), np.ones(N, bool)
    nine = score_orientation(truth, truth, movement)
    assert nine["samples"] == N
    for key in ("heading_rmse_deg", "inclination_rmse_deg", "total_rmse_deg"):
        assert nine[key] == pytest.approx(0.0, abs=1e-9)
    six = score_orientation(truth, truth, movement, mode="6d")
    assert six["inclination_rmse_deg"] == pytest.approx(0.0, abs=1e-9)
    assert six["heading_rmse_deg"] is None and six["total_rmse_deg"] is None


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("mode", ["9d", "6d"])
def test_constant_sensor_and_reference_rotations_are_estimated_away(seed, mode):
    truth = _random_motion(seed)
    est = _misaligned(truth, seed)
    # the sign of a quaternion is arbitrary: flipping some must not matter
    est[::7] *= -1
    scores = score_orientation(est, truth, np.ones(N, bool), mode=mode)
    assert scores["inclination_rmse_deg"] < 0.01
    if mode == "9d":
        assert scores["heading_rmse_deg"] < 0.01 and scores["total_rmse_deg"] < 0.01


def test_alignment_holds_for_rotation_about_a_single_axis():
    # every relative rotation shares one axis, so the starting point is underdetermined; the fit must still
    # find an exact alignment
    angle = 120.0 * np.sin(np.linspace(0.0, 20.0, N))
    truth = quat_multiply(_quat(Rotation.random(random_state=3)), _about("z", angle))
    scores = score_orientation(_misaligned(truth, 4), truth, np.ones(N, bool))
    assert scores["total_rmse_deg"] < 0.01


def test_linear_heading_drift_is_heading_error_not_inclination():
    # orientations spread over all of SO(3), so no constant sensor rotation can mimic a drift about the
    # global vertical (with a few persistent rotation axes one partly can: see the next test)
    truth = _quat(Rotation.random(N, random_state=2))
    drift = np.linspace(0.0, 20.0, N)
    est = quat_multiply(_about("z", drift), _misaligned(truth, 2))
    scores = score_orientation(est, truth, np.ones(N, bool))
    # the constant part of the drift goes into the reference rotation, leaving drift - mean:
    # the RMS of a ramp of height D about its mean is D / sqrt(12)
    assert scores["heading_rmse_deg"] == pytest.approx(20.0 / np.sqrt(12.0), rel=0.01)
    assert scores["inclination_rmse_deg"] < 0.2


def test_linear_heading_drift_with_the_sensor_rotation_known():
    truth = _random_motion(2)
    est = quat_multiply(_about("z", np.linspace(0.0, 20.0, N)), quat_multiply(_about("y", 70.0), truth))
    scores = score_orientation(est, truth, np.ones(N, bool), align_sensor=False)
    assert scores["heading_rmse_deg"] == pytest.approx(20.0 / np.sqrt(12.0), rel=1e-3)
    assert scores["inclination_rmse_deg"] < 1e-6


def test_tilt_error_is_inclination_not_heading():
    truth = _random_motion(3)
    tilt = 5.0 * np.sin(np.linspace(0.0, 40.0 * np.pi, N))
    est = quat_multiply(_about("x", tilt), truth)
    scores = score_orientation(est, truth, np.ones(N, bool))
    assert scores["inclination_rmse_deg"] == pytest.approx(5.0 / np.sqrt(2.0), rel=0.02)
    assert scores["heading_rmse_deg"] < 0.05


def test_six_d_ignores_heading_drift_but_nine_d_sees_it():
    truth = _random_motion(4)
    # a heading that wanders far and not linearly, as a 6D estimator's does
    wander = 90.0 * np.sin(np.linspace(0.0, 3.0, N)) + np.linspace(0.0, 60.0, N)
    est = quat_multiply(_about("z", wander), _misaligned(truth, 5))
    movement = np.ones(N, bool)
    assert score_orientation(est, truth, movement, mode="6d")["inclination_rmse_deg"] < 0.01
    assert score_orientation(est, truth, movement, mode="9d")["heading_rmse_deg"] > 10.0


def test_nan_truth_and_rest_samples_are_not_scored():
    truth = _random_motion(5)
    est = _misaligned(truth, 6)
    truth_with_gaps, movement = truth.copy(), np.ones(N, bool)
    truth_with_gaps[100:400] = np.nan
    movement[2000:2500] = False
    # whatever the estimate does where nothing is scored (here: garbage or NaN) must not count
    est[100:250] = _quat(Rotation.random(150, random_state=7))
    est[2000:2500] = np.nan
    scores = score_orientation(est, truth_with_gaps, movement)
    assert scores["samples"] == N - 300 - 500
    assert scores["total_rmse_deg"] < 0.01


def test_align_sensor_false_fits_only_the_reference():
    truth = _random_motion(6)
    reference = _quat(Rotation.random(random_state=8))
    est = quat_multiply(reference, truth)
    assert score_orientation(est, truth, np.ones(N, bool), align_sensor=False)["total_rmse_deg"] < 0.01
    # a sensor rotation is now error, not alignment
    tilted_sensor = quat_multiply(est, _about("x", 10.0))
    scores = score_orientation(tilted_sensor, truth, np.ones(N, bool), align_sensor=False)
    assert scores["total_rmse_deg"] > 1.0


@pytest.mark.parametrize(
    ("rotation", "heading", "inclination"),
    [
        (Rotation.from_euler("z", 30, degrees=True), 30.0, 0.0),
        (Rotation.from_euler("z", -170, degrees=True), -170.0, 0.0),
        (Rotation.from_euler("x", 20, degrees=True), 0.0, 20.0),
        (Rotation.from_euler("y", -15, degrees=True), 0.0, 15.0),
        # heading applied after (in the global frame, left of) a tilt
        (Rotation.from_euler("z", 40, degrees=True) * Rotation.from_euler("x", 25, degrees=True), 40.0, 25.0),
    ],
)
def test_heading_inclination_split(rotation, heading, inclination):
    q = _quat(rotation)
    for sign in (1.0, -1.0):
        h, i = heading_inclination_error(sign * q)
        assert h == pytest.approx(heading, abs=1e-9)
        assert i == pytest.approx(inclination, abs=1e-9)


def test_inclination_is_the_angle_between_the_verticals():
    q = _quat(Rotation.random(50, random_state=9))
    up = Rotation.from_quat(q, scalar_first=True).apply([0.0, 0.0, 1.0])
    _, inclination = heading_inclination_error(q)
    np.testing.assert_allclose(inclination, np.degrees(np.arccos(np.clip(up[:, 2], -1, 1))), atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "3d"}, "mode must be one of"),
        ({"movement": np.ones(N - 1, bool)}, "expected est_quat"),
        ({"movement": np.zeros(N, bool)}, "no sample to score"),
        ({"est_quat": np.full((N, 4), np.nan)}, "not finite at 3000 scored samples"),
    ],
)
def test_bad_input_is_reported(change, message):
    truth = _random_motion(0)
    arguments = {"est_quat": truth, "truth_quat": truth, "movement": np.ones(N, bool), "mode": "9d"} | change
    with pytest.raises(ValueError, match=message):
        score_orientation(**arguments)


def test_broad_protocol_fits_nothing_in_9d():
    truth, movement = _random_motion(10), np.ones(N, bool)
    exact = score_broad_protocol(truth, truth, movement)
    assert exact["total_rmse_deg"] == pytest.approx(0.0, abs=1e-9) and exact["heading_offset_deg"] == 0.0
    # a constant heading and tilt error, which the fitted frames would absorb, is all error here
    est = quat_multiply(_about("z", 5.0), quat_multiply(_about("x", 3.0), truth))
    est[::7] *= -1  # the sign of a quaternion is arbitrary
    scores = score_broad_protocol(est, truth, movement)
    assert scores["heading_rmse_deg"] == pytest.approx(5.0, abs=1e-9)
    assert scores["inclination_rmse_deg"] == pytest.approx(3.0, abs=1e-9)
    error = Rotation.from_euler("z", 5.0, degrees=True) * Rotation.from_euler("x", 3.0, degrees=True)
    assert scores["total_rmse_deg"] == pytest.approx(np.degrees(error.magnitude()), abs=1e-9)
    assert score_orientation(est, truth, movement, align_sensor=False)["total_rmse_deg"] < 1e-6


def test_broad_protocol_errors_are_the_papers_definitions():
    # the dataset's definitions on the error quaternion in the reference frame: total 2 acos|w|, heading
    # 2 atan|z / w|, inclination 2 acos sqrt(w² + z²), written here independently of the module
    truth = _random_motion(11)
    est = quat_multiply(_quat(Rotation.random(N, random_state=12) ** 0.05), truth)
    q = quat_multiply(est, quat_conjugate(truth))
    w, z = q[:, 0], q[:, 3]
    expected = {
        "total_rmse_deg": 2 * np.arccos(np.clip(np.abs(w), 0, 1)),
        "heading_rmse_deg": 2 * np.arctan(np.abs(z / w)),
        "inclination_rmse_deg": 2 * np.arccos(np.clip(np.sqrt(w**2 + z**2), 0, 1)),
    }
    scores = score_broad_protocol(est, truth, np.ones(N, bool))
    for key, error in expected.items():
        assert scores[key] == pytest.approx(np.degrees(np.sqrt(np.mean(error**2))), rel=1e-9), key


@pytest.mark.parametrize("offset", [123.0, -40.0])
def test_broad_protocol_removes_one_constant_heading_offset_in_6d(offset):
    truth, movement = _random_motion(13), np.ones(N, bool)
    est = quat_multiply(_about("z", offset), truth)
    scores = score_broad_protocol(est, truth, movement, mode="6d")
    assert scores["heading_offset_deg"] == pytest.approx(offset, abs=1e-9)
    assert scores["total_rmse_deg"] == pytest.approx(0.0, abs=1e-9)
    # a drift is not a constant offset: a ramp of height D about its mean leaves RMS D / sqrt(12)
    drifting = quat_multiply(_about("z", offset + np.linspace(0.0, 20.0, N)), truth)
    scores = score_broad_protocol(drifting, truth, movement, mode="6d")
    assert scores["heading_offset_deg"] == pytest.approx(offset + 10.0, abs=1e-6)
    assert scores["heading_rmse_deg"] == pytest.approx(20.0 / np.sqrt(12.0), rel=1e-3)
    assert scores["inclination_rmse_deg"] < 1e-6


def test_the_removed_heading_offset_is_the_least_squares_best():
    truth = _random_motion(14)
    heading = 30.0 + 15.0 * np.sin(np.linspace(0.0, 7.0, N)) ** 3  # skewed: its mean is not the answer
    est = quat_multiply(
        _about("z", heading), quat_multiply(_about("y", 4.0 * np.cos(np.linspace(0, 9, N))), truth)
    )
    found = score_broad_protocol(est, truth, np.ones(N, bool), mode="6d")["heading_offset_deg"]
    q_err = quat_multiply(est, quat_conjugate(truth))
    grid = found + np.linspace(-1.0, 1.0, 2001)  # 0.001° steps around the answer
    # the cost: Σ sin²(θ/2) of the total error θ after removing each candidate offset
    costs = [np.sum(1.0 - quat_multiply(_about("z", -d), q_err)[:, 0] ** 2) for d in grid]
    assert abs(grid[int(np.argmin(costs))] - found) <= 0.001


def test_every_metric_is_scored_by_its_protocol():
    truth, movement = _random_motion(15), np.ones(N, bool)
    est = quat_multiply(_about("z", 5.0), truth)
    values = score_metrics({"9d": est, "6d": est}, truth, movement)
    assert list(values) == [metric for _, _, metric, _ in ORIENTATION_METRICS]
    assert values["9D heading RMSE"] < 1e-6  # fitted: the constant offset is frame, not error
    assert values["9D heading RMSE (BROAD protocol)"] == pytest.approx(5.0, abs=1e-9)
    assert values["6D total RMSE (BROAD protocol)"] < 1e-6  # 6D: the constant offset is removed


def test_strapdown_of_a_constant_rate_is_the_exact_rotation():
    rate_hz, omega = 200.0, np.array([0.3, -1.2, 2.0])
    q0 = _quat(Rotation.from_euler("xyz", [10, 20, 30], degrees=True))
    quats = integrate_gyro(np.tile(omega, (N, 1)), rate_hz, q0)
    # output k is after sample k: (k + 1) steps of omega / rate_hz, in the sensor frame (right of q0)
    steps = np.arange(1, N + 1)[:, None] * omega / rate_hz
    expected = (Rotation.from_quat(q0, scalar_first=True) * Rotation.from_rotvec(steps)).as_quat(
        scalar_first=True
    )
    np.testing.assert_allclose(quats * np.sign(quats[:, :1] * expected[:, :1]), expected, atol=1e-12)


def test_strapdown_composes_rotations_in_the_sensor_frame():
    # 90° about x, then 90° about the sensor's (now turned) y: the same as scipy's intrinsic "xy"
    rate_hz, n = 100.0, 100
    gyr = np.zeros((2 * n, 3))
    gyr[:n, 0] = gyr[n:, 1] = np.pi / 2.0
    final = integrate_gyro(gyr, rate_hz)[-1]
    expected = _quat(Rotation.from_euler("XY", [90, 90], degrees=True))
    np.testing.assert_allclose(final * np.sign(final[0] * expected[0]), expected, atol=1e-12)


def test_strapdown_of_no_rotation_stays_at_q0():
    quats = integrate_gyro(np.zeros((10, 3)), 50.0, q0=(0.0, 0.0, 0.0, 2.0))
    np.testing.assert_array_equal(quats, np.tile([0.0, 0.0, 0.0, 1.0], (10, 1)))
