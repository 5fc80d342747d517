"""Tracking people across frames, choosing the athlete, and catching left/right swaps.

Association (per frame): the cost of pairing a track with a detection is 1 - IoU of their boxes plus the
mean distance of their confident keypoints over the track box's diagonal; the Hungarian method
(scipy.optimize.linear_sum_assignment) picks the cheapest pairing and a pair costing more than
``max_cost`` is no pair. Unpaired detections start tracks; a track unseen for ``max_missed`` frames ends.
Ids are never reused.

The athlete of interest is a fixed track once chosen: the ``largest`` box, the most ``central`` one, or
the largest whose box centre lies in a configured ``region`` of the image (a treadmill, a platform),
chosen again only when the chosen one ends. With ``region`` and nobody in it, there is no athlete.

A left/right swap (the detector labels the athlete's left as right) is judged by likelihood, with an error
model as heavy-tailed as a real detector's (MoveNet's jitter is a Student-t of 1.6-4.3 degrees of freedom,
and drifts: docs/simulation.md). Each keypoint's place is predicted from the track's last HISTORY_FRAMES
frames: a straight line in time, weighted by confidence and fitted again with Huber's weights (Huber 1964)
so that one wild position bends it little. The frame is then scored as labelled and mirrored: the -log
density of each keypoint's distance from its predicted place under a 2D Student-t (DEGREES_OF_FREEDOM),
whose scale is in the person's torso lengths (mid-shoulder to mid-hip, which a swap leaves as it is) and
grows as the keypoint's confidence falls (MoveNet's fitted jitter) and with the frames since it was last
seen (the motion a line misses). Only keypoints with a left/right partner count, seen surely now and
predicted with their partner: a pair close together (legs crossing in a side view) fits both ways alike
and tells nothing, so the labels stay as given; and one wild keypoint adds only the log of its distance,
which its partner's good fit offsets. A mirrored frame costs ``swap_threshold`` nats (6.9 = log 1000:
were the model right, a frame as labelled would fit mirrored that much better less than once in a thousand
frames), so a frame is mirrored back when it fits that much better mirrored; unless one half of the body
(above the hips, or from the hips down) fits as labelled better by as much: the detector then swapped only
the other half (MoveNet does, now and then), which mirroring the whole frame would not undo, and the frame
stays as given. On the synthetic side-view walks (walk and walk_asymmetric, six seeds each, MoveNet's
fitted detector and the former 1.5 px Gaussian one, 1-3 % of frames swapped) this catches 93-100 % of the
swaps and swaps back at most 2 of 1800 other frames, where comparing with the previous frame alone swapped
back up to 3.6 %; any threshold from 2 to 10 nats keeps at least 89 % caught and at most 0.3 % swapped by
mistake (tests/test_tracking.py).

One reading of the past labels is not enough: a frame read wrongly (a miss, or a false swap) becomes the
reference the next frames are predicted from, they agree with it, and every later frame would be reported
swapped. So each track keeps the READINGS likeliest readings of which of its last frames were mirrored,
costs summed frame by frame as in Viterbi's algorithm (readings that agree over those frames merged), the
detector's own (no frame mirrored) always among them: the wrong reading pays ``swap_threshold`` for every
frame it calls mirrored, and the right one overtakes it once that outweighs the misfit that started it. A
flip that lasts (the detector reading the person mirrored for good) is so followed in the end, not fought.

Between two runs of a person detector the top-down path (topdown.TopDown.track) finds the athlete again in
a crop around its previous keypoints: ``follow`` updates the athlete's track alone (swaps judged the same
way); the other tracks stay as they were, neither seen nor missed, since nobody looked for them.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools

import numpy as np
from scipy.optimize import linear_sum_assignment

from kinefuse_plugins.camera.decoders import box_iou

# COCO-17 left/right partner of every keypoint (itself for the nose)
COCO17_MIRROR = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])
# COCO-17 shoulders and hips: the torso's length (mid-shoulder to mid-hip) sizes the person
_SHOULDERS, _HIPS = [5, 6], [11, 12]
# COCO-17 hips, knees and ankles: the lower body (the swap detector checks that both halves agree)
LOWER_BODY = np.arange(11, 17)

# The swap detector (see the module's docstring). Sizes are per axis, in torso lengths.
HISTORY_FRAMES = 6  # frames of a track the motion prediction fits, and the readings remember
READINGS = 4  # readings of those frames' labels kept
JITTER_TORSO = 0.0186  # a keypoint's own error at confidence 1: MoveNet's (docs/simulation.md)
JITTER_CONFIDENCE_POWER = 0.64  # and its growth as confidence falls, JITTER_TORSO * c ** -power: MoveNet's
MOTION_TORSO = 0.03  # the prediction's own error (motion a line misses) per frame since last seen
DEGREES_OF_FREEDOM = 2.0  # of the 2D Student-t error: a heavy tail, so one wild keypoint decides little
SWAP_THRESHOLD = 6.9  # nats a mirrored frame must fit better by: log(1 / 0.001)


@dataclasses.dataclass
class Track:
    track_id: int
    box: np.ndarray  # (5,)
    keypoints: np.ndarray  # (K, 3), labels as decided
    missed: int = 0
    age: int = 0
    # the swap detector's memory: (frame number, keypoints (K, 3) as the detector labelled them) of the last
    # frames it was seen in, and the likeliest readings of their labels, (cost in nats, whether each of
    # those frames was mirrored), best first
    seen: collections.deque = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=HISTORY_FRAMES), repr=False
    )
    readings: list = dataclasses.field(default_factory=lambda: [(0.0, ())], repr=False)


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
                 max_missed: int = 15, swap_threshold: float = SWAP_THRESHOLD, min_confidence: float = 0.3,
                 mirror: np.ndarray = COCO17_MIRROR, region: tuple[float, ...] = ()):  # fmt: skip
        """``region``: x1, y1, x2, y2 as fractions of the image width and height (rule ``region``).
        ``swap_threshold``: nats (see the module's docstring)."""
        if athlete not in ("largest", "central", "region"):
            raise ValueError(f"athlete must be 'largest', 'central' or 'region', got {athlete!r}")
        if athlete == "region" and not valid_region(region):
            raise ValueError(f"athlete 'region' needs a region x1, y1, x2, y2 in 0..1 with x1 < x2, y1 < y2, "
                             f"got {list(region)}")  # fmt: skip
        self.size, self.rule = image_size, athlete
        self.region = np.array(region, dtype=np.float64) * np.tile(image_size, 2) if region else None
        self.max_cost, self.max_missed, self.swap_threshold = max_cost, max_missed, swap_threshold
        self.min_confidence, self.mirror = min_confidence, np.asarray(mirror)
        self.tracks: list[Track] = []
        self.athlete_id: int | None = None
        self._ids = itertools.count()
        self._frame = 0  # frames gone by (update and follow), which time the tracks' memories

    def update(self, boxes: np.ndarray, keypoints: np.ndarray) -> Frame:
        """One frame's detections: boxes (P, 5) and keypoints (P, K, 3), image pixels."""
        self._frame += 1
        pairs = self._associate(boxes, keypoints)
        paired_tracks = {t for t, _ in pairs}
        paired_detections = {d for _, d in pairs}
        swapped = False
        for t, d in pairs:
            track = self.tracks[t]
            swapped |= self._see(track, boxes[d], keypoints[d], track.track_id == self.athlete_id)
        for t, track in enumerate(self.tracks):
            if t not in paired_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for d in range(len(boxes)):
            if d not in paired_detections:
                track = Track(next(self._ids), boxes[d], keypoints[d])
                self._see(track, boxes[d], keypoints[d], False, age=0)
                self.tracks.append(track)
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
        self._frame += 1
        swapped = self._see(track, box, keypoints, True)
        return Frame(list(self.tracks), self.athlete_id, swapped)

    def cost(self, track: Track, box: np.ndarray, keypoints: np.ndarray) -> float:
        """What pairing ``track`` with this box (5,) and keypoints (K, 3) costs (see the module's docstring)."""
        return self._cost(track, box, keypoints)

    def swap_evidence(self, track: Track, keypoints: np.ndarray) -> float:
        """How much better ``keypoints`` (K, 3), the next frame's, fit ``track``'s likeliest reading with left
        and right mirrored than as labelled: a log-likelihood ratio in nats (positive: mirrored fits better;
        0: no evidence either way). See the module's docstring."""
        torso = self._torso(track)
        predicted, since = self._predict(track, [track.readings[0][1]], self._frame + 1, torso)
        direct, mirrored, _ = self._misfits(np.asarray(keypoints, dtype=np.float64), predicted, since, torso)
        return float(direct[0] - mirrored[0])

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

    def _see(self, track: Track, box: np.ndarray, people: np.ndarray, judge: bool, age: int = 1) -> bool:
        """``track`` seen in this frame with ``people`` (K, 3) as the detector labelled them; with ``judge``
        its readings branch on whether the detector mirrored this frame. Whether the likeliest reading has it
        mirrored (its keypoints are then stored mirrored back)."""
        given, people = people, np.array(people, dtype=np.float64)  # a copy: the memory is the track's own
        readings = track.readings
        if judge and track.seen:
            torso = self._torso(track)
            predicted, since = self._predict(track, [flips for _, flips in readings], self._frame, torso)
            direct, mirrored, split = self._misfits(people, predicted, since, torso)
            mirrored = np.where(split, np.inf, mirrored + self.swap_threshold)
        else:
            direct, mirrored = np.zeros(len(readings)), np.full(len(readings), np.inf)
        options: dict[tuple, float] = {}
        full = len(track.seen) == track.seen.maxlen
        for (cost, flips), *fits in zip(readings, direct, mirrored, strict=True):
            kept = flips[1:] if full else flips
            for flip, fit in zip((False, True), fits, strict=True):
                key = (*kept, flip)
                if np.isfinite(fit) and cost + fit < options.get(key, np.inf):
                    options[key] = cost + fit
        ranked = sorted((cost, flips) for flips, cost in options.items())
        best = ranked[:READINGS]
        as_given = next((r for r in ranked if not any(r[1])), None)  # the detector's own: always kept
        if as_given is not None and as_given not in best:
            best[-1] = as_given
        track.readings = [(cost - best[0][0], flips) for cost, flips in best]
        track.seen.append((self._frame, people))
        flip = track.readings[0][1][-1]
        track.box, track.keypoints = box, given[self.mirror] if flip else given
        track.missed, track.age = 0, track.age + age
        return flip

    def _misfits(self, people, predicted, since, torso) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(R,) -log likelihood, nats, of ``people`` (K, 3) as labelled and (R,) mirrored, where each of R
        readings' ``predicted`` (R, K, 2) puts them: a 2D Student-t per keypoint, its scale growing as its
        confidence falls (its own error) and with the frames ``since`` (R, K) it was last seen (the
        prediction's). Judged on the same keypoints every way: those that can tell left from right, seen
        surely now, each predicted with its partner by every reading; not the midline's. And (R,) whether
        the body's halves disagree: one of them fits as labelled better by more than ``swap_threshold``."""
        mirror, count = self.mirror, len(predicted)
        seen = (people[:, 2] > self.min_confidence) & np.isfinite(people[:, :2]).all(axis=1)
        known = np.isfinite(predicted).all(axis=-1).all(axis=0)
        usable = np.nonzero(seen & known & known[mirror] & (mirror != np.arange(len(mirror))))[0]
        if not len(usable):
            return np.zeros(count), np.zeros(count), np.zeros(count, dtype=bool)
        xy = people[usable, :2]
        own = JITTER_TORSO * np.maximum(people[usable, 2], 0.1) ** -JITTER_CONFIDENCE_POWER
        nu = DEGREES_OF_FREEDOM

        def misfit(slots):  # (R, U)
            scale = torso * np.hypot(own, MOTION_TORSO * since[:, slots])
            squared = np.sum((xy - predicted[:, slots]) ** 2, axis=-1) / scale**2
            return np.log(2 * np.pi * scale**2) + (nu + 2) / 2 * np.log1p(squared / nu)

        direct, mirrored = misfit(usable), misfit(mirror[usable])
        lower = np.isin(usable, LOWER_BODY)
        evidence = direct - mirrored
        halves = np.minimum(evidence[:, lower].sum(axis=-1), evidence[:, ~lower].sum(axis=-1))
        return direct.sum(axis=-1), mirrored.sum(axis=-1), halves < -self.swap_threshold

    def _predict(self, track: Track, readings: list[tuple], now: int, torso: float):
        """Where each keypoint of ``track`` should be at frame ``now`` under each of R readings of its last
        frames' labels (whether each was mirrored): (R, K, 2) image pixels, NaN for one not seen surely in
        the last HISTORY_FRAMES frames, and (R, K) how many frames before ``now`` it was last seen. A
        straight line in time through its recent positions, weighted by confidence and fitted twice more
        with Huber's weights (Huber 1964), so that a wild position bends it little; seen in one of those
        frames only, it stays where it was."""
        recent = [i for i, (f, _) in enumerate(track.seen) if now - HISTORY_FRAMES <= f < now]
        shape = (len(readings), len(self.mirror))
        if not recent:
            return np.full((*shape, 2), np.nan), np.full(shape, np.inf)
        frames = np.array([track.seen[i][0] for i in recent], dtype=np.float64)[None, :, None]  # (1, n, 1)
        labelled = np.array([track.seen[i][1] for i in recent])  # (n, K, 3)
        flips = np.array([[flips[i] for i in recent] for flips in readings], dtype=bool)  # (R, n)
        # (R, n, K, 3): each reading's view of those frames
        stack = np.where(flips[..., None, None], labelled[:, self.mirror][None], labelled[None])
        sure = (stack[..., 2] > self.min_confidence) & np.isfinite(stack[..., :2]).all(axis=-1)
        prior = np.where(sure, stack[..., 2], 0.0)  # (R, n, K)
        xy = np.where(sure[..., None], stack[..., :2], 0.0)
        corner = 2.0 * JITTER_TORSO * torso  # Huber's corner: twice a sure keypoint's own error
        weight = prior
        for step in range(3):
            total = np.maximum(weight.sum(axis=1), 1e-12)  # (R, K)
            t_mean = (weight * frames).sum(axis=1) / total
            xy_mean = (weight[..., None] * xy).sum(axis=1) / total[..., None]  # (R, K, 2)
            dt = frames - t_mean[:, None]  # (R, n, K)
            spread = (weight * dt**2).sum(axis=1)
            slope = (weight[..., None] * dt[..., None] * (xy - xy_mean[:, None])).sum(axis=1)
            slope = np.where(spread[..., None] > 1e-9, slope / np.maximum(spread, 1e-9)[..., None], 0.0)
            if step < 2:
                residual = np.linalg.norm(xy - xy_mean[:, None] - dt[..., None] * slope[:, None], axis=-1)
                weight = prior * np.minimum(1.0, corner / np.maximum(residual, 1e-12))
        predicted = xy_mean + (now - t_mean)[..., None] * slope
        ever = sure.any(axis=1)  # (R, K)
        predicted[~ever] = np.nan
        last = np.max(np.where(sure, frames, -np.inf), axis=1)
        return predicted, np.where(ever, now - last, np.inf)

    def _torso(self, track: Track) -> float:
        """The person's size in pixels: the median torso length (mid-shoulder to mid-hip, which a left/right
        swap leaves as it is) over the frames the track remembers; a quarter of its box's height without."""
        lengths = [
            float(np.hypot(*(k[_SHOULDERS, :2].mean(axis=0) - k[_HIPS, :2].mean(axis=0))))
            for _, k in track.seen
            if np.all(k[_SHOULDERS + _HIPS, 2] > self.min_confidence)
        ]
        length = float(np.median(lengths)) if lengths else 0.0
        return length if length > 0 else max(float(track.box[3] - track.box[1]) / 4.0, 1.0)

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
