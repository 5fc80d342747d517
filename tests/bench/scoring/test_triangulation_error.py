"""The triangulation rows of ``kinefuse bench accuracy``: the scene is what they say, exact pixels come back
exactly, and a camera 80 px off is left out."""

import numpy as np

from kinefuse.bench import check_row
from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.bench.scoring import triangulation_error as scoring
from kinefuse.bench.scoring.detector_realism import demo_cameras
from kinefuse.camera_calibration import project, triangulate

DATA = shared_dir() / "data"


def test_the_twin_seen_exactly_comes_back_exactly():
    cams, truth = demo_cameras(DATA), scoring.twin_keypoints()
    assert truth.shape == (scoring.FRAMES, 26, 3)
    pixels = np.stack([project(cam, truth) for cam in cams])
    assert np.isfinite(pixels).all()  # every camera sees every keypoint: the scene has no occlusion
    assert np.abs(triangulate(cams, pixels) - truth).max() < 1e-6


def test_the_rows_measure_both_goals_occlusion_and_a_passer_by():
    clean, robust, best, hidden, passer = scoring.triangulation_rows(DATA)
    for row in (clean, robust, best, hidden, passer):
        check_row(row)
    # beside Pose2Sim on the same pixels (make build installs it): its weighted DLT is the same algorithm, so
    # a tie; its best-camera selection tries every subset, ours leaves out one view at a time
    assert clean["peer"].startswith("Pose2Sim") and abs(clean["value"] / clean["peer_value"] - 1) < 0.01
    assert best["peer"].startswith("Pose2Sim") and abs(best["value"] / robust["value"] - 1) < 0.1
    assert best["value"] < 1.5 * best["peer_value"]
    # 2 px at 3-5 m through four views: millimetres
    assert 2.0 < clean["value"] < 8.0 and robust["value"] < 1.5 * clean["value"]
    assert robust["peer_value"] > 5 * robust["value"]  # the plain DLT follows the wrong camera
    assert "the wrong camera kept for 0.0% of the points" in robust["note"]
    # fewer views per point: worse than four, still millimetres; a third of points lose a view or two
    assert clean["value"] < hidden["value"] < 2 * clean["value"]
    # the passer-by is a metre off: the plain DLT lands decimetres away, the robust one is not fooled
    assert passer["peer_value"] > 100.0 and passer["value"] < 1.5 * clean["value"]
    assert "that camera kept for 0.0% of those points" in passer["note"]


def test_without_the_demo_calibration_there_are_no_rows(tmp_path):
    assert scoring.triangulation_rows(tmp_path) == []
