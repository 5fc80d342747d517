"""Weighted linear triangulation and the points' sigma: compiled and twin are bit-identical; both agree with
NumPy's SVD of the same DLT system and with an explicit inverse of the same information matrix; exact
projections come back exactly; unusable views and points behind a camera give NaN."""

import numpy as np
import pytest

from kinefuse._ext import triangulation as compiled
from kinefuse._pure import triangulation as twin
from kinefuse.camera_calibration import projections
from kinefuse.sim.camera_rig import ring

CAMERAS = ring(4, 4.0, 1.2, (0.0, 0.0, 0.9), (1280, 720), 900.0)
PROJECTIONS = projections(CAMERAS)
CENTRES = np.ascontiguousarray(np.stack([c.centre for c in CAMERAS]))


def scene(n=300, noise=0.002, seed=0):
    """Points about a standing body, their normalised coordinates in the four cameras with ``noise`` (about
    2 px at 900 px focal length), weights 0.5-2, and some views left out (NaN or weight 0)."""
    rng = np.random.default_rng(seed)
    points = rng.uniform([-0.4, -0.4, 0.0], [0.4, 0.4, 1.8], (n, 3))
    camera = np.einsum("vij,nj->vni", PROJECTIONS[:, :, :3], points) + PROJECTIONS[:, None, :, 3]
    xy = camera[..., :2] / camera[..., 2:] + rng.normal(0.0, noise, (len(CAMERAS), n, 2))
    weights = rng.uniform(0.5, 2.0, (len(CAMERAS), n))
    xy[0, ::7] = np.nan
    weights[1, ::5] = 0.0
    xy[2, ::11, 1] = np.inf
    return points, np.ascontiguousarray(xy), np.ascontiguousarray(weights)


def svd_dlt(xy, weights):
    """The same system solved by NumPy's SVD (Hartley & Zisserman sec. 12.2), views left out as zero rows."""
    usable = np.isfinite(xy).all(axis=-1) & np.isfinite(weights) & (weights > 0)
    w = np.where(usable, weights, 0.0)[..., None]
    xy = np.where(usable[..., None], xy, 0.0)
    rows = [
        w[v] * (xy[v, :, k : k + 1] * PROJECTIONS[v, 2] - PROJECTIONS[v, k]) for v in range(4) for k in (0, 1)
    ]
    h = np.linalg.svd(np.stack(rows, axis=1))[2][:, -1]
    points = h[:, :3] / h[:, 3:]
    return np.where((usable.sum(axis=0) >= 2)[:, None], points, np.nan)


def test_compiled_and_twin_are_bit_identical():
    points, xy, weights = scene()
    # views that agree on nothing: eigenvalues too close for inverse iteration, so Jacobi's rotations decide
    xy[:, :40] = np.random.default_rng(9).uniform(-0.5, 0.5, (4, 40, 2))
    a, b = compiled.triangulate(PROJECTIONS, xy, weights), twin.triangulate(PROJECTIONS, xy, weights)
    np.testing.assert_array_equal(a, b)
    angular = np.ascontiguousarray(np.where(weights > 0, 0.002 / np.maximum(weights, 1e-9), np.nan))
    np.testing.assert_array_equal(compiled.point_sigma(PROJECTIONS, CENTRES, a, angular),
                                  twin.point_sigma(PROJECTIONS, CENTRES, a, angular))  # fmt: skip


def test_the_eigenvector_of_the_normal_equations_is_the_svds_solution():
    points, xy, weights = scene()
    found, reference = compiled.triangulate(PROJECTIONS, xy, weights), svd_dlt(xy, weights)
    np.testing.assert_array_equal(np.isnan(found), np.isnan(reference))
    assert np.nanmax(np.abs(found - reference)) < 1e-9  # metres
    # and the noise (about 2 px) leaves the points within a few centimetres of the truth
    assert np.nanmedian(np.linalg.norm(found - points, axis=1)) < 0.02


def test_exact_projections_come_back_exactly():
    points, xy, weights = scene(noise=0.0)
    found = compiled.triangulate(PROJECTIONS, xy, np.ones_like(weights))
    usable = np.isfinite(xy).all(axis=-1).sum(axis=0) >= 2
    assert usable.all()
    assert np.abs(found - points).max() < 1e-10


def test_a_point_needs_two_usable_views_in_front_of_it():
    points, xy, weights = scene(n=3, noise=0.0)
    weights[:, 0] = [1.0, 0.0, 0.0, np.nan]  # point 0: one usable view left
    xy[:2, 1] = np.nan  # point 1: two views left
    found = compiled.triangulate(PROJECTIONS, xy, weights)
    assert np.isnan(found[0]).all() and np.abs(found[1] - points[1]).max() < 1e-10
    # a point behind camera 0 projects to finite coordinates all the same; the DLT fits it exactly
    behind = CENTRES[0] + (CENTRES[0] - np.array([0.0, 0.0, 0.9]))
    camera = PROJECTIONS[:, :, :3] @ behind + PROJECTIONS[:, :, 3]
    assert camera[0, 2] < 0 < camera[1:, 2].min()
    seen = np.ascontiguousarray((camera[:, :2] / camera[:, 2:])[:, None])
    assert np.isnan(compiled.triangulate(PROJECTIONS, seen, np.ones((4, 1)))).all()
    without_camera_0 = np.ones((4, 1))
    without_camera_0[0] = 0.0
    assert np.abs(compiled.triangulate(PROJECTIONS, seen, without_camera_0)[0] - behind).max() < 1e-9


def test_the_sigma_is_the_inverse_information_and_infinite_for_one_view():
    points, xy, weights = scene(n=50, noise=0.0)
    angular = np.full((4, 50), 0.003)
    angular[3, :10] = np.nan  # not used
    sigma = compiled.point_sigma(PROJECTIONS, CENTRES, np.ascontiguousarray(points), angular)
    for j in (0, 20):
        information = np.zeros((3, 3))
        for v in range(4):
            if np.isfinite(angular[v, j]):
                ray = (points[j] - CENTRES[v]) / np.linalg.norm(points[j] - CENTRES[v])
                depth = PROJECTIONS[v, 2, :3] @ points[j] + PROJECTIONS[v, 2, 3]
                information += (np.eye(3) - np.outer(ray, ray)) / (depth * angular[v, j]) ** 2
        assert sigma[j] == pytest.approx(np.sqrt(np.trace(np.linalg.inv(information)) / 3), rel=1e-12)
    one_view = np.full((4, 1), np.nan)
    one_view[0] = 0.003
    assert compiled.point_sigma(PROJECTIONS, CENTRES, np.ascontiguousarray(points[:1]), one_view)[0] == np.inf
    nan_point = np.full((1, 3), np.nan)
    assert np.isnan(compiled.point_sigma(PROJECTIONS, CENTRES, nan_point, np.full((4, 1), 0.003))[0])


@pytest.mark.parametrize("kernel", [compiled, twin], ids=["compiled", "twin"])
def test_shapes_that_disagree_are_refused(kernel):
    _, xy, weights = scene(n=5)
    with pytest.raises(ValueError, match="shapes disagree"):
        kernel.triangulate(PROJECTIONS, xy, np.ascontiguousarray(weights[:, :4]))
    with pytest.raises(ValueError, match=r"projections must be \(ncam, 3, 4\)"):
        kernel.triangulate(np.ascontiguousarray(PROJECTIONS[:, :, :3]), xy, weights)


FOCAL = np.full(4, 900.0)


def with_a_wrong_camera(offset_px=80.0, share=1.0, seed=1):
    """The scene with camera 2's keypoints moved ``offset_px`` in a random direction for ``share`` of the
    points (a detection on the wrong person, a bumped camera)."""
    points, xy, weights = scene(seed=seed)
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(points)) < share
    angle = rng.uniform(0, 2 * np.pi, len(points))
    xy[2, wrong] += (offset_px / 900.0) * np.stack([np.cos(angle), np.sin(angle)], axis=1)[wrong]
    return points, np.ascontiguousarray(xy), weights, wrong


def test_rejecting_compiled_and_twin_are_bit_identical():
    _, xy, weights, _ = with_a_wrong_camera(share=0.3)
    a = compiled.triangulate_rejecting(PROJECTIONS, xy, weights, FOCAL, 10.0)
    b = twin.triangulate_rejecting(PROJECTIONS, xy, weights, FOCAL, 10.0)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_a_camera_80_px_off_is_left_out_and_the_point_comes_back():
    points, xy, weights, _ = with_a_wrong_camera()
    kept, used, error = compiled.triangulate_rejecting(PROJECTIONS, xy, weights, FOCAL, 10.0)
    plain = compiled.triangulate(PROJECTIONS, xy, weights)
    usable = np.isfinite(xy).all(axis=-1) & (weights > 0)
    four = usable.all(axis=0)
    # with four views the three good ones outvote it: it is left out every time, nothing else is
    assert used[2, four].sum() == 0 and used[[0, 1, 3]][:, four].all()
    # with three, leaving any one out leaves two that agree but along their epipolar line: the pair that
    # agrees best is nearly always the good one (94 % here)
    three = (usable.sum(axis=0) == 3) & usable[2]
    assert (used[2, three] == 0).mean() > 0.85
    seen = four | three
    wrong_error = np.linalg.norm(plain[seen] - points[seen], axis=1)
    kept_error = np.linalg.norm(kept[seen] - points[seen], axis=1)
    assert np.median(kept_error) < 0.02 < np.median(wrong_error)  # 2 px of noise; 80 px pulls it further
    assert np.nanmedian(error[four]) < 3.0  # px: the views kept agree to about the noise


def test_without_a_limit_nothing_is_left_out_and_the_points_are_the_plain_ones():
    _, xy, weights, _ = with_a_wrong_camera(share=0.3)
    points, used, error = compiled.triangulate_rejecting(PROJECTIONS, xy, weights, FOCAL, np.inf)
    np.testing.assert_array_equal(points, compiled.triangulate(PROJECTIONS, xy, weights))
    usable = np.isfinite(xy).all(axis=-1) & np.isfinite(weights) & (weights > 0)
    np.testing.assert_array_equal(used.astype(bool), usable)
    assert np.isfinite(error[np.isfinite(points).all(axis=1)]).all()


def test_two_views_are_never_left_out():
    _, xy, weights, _ = with_a_wrong_camera()
    xy[[0, 3]] = np.nan  # cameras 1 and 2 (the wrong one) only
    points, used, error = compiled.triangulate_rejecting(
        PROJECTIONS, np.ascontiguousarray(xy), weights, FOCAL, 10.0
    )
    two = (np.isfinite(xy).all(axis=-1) & (weights > 0)).sum(axis=0) == 2
    assert two.any() and used[:, two].sum(axis=0).tolist() == [2] * int(two.sum())
    # reported for the caller to judge; two views show only the part of the 80 px across their epipolar line
    assert np.isfinite(error[two]).all() and np.median(error[two]) > 10.0
