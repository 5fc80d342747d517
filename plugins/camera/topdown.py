"""Multi-person top-down pose: a person detector finds people, the keypoint model runs on a crop around
each (image_geometry.crop), and the keypoints are mapped back to image pixels. A small athlete in
a large frame gets the model's whole input instead of a few pixels of it."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from kinefuse.interfaces import Inference
from kinefuse_plugins.camera.image_geometry import crop
from kinefuse_plugins.camera.pose_models import KEYPOINT_COUNTS
from kinefuse_plugins.camera.pose_runtime import PoseModel


@dataclasses.dataclass(frozen=True)
class People:
    """Keypoints (P, K, 3) and their boxes (P, 5: x1, y1, x2, y2, score) in image pixels, best box first."""

    keypoints: np.ndarray
    boxes: np.ndarray
    timings: dict[str, float]


class TopDown:
    def __init__(self, detector: PoseModel, keypoints: PoseModel, max_people: int = 4, padding: float = 1.25,
                 min_box_score: float = 0.3):  # fmt: skip
        if detector.spec.kind != "detector":
            raise ValueError(f"{detector.spec.name} is not a person detector")
        self.detector, self.keypoints = detector, keypoints
        self.max_people, self.padding, self.min_box_score = max_people, padding, min_box_score

    def __call__(self, frame_bgr: np.ndarray) -> People:
        found = self.detector(frame_bgr)
        boxes = found.result[found.result[:, 4] >= self.min_box_score][: self.max_people]
        timings = {f"detect_{k}": v for k, v in found.timings.items()}
        people = []
        start = time.perf_counter()
        for box in boxes:
            patch, transform = crop(frame_bgr, tuple(box[:4]), self.keypoints.spec.size, self.padding,
                                    self.keypoints.spec.pad_value)  # fmt: skip
            inference: Inference = self.keypoints(patch)
            person = inference.result[0].copy()
            person[:, :2] = transform.to_image(person[:, :2])
            people.append(person)
        timings["keypoints"] = time.perf_counter() - start
        count = KEYPOINT_COUNTS[self.keypoints.spec.keypoint_set]
        return People(np.array(people).reshape(len(people), count, 3), boxes, timings)
