"""Exact image geometry between a camera frame and a model's input, and back.

Every preprocessing step here is an axis-aligned scale and offset, so one ``Transform`` (input = image *
scale + offset, per axis) describes it and its inverse maps keypoints back to image pixels exactly. Pixel
coordinates have pixel centres at integers (pixel i covers [i - 0.5, i + 0.5]). OpenCV's ``resize``
samples with that convention, mapping x to (x + 0.5) s - 0.5 for a scale s, which the letterbox offset
includes; ``warpAffine`` maps coordinates directly by its matrix, which the crop uses as it is.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class Transform:
    """input_xy = image_xy * scale + offset (per axis x, y)."""

    scale: tuple[float, float]
    offset: tuple[float, float]

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        return np.asarray(xy, dtype=np.float64) * self.scale + self.offset

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        return (np.asarray(xy, dtype=np.float64) - self.offset) / self.scale


def letterbox(image: np.ndarray, size: tuple[int, int], pad_value: int | tuple = 0,
              align: str = "centre") -> tuple[np.ndarray, Transform]:  # fmt: skip
    """Resize ``image`` (H, W, C) to fit ``size`` (width, height) keeping its aspect, and pad the rest
    with ``pad_value``: centred (``align="centre"``, as MoveNet expects) or at the bottom/right
    (``"top_left"``, as RTMDet's mmdeploy export expects). Returns the input image and its Transform."""
    height, width = image.shape[:2]
    target_w, target_h = size
    ratio = min(target_w / width, target_h / height)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if align == "centre":
        left, top = (target_w - new_w) // 2, (target_h - new_h) // 2
    elif align == "top_left":
        left, top = 0, 0
    else:
        raise ValueError(f"align must be 'centre' or 'top_left', got {align!r}")
    out = np.empty((target_h, target_w, image.shape[2]), dtype=image.dtype)
    out[...] = pad_value
    out[top : top + new_h, left : left + new_w] = resized
    sx, sy = new_w / width, new_h / height
    return out, Transform((sx, sy), (left + 0.5 * sx - 0.5, top + 0.5 * sy - 0.5))


def crop(image: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int],
         padding: float = 1.25, pad_value: int | tuple = 0) -> tuple[np.ndarray, Transform]:  # fmt: skip
    """The region around ``box`` (x1, y1, x2, y2, image pixels), enlarged by ``padding`` and widened to the
    aspect of ``size`` (width, height), resampled to ``size`` — the top-down crop of RTMPose-style
    models. Parts outside the image are ``pad_value``."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = (x2 - x1) * padding, (y2 - y1) * padding
    aspect = size[0] / size[1]
    w, h = (h * aspect, h) if w < h * aspect else (w, w / aspect)
    scale = (size[0] / w, size[1] / h)
    offset = (size[0] / 2 - cx * scale[0], size[1] / 2 - cy * scale[1])
    matrix = np.array([[scale[0], 0.0, offset[0]], [0.0, scale[1], offset[1]]])
    out = cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=pad_value)  # fmt: skip
    return out, Transform(scale, offset)
