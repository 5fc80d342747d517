"""Processor ``landing``: landing mechanics of drop landings and jumps, from a strap on a shank or foot and the
knee's flexion.

In flight the body falls freely and every strap on it feels no specific force: a flight is a run of
samples with |specific force| under ``free_fall_mps2`` lasting at least ``min_flight_s``, starting at the
take-off's threshold crossing (linearly interpolated). The landing is the impact that ends it: the largest
jerk (change of specific force) within 0.1 s after the run (the shank's specific force rises above the
threshold before the foot lands, as the leg swings to meet the floor: 37 ms early on the synthetic drop
landing). A strap whose device declares a ``segment`` of
``left_/right_shank`` or ``left_/right_foot`` takes part (one per side, the first). Every ``every_s`` of its
samples the flights in its last ``window_s`` are found; a landing goes out once ``delay_s`` old (the
take-off after it and the knee's flexion after it are in by then), as an event ``landing`` (detail: side,
segment) and the metrics, per side:

- ``landing.free_fall_time`` (s): the strap's free fall before it; shorter than the flight (toe off to
  heel on) as the leg keeps turning after the toe leaves: 44 ms of 0.495 s on the synthetic drop landing;
  ``landing.peak_acc`` (g): the largest |specific force| within 0.1 s after it, degraded where an axis sits
  at its largest value for three samples or more (the accelerometer's range clipped it: a lower bound).
- From the knee's flexion (the ``angles`` processor's ``<side>_knee.flexion``, listed before it):
  ``landing.knee_flexion_at_contact`` (deg, at the landing, interpolated), ``landing.knee_flexion_peak`` and
  ``landing.time_to_peak`` (s) within ``absorb_s`` after it; as good as the worst angle value used,
  insufficient where the angle has none there.

Observations of how the athlete lands (soft or stiff, quick or slow), never a verdict. A sample missing
within ``gap_margin_s`` of a landing or take-off makes it insufficient (interpolated samples).
"""

from __future__ import annotations

import collections

import numpy as np

from kinefuse.configschema import Field
from kinefuse.interfaces import ProcessorSpec
from kinefuse.types import (
    DerivedValue,
    DeviceAdded,
    DeviceKind,
    Event,
    ImuBatch,
    Provenance,
    Quality,
    QualityLevel,  # fmt: skip
)
from kinefuse_plugins.metrics.quality import worst
from kinefuse_plugins.metrics.strap_samples import StrapSamples

GRAVITY = 9.80665
SCHEMA = {
    "free_fall_mps2": Field(float, 3.0, "|specific force| under this is free fall, m/s²", min=0.1, max=9.0),
    "min_flight_s": Field(float, 0.08, "a free fall this long or longer is a flight, s", min=0.01, max=2.0),
    "window_s": Field(float, 10.0, "landings are found over this much of a strap's latest samples, s", min=2.0,
                      max=120.0),
    "every_s": Field(float, 1.0, "... this often, s of samples", min=0.1, max=60.0),
    "delay_s": Field(float, 3.0, "a landing is reported once this old, s", min=0.5, max=60.0),
    "gap_margin_s": Field(float, 0.02, "a sample missing this close to a landing makes it insufficient, s",
                          min=0.0, max=1.0),
    "angles": Field(str, "joint_angles", "the id of the processor whose knee flexion is read (listed before it)"),
    "absorb_s": Field(float, 0.5, "the knee's peak flexion is looked for this long after a landing, s", min=0.05,
                      max=5.0),
}  # fmt: skip
_SEGMENTS = {f"{side}_{place}": side for side in ("left", "right") for place in ("shank", "foot")}
_PEAK_S = 0.1  # the impact's peak is looked for this long after a landing
_KNEE_VALUES = (("landing.knee_flexion_at_contact", "deg"), ("landing.knee_flexion_peak", "deg"),
                ("landing.time_to_peak", "s"))  # fmt: skip


class Landing:
    def __init__(self, options: dict, processor_id: str):
        self.options, self.processor_id = options, processor_id
        self._straps: dict[tuple[str, str], StrapSamples] = {}
        self._knees: dict[str, collections.deque] = {side: collections.deque() for side in ("left", "right")}

    def device_added(self, declaration: DeviceAdded) -> list:
        device = declaration.device
        side = _SEGMENTS.get(device.meta.get("segment"))
        taken = {strap.side for strap in self._straps.values()}
        if device.kind is DeviceKind.IMU and side is not None and side not in taken:
            segment = device.meta["segment"]
            self._straps[(declaration.source_id, device.device_id)] = StrapSamples(
                side, segment.split("_")[1], segment
            )
        return []

    def observe(self, items) -> list:
        for item in items:
            if isinstance(item, DerivedValue) and item.processor == self.options["angles"]:
                side = item.name.removesuffix("_knee.flexion")
                if side in self._knees and item.name.endswith("_knee.flexion"):
                    self._keep(self._knees[side], item)
        return []

    def _keep(self, recent: collections.deque, value: DerivedValue) -> None:
        recent.append(value)
        while recent[0].time_ns < value.time_ns - self.options["window_s"] * 1e9:
            recent.popleft()

    def process(self, batch) -> list:
        strap = self._straps.get((batch.source_id, batch.device_id))
        if strap is None or not isinstance(batch, ImuBatch) or not len(batch):
            return []
        delay_ns = int(self.options["delay_s"] * 1e9)
        newest = strap.due(
            batch, int(self.options["window_s"] * 1e9), delay_ns, int(self.options["every_s"] * 1e9)
        )
        return (
            [] if newest is None else self._report(batch.source_id, batch.device_id, strap, newest - delay_ns)
        )

    def flush(self) -> list:
        out = []
        for (source_id, device_id), strap in self._straps.items():
            if strap.seq:
                newest = int(strap.window(int(self.options["window_s"] * 1e9))[1][-1])
                out += self._report(source_id, device_id, strap, newest)
        return out

    def _report(self, source_id: str, device_id: str, strap: StrapSamples, until_ns: int) -> list:
        grid = strap.grid(int(self.options["window_s"] * 1e9))
        if grid is None or len(grid.index) < 3:
            return []
        rate_hz, margin_s = grid.rate_hz, self.options["gap_margin_s"]
        force = np.linalg.norm(grid.acc, axis=1)
        jerk = np.linalg.norm(np.gradient(grid.acc, axis=0), axis=1)
        out = []
        for take_off, fall_end in _flights(force, self.options["free_fall_mps2"],
                                           int(np.ceil(self.options["min_flight_s"] * rate_hz))):  # fmt: skip
            land = _impact(jerk, fall_end, max(int(_PEAK_S * rate_hz), 1))
            if land is None or not (strap.reported_ns < grid.time_at(land) <= until_ns):
                continue
            land_ns = grid.time_at(land)
            quality = worst(grid.gap_quality(land, margin_s), grid.gap_quality(take_off, margin_s))
            values = {"landing.free_fall_time": ((land - take_off) / rate_hz, "s", quality),
                      "landing.peak_acc": self._peak(grid.acc, land, rate_hz, quality)}  # fmt: skip
            values |= self._knee(strap.side, land_ns)
            out.append(Event("landing", land_ns, source_id, device_id, {"side": strap.side, "segment": strap.segment},
                             Provenance.MEASURED, quality, self.processor_id))  # fmt: skip
            out += [self._value(name, land_ns, value, unit, q, source_id, device_id, strap.side)
                    for name, (value, unit, q) in values.items()]  # fmt: skip
        strap.reported_ns = max(strap.reported_ns, until_ns)
        return out

    def _peak(self, acc: np.ndarray, land: float, rate_hz: float, quality: Quality) -> tuple:
        after = acc[int(np.floor(land)) : int(np.floor(land)) + max(int(_PEAK_S * rate_hz), 1)]
        if not len(after):
            return None, "g", Quality(QualityLevel.INSUFFICIENT, "no samples after the landing yet")
        top = np.abs(after).max(axis=0)
        flat = int(np.max(np.sum(np.abs(np.abs(after) - top) <= 1e-3 * top, axis=0)))
        if flat >= 3 and quality.level is QualityLevel.GOOD:
            quality = Quality(QualityLevel.DEGRADED, f"clipped: an axis held its largest value for {flat} "
                              "samples (the accelerometer's range): at least this")  # fmt: skip
        return float(np.linalg.norm(after, axis=1).max()) / GRAVITY, "g", quality

    def _knee(self, side: str, land_ns: int) -> dict:
        """The knee's flexion at the landing, its peak within ``absorb_s`` after and the time to it."""
        name = f"{side}_knee.flexion of {self.options['angles']}"
        end_ns = land_ns + int(self.options["absorb_s"] * 1e9)
        around = [v for v in self._knees[side] if land_ns - 1e8 <= v.time_ns <= end_ns]
        valued = [v for v in around if v.value is not None]
        times = np.array([v.time_ns for v in valued], dtype=np.float64)
        if len(valued) < 2 or times[0] > land_ns or times[-1] < end_ns - 1e8:
            none = Quality(QualityLevel.INSUFFICIENT, f"no {name} around the landing")
            return {n: (None, u, none) for n, u in _KNEE_VALUES}
        quality = worst(*(v.quality for v in around))
        if quality.level is QualityLevel.INSUFFICIENT:
            quality = Quality(QualityLevel.DEGRADED, f"{name} missing in places: {quality.reason}")
        values = np.array([v.value for v in valued])
        after = times >= land_ns
        peak = int(np.argmax(np.where(after, values, -np.inf)))
        unit = f"deg, {name}"
        return {"landing.knee_flexion_at_contact": (float(np.interp(land_ns, times, values)), unit, quality),
                "landing.knee_flexion_peak": (float(values[peak]), unit, quality),
                "landing.time_to_peak": ((times[peak] - land_ns) / 1e9, "s", quality)}  # fmt: skip

    def _value(self, name, time_ns, value, unit, quality, source_id, device_id, side) -> DerivedValue:
        if value is None or quality.level is QualityLevel.INSUFFICIENT:
            value = None
            quality = quality if quality.level is QualityLevel.INSUFFICIENT else Quality(
                QualityLevel.INSUFFICIENT, "not measured")  # fmt: skip
        return DerivedValue(name.replace("landing.", f"landing.{side}.", 1), time_ns, value, unit,
                            Provenance.MEASURED, quality, source_id, device_id, self.processor_id)  # fmt: skip


def _flights(force: np.ndarray, threshold: float, min_samples: int) -> list[tuple[float, float]]:
    """(take-off, landing) of each run of ``force`` under ``threshold`` of at least ``min_samples`` that starts
    and ends inside the window, as fractional sample indices at the threshold crossings."""
    falling = force < threshold
    edges = np.flatnonzero(np.diff(falling.astype(np.int8)))
    out = []
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        if falling[start + 1] and end - start >= min_samples:
            out.append((_crossing(force, start, threshold), _crossing(force, end, threshold)))
    return out


def _impact(jerk: np.ndarray, fall_end: float, span: int) -> float | None:
    """The largest jerk within ``span`` samples after a free fall ends (None where they are not all in)."""
    first = int(np.ceil(fall_end))
    if first + span > len(jerk):
        return None
    return float(first + int(np.argmax(jerk[first : first + span])))


def _crossing(y: np.ndarray, i: int, level: float) -> float:
    """Where y crosses ``level`` between samples i and i+1."""
    return i + float((y[i] - level) / (y[i] - y[i + 1]))


def _check(options: dict) -> list[tuple[str, str]]:
    if options["delay_s"] >= options["window_s"]:
        return [("delay_s", f"must be shorter than window_s ({options['window_s']})")]
    return []


SPEC = ProcessorSpec("landing", Landing, SCHEMA, __doc__.strip(), check=_check)
