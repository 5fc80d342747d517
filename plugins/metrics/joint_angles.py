"""Processor ``joint_angles``: each joint's three ISB angles from the motion stream's segment orientations.

It observes the items of the ``motion`` processor listed before it in the config (``[[processors]]`` order)
and, for each motion item of ``revision`` (0: as first published; 1: the fixed-lag smoothed revision, which
the stream makes only where a camera's keypoints are smoothed with a lag), gives
every joint whose two segments the item has (kinefuse.joint_angles: hip from pelvis and thigh, knee from
thigh and shank, ankle from shank and foot, lumbar from pelvis and trunk, shoulder and elbow from the arm
segments) as three metrics named ``<joint>.flexion``, ``.adduction`` and ``.rotation``, in degrees, each
saying the convention (kinefuse.joint_angles.CONVENTION) in its unit, at the item's time.

Quality: a joint angle rests on two orientations, so it is as good as the worse of them, with both reasons;
provenance is ``fused`` where either is fused. Where a segment has no value, or the two are in different
worlds (a thigh whose heading is fused from the cameras beside a pelvis in the magnetic world: their
headings differ by an unknown angle, which turns into every joint angle), there is no value: insufficient,
saying why; so too where both are in the ``strap`` world, which is each strap's own (its heading relative to
where it started).
"""

from __future__ import annotations

import numpy as np

from kinefuse.configschema import Field
from kinefuse.interfaces import ProcessorSpec
from kinefuse.joint_angles import ANGLES, CONVENTION, joint_angles, joints_between
from kinefuse.types import (
    WORLD_STRAP,
    DerivedValue,
    MotionItem,
    Provenance,
    Quality,
    QualityLevel,
    SegmentOrientation,
)

UNIT = f"deg, {CONVENTION}"
SCHEMA = {
    "revision": Field(
        int, 0, "motion items read: 0 as first published, 1 their fixed-lag smoothed revision", min=0, max=1
    ),
    "motion": Field(str, "motion", "the id of the motion processor whose items are read"),
}


class JointAngles:
    def __init__(self, options: dict, processor_id: str):
        self.processor_id, self.revision, self.motion = processor_id, options["revision"], options["motion"]

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
                out.extend(self._angles(item))
        return out

    def flush(self) -> list:
        return []

    def _angles(self, item: MotionItem) -> list[DerivedValue]:
        segments = {s.segment: s for s in item.segments}
        out = []
        for joint, (parent, child) in joints_between(segments).items():
            a, b = segments[parent], segments[child]
            quality, provenance = _combined(a, b)
            values = [None] * 3
            if provenance is not None:
                values = joint_angles(joint, np.array(a.quaternion), np.array(b.quaternion))[0].tolist()
            out.extend(DerivedValue(f"{joint}.{angle}", item.time_ns, value, UNIT, provenance or Provenance.MEASURED,
                                    quality, self.processor_id, None, self.processor_id)
                       for angle, value in zip(ANGLES, values, strict=True))  # fmt: skip
        return out


def _combined(a: SegmentOrientation, b: SegmentOrientation) -> tuple[Quality, Provenance | None]:
    """The joint's quality from its two segments', and its provenance (None: no value)."""
    missing = [s for s in (a, b) if s.quaternion is None]
    if missing:
        why = "; ".join(f"{s.segment}: {s.quality.reason or 'no value'}" for s in missing)
        return Quality(QualityLevel.INSUFFICIENT, why), None
    if a.world != b.world or a.world == WORLD_STRAP:  # each strap's own world: the heading it started with
        why = f"{a.segment} and {b.segment} are in different worlds ({a.world}, {b.world}): headings not comparable"
        return Quality(QualityLevel.INSUFFICIENT, why), None
    worse = max((a, b), key=lambda s: _SEVERITY[s.quality.level])
    reasons = "; ".join(f"{s.segment}: {s.quality.reason}" for s in (a, b) if s.quality.reason)
    fused = Provenance.FUSED in (a.provenance, b.provenance)
    return Quality(worse.quality.level, reasons), Provenance.FUSED if fused else a.provenance


_SEVERITY = {QualityLevel.GOOD: 0, QualityLevel.DEGRADED: 1, QualityLevel.INSUFFICIENT: 2}

SPEC = ProcessorSpec("joint_angles", JointAngles, SCHEMA, __doc__.strip())
