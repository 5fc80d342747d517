import json

import c3d
import numpy as np
import pytest

from kinefuse.bench.datasets.markers import read_c3d, read_trc
from kinefuse.bench.datasets.openpose_json import read_frames

NAMES = ("Hip", "RKnee", "LAnkle")


def _positions(frames: int) -> np.ndarray:
    """(frames, markers, 3) deterministic positions in millimetres."""
    t = np.arange(frames)[:, None, None]
    marker = np.arange(len(NAMES))[None, :, None]
    axis = np.arange(3)[None, None, :]
    return 1000.0 * marker + 100.0 * axis + 2.5 * t


def _trc_text(xyz_mm: np.ndarray, units: str, scale: float, rate: float = 60.0) -> str:
    """A TRC file the way Pose2Sim/OpenSim lay it out; marker 1 is missing (empty fields) in frame 2."""
    frames = len(xyz_mm)
    lines = [
        "PathFileType\t4\t(X/Y/Z)\ttest.trc",
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\tOrigNumFrames",
        f"{rate:g}\t{rate:g}\t{frames}\t{len(NAMES)}\t{units}\t{rate:g}\t1\t{frames}",
        "Frame#\tTime\t" + "\t\t\t".join(NAMES) + "\t\t",
        "\t\t" + "\t".join(f"{a}{i + 1}" for i in range(len(NAMES)) for a in "XYZ"),
        "",
    ]
    for k in range(frames):
        values = [f"{v * scale:.6f}" for v in xyz_mm[k].ravel()]
        if k == 2:
            values[3:6] = ["", "", ""]
        lines.append("\t".join([str(k + 1), f"{k / rate:.6f}", *values]))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("units", "scale"), [("mm", 1.0), ("m", 1e-3), ("cm", 0.1)])
def test_trc_reads_names_rate_time_and_converts_to_metres(tmp_path, units, scale):
    xyz = _positions(5)
    path = tmp_path / "test.trc"
    path.write_text(_trc_text(xyz, units, scale))
    data = read_trc(path)
    assert data.rate_hz == 60.0 and data.names == NAMES
    np.testing.assert_allclose(data.time, np.arange(5) / 60.0, atol=1e-6)
    expected = xyz / 1000.0
    expected[2, 1] = np.nan
    np.testing.assert_allclose(data.xyz, expected, atol=1e-9)


def test_trc_short_rows_are_missing_markers(tmp_path):
    text = _trc_text(_positions(3), "mm", 1.0).splitlines()
    text[-1] = "\t".join(text[-1].split("\t")[:5])  # the writer stopped after the first marker
    path = tmp_path / "short.trc"
    path.write_text("\n".join(text) + "\n")
    data = read_trc(path)
    assert np.all(np.isnan(data.xyz[-1, 1:])) and np.all(np.isfinite(data.xyz[-1, 0]))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda lines: lines.__setitem__(2, lines[2].replace("\tmm\t", "\tinch\t")), "Units 'inch'"),
        (
            lambda lines: lines.__setitem__(3, "Frame#\tTime\tHip"),
            "NumMarkers is 3 but the names line lists 1",
        ),
        (lambda lines: lines.__setitem__(6, lines[6].replace("\t", "\tx", 1)), r"bad\.trc:7:"),
        (lambda lines: lines.__setitem__(2, lines[2].replace("60", "fast", 1)), "number under 'DataRate'"),
    ],
)
def test_trc_errors_name_the_file_and_what_is_off(tmp_path, edit, message):
    lines = _trc_text(_positions(3), "mm", 1.0).splitlines()
    edit(lines)
    path = tmp_path / "bad.trc"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=message):
        read_trc(path)


@pytest.mark.filterwarnings(
    "ignore:No analog data found in file:UserWarning"
)  # the writer's, on point-only data
def test_c3d_written_by_the_c3d_package_reads_back_in_metres(tmp_path):
    xyz = _positions(6).astype(np.float32)
    writer = c3d.Writer(point_rate=100.0, point_units="mm  ")
    writer.set_point_labels(list(NAMES))
    for k in range(len(xyz)):
        points = np.zeros((len(NAMES), 5), np.float32)
        points[:, :3] = xyz[k]
        if k == 4:
            points[2, 3] = -1.0  # the writer's way of saying "not seen"
        writer.add_frames([(points, np.zeros((0, 0), np.float32))])
    path = tmp_path / "walk.c3d"
    with path.open("wb") as handle:
        writer.write(handle)

    data = read_c3d(path)
    assert data.rate_hz == 100.0 and data.names == NAMES
    np.testing.assert_allclose(data.time, np.arange(6) / 100.0)
    expected = xyz / 1000.0
    expected[4, 2] = np.nan
    np.testing.assert_allclose(data.xyz, expected, rtol=1e-6)


def _write_frame(folder, name: str, people: list[list[float]]) -> None:
    document = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": p} for p in people]}
    (folder / name).write_text(json.dumps(document))


def test_openpose_json_keeps_the_most_confident_person(tmp_path):
    sure = [10.0, 20.0, 0.9, 11.0, 21.0, 0.8, 12.0, 22.0, 0.7]
    unsure = [50.0, 60.0, 0.3, 51.0, 61.0, 0.2, 0.0, 0.0, 0.0]
    _write_frame(tmp_path, "cam01_000000000002_keypoints.json", [unsure, sure])
    _write_frame(tmp_path, "cam01_000000000000_keypoints.json", [sure, unsure])
    _write_frame(tmp_path, "cam01_000000000001_keypoints.json", [])
    _write_frame(tmp_path, "cam01_000000000003_keypoints.json", [unsure])

    frames, keypoints, person = read_frames(tmp_path)
    np.testing.assert_array_equal(frames, [0, 1, 2, 3])
    np.testing.assert_array_equal(person, [0, -1, 1, 0])
    assert keypoints.shape == (4, 3, 3)
    np.testing.assert_array_equal(keypoints[0], np.reshape(sure, (3, 3)))
    np.testing.assert_array_equal(keypoints[2], np.reshape(sure, (3, 3)))
    # nobody seen: NaN positions, zero confidence; an undetected keypoint (0, 0, 0) likewise
    assert np.all(np.isnan(keypoints[1, :, :2])) and np.all(keypoints[1, :, 2] == 0)
    assert np.all(np.isnan(keypoints[3, 2, :2])) and keypoints[3, 2, 2] == 0
    np.testing.assert_array_equal(keypoints[3, 0], [50.0, 60.0, 0.3])


def test_openpose_json_errors_name_the_file(tmp_path):
    _write_frame(tmp_path, "cam_000001.json", [[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"cam_000001\.json: pose_keypoints_2d holds 2 numbers"):
        read_frames(tmp_path)
    (tmp_path / "cam_000001.json").write_text('{"persons": []}')
    with pytest.raises(ValueError, match=r"cam_000001\.json: expected \{\"people\""):
        read_frames(tmp_path)
    (tmp_path / "cam_000001.json").unlink()
    _write_frame(tmp_path, "a_1.json", [[1.0, 2.0, 0.5]])
    _write_frame(tmp_path, "b_2.json", [[1.0, 2.0, 0.5, 3.0, 4.0, 0.5]])
    with pytest.raises(ValueError, match="keypoint counts differ"):
        read_frames(tmp_path)


def test_openpose_json_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no keypoint .json files"):
        read_frames(tmp_path)
