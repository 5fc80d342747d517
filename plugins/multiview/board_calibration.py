"""A camera's intrinsics (focal lengths, principal point, lens distortion) from images of a checkerboard.

Zhang's method as OpenCV implements it (Z. Zhang, "A flexible new technique for camera calibration", IEEE
TPAMI 22(11), 2000; ``cv2.calibrateCameraExtended``): the board's inner corners found in each image
(``cv2.findChessboardCorners``, refined to sub-pixel by ``cv2.cornerSubPix``), then the camera and a pose per
image fitted to all of them by Levenberg-Marquardt. The lens model is Pose2Sim's: k1, k2, p1, p2 (k3 fixed at
0, as Pose2Sim's calibration fixes it), so the file it gives reads the same in Pose2Sim.

What it leaves out and why, per image: the board not found; another image size than the first image's; a
reprojection error far above the others' (a misdetected corner, a blurred or cut-off board): while the
worst image's RMS error exceeds both ``OUTLIER_RATIO`` times the median image's and ``OUTLIER_FLOOR_PX``,
it is left out and the camera fitted again. Refused: fewer than ``MIN_IMAGES`` images left; boards all at
one orientation (their normals within ``MIN_TILT_SPREAD_DEG`` of each other: planes parallel to each other
leave the focal length undetermined, Zhang 2000 sec. 3.3; a fit to face-on boards gave 2480 px for an 800 px
camera, with a standard deviation of 0.1 px); or a focal length whose standard deviation, from the fit's
covariance, exceeds ``MAX_FOCAL_SPREAD`` of it."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from kinefuse.camera_calibration import CameraCalibration

MIN_IMAGES = 3  # Zhang 2000, sec. 3.3: two views fix the 4 intrinsics; a third checks them
OUTLIER_RATIO = 3.0
OUTLIER_FLOOR_PX = 0.5  # below half a pixel an image is fine whatever the others do
MAX_FOCAL_SPREAD = 0.02  # relative standard deviation of fx, fy
MIN_TILT_SPREAD_DEG = 10.0  # the demo's boards span 56-80 degrees per camera
MIN_CHARUCO_CORNERS = 6  # a homography needs 4; two more check it
_SUBPIXEL_WINDOW = (11, 11)
_SUBPIXEL_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3)
_FLAGS = cv2.CALIB_FIX_K3


@dataclasses.dataclass(frozen=True)
class Board:
    """A checkerboard: ``columns`` x ``rows`` inner corners, ``square_m`` apart. Found only whole."""

    columns: int
    rows: int
    square_m: float

    def __post_init__(self) -> None:
        if min(self.columns, self.rows) < 2:
            raise ValueError(f"a board needs at least 2 x 2 inner corners, got {self.columns} x {self.rows}")
        if not self.square_m > 0:
            raise ValueError(f"the square size must be positive, got {self.square_m} m")

    @classmethod
    def parse(cls, corners: str, square_m: float) -> Board:
        """From ``"4x7"`` (inner corners) and the square size in metres."""
        columns, rows = _size(corners, "board corners must be COLUMNSxROWS (inner corners, e.g. 4x7)")
        return cls(columns, rows, square_m)

    @property
    def name(self) -> str:
        return f"{self.columns}x{self.rows} board"

    def object_points(self) -> np.ndarray:
        """The corners in the board's frame (columns * rows, 3; m), in OpenCV's detection order."""
        grid = np.mgrid[0 : self.columns, 0 : self.rows].T.reshape(-1, 2) * self.square_m
        return np.hstack([grid, np.zeros((len(grid), 1))]).astype(np.float32)

    def find(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The corners found in a grey image: (board points (n, 3) m, pixels (n, 2)), or None."""
        found, corners = cv2.findChessboardCorners(gray, (self.columns, self.rows))
        if not found:
            return None
        pixels = cv2.cornerSubPix(gray, corners, _SUBPIXEL_WINDOW, (-1, -1), _SUBPIXEL_CRITERIA)
        return self.object_points(), pixels.reshape(-1, 2)


@dataclasses.dataclass(frozen=True)
class CharucoBoard:
    """A ChArUco board (Garrido-Jurado et al., "Automatic generation and detection of highly reliable fiducial
    markers under occlusion", Pattern Recognition 47(6), 2014; ``cv2.aruco.CharucoBoard``): ``columns`` x
    ``rows`` squares of ``square_m``, ArUco markers of ``marker_m`` from ``dictionary`` in the white ones.
    Its markers name each corner, so a board partly out of view or hidden still counts: an image needs
    ``MIN_CHARUCO_CORNERS`` of its corners."""

    columns: int
    rows: int
    square_m: float
    marker_m: float
    dictionary: str = "DICT_4X4_50"

    def __post_init__(self) -> None:
        if min(self.columns, self.rows) < 3:
            raise ValueError(
                f"a ChArUco board needs at least 3 x 3 squares, got {self.columns} x {self.rows}"
            )
        if not 0 < self.marker_m < self.square_m:
            raise ValueError(
                f"the marker ({self.marker_m} m) must be smaller than the square ({self.square_m} m)"
            )
        if not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r} (e.g. DICT_4X4_50, DICT_5X5_100)")

    @classmethod
    def parse(cls, squares: str, square_m: float, marker_m: float | None, dictionary: str) -> CharucoBoard:
        columns, rows = _size(squares, "a ChArUco board is COLUMNSxROWS squares, e.g. 5x7")
        if marker_m is None:
            raise ValueError("a ChArUco board needs --marker (the markers' side, metres)")
        return cls(columns, rows, square_m, marker_m, dictionary)

    @property
    def name(self) -> str:
        return f"{self.columns}x{self.rows} ChArUco board"

    @functools.cached_property
    def board(self):
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.columns, self.rows), self.square_m, self.marker_m, dictionary)

    def find(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        corners, ids, _, _ = cv2.aruco.CharucoDetector(self.board).detectBoard(gray)
        if ids is None or len(ids) < MIN_CHARUCO_CORNERS:
            return None
        objects = self.board.getChessboardCorners()[ids.ravel()].astype(np.float32)
        return objects, corners.reshape(-1, 2)


def _size(text: str, message: str) -> tuple[int, int]:
    try:
        columns, rows = (int(n) for n in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{message}, got {text!r}") from None
    return columns, rows


@dataclasses.dataclass(frozen=True)
class ImageFit:
    """One image: its RMS reprojection error (px) when used, else why it was left out."""

    path: Path
    error_px: float | None = None
    rejected: str = ""


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    camera: CameraCalibration  # rotation and translation zero: the extrinsics come from elsewhere
    rms_px: float
    sigma: np.ndarray  # standard deviations of fx, fy, cx, cy (px), from the fit's covariance
    images: list[ImageFit]


def read_gray(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: not an image OpenCV can read")
    return image


def calibrate_intrinsics(name: str, paths: Sequence[Path], board: Board | CharucoBoard) -> Intrinsics:
    """Camera ``name``'s intrinsics from the board images ``paths``; ValueError naming the camera when too
    few images are usable (each one's reason listed) or the geometry does not pin the focal length."""
    found: dict[Path, tuple[np.ndarray, np.ndarray]] = {}
    images: dict[Path, ImageFit] = {}
    size = None
    for path in paths:
        gray = read_gray(path)
        shape = (gray.shape[1], gray.shape[0])
        size = size or shape
        corners = board.find(gray) if shape == size else None
        if shape != size:
            images[path] = ImageFit(
                path, rejected=f"{shape[0]}x{shape[1]} px, not {size[0]}x{size[1]} as the first"
            )
        elif corners is None:
            images[path] = ImageFit(path, rejected=f"no {board.name} found")
        else:
            found[path] = corners
    while True:
        _enough(name, found, images)
        rms, matrix, distortions, sigma, per_image, normals = _fit(found, size)
        errors = dict(zip(found, per_image, strict=True))
        worst = max(errors, key=errors.get)
        limit = max(OUTLIER_RATIO * float(np.median(list(errors.values()))), OUTLIER_FLOOR_PX)
        if errors[worst] <= limit or len(found) == MIN_IMAGES:
            break
        images[worst] = ImageFit(path=worst, rejected=f"reprojection error {errors[worst]:.2f} px, over "
                                 f"{limit:.2f} px ({OUTLIER_RATIO:g} x the median image's)")  # fmt: skip
        del found[worst]
    tilts = np.degrees(np.arccos(np.clip(normals @ normals.T, -1.0, 1.0)))
    if tilts.max() < MIN_TILT_SPREAD_DEG:
        raise ValueError(f"camera {name!r}: the boards all face one way (within {tilts.max():.1f}°), which leaves "
                         "the focal length undetermined: tilt the board towards and away from the camera")  # fmt: skip
    spread = sigma[:2] / np.diag(matrix)[:2]
    if (spread > MAX_FOCAL_SPREAD).any() or not np.isfinite(spread).all():
        raise ValueError(f"camera {name!r}: the board's poses do not pin the focal length (±{spread.max():.1%}): "
                         "vary the board's tilt and distance, and cover the image")  # fmt: skip
    images.update({path: ImageFit(path, float(error)) for path, error in errors.items()})
    camera = CameraCalibration(name, size, matrix, distortions, np.zeros(3), np.zeros(3))
    return Intrinsics(camera, rms, sigma, [images[path] for path in paths])


def _enough(name: str, found: dict, images: dict) -> None:
    if len(found) < MIN_IMAGES:
        why = "; ".join(f"{fit.path.name}: {fit.rejected}" for fit in images.values())
        raise ValueError(f"camera {name!r}: {len(found)} usable board image(s), at least {MIN_IMAGES} needed"
                         + (f" ({why})" if why else ""))  # fmt: skip


def _fit(found: dict[Path, tuple[np.ndarray, np.ndarray]], size: tuple[int, int]):
    """RMS error (px), K, the distortions (4,), the standard deviations of fx, fy, cx, cy, each image's RMS
    error and each board's normal in the camera frame (n, 3)."""
    objects = [points for points, _ in found.values()]
    pixels = [corners.astype(np.float32) for _, corners in found.values()]
    rms, matrix, dist, rvecs, _, sigma, _, errors = cv2.calibrateCameraExtended(
        objects, pixels, size, None, None, flags=_FLAGS
    )
    normals = np.array([cv2.Rodrigues(rvec)[0][:, 2] for rvec in rvecs])
    return float(rms), matrix, dist.ravel()[:4], sigma.ravel()[:4], errors.ravel(), normals
