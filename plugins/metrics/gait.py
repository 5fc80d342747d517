"""Processor ``gait``: each foot's initial and final contacts from a strap on its foot or shank, its strides
(stride, stance, swing and step time, cadence) and the two feet's symmetry.

A strap takes part when its device declares a ``segment`` of ``left_foot``, ``right_foot``, ``left_shank``
or ``right_shank`` (one per foot: a foot strap is preferred to a shank's). Every ``every_s`` of its samples
the contacts of its last ``window_s`` are found (kinefuse_plugins.metrics.gait_events, on the samples
placed by sequence number; lost ones interpolated) and those at least ``delay_s`` old and not yet reported
go out: the detector needs the swings after a contact to be sure it is one.

Each contact is an event ``initial_contact`` or ``final_contact`` (detail: side, segment). A contact with
any sample missing within ``gap_margin_s`` of it rests on interpolated samples: its quality is
insufficient, saying how many, and so is every stride value resting on it. Strides and symmetry:
kinefuse_plugins.metrics.gait_strides; a stride value claims ``contact_tolerance_s`` per contact.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from kinefuse.configschema import Field
from kinefuse.interfaces import ProcessorSpec
from kinefuse.types import DeviceAdded, DeviceKind, Event, ImuBatch, Provenance, Quality, QualityLevel
from kinefuse_plugins.metrics.gait_events import detect_contacts
from kinefuse_plugins.metrics.gait_strides import Contact, Strides

SCHEMA = {
    "window_s": Field(float, 10.0, "contacts are found over this much of a strap's latest samples, s", min=3.0,
                      max=120.0),
    "every_s": Field(float, 1.0, "... this often, s of samples", min=0.1, max=60.0),
    "delay_s": Field(float, 3.0, "a contact is reported once this old (the swings after it confirm it), s",
                     min=0.5, max=60.0),
    "gap_margin_s": Field(float, 0.05, "a sample missing this close to a contact makes it insufficient, s",
                          min=0.0, max=1.0),
    "contact_tolerance_s": Field(float, 0.02, "what a contact's time claims (twice its standard deviation), s",
                                 min=0.001, max=1.0),
    "symmetry_strides": Field(int, 20, "symmetry indices over each foot's last this many strides", min=2,
                              max=1000),
    "min_strides": Field(int, 10, "... of which this many good ones each are needed", min=1, max=1000),
}  # fmt: skip
_PLACES = {f"{side}_{place}": (side, place) for side in ("left", "right") for place in ("foot", "shank")}


@dataclasses.dataclass
class _Strap:
    side: str
    place: str
    segment: str
    seq: list = dataclasses.field(default_factory=list)
    time_ns: list = dataclasses.field(default_factory=list)
    acc: list = dataclasses.field(default_factory=list)
    gyr: list = dataclasses.field(default_factory=list)
    reported_ns: int = -1  # contacts up to this time are out
    next_ns: int | None = None  # the next detection once samples reach this time

    def add(self, batch: ImuBatch, keep_ns: int) -> None:
        times = batch.time_ns if batch.time_ns is not None else batch.host_ns
        self.seq.append(batch.seq)
        self.time_ns.append(np.asarray(times, dtype=np.int64))
        self.acc.append(batch.acc)
        self.gyr.append(batch.gyr)
        if len(self.seq) > 64:
            self._merge()
            self._trim(keep_ns)

    def window(self, keep_ns: int) -> tuple[np.ndarray, ...]:
        self._merge()
        self._trim(keep_ns)
        return self.seq[0], self.time_ns[0], self.acc[0], self.gyr[0]

    def _merge(self) -> None:
        for name in ("seq", "time_ns", "acc", "gyr"):
            setattr(self, name, [np.concatenate(getattr(self, name))])

    def _trim(self, keep_ns: int) -> None:
        first = int(np.searchsorted(self.time_ns[0], self.time_ns[0][-1] - keep_ns))
        for name in ("seq", "time_ns", "acc", "gyr"):
            setattr(self, name, [getattr(self, name)[0][first:]])


class Gait:
    def __init__(self, options: dict, processor_id: str):
        self.options, self.processor_id = options, processor_id
        self._straps: dict[tuple[str, str], _Strap] = {}
        self._strides: dict[str, Strides] = {}

    def device_added(self, declaration: DeviceAdded) -> list:
        device = declaration.device
        segment = device.meta.get("segment")
        key = (declaration.source_id, device.device_id)
        if device.kind is not DeviceKind.IMU or segment not in _PLACES or key in self._straps:
            return []
        side, place = _PLACES[segment]
        rival = next((k for k, s in self._straps.items() if s.side == side and k[0] == key[0]), None)
        if rival is not None and not (place == "foot" and self._straps[rival].place == "shank"):
            return []  # one strap per foot: the first, or a foot's over a shank's
        self._straps.pop(rival, None)
        self._straps[key] = _Strap(side, place, segment)
        return []

    def process(self, batch) -> list:
        strap = self._straps.get((batch.source_id, batch.device_id))
        if strap is None or not isinstance(batch, ImuBatch) or not len(batch):
            return []
        strap.add(batch, self._keep_ns())
        newest = int(strap.time_ns[-1][-1])
        if strap.next_ns is None:
            strap.next_ns = newest + int(self.options["window_s"] * 1e9)
        if newest < strap.next_ns:
            return []
        strap.next_ns = newest + int(self.options["every_s"] * 1e9)
        return self._report(
            batch.source_id, batch.device_id, strap, newest - int(self.options["delay_s"] * 1e9)
        )

    def flush(self) -> list:
        out = []
        for (source_id, device_id), strap in self._straps.items():
            if strap.seq:
                out += self._report(source_id, device_id, strap, int(strap.window(self._keep_ns())[1][-1]))
        return out

    def _keep_ns(self) -> int:
        return int(self.options["window_s"] * 1e9)

    def _report(self, source_id: str, device_id: str, strap: _Strap, until_ns: int) -> list:
        """The contacts found in the strap's window after those reported and up to ``until_ns``, as events,
        and the strides they end."""
        contacts = self._contacts(strap)
        fresh = [c for c in contacts if strap.reported_ns < c.time_ns <= until_ns]
        strap.reported_ns = max(strap.reported_ns, until_ns)
        strides = self._strides.setdefault(source_id, Strides(
            self.processor_id, source_id, self.options["contact_tolerance_s"], self.options["symmetry_strides"],
            self.options["min_strides"]))  # fmt: skip
        out = []
        for contact in sorted(fresh, key=lambda c: c.time_ns):
            out.append(self._event(source_id, device_id, strap, contact))
            out += strides.add(strap.side, contact, device_id)
        return out

    def _contacts(self, strap: _Strap) -> list[Contact]:
        """Every contact in the strap's window, insufficient where samples near it are missing."""
        seq, time_ns, acc, gyr = strap.window(self._keep_ns())
        index = seq - seq[0]
        if len(seq) < 2 or time_ns[-1] <= time_ns[0]:
            return []
        rate_hz = float(index[-1] / ((time_ns[-1] - time_ns[0]) / 1e9))
        grid = np.arange(index[-1] + 1)
        filled = [np.column_stack([np.interp(grid, index, x[:, k]) for k in range(3)]) for x in (acc, gyr)]
        found = detect_contacts(*filled, rate_hz, strap.place)
        present = np.zeros(len(grid), dtype=bool)
        present[index] = True
        margin = int(round(self.options["gap_margin_s"] * rate_hz))
        out = []
        for where, initial in [(x, True) for x in found.initial] + [(x, False) for x in found.final]:
            near = present[max(int(np.floor(where)) - margin, 0) : int(np.ceil(where)) + margin + 1]
            missing = int(np.sum(~near))
            quality = Quality(QualityLevel.GOOD)
            if missing:
                margin_ms = self.options["gap_margin_s"] * 1e3
                why = f"{missing} samples missing within {margin_ms:.0f} ms: it rests on interpolated ones"
                quality = Quality(QualityLevel.INSUFFICIENT, why)
            out.append(Contact(int(round(np.interp(where, index, time_ns))), initial, quality))
        return out

    def _event(self, source_id: str, device_id: str, strap: _Strap, contact: Contact) -> Event:
        return Event(
            kind="initial_contact" if contact.initial else "final_contact",
            time_ns=contact.time_ns,
            source_id=source_id,
            device_id=device_id,
            detail={"side": strap.side, "segment": strap.segment},
            provenance=Provenance.MEASURED,
            quality=contact.quality,
            processor=self.processor_id,
        )


def _check(options: dict) -> list[tuple[str, str]]:
    if options["min_strides"] > options["symmetry_strides"]:
        return [("min_strides", f"must be at most symmetry_strides ({options['symmetry_strides']})")]
    if options["delay_s"] >= options["window_s"]:
        return [("delay_s", f"must be shorter than window_s ({options['window_s']})")]
    return []


SPEC = ProcessorSpec("gait", Gait, SCHEMA, __doc__.strip(), check=_check)
