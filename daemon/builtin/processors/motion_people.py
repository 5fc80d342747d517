"""Several people in view: which of each camera's people is the athlete (the ``motion`` processor).

A camera's own tracker picks its athlete from what that camera alone sees (the camera plugin: the largest
box, the most central, or one in a region). From another side a person nearer that camera is the largest,
and the cameras then follow different people. Where a camera reports everyone it follows
(``KeypointBatch.others``), each of its frames is judged against the other calibrated cameras' frames of
the same instant (within ``WINDOW_NS``): their athletes' keypoints are triangulated
(kinefuse.camera_calibration.triangulate_robust, views farther than ``limit`` torso lengths left out) and
projected into this camera (unless they fit their own point worse than half the limit, median: two views
of different people a limit apart fit their compromise at about half of it each, so the others disagree
among themselves and judge nothing), and each of its people costs the median distance of their sure keypoints
(confidence at least ``MIN_CONFIDENCE``, ``MIN_KEYPOINTS`` of them, else unknown) from those projections,
in that person's torso lengths (kinefuse.keypoints.torso_length_seen: a pose model's error grows with the
person's size). The camera follows the cheapest person within ``limit``; where none is, nobody: its
frame's keypoints are NaN (it does not see the athlete) rather than another person's; where nothing is
known (too few sure keypoints), the person it would have followed.

Each other camera's athlete is the track it followed last, while that track lives, else its tracker's
choice; a camera last found to see nobody judges nothing until it is found to see the athlete again. So the
cameras side with their majority: one camera whose tracker chose someone else is set right by the others
and keeps following the athlete's track afterwards, and a tracker that changes its mind while the
athlete's track goes on is held to it. Judging takes two other cameras (``MIN_REFERENCES``): with one,
which of the two follows the wrong person cannot be told, and each keeps its tracker's choice.

Only frames that report other people are judged (and frames whose one person is not the track the camera
followed last); the others pass as they are, so a scene with one person costs nothing here. A camera with
one person in view who is not the athlete is left to the triangulation's view rejection. A change in what
a camera follows is a ``person_association`` event naming the camera. docs/fusion.md, "Several people in
view", has the measured costs that set ``limit``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np

from kinefuse.camera_calibration import CameraCalibration, project, triangulate_robust
from kinefuse.keypoints import torso_length_seen
from kinefuse.types import Event, KeypointBatch, Provenance

log = logging.getLogger(__name__)

MIN_CONFIDENCE = 0.3  # a keypoint at least this sure counts in a person's cost
MIN_KEYPOINTS = 4  # sure keypoints a person needs for a cost
MIN_REFERENCES = 2  # other cameras needed to judge one: with one, which of the two is wrong is unknown
NOBODY = -2  # what a camera follows when it was found to see nobody the others see (track ids are >= -1)
WINDOW_NS = 50_000_000  # another camera's frame this close in time is the same instant (a frame at 30 fps)

Key = tuple[str, str]


class _Frame:
    """One camera's people at one instant, read from its batch only when a judgement needs them (most frames
    never are): keypoints (P, K, 3), their track ids, and its tracker's choice (an index into them, or None:
    the tracker had nobody)."""

    def __init__(self, batch: KeypointBatch, j: int):
        self.batch, self.j, self.time_ns = batch, j, int(batch.time_ns[j])

    @functools.cached_property
    def _people(self) -> tuple[np.ndarray, list[int], int | None]:
        batch, j = self.batch, self.j
        own = batch.keypoints[j]
        someone = bool(np.isfinite(own[:, :2]).any())
        rows = [own] if someone else []
        ids = [int(batch.track_id[j]) if batch.track_id is not None else -1] if someone else []
        if batch.others is not None:
            present = batch.other_ids[j] >= 0
            rows += list(batch.others[j][present])
            ids += batch.other_ids[j][present].tolist()
        return np.array(rows, dtype=np.float64).reshape(len(rows), *own.shape), ids, 0 if someone else None

    @property
    def keypoints(self) -> np.ndarray:
        return self._people[0]

    @property
    def ids(self) -> list[int]:
        return self._people[1]

    @property
    def tracker_choice(self) -> int | None:
        return self._people[2]

    @functools.cached_property
    def sizes(self) -> np.ndarray:
        """Each person's torso length (px) from their sure keypoints: the mean of what the shoulders and hips
        seen give (both sides' midpoints, each side's shoulder to hip; a side view hides one side); NaN where
        none."""
        sure = np.where(self.keypoints[..., 2:] >= MIN_CONFIDENCE, self.keypoints[..., :2], np.nan)
        return torso_length_seen(sure, self.batch.keypoint_set)


class PersonAssociation:
    def __init__(self, cameras: dict[Key, CameraCalibration], limit: float, processor_id: str):
        """``cameras``: the calibrated cameras by (source, device), shared with the triangulation (cameras
        added later are seen); ``limit``: the largest pair cost of one person, in torso lengths."""
        self.cameras, self.limit, self.processor_id = cameras, limit, processor_id
        self.latest: dict[Key, _Frame] = {}
        self.following: dict[Key, int] = {}  # the track each camera followed last
        self.state: dict[Key, str] = {}  # what each camera's last decision was, for the events
        self.events: list[Event] = []

    def choose(self, batch: KeypointBatch) -> KeypointBatch:
        """The batch with each frame's keypoints (and track_id) those of the athlete the cameras agree on."""
        key = (batch.source_id, batch.device_id)
        if key not in self.cameras or batch.time_ns is None:
            return batch
        held = self.following.get(key)
        if batch.others is None and (held is None or _only(batch, held)):
            self.latest[key] = _Frame(batch, len(batch) - 1)
            return batch
        keypoints = batch.keypoints.copy()
        track_id = np.full(len(batch), -1, dtype=np.int64)
        for j in range(len(batch)):
            self.latest[key] = frame = _Frame(batch, j)
            chosen = self._decide(key, frame)
            keypoints[j] = frame.keypoints[chosen] if chosen is not None else np.nan
            track_id[j] = frame.ids[chosen] if chosen is not None else -1
        return dataclasses.replace(batch, keypoints=keypoints, track_id=track_id)

    def _vote(self, key: Key, frame: _Frame) -> int | None:
        """The person the camera stands for as a judge of the others: the track it followed last while that
        lives, else its tracker's choice; nobody where it was last found to see nobody."""
        held = self.following.get(key)
        if held == NOBODY:
            return None
        return frame.ids.index(held) if held is not None and held in frame.ids else frame.tracker_choice

    def _decide(self, key: Key, frame: _Frame) -> int | None:
        """The index of the person in ``frame`` the other cameras see as the athlete, or None: nobody."""
        references = [(k, f, v) for k, f in self.latest.items()
                      if k != key and k in self.cameras and abs(f.time_ns - frame.time_ns) <= WINDOW_NS
                      and (v := self._vote(k, f)) is not None]  # fmt: skip
        vote = self._vote(key, frame)
        costs = (
            self._costs(key, frame, references) if len(references) >= MIN_REFERENCES and frame.ids else None
        )
        # not judged: the last choice, or after "nobody" the tracker's again
        unjudged = frame.tracker_choice if vote is None else vote
        chosen = unjudged if costs is None else self._pick(costs, vote)
        self._follow(key, frame, chosen)
        return chosen

    def _pick(self, costs: np.ndarray, vote: int | None) -> int | None:
        """The cheapest person within the limit; else the vote where its cost is unknown (too few sure
        keypoints: nothing says it is someone else); else nobody."""
        within = np.flatnonzero(costs <= self.limit)
        if len(within):
            return int(within[np.argmin(costs[within])])
        return vote if vote is not None and not np.isfinite(costs[vote]) else None

    def _costs(self, key: Key, frame: _Frame, references: list) -> np.ndarray | None:
        """Each person's median distance (torso lengths) from where the other cameras' athlete would be: the
        projection of the point they triangulate; NaN with too few sure keypoints. None where the others
        disagree among themselves."""
        cams = [self.cameras[k] for k, _, _ in references]
        seen = np.stack([f.keypoints[v] for _, f, v in references])
        sizes = np.array([f.sizes[v] for _, f, v in references])
        weights = np.where(seen[..., 2] >= MIN_CONFIDENCE, seen[..., 2], 0.0)
        limit_px = self.limit * float(np.nanmedian(sizes)) if np.isfinite(sizes).any() else np.inf
        found = triangulate_robust(cams, seen[..., :2], weights, limit_px)
        if not np.nanmedian(found.error_px) <= limit_px / 2:
            return None  # the others disagree among themselves: no judge (see the module's docstring)
        points = found.points
        expected = project(self.cameras[key], points)
        apart = np.linalg.norm(frame.keypoints[..., :2] - expected, axis=-1) / frame.sizes[:, None]
        sure = (frame.keypoints[..., 2] >= MIN_CONFIDENCE) & np.isfinite(apart)
        return np.array([np.median(a[s]) if s.sum() >= MIN_KEYPOINTS else np.nan
                         for a, s in zip(apart, sure, strict=True)])  # fmt: skip

    def _follow(self, key: Key, frame: _Frame, chosen: int | None) -> None:
        """Remember what the camera follows; an event when that changes."""
        tracker = frame.tracker_choice
        if chosen is None or frame.ids[chosen] >= 0:
            self.following[key] = NOBODY if chosen is None else frame.ids[chosen]
        state = (
            "agrees" if chosen == tracker else ("none" if chosen is None else f"track {frame.ids[chosen]}")
        )
        if self.state.get(key, "agrees") != state:
            self.events.append(self._event(key, frame, chosen, state))
        self.state[key] = state

    def _event(self, key: Key, frame: _Frame, chosen: int | None, state: str) -> Event:
        tracker_id = frame.ids[frame.tracker_choice] if frame.tracker_choice is not None else None
        if state == "agrees":
            reason = f"camera {key[1]} follows its own choice again (track {tracker_id})"
        elif chosen is None:
            reason = (f"camera {key[1]} does not see the person the other cameras follow: its keypoints are "
                      f"left out (its tracker chose track {tracker_id})")  # fmt: skip
        else:
            reason = (f"camera {key[1]} follows track {frame.ids[chosen]}, the person the other cameras see, "
                      f"not its tracker's choice (track {tracker_id})")  # fmt: skip
        log.info("%s: %s", self.processor_id, reason)
        detail = {"camera": key[1], "follows": None if chosen is None else frame.ids[chosen],
                  "tracker_choice": tracker_id, "reason": reason}  # fmt: skip
        return Event("person_association", frame.time_ns, key[0], key[1], detail, Provenance.MEASURED,
                     processor=self.processor_id)  # fmt: skip


def _only(batch: KeypointBatch, track_id: int) -> bool:
    """Whether every frame of the batch is of that track alone."""
    return batch.track_id is not None and bool((batch.track_id == track_id).all())
