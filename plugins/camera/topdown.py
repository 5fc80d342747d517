"""Multi-person top-down pose: a person detector finds people, the keypoint model runs on a crop around
each (image_geometry.crop), and the keypoints are mapped back to image pixels. A small athlete in
a large frame gets the model's whole input instead of a few pixels of it.

The detector costs more than the keypoint model, and from one frame to the next a tracked athlete moves by
a few pixels, so ``TopDown.track`` runs it only when tracking needs it (``Schedule``): on the first frame,
every ``every`` frames, and whenever the athlete is not seen. In between, the crop is the box around the
athlete's keypoints in the previous frame (``keypoint_box``: the confident keypoints, widened about as far
as the detector's boxes reach past the joints) and the keypoint model runs on it alone. Its answer is kept
only if the athlete is plainly still there, else the detector runs on that same frame and its answer is
used instead: the mean keypoint confidence has not dropped (below ``min_confidence``, or below
``confidence_ratio`` of its mean at the last detection), no confident keypoint comes within ``edge`` of the
crop's border (the athlete is leaving the crop), the keypoints still pair with the athlete's track at a
cost (Tracker.cost, left/right either way) of at most ``max_cost`` (the crop did not jump to someone
else), and the athlete's box overlaps no other tracked person's by more than ``overlap`` (IoU). The same
idea as MediaPipe's pose tracking (a region of interest from the previous frame's landmarks) and
rtmlib's PoseTracker (a detector every ``det_frequency`` frames, boxes from keypoints in between); the
rules and thresholds here are kinefuse's own, measured on the shared videos (docs/pose.md).
"""

from __future__ import annotations

import collections
import dataclasses
import time

import numpy as np

from kinefuse.interfaces import Inference
from kinefuse_plugins.camera.decoders import box_iou
from kinefuse_plugins.camera.image_geometry import crop
from kinefuse_plugins.camera.pose_models import KEYPOINT_COUNTS
from kinefuse_plugins.camera.pose_runtime import PoseModel
from kinefuse_plugins.camera.tracking import Frame, Tracker


@dataclasses.dataclass(frozen=True)
class People:
    """Keypoints (P, K, 3) and their boxes (P, 5: x1, y1, x2, y2, score) in image pixels, best box first."""

    keypoints: np.ndarray
    boxes: np.ndarray
    timings: dict[str, float]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When ``TopDown.track`` runs the person detector (the module's docstring says why each rule)."""

    every: int = 10  # frames from one detection to the next, at most (1: every frame)
    min_confidence: float = 0.3  # the followed athlete's mean keypoint confidence below this: detect
    confidence_ratio: float = 0.6  # ... or below this fraction of its mean at the last detection: detect
    edge: float = 0.04  # a confident keypoint this close to the crop's border (fraction of its side): detect
    max_cost: float = 0.6  # the followed keypoints pair with the athlete's track at a higher cost: detect
    overlap: float = 0.3  # the followed athlete's box overlaps another tracked person's more (IoU): detect
    keypoint_confidence: float = 0.3  # keypoints surer than this make the box around them
    min_keypoints: int = 5  # fewer confident keypoints give no box (detect)
    margin: float = 0.1  # the box reaches this fraction of its longer side past the outermost keypoints

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"every must be at least 1 frame, got {self.every}")


def keypoint_box(keypoints: np.ndarray, confidence: float = 0.3, margin: float = 0.1,
                 min_keypoints: int = 5) -> np.ndarray | None:  # fmt: skip
    """The box (x1, y1, x2, y2, mean confidence) around the keypoints surer than ``confidence``, widened on
    every side by ``margin`` times its longer side; None with fewer than ``min_keypoints`` of them."""
    seen = keypoints[keypoints[:, 2] > confidence, :2]
    if len(seen) < min_keypoints:
        return None
    (x1, y1), (x2, y2) = seen.min(axis=0), seen.max(axis=0)
    pad = margin * max(x2 - x1, y2 - y1)
    return np.array([x1 - pad, y1 - pad, x2 + pad, y2 + pad, float(np.mean(keypoints[:, 2]))])


class TopDown:
    def __init__(self, detector: PoseModel, keypoints: PoseModel, max_people: int = 4, padding: float = 1.25,
                 min_box_score: float = 0.3, schedule: Schedule | None = None):  # fmt: skip
        if detector.spec.kind != "detector":
            raise ValueError(f"{detector.spec.name} is not a person detector")
        self.detector, self.keypoints = detector, keypoints
        self.max_people, self.padding, self.min_box_score = max_people, padding, min_box_score
        self.schedule = schedule or Schedule()
        # what track() did: frames, detector runs (and why), keypoint model runs
        self.frames = self.detections = self.keypoint_runs = 0
        self.reasons: collections.Counter[str] = collections.Counter()
        self._since_detection = 0
        self._reference: float | None = None  # the athlete's mean keypoint confidence at the last detection

    def __call__(self, frame_bgr: np.ndarray) -> People:
        """The detector, then the keypoint model on a crop around each person it found."""
        found = self.detector(frame_bgr)
        boxes = found.result[found.result[:, 4] >= self.min_box_score][: self.max_people]
        timings = {f"detect_{k}": v for k, v in found.timings.items()}
        start = time.perf_counter()
        people = [self._keypoints_in(frame_bgr, box)[0] for box in boxes]
        timings["keypoints"] = time.perf_counter() - start
        count = KEYPOINT_COUNTS[self.keypoints.spec.keypoint_set]
        return People(np.array(people).reshape(len(people), count, 3), boxes, timings)

    def track(self, frame_bgr: np.ndarray, tracker: Tracker) -> Frame:
        """One frame through the detector only when tracking needs it (``Schedule``), else through the
        keypoint model on a crop around the athlete's previous keypoints; ``tracker`` is updated either way."""
        self.frames += 1
        reason = self._detection_due(tracker)
        if reason is None:
            followed = self._follow(frame_bgr, tracker)
            if isinstance(followed, Frame):
                self._since_detection += 1
                return followed
            reason = followed
        self.detections += 1
        self.reasons[reason] += 1
        self._since_detection = 0
        people = self(frame_bgr)
        frame = tracker.update(people.boxes, people.keypoints)
        athlete = frame.athlete
        seen = athlete is not None and not athlete.missed
        self._reference = float(np.mean(athlete.keypoints[:, 2])) if seen else None
        return frame

    def _detection_due(self, tracker: Tracker) -> str | None:
        athlete = tracker.athlete
        if not self.detections:
            return "first frame"
        if athlete is None or athlete.missed:
            return "no athlete seen"
        if self._since_detection + 1 >= self.schedule.every:
            return "every N frames"
        return None

    def _follow(self, frame_bgr: np.ndarray, tracker: Tracker) -> Frame | str:
        """The tracker's frame with the athlete found in the crop around its previous keypoints, or why the
        detector must run instead."""
        s, athlete = self.schedule, tracker.athlete
        assert athlete is not None
        basis = keypoint_box(athlete.keypoints, s.keypoint_confidence, s.margin, s.min_keypoints)
        if basis is None:
            return "too few confident keypoints"
        if self._someone_close(basis, tracker):  # known before the crop runs: the keypoint model is spared
            return "someone close"
        person, window = self._keypoints_in(frame_bgr, basis)
        confidence = float(np.mean(person[:, 2]))
        if confidence < max(s.min_confidence, s.confidence_ratio * (self._reference or 0.0)):
            return "confidence dropped"
        box = keypoint_box(person, s.keypoint_confidence, s.margin, s.min_keypoints)
        if box is None:
            return "confidence dropped"
        seen = person[person[:, 2] > s.keypoint_confidence, :2]
        reach = s.edge * (window[2:] - window[:2])
        if np.any(seen < window[:2] + reach) or np.any(seen > window[2:] - reach):
            return "left the crop"
        mirrored = person[tracker.mirror]  # a left/right swap is no jump: the tracker undoes it
        if (
            tracker.cost(athlete, box, person) > s.max_cost
            and tracker.cost(athlete, box, mirrored) > s.max_cost
        ):
            return "jumped"
        if self._someone_close(box, tracker):
            return "someone close"
        return tracker.follow(box, person)

    def _someone_close(self, box: np.ndarray, tracker: Tracker) -> bool:
        others = [t.box for t in tracker.tracks if t is not tracker.athlete and not t.missed]
        return bool(others) and float(np.max(box_iou(box, np.array(others)))) > self.schedule.overlap

    def _keypoints_in(self, frame_bgr: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The keypoint model on the crop around ``box``: keypoints (K, 3) in image pixels, and the crop's
        window (x1, y1, x2, y2) in image pixels (pixel edges)."""
        spec = self.keypoints.spec
        patch, transform = crop(frame_bgr, tuple(box[:4]), spec.size, self.padding, spec.pad_value)
        self.keypoint_runs += 1
        inference: Inference = self.keypoints(patch)
        person = inference.result[0].copy()
        person[:, :2] = transform.to_image(person[:, :2])
        corners = transform.to_image(np.array([[-0.5, -0.5], [spec.size[0] - 0.5, spec.size[1] - 0.5]]))
        return person, corners.reshape(4)
