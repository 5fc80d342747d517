"""Extrinsics from measured scene points: the Pose2Sim demo's cameras posed again from the eight points its
scene calibration measured (the force plates' corners, the demo's Config.toml object_coords_3d), their pixels
made by projecting with the shipped calibration and adding 1 px of noise (the clicked pixels are not shipped);
a mistyped point left out; points on a line, too few points and badly formed files refused."""

import dataclasses

import cv2
import numpy as np
import pytest

from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.camera_calibration import project, read_calibration
from kinefuse_plugins.multiview.scene_calibration import read_scene_points, solve_extrinsics

CALIBRATION = shared_dir() / "data" / "pose2sim_demo" / "calibration" / "Calib_scene.toml"
POINTS = np.array([[-2.0, 0.3, 0.0], [-2.0, 0.0, 0.0], [-2.0, 0.0, 0.05], [-2.0, -0.3, 0.0],
                   [0.0, 0.3, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.05], [0.0, -0.3, 0.0]])  # fmt: skip


def _unposed(cam):
    return dataclasses.replace(cam, rotation=np.zeros(3), translation=np.zeros(3))


@pytest.mark.parametrize("index", range(4))
def test_the_demo_cameras_are_posed_again_from_its_scene_points(index):
    cam = read_calibration(CALIBRATION)[index]
    rng = np.random.default_rng(index)
    pixels = project(cam, POINTS) + rng.normal(0.0, 1.0, (len(POINTS), 2))
    pixels[3] += (25.0, -10.0)  # mistyped
    found = solve_extrinsics(_unposed(cam), POINTS, pixels)
    assert found.rejected and found.rejected[0].startswith("point 4: ")
    assert found.points_used == 7 and found.rms_px < 2.0
    turn = np.degrees(np.linalg.norm(cv2.Rodrigues(found.camera.rotation_matrix @ cam.rotation_matrix.T)[0]))
    # 1 px on 8 points 3-4.5 m away spanning 2 x 0.6 m: the pose is good to a few tenths of a degree and a
    # few centimetres (measured: 0.1-0.4 degrees, 10-55 mm over seeds 0-3)
    assert turn < 1.0
    assert np.linalg.norm(found.camera.centre - cam.centre) < 0.1


def test_unseen_points_are_nan_and_too_few_are_refused():
    cam = read_calibration(CALIBRATION)[0]
    pixels = project(cam, POINTS)
    pixels[:5] = np.nan
    with pytest.raises(ValueError, match="camera 'int_cam01_img': sees 3 of the points, at least 4 needed"):
        solve_extrinsics(_unposed(cam), POINTS, pixels)


def test_points_on_one_line_are_refused():
    cam = read_calibration(CALIBRATION)[0]
    line = np.array([[x, 0.0, 0.0] for x in (-2.0, -1.0, 0.0, 1.0)])
    with pytest.raises(ValueError, match="lie on one line"):
        solve_extrinsics(_unposed(cam), line, project(cam, line))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "points = [[0, 0, 0]]\n[pixels]\ncam = [[1, 2], [3, 4]]\n",
            "pixels.cam: 2 points, but points has 1",
        ),
        ("points = [[0, 0]]\n[pixels]\ncam = [[1, 2]]\n", r"points: expected a list of \[x, y, z\]"),
        ("points = [[0, 0, 0]]\n", r"no \[pixels\] table"),
        ("points = [[0, 0, 0]]\nunits = 'mm'\n[pixels]\ncam = [[1, 2]]\n", r"unknown key\(s\) \['units'\]"),
        ("points = [[0, 0, nan]]\n[pixels]\ncam = [[1, 2]]\n", "points: every world position must be finite"),
    ],
)
def test_a_badly_formed_scene_file_is_refused_naming_the_key(tmp_path, text, message):
    path = tmp_path / "scene.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        read_scene_points(path)
