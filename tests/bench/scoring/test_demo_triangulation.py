"""The demo-in-3D rows on tracks whose calibration is known: the demo twin's keypoints projected with
Calib_scene.toml, exactly and through the detector model fitted to MoveNet. The rows must find Calib_scene
the better fit, and exact pixels must give rigid bones and no reprojection error."""

import numpy as np

from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.bench.scoring import detector_realism as realism
from kinefuse.bench.scoring.demo_triangulation import demo_rows
from kinefuse.camera_calibration import project
from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.motions import make_motion

DATA = shared_dir() / "data"
SCENE = "Calib_scene.toml"


def _rows(tracks):
    return {row["metric"]: row for row in demo_rows(DATA, (tracks, ""))}


def _exact_tracks(cams):
    shape = BodyShape(realism.TWIN_HEIGHT_M)
    body = Body(
        shape, make_motion("single_leg_balance", shape, **realism.TWIN_MOTION), realism.TWIN_ORIGIN_XY
    )
    landmarks = body.landmarks(np.arange(realism.TWIN_FRAMES) / realism.TWIN_FPS)
    points = np.stack([landmarks[name] for name in realism.COCO.landmarks], axis=1)
    return [np.concatenate([project(cam, points), np.ones((*points.shape[:2], 1))], axis=-1) for cam in cams]


def test_exact_pixels_give_rigid_bones_and_no_error_with_their_own_calibration():
    rows = _rows(_exact_tracks(realism.demo_cameras(DATA)))
    assert rows[f"reprojection error median against the other 3 views, {SCENE}"]["value"] < 1e-6
    assert rows["reprojection error median against the other 3 views, Calib_qualisys.toml"]["value"] > 5.0
    assert rows[f"bone length variability, median over 8 bones, {SCENE}"]["value"] < 1e-6


def test_through_the_detector_model_the_calibration_of_the_pixels_still_fits_best():
    rows = _rows(realism.synthetic_tracks(realism.demo_cameras(DATA), realism.FITTED))
    scene = rows[f"reprojection error median against the other 3 views, {SCENE}"]["value"]
    assert scene < rows["reprojection error median against the other 3 views, Calib_qualisys.toml"]["value"]
    assert "left thigh" in rows[f"bone length variability, median over 8 bones, {SCENE}"]["note"]


def test_no_run_no_rows():
    assert demo_rows(DATA, None) == []
