"""Camera calibrations in Pose2Sim's TOML format, and the geometry on them: projection with lens
distortion, depth, undistortion and multi-view triangulation.

File format (Pose2Sim ``calibration.py`` ``toml_write`` and ``common.py`` ``retrieve_calib_params``): one
table per camera with ``name``, ``size``, ``matrix``, ``distortions``, ``rotation``, ``translation``,
``fisheye``, then a ``[metadata]`` table with ``adjusted`` and ``error``. ``rotation`` (Rodrigues vector)
and ``translation`` (metres) map world to camera, x_cam = R x_world + t, as cv2.projectPoints takes them.

``size`` is [width, height]. Pose2Sim writes ``S.append([w, h])`` from ``h, w = img.shape[:-1]`` and hands
it to cv2.getOptimalNewCameraMatrix, whose imageSize is (width, height); its docstring's "(h,w)" is wrong.
Checked on ../shared/data/pose2sim_demo: Calib_scene.toml says [1088.0, 1920.0] for every camera; the
intrinsic and extrinsic images it was computed from are 1088 wide x 1920 high (portrait), the principal
points sit near (550, 930), mid-width and mid-height of such an image, and cam03/cam04.mp4 decode as
1088 x 1920 (cam01/cam02.mp4 as 1080 x 1920, 8 columns narrower, still portrait: the order holds).
Sports2D's Calib_demo.toml says [1768, 994], and its demo.mp4 decodes as 1768 x 994 (landscape).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from kinefuse._native import triangulation

# Tables in a Pose2Sim calibration file that are not cameras (retrieve_calib_params skips these too).
_NOT_CAMERAS = ("metadata", "capture_volume", "charuco", "checkerboard")
_DEFAULT_METADATA = {"adjusted": False, "error": 0.0}
# cv2.undistortPoints stops after 5 iterations by default, leaving ~1e-5 of normalised error (~30 um at
# 3 m) with Pose2Sim's demo lenses; iterating to convergence makes undistortion exact to rounding.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclasses.dataclass(frozen=True, eq=False)
class CameraCalibration:
    """One camera as Pose2Sim describes it. Arrays are float64 and read-only."""

    name: str
    size: tuple[float, float]  # width, height in pixels (ints stay ints, so files round-trip exactly)
    matrix: np.ndarray  # (3, 3) intrinsics K
    distortions: np.ndarray  # (4,) k1 k2 p1 p2 or (5,) with k3; with fisheye: (4,) k1..k4
    rotation: np.ndarray  # (3,) Rodrigues vector, world to camera
    translation: np.ndarray  # (3,) metres, world to camera
    fisheye: bool = False

    def __post_init__(self) -> None:
        try:
            if len(self.size) != 2:
                raise ValueError(f"must be [width, height], got {self.size!r}")
            object.__setattr__(self, "size", tuple(_number(v) for v in self.size))
        except (TypeError, ValueError) as e:
            raise ValueError(f"camera {self.name!r}: size {e}") from None
        for field, shapes in _SHAPES.items():
            value = np.array(getattr(self, field), dtype=np.float64)
            if value.shape not in shapes:
                raise ValueError(
                    f"camera {self.name!r}: {field} must have shape {_alternatives(shapes)}, got {value.shape}"
                )
            if not np.isfinite(value).all():
                raise ValueError(f"camera {self.name!r}: {field} has non-finite values")
            value.flags.writeable = False
            object.__setattr__(self, field, value)
        if self.fisheye and self.distortions.shape != (4,):
            raise ValueError(f"camera {self.name!r}: the fisheye model takes exactly 4 distortions k1..k4")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CameraCalibration):
            return NotImplemented
        return (self.name, self.size, self.fisheye) == (other.name, other.size, other.fisheye) and all(
            np.array_equal(getattr(self, f), getattr(other, f)) for f in _SHAPES
        )

    __hash__ = None  # equality compares arrays, which do not hash

    # cached (the fields are read-only): the motion stream asks for them for every item it triangulates
    @functools.cached_property
    def rotation_matrix(self) -> np.ndarray:
        matrix = cv2.Rodrigues(self.rotation)[0]
        matrix.flags.writeable = False
        return matrix

    @functools.cached_property
    def focal_length(self) -> float:
        """The mean of fx and fy (px): how many pixels one unit of normalised coordinates is."""
        return float(np.mean(np.diag(self.matrix)[:2]))

    @functools.cached_property
    def centre(self) -> np.ndarray:
        """The camera centre in world coordinates, -R^T t."""
        centre = -self.rotation_matrix.T @ self.translation
        centre.flags.writeable = False
        return centre


_SHAPES = {
    "matrix": ((3, 3),),
    "distortions": ((4,), (5,)),
    "rotation": ((3,),),
    "translation": ((3,),),
}


def _alternatives(shapes: tuple[tuple[int, ...], ...]) -> str:
    return " or ".join(str(s) for s in shapes)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"expected a number, got {value!r}")
    return int(value) if isinstance(value, int | np.integer) else float(value)


# ---- reading and writing ---------------------------------------------------------------------------------


def read_calibration(path: str | Path) -> list[CameraCalibration]:
    """The cameras of a Pose2Sim calibration file, in file order."""
    path = Path(path)
    with path.open("rb") as f:
        try:
            doc = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
    tables = [key for key, value in doc.items() if key not in _NOT_CAMERAS and isinstance(value, dict)]
    if not tables:
        raise ValueError(f"{path}: no camera tables")
    return [_read_camera(path, key, doc[key]) for key in tables]


def _read_camera(path: Path, key: str, table: dict) -> CameraCalibration:
    def get(name: str, check):
        if name not in table:
            raise ValueError(f"{path}: [{key}]: missing key {name!r}")
        try:
            return check(table[name])
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: [{key}] {name}: {e}") from None

    def array(shapes):
        def check(value):
            try:
                arr = np.array(value, dtype=np.float64)
            except (ValueError, TypeError):
                raise ValueError(
                    f"expected numbers of shape {_alternatives(shapes)}, got {value!r}"
                ) from None
            if arr.shape not in shapes:
                raise ValueError(f"expected shape {_alternatives(shapes)}, got {arr.shape}")
            if not np.isfinite(arr).all():
                raise ValueError(f"expected finite numbers, got {value!r}")
            return arr

        return check

    def string(value):
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value

    def boolean(value):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value

    def size(value):
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError(f"expected [width, height], got {value!r}")
        return tuple(_number(v) for v in value)

    fields = {name: get(name, array(shapes)) for name, shapes in _SHAPES.items()}
    fields.update(name=get("name", string), size=get("size", size))
    fisheye = get("fisheye", boolean) if "fisheye" in table else False  # older files have no fisheye key
    try:
        return CameraCalibration(fisheye=fisheye, **fields)
    except ValueError as e:  # what only the keys together can get wrong: fisheye with 5 distortions
        raise ValueError(f"{path}: [{key}]: {e}") from None


def write_calibration(
    path: str | Path, cameras: Sequence[CameraCalibration], metadata: dict | None = None,
    keys: Sequence[str] | None = None,
) -> None:  # fmt: skip
    """Write ``cameras`` the way Pose2Sim's toml_write lays them out, so Pose2Sim reads the file and the same
    cameras always give the same bytes (floats as Python's shortest round-tripping repr). Each camera's table
    is keyed by its name, or by ``keys`` (anipose keys them ``cam_0``, ``cam_1``...)."""
    keys = [cam.name for cam in cameras] if keys is None else list(keys)
    if len(keys) != len(cameras) or len(set(keys)) != len(keys) or set(keys) & set(_NOT_CAMERAS):
        raise ValueError(f"camera tables must be unique and not one of {_NOT_CAMERAS}: {keys}")
    meta = _DEFAULT_METADATA | (metadata or {})
    text = "".join(_camera_table(key, cam) for key, cam in zip(keys, cameras, strict=True))
    text += "[metadata]\n" + "".join(f"{_key(key)} = {_value(value)}\n" for key, value in meta.items())
    Path(path).write_text(text, encoding="utf-8", newline="\n")


def _camera_table(key: str, cam: CameraCalibration) -> str:
    matrix = ", ".join(_value(row) for row in cam.matrix)
    return (
        f"[{_key(key)}]\n"
        f"name = {_string(cam.name)}\n"
        f"size = {_value(cam.size)}\n"
        f"matrix = [ {matrix}]\n"
        f"distortions = {_value(cam.distortions)}\n"
        f"rotation = {_value(cam.rotation)}\n"
        f"translation = {_value(cam.translation)}\n"
        f"fisheye = {_value(cam.fisheye)}\n\n"
    )


def _value(value: object) -> str:
    """A TOML value in Pose2Sim's spelling: ``[ a, b]`` arrays, repr floats, lowercase booleans."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return repr(int(value))
    if isinstance(value, float | np.floating):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite number {value!r}")
        return repr(float(value))
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Sequence | np.ndarray):
        return "[ " + ", ".join(_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {value!r} to a calibration file")


def _string(text: str) -> str:
    """A TOML basic string: escape what TOML 1.0 forbids raw (quote, backslash, control characters)."""
    escaped = "".join(
        f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in text
    )
    return f'"{escaped}"'


def _key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else _string(name)


# ---- in a camera's device meta --------------------------------------------------------------------------
# A camera source declares its calibration as ``meta["calibration"]`` of its DeviceInfo, JSON: Pose2Sim's
# camera keys without the name (the device's): ``size`` [w, h] px, ``matrix`` 3x3, ``distortions``,
# ``rotation`` (Rodrigues, world to camera), ``translation`` (m, world to camera), ``fisheye``. The motion
# processor triangulates the cameras that declare one (docs/fusion.md, "IMU + video fusion in the stream").

_META_KEYS = ("size", "matrix", "distortions", "rotation", "translation")


def calibration_meta(cam: CameraCalibration) -> dict:
    """A camera's calibration as its device meta carries it (JSON), the shape above."""
    return {"size": list(cam.size), "matrix": cam.matrix.tolist(), "distortions": cam.distortions.tolist(),
            "rotation": cam.rotation.tolist(), "translation": cam.translation.tolist(),
            "fisheye": bool(cam.fisheye)}  # fmt: skip


def calibration_from_meta(name: str, meta: dict) -> CameraCalibration | None:
    """The calibration in a camera's device meta (``calibration_meta``'s shape), None when it has none; a
    malformed one raises ValueError."""
    table = meta.get("calibration")
    if table is None:
        return None
    missing = [key for key in _META_KEYS if key not in table]
    if missing:
        raise ValueError(f"camera {name}: calibration lacks {', '.join(missing)}")
    return CameraCalibration(name, tuple(table["size"]), *(table[k] for k in _META_KEYS[1:]),
                             fisheye=bool(table.get("fisheye", False)))  # fmt: skip


# ---- geometry --------------------------------------------------------------------------------------------


def depth(cam: CameraCalibration, points: np.ndarray) -> np.ndarray:
    """Camera-frame z (metres along the optical axis) of world points (..., 3); positive in front."""
    points = np.asarray(points, dtype=np.float64)
    return points @ cam.rotation_matrix[2] + cam.translation[2]


def project(cam: CameraCalibration, points: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) of world points (..., 3), lens distortion included.

    Points on or behind the camera plane (depth <= 0) give NaN: the pinhole model would mirror them into
    the image, a pixel no real camera records.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., 3), got {points.shape}")
    flat = np.ascontiguousarray(points.reshape(-1, 1, 3))
    if not len(flat):
        return np.empty((*points.shape[:-1], 2))
    projector = cv2.fisheye.projectPoints if cam.fisheye else cv2.projectPoints
    pixels = projector(flat, cam.rotation, cam.translation, cam.matrix, cam.distortions)[0]
    pixels = pixels.reshape(*points.shape[:-1], 2)
    pixels[~(depth(cam, points) > 0)] = np.nan
    return pixels


def undistort_pixels(cam: CameraCalibration, pixels: np.ndarray) -> np.ndarray:
    """Normalised image coordinates (x/z, y/z in the camera frame) of pixels (..., 2); NaN stays NaN."""
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.shape[-1] != 2:
        raise ValueError(f"pixels must have shape (..., 2), got {pixels.shape}")
    if not cam.fisheye and not cam.distortions.any():  # a pinhole: K^-1 x exactly, no iterative solver
        k = cam.matrix
        y = (pixels[..., 1] - k[1, 2]) / k[1, 1]
        return np.stack([(pixels[..., 0] - k[0, 2] - k[0, 1] * y) / k[0, 0], y], axis=-1)
    # cv2.fisheye.undistortPoints misreads strided views (garbage for all but the first point): copy
    flat = np.ascontiguousarray(pixels.reshape(-1, 1, 2))
    if not len(flat):
        return np.empty(pixels.shape)
    undistort = cv2.fisheye.undistortPoints if cam.fisheye else cv2.undistortPoints
    normalised = undistort(flat, cam.matrix, cam.distortions, criteria=_UNDISTORT_CRITERIA).reshape(
        pixels.shape
    )
    normalised[~np.isfinite(pixels).all(axis=-1)] = np.nan  # the fisheye solver turns (NaN, y) into (NaN, y')
    return normalised


def triangulate(
    cams: Sequence[CameraCalibration], pixels: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """World points (..., 3) seen at ``pixels`` (ncam, ..., 2) by ``cams``, by (weighted) linear DLT.

    Hartley & Zisserman, Multiple View Geometry, 2nd ed., §12.2: each view gives two rows x p3 - p1 and
    y p3 - p2 of A, and X is the right singular vector of A with the smallest singular value
    (``kinefuse._ext.triangulation``, batched over the points). The views
    are undistorted to normalised coordinates first, so P = [R | t] and A is well conditioned (the
    normalisation §4.4 asks for). Each view's row pair is then scaled by its camera's mean focal length, so
    that the rows are in pixels (as P = K [R | t] on pixels gives them) and a pixel counts alike in every
    camera, and by ``weights`` (ncam, ...), e.g. detector confidences as Pose2Sim does, or 1 / a view's
    standard deviation in pixels. A view with NaN pixels or weight 0 is left out; a point seen by fewer
    than two views, or whose solution lies behind a view it used, is NaN.
    """
    flat, w, shape = _views(cams, pixels, weights)
    return triangulation.triangulate(projections(cams), flat, w).reshape(*shape, 3)


@dataclasses.dataclass(frozen=True)
class Triangulation:
    """What ``triangulate_robust`` found: the points (..., 3; m, NaN where none), the views each used
    (ncam, ...; bool) and their RMS reprojection error (...; px, NaN where no point)."""

    points: np.ndarray
    views: np.ndarray
    error_px: np.ndarray


def triangulate_robust(
    cams: Sequence[CameraCalibration], pixels: np.ndarray, weights: np.ndarray | None = None,
    max_error_px: float = 15.0,
) -> Triangulation:  # fmt: skip
    """``triangulate``, leaving out views that disagree: while the largest reprojection error among a point's
    views exceeds ``max_error_px`` and more than two remain, the view whose leaving out gives the others the
    smallest largest error is left out (``kinefuse._ext.triangulation.triangulate_rejecting``). Errors are
    measured in normalised coordinates and scaled by each camera's mean focal length, so near a strongly
    distorted image's edge a pixel is only approximately one."""
    flat, w, shape = _views(cams, pixels, weights)
    points, used, error = triangulation.triangulate_rejecting(
        projections(cams), flat, w, focal_lengths(cams), max_error_px
    )
    return Triangulation(points.reshape(*shape, 3), used.astype(bool).reshape(len(cams), *shape),
                         error.reshape(shape))  # fmt: skip


def _views(cams: Sequence[CameraCalibration], pixels: np.ndarray, weights: np.ndarray | None):
    """The pixels (ncam, ..., 2) undistorted to normalised coordinates (ncam, n, 2), the weights times each
    camera's focal length (ncam, n) and the points' shape (...), checked."""
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.ndim < 2 or pixels.shape[0] != len(cams) or pixels.shape[-1] != 2:
        raise ValueError(f"pixels must have shape ({len(cams)}, ..., 2), got {pixels.shape}")
    shape = pixels.shape[1:-1]
    w = np.ones((len(cams), *shape)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(cams), *shape):
        raise ValueError(f"weights must have shape {(len(cams), *shape)}, got {w.shape}")
    if (w < 0).any():
        raise ValueError("weights must not be negative")
    normalised = np.stack([undistort_pixels(cam, p) for cam, p in zip(cams, pixels, strict=True)])
    flat = np.ascontiguousarray(normalised.reshape(len(cams), -1, 2))
    return flat, np.ascontiguousarray(w.reshape(len(cams), -1) * focal_lengths(cams)[:, None]), shape


def point_sigma(cams: Sequence[CameraCalibration], points: np.ndarray, angular: np.ndarray) -> np.ndarray:
    """Standard deviation per axis (m) of world points (..., 3) triangulated from ``cams``, from each view's
    angular standard deviation ``angular`` (ncam, ...; rad, NaN where the view was not used): a view at depth
    d pins the point across its ray to d a in both directions and not at all along it, so the information is
    sum 1/(d a)^2 (I - r r^T) (Hartley & Zisserman 2004, sec. 5.2.2 and 12.6: the error grows as the rays turn
    parallel); the root mean of the covariance's diagonal, inf where the rays are parallel, NaN for a NaN
    point (``kinefuse._ext.triangulation``)."""
    points = np.asarray(points, dtype=np.float64)
    flat = np.ascontiguousarray(points.reshape(-1, 3))
    centres = np.ascontiguousarray(np.stack([cam.centre for cam in cams]))
    angular = np.ascontiguousarray(np.asarray(angular, dtype=np.float64).reshape(len(cams), -1))
    return triangulation.point_sigma(projections(cams), centres, flat, angular).reshape(points.shape[:-1])


def leave_one_out_residuals(
    cams: Sequence[CameraCalibration], pixels: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Each view's pixels (ncam, ..., 2) minus the projection of the point the other views triangulate
    (``triangulate``, weighted by ``weights``; views of weight 0 or NaN pixels left out): how far each camera
    disagrees with the others, without letting it pull the point towards itself. NaN where the view's pixel
    is NaN or fewer than two other views see the point."""
    pixels = np.asarray(pixels, dtype=np.float64)
    weights = np.ones(pixels.shape[:-1]) if weights is None else np.asarray(weights, dtype=np.float64)
    residuals = np.full(pixels.shape, np.nan)
    for view, cam in enumerate(cams):
        others = [o for o in range(len(cams)) if o != view]
        points = triangulate([cams[o] for o in others], pixels[others], weights[others])
        residuals[view] = pixels[view] - project(cam, points)
    return residuals


def focal_lengths(cams: Sequence[CameraCalibration]) -> np.ndarray:
    """Each camera's mean focal length (ncam,; px): how many pixels one unit of normalised coordinates is."""
    return np.array([cam.focal_length for cam in cams])


def projections(cams: Sequence[CameraCalibration]) -> np.ndarray:
    """The cameras' [R | t] (ncam, 3, 4): each one's projection of world points to normalised coordinates."""
    return np.ascontiguousarray(
        np.stack([np.hstack([c.rotation_matrix, c.translation[:, None]]) for c in cams])
    )
