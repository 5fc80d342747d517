"""Checks on the motion stream's triangulated keypoints (the view "3d"; docs/fusion.md, "Checks on the 3D
keypoints"): each keypoint's bones against the athlete's running lengths (``BoneLengths``), and each camera's
agreement with the others over time (``CalibrationWatch``, fed from the stream by ``StreamWatch``), which
flags a camera whose calibration has drifted (a bumped camera).

Bones: a rigid segment between two keypoints (upper arm, forearm, thigh, shank) keeps its length, so a
triangulated length far from the athlete's running median says one of its ends is wrong (a view that
agreed on the wrong point, a left/right swap seen the same way by two cameras). "Far" is beyond both the
two points' own tolerances (added in quadrature) and ``BONE_SLACK`` of the length: keypoints are not joint
centres, and a knee keypoint slides over the joint as it bends (measured on the synthetic walker's rigid
bones through the detector model: 90 % of lengths within 6 %).

Drift: each camera's confident keypoints against the point the other cameras triangulate (leave-one-out),
the median over an item's keypoints; the camera's first ``window_s`` of such medians is its baseline, its
last ``window_s`` its current error. A camera whose current error exceeds ``ratio`` times its baseline and
its baseline plus ``DRIFT_FLOOR_PX`` is past its limit. A bumped camera also pulls the points the others are
measured against, so with three or more cameras several can be past their limit: the one flagged is the one
whose leaving out gives the other cameras back their agreement among themselves (their errors against
their own triangulation, against the same measure's baseline; the RANSAC idea: Fischler & Bolles 1981);
where that does not single one out, all of them are flagged and the event says which of them could not be
told apart. With two cameras no one camera can be blamed: both are flagged when they disagree. A flagged
camera stays flagged until the daemon restarts (with a new calibration): an event names it, it no longer
moves the points the others are measured against (whose baselines start again: the geometry is another),
and the 3D keypoints leave it out where two other cameras see them, and are degraded where they cannot."""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from kinefuse.camera_calibration import CameraCalibration, project, triangulate
from kinefuse.types import Event, KeypointStatus, MotionItem, Provenance, Quality, QualityLevel

log = logging.getLogger(__name__)

BONES = tuple(
    (f"{side}_{a}", f"{side}_{b}")
    for side in ("left", "right")
    for a, b in (("shoulder", "elbow"), ("elbow", "wrist"), ("hip", "knee"), ("knee", "ankle"))
)
BONE_SLACK = 0.15  # of the running length
BONE_SAMPLES = 600  # lengths kept per bone: 20 s at 30 items/s
BONE_MIN_SAMPLES = 30  # before these, no running length and no check
BONE_RECOMPUTE = 30  # new lengths before the running median is taken again
DRIFT_FLOOR_PX = 8.0  # a detector's error on a person a few metres away moves by this much with the pose
DRIFT_MIN_KEYPOINTS = 5  # an item's median needs these many confident keypoints of the camera
WATCH_EVERY_S = 0.2  # items the calibration watch sees: its medians span seconds
ATTRIBUTION_PX = 1.0  # the others' agreement, median over a window: steady to a few tenths of a pixel


class BoneLengths:
    """The athlete's running bone lengths, per keypoint set, from the keypoints that passed."""

    def __init__(self, names: Sequence[str]):
        self.bones = [(names.index(a), names.index(b)) for a, b in BONES if a in names and b in names]
        self.lengths = [collections.deque(maxlen=BONE_SAMPLES) for _ in self.bones]
        # each bone's running median, recomputed once BONE_RECOMPUTE new lengths are in (a median of 600
        # lengths per bone and call cost the stream half a millisecond an item)
        self.running = np.full(len(self.bones), np.nan)
        self.added = np.zeros(len(self.bones), dtype=np.int64)

    def check(self, points: np.ndarray, tolerance: np.ndarray, learn: bool) -> np.ndarray:
        """(m, K) bool: the keypoints with a bone off its running length, for ``points`` (m, K, 3) with
        ``tolerance`` (m, K; m, NaN where none); with ``learn``, the lengths that pass join the running ones."""
        off = np.zeros(points.shape[:2], dtype=bool)
        if not self.bones:
            return off
        a, b = (np.array(ends) for ends in zip(*self.bones, strict=True))
        length = np.linalg.norm(points[:, a] - points[:, b], axis=-1)  # (m, bones)
        allowed = np.fmax(np.hypot(tolerance[:, a], tolerance[:, b]), BONE_SLACK * self.running)
        bad = np.abs(length - self.running) > allowed  # False while a bone has no running length (NaN)
        for bone, (start, end) in enumerate(self.bones):
            off[:, start] |= bad[:, bone]
            off[:, end] |= bad[:, bone]
        if learn:
            self._learn(np.where(bad, np.nan, length))
        return off

    def _learn(self, length: np.ndarray) -> None:
        for bone, history in enumerate(self.lengths):
            passed = length[:, bone][np.isfinite(length[:, bone])]
            history.extend(passed.tolist())
            self.added[bone] += len(passed)
            if len(history) >= BONE_MIN_SAMPLES and (
                self.added[bone] >= BONE_RECOMPUTE or np.isnan(self.running[bone])
            ):
                self.running[bone], self.added[bone] = float(np.median(history)), 0


@dataclasses.dataclass
class CameraDrift:
    """What ``CalibrationWatch.update`` found: the camera, its baseline and current error (px), and the
    cameras flagged together (more than itself: which of them drifted could not be told)."""

    camera: str
    baseline_px: float
    now_px: float
    together: tuple[str, ...]


class CalibrationWatch:
    """Per camera, over time: its confident keypoints' error against the point the other cameras triangulate
    (``own``), and how well the other cameras agree among themselves without it (``rest``); the cameras
    flagged."""

    def __init__(self, window_s: float, ratio: float):
        self.window_s, self.ratio = window_s, ratio
        self.own, self.rest = _Series(window_s), _Series(window_s)
        self.flagged: set[str] = set()

    def update(self, cams: list[CameraCalibration], times: np.ndarray, pixels: np.ndarray,
               weights: np.ndarray) -> list[CameraDrift]:  # fmt: skip
        """Feed the items at ``times`` (m,; s): ``pixels`` (ncam, m, K, 2) of the confident keypoints (NaN
        elsewhere) weighted by ``weights`` (ncam, m, K); the cameras newly flagged."""
        # a flagged camera still gets its own error, but no longer moves the others' points
        trusted = np.array([cam.name not in self.flagged for cam in cams])
        weights = np.where(trusted[:, None, None], weights, 0.0)
        pool = [i for i in range(len(cams)) if trusted[i]]
        for index, cam in enumerate(cams):
            # a pair measures each camera against its own point, this camera included (which one is wrong:
            # unknown); with one camera left there is nothing to measure against
            others = [i for i in pool if i != index]
            others = pool if len(others) < 2 else others
            if len(others) < 2:
                continue
            points = triangulate([cams[i] for i in others], pixels[others], weights[others])
            errors = {
                i: np.linalg.norm(project(cams[i], points) - pixels[i], axis=-1) for i in {*others, index}
            }
            self.own.feed(cam.name, times, errors[index])
            rest = [errors[i] for i in others if i != index]
            if rest:
                self.rest.feed(cam.name, times, np.concatenate(rest, axis=1))
        return self._flag([cam.name for cam, ok in zip(cams, trusted, strict=True) if ok])

    def _flag(self, trusted: list[str]) -> list[CameraDrift]:
        """The cameras past their limit; with three or more trusted, the one whose leaving out restores the
        others' agreement (the others' excess over their baseline at least ``ATTRIBUTION_PX`` and twice its
        own), else every camera past its limit (which of them drifted cannot be told)."""
        past = [name for name in trusted if self.own.now(name) is not None
                and self.own.now(name) > max(self.ratio * self.own.baseline[name],
                                             self.own.baseline[name] + DRIFT_FLOOR_PX)]  # fmt: skip
        if len(trusted) > 2 and len(past) > 1:
            excess = {name: self.rest.now(name) - self.rest.baseline[name] for name in past
                      if self.rest.now(name) is not None}  # fmt: skip
            if len(excess) == len(past):
                best = min(excess, key=excess.get)
                bar = max(2.0 * max(excess[best], 0.0), ATTRIBUTION_PX)
                if all(value >= bar for name, value in excess.items() if name != best):
                    past = [best]
        found = [CameraDrift(name, self.own.baseline[name], self.own.now(name), tuple(past)) for name in past]
        if past:  # the others' errors so far include the flagged cameras' pull, and their geometry changes
            self.flagged.update(past)
            self.own.restart()
            self.rest.restart()
        return found


class _Series:
    """Per camera, the median over each fed item's keypoints, over the first ``window_s`` (the baseline)
    and the last ``window_s``."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self.history: dict[str, collections.deque] = {}
        self.baseline: dict[str, float] = {}

    def feed(self, name: str, times: np.ndarray, errors: np.ndarray) -> None:
        counted = np.isfinite(errors).sum(axis=1) >= DRIFT_MIN_KEYPOINTS
        if not counted.any():
            return
        medians = np.nanmedian(np.where(counted[:, None], errors, np.nan)[counted], axis=1)
        history = self.history.setdefault(name, collections.deque())
        history.extend(zip(times[counted].tolist(), medians.tolist(), strict=True))
        if name not in self.baseline:
            if history[-1][0] - history[0][0] >= self.window_s:
                self.baseline[name] = float(np.median([m for _, m in history]))
            return
        while history[0][0] < history[-1][0] - self.window_s:
            history.popleft()

    def restart(self) -> None:
        """Start again, baselines included: the cameras measured against are others now."""
        self.history.clear()
        self.baseline.clear()

    def now(self, name: str) -> float | None:
        """The last window's median, once there is a baseline and a window's worth since the last restart."""
        history = self.history.get(name)
        if name not in self.baseline or not history or history[-1][0] - history[0][0] < 0.9 * self.window_s:
            return None
        return float(np.median([m for _, m in history]))


class StreamWatch:
    """The calibration watch on the motion stream: every ``WATCH_EVERY_S`` of items, the cameras' measured
    keypoints to a ``CalibrationWatch``; a ``calibration_drift`` event for each camera it flags."""

    def __init__(self, options: dict, processor_id: str):
        self.cameras = CalibrationWatch(options["drift_window_s"], options["drift_ratio"])
        self.processor_id = processor_id
        self.until_ns = -1

    def observe(self, views: dict, cams: list[CameraCalibration], items: list[MotionItem]) -> list[Event]:
        """``views``: per camera key its view in each of ``items``, ``cams`` their calibrations."""
        picked = []
        for j, item in enumerate(items):
            if item.time_ns >= self.until_ns:
                picked.append(j)
                self.until_ns = item.time_ns + round(WATCH_EVERY_S * 1e9)
        if not picked:
            return []
        per_camera = [[vs[j] for j in picked] for vs in views.values()]
        pixels = np.stack([[v.position for v in vs] for vs in per_camera])
        sigma = np.stack([[v.sigma for v in vs] for vs in per_camera])
        measured = np.stack([[v.status == KeypointStatus.MEASURED for v in vs] for vs in per_camera])
        measured &= np.isfinite(sigma) & (sigma > 0) & np.isfinite(pixels).all(axis=-1)
        weights = np.where(measured, 1.0 / np.where(measured, sigma, 1.0), 0.0)
        times = np.array([items[j].time_ns for j in picked]) / 1e9
        keys = {cam.name: key for key, cam in zip(views, cams, strict=True)}
        found = self.cameras.update(cams, times, np.where(measured[..., None], pixels, np.nan), weights)
        return [self._event(keys[drift.camera], items[picked[-1]].time_ns, drift) for drift in found]

    def _event(self, key: tuple[str, str], time_ns: int, drift: CameraDrift) -> Event:
        which = ("its calibration seems to have drifted (a bumped camera?)" if len(drift.together) == 1 else
                 f"one of {', '.join(drift.together)} seems to have drifted (a bumped camera?); which one, "
                 "the others cannot tell")  # fmt: skip
        reason = (f"camera {key[1]}: its keypoints are {drift.now_px:.1f} px from where the other cameras put "
                  f"them (median over {self.cameras.window_s:g} s; {drift.baseline_px:.1f} px at first): "
                  f"{which}; its 3D keypoints are left out where two other cameras see them, degraded where not, "
                  "until it is recalibrated")  # fmt: skip
        log.warning("%s: %s", self.processor_id, reason)
        detail = {"camera": key[1], "baseline_px": round(drift.baseline_px, 2), "error_px": round(drift.now_px, 2),
                  "flagged_together": list(drift.together), "reason": reason}  # fmt: skip
        return Event("calibration_drift", time_ns, key[0], key[1], detail, Provenance.MEASURED,
                     Quality(QualityLevel.DEGRADED, reason), self.processor_id)  # fmt: skip
