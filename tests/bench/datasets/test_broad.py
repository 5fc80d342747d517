import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from kinefuse.bench.datasets import paths
from kinefuse.bench.datasets.broad import find_trials, load_trial
from kinefuse.bench.scoring.orientation_error import score_orientation
from kinefuse.fusion.strapdown import integrate_gyro

SHARED = paths.shared_dir()
BROAD = SHARED / "data" / "broad"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data folder {SHARED} is absent")
RATE_HZ = 285.71


def _small_trial(n: int = 50) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    quat = rng.normal(size=(n, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    quat[:5] = np.nan
    return {
        "imu_gyr": rng.normal(size=(n, 3)),
        "imu_acc": rng.normal(size=(n, 3)),
        "imu_mag": rng.normal(size=(n, 3)),
        "opt_quat": quat,
        "opt_pos": rng.normal(size=(n, 3)),
        "movement": np.arange(n) > 10,
    }


def _write_hdf5(path: Path, data: dict[str, np.ndarray], rate: float = 100.0) -> Path:
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            f[key] = value
        f.attrs["sampling_rate"] = rate
    return path


def _assert_trial_is(trial, data: dict[str, np.ndarray], rate: float) -> None:
    assert trial.rate_hz == rate
    for field, key in [("gyr", "imu_gyr"), ("acc", "imu_acc"), ("mag", "imu_mag")]:
        np.testing.assert_array_equal(getattr(trial, field), data[key])
    np.testing.assert_array_equal(trial.opt_quat, data["opt_quat"])
    np.testing.assert_array_equal(trial.opt_pos, data["opt_pos"])
    assert trial.movement.dtype == bool
    np.testing.assert_array_equal(trial.movement, data["movement"])


def test_hdf5_and_mat_files_read_the_same(tmp_path):
    data = _small_trial()
    trial = load_trial(_write_hdf5(tmp_path / "01_a.hdf5", data))
    assert trial.name == "01_a"
    _assert_trial_is(trial, data, 100.0)
    # MATLAB v5 as scipy writes it: movement comes back 2-D and as uint8, the rate as a (1, 1) matrix
    scipy.io.savemat(
        tmp_path / "02_b.mat", data | {"movement": data["movement"].astype(np.uint8), "sampling_rate": 100.0}
    )
    _assert_trial_is(load_trial(tmp_path / "02_b.mat"), data, 100.0)
    (tmp_path / "notes.txt").write_text("not a trial")
    assert find_trials(tmp_path) == [tmp_path / "01_a.hdf5", tmp_path / "02_b.mat"]


def test_missing_dataset_is_named(tmp_path):
    data = _small_trial()
    del data["opt_pos"]
    path = _write_hdf5(tmp_path / "t.hdf5", data)
    with pytest.raises(ValueError, match=r"t\.hdf5: missing datasets \['opt_pos'\]"):
        load_trial(path)


def test_wrong_shape_is_named(tmp_path):
    data = _small_trial() | {"opt_quat": np.zeros((50, 3))}
    with pytest.raises(ValueError, match=r"dataset 'opt_quat' has shape \(50, 3\), expected \(50, 4\)"):
        load_trial(_write_hdf5(tmp_path / "t.hdf5", data))


def test_missing_rate_is_named(tmp_path):
    path = tmp_path / "t.hdf5"
    with h5py.File(path, "w") as f:
        for key, value in _small_trial().items():
            f[key] = value
    with pytest.raises(ValueError, match="sampling_rate"):
        load_trial(path)


def test_shared_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.SHARED_ENV, str(tmp_path))
    assert paths.shared_dir() == tmp_path
    monkeypatch.delenv(paths.SHARED_ENV)
    repository = Path(__file__).resolve().parents[3]
    assert paths.shared_dir() == repository.parent / "shared"


@needs_shared
def test_every_shared_trial_loads_and_the_strapdown_baseline_scores():
    files = find_trials(BROAD)
    listed = json.loads((BROAD / "trials.json").read_text())["trials"]
    assert files, f"no BROAD trials in {BROAD}"
    for path in files:
        trial = load_trial(path)
        n = len(trial.gyr)
        assert trial.name in listed
        assert trial.rate_hz == pytest.approx(RATE_HZ, abs=0.01)
        assert trial.acc.shape == trial.mag.shape == trial.opt_pos.shape == (n, 3)
        assert trial.opt_quat.shape == (n, 4) and trial.movement.shape == (n,)
        valid = np.all(np.isfinite(trial.opt_quat), axis=1)
        assert (valid & trial.movement).sum() > 0.5 * trial.movement.sum(), (
            "truth lost for most of the movement"
        )
        np.testing.assert_allclose(np.linalg.norm(trial.opt_quat[valid], axis=1), 1.0, atol=1e-6)
        # at rest the accelerometer reads gravity alone
        rest = ~trial.movement
        assert np.median(np.linalg.norm(trial.acc[rest], axis=1)) == pytest.approx(9.81, abs=0.2)

        baseline = integrate_gyro(trial.gyr, trial.rate_hz)
        nine = score_orientation(baseline, trial.opt_quat, trial.movement, mode="9d")
        six = score_orientation(baseline, trial.opt_quat, trial.movement, mode="6d")
        assert nine["samples"] == six["samples"] == (valid & trial.movement).sum()
        for value in (nine["heading_rmse_deg"], nine["inclination_rmse_deg"], nine["total_rmse_deg"]):
            assert np.isfinite(value), (trial.name, nine)
        assert np.isfinite(six["inclination_rmse_deg"]), (trial.name, six)
