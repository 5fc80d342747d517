"""Video of the synthetic athlete as a virtual camera films it: shaded capsules on a textured background,
written as an MPEG-4 Part 2 (mp4v) .mp4, so the real decode and pose-model path can be smoke-tested
against known landmarks. Same inputs, same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from kinefuse.camera_calibration import CameraCalibration, depth, project
from kinefuse.sim.detector_model import Capsule

# Limbs drawn when no capsules are given, as (landmark, landmark); those whose landmarks are absent are
# skipped. The COCO skeleton plus the feet.
_STICK_EDGES = (
    ("left_shoulder", "right_shoulder"),
    ("left_hip", "right_hip"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
    ("left_ankle", "left_heel"),
    ("left_heel", "left_toe"),
    ("left_ankle", "left_toe"),
    ("right_ankle", "right_heel"),
    ("right_heel", "right_toe"),
    ("right_ankle", "right_toe"),
    ("nose", "left_eye"),
    ("nose", "right_eye"),
    ("left_eye", "left_ear"),
    ("right_eye", "right_ear"),
)
_STICK_RADIUS_M = 0.04
# BGR, saturated and far from the grey background so figure pixels are easy to tell apart
_COLOURS = {"left": (200, 110, 30), "right": (40, 60, 210), "centre": (60, 170, 70)}
_HIGHLIGHT = 0.45  # the lighter core's share of the width
_SHIFT = 4  # fractional bits for sub-pixel drawing
_ONE = 1 << _SHIFT
_MAX_PIXEL = 1e6


def render_video(
    path: str | Path,
    cam: CameraCalibration,
    landmarks: Mapping[str, np.ndarray],
    frame_times: np.ndarray,
    fps: float,
    capsules: Mapping[str, Capsule] | None = None,
) -> None:
    """Render one frame per entry of ``frame_times`` (landmarks and capsules hold (n, 3) arrays sampled at
    those times) at the calibration's size. An .mp4 has one frame rate, so ``frame_times`` must be evenly
    spaced at 1/fps. Without capsules the figure is a stick figure of the landmarks."""
    times = np.asarray(frame_times, dtype=np.float64)
    if len(times) > 1 and not np.allclose(np.diff(times), 1.0 / fps, rtol=1e-6, atol=1e-9):
        raise ValueError(
            f"frame_times must be evenly spaced at 1/fps = {1.0 / fps} s for a constant-rate video"
        )
    if capsules is None:
        capsules = _stick_capsules(landmarks)
    if not capsules:
        raise ValueError("nothing to draw: no capsules, and no two landmarks a stick figure joins")
    ends = np.stack([np.stack([start, end], axis=-2) for start, end, _ in capsules.values()], axis=1)
    if ends.shape[0] != len(times):
        raise ValueError(f"landmarks and capsules hold {ends.shape[0]} frames, frame_times {len(times)}")
    radii = np.stack([np.broadcast_to(radius, len(times)) for *_, radius in capsules.values()], axis=1)
    colours = [_COLOURS[_side(name)] for name in capsules]
    z, pixels = depth(cam, ends), project(cam, ends)  # (n, capsule, end) and (n, capsule, end, 2)
    width, height = (int(round(v)) for v in cam.size)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write an mp4v video here")
    try:
        background = _background(width, height)
        for i in range(len(times)):
            writer.write(_frame(background, cam.matrix[0, 0], pixels[i], z[i], radii[i], colours))
    finally:
        writer.release()


def _stick_capsules(landmarks: Mapping[str, np.ndarray]) -> dict[str, Capsule]:
    return {
        f"{a}-{b}": (np.asarray(landmarks[a]), np.asarray(landmarks[b]), _STICK_RADIUS_M)
        for a, b in _STICK_EDGES
        if a in landmarks and b in landmarks
    }


def _background(width: int, height: int) -> np.ndarray:
    """Mid grey with a soft fixed-seed texture: pose models and encoders see a surface, not a void."""
    noise = np.random.default_rng(0).normal(0.0, 12.0, (height, width)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), sigmaX=3.0)
    grey = np.clip(128.0 + texture, 0, 255).astype(np.uint8)
    return cv2.merge([grey, grey, grey])


def _frame(
    background: np.ndarray,
    focal_px: float,
    pixels: np.ndarray,
    z: np.ndarray,
    radii: np.ndarray,
    colours: list[tuple[int, int, int]],
) -> np.ndarray:
    """One frame: ``pixels`` (capsule, end, 2) and ``z`` (capsule, end) of each capsule's ends."""
    image = background.copy()
    # painter's algorithm: far capsules first, so nearer ones cover them (stable sort: ties in given order)
    for k in np.argsort(-z.mean(axis=1), kind="stable"):
        # a capsule crossing the camera plane has no sane image (and its pixels would overflow int32)
        if (z[k] > 0).all() and (np.abs(pixels[k]) < _MAX_PIXEL).all():
            _shaded_capsule(image, pixels[k], focal_px * radii[k] / z[k], colours[k])  # pinhole scale per end
    return image


def _shaded_capsule(
    image: np.ndarray, ends: np.ndarray, radii: np.ndarray, colour: tuple[int, int, int]
) -> None:
    """The capsule in its colour with a lighter core along its axis: a lit cylinder, roughly."""
    light = tuple(int(c + (255 - c) * 0.5) for c in colour)
    _filled_capsule(image, ends, radii, colour)
    _filled_capsule(image, ends, radii * _HIGHLIGHT, light)


def _filled_capsule(
    image: np.ndarray, ends: np.ndarray, radii: np.ndarray, colour: tuple[int, int, int]
) -> None:
    """Two end discs joined by the quadrilateral tangent-ish to both (exact when the radii are equal)."""
    (a, b), (ra, rb) = ends, radii
    axis = b - a
    length = np.linalg.norm(axis)
    if length > 0:
        normal = np.array([-axis[1], axis[0]]) / length
        quad = np.array([a + ra * normal, b + rb * normal, b - rb * normal, a - ra * normal])
        cv2.fillConvexPoly(image, np.round(quad * _ONE).astype(np.int32), colour, cv2.LINE_AA, _SHIFT)
    for centre, r in ((a, ra), (b, rb)):
        cv2.circle(image, _fixed(centre), int(round(r * _ONE)), colour, -1, cv2.LINE_AA, _SHIFT)


def _fixed(point: np.ndarray) -> tuple[int, int]:
    return int(round(point[0] * _ONE)), int(round(point[1] * _ONE))


def _side(name: str) -> str:
    if name.startswith("left") and "right" not in name:
        return "left"
    if name.startswith("right") and "left" not in name:
        return "right"
    return "centre"
