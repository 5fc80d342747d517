import dataclasses
import math

import numpy as np
import pytest

from kinefuse.sim.imu import (
    DPS,
    PRESETS,
    UG,
    ImuErrors,
    SensorErrors,
    ideal_imu,
    simulate_imu,
)
from kinefuse.sim.magnetic import MagneticEnvironment

G = 9.81


def rot_x(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    zero, one = np.zeros_like(angle), np.ones_like(angle)
    return np.moveaxis(np.array([[c, -s, zero], [s, c, zero], [zero, zero, one]]), (0, 1), (-2, -1))


IDENTITY = np.eye(3)
PERFECT = ImuErrors()


def still(seconds, rate, R=IDENTITY):
    """A strap at rest at the origin: (t, R, omega, acc, position)."""
    n = int(round(seconds * rate))
    zeros = np.zeros((n, 3))
    return np.arange(n) / rate, np.broadcast_to(R, (n, 3, 3)), zeros, zeros, zeros


def spinning(seconds=2.0, rate=100.0, omega=2.0, radius=0.1):
    """Constant rate about world z; the strap sits ``radius`` out along the segment's x axis."""
    t = np.arange(int(seconds * rate)) / rate
    R = rot_z(omega * t)
    point_segment = np.array([radius, 0.0, 0.0])
    position = R @ point_segment
    acc = -(omega**2) * position  # centripetal, towards the axis
    omega_segment = np.tile([0.0, 0.0, omega], (len(t), 1))
    return t, R, omega_segment, acc, position


def tilting(seconds=2.0, rate=100.0, rate_rad_s=0.8):
    """Turning about x at a constant rate, the strap at the origin: gravity sweeps through y and z."""
    t = np.arange(int(seconds * rate)) / rate
    R = np.array([rot_x(angle) for angle in rate_rad_s * t])
    zeros = np.zeros((len(t), 3))
    return t, R, np.tile([rate_rad_s, 0.0, 0.0], (len(t), 1)), zeros, zeros


def run(kinematics, errors=PERFECT, mounting=IDENTITY, mag_env=None, seed=0):
    return simulate_imu(*kinematics, mounting, errors, mag_env, np.random.default_rng(seed))


def only(sensor, **fields):
    return dataclasses.replace(ImuErrors(), **{sensor: SensorErrors(**fields)})


# --- ideal readings -----------------------------------------------------------------------------------


def test_level_strap_at_rest_reads_plus_g_and_no_rotation():
    track = run(still(1.0, 100.0))
    np.testing.assert_array_equal(track.acc, np.tile([0.0, 0.0, G], (100, 1)))
    np.testing.assert_array_equal(track.gyr, np.zeros((100, 3)))
    assert not track.saturated.any()


def test_tilted_strap_reads_gravity_rotated_into_it():
    f, gyro = ideal_imu(rot_x(np.radians(30.0))[None], np.zeros((1, 3)), np.zeros((1, 3)), np.eye(3))
    np.testing.assert_allclose(f[0], [0.0, G * 0.5, G * math.sqrt(3) / 2], atol=1e-12)  # (0, 4.905, 8.496)
    np.testing.assert_array_equal(gyro, np.zeros((1, 3)))


def test_mounting_permutes_axes():
    # sensor x along segment y, sensor y along segment z, sensor z along segment x
    mounting = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    f, gyro = ideal_imu(np.eye(3)[None], np.array([[1.0, 2.0, 3.0]]), np.zeros((1, 3)), mounting)
    np.testing.assert_allclose(f[0], [0.0, G, 0.0], atol=1e-12)
    np.testing.assert_allclose(gyro[0], [2.0, 3.0, 1.0], atol=1e-12)
    track = run(still(0.1, 100.0), mounting=mounting)
    np.testing.assert_allclose(track.R_world_sensor[0], mounting)


def test_constant_rate_about_z_and_lever_arm_centripetal_acceleration():
    omega, radius = 2.0, 0.1
    track = run(spinning(omega=omega, radius=radius))
    np.testing.assert_allclose(track.gyr, np.tile([0.0, 0.0, omega], (len(track.t), 1)), atol=1e-12)
    # ω²r = 0.4 m/s² towards the axis, i.e. along the segment's −x, which turns with the strap
    np.testing.assert_allclose(
        track.acc, np.tile([-(omega**2) * radius, 0.0, G], (len(track.t), 1)), atol=1e-12
    )
    on_axis = run(spinning(omega=omega, radius=0.0))
    np.testing.assert_allclose(on_axis.acc, np.tile([0.0, 0.0, G], (len(track.t), 1)), atol=1e-12)


def test_magnetometer_truth_is_the_field_in_the_sensor_frame():
    env = MagneticEnvironment()
    kinematics = spinning()
    track = run(kinematics, mag_env=env)
    R = kinematics[1]
    expected = np.einsum("nji,j->ni", R, env.earth_field_world())
    np.testing.assert_allclose(track.truth_mag, expected, atol=1e-12)
    np.testing.assert_array_equal(track.mag, track.truth_mag)
    assert run(kinematics).mag is None


# --- stochastic errors ----------------------------------------------------------------------------------


def allan_deviation(x, rate, tau):
    """Non-overlapping Allan deviation (IEEE Std 952-1997 Annex C) of a (n, 3) signal, per axis."""
    m = int(round(tau * rate))
    clusters = x[: len(x) // m * m].reshape(-1, m, x.shape[1]).mean(axis=1)
    return np.sqrt(0.5 * np.mean(np.diff(clusters, axis=0) ** 2, axis=0))


@pytest.mark.parametrize(
    ("sensor", "density", "rate"),
    [("gyr", 0.015 * DPS, 400.0), ("acc", 230 * UG, 100.0)],
)
def test_white_noise_sigma_is_density_times_root_rate(sensor, density, rate):
    track = run(still(100.0, rate), only(sensor, noise_density=density))
    noise = getattr(track, sensor) - getattr(track, f"truth_{sensor}")
    measured = noise.std(axis=0)
    np.testing.assert_allclose(measured, density * math.sqrt(rate), rtol=0.05)


def test_allan_deviation_at_one_second_is_the_noise_density():
    density, rate = 0.015 * DPS, 200.0
    track = run(still(1000.0, rate), only("gyr", noise_density=density))
    adev = allan_deviation(track.gyr, rate, tau=1.0)
    np.testing.assert_allclose(adev, density, rtol=0.10)  # white noise: σ_A(τ) = N/√τ


def test_bias_random_walk_grows_as_root_t():
    density, rate = 1e-3, 10.0
    ends = np.array(
        [run(still(400.0, rate), only("gyr", bias_random_walk=density), seed=s).gyr_bias for s in range(300)]
    )  # (runs, n, 3)
    spread_100 = ends[:, int(100 * rate)].std()
    spread_400 = ends[:, -1].std()
    assert ends[:, 0].max() == 0.0  # the walk starts at zero
    assert spread_100 == pytest.approx(density * math.sqrt(100.0), rel=0.10)
    assert spread_400 / spread_100 == pytest.approx(math.sqrt(400.0 / 100.0), rel=0.10)


def test_gauss_markov_bias_has_the_set_sigma_and_correlation_time():
    sigma, tau, rate = 0.02, 0.5, 50.0
    track = run(still(2000.0, rate), only("gyr", bias_instability=sigma, bias_correlation_s=tau))
    bias = track.gyr_bias
    np.testing.assert_array_equal(track.gyr, bias)  # at rest the gyro reads its bias
    assert bias.std() == pytest.approx(sigma, rel=0.05)
    lag = int(tau * rate)
    correlation = np.mean(bias[lag:] * bias[:-lag]) / np.mean(bias**2)
    assert correlation == pytest.approx(math.exp(-1.0), abs=0.05)


# --- deterministic errors -------------------------------------------------------------------------------


def test_scale_factor_and_cross_axis_apply_exactly_their_matrix():
    errors = SensorErrors(
        scale_factor=(0.01, -0.02, 500e-6), cross_axis=((0, 0.003, -0.01), (0.02, 0, 0), (0, -0.004, 0))
    )
    gain = np.array([[1.01, 0.003, -0.01], [0.02, 0.98, 0.0], [0.0, -0.004, 1.0005]])
    np.testing.assert_allclose(errors.gain(), gain, rtol=0, atol=1e-15)
    track = run(spinning(), dataclasses.replace(ImuErrors(), acc=errors))
    np.testing.assert_allclose(track.acc, track.truth_acc @ gain.T, rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(track.gyr, track.truth_gyr)


def test_turn_on_bias_is_constant_and_reported():
    bias = (0.1, -0.2, 0.3)
    track = run(spinning(), only("gyr", bias=bias))
    np.testing.assert_allclose(track.gyr - track.truth_gyr, np.tile(bias, (len(track.t), 1)), atol=1e-15)
    np.testing.assert_array_equal(track.gyr_bias, np.tile(bias, (len(track.t), 1)))


def test_saturation_clips_at_full_scale_and_flags_those_samples():
    t = np.arange(401) / 100.0
    rate = np.linspace(-2.0, 2.0, len(t))  # rad/s about z, through ±1 rad/s full scale
    R = rot_z(np.concatenate([[0.0], np.cumsum(rate[:-1] / 100.0)]))
    kinematics = (t, R, np.column_stack([0 * t, 0 * t, rate]), np.zeros((len(t), 3)), np.zeros((len(t), 3)))
    track = run(kinematics, only("gyr", full_scale=1.0))
    over = np.abs(rate) > 1.0
    assert track.saturated.tolist() == over.tolist() and over.sum() == 200
    np.testing.assert_array_equal(track.gyr[over, 2], np.sign(rate[over]) * 1.0)
    np.testing.assert_array_equal(track.gyr[~over], track.truth_gyr[~over])
    np.testing.assert_array_equal(track.acc, track.truth_acc)


def test_quantisation_step_equals_the_lsb():
    lsb = 0.05
    track = run(tilting(seconds=5.0, rate_rad_s=0.2), only("acc", lsb=lsb))  # < 1 LSB a sample
    counts = track.acc / lsb
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
    assert np.abs(track.acc - track.truth_acc).max() <= lsb / 2 + 1e-12
    levels = np.unique(np.round(track.acc[:, 1] / lsb))
    assert len(levels) > 100 and np.all(np.diff(levels) == 1.0)  # adjacent output levels one LSB apart


# --- isolation, determinism, presets --------------------------------------------------------------------

SINGLE_ERRORS = [
    ("acc", {"noise_density": 1e-2}),
    ("acc", {"bias_instability": 0.05, "bias_correlation_s": 2.0}),
    ("acc", {"bias_random_walk": 1e-2}),
    ("acc", {"bias": (0.1, 0.0, 0.0)}),
    ("acc", {"scale_factor": (0.0, 0.0, 0.01)}),
    ("acc", {"full_scale": 9.0}),
    ("acc", {"lsb": 0.1}),
    ("gyr", {"noise_density": 1e-3}),
    ("gyr", {"bias_instability": 0.01, "bias_correlation_s": 2.0}),
    ("gyr", {"cross_axis": ((0, 0, 0.01), (0, 0, 0), (0, 0, 0))}),
    ("gyr", {"full_scale": 1.5}),
    ("mag", {"noise_density": 0.05}),
    ("mag", {"bias": (5.0, 0.0, 0.0)}),
    ("mag", {"lsb": 0.15}),
]


@pytest.mark.parametrize(("sensor", "fields"), SINGLE_ERRORS)
def test_each_error_alone_changes_only_its_own_sensor(sensor, fields):
    env = MagneticEnvironment()
    perfect = run(spinning(), mag_env=env)
    track = run(spinning(), only(sensor, **fields), mag_env=env)
    for name in ("acc", "gyr", "mag"):
        changed = not np.array_equal(getattr(track, name), getattr(perfect, name))
        assert changed == (name == sensor), name
    for name in ("acc_bias", "gyr_bias", "mag_bias"):
        if name != f"{sensor}_bias":
            np.testing.assert_array_equal(getattr(track, name), 0.0)
    np.testing.assert_array_equal(track.truth_acc, perfect.truth_acc)
    limited = "full_scale" in fields
    assert track.saturated.any() == limited


def test_switching_one_term_on_leaves_the_others_realisation_unchanged():
    acc_noise, gyr_noise = SensorErrors(noise_density=1e-2), SensorErrors(noise_density=1e-3)
    both = run(still(5.0, 100.0), ImuErrors(acc=acc_noise, gyr=gyr_noise), seed=7)
    acc_alone = run(still(5.0, 100.0), ImuErrors(acc=acc_noise), seed=7)
    gyr_alone = run(still(5.0, 100.0), ImuErrors(gyr=gyr_noise), seed=7)
    np.testing.assert_array_equal(acc_alone.acc, both.acc)
    np.testing.assert_array_equal(gyr_alone.gyr, both.gyr)
    with_drift = run(
        still(5.0, 100.0),
        ImuErrors(acc=acc_noise, gyr=dataclasses.replace(gyr_noise, bias_instability=0.1)),
        seed=7,
    )
    np.testing.assert_array_equal(with_drift.acc, both.acc)
    np.testing.assert_allclose(with_drift.gyr - with_drift.gyr_bias, both.gyr, rtol=0, atol=1e-15)


def test_same_seed_gives_the_same_bytes():
    env = MagneticEnvironment()
    first = run(spinning(), PRESETS["consumer"], mag_env=env, seed=42)
    second = run(spinning(), PRESETS["consumer"], mag_env=env, seed=42)
    other = run(spinning(), PRESETS["consumer"], mag_env=env, seed=43)
    for name in ("acc", "gyr", "mag", "acc_bias", "gyr_bias"):
        assert getattr(first, name).tobytes() == getattr(second, name).tobytes()
        assert getattr(first, name).tobytes() != getattr(other, name).tobytes()


def test_presets_load_and_consumer_reads_like_its_datasheet():
    assert set(PRESETS) >= {"perfect", "consumer"}
    assert PRESETS["perfect"] == ImuErrors()
    consumer = PRESETS["consumer"]
    rate = 100.0
    track = run(still(20.0, rate), consumer, mag_env=MagneticEnvironment())
    gyr = consumer.gyr
    np.testing.assert_allclose(track.gyr / gyr.lsb, np.round(track.gyr / gyr.lsb), atol=1e-9)
    # over 20 s the 300 s Gauss–Markov drift barely moves: the spread is white noise plus quantisation
    expected = math.sqrt((gyr.noise_density**2) * rate + gyr.lsb**2 / 12)
    np.testing.assert_allclose(track.gyr.std(axis=0), expected, rtol=0.10)
    np.testing.assert_allclose(
        track.gyr.mean(axis=0), track.gyr_bias.mean(axis=0), atol=3 * expected / math.sqrt(200)
    )
    at_rest = consumer.acc.gain() @ [0.0, 0.0, G] + track.acc_bias.mean(axis=0)
    np.testing.assert_allclose(track.acc.mean(axis=0), at_rest, atol=1e-3)
    np.testing.assert_allclose(track.acc_bias[0], consumer.acc.bias, atol=4 * consumer.acc.bias_instability)
    assert not track.saturated.any()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="zero diagonal"):
        SensorErrors(cross_axis=((0.01, 0, 0), (0, 0, 0), (0, 0, 0)))
    with pytest.raises(ValueError, match="increasing"):
        run((np.array([0.0, 0.0]), *still(0.02, 100.0)[1:]))
    with pytest.raises(ValueError, match="samples"):
        t, R, omega, acc, position = still(0.1, 100.0)
        run((t, R, omega[:5], acc, position))
