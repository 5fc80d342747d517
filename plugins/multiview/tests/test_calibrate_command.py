"""``kinefuse calibrate intrinsics`` then ``extrinsics`` as a user runs them on the Pose2Sim demo: the
checkerboard folders give the intrinsics, measured scene points pose the cameras (their pixels projected
with the shipped calibration plus 1 px of noise: the demo does not ship its clicked pixels), and the result
puts the cameras where the shipped calibration does; clear errors for what a user gets wrong."""

import subprocess
import sys

import numpy as np

from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.camera_calibration import project, read_calibration

CALIBRATION = shared_dir() / "data" / "pose2sim_demo" / "calibration"
POINTS = np.array([[-2.0, 0.3, 0.0], [-2.0, 0.0, 0.0], [-2.0, 0.0, 0.05], [-2.0, -0.3, 0.0],
                   [0.0, 0.3, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.05], [0.0, -0.3, 0.0]])  # fmt: skip


def _kinefuse(*args):
    return subprocess.run([sys.executable, "-m", "kinefuse", "calibrate", *map(str, args)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def _scene(path, cameras, rng):
    lines = [f"points = {POINTS.tolist()}", "[pixels]"]
    for cam in cameras:
        lines.append(f"{cam.name} = {(project(cam, POINTS) + rng.normal(0, 1.0, (8, 2))).tolist()}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_intrinsics_then_extrinsics_put_the_cameras_where_the_demo_has_them(tmp_path):
    shipped = read_calibration(CALIBRATION / "Calib_scene.toml")
    folders = [f"{cam.name}={CALIBRATION / 'intrinsics' / cam.name}" for cam in shipped]
    result = _kinefuse(
        "intrinsics", "--board", "4x7", "--square", "0.06", "--out", tmp_path / "k.toml", *folders
    )
    assert result.returncode == 0, result.stderr
    assert "int_cam04_img: 5 of 7 images" in result.stdout
    assert "cam04_07_int.jpg: reprojection error 2.08 px" in result.stdout
    scene = _scene(tmp_path / "scene.toml", shipped, np.random.default_rng(7))
    result = _kinefuse("extrinsics", tmp_path / "k.toml", "--scene", scene, "--out", tmp_path / "posed.toml")
    assert result.returncode == 0, result.stderr
    posed = read_calibration(tmp_path / "posed.toml")
    assert [cam.name for cam in posed] == [cam.name for cam in shipped]
    for ours, theirs in zip(posed, shipped, strict=True):
        # cam04's intrinsics differ from the shipped ones (its image 07 left out: 19 px of focal length), so
        # its pose absorbs some of that; the others agree to a few centimetres
        assert np.linalg.norm(ours.centre - theirs.centre) < 0.15, ours.name


def test_the_errors_name_what_is_wrong(tmp_path):
    shipped = read_calibration(CALIBRATION / "Calib_scene.toml")
    calib = CALIBRATION / "Calib_scene.toml"
    scene = _scene(tmp_path / "scene.toml", shipped[:3], np.random.default_rng(1))
    result = _kinefuse("extrinsics", calib, "--scene", scene, "--out", tmp_path / "o.toml")
    assert result.returncode == 1 and "no points for camera(s) ['int_cam04_img']" in result.stderr
    text = scene.read_text().replace("int_cam03_img", "cam3")
    scene.write_text(text)
    result = _kinefuse("extrinsics", calib, "--scene", scene, "--out", tmp_path / "o.toml")
    assert result.returncode == 1 and "camera(s) ['cam3'] are not in" in result.stderr
    image = CALIBRATION / "extrinsics" / "cam01_ext.png"
    result = _kinefuse("extrinsics", calib, "--board", "4x7", "--square", "0.06", "--image", f"int_cam01_img={image}",
                       "--out", tmp_path / "o.toml")  # fmt: skip
    assert result.returncode == 1 and f"camera 'int_cam01_img': {image}: no 4x7 board found" in result.stderr
    result = _kinefuse("intrinsics", "--board", "4x7", "--square", "0.06", "--out", tmp_path / "o.toml",
                       f"c={CALIBRATION / 'extrinsics'}")  # fmt: skip
    assert (
        result.returncode == 1 and "camera 'c': 0 usable board image(s), at least 3 needed" in result.stderr
    )
    result = _kinefuse(
        "intrinsics", "--board", "4by7", "--square", "0.06", "--out", tmp_path / "o.toml", "c=."
    )
    assert result.returncode == 1 and "board corners must be COLUMNSxROWS" in result.stderr
