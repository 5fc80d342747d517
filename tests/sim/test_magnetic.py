import numpy as np
import pytest

from kinefuse.sim.imu import ImuErrors, simulate_imu
from kinefuse.sim.magnetic import MUNICH_WMM2025_ENU_UT, FerrousDisturbance, MagneticEnvironment

MOMENT = 2.0  # A·m²
RADIUS = 0.05  # m


def dipole_at_origin(axis=(0.0, 0.0, 1.0)):
    return FerrousDisturbance(
        position=(0.0, 0.0, 0.0), moment_Am2=tuple(MOMENT * np.asarray(axis)), radius_m=RADIUS
    )


def test_far_from_every_dipole_the_field_is_the_earth_field():
    env = MagneticEnvironment(
        disturbances=(dipole_at_origin(), FerrousDisturbance((3.0, 1.0, 0.0), (0.0, 5.0, 0.0)))
    )
    far = np.array([[1000.0, 0.0, 0.0], [0.0, -1000.0, 500.0], [700.0, 700.0, 0.0]])
    np.testing.assert_allclose(env.field_at(far), np.tile(env.earth_field_world(), (3, 1)), atol=1e-6)
    bare = MagneticEnvironment()
    np.testing.assert_array_equal(bare.field_at(np.zeros((2, 3))), np.tile(MUNICH_WMM2025_ENU_UT, (2, 1)))


def test_dipole_field_on_its_axis_matches_the_formula_and_falls_as_inverse_cube():
    disturbance = dipole_at_origin()
    distances = np.array([0.2, 0.4, 0.8])
    field = disturbance.field_at(np.column_stack([0 * distances, 0 * distances, distances]))
    # on the axis B = μ0/4π · 2m/r³ = 0.1 µT·m/A · 2 · 2 A·m² / r³: 50 µT at 0.2 m
    np.testing.assert_allclose(field[:, 2], 0.1 * 2 * MOMENT / distances**3, rtol=1e-12)
    assert field[0, 2] == pytest.approx(50.0)
    np.testing.assert_allclose(field[:-1, 2] / field[1:, 2], 8.0)
    np.testing.assert_allclose(field[:, :2], 0.0, atol=1e-12)


def test_dipole_field_on_its_equator_is_half_and_reversed():
    field = dipole_at_origin().field_at([[0.2, 0.0, 0.0]])
    np.testing.assert_allclose(field[0], [0.0, 0.0, -0.1 * MOMENT / 0.2**3], atol=1e-12)  # −25 µT


def test_dipole_field_in_any_direction_matches_the_formula():
    moment = np.array([0.3, -1.0, 0.5])
    disturbance = FerrousDisturbance(position=(1.0, 2.0, 0.5), moment_Am2=tuple(moment))
    r = np.array([0.4, 0.1, -0.3])
    r_hat = r / np.linalg.norm(r)
    expected = 0.1 * (3 * (moment @ r_hat) * r_hat - moment) / np.linalg.norm(r) ** 3
    np.testing.assert_allclose(disturbance.field_at([np.array([1.0, 2.0, 0.5]) + r])[0], expected, rtol=1e-12)


def test_field_saturates_inside_the_object_and_is_continuous_at_its_pole():
    disturbance = dipole_at_origin()
    inside = disturbance.field_at([[0.0, 0.0, 0.0], [0.01, -0.02, 0.0], [0.0, 0.0, 0.049]])
    surface = 0.1 * 2 * MOMENT / RADIUS**3  # 3200 µT, the largest the object makes anywhere
    np.testing.assert_allclose(inside, np.tile([0.0, 0.0, surface], (3, 1)), rtol=1e-12)
    just_outside = disturbance.field_at([[0.0, 0.0, RADIUS * 1.0001]])[0, 2]
    assert just_outside == pytest.approx(surface, rel=1e-3)


def test_heading_turns_the_earth_field_about_up():
    east, north, up = MUNICH_WMM2025_ENU_UT
    turned = MagneticEnvironment(heading_deg=90.0).earth_field_world()  # world x = north, y = west
    np.testing.assert_allclose(turned, [north, -east, up], atol=1e-12)


def test_inclination_and_declination_match_wmm2025_at_munich():
    env = MagneticEnvironment()
    assert env.inclination_deg() == pytest.approx(64.40, abs=0.01)
    assert env.declination_deg() == pytest.approx(4.21, abs=0.01)
    assert np.linalg.norm(env.field_enu_uT) == pytest.approx(48.758, abs=0.001)


def strap_at(position, seconds=1.0, rate=100.0):
    n = int(seconds * rate)
    zeros = np.zeros((n, 3))
    return np.arange(n) / rate, np.broadcast_to(np.eye(3), (n, 3, 3)), zeros, zeros, np.tile(position, (n, 1))


@pytest.mark.parametrize(
    "mounting", [np.eye(3), np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])]
)
def test_simulated_magnetometer_sees_a_ferrous_object_only_when_it_is_there(mounting):
    disturbance = FerrousDisturbance(position=(0.3, 0.0, 0.0), moment_Am2=(0.0, 0.0, 1.0))
    quiet, disturbed = MagneticEnvironment(), MagneticEnvironment(disturbances=(disturbance,))

    def measure(env, position):
        return simulate_imu(*strap_at(position), mounting, ImuErrors(), env, np.random.default_rng(0))

    near_off, near_on = measure(quiet, (0.0, 0.0, 0.0)), measure(disturbed, (0.0, 0.0, 0.0))
    expected_shift = mounting.T @ np.array([0.0, 0.0, -0.1 / 0.3**3])  # equator of the dipole: −3.7 µT on z
    np.testing.assert_allclose(near_on.mag - near_off.mag, np.tile(expected_shift, (100, 1)), atol=1e-12)
    np.testing.assert_array_equal(near_on.acc, near_off.acc)
    np.testing.assert_array_equal(near_on.gyr, near_off.gyr)
    far_off, far_on = measure(quiet, (20.0, 0.0, 0.0)), measure(disturbed, (20.0, 0.0, 0.0))
    assert np.abs(far_on.mag - far_off.mag).max() < 2e-5  # 0.1 · 1 / 19.7³ µT
