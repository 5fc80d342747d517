"""Virtual cameras: placing ideal (or lightly distorted) pinhole cameras around the synthetic athlete.

World frame as the body model's: x forward, y left, z up, metres. Camera frame as OpenCV's: the camera
looks along +z_cam, x_cam to the image's right, y_cam down the image.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from kinefuse.camera_calibration import CameraCalibration

_UP = np.array([0.0, 0.0, 1.0])


def look_at(
    name: str,
    position: Sequence[float],
    target: Sequence[float],
    size: tuple[float, float],
    focal_px: float,
    distortions: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
) -> CameraCalibration:
    """A camera at ``position`` whose optical axis passes through ``target``, with the image's vertical
    in the vertical plane through that axis (no roll), square pixels and the principal point at the image
    centre, ((width - 1) / 2, (height - 1) / 2) in OpenCV's convention of integer coordinates at pixel
    centres. ``size`` is (width, height) as in Pose2Sim files."""
    position = np.asarray(position, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - position
    right = np.cross(forward, _UP)
    if np.linalg.norm(forward) == 0 or np.linalg.norm(right) < 1e-9 * np.linalg.norm(forward):
        raise ValueError(f"camera {name!r}: cannot look straight up or down, or at its own position")
    z_cam = forward / np.linalg.norm(forward)
    x_cam = right / np.linalg.norm(right)
    y_cam = np.cross(z_cam, x_cam)  # right-handed, so it points down
    rotation = np.stack([x_cam, y_cam, z_cam])  # rows: camera axes in world coordinates, world to camera
    width, height = size
    matrix = np.array([[focal_px, 0.0, (width - 1) / 2], [0.0, focal_px, (height - 1) / 2], [0.0, 0.0, 1.0]])
    return CameraCalibration(
        name=name,
        size=size,
        matrix=matrix,
        distortions=np.asarray(distortions, dtype=np.float64),
        rotation=cv2.Rodrigues(rotation)[0].ravel(),
        translation=-rotation @ position,
    )


def ring(
    count: int,
    radius_m: float,
    height_m: float,
    target: Sequence[float],
    size: tuple[float, float],
    focal_px: float,
    start_deg: float = 0.0,
) -> list[CameraCalibration]:
    """``count`` cameras ``cam01``, ``cam02``, ... evenly spaced on a horizontal circle around ``target``,
    all looking at it; the first at azimuth ``start_deg`` (0: on the +x side, in front of an athlete facing
    +x), counting anticlockwise seen from above."""
    target = np.asarray(target, dtype=np.float64)
    cameras = []
    for i in range(count):
        azimuth = np.radians(start_deg + 360.0 * i / count)
        offset = radius_m * np.array([np.cos(azimuth), np.sin(azimuth), 0.0])
        position = np.array([target[0], target[1], height_m]) + offset
        cameras.append(look_at(f"cam{i + 1:02d}", position, target, size, focal_px))
    return cameras
