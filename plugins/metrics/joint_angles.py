"""Processor ``joint_angles``: each joint's ISB angles from the motion stream, from the segments' orientations
(``source = "segments"``: the straps, fused), from the triangulated 3D keypoints (``"keypoints"``) or, as a
2D projection, from one camera's keypoints (``"camera"``).

It observes the items of the ``motion`` processor listed before it in the config (``[[processors]]`` order)
and, for each motion item of ``revision`` (0: as first published; 1: the fixed-lag smoothed revision, which
the stream makes only where a camera's keypoints are smoothed with a lag), gives each joint's angles as
metrics named ``<joint>.flexion``, ``.adduction`` and ``.rotation`` in degrees, the convention
(kinefuse.joint_angles.CONVENTION) in their unit, at the item's time.

From segments: every joint whose two segments the item has (hip from pelvis and thigh, knee from thigh and
shank, ankle from shank and foot, lumbar from pelvis and trunk, shoulder and elbow from the arm segments).
A joint angle rests on two orientations, so it is as good as the worse of them, with both reasons;
a hip, knee or ankle whose rotation is past ``LEG_ROTATION_LIMIT_DEG`` has one segment turned 180 deg about
its long axis (a strap's forward taken backward): its rotation is insufficient, and its flexion and
adduction degraded, saying they are right if the child segment is the one turned and mirrored if the parent;
provenance is ``fused`` where either is fused; its tolerance is theirs added in quadrature (none where
either states none). Where a segment has no value, or the two are in different
worlds (a thigh whose heading is fused from the cameras beside a pelvis in the magnetic world: their
headings differ by an unknown angle, which turns into every joint angle), there is no value: insufficient,
saying why; so too where both are in the ``strap`` world, which is each strap's own (its heading relative to
where it started).

From keypoints: the hips' and knees' flexion and adduction only, from segment frames built on the 3D hips,
shoulders, knees and ankles (kinefuse.joint_angles.keypoint_frames: no keypoint shows a thigh's or shank's
turn about its long axis, so no rotation is given). Each is as good as the worst keypoint it rests on
(missing, filled, a view left out, a bone off its length), the reasons kept; its tolerance is what the
keypoints' stated tolerances allow (``_angle_tolerance_deg``), and past ``max_tolerance_deg`` it is
degraded. A hip's are degraded anyway: the pelvis frame stands on the trunk's line (hip and shoulder
keypoints do not show the pelvis's tilt), so the lumbar spine's bend passes into them (``_TRUNK_LINE``).
And the trunk's lean from the cameras' vertical (their world is z up): ``trunk.lean`` forward along the way
the hips face, ``trunk.side_lean`` to the athlete's left (kinefuse.joint_angles.trunk_lean_deg), as good as
its four keypoints and what their tolerances allow.

From a camera (each camera's view, or the one named by ``camera``): the hips' and knees' flexion as its
image shows them (kinefuse_plugins.metrics.planar_angles), their unit saying "2D projection", the camera's
device id on every value. The angles are in the plane of motion only where that plane faces the camera: the
plane's turn from the image plane is estimated from the hips' and shoulders' apparent widths (the median
over ``OBLIQUITY_S``); past ``max_obliquity_deg`` the values are degraded, saying by how much, and their
tolerance includes what that turn does to the angle besides what the keypoints' tolerances allow; past
``max_tolerance_deg`` of tolerance they are degraded too. Insufficient where a keypoint is
missing or no face keypoint shows which way the athlete faces.
"""

from __future__ import annotations

import collections

import numpy as np

from kinefuse.configschema import Field
from kinefuse.interfaces import ProcessorSpec
from kinefuse.joint_angles import (
    ANGLES,
    CONVENTION,
    KEYPOINT_ANGLES,
    angles_of_frames,
    joint_angles,
    joints_between,
    keypoint_frames,
    trunk_lean_deg,
)
from kinefuse.keypoints import KEYPOINT_NAMES
from kinefuse.types import (
    TRIANGULATED_VIEW,
    WORLD_STRAP,
    DerivedValue,
    MotionItem,
    Provenance,
    Quality,
    QualityLevel,
    SegmentOrientation,
)
from kinefuse_plugins.metrics import planar_angles
from kinefuse_plugins.metrics.quality import SEVERITY, worst

UNIT = f"deg, {CONVENTION}"
# a hip's, knee's or ankle's axial rotation past this is no one's (ranges of motion about 45 deg at the hip,
# 30-40 at the flexed knee, 30 at the ankle-foot: Kapandji, The Physiology of the Joints; AAOS norms)
LEG_ROTATION_LIMIT_DEG = 90.0
OBLIQUITY_S = 2.0  # a camera's plane-of-motion turn is the median of its estimates over this long
PLANAR_UNIT = "deg, 2D projection in the camera's image (flexion +)"
FPPA_UNIT = "deg, 2D frontal plane projection angle in the camera's image (valgus +, Willson & Davis 2008)"
LEAN_UNIT = "deg, 2D projection in the camera's image: trunk from vertical (forward +)"
TRUNK_UNIT = "deg, trunk (hips' to shoulders' midpoint) from the cameras' vertical: forward +, to the left +"
SCHEMA = {
    "revision": Field(
        int, 0, "motion items read: 0 as first published, 1 their fixed-lag smoothed revision", min=0, max=1
    ),
    "motion": Field(str, "motion", "the id of the motion processor whose items are read"),
    "source": Field(
        str,
        "segments",
        "what the angles rest on: segments (straps), keypoints (the 3D view) or camera (2D, one camera's view)",
        choices=("segments", "keypoints", "camera"),
    ),
    "camera": Field(str, "", "camera: the device id of the camera whose view is read (empty: every camera)"),
    "max_obliquity_deg": Field(
        float,
        20.0,
        "camera: a plane of motion turned further from the image plane degrades the angles",
        min=0.0,
        max=90.0,
    ),
    "max_tolerance_deg": Field(
        float,
        5.0,
        "keypoints: an angle its keypoints' tolerances allow more error than this is degraded",
        min=0.1,
        max=180.0,
    ),  # fmt: skip
}
# hips and shoulders do not show the pelvis's tilt: a keypoint pelvis stands on the trunk's line, so a hip's
# angles take in most of the lumbar spine's bend (0.77-0.80 of its flexion on the synthetic athlete's true
# joints: a walk 1.6 deg RMS off, a squat 7.0, a sit-to-stand 12.1; plugins/metrics/tests/test_joint_angles.py)
_TRUNK_LINE = ("the thigh against the trunk's line (hips to shoulders), not the pelvis, whose tilt hip and "
               "shoulder keypoints do not show: the lumbar spine's bend passes into it")  # fmt: skip
# the 3D keypoints each keypoint-made segment frame rests on (kinefuse.joint_angles.keypoint_frames)
_FRAME_POINTS = {"pelvis": ("left_hip", "right_hip", "left_shoulder", "right_shoulder")}
for _side in ("left", "right"):
    _FRAME_POINTS[f"{_side}_thigh"] = (*_FRAME_POINTS["pelvis"], f"{_side}_knee")
    _FRAME_POINTS[f"{_side}_shank"] = (*_FRAME_POINTS["pelvis"], f"{_side}_knee", f"{_side}_ankle")
# the 2D keypoints each planar angle rests on (per side); the face's tell only which way the athlete faces
_PLANAR_JOINT_POINTS = {"hip": ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "{side}_knee"),
                        "knee": ("{side}_hip", "{side}_knee", "{side}_ankle"),
                        "trunk": ("left_hip", "right_hip", "left_shoulder", "right_shoulder")}  # fmt: skip
_FPPA_POINTS = ("left_hip", "right_hip", "{side}_knee", "{side}_ankle")
_PLANAR_POINTS = ("nose", "left_hip", "right_hip", "left_shoulder", "right_shoulder", "left_knee", "right_knee",
                  "left_ankle", "right_ankle")  # fmt: skip
_KEYPOINT_JOINTS = {f"{side}_{joint}": (parent.replace("*", side), f"{side}_{child}")
                    for side in ("left", "right")
                    for joint, parent, child in (("hip", "pelvis", "thigh"), ("knee", "*_thigh", "shank"))}  # fmt: skip


class JointAngles:
    def __init__(self, options: dict, processor_id: str):
        self.processor_id, self.revision, self.motion = processor_id, options["revision"], options["motion"]
        self.angles = {"segments": self._segment_angles, "keypoints": self._keypoint_angles,
                       "camera": self._camera_angles}[options["source"]]  # fmt: skip
        self.max_tolerance_deg = options["max_tolerance_deg"]
        self.camera, self.max_obliquity_deg = options["camera"], options["max_obliquity_deg"]
        self._obliquity: dict[str, collections.deque] = {}  # per camera: its latest items' estimates

    def process(self, batch) -> list:
        return []  # it reads the motion stream (observe), not the raw batches

    def observe(self, items) -> list[DerivedValue]:
        out = []
        for item in items:
            if (
                isinstance(item, MotionItem)
                and item.processor == self.motion
                and item.revision == self.revision
            ):
                out.extend(self.angles(item))
        return out

    def flush(self) -> list:
        return []

    def _segment_angles(self, item: MotionItem) -> list[DerivedValue]:
        segments = {s.segment: s for s in item.segments}
        out = []
        for joint, (parent, child) in joints_between(segments).items():
            a, b = segments[parent], segments[child]
            quality, provenance = _combined(a, b)
            values, tolerance = [None] * 3, None
            if provenance is not None:
                values = joint_angles(joint, np.array(a.quaternion), np.array(b.quaternion))[0].tolist()
                if a.tolerance_deg is not None and b.tolerance_deg is not None:
                    tolerance = float(np.hypot(a.tolerance_deg, b.tolerance_deg))
                if _turned_about_a_long_axis(joint, values):
                    out.extend(self._turned(item, joint, (parent, child), values, quality, provenance))
                    continue
            out.extend(self._values(item, joint, ANGLES, values, quality, provenance, tolerance))
        return out

    def _turned(self, item: MotionItem, joint: str, segments: tuple[str, str], values: list, quality: Quality,
                provenance) -> list:  # fmt: skip
        """A leg joint with one segment turned 180 deg about its long axis: no rotation; flexion and adduction
        degraded, right where the child is the one turned and mirrored where the parent is."""
        parent, child = segments
        why = (f"{joint} rotation {values[2]:+.0f} deg is beyond any {joint.partition('_')[2]}'s: one segment is "
               f"turned 180 deg about its long axis (a strap's forward taken backward)")  # fmt: skip
        also = f"; {quality.reason}" if quality.reason else ""
        kept = Quality(
            QualityLevel.DEGRADED, f"{why}: right if it is the {child}, mirrored if the {parent}{also}"
        )
        return [*self._values(item, joint, ANGLES[:2], values[:2], kept, provenance, None),
                *self._values(item, joint, ANGLES[2:], [None], Quality(QualityLevel.INSUFFICIENT, why + also),
                              None, None)]  # fmt: skip

    def _keypoint_angles(self, item: MotionItem) -> list[DerivedValue]:
        view = next((v for v in item.keypoints if v.view == TRIANGULATED_VIEW), None)
        names = KEYPOINT_NAMES.get(view.keypoint_set, ()) if view is not None else ()
        if not set(_FRAME_POINTS["left_shank"] + _FRAME_POINTS["right_shank"]) <= set(names):
            return []  # no 3D view here, or one without hips, knees and ankles
        points = {name: view.position[None, names.index(name)] for name in names}
        frames = keypoint_frames(points)
        out = []
        for joint, (parent, child) in _KEYPOINT_JOINTS.items():
            quality, provenance = _seen(view, [names.index(n) for n in _FRAME_POINTS[child]])
            values, tolerance = [None] * len(KEYPOINT_ANGLES), None
            if provenance is not None:
                tolerance = _angle_tolerance_deg(view, names, parent, child)
                quality = self._within(quality, tolerance)
                if parent == "pelvis":
                    quality = _on_the_trunk_line(quality)
                values = angles_of_frames(joint, frames[parent], frames[child])[
                    0, : len(KEYPOINT_ANGLES)
                ].tolist()
            tolerance = tolerance if tolerance is not None and np.isfinite(tolerance) else None
            out.extend(self._values(item, joint, KEYPOINT_ANGLES, values, quality, provenance, tolerance))
        return out + self._trunk_lean(item, view, names)

    def _trunk_lean(self, item: MotionItem, view, names) -> list[DerivedValue]:
        """The trunk's lean from the cameras' vertical (their world is z up), forward along the way the hips
        face and to the athlete's left, as good as its four keypoints and their tolerances."""
        corners = [names.index(n) for n in _FRAME_POINTS["pelvis"]]
        quality, provenance = _seen(view, corners)
        values, tolerance = [None, None], None
        if provenance is not None:
            left_hip, right_hip, left_shoulder, right_shoulder = view.position[corners]
            values = [float(v) for v in trunk_lean_deg(left_hip, right_hip, left_shoulder, right_shoulder)]
            tolerance = _trunk_tolerance_deg(view, corners)
            quality = self._within(quality, tolerance)
            tolerance = tolerance if np.isfinite(tolerance) else None
        return [DerivedValue(name, item.time_ns, value, TRUNK_UNIT, provenance or Provenance.MEASURED, quality,
                             self.processor_id, None, self.processor_id, tolerance)
                for name, value in zip(("trunk.lean", "trunk.side_lean"), values, strict=True)]  # fmt: skip

    def _camera_angles(self, item: MotionItem) -> list[DerivedValue]:
        out = []
        for view in item.keypoints:
            names = KEYPOINT_NAMES.get(view.keypoint_set, ())
            if view.view == TRIANGULATED_VIEW or (self.camera and view.view != self.camera):
                continue
            if set(_PLANAR_POINTS) <= set(names):
                out += self._planar(item, view, names)
        return out

    def _planar(self, item: MotionItem, view, names) -> list[DerivedValue]:
        """One camera's 2D angles: each side's hip and knee flexion and knee FPPA, and the trunk's lean."""
        points = {name: view.position[i] for i, name in enumerate(names)}
        towards, oblique = (
            planar_angles.facing(points),
            self._steady_obliquity(view.view, points, item.rate_hz),
        )
        sagittal, frontal = self._planar_quality(oblique, "side"), self._planar_quality(oblique, "front")
        out = []
        for side in ("left", "right"):
            angles = planar_angles.segment_angles(points, side, towards)
            for joint in planar_angles.JOINTS:
                tolerance = _planar_tolerance_deg(view, names, side, joint, oblique, angles)
                out.append(self._planar_value(item, view, names, f"{side}_{joint}.flexion", PLANAR_UNIT,
                                              _PLANAR_JOINT_POINTS[joint], side, towards, sagittal, tolerance,
                                              lambda a=angles, j=joint: planar_angles.flexion_deg(a, j)))  # fmt: skip
            tolerance = _planar_tolerance_deg(view, names, side, "knee", 90.0 - oblique)
            out.append(self._planar_value(item, view, names, f"{side}_knee.fppa", FPPA_UNIT, _FPPA_POINTS, side,
                                          1.0, frontal, tolerance,
                                          lambda s=side: planar_angles.fppa_deg(points, s)))  # fmt: skip
        # ``angles`` holds the trunk's too, which is the same for either side
        tolerance = _planar_tolerance_deg(view, names, "left", "trunk", oblique)
        out.append(self._planar_value(item, view, names, "trunk.lean", LEAN_UNIT, _PLANAR_JOINT_POINTS["trunk"],
                                      "left", towards, sagittal, tolerance,
                                      lambda: planar_angles.trunk_lean_deg(angles)))  # fmt: skip
        return out

    def _planar_value(self, item, view, names, name, unit, needed, side, towards, view_quality, tolerance,
                      compute) -> DerivedValue:  # fmt: skip
        """One 2D angle: insufficient where a keypoint it needs is missing or the facing is unknown (``towards``
        NaN), else ``compute()`` as good as its keypoints, the view (``view_quality``) and its tolerance."""
        keypoints = [names.index(n.format(side=side)) for n in needed]
        quality, provenance = _seen(view, keypoints, "keypoints missing in the image")
        value = None
        if provenance is not None and not np.isfinite(towards):
            quality = Quality(
                QualityLevel.INSUFFICIENT, "which way the athlete faces is not seen (nose, ears, eyes)"
            )
        elif provenance is not None:
            value = compute()
            if quality.level is QualityLevel.GOOD:
                quality = view_quality
            quality = self._within(quality, tolerance or np.nan, "2D projection: the image keypoints'")
        claimed = tolerance if value is not None else None
        return DerivedValue(name, item.time_ns, value, unit, provenance or Provenance.MEASURED, quality,
                            view.source_id, view.view, self.processor_id, claimed)  # fmt: skip

    def _steady_obliquity(self, camera: str, points: dict, rate_hz: float) -> float:
        """The median of the camera's last ``OBLIQUITY_S`` of estimates (an occluded far hip or shoulder
        wanders for a few frames; the camera and the way the athlete moves change slowly); NaN until half of
        them have one."""
        size = max(int(OBLIQUITY_S * rate_hz), 1)
        recent = self._obliquity.setdefault(camera, collections.deque(maxlen=size))
        recent.append(planar_angles.obliquity_deg(points))
        known = [x for x in recent if np.isfinite(x)]
        return float(np.median(known)) if 2 * len(known) >= size else np.nan

    def _planar_quality(self, oblique: float, seen_from: str) -> Quality:
        """Good where the camera sees the athlete from ``seen_from`` ("side": the plane of motion within
        ``max_obliquity_deg`` of the image plane; "front": within it of square to it), else degraded saying
        by how much."""
        off = oblique if seen_from == "side" else 90.0 - oblique
        if off <= self.max_obliquity_deg:
            return Quality(QualityLevel.GOOD)
        shown = "unknown" if not np.isfinite(oblique) else f"about {oblique:.0f} deg"
        square = "in" if seen_from == "side" else "square to"
        return Quality(QualityLevel.DEGRADED, f"2D projection: the plane of motion is {shown} from the image "
                                              f"plane (a view from the {seen_from} has it {square} it, within "
                                              f"{self.max_obliquity_deg:g})")  # fmt: skip

    def _within(self, quality: Quality, tolerance_deg: float, what: str = "the 3D keypoints'") -> Quality:
        """A good keypoint angle whose tolerance (what its keypoints' allow) exceeds ``max_tolerance_deg`` is
        degraded, saying by how much."""
        if quality.level is not QualityLevel.GOOD or tolerance_deg <= self.max_tolerance_deg:
            return quality
        shown = "unknown" if not np.isfinite(tolerance_deg) else f"{tolerance_deg:.0f} deg"
        return Quality(QualityLevel.DEGRADED, f"{what} tolerances allow {shown} "
                                              f"(more than {self.max_tolerance_deg:g} deg)")  # fmt: skip

    def _values(self, item, joint, angles, values, quality, provenance, tolerance) -> list[DerivedValue]:
        return [DerivedValue(f"{joint}.{angle}", item.time_ns, value, UNIT, provenance or Provenance.MEASURED,
                             quality, self.processor_id, None, self.processor_id, tolerance)
                for angle, value in zip(angles, values, strict=True)]  # fmt: skip


def _turned_about_a_long_axis(joint: str, values: list[float]) -> bool:
    """Whether a hip's, knee's or ankle's rotation is past ``LEG_ROTATION_LIMIT_DEG``: one of its segments
    turned 180 deg about its long axis puts the rotation near 180 deg (and, the parent, mirrors the flexion)."""
    return joint.partition("_")[2] in ("hip", "knee", "ankle") and abs(values[2]) > LEG_ROTATION_LIMIT_DEG


def _combined(a: SegmentOrientation, b: SegmentOrientation) -> tuple[Quality, Provenance | None]:
    """The joint's quality from its two segments', and its provenance (None: no value)."""
    missing = [s for s in (a, b) if s.quaternion is None]
    if missing:
        why = "; ".join(f"{s.segment}: {s.quality.reason or 'no value'}" for s in missing)
        return Quality(QualityLevel.INSUFFICIENT, why), None
    if a.world != b.world or a.world == WORLD_STRAP:  # each strap's own world: the heading it started with
        why = f"{a.segment} and {b.segment} are in different worlds ({a.world}, {b.world}): headings not comparable"
        return Quality(QualityLevel.INSUFFICIENT, why), None
    worse = max((a, b), key=lambda s: SEVERITY[s.quality.level])
    reasons = "; ".join(f"{s.segment}: {s.quality.reason}" for s in (a, b) if s.quality.reason)
    fused = Provenance.FUSED in (a.provenance, b.provenance)
    return Quality(worse.quality.level, reasons), Provenance.FUSED if fused else a.provenance


def _on_the_trunk_line(quality: Quality) -> Quality:
    """A hip from keypoints is degraded: its pelvis frame stands on the trunk's line."""
    if quality.level is QualityLevel.INSUFFICIENT:
        return quality
    reasons = "; ".join(r for r in (_TRUNK_LINE, quality.reason) if r)
    return Quality(QualityLevel.DEGRADED, reasons)


def _trunk_tolerance_deg(view, corners: list[int]) -> float:
    """How far (deg) the trunk's line (hips' to shoulders' midpoint) may turn, from its ends' tolerances (each
    midpoint's the mean of its two keypoints') over its length; NaN where a tolerance is unknown."""
    if view.tolerance is None:
        return np.nan
    hips, shoulders = view.position[corners[:2]].mean(axis=0), view.position[corners[2:]].mean(axis=0)
    ends = view.tolerance[corners[:2]].mean() + view.tolerance[corners[2:]].mean()
    return float(np.degrees(ends / np.linalg.norm(shoulders - hips)))


def _angle_tolerance_deg(view, names, parent: str, child: str) -> float:
    """How far (deg) the angle between two keypoint-made frames may be off, from the 3D keypoints' stated
    tolerances: each frame's defining line (a thigh's hip to knee; the pelvis's hip to hip) turns by at most
    the sum of its ends' tolerances over its length, and the two frames' turns add in quadrature. NaN where
    a tolerance is unknown."""

    def turn(a: str, b: str) -> float:
        i, j = names.index(a), names.index(b)
        length = float(np.linalg.norm(view.position[i] - view.position[j]))
        return (view.tolerance[i] + view.tolerance[j]) / length if view.tolerance is not None else np.nan

    side = child.split("_")[0]
    lines = {"pelvis": ("left_hip", "right_hip"), f"{side}_thigh": (f"{side}_hip", f"{side}_knee"),
             f"{side}_shank": (f"{side}_knee", f"{side}_ankle")}  # fmt: skip
    return float(np.degrees(np.hypot(turn(*lines[parent]), turn(*lines[child]))))


def _planar_tolerance_deg(view, names, side: str, joint: str, oblique: float, angles=None) -> float | None:
    """A 2D angle's tolerance: its lines' turns that the keypoints' stated tolerances allow, in quadrature,
    plus (given the segments' ``angles``) what the plane's estimated turn from the image plane does to it;
    None where unknown. ``joint`` "trunk": the trunk's line alone."""
    if view.tolerance is None or not np.isfinite(oblique):
        return None
    lines = {"trunk": (f"{side}_shoulder", f"{side}_hip"), "thigh": (f"{side}_hip", f"{side}_knee"),
             "shank": (f"{side}_knee", f"{side}_ankle")}  # fmt: skip
    turns = []
    for segment in ("trunk",) if joint == "trunk" else planar_angles.JOINTS[joint][:2]:
        i, j = (names.index(n) for n in lines[segment])
        length = float(np.linalg.norm(view.position[i] - view.position[j]))
        turns.append((view.tolerance[i] + view.tolerance[j]) / length)
    tolerance = float(np.degrees(np.linalg.norm(turns)))
    if angles is not None:
        tolerance += planar_angles.projection_error_deg(angles, joint, oblique)
    return tolerance if np.isfinite(tolerance) else None


def _seen(
    view, keypoints: list[int], missing: str = "3D keypoints missing"
) -> tuple[Quality, Provenance | None]:
    """A keypoint-made angle's quality: the worst of the keypoints it rests on, their distinct reasons kept;
    its provenance the worst of theirs (None: no value)."""
    qualities = [view.quality(k) for k in keypoints]
    poorest = worst(*qualities)
    if poorest.level is QualityLevel.INSUFFICIENT:
        return Quality(QualityLevel.INSUFFICIENT, f"{missing}: {poorest.reason}"), None
    reasons = "; ".join(dict.fromkeys(q.reason for q in qualities if q.reason))
    provenances = {view.provenance(k) for k in keypoints}
    provenance = next((p for p in _PROVENANCE_ORDER if p in provenances), Provenance.MEASURED)
    return Quality(poorest.level, reasons), provenance


_PROVENANCE_ORDER = (Provenance.EXTRAPOLATED, Provenance.FILLED, Provenance.FUSED, Provenance.MEASURED)

SPEC = ProcessorSpec("joint_angles", JointAngles, SCHEMA, __doc__.strip())
