"""Pose2Sim calibration files and the camera geometry on them, tested on the real Pose2Sim and Sports2D
demo calibrations in ../shared."""

import dataclasses
import os
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.camera_calibration import (
    CameraCalibration,
    depth,
    project,
    read_calibration,
    triangulate,
    undistort_pixels,
    write_calibration,
)

SHARED = shared_dir()
pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data folder {SHARED} is absent")
POSE2SIM = SHARED / "data" / "pose2sim_demo"
SCENE = POSE2SIM / "calibration" / "Calib_scene.toml"
CALIBRATION_FILES = (
    SCENE,
    POSE2SIM / "calibration" / "Calib_qualisys.toml",
    SHARED / "data" / "sports2d_demo" / "Calib_demo.toml",
)


def random_points_seen_by_all(cams, count, rng):
    """Points in the Pose2Sim demo's capture volume (z up, floor at 0) that every camera images."""
    points = rng.uniform([-0.6, -0.6, 0.0], [0.6, 0.6, 1.8], (count, 3))
    pixels = np.stack([project(cam, points) for cam in cams])
    size = np.array([cam.size for cam in cams])[:, None, :]
    seen = ((pixels >= 0) & (pixels < size)).all(axis=(0, 2))
    return points[seen], pixels[:, seen]


def test_reads_the_pose2sim_demo_calibration():
    cams = read_calibration(SCENE)
    assert [cam.name for cam in cams] == [f"int_cam0{i}_img" for i in range(1, 5)]
    first = cams[0]
    assert first.size == (1088.0, 1920.0) and not first.fisheye
    assert first.matrix[0, 0] == 1671.5012042021037 and first.matrix[1, 2] == 933.0074897877159
    assert first.distortions.shape == (4,) and first.rotation[2] == -0.3910235872501538
    assert first.translation.tolist() == [0.2609476905995074, 0.9641586618892432, 2.932963441842366]
    with pytest.raises(ValueError):
        first.matrix[0, 0] = 1.0  # read-only: a calibration is a value


def test_size_is_width_then_height():
    """Pose2Sim's size is [width, height]: the images the demo was calibrated from, and the videos it
    filmed, are portrait (1088 wide, 1920 high)."""
    (cam03,) = [cam for cam in read_calibration(SCENE) if cam.name == "int_cam03_img"]
    image = cv2.imread(str(POSE2SIM / "calibration" / "extrinsics" / "cam03_ext.png"))
    assert cam03.size == (image.shape[1], image.shape[0]) == (1088, 1920)
    video = cv2.VideoCapture(str(POSE2SIM / "videos" / "cam03.mp4"))
    try:
        assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == cam03.size
    finally:
        video.release()
    assert cam03.matrix[0, 2] < cam03.size[0] / 2 + 50  # the principal point is near the middle of the width
    (demo,) = read_calibration(CALIBRATION_FILES[2])
    assert demo.size == (1768, 994)  # Sports2D's demo.mp4 is landscape, 1768 x 994


@pytest.mark.parametrize("path", CALIBRATION_FILES, ids=lambda p: p.name)
def test_writing_what_was_read_gives_the_same_bytes(path, tmp_path):
    original = path.read_bytes()
    out = tmp_path / "calib.toml"
    write_calibration(out, read_calibration(path), tomllib.loads(original.decode())["metadata"])
    assert out.read_bytes() == original


def test_written_file_has_pose2sim_layout_and_reads_back(tmp_path):
    cam = CameraCalibration(
        name="side cam",  # not a bare TOML key: quoted
        size=(1920, 1080),
        matrix=np.array([[1400.0, 0.0, 959.5], [0.0, 1400.0, 539.5], [0.0, 0.0, 1.0]]),
        distortions=np.array([0.1, -0.2, 1e-4, -2e-4, 0.05]),
        rotation=np.array([0.1, 0.2, 0.3]),
        translation=np.array([1.0 / 3.0, -2.0, 5.0]),
    )
    out = tmp_path / "calib.toml"
    write_calibration(out, [cam], {"error": 0.25})
    doc = tomllib.loads(out.read_text())
    assert list(doc) == ["side cam", "metadata"]
    assert list(doc["side cam"]) == [
        "name",
        "size",
        "matrix",
        "distortions",
        "rotation",
        "translation",
        "fisheye",
    ]
    assert doc["metadata"] == {"adjusted": False, "error": 0.25}
    assert "translation = [ 0.3333333333333333, -2.0, 5.0]\n" in out.read_text()
    assert read_calibration(out) == [cam]
    write_calibration(tmp_path / "again.toml", read_calibration(out), {"error": 0.25})
    assert (tmp_path / "again.toml").read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("distortions = [ -0.0531", "distortion = [ -0.0531", "[int_cam01_img]: missing key 'distortions'"),
        ("[ 0.0, 0.0, 1.0]]\ndistortions", "[ 0.0, 0.0]]\ndistortions", "[int_cam01_img] matrix: "),
        (
            "rotation = [ 1.3578601662680128, ",
            "rotation = [ ",
            "[int_cam02_img] rotation: expected shape (3,), got (2,)",
        ),
        ("size = [ 1088.0,", 'size = [ "wide",', "[int_cam01_img] size: expected a number, got 'wide'"),
        ("fisheye = false", "fisheye = 0", "[int_cam01_img] fisheye: expected true or false"),
        ("[int_cam01_img]", "[int_cam01_img", "not valid TOML"),
    ],
    ids=[
        "missing-key",
        "ragged-matrix",
        "short-rotation",
        "non-numeric-size",
        "non-bool-fisheye",
        "bad-toml",
    ],
)
def test_bad_files_say_file_table_and_key(old, new, message, tmp_path):
    text = SCENE.read_text()
    assert old in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(ValueError) as error:
        read_calibration(bad)
    assert str(error.value).startswith(str(bad)) and message in str(error.value)


def test_projection_uses_world_to_camera_extrinsics_and_distortion():
    cam = read_calibration(SCENE)[0]
    points = np.random.default_rng(3).uniform([-0.5, -0.5, 0.0], [0.5, 0.5, 1.5], (50, 3))
    in_camera = points @ cv2.Rodrigues(cam.rotation)[0].T + cam.translation
    assert np.allclose(depth(cam, points), in_camera[:, 2], rtol=0, atol=1e-12)
    ideal = dataclasses.replace(cam, distortions=np.zeros(4))
    pinhole = (in_camera @ cam.matrix.T)[:, :2] / in_camera[:, 2:]
    assert np.allclose(project(ideal, points), pinhole, rtol=0, atol=1e-9)
    # the demo lens distorts by pixels, so this is the distorted projection, and undistortion inverts it
    assert np.abs(project(cam, points) - pinhole).max() > 1.0
    normalised = in_camera[:, :2] / in_camera[:, 2:]
    assert np.allclose(undistort_pixels(cam, project(cam, points)), normalised, rtol=0, atol=1e-12)


def test_triangulating_real_calibrations_recovers_points_within_a_micrometre():
    cams = read_calibration(SCENE)
    points, pixels = random_points_seen_by_all(cams, 5000, np.random.default_rng(0))
    assert len(points) > 2000
    recovered = triangulate(cams, pixels)
    error = np.linalg.norm(recovered - points, axis=-1)
    assert error.max() < 1e-6, f"max error {error.max():.3g} m"
    # any two views suffice with exact pixels
    assert np.linalg.norm(triangulate(cams[1:3], pixels[1:3]) - points, axis=-1).max() < 1e-6


def test_triangulate_keeps_leading_shape_and_skips_missing_views():
    cams = read_calibration(SCENE)
    points, pixels = random_points_seen_by_all(cams, 200, np.random.default_rng(1))
    points, pixels = points[:60].reshape(3, 20, 3), pixels[:, :60].reshape(4, 3, 20, 2)
    pixels[0, 0] = np.nan  # camera 1 lost the first row: three views left
    pixels[1:3, 1] = np.nan  # cameras 2, 3 lost the second row: two views left
    pixels[1:, 2, :5] = np.nan  # only camera 1 saw five points: no 3D point
    recovered = triangulate(cams, pixels)
    assert recovered.shape == (3, 20, 3)
    assert np.isnan(recovered[2, :5]).all()
    good = ~np.isnan(recovered).any(axis=-1)
    assert good.sum() == 55 and np.abs(recovered[good] - points[good]).max() < 1e-6


def test_weights_down_weight_a_bad_view():
    cams = read_calibration(SCENE)
    points, pixels = random_points_seen_by_all(cams, 300, np.random.default_rng(2))
    pixels[0] += 25.0  # camera 1 is off by 25 px
    weights = np.ones(pixels.shape[:2])
    plain = np.linalg.norm(triangulate(cams, pixels) - points, axis=-1)
    weights[0] = 1e-4
    weighted = np.linalg.norm(triangulate(cams, pixels, weights) - points, axis=-1)
    assert np.median(weighted) < np.median(plain) / 100
    weights[0] = 0.0  # weight 0 leaves the view out entirely
    assert np.abs(triangulate(cams, pixels, weights) - triangulate(cams[1:], pixels[1:])).max() < 1e-9
    with pytest.raises(ValueError, match="negative"):
        triangulate(cams, pixels, -weights)


def test_points_behind_a_camera_project_to_nan_and_do_not_triangulate():
    cams = read_calibration(SCENE)[:2]
    behind = np.array([cams[0].centre + (cams[0].centre - cams[1].centre)])  # beyond cam 1, seen from cam 2
    behind = np.vstack([behind, 2 * cams[0].centre])
    assert (depth(cams[0], behind) < 0).all()
    assert np.isnan(project(cams[0], behind)).all()
    # the pinhole model would still give cam 1 a (mirrored) pixel: a wrong match, which must not triangulate
    mirrored = [
        cv2.projectPoints(behind, c.rotation, c.translation, c.matrix, c.distortions)[0][:, 0] for c in cams
    ]
    assert np.isnan(triangulate(cams, np.stack(mirrored))).all()


def test_fisheye_calibrations_project_and_triangulate(tmp_path):
    cams = [
        dataclasses.replace(cam, fisheye=True, distortions=np.array([0.05, -0.01, 0.002, -0.0005]))
        for cam in read_calibration(SCENE)
    ]
    points, pixels = random_points_seen_by_all(cams, 500, np.random.default_rng(4))
    assert np.linalg.norm(triangulate(cams, pixels) - points, axis=-1).max() < 1e-6
    assert np.isnan(undistort_pixels(cams[0], [[np.nan, 900.0]])).all()  # a lost coordinate loses the point
    write_calibration(tmp_path / "fisheye.toml", cams)
    assert read_calibration(tmp_path / "fisheye.toml") == cams


def test_invalid_calibrations_are_refused():
    cam = read_calibration(SCENE)[0]
    with pytest.raises(ValueError, match="distortions must have shape"):
        dataclasses.replace(cam, distortions=np.zeros(3))
    with pytest.raises(ValueError, match="exactly 4"):
        dataclasses.replace(cam, fisheye=True, distortions=np.zeros(5))
    with pytest.raises(ValueError, match="non-finite"):
        dataclasses.replace(cam, translation=np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="unique"):
        write_calibration(Path(os.devnull), [cam, cam])
