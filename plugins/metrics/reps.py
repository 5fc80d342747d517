"""Processor ``reps``: repetitions of an exercise (squat, lunge, sit-to-stand) counted on one angle metric,
with each repetition's range of motion, peak and tempo.

It observes the metric ``metric`` (e.g. ``right_knee.flexion``) that the processor ``processor`` listed
before it makes (``joint_angles``). A repetition is an excursion from the rest position and back: the angle
moves ``min_rom_deg`` or more away from its rest value (in ``direction``: ``up`` where the angle grows in a
repetition, as knee flexion in a squat or lunge; ``down`` where it shrinks, as knee flexion in a
sit-to-stand from sitting), turns, and comes back to within ``return_share`` of that excursion of where it
started. Hysteresis on the angle itself: noise smaller than ``min_rom_deg`` neither starts nor ends one.

Each repetition gives, at its end: ``reps.count`` (the repetitions so far), ``reps.rom`` (deg: the farthest
value less the nearer of its start and end), ``reps.peak`` (deg: the farthest value, e.g. squat depth as knee
flexion), ``reps.duration``, ``reps.to_peak`` and ``reps.from_peak`` (s: tempo). Their unit names the angle.
A repetition is as good as the worst angle value inside it, the reason kept.

Observations on each repetition (``observe``: ``processor/metric`` names, e.g. the knee's frontal plane
projection angle from a front camera or the trunk's lean from a side one): at its end, ``reps.<metric>``,
that metric's value farthest from zero inside the repetition (per device), as good as the worst of its
values there, insufficient where it had none. ``compare`` (a metric of ``processor``, e.g. the other knee's
flexion): ``reps.difference``, the repetition's peak less that metric's peak (in the same direction) inside
it, a left/right difference. These
are observations of the movement, for a clinician to read; they judge nothing.

Dropouts: where the angle has no value (insufficient, or no value for longer than ``max_gap_s``) nothing
can be counted. A repetition with such a gap inside it is not counted (its values would be guesses: it is
reported as ``reps.interrupted`` instead), the count starts over from the next rest, and from then on the
count is degraded, saying how many seconds went unseen: it is a lower bound.
"""

from __future__ import annotations

import collections
import dataclasses

from kinefuse.configschema import Field
from kinefuse.interfaces import ProcessorSpec
from kinefuse.types import DerivedValue, Provenance, Quality, QualityLevel
from kinefuse_plugins.metrics.quality import worst

SCHEMA = {
    "processor": Field(str, "joint_angles", "the id of the processor whose metric it reads (listed before it)"),
    "metric": Field(str, "right_knee.flexion", "the angle metric a repetition moves"),
    "direction": Field(str, "up", "up: the angle grows in a repetition (squat, lunge); down: it shrinks "
                       "(sit-to-stand from sitting)", choices=("up", "down")),
    "min_rom_deg": Field(float, 30.0, "an excursion this large or larger is a repetition, deg", min=1.0,
                         max=360.0),
    "return_share": Field(float, 0.25, "a repetition ends back within this share of its excursion of its start",
                          min=0.01, max=0.99),
    "max_gap_s": Field(float, 0.5, "longer than this without a value is a dropout, s", min=0.01, max=60.0),
    "observe": Field(list, [], "processor/metric names whose extreme in each repetition is reported",
                     item_type=str),
    "compare": Field(str, "", "a metric of processor whose peak each repetition's is compared with (the other "
                     "side's)"),
}  # fmt: skip
KEEP_S = 60.0  # observed values are kept this long: no repetition lasts longer


@dataclasses.dataclass
class _Rep:
    start_ns: int
    start: float  # the rest value it left from (in the direction's sign: the excursion grows)
    peak_ns: int
    peak: float
    quality: Quality  # the worst of its values so far
    device_id: str | None
    source_id: str


class Reps:
    def __init__(self, options: dict, processor_id: str):
        self.options, self.processor_id = options, processor_id
        self._sign = 1.0 if options["direction"] == "up" else -1.0
        self._rest: tuple[int, float] | None = None  # (time, value): the lowest since the last repetition
        self._rep: _Rep | None = None
        self._last_ns: int | None = None
        self._count, self._unseen_s = 0, 0.0
        self._observed = {tuple(name.split("/", 1)) for name in options["observe"]}
        self._watched = self._observed | (
            {(options["processor"], options["compare"])} if options["compare"] else set()
        )
        self._seen: dict[tuple, collections.deque] = {}  # (processor, metric, device) -> recent values

    def observe(self, items: list) -> list[DerivedValue]:
        out = []
        for item in items:
            if not isinstance(item, DerivedValue):
                continue
            if (item.processor, item.name) in self._watched:
                self._keep(item)
            if item.name == self.options["metric"] and item.processor == self.options["processor"]:
                out += self._value(item)
        return out

    def _keep(self, value: DerivedValue) -> None:
        recent = self._seen.setdefault((value.processor, value.name, value.device_id), collections.deque())
        recent.append(value)
        while recent[0].time_ns < value.time_ns - KEEP_S * 1e9:
            recent.popleft()

    def process(self, batch) -> list:
        return []

    def flush(self) -> list:
        return []

    def _value(self, value: DerivedValue) -> list[DerivedValue]:
        gap_s = 0.0 if self._last_ns is None else (value.time_ns - self._last_ns) / 1e9
        if value.value is None or gap_s > self.options["max_gap_s"]:
            return self._dropout(value, gap_s)
        self._last_ns = value.time_ns
        angle = self._sign * value.value
        if self._rest is None or (self._rep is None and angle < self._rest[1]):
            self._rest = (value.time_ns, angle)
        if self._rep is None:
            if angle - self._rest[1] >= self.options["min_rom_deg"]:
                self._rep = _Rep(self._rest[0], self._rest[1], value.time_ns, angle, value.quality,
                                 value.device_id, value.source_id)  # fmt: skip
            return []
        return self._during(value, angle)

    def _during(self, value: DerivedValue, angle: float) -> list[DerivedValue]:
        rep = self._rep
        rep.quality = worst(rep.quality, value.quality)
        if angle > rep.peak:
            rep.peak_ns, rep.peak = value.time_ns, angle
        if angle - rep.start > self.options["return_share"] * (rep.peak - rep.start):
            return []
        self._rep, self._rest = None, (value.time_ns, angle)
        self._count += 1
        return self._rep_values(rep, value.time_ns, angle)

    def _dropout(self, value: DerivedValue, gap_s: float) -> list[DerivedValue]:
        """No angle here: a repetition under way is interrupted, and counting starts over at the next rest."""
        if value.value is None:  # unseen from the last value to this one
            unseen = 0.0 if self._last_ns is None else (value.time_ns - self._last_ns) / 1e9
            why = value.quality.reason
        else:  # a value after a silence
            unseen, why = gap_s, f"{gap_s:.2f} s without a value"
        self._unseen_s += unseen
        out = []
        if self._rep is not None:
            interrupted = Quality(QualityLevel.INSUFFICIENT, f"a repetition interrupted: {why}")
            out.append(self._metric("reps.interrupted", value.time_ns, None, "reps", interrupted, self._rep))
        self._rep, self._last_ns = None, value.time_ns
        self._rest = None if value.value is None else (value.time_ns, self._sign * value.value)
        return out

    def _rep_values(self, rep: _Rep, end_ns: int, end: float) -> list[DerivedValue]:
        unit = f"deg, {self.options['metric']}"
        values = [
            ("reps.rom", rep.peak - min(rep.start, end), unit),
            ("reps.peak", self._sign * rep.peak, unit),
            ("reps.duration", (end_ns - rep.start_ns) / 1e9, "s"),
            ("reps.to_peak", (rep.peak_ns - rep.start_ns) / 1e9, "s"),
            ("reps.from_peak", (end_ns - rep.peak_ns) / 1e9, "s"),
        ]
        out = [self._metric(name, end_ns, value, unit, rep.quality, rep) for name, value, unit in values]
        count_quality = Quality(QualityLevel.GOOD)
        if self._unseen_s > 0:
            count_quality = Quality(QualityLevel.DEGRADED, f"at least: {self._unseen_s:.1f} s of "
                                    f"{self.options['metric']} unseen, where repetitions are not counted")  # fmt: skip
        out += self._observations(rep, end_ns)
        return [self._metric("reps.count", end_ns, float(self._count), "reps", count_quality, rep), *out]

    def _observations(self, rep: _Rep, end_ns: int) -> list[DerivedValue]:
        """Each observed metric's extreme inside the repetition, and its peak's difference from ``compare``'s."""
        out = []
        for (processor, name, device_id), recent in self._seen.items():
            inside = [v for v in recent if rep.start_ns <= v.time_ns <= end_ns]
            extreme, quality = _extreme(inside)
            if name == self.options["compare"] and processor == self.options["processor"]:
                peak, quality = _extreme(inside, self._sign)
                difference = None if peak is None else self._sign * rep.peak - peak
                both = worst(rep.quality, quality)
                unit = f"deg, {self.options['metric']} less {name} at their peaks"
                out.append(self._metric("reps.difference", end_ns, difference, unit, both, rep))
            if (processor, name) in self._observed:
                unit = f"{inside[0].unit if inside else 'deg'}; the farthest from 0 in the repetition"
                out.append(DerivedValue(f"reps.{name}", end_ns, extreme, unit, Provenance.MEASURED, quality,
                                        recent[0].source_id, device_id, self.processor_id))  # fmt: skip
        return out

    def _metric(self, name: str, time_ns: int, value, unit: str, quality: Quality, rep: _Rep) -> DerivedValue:
        if quality.level is QualityLevel.INSUFFICIENT:
            value = None
        return DerivedValue(name, time_ns, value, unit, Provenance.MEASURED, quality, rep.source_id,
                            rep.device_id, self.processor_id)  # fmt: skip


def _extreme(values: list[DerivedValue], sign: float | None = None) -> tuple[float | None, Quality]:
    """The value farthest from zero among ``values`` (or, given ``sign``, farthest in its direction: the
    peak of a repetition up or down) and the worst quality among them; None and insufficient where none has
    a value."""
    valued = [v for v in values if v.value is not None]
    if not valued:
        return None, Quality(QualityLevel.INSUFFICIENT, "no value inside the repetition")
    poorest = worst(*(v.quality for v in values))
    if poorest.level is QualityLevel.INSUFFICIENT:
        poorest = Quality(QualityLevel.DEGRADED, f"values missing inside the repetition: {poorest.reason}")
    far = (lambda v: abs(v.value)) if sign is None else (lambda v: sign * v.value)
    return max(valued, key=far).value, poorest


def _check(options: dict) -> list[tuple[str, str]]:
    bad = [name for name in options["observe"] if len([p for p in name.split("/", 1) if p]) != 2]
    return [("observe", f"{bad[0]!r} is not processor/metric")] if bad else []


SPEC = ProcessorSpec("reps", Reps, SCHEMA, __doc__.strip(), check=_check)
