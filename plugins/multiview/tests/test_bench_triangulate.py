"""``kinefuse bench triangulate``: its rows are measured on the scene it describes, every method on the same
frames."""

import numpy as np

from kinefuse.bench import pose2sim_peer
from kinefuse.camera_calibration import project, triangulate, triangulate_robust
from kinefuse_plugins.multiview import bench_triangulate


def test_the_rows_time_every_method_on_the_same_frames():
    rows = bench_triangulate.run({"frames": 50, "duration_s": 0.01})
    pose2sim = "Pose2Sim 0.10.49 weighted_triangulation per point"  # make test installs it (make build)
    assert [(r["metric"].split(", ")[1], r["peer"]) for r in rows] == [
        ("leaving out views over 15 px", "vectorised NumPy DLT (batched SVD)"),
        ("leaving out views over 15 px", "OpenCV triangulatePoints per frame"),
        ("leaving out views over 15 px", pose2sim),
        ("weighted DLT", "vectorised NumPy DLT (batched SVD)"),
        ("weighted DLT", "OpenCV triangulatePoints per frame"),
        ("weighted DLT", pose2sim),
    ]
    assert all(r["value"] > 0 and r["peer_value"] > 0 for r in rows)
    assert rows[0]["peer_value"] == rows[3]["peer_value"]  # one peer measurement, two rows


def test_the_peers_solve_the_same_problem():
    cams, truth, pixels, weights = bench_triangulate.scene(200)
    ours = triangulate(cams, pixels, weights)
    np.testing.assert_allclose(bench_triangulate.numpy_dlt(cams, pixels, weights), ours, atol=1e-6)
    # Pose2Sim's own function, driven as its triangulation step drives it: the same points
    pose2sim = pose2sim_peer.triangulate(cams, pixels, weights, pose2sim_peer.weighted_triangulation())
    np.testing.assert_allclose(pose2sim, ours, atol=1e-6)
    # OpenCV's two views and the robust four land within the noise of the truth
    for found in (
        bench_triangulate.opencv_pairs(cams, pixels),
        triangulate_robust(cams, pixels, weights).points,
    ):
        assert np.median(np.linalg.norm(found - truth, axis=-1)) < 0.03


def test_the_wrong_camera_is_left_out_where_it_is_wrong():
    cams, truth, pixels, weights = bench_triangulate.scene(200)
    wrong = np.linalg.norm(pixels[2] - project(cams[2], truth), axis=-1) > 20.0  # 2 px of noise, 80 px off
    assert 0.03 < wrong.mean() < 0.07
    found = triangulate_robust(cams, pixels, weights, bench_triangulate.MAX_ERROR_PX)
    assert not found.views[2][wrong].any() and found.views[[0, 1, 3]].all() and found.views[2][~wrong].all()
