"""Triangulation speed: frames/s for 26 joints x 4 views (from pixels, undistortion included) through
``kinefuse.camera_calibration``, with and without leaving out views that disagree, against a vectorised
NumPy DLT (one batched SVD over every point), a per-frame loop of OpenCV's ``triangulatePoints`` and, where
it is installed (``make build`` installs it), Pose2Sim's own weighted DLT per point as its triangulation step calls it
(on a tenth of the frames: it is slow), each on the same frames in the same run. The goal (issue 15):
>= 50,000 frames/s with view rejection on."""

from __future__ import annotations

import time

import cv2
import numpy as np

from kinefuse.bench import make_row, pose2sim_peer
from kinefuse.camera_calibration import (
    CameraCalibration,
    project,
    projections,
    triangulate,
    triangulate_robust,
)
from kinefuse.interfaces import BenchSpec
from kinefuse.sim.camera_rig import ring

JOINTS, CAMERAS = 26, 4
NOISE_PX = 2.0
WRONG_PX, WRONG_SHARE = 80.0, 0.05  # one camera's detection off by this much in this share of the points
MAX_ERROR_PX = 15.0
_CASE = f"{JOINTS} joints x {CAMERAS} views"


def scene(frames: int, seed: int = 0) -> tuple[list[CameraCalibration], np.ndarray, np.ndarray, np.ndarray]:
    """Four cameras in a ring 4 m out (no lens distortion, so every method sees the same pixels), a body's
    worth of points per frame, their pixels with ``NOISE_PX`` of noise and one camera ``WRONG_PX`` off in
    ``WRONG_SHARE`` of them, and confidences 0.6-1 as weights: the cameras, the points (frames, JOINTS, 3),
    the pixels (CAMERAS, frames, JOINTS, 2) and the weights (CAMERAS, frames, JOINTS)."""
    rng = np.random.default_rng(seed)
    cams = ring(CAMERAS, 4.0, 1.2, (0.0, 0.0, 0.9), (1280, 720), 900.0)
    points = rng.uniform([-0.4, -0.4, 0.0], [0.4, 0.4, 1.8], (frames, JOINTS, 3))
    pixels = np.stack([project(cam, points) for cam in cams]) + rng.normal(
        0.0, NOISE_PX, (CAMERAS, frames, JOINTS, 2)
    )
    wrong = rng.random((frames, JOINTS)) < WRONG_SHARE
    angle = rng.uniform(0.0, 2.0 * np.pi, (frames, JOINTS))
    pixels[2][wrong] += WRONG_PX * np.stack([np.cos(angle), np.sin(angle)], axis=-1)[wrong]
    return cams, points, pixels, rng.uniform(0.6, 1.0, (CAMERAS, frames, JOINTS))


def numpy_dlt(cams: list[CameraCalibration], pixels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted DLT in pixels with P = K [R | t], every point's 8 x 4 system solved by one batched
    ``np.linalg.svd`` (the vectorised NumPy way; no lens distortion here)."""
    p = _pixel_projections(cams)
    rows = []
    for v in range(len(cams)):
        w = weights[v][..., None]
        rows += [w * (pixels[v][..., :1] * p[v, 2] - p[v, 0]), w * (pixels[v][..., 1:] * p[v, 2] - p[v, 1])]
    h = np.linalg.svd(np.stack(rows, axis=-2))[2][..., -1, :]
    return h[..., :3] / h[..., 3:]


def _pixel_projections(cams: list[CameraCalibration]) -> np.ndarray:
    """K [R | t] (ncam, 3, 4): the cameras' projections to pixels (no lens distortion here)."""
    return np.stack([cam.matrix for cam in cams]) @ projections(cams)


def opencv_pairs(cams: list[CameraCalibration], pixels: np.ndarray) -> np.ndarray:
    """OpenCV's ``triangulatePoints`` per frame; it takes two views, so cameras 0 and 1 only."""
    p = _pixel_projections(cams[:2])
    out = np.empty((pixels.shape[1], JOINTS, 3))
    for f in range(pixels.shape[1]):
        h = cv2.triangulatePoints(p[0], p[1], pixels[0, f].T, pixels[1, f].T)
        out[f] = (h[:3] / h[3]).T
    return out


def _frames_per_s(method, frames: int, duration_s: float) -> float:
    """Frames/s of ``method()`` over ``frames`` frames: the best of its repeats within ``duration_s`` (at
    least three)."""
    best, spent, repeats = np.inf, 0.0, 0
    while repeats < 3 or spent < duration_s:
        started = time.perf_counter()
        method()
        elapsed = time.perf_counter() - started
        best, spent, repeats = min(best, elapsed), spent + elapsed, repeats + 1
    return frames / best


def _median_mm(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.nanmedian(np.linalg.norm(found - truth, axis=-1)) * 1000.0)


def run(options: dict) -> list[dict]:
    """Options: ``frames`` (default 2,000) and ``duration_s`` (per method, default 2)."""
    frames, duration_s = int(options.get("frames") or 2000), float(options.get("duration_s") or 2.0)
    cams, truth, pixels, weights = scene(frames)
    methods = {
        "robust": lambda: triangulate_robust(cams, pixels, weights, MAX_ERROR_PX).points,
        "plain": lambda: triangulate(cams, pixels, weights),
        "numpy": lambda: numpy_dlt(cams, pixels, weights),
        "opencv": lambda: opencv_pairs(cams, pixels),
    }
    peers = {"numpy": "vectorised NumPy DLT (batched SVD)", "opencv": "OpenCV triangulatePoints per frame"}
    pose2sim = pose2sim_peer.weighted_triangulation()
    if pose2sim is not None:  # per point as its triangulation step calls it: slow, so a tenth of the frames
        few = max(frames // 10, 1)
        methods["pose2sim"] = lambda: pose2sim_peer.triangulate(
            cams, pixels[:, :few], weights[:, :few], pose2sim
        )
        peers["pose2sim"] = f"{pose2sim_peer.NAME} per point"
    sizes = {name: frames for name in methods} | ({"pose2sim": few} if pose2sim is not None else {})
    rates = {name: _frames_per_s(method, sizes[name], duration_s) for name, method in methods.items()}
    error = {name: _median_mm(method(), truth[: sizes[name]]) for name, method in methods.items()}
    data = (f"{frames} frames, {NOISE_PX:g} px noise, camera 2 {WRONG_PX:g} px off in {WRONG_SHARE:.0%} of the "
            f"points, weights 0.6-1; best of repeats over {duration_s:g} s")  # fmt: skip
    rows = []
    for name, title in (("robust", f"leaving out views over {MAX_ERROR_PX:g} px"), ("plain", "weighted DLT")):
        for peer in peers:
            note = f"{data}; median 3D error {error[name]:.1f} mm, the peer's {error[peer]:.1f} mm"
            if peer == "opencv":
                note += " (it takes two views: cameras 0 and 1)"
            if peer == "pose2sim":
                note += f" (on the first {sizes['pose2sim']} frames: its error there)"
            if name == "robust":
                note += "; goal >= 50,000 frames/s"
            rows.append(make_row(f"triangulate {_CASE}", f"frames/s, {title}", "frames/s", rates[name], "higher",
                                 peer=peers[peer], peer_value=rates[peer], note=note))  # fmt: skip
    return rows


SPEC = BenchSpec("triangulate", __doc__.strip(), run)
