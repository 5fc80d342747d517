"""A real camera declares its Pose2Sim calibration (options ``calibration``, ``calibration_camera``): two
Pose2Sim demo videos through MoveNet and the real pipeline, triangulated by the motion stream; and the clear
errors when the file, the camera or the image size is wrong."""

import dataclasses
import json

import numpy as np
import pytest

from kinefuse.bench.datasets import paths
from kinefuse.camera_calibration import calibration_from_meta, project, read_calibration
from kinefuse.storage import reader
from kinefuse.types import TRIANGULATED_VIEW, KeypointStatus
from kinefuse_plugins.camera.source import SCHEMA, load_calibration, size_problem

SHARED = paths.shared_dir()
DEMO = SHARED / "data" / "pose2sim_demo"
CALIB = DEMO / "calibration" / "Calib_scene.toml"
MODEL = SHARED / "models" / "movenet_singlepose_lightning_int8.onnx"
needs_shared = pytest.mark.skipif(not CALIB.is_file() or not MODEL.is_file(), reason=f"{SHARED} is absent")
# cam03 and cam04 decode at the calibrated 1088 x 1920; cam01 and cam02 at 1080 x 1920 (camera_calibration.py)
CAMERAS = {"cam03": "int_cam03_img", "cam04": "int_cam04_img"}


def _options(**options) -> dict:
    return {**{key: field.default for key, field in SCHEMA.items()}, **options}


def camera(name: str, **options) -> dict:
    return {"id": name, "type": "camera", "path": str(DEMO / "videos" / f"{name}.mp4"),
            "model_path": str(MODEL), "calibration": str(CALIB), **options}  # fmt: skip


@needs_shared
def test_two_calibrated_pose2sim_cameras_are_triangulated_in_the_motion_stream(kinefuse_pipeline):
    """Reprojection threshold from the data: MoveNet Lightning's heatmap is 48 x 48 cells over its 192 px
    letterboxed input, so on these 1920 px high frames one cell spans 40 px and a keypoint is that cell refined
    by a regressed offset; consistent calibration and views put the median under one cell. Measured over 6
    runs: 24-29 px median over both cameras (cam03 18-23, cam04 32-38 in 5 of them; the runs differ in how
    the realtime replay's frames fall on the items), the 100 raw frames triangulated frame by frame 24 px;
    the calibration of cam02 in place of cam04's gave 44 px, cam01's in place of cam03's 66 px. The 3D body
    is checked apart from the reprojection: swapping the two cameras' calibrations reprojects as well (30-31
    px, the two-view epipolar geometry is nearly symmetric here) but lifts the ankles to 0.55 m; measured:
    ankles 0.18-0.20 m and nose 1.44-1.46 m above z = 0, shanks 0.40-0.45 m."""
    # realtime: each file's frames are host-stamped at their presentation time, as two live cameras' would be,
    # so the stream's clock alignment lines the two cameras' frames up in time
    sources = [camera(name, calibration_camera=in_file) for name, in_file in CAMERAS.items()]
    result = kinefuse_pipeline(
        sources=sources, processors=[{"id": "motion", "type": "motion"}], duration_s=30.0
    )
    assert result.exit_code == 0
    assert all(result.source_stats(name)["state"] == "finished" for name in CAMERAS)
    calibrations = {cam.name: cam for cam in read_calibration(CALIB)}
    cams = {}
    for (
        name,
        in_file,
    ) in CAMERAS.items():  # the device meta carries the file's camera, under the device's name
        meta = json.loads(next(result.db["devices"].rows_where("device_id = ?", [name]))["meta"])
        cams[name] = calibration_from_meta(name, meta)
        assert cams[name] == dataclasses.replace(calibrations[in_file], name=name)
    view = reader.motion_keypoints(result.db, view=TRIANGULATED_VIEW, revision=1)
    assert len(view["time_ns"]) > 30, len(view["time_ns"])  # 100 frames at 60 fps: ~50 items at 30/s
    assert (view["unit"] == "m").all() and view["position"].shape[2] == 3
    valued = view["status"] != KeypointStatus.MISSING
    assert np.isfinite(view["position"][valued]).all() and valued.mean() > 0.8, valued.mean()  # measured 0.98
    errors = []
    for name, cam in cams.items():
        own = reader.motion_keypoints(result.db, view=name, revision=1)
        common, i3, i2 = np.intersect1d(view["time_ns"], own["time_ns"], return_indices=True)
        assert len(common) > 0.9 * len(view["time_ns"])
        both = valued[i3] & (
            own["status"][i2] != KeypointStatus.MISSING
        )  # what both cameras measured or filled
        assert both.sum() > 0.8 * both.size
        pixels = project(cam, view["position"][i3].astype(np.float64))
        error = np.linalg.norm(pixels - own["position"][i2], axis=-1)[both]
        assert np.isfinite(error).all()
        errors.append(error)
        print(f"{name}: {both.sum()} points, reprojection median {np.median(error):.1f} px, "
              f"p90 {np.percentile(error, 90):.1f} px")  # fmt: skip
    median = np.median(np.concatenate(errors))
    print(f"both cameras: reprojection median {median:.1f} px")
    assert median < 40.0, median
    # the body in the calibration's world (z up, metres): COCO nose 0, ankles 15-16, knees 13-14
    points = view["position"].astype(np.float64)
    ankles, nose = np.nanmedian(points[:, 15:17, 2]), np.nanmedian(points[:, 0, 2])
    shanks = np.nanmedian(np.linalg.norm(points[:, 13:15] - points[:, 15:17], axis=-1), axis=0)
    print(f"ankles at {ankles:.2f} m, nose at {nose:.2f} m, shanks {np.round(shanks, 2)} m")
    assert 0.0 < ankles < 0.35 and 1.2 < nose < 1.9 and ((shanks > 0.3) & (shanks < 0.55)).all()


def test_no_calibration_leaves_the_camera_uncalibrated():
    assert load_calibration(_options(path="x.mp4"), "cam") is None


def test_a_missing_calibration_file_names_the_file_and_the_camera(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ValueError) as e:
        load_calibration(_options(calibration=str(missing)), "cam03")
    assert str(missing) in str(e.value) and "'cam03'" in str(e.value) and "does not exist" in str(e.value)


@needs_shared
def test_a_camera_not_in_the_file_names_the_file_the_camera_and_those_it_has():
    with pytest.raises(ValueError) as e:
        load_calibration(_options(calibration=str(CALIB)), "cam03")  # the file calls it int_cam03_img
    message = str(e.value)
    assert str(CALIB) in message and "no camera 'cam03'" in message and "int_cam03_img" in message
    assert "calibration_camera" in message
    with pytest.raises(ValueError, match="no camera 'side'"):
        load_calibration(_options(calibration=str(CALIB), calibration_camera="side"), "cam03")
    found = load_calibration(_options(calibration=str(CALIB), calibration_camera="int_cam04_img"), "cam04")
    assert found.name == "int_cam04_img"


def test_a_malformed_calibration_file_names_the_file_and_the_camera(tmp_path):
    bad = tmp_path / "calib.toml"
    bad.write_text("[cam]\nname = 'cam'\nsize = [640, 480]\n")
    with pytest.raises(ValueError) as e:
        load_calibration(_options(calibration=str(bad)), "cam")
    assert str(bad) in str(e.value) and "'cam'" in str(e.value) and "missing key" in str(e.value)


@needs_shared
def test_an_image_size_other_than_the_calibrated_one_names_both_sizes(tmp_path):
    cam = load_calibration(_options(calibration=str(CALIB), calibration_camera="int_cam01_img"), "cam01")
    options = _options(calibration=str(CALIB), path="cam01.mp4")
    assert size_problem(cam, (1088, 1920), options, "cam01") == ""
    problem = size_problem(cam, (1080, 1920), options, "cam01")
    assert str(CALIB) in problem and "'int_cam01_img'" in problem and "cam01.mp4" in problem
    assert "1088 x 1920 px images" in problem and "1080 x 1920 px frames" in problem


@needs_shared
def test_a_video_of_another_size_fails_to_start_while_the_other_camera_runs_on(kinefuse_pipeline):
    # cam01.mp4 decodes 8 columns narrower than its calibration says
    sources = [
        camera("cam01", calibration_camera="int_cam01_img"),
        camera("cam04", calibration_camera="int_cam04_img"),
    ]
    result = kinefuse_pipeline(
        sources=sources, duration_s=30.0, config_overrides={"supervisor": {"restart_budget": 0}}
    )
    failed = result.source_stats("cam01")
    assert failed["state"] == "failed" and "1080 x 1920 px frames" in failed["reason"], failed
    assert str(CALIB) in failed["reason"] and "int_cam01_img" in failed["reason"]
    assert result.source_stats("cam04")["state"] == "finished"
    assert len(result.keypoint_frames("cam04")["seq"]) >= 95


def test_a_calibration_camera_without_a_calibration_file_is_a_config_problem():
    from kinefuse_plugins.camera.source import problems

    found = problems(_options(path="x.mp4", calibration_camera="int_cam03_img"))
    assert [key for key, _ in found] == ["calibration_camera"]
    assert problems(_options(path="x.mp4", calibration_camera="c", calibration="calib.toml")) == []
