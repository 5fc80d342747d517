"""Intrinsics from the Pose2Sim demo's own checkerboard images (4 x 7 inner corners, 60 mm squares: the demo's
Config.toml) against the intrinsics it ships, Calib_scene.toml, which Pose2Sim computed from the same images;
images left out with their reason; too few images and boards that cannot pin the focal length refused."""

import cv2
import numpy as np
import pytest

from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.camera_calibration import read_calibration
from kinefuse_plugins.multiview.board_calibration import Board, CharucoBoard, calibrate_intrinsics

CALIBRATION = shared_dir() / "data" / "pose2sim_demo" / "calibration"
BOARD = Board(4, 7, 0.06)


def _images(camera):
    return sorted((CALIBRATION / "intrinsics" / f"int_{camera}_img").glob("*.jpg"))


def _shipped(camera):
    return next(
        cam for cam in read_calibration(CALIBRATION / "Calib_scene.toml") if cam.name == f"int_{camera}_img"
    )


def _undistorted_grid(cam, matrix, distortions):
    """Where the lens model puts a grid over the whole image, undistorted onto ``matrix``'s pixels."""
    width, height = cam.size
    grid = np.stack(np.meshgrid(np.linspace(0, width, 12), np.linspace(0, height, 20)), -1).reshape(-1, 1, 2)
    return cv2.undistortPoints(grid, matrix, distortions, P=cam.matrix).reshape(-1, 2)


@pytest.mark.parametrize("camera", ["cam01", "cam02", "cam03"])
def test_intrinsics_agree_with_the_shipped_calibration_within_their_own_uncertainty(camera):
    found, shipped = calibrate_intrinsics(camera, _images(camera), BOARD), _shipped(camera)
    assert found.camera.size == (1088, 1920)
    assert found.rms_px < 0.3
    ours = found.camera.matrix[[0, 1, 0, 1], [0, 1, 2, 2]]
    theirs = shipped.matrix[[0, 1, 0, 1], [0, 1, 2, 2]]
    # the tolerance is the fit's own standard deviation of fx, fy, cx, cy (2-3.5 px): the same images and
    # lens model should agree far inside it whatever the CPU's floating-point path
    assert (np.abs(ours - theirs) < found.sigma).all(), (ours, theirs, found.sigma)
    # the lens models agree where it matters, across the whole image: within a tenth of a pixel
    shift = _undistorted_grid(shipped, found.camera.matrix, found.camera.distortions) - _undistorted_grid(
        shipped, shipped.matrix, shipped.distortions
    )
    assert np.abs(shift).max() < 0.1
    skipped = [image for image in found.images if image.rejected]
    assert len(skipped) == 1 and skipped[0].rejected == "no 4x7 board found"


def test_an_image_far_worse_than_the_others_is_left_out_with_its_error():
    # cam04_07: the board runs off the image's left edge; its corners there fit 2 px off (the others 0.1-0.3)
    found = calibrate_intrinsics("cam04", _images("cam04"), BOARD)
    reasons = {image.path.name: image.rejected for image in found.images}
    assert reasons["cam04_07_int.jpg"].startswith("reprojection error 2.")
    assert reasons["cam04_04_int.jpg"] == "no 4x7 board found"
    assert found.rms_px < 0.3  # 0.92 px with the image kept, as the shipped calibration kept it


def test_too_few_board_images_are_refused_with_each_reason():
    images = _images("cam01")[:2] + sorted((CALIBRATION / "extrinsics").glob("cam01*.png"))
    with pytest.raises(ValueError, match=r"camera 'c': 1 usable board image\(s\), at least 3 needed .*"
                       r"cam01_02_int.jpg: no 4x7 board found; cam01_ext.png: no 4x7 board found"):  # fmt: skip
        calibrate_intrinsics("c", images, BOARD)


def _render(tmp_path, poses):
    """Images of a 4 x 7 board seen by an ideal 800 px camera from ``poses`` (rvec, tvec)."""
    square = 100
    board = np.full((9 * square, 6 * square), 255, np.uint8)
    for row in range(8):
        for column in range(5):
            if (row + column) % 2 == 0:
                board[(row + 1) * square - square // 2 : (row + 2) * square - square // 2,
                      (column + 1) * square - square // 2 : (column + 2) * square - square // 2] = 0  # fmt: skip
    # board pixels to metres: the inner corner (0, 0) at pixel (150, 150), 0.06 m a square
    to_board = np.array([[0.06 / square, 0, -0.06 * 1.5], [0, 0.06 / square, -0.06 * 1.5], [0, 0, 1.0]])
    matrix = np.array([[800.0, 0, 640], [0, 800, 480], [0, 0, 1]])
    paths = []
    for index, (rvec, tvec) in enumerate(poses):
        rotation = cv2.Rodrigues(np.array(rvec, float))[0]
        homography = matrix @ np.column_stack([rotation[:, 0], rotation[:, 1], tvec]) @ to_board
        image = cv2.warpPerspective(board, homography, (1280, 960), borderValue=128)
        paths.append(tmp_path / f"board{index}.png")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def test_a_rendered_board_gives_back_the_camera(tmp_path):
    poses = [([0.3, 0.1, 0], [-0.1, -0.15, 0.8]), ([-0.3, 0.2, 0.1], [-0.05, -0.2, 0.9]),
             ([0.1, -0.35, -0.1], [-0.15, -0.1, 0.7]), ([-0.2, -0.3, 0.2], [0.0, -0.15, 1.0])]  # fmt: skip
    found = calibrate_intrinsics("ideal", _render(tmp_path, poses), BOARD)
    assert found.rms_px < 0.2
    np.testing.assert_allclose(
        found.camera.matrix[[0, 1, 0, 1], [0, 1, 2, 2]], [800, 800, 640, 480], atol=3.0
    )
    np.testing.assert_allclose(found.camera.distortions, 0.0, atol=0.02)


def test_boards_all_seen_face_on_cannot_pin_the_focal_length(tmp_path):
    poses = [
        ([0, 0, 0], [-0.1, -0.15, 0.8]),
        ([0, 0, 0.3], [0.0, -0.1, 0.8]),
        ([0, 0, -0.2], [-0.15, -0.2, 0.8]),
    ]
    with pytest.raises(ValueError, match="camera 'flat': the boards all face one way"):
        calibrate_intrinsics("flat", _render(tmp_path, poses), BOARD)


CHARUCO = CharucoBoard(5, 7, 0.06, 0.045)


def _render_charuco(tmp_path, poses):
    """Images of ``CHARUCO`` seen by the ideal 800 px camera from ``poses``; part of a board may fall outside."""
    pixels_per_m = 4000.0
    margin = 0.02  # m of white around the squares
    width, height = (
        CHARUCO.columns * CHARUCO.square_m + 2 * margin,
        CHARUCO.rows * CHARUCO.square_m + 2 * margin,
    )
    art = CHARUCO.board.generateImage((round(width * pixels_per_m), round(height * pixels_per_m)),
                                      marginSize=round(margin * pixels_per_m))  # fmt: skip
    # board image pixels to the board's frame (m): OpenCV's ChArUco corners start at the first square's corner
    to_board = np.array([[1 / pixels_per_m, 0, -margin], [0, 1 / pixels_per_m, -margin], [0, 0, 1.0]])
    matrix = np.array([[800.0, 0, 640], [0, 800, 480], [0, 0, 1]])
    paths = []
    for index, (rvec, tvec) in enumerate(poses):
        rotation = cv2.Rodrigues(np.array(rvec, float))[0]
        homography = matrix @ np.column_stack([rotation[:, 0], rotation[:, 1], tvec]) @ to_board
        image = cv2.warpPerspective(art, homography, (1280, 960), flags=cv2.INTER_AREA, borderValue=128)
        paths.append(tmp_path / f"charuco{index}.png")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def test_a_charuco_board_gives_back_the_camera_even_partly_out_of_view(tmp_path):
    poses = [
        ([0.4, 0.1, 0], [-0.15, -0.2, 0.8]),
        ([-0.4, 0.3, 0.1], [-0.1, -0.25, 0.9]),
        ([0.1, -0.45, -0.1], [-0.2, -0.15, 0.75]),
        ([-0.3, -0.4, 0.2], [0.0, -0.2, 1.0]),
        ([0.3, 0.4, 0.0], [-0.75, -0.15, 0.8]),  # partly out of the image: 13 of its 24 corners
    ]
    paths = _render_charuco(tmp_path, poses)
    partial = CHARUCO.find(cv2.imread(str(paths[-1]), cv2.IMREAD_GRAYSCALE))
    assert partial is not None and len(partial[0]) < (CHARUCO.columns - 1) * (CHARUCO.rows - 1)
    found = calibrate_intrinsics("charuco", paths, CHARUCO)
    assert all(image.error_px is not None for image in found.images)
    assert found.rms_px < 0.5  # warped, resampled art: 0.33 px here
    # within three of the fit's own standard deviations (rendered corners are good to about 0.3 px)
    error = np.abs(found.camera.matrix[[0, 1, 0, 1], [0, 1, 2, 2]] - [800, 800, 640, 480])
    assert (error < 3 * found.sigma).all(), (error, found.sigma)
