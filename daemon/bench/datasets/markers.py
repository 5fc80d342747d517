"""Marker trajectories from TRC text files (as Pose2Sim and OpenSim write them) and C3D files.

Both readers return positions in metres, converting from the file's units, with NaN where a marker was
not seen.

TRC layout (tab-separated)::

    PathFileType  4  (X/Y/Z)  name.trc
    DataRate  CameraRate  NumFrames  NumMarkers  Units  OrigDataRate  OrigDataStartFrame  OrigNumFrames
    60        60          100        2           m      60            1                   100
    Frame#  Time  Hip          RKnee
                  X1  Y1  Z1   X2  Y2  Z2
    1       0.0   …
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import c3d
import numpy as np

METRES_PER_UNIT = {"m": 1.0, "cm": 1e-2, "mm": 1e-3}
_TRC_HEADER_LINES = 5


@dataclasses.dataclass(frozen=True)
class MarkerData:
    rate_hz: float
    names: tuple[str, ...]
    xyz: np.ndarray  # (n, markers, 3) metres, NaN where a marker was not seen
    time: np.ndarray  # (n,) seconds


def read_trc(path: str | Path) -> MarkerData:
    """A TRC file's markers; empty fields, or fields missing at a row's end, are markers not seen."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if len(lines) < _TRC_HEADER_LINES:
        raise ValueError(
            f"{path}: a TRC file has {_TRC_HEADER_LINES} header lines, this one has {len(lines)}"
        )
    header = dict(zip(lines[1].split("\t"), lines[2].split("\t"), strict=False))
    header = {key.strip(): value.strip() for key, value in header.items()}
    rate = _header_number(path, header, "DataRate")
    count = int(_header_number(path, header, "NumMarkers"))
    scale = _metres_per_unit(path, header.get("Units", ""))
    names = tuple(name.strip() for name in lines[3].split("\t")[2:] if name.strip())
    if len(names) != count:
        raise ValueError(f"{path}: NumMarkers is {count} but the names line lists {len(names)}: {names}")
    rows = [_trc_row(path, number, line, count) for number, line in _data_lines(lines)]
    data = np.array(rows, dtype=np.float64).reshape(len(rows), 2 + 3 * count)
    return MarkerData(rate, names, data[:, 2:].reshape(len(rows), count, 3) * scale, data[:, 1])


def _header_number(path: Path, header: dict[str, str], key: str) -> float:
    try:
        return float(header[key])
    except (KeyError, ValueError):
        raise ValueError(
            f"{path}: header line 3 needs a number under {key!r} (line 2 names the fields)"
        ) from None


def _metres_per_unit(path: Path, units: str) -> float:
    if units not in METRES_PER_UNIT:
        raise ValueError(f"{path}: Units {units!r} is not one of {sorted(METRES_PER_UNIT)}")
    return METRES_PER_UNIT[units]


def _data_lines(lines: list[str]):
    # OpenSim puts a blank line after the axis line; some writers end with blank lines too
    for number, line in enumerate(lines[_TRC_HEADER_LINES:], start=_TRC_HEADER_LINES + 1):
        if line.strip():
            yield number, line


def _trc_row(path: Path, number: int, line: str, count: int) -> list[float]:
    fields = line.rstrip("\r\n").split("\t")
    width = 2 + 3 * count
    if len(fields) > width and any(field.strip() for field in fields[width:]):
        raise ValueError(
            f"{path}:{number}: {len(fields)} fields, expected frame, time and {3 * count} values"
        )
    fields = (fields + [""] * width)[:width]
    try:
        return [float(field) if field.strip() else np.nan for field in fields]
    except ValueError as exc:
        raise ValueError(f"{path}:{number}: {exc}") from None


def read_c3d(path: str | Path) -> MarkerData:
    """Point data of a C3D file; points the file marks invalid (negative residual) become NaN."""
    path = Path(path)
    with path.open("rb") as handle, warnings.catch_warnings():
        # a marker-only file is normal, not worth the package's warning
        warnings.filterwarnings("ignore", message="No analog data found in file", category=UserWarning)
        reader = c3d.Reader(handle)
        rate = float(reader.point_rate)
        names = tuple(label.strip() for label in reader.point_labels)
        if len(names) != reader.point_used:
            raise ValueError(
                f"{path}: POINT:LABELS names {len(names)} points, POINT:USED is {reader.point_used}"
            )
        units = reader.get("POINT:UNITS")
        scale = _metres_per_unit(path, units.string_value.strip() if units is not None else "mm")
        first = reader.first_frame
        numbers, frames = [], []
        for number, points, _analog in reader.read_frames():
            xyz = points[:, :3].astype(np.float64)
            xyz[points[:, 3] < 0] = np.nan
            numbers.append(number)
            frames.append(xyz)
    xyz = np.array(frames).reshape(len(frames), len(names), 3) * scale
    return MarkerData(rate, names, xyz, (np.array(numbers, dtype=np.float64) - first) / rate)
