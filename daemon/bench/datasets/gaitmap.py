"""gaitmap-style foot IMU recordings (the gaitmap project, MaD-Lab Erlangen) and their reference stride events.

IMU CSV: two header rows, ``sensor`` (e.g. ``left_sensor``) and ``axis`` (``acc_x`` … ``gyr_z``), then a
sample index column and one column per sensor and axis; acc in m/s², gyr in deg/s. No time column: the
healthy example recording is sampled at 204.8 Hz (gaitmap's example-data documentation).

Stride events CSV: one row per stride with ``foot`` and, in samples of the IMU recording, ``start``/``end``
(the stride borders, minimum foot velocity to minimum foot velocity), ``min_vel`` (= start), ``tc``
(terminal contact, toe off), ``ic`` (initial contact, heel strike) and ``pre_ic`` (the previous stride's
ic). Within a stride: pre_ic < start <= tc < ic < end.

Motion-capture CSV (``mocap_sample.csv``): two header rows, marker (``L_FCC`` heel, ``L_TOE``, ``L_FM5``
fifth metatarsal head, the same with ``R_``) and axis (``x``, ``y``, ``z``; z up), then a frame index column;
positions in mm at 100 Hz, frame 0 at the IMU recording's first sample (both span 38.7 s).

A folder holds recordings as ``imu_<name>.csv`` with ``stride_events_<name>.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

RATE_HZ = 204.8
MOCAP_RATE_HZ = 100.0
AXES = ("acc_x", "acc_y", "acc_z", "gyr_x", "gyr_y", "gyr_z")
EVENT_COLUMNS = ("start", "end", "ic", "tc", "min_vel", "pre_ic")
# structured dtype of one side's strides: event positions stay float so a missing one can be NaN
EVENT_DTYPE = np.dtype([("s_id", np.int64)] + [(name, np.float64) for name in EVENT_COLUMNS])
_SENSOR_SUFFIX = "_sensor"


@dataclasses.dataclass(frozen=True)
class FootImu:
    rate_hz: float
    time_s: np.ndarray  # (n,) sample index / rate_hz
    acc: np.ndarray  # (n, 3) m/s²
    gyr: np.ndarray  # (n, 3) rad/s, converted from the file's deg/s


@dataclasses.dataclass(frozen=True)
class GaitmapRecording:
    name: str
    imu: Path
    stride_events: Path


def find_recordings(folder: str | Path) -> list[GaitmapRecording]:
    """Every ``imu_<name>.csv`` in ``folder`` that has a ``stride_events_<name>.csv`` beside it, by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"gaitmap folder {folder} does not exist")
    found = []
    for imu in sorted(folder.glob("imu_*.csv")):
        name = imu.stem.removeprefix("imu_")
        events = folder / f"stride_events_{name}.csv"
        if events.is_file():
            found.append(GaitmapRecording(name, imu, events))
    return found


def load_imu(path: str | Path, rate_hz: float = RATE_HZ) -> dict[str, FootImu]:
    """Each sensor's data keyed by side (``left_sensor`` -> ``"left"``); gyr converted to rad/s."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.reader(f)
        sensors, axes = next(reader, None), next(reader, None)
    if sensors is None or axes is None or sensors[0] != "sensor" or axes[0] != "axis":
        raise ValueError(f"{path}: expected two header rows starting 'sensor' and 'axis'")
    if len(sensors) != len(axes):
        raise ValueError(f"{path}: the header rows name {len(sensors)} sensors but {len(axes)} axes")
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=2, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if data.shape[1] != len(sensors):
        raise ValueError(f"{path}: {data.shape[1]} data columns, but the header names {len(sensors)}")
    column = {(sensor, axis): i for i, (sensor, axis) in enumerate(zip(sensors, axes, strict=True)) if i}
    time_s = data[:, 0] / rate_hz
    feet = {}
    for sensor in dict.fromkeys(sensors[1:]):
        values = data[:, _columns(path, column, sensor)]
        side = sensor.removesuffix(_SENSOR_SUFFIX)
        feet[side] = FootImu(rate_hz, time_s, acc=values[:, :3], gyr=np.deg2rad(values[:, 3:]))
    return feet


def _columns(path: Path, column: dict[tuple[str, str], int], sensor: str) -> list[int]:
    missing = [axis for axis in AXES if (sensor, axis) not in column]
    if missing:
        raise ValueError(f"{path}: sensor {sensor!r} lacks columns {missing}; expected {list(AXES)}")
    return [column[sensor, axis] for axis in AXES]


def load_stride_events(path: str | Path) -> dict[str, np.ndarray]:
    """Each foot's strides as a structured array (fields ``s_id`` and EVENT_COLUMNS, in samples)."""
    path = Path(path)
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows, header = list(reader), reader.fieldnames or []
    needed = ("foot", *EVENT_COLUMNS)
    missing = [name for name in needed if name not in header]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected at least {list(needed)}")
    by_foot: dict[str, list[tuple]] = {}
    for i, row in enumerate(rows):
        try:
            values = tuple(float(row[name]) if row[name] else np.nan for name in EVENT_COLUMNS)
            s_id = int(row["s_id"]) if row.get("s_id") else i
        except ValueError as exc:
            raise ValueError(f"{path}: data row {i + 1}: {exc}") from None
        by_foot.setdefault(row["foot"], []).append((s_id, *values))
    return {foot: np.array(strides, dtype=EVENT_DTYPE) for foot, strides in by_foot.items()}


def load_markers(path: str | Path) -> dict[str, np.ndarray]:
    """Each marker's positions (n, 3) in metres, by the file's marker name."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3 or rows[1][1:4] != ["x", "y", "z"]:
        raise ValueError(f"{path}: expected two header rows (marker, axis x/y/z) then frames")
    names, data = rows[0][1:], np.array(rows[2:], dtype=np.float64)[:, 1:] / 1000.0
    return {name: data[:, 3 * i : 3 * i + 3] for i, name in enumerate(names[::3])}
