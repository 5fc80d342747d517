"""BROAD trials (Laidig, Caruso, Cereatti, Seel, "BROAD — A Benchmark for Robust Inertial Orientation
Estimation", Data 2021, 6(7):72): IMU data with a synchronised optical ground truth.

Each trial file holds the datasets ``imu_gyr`` (rad/s), ``imu_acc`` (m/s²), ``imu_mag`` (µT), ``opt_quat``
(unit quaternion w, x, y, z of the IMU frame relative to ENU; NaN where the markers were lost),
``opt_pos`` (m) and ``movement`` (bool: the samples to score), plus the sampling rate: an HDF5 attribute
``sampling_rate`` in the .hdf5 files, a variable of that name in the .mat files (MATLAB v5, as scipy
writes them). Score estimates with :func:`kinefuse.bench.scoring.orientation_error.score_orientation`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import scipy.io

SUFFIXES = (".hdf5", ".mat")
RATE_KEY = "sampling_rate"
# dataset name -> columns per sample (None: one value per sample)
_DATASETS = {
    "imu_gyr": 3,
    "imu_acc": 3,
    "imu_mag": 3,
    "opt_quat": 4,
    "opt_pos": 3,
    "movement": None,
}


@dataclasses.dataclass(frozen=True)
class BroadTrial:
    name: str  # the file's stem, e.g. "07_undisturbed_fast_rotation_B"
    rate_hz: float
    gyr: np.ndarray  # (n, 3) rad/s
    acc: np.ndarray  # (n, 3) m/s²
    mag: np.ndarray  # (n, 3) µT
    opt_quat: np.ndarray  # (n, 4) w, x, y, z: IMU frame relative to ENU; NaN rows where markers were lost
    opt_pos: np.ndarray  # (n, 3) m
    movement: np.ndarray  # (n,) bool: the samples BROAD scores


def find_trials(folder: str | Path) -> list[Path]:
    """The BROAD trial files (.hdf5 and .mat) in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"BROAD folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file())


def load_trial(path: str | Path) -> BroadTrial:
    """Read one BROAD trial from its .hdf5 or .mat file; raises ValueError naming what is missing or off."""
    path = Path(path)
    if path.suffix == ".hdf5":
        raw, rate = _read_hdf5(path)
    elif path.suffix == ".mat":
        raw, rate = _read_mat(path)
    else:
        raise ValueError(f"{path}: not a BROAD trial file (expected one of {', '.join(SUFFIXES)})")
    arrays = _check_shapes(path, raw)
    if not np.isfinite(rate) or rate <= 0:
        raise ValueError(f"{path}: {RATE_KEY} must be a positive number of Hz, got {rate!r}")
    return BroadTrial(
        name=path.stem,
        rate_hz=rate,
        gyr=arrays["imu_gyr"],
        acc=arrays["imu_acc"],
        mag=arrays["imu_mag"],
        opt_quat=arrays["opt_quat"],
        opt_pos=arrays["opt_pos"],
        movement=arrays["movement"].astype(bool),
    )


def _read_hdf5(path: Path) -> tuple[dict[str, np.ndarray], float]:
    with h5py.File(path, "r") as f:
        missing = [key for key in _DATASETS if key not in f]
        if missing:
            raise ValueError(f"{path}: missing datasets {missing}; a BROAD trial has {list(_DATASETS)}")
        if RATE_KEY not in f.attrs:
            raise ValueError(f"{path}: missing the file attribute {RATE_KEY!r} (Hz)")
        return {key: np.asarray(f[key]) for key in _DATASETS}, float(f.attrs[RATE_KEY])


def _read_mat(path: Path) -> tuple[dict[str, np.ndarray], float]:
    try:
        mat = scipy.io.loadmat(path, variable_names=[*_DATASETS, RATE_KEY])
    except NotImplementedError:
        raise ValueError(
            f"{path}: MATLAB v7.3 files are not read; save it as v5 or use the .hdf5 file"
        ) from None
    missing = [key for key in (*_DATASETS, RATE_KEY) if key not in mat]
    if missing:
        raise ValueError(f"{path}: missing variables {missing}; a BROAD trial has {[*_DATASETS, RATE_KEY]}")
    # MATLAB has no 1-D arrays: movement comes back as (1, n) or (n, 1), the rate as (1, 1)
    raw = {key: np.ravel(mat[key]) if cols is None else mat[key] for key, cols in _DATASETS.items()}
    return raw, float(np.ravel(mat[RATE_KEY])[0])


def _check_shapes(path: Path, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(raw["imu_gyr"])
    for key, cols in _DATASETS.items():
        expected = (n,) if cols is None else (n, cols)
        if raw[key].shape != expected:
            raise ValueError(
                f"{path}: dataset {key!r} has shape {raw[key].shape}, expected {expected} "
                f"(n = {n} samples, from imu_gyr)"
            )
    return {key: value if key == "movement" else value.astype(np.float64) for key, value in raw.items()}
