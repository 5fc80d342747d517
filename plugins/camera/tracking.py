"""Tracking people across frames, choosing the athlete, and catching left/right swaps.

Association (per frame): the cost of pairing a track with a detection is 1 - IoU of their boxes plus the
mean distance of their confident keypoints over the track box's diagonal; the Hungarian method
(scipy.optimize.linear_sum_assignment) picks the cheapest pairing and a pair costing more than
``max_cost`` is no pair. Unpaired detections start tracks; a track unseen for ``max_missed`` frames ends.
Ids are never reused.

The athlete of interest is a fixed track once chosen: the ``largest`` box, the most ``central`` one, or
the largest whose box centre lies in a configured ``region`` of the image (a treadmill, a platform),
chosen again only when the chosen one ends. With ``region`` and nobody in it, there is no athlete.

A left/right swap (the detector labels the athlete's left as right) shows as the mirrored keypoints
fitting the previous frame much better than the keypoints as labelled: when the mirrored distance is
below ``swap_ratio`` of the direct one, the frame is swapped back and reported.

Between two runs of a person detector the top-down path (topdown.TopDown.track) finds the athlete again in
a crop around its previous keypoints: ``follow`` updates the athlete's track alone (swaps undone the same
way); the other tracks stay as they were, neither seen nor missed, since nobody looked for them.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment

from kinefuse_plugins.camera.decoders import box_iou

# COCO-17 left/right partner of every keypoint (itself for the nose)
COCO17_MIRROR = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])


@dataclasses.dataclass
class Track:
    track_id: int
    box: np.ndarray  # (5,)
    keypoints: np.ndarray  # (K, 3)
    missed: int = 0
    age: int = 0


@dataclasses.dataclass(frozen=True)
class Frame:
    """One frame's outcome: every live track, the athlete's id (None: nobody), and whether the athlete's
    keypoints were swapped back."""

    tracks: list[Track]
    athlete_id: int | None
    swapped: bool

    @property
    def athlete(self) -> Track | None:
        return next((t for t in self.tracks if t.track_id == self.athlete_id), None)


class Tracker:
    def __init__(self, image_size: tuple[int, int], athlete: str = "largest", max_cost: float = 1.2,
                 max_missed: int = 15, swap_ratio: float = 0.5, min_confidence: float = 0.3,
                 mirror: np.ndarray = COCO17_MIRROR, region: tuple[float, ...] = ()):  # fmt: skip
        """``region``: x1, y1, x2, y2 as fractions of the image width and height (rule ``region``)."""
        if athlete not in ("largest", "central", "region"):
            raise ValueError(f"athlete must be 'largest', 'central' or 'region', got {athlete!r}")
        if athlete == "region" and not valid_region(region):
            raise ValueError(f"athlete 'region' needs a region x1, y1, x2, y2 in 0..1 with x1 < x2, y1 < y2, "
                             f"got {list(region)}")  # fmt: skip
        self.size, self.rule = image_size, athlete
        self.region = np.array(region, dtype=np.float64) * np.tile(image_size, 2) if region else None
        self.max_cost, self.max_missed, self.swap_ratio = max_cost, max_missed, swap_ratio
        self.min_confidence, self.mirror = min_confidence, mirror
        self.tracks: list[Track] = []
        self.athlete_id: int | None = None
        self._ids = itertools.count()

    def update(self, boxes: np.ndarray, keypoints: np.ndarray) -> Frame:
        """One frame's detections: boxes (P, 5) and keypoints (P, K, 3), image pixels."""
        pairs = self._associate(boxes, keypoints)
        paired_tracks = {t for t, _ in pairs}
        paired_detections = {d for _, d in pairs}
        swapped = False
        for t, d in pairs:
            track = self.tracks[t]
            people = keypoints[d]
            if track.track_id == self.athlete_id and self._is_swapped(track.keypoints, people):
                people, swapped = people[self.mirror], True
            track.box, track.keypoints, track.missed, track.age = boxes[d], people, 0, track.age + 1
        for t, track in enumerate(self.tracks):
            if t not in paired_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for d in range(len(boxes)):
            if d not in paired_detections:
                self.tracks.append(Track(next(self._ids), boxes[d], keypoints[d]))
        self._choose_athlete()
        return Frame(list(self.tracks), self.athlete_id, swapped)

    @property
    def athlete(self) -> Track | None:
        return next((t for t in self.tracks if t.track_id == self.athlete_id), None)

    def follow(self, box: np.ndarray, keypoints: np.ndarray) -> Frame:
        """The athlete found again without a detector: its box (5,) and keypoints (K, 3), image pixels, from
        a crop around its previous keypoints. Only the athlete's track changes."""
        track = self.athlete
        if track is None:
            raise ValueError("there is no athlete to follow")
        swapped = self._is_swapped(track.keypoints, keypoints)
        if swapped:
            keypoints = keypoints[self.mirror]
        track.box, track.keypoints, track.missed, track.age = box, keypoints, 0, track.age + 1
        return Frame(list(self.tracks), self.athlete_id, swapped)

    def cost(self, track: Track, box: np.ndarray, keypoints: np.ndarray) -> float:
        """What pairing ``track`` with this box (5,) and keypoints (K, 3) costs (see the module's docstring)."""
        return self._cost(track, box, keypoints)

    def _associate(self, boxes, keypoints) -> list[tuple[int, int]]:
        if not self.tracks or not len(boxes):
            return []
        cost = np.array([[self._cost(track, boxes[d], keypoints[d]) for d in range(len(boxes))]
                         for track in self.tracks])  # fmt: skip
        rows, cols = linear_sum_assignment(cost)
        return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if cost[r, c] <= self.max_cost]

    def _cost(self, track: Track, box: np.ndarray, people: np.ndarray) -> float:
        overlap = float(box_iou(track.box, box[None])[0])
        seen = (track.keypoints[:, 2] > self.min_confidence) & (people[:, 2] > self.min_confidence)
        diagonal = float(np.hypot(track.box[2] - track.box[0], track.box[3] - track.box[1])) or 1.0
        distance = float(np.mean(np.linalg.norm(track.keypoints[seen, :2] - people[seen, :2], axis=1))) / diagonal \
            if seen.any() else 0.5  # fmt: skip
        return (1.0 - overlap) + distance

    def _is_swapped(self, previous: np.ndarray, people: np.ndarray) -> bool:
        seen = (previous[:, 2] > self.min_confidence) & (people[:, 2] > self.min_confidence)
        mirrored = people[self.mirror]
        seen_mirrored = (previous[:, 2] > self.min_confidence) & (mirrored[:, 2] > self.min_confidence)
        if seen.sum() < 4 or seen_mirrored.sum() < 4:
            return False
        direct = np.mean(np.linalg.norm(previous[seen, :2] - people[seen, :2], axis=1))
        swapped = np.mean(np.linalg.norm(previous[seen_mirrored, :2] - mirrored[seen_mirrored, :2], axis=1))
        return swapped < self.swap_ratio * direct

    def _choose_athlete(self) -> None:
        if any(t.track_id == self.athlete_id for t in self.tracks) or not self.tracks:
            if not self.tracks:
                self.athlete_id = None
            return
        visible = [t for t in self.tracks if t.missed == 0] or self.tracks
        if self.rule == "region":
            visible = [t for t in visible if self._in_region(t.box)]
            if not visible:
                self.athlete_id = None
                return
        if self.rule in ("largest", "region"):
            best = max(visible, key=lambda t: (t.box[2] - t.box[0]) * (t.box[3] - t.box[1]))
        else:
            centre = np.array(self.size) / 2
            best = min(visible, key=lambda t: np.hypot(*(((t.box[:2] + t.box[2:4]) / 2) - centre)))
        self.athlete_id = best.track_id

    def _in_region(self, box: np.ndarray) -> bool:
        x, y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x1, y1, x2, y2 = self.region
        return bool(x1 <= x <= x2 and y1 <= y <= y2)


def valid_region(region) -> bool:
    return (
        len(region) == 4
        and all(0 <= v <= 1 for v in region)
        and region[0] < region[2]
        and region[1] < region[3]
    )
