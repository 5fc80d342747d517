"""Resampling onto a common timeline never makes values up across a gap."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kinefuse.fusion.timeline import common_grid, resample, resample_quaternions


def test_linear_values_are_exact_and_gaps_are_invalid():
    times = np.array([0.0, 0.1, 0.2, 0.6, 0.7])
    values = np.column_stack([2 * times + 1, -times])
    grid = common_grid(-0.1, 0.8, 20.0)
    out, valid = resample(times, values, grid, max_gap_s=0.15)
    inside = ((grid >= 0.0) & (grid <= 0.2)) | ((grid >= 0.6) & (grid <= 0.7))
    np.testing.assert_array_equal(valid, inside)
    np.testing.assert_allclose(out[valid], np.column_stack([2 * grid + 1, -grid])[valid], atol=1e-12)
    assert np.isnan(out[~valid]).all()


def test_a_nan_sample_invalidates_its_neighbouring_intervals():
    times = np.arange(5) * 0.1
    values = np.array([0.0, 1.0, np.nan, 3.0, 4.0])
    out, valid = resample(times, values, np.array([0.05, 0.15, 0.25, 0.35]), max_gap_s=0.2)
    np.testing.assert_array_equal(valid, [True, False, False, True])


def test_quaternions_are_slerped_along_the_shorter_way():
    times = np.array([0.0, 1.0])
    a = Rotation.from_euler("z", 10, degrees=True).as_quat(scalar_first=True)
    b = -Rotation.from_euler("z", 50, degrees=True).as_quat(scalar_first=True)  # same rotation, other sign
    out, valid = resample_quaternions(times, np.array([a, b]), np.array([0.25, 0.5]), max_gap_s=2.0)
    assert valid.all()
    angles = Rotation.from_quat(out, scalar_first=True).as_euler("zyx", degrees=True)[:, 0]
    np.testing.assert_allclose(angles, [20.0, 30.0], atol=1e-9)


def test_bad_timelines_are_refused():
    with pytest.raises(ValueError, match="times must increase"):
        resample(np.array([0.0, 0.0]), np.zeros(2), np.zeros(1), 1.0)
    with pytest.raises(ValueError, match="max_gap_s"):
        resample(np.array([0.0, 1.0]), np.zeros(2), np.zeros(1), 0.0)
