"""A calibrated camera's pose in the world (its extrinsics) from points whose world positions are known: points
of the scene measured by hand (as Pose2Sim's scene calibration takes them, clicked in each camera's image),
or the corners of a board lying in the scene (the world is then the board's frame).

The pose is the perspective-n-point solution: SQPnP (G. Terzakis, M. Lourakis, "A consistently fast and
globally optimal solution to the perspective-n-point problem", ECCV 2020; ``cv2.SOLVEPNP_SQPNP``, any
three or more points, planar or not) inside RANSAC (M. A. Fischler, R. C. Bolles, Commun. ACM 24(6), 1981;
``cv2.solvePnPRansac``), so that a point mistyped or clicked on the wrong mark is left out: a point more
than ``OUTLIER_PX`` from where the pose of the others puts it; then Levenberg-Marquardt on the reprojection
error of the points that agree (``cv2.solvePnPRefineLM``). Refused: fewer than ``MIN_POINTS`` points seen,
points on one line (the pose turns freely about it), or a solution with the points behind the camera.

Scene points file (TOML)::

    points = [[-2.0, 0.3, 0.0], [-2.0, 0.0, 0.0], ...]   # world positions, metres
    [pixels]                                            # per camera, the same points in its image (px)
    cam01 = [[327.0, 962.0], [226.0, 969.0], ...]       # nan, nan where the camera does not see one
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from pathlib import Path

import cv2
import numpy as np

from kinefuse.camera_calibration import CameraCalibration, depth, focal_lengths, project, undistort_pixels

MIN_POINTS = 4  # SQPnP needs 3; a fourth checks them
OUTLIER_PX = 8.0  # a hand-clicked mark is off by a pixel or two; a wrong one by far more
RANSAC_ITERATIONS = 500  # 8 points with one wrong: a good 4-point sample in half the draws
COLLINEAR = 1e-3  # second over first singular value of the centred points


@dataclasses.dataclass(frozen=True)
class ScenePoints:
    points: np.ndarray  # (n, 3) m, world
    pixels: dict[str, np.ndarray]  # camera name -> (n, 2) px, NaN where not seen


@dataclasses.dataclass(frozen=True)
class Extrinsics:
    camera: CameraCalibration  # the intrinsics given, with the pose found
    rms_px: float  # over the points used
    points_used: int
    errors_px: np.ndarray  # (n,) each point's reprojection error, NaN where not seen
    rejected: list[str]  # "point 3: 14.2 px, over 6.0 px" for each point left out


def read_scene_points(path: str | Path) -> ScenePoints:
    """The scene points file above; ValueError naming the file and the key."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"points", "pixels"}
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)} (expected points and [pixels])")
    points = _array(path, "points", doc.get("points"), 3)
    if not np.isfinite(points).all():
        raise ValueError(f"{path}: points: every world position must be finite")
    pixels = doc.get("pixels")
    if not isinstance(pixels, dict) or not pixels:
        raise ValueError(f"{path}: no [pixels] table with a camera's image points")
    seen = {name: _array(path, f"pixels.{name}", value, 2) for name, value in pixels.items()}
    for name, value in seen.items():
        if len(value) != len(points):
            raise ValueError(f"{path}: pixels.{name}: {len(value)} points, but points has {len(points)}")
    return ScenePoints(points, seen)


def _array(path: Path, key: str, value: object, columns: int) -> np.ndarray:
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.empty(0)
    if value is None or array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(f"{path}: {key}: expected a list of [{', '.join('xyz'[:columns])}], got {value!r}")
    return array


def solve_extrinsics(camera: CameraCalibration, points: np.ndarray, pixels: np.ndarray) -> Extrinsics:
    """``camera`` (its intrinsics) posed so that the world ``points`` (n, 3) fall on ``pixels`` (n, 2; NaN
    where not seen); ValueError naming the camera when the points cannot fix the pose."""
    seen = np.isfinite(pixels).all(axis=1)
    where = f"camera {camera.name!r}"
    if seen.sum() < MIN_POINTS:
        raise ValueError(f"{where}: sees {seen.sum()} of the points, at least {MIN_POINTS} needed")
    spread = np.linalg.svd(points[seen] - points[seen].mean(axis=0), compute_uv=False)
    if spread[1] <= COLLINEAR * spread[0]:
        raise ValueError(f"{where}: the points it sees lie on one line: the camera could turn about it")
    posed, inliers = _solve(camera, points[seen], pixels[seen])
    errors = np.linalg.norm(project(posed, points) - pixels, axis=1)  # NaN where not seen
    rejected = [f"point {index + 1}: {errors[index]:.1f} px, over {OUTLIER_PX:g} px"
                for index in np.flatnonzero(seen)[~inliers]]  # fmt: skip
    seen[np.flatnonzero(seen)[~inliers]] = False
    if (depth(posed, points[seen]) <= 0).any():
        raise ValueError(f"{where}: no pose puts the points in front of the camera: are the pixels in the "
                         "points' order?")  # fmt: skip
    rms = math.sqrt(float(np.mean(errors[seen] ** 2)))
    return Extrinsics(posed, rms, int(seen.sum()), errors, rejected)


def _solve(camera: CameraCalibration, points: np.ndarray, pixels: np.ndarray):
    """The posed camera and which points agree with it (bool), by RANSAC over SQPnP then Levenberg-Marquardt
    on the points that agree; ValueError when fewer than ``MIN_POINTS`` do."""
    # in normalised coordinates (the lens undone, fisheye or not), so the solver needs no lens model
    objects, images = points.reshape(-1, 1, 3), undistort_pixels(camera, pixels).reshape(-1, 1, 2)
    identity = np.eye(3)
    threshold = OUTLIER_PX / float(focal_lengths([camera])[0])
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        objects, images, identity, None, iterationsCount=RANSAC_ITERATIONS, reprojectionError=threshold,
        confidence=0.999, flags=cv2.SOLVEPNP_SQPNP,
    )  # fmt: skip
    agree = np.zeros(len(points), bool)
    if ok and inliers is not None:
        agree[inliers.ravel()] = True
    if agree.sum() < MIN_POINTS:
        raise ValueError(f"camera {camera.name!r}: no pose puts {MIN_POINTS} of the points within {OUTLIER_PX:g} px "
                         "of their pixels: check the points' order and units")  # fmt: skip
    rvec, tvec = cv2.solvePnPRefineLM(objects[agree], images[agree], identity, None, rvec, tvec)
    return dataclasses.replace(camera, rotation=rvec.ravel(), translation=tvec.ravel()), agree
