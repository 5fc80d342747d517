"""Processor ``sway``: postural sway in quiet stance (single-leg or two-leg balance) from a strap on the
pelvis or trunk, over windows of the motion stream.

Quiet stance is an inverted pendulum about the ankles (Winter 1995, Gait Posture 3(4):193-214): the body,
and a strap on its lower back or trunk, tilts with it. Over each ``window_s`` of the ``motion`` processor's
items (``revision``), the ``segment``'s tilt from its mean orientation, forward (AP) and to the left (ML),
and its measures (kinefuse.sway: the strap's mounting cancels from them), as metrics at the window's end:
``sway.rms``, ``sway.ap_rms``, ``sway.ml_rms`` (deg, root mean square distance from the mean),
``sway.velocity`` (deg/s, the tilt path's length over the window) and ``sway.area`` (deg², its 95 %
confidence ellipse).

Each is as good as the worst orientation in the window, leaving out what the motion stream says of the
strap's mounting or the heading (the measures do not depend on them). Insufficient where the window has an orientation
missing for longer than ``max_gap_s``, where it changes world (the heading's reference changed), or where the
tilt ranges over more than ``max_range_deg`` (not quiet stance: a step, a squat, walking). The AP/ML split
rests on the segment's forward axis: with the strap's mounting not calibrated (a pelvis or trunk strap keeps
the nominal one: docs/fusion.md) ``sway.ap_rms`` and ``sway.ml_rms`` are degraded, saying so; the others do
not depend on it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse import sway
from kinefuse.configschema import Field
from kinefuse.interfaces import ProcessorSpec
from kinefuse.types import DerivedValue, MotionItem, Provenance, Quality, QualityLevel
from kinefuse_plugins.metrics.quality import worst

SCHEMA = {
    "motion": Field(str, "motion", "the id of the motion processor whose items are read"),
    "revision": Field(int, 0, "items read: 0 as first published, 1 their smoothed revision", min=0, max=1),
    "segment": Field(str, "pelvis", "the segment whose strap's tilt is the sway", choices=("pelvis", "trunk")),
    "window_s": Field(float, 10.0, "sway is measured over windows this long, s", min=2.0, max=120.0),
    "max_gap_s": Field(float, 0.2, "an orientation missing longer than this in a window makes it insufficient, s",
                       min=0.0, max=10.0),
    "max_range_deg": Field(float, 8.0, "a tilt ranging further than this in a window is no quiet stance, deg",
                           min=0.5, max=90.0),
}  # fmt: skip
_NOMINAL = "mounting not calibrated"  # in the motion stream's reason for a strap on its nominal mounting
# the motion stream's reasons the tilt's measures do not depend on (to first order): the mounting cancels from
# a turn, and a heading (a turn about the vertical) is left out of the tilt
_IRRELEVANT = (_NOMINAL, "heading")
_SPLIT = "forward and sideways from the strap's nominal mounting: worn otherwise, the two mix"


@dataclasses.dataclass
class _Window:
    start_ns: int
    time_ns: list = dataclasses.field(default_factory=list)
    quaternion: list = dataclasses.field(default_factory=list)  # (w, x, y, z); None where missing
    quality: list = dataclasses.field(default_factory=list)
    world: set = dataclasses.field(default_factory=set)
    source: tuple[str, str] | None = None


class Sway:
    def __init__(self, options: dict, processor_id: str):
        self.options, self.processor_id = options, processor_id
        self._window: _Window | None = None

    def device_added(self, declaration) -> list:
        return []

    def process(self, batch) -> list:
        return []

    def observe(self, items) -> list:
        out = []
        for item in items:
            if (isinstance(item, MotionItem) and item.processor == self.options["motion"]
                    and item.revision == self.options["revision"]):  # fmt: skip
                out += self._add(item)
        return out

    def flush(self) -> list:
        return []  # a window cut short is no window: nothing measured is reported

    def _add(self, item: MotionItem) -> list:
        segment = next((s for s in item.segments if s.segment == self.options["segment"]), None)
        if segment is None:
            return []
        window_ns = int(self.options["window_s"] * 1e9)
        out = []
        if self._window is not None and item.time_ns >= self._window.start_ns + window_ns:
            out = self._report(self._window)
            self._window = None
        if self._window is None:
            self._window = _Window(item.time_ns)
        window = self._window
        window.time_ns.append(item.time_ns)
        window.quaternion.append(segment.quaternion)
        window.quality.append(segment.quality)
        window.source = (segment.source_id, segment.device_id)
        if segment.quaternion is not None:
            window.world.add(segment.world)
        return out

    def _report(self, window: _Window) -> list[DerivedValue]:
        end_ns = window.time_ns[-1]
        problem = self._problem(window)
        present = [k for k, q in enumerate(window.quaternion) if q is not None]
        values = {} if problem else _measure(window, present)
        if not problem and values["range"] > self.options["max_range_deg"]:
            problem = (f"the tilt ranged over {values['range']:.1f} deg (over {self.options['max_range_deg']:g}): "
                       "not quiet stance")  # fmt: skip
        quality = (Quality(QualityLevel.INSUFFICIENT, problem) if problem
                   else worst(*(_for_tilt(window.quality[k]) for k in present)))  # fmt: skip
        split = quality
        if not problem and any(_NOMINAL in window.quality[k].reason for k in present):
            split = Quality(QualityLevel.DEGRADED, "; ".join(r for r in (quality.reason, _SPLIT) if r))
        out = []
        for name, unit in sway.MEASURES.items():
            part = split if name in ("ap_rms", "ml_rms") else quality
            value = None if problem else values[name]
            out.append(DerivedValue(f"sway.{name}", end_ns, value, unit, Provenance.MEASURED, part,
                                    window.source[0], window.source[1], self.processor_id))  # fmt: skip
        return out

    def _problem(self, window: _Window) -> str:
        """Why the window cannot be measured, or ''."""
        times = np.array(window.time_ns) / 1e9
        present = np.array([q is not None for q in window.quaternion])
        if present.sum() < 3:
            return f"{int(present.sum())} orientations of the {self.options['segment']} in the window"
        gaps = np.diff(times[present], prepend=times[0], append=times[-1])
        if gaps.max() > self.options["max_gap_s"]:
            return (f"the {self.options['segment']}'s orientation was missing for {gaps.max():.2f} s "
                    f"(over {self.options['max_gap_s']:g} s)")  # fmt: skip
        if len(window.world) > 1:
            return f"the orientations changed world within the window ({', '.join(sorted(window.world))})"
        return ""


def _for_tilt(quality: Quality) -> Quality:
    """``quality`` without the motion stream's reasons (its "; "-joined parts) about the strap's mounting or
    the heading, which the tilt's measures do not depend on: good where nothing else is left."""
    if quality.level is not QualityLevel.DEGRADED:
        return quality
    rest = [part for part in quality.reason.split("; ") if not any(word in part for word in _IRRELEVANT)]
    return Quality(QualityLevel.DEGRADED, "; ".join(rest)) if rest else Quality(QualityLevel.GOOD)


def _measure(window: _Window, present: list[int]) -> dict[str, float]:
    """The sway measures of the window's orientations at ``present`` (those with a value)."""
    quaternions = np.array([window.quaternion[k] for k in present], dtype=np.float64)
    rotations = Rotation.from_quat(quaternions[:, [1, 2, 3, 0]])  # stored w, x, y, z; scipy's x, y, z, w
    return sway.measures(sway.tilt(rotations), np.array([window.time_ns[k] for k in present]) / 1e9)


SPEC = ProcessorSpec("sway", Sway, SCHEMA, __doc__.strip())
