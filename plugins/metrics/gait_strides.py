"""Strides from one foot's contacts and the two feet's symmetry: the ``gait`` processor's metrics.

A stride is initial contact to the same foot's next initial contact with one final contact between; its
stance runs to that final contact, its swing from it. Its step time is from the other foot's initial
contact inside the stride to the stride's end (a step ends with this foot's contact). Each value is as good
as the worst contact it rests on (an insufficient one leaves it none) and claims their tolerances added in
quadrature; a time between contacts of different kinds or feet is no better than their ``between`` (a
lower-back strap's contacts: each kind and foot has its own bias). Left/right symmetry is the symmetry
index of Robinson et al. 1987 (J Manipulative Physiol Ther 10(4):172-176) on the median of each foot's
recent strides with a value: 100 (left - right) / ((left + right) / 2), in percent, degraded where a
degraded value is among them.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from kinefuse.types import DerivedValue, Provenance, Quality, QualityLevel

SIDES = ("left", "right")
STRIDE_VALUES = ("stride_time", "stance_time", "swing_time", "step_time")
LONG_STRIDE = 1.5  # a stride this many times the foot's median is one with a swing missed in it
SI_UNIT = "%, symmetry index 100 (left - right) / mean (Robinson et al. 1987)"


@dataclasses.dataclass(frozen=True)
class Contact:
    time_ns: int
    initial: bool  # initial contact, else final
    quality: Quality
    tolerance_s: float  # what its time claims (twice its standard deviation)
    step_length: tuple[float, float, Quality] | None = (
        None  # initial contacts from positions: (m, tolerance m, quality)
    )
    between: Quality | None = None  # a time from it to a contact of another kind or foot is at best this
    stride_length: tuple[float, float, Quality] | None = (
        None  # a foot strap's initial contact: the stride it ends
    )


@dataclasses.dataclass
class _Foot:
    contacts: list[Contact] = dataclasses.field(default_factory=list)
    strides: collections.deque = dataclasses.field(default_factory=lambda: collections.deque(maxlen=200))


class Strides:
    """Turns contacts, foot by foot in time order, into stride metrics and symmetry indices."""

    def __init__(self, processor_id: str, source_id: str, symmetry_strides: int, min_strides: int):
        self.processor_id, self.source_id = processor_id, source_id
        self.symmetry_strides, self.min_strides = symmetry_strides, min_strides
        self._feet = {side: _Foot() for side in SIDES}

    def add(self, side: str, contact: Contact, device_id: str) -> list[DerivedValue]:
        foot = self._feet[side]
        foot.contacts = [c for c in foot.contacts if c.time_ns < contact.time_ns][-8:] + [contact]
        if not contact.initial:
            return []
        starts = [c for c in foot.contacts[:-1] if c.initial]
        if not starts:
            return []
        stride = self._stride(side, starts[-1], contact, foot)
        foot.strides.append(stride)
        return [*self._stride_values(side, stride, device_id), *self._step_values(side, stride, device_id),
                *self._stride_length_values(side, stride, device_id),
                *self._symmetry(contact.time_ns, device_id)]  # fmt: skip

    def _stride(self, side: str, start: Contact, end: Contact, foot: _Foot) -> dict:
        finals = [c for c in foot.contacts if not c.initial and start.time_ns < c.time_ns < end.time_ns]
        other = [c for c in self._feet[_other(side)].contacts
                 if c.initial and start.time_ns < c.time_ns < end.time_ns]  # fmt: skip
        seconds = (end.time_ns - start.time_ns) / 1e9
        nan = (np.nan, ())
        values = {
            "stride_time": (seconds, (start, end)),
            "stance_time": nan,
            "swing_time": nan,
            "step_time": nan,
        }
        if len(finals) == 1:
            values["stance_time"] = ((finals[0].time_ns - start.time_ns) / 1e9, (start, finals[0]))
            values["swing_time"] = ((end.time_ns - finals[0].time_ns) / 1e9, (finals[0], end))
        if len(other) == 1:
            values["step_time"] = ((end.time_ns - other[0].time_ns) / 1e9, (other[0], end))
        reason = self._stride_problem(start, end, finals, seconds, foot)
        return {"time_ns": end.time_ns, "values": values, "reason": reason, "other": other}

    def _stride_problem(self, start, end, finals, seconds: float, foot: _Foot) -> str:
        """Why the stride cannot be used, or ''."""
        for name, contact in (("its initial contact", start), ("its end", end)):
            if contact.quality.level is QualityLevel.INSUFFICIENT:
                return f"{name}: {contact.quality.reason}"
        if len(finals) != 1:
            return f"{len(finals)} final contacts between its initial contacts (a contact missed)"
        if finals[0].quality.level is QualityLevel.INSUFFICIENT:
            return f"its final contact: {finals[0].quality.reason}"
        usual = [s["values"]["stride_time"][0] for s in foot.strides if not s["reason"]]
        if len(usual) >= 3 and seconds > LONG_STRIDE * float(np.median(usual)):
            return f"{seconds:.2f} s, over {LONG_STRIDE}x the usual stride: a swing missed"
        return ""

    def _stride_values(self, side: str, stride: dict, device_id: str) -> list[DerivedValue]:
        out = []
        for name in STRIDE_VALUES:
            (value, contacts), reason = stride["values"][name], stride["reason"]
            if not reason and name == "step_time":
                if not stride["other"]:
                    reason = "the other foot's initial contact inside the stride is not known"
                elif stride["other"][0].quality.level is QualityLevel.INSUFFICIENT:
                    reason = f"the other foot's initial contact: {stride['other'][0].quality.reason}"
            out.append(self._value(f"gait.{side}.{name}", stride["time_ns"], None if reason else value, "s",
                                   reason, device_id, contacts, mixed=name != "stride_time"))  # fmt: skip
        seconds, contacts = stride["values"]["stride_time"]
        out.append(self._value("gait.cadence", stride["time_ns"], None if stride["reason"] else 120.0 / seconds,
                               "steps/min", stride["reason"], device_id, contacts,
                               scale=120.0 / seconds**2))  # fmt: skip
        return out

    def _step_values(self, side: str, stride: dict, device_id: str) -> list[DerivedValue]:
        """Where the stride's end knows its step length (contacts from positions): it, and the walking speed
        over the step (its length over its time)."""
        end = stride["values"]["stride_time"][1][1]
        if end.step_length is None:
            return []
        length, tolerance, quality = end.step_length
        out = [
            self._length(f"gait.{side}.step_length", end.time_ns, length, "m", tolerance, quality, device_id)
        ]
        step_time, contacts = stride["values"]["step_time"]
        if stride["reason"] or not contacts or quality.level is QualityLevel.INSUFFICIENT:
            why = stride["reason"] or quality.reason or "the step's time is not known"
            out.append(self._length("gait.speed", end.time_ns, None, "m/s", None, Quality(QualityLevel.INSUFFICIENT,
                                                                                       why), device_id))  # fmt: skip
            return out
        lost = next((c for c in contacts if c.quality.level is QualityLevel.INSUFFICIENT), None)
        if lost is not None:
            out.append(self._length("gait.speed", end.time_ns, None, "m/s", None, lost.quality, device_id))
            return out
        time_tolerance = float(np.hypot(*[c.tolerance_s for c in contacts]))
        speed = length / step_time
        claimed = (
            None
            if tolerance is None
            else speed * float(np.hypot(tolerance / length, time_tolerance / step_time))
        )
        worst = _worst([quality, *(c.quality for c in contacts)])
        out.append(self._length("gait.speed", end.time_ns, speed, "m/s", claimed, worst, device_id))
        return out

    def _stride_length_values(self, side: str, stride: dict, device_id: str) -> list[DerivedValue]:
        """Where the stride's end knows the stride's length (a foot strap): it, and the walking speed over the
        stride (its length over its time)."""
        end = stride["values"]["stride_time"][1][1]
        if end.stride_length is None:
            return []
        length, tolerance, quality = end.stride_length
        if stride["reason"]:  # a swing missed: the rests would be two strides apart
            quality = Quality(QualityLevel.INSUFFICIENT, stride["reason"])
        out = [
            self._length(
                f"gait.{side}.stride_length", end.time_ns, length, "m", tolerance, quality, device_id
            )
        ]
        seconds, contacts = stride["values"]["stride_time"]
        if quality.level is QualityLevel.INSUFFICIENT:
            return [*out, self._length("gait.speed", end.time_ns, None, "m/s", None, quality, device_id)]
        speed = length / seconds
        time_tolerance = float(np.hypot(*[c.tolerance_s for c in contacts]))
        claimed = speed * float(np.hypot(tolerance / length, time_tolerance / seconds))
        worst = _worst([quality, *(c.quality for c in contacts)])
        return [*out, self._length("gait.speed", end.time_ns, speed, "m/s", claimed, worst, device_id)]

    def _length(self, name, time_ns, value, unit, tolerance, quality, device_id) -> DerivedValue:
        if quality.level is QualityLevel.INSUFFICIENT or value is None or not np.isfinite(value):
            quality = quality if quality.level is QualityLevel.INSUFFICIENT else Quality(QualityLevel.INSUFFICIENT,
                                                                                           "not measured")  # fmt: skip
            return DerivedValue(name, time_ns, None, unit, Provenance.MEASURED, quality, self.source_id, device_id,
                                self.processor_id)  # fmt: skip
        return DerivedValue(name, time_ns, float(value), unit, Provenance.MEASURED, quality, self.source_id,
                            device_id, self.processor_id, tolerance)  # fmt: skip

    def _symmetry(self, time_ns: int, device_id: str) -> list[DerivedValue]:
        out = []
        for name in STRIDE_VALUES:
            recent = {side: [s for s in list(self._feet[side].strides)[-self.symmetry_strides:]
                             if not s["reason"] and np.isfinite(s["values"][name][0])] for side in SIDES}  # fmt: skip
            counts = f"over {len(recent['left'])} left and {len(recent['right'])} right strides"
            value, quality = None, Quality(QualityLevel.GOOD, counts)
            if min(len(v) for v in recent.values()) < self.min_strides:
                why = (
                    f"{counts} of the last {self.symmetry_strides}: {self.min_strides} good ones each needed"
                )
                quality = Quality(QualityLevel.INSUFFICIENT, why)
            else:
                left, right = (
                    float(np.median([s["values"][name][0] for s in recent[side]])) for side in SIDES
                )
                value = 100.0 * (left - right) / (0.5 * (left + right))
                contacts = [c for side in SIDES for s in recent[side] for c in s["values"][name][1]]
                quality = _worst(_qualities(contacts, mixed=name != "stride_time"), counts)
            out.append(DerivedValue(f"gait.{name}_si", time_ns, value, SI_UNIT, Provenance.MEASURED, quality,
                                    self.source_id, device_id, self.processor_id))  # fmt: skip
        return out

    def _value(self, name, time_ns, value, unit, reason, device_id, contacts, scale=1.0,
               mixed: bool = False) -> DerivedValue:  # fmt: skip
        if value is not None and not np.isfinite(value):
            value, reason = None, reason or "not measured"
        if value is None:
            return DerivedValue(name, time_ns, None, unit, Provenance.MEASURED,
                                Quality(QualityLevel.INSUFFICIENT, reason), self.source_id, device_id,
                                self.processor_id)  # fmt: skip
        tolerance = scale * float(np.hypot(*[c.tolerance_s for c in contacts]))
        return DerivedValue(name, time_ns, value, unit, Provenance.MEASURED, _worst(_qualities(contacts, mixed)),
                            self.source_id, device_id, self.processor_id, tolerance)  # fmt: skip


def _qualities(contacts, mixed: bool) -> list[Quality]:
    """The contacts' qualities, and for a time between contacts of different kinds or feet their ``between``."""
    return [c.quality for c in contacts] + [c.between for c in contacts if mixed and c.between is not None]


def _worst(qualities: list[Quality], also: str = "") -> Quality:
    """Good, or degraded with the distinct reasons of the degraded ones (and ``also``)."""
    reasons = list(dict.fromkeys(q.reason for q in qualities if q.level is QualityLevel.DEGRADED))
    if not reasons:
        return Quality(QualityLevel.GOOD, also)
    return Quality(QualityLevel.DEGRADED, "; ".join([*reasons, also] if also else reasons))


def _other(side: str) -> str:
    return SIDES[1 - SIDES.index(side)]
