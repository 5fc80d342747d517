"""Pose2Sim (perfanalytics, BSD-3-Clause; D. Pagnon et al., "Pose2Sim: an open-source Python package for
multiview markerless kinematics", JOSS 7(77), 2022) as a bench peer: its own confidence-weighted DLT,
``Pose2Sim.common.weighted_triangulation``, imported from the installed package: the Makefile installs it
with the bench extra, without its declared requirements (they include OpenSim's Python package, which PyPI
does not carry; the extra lists what importing it needs). Never imported by the daemon.

Driven as Pose2Sim's triangulation step drives it: per camera P = K [R | t] (``computeP``), the pixels
undistorted onto K first (its ``undistort_points`` option: ``cv2.undistortPoints(..., P=K)``), then one call
per point with the views that see it and their confidences."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import cv2
import numpy as np

from kinefuse.camera_calibration import CameraCalibration

VERSION = "0.10.49"
NAME = f"Pose2Sim {VERSION} weighted_triangulation"
BEST_NAME = f"Pose2Sim {VERSION} triangulation_from_best_cameras"


def weighted_triangulation():
    """Pose2Sim's function, or None when Pose2Sim is not installed (``make build`` installs it)."""
    return _imported("Pose2Sim.common", "weighted_triangulation")


def best_cameras():
    """Pose2Sim's ``triangulation_from_best_cameras`` (its triangulation step's camera selection), or None."""
    return _imported("Pose2Sim.triangulation", "triangulation_from_best_cameras")


def _imported(module: str, name: str):
    """``module.name``, or None when Pose2Sim is not installed. Importing Pose2Sim sets numpy's print options
    for the whole process; they are put back."""
    options = np.get_printoptions()
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        return None
    finally:
        np.set_printoptions(**options)


def triangulate_best(cams: Sequence[CameraCalibration], pixels: np.ndarray, weights: np.ndarray, function,
                     max_error_px: float) -> np.ndarray:  # fmt: skip
    """World points (..., 3) through Pose2Sim's best-camera selection (``function``, from ``best_cameras``):
    per point, while the mean reprojection error exceeds ``max_error_px`` (its
    ``reproj_error_threshold_triangulation``), every subset with one more camera left out is tried and the
    best kept, down to two cameras; left/right swaps not handled (none here)."""
    flat, w, matrices = _pose2sim_inputs(cams, pixels, weights)
    config = {"triangulation": {"reproj_error_threshold_triangulation": max_error_px,
                                "min_cameras_for_triangulation": 2, "handle_LR_swap": False,
                                "undistort_points": False}}  # fmt: skip
    out = np.full((flat.shape[1], 3), np.nan)
    for point in range(flat.shape[1]):
        coords = (
            flat[:, point, 0],
            flat[:, point, 1],
            np.where(np.isfinite(flat[:, point, 0]), w[:, point], 0.0),
        )
        out[point] = np.asarray(function(config, coords, coords, matrices, None)[0], dtype=np.float64)[:3]
    return out.reshape(*pixels.shape[1:-1], 3)


def triangulate(
    cams: Sequence[CameraCalibration], pixels: np.ndarray, weights: np.ndarray, function
) -> np.ndarray:
    """World points (..., 3) from ``pixels`` (ncam, ..., 2) weighted by ``weights`` (ncam, ...) through
    Pose2Sim's ``function``; NaN where fewer than two views see a point."""
    flat, w, matrices = _pose2sim_inputs(cams, pixels, weights)
    out = np.full((flat.shape[1], 3), np.nan)
    for point in range(flat.shape[1]):
        seen = [c for c in range(len(cams)) if np.isfinite(flat[c, point]).all() and w[c, point] > 0]
        if len(seen) >= 2:
            q = function([matrices[c] for c in seen], [flat[c, point, 0] for c in seen],
                         [flat[c, point, 1] for c in seen], [w[c, point] for c in seen])  # fmt: skip
            out[point] = q[:3]
    return out.reshape(*pixels.shape[1:-1], 3)


def _pose2sim_inputs(cams: Sequence[CameraCalibration], pixels: np.ndarray, weights: np.ndarray):
    """As Pose2Sim's triangulation takes them: the pixels undistorted onto K (ncam, n, 2), the weights
    (ncam, n) and each camera's P = K [R | t]."""
    ncam = len(cams)
    flat = np.stack([_undistorted(cam, view) for cam, view in zip(cams, pixels, strict=True)]).reshape(
        ncam, -1, 2
    )
    matrices = [cam.matrix @ np.hstack([cam.rotation_matrix, cam.translation[:, None]]) for cam in cams]
    return flat, np.asarray(weights, dtype=np.float64).reshape(ncam, -1), matrices


def _undistorted(cam: CameraCalibration, pixels: np.ndarray) -> np.ndarray:
    if not cam.distortions.any():
        return pixels
    flat = np.ascontiguousarray(pixels.reshape(-1, 1, 2))
    return cv2.undistortPoints(flat, cam.matrix, cam.distortions, P=cam.matrix).reshape(pixels.shape)
