"""Contacts on the gaitmap foot-IMU recordings (``<data>/gaitmap``) against their motion-capture reference:
the ``gait`` processor (found through the plugin registry, fed the recording as a strap per foot) beside the
gaitmap package's own pipeline run here on the same file in the same run.

gaitmap (MaD-Lab Erlangen; Küderle et al. 2024, JOSS) is driven as its documentation's full pipeline does:
the sensors aligned to gravity, converted to its foot body frame, BarthDtw stride segmentation (Barth et
al. 2015), then each of its two event detectors on those strides: RamppEventDetection (Rampp et al. 2015)
and HerzerEventDetection. It is an optional bench peer (``pip install '.[bench]'``; gaitmap_mad, which those
algorithms live in, is AGPL: the daemon never imports either); without it the rows say so and give no peer.

Every reference contact pairs with at most one detected one within ``MATCH_S``
(kinefuse.bench.scoring.events.match_events); a row's value is the median |error| over both feet, the
peer the better of gaitmap's two detectors on that contact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.datasets import gaitmap
from kinefuse.bench.scoring.events import match_events
from kinefuse.bench.scoring.gaitmap_peer import NOT_INSTALLED, gaitmap_strides
from kinefuse.bench.scoring.gaitmap_strides import stride_length_rows
from kinefuse.types import DeviceAdded, DeviceInfo, DeviceKind, Event, ImuBatch

MATCH_S = 0.15
BATCH = 20  # samples per batch fed to the processor, as a strap's notifications would
CONTACTS = {"ic": "initial contact", "tc": "final contact"}
PEERS = ("Rampp", "Herzer")


def gaitmap_rows(data: Path) -> list[dict]:
    """Rows for every gaitmap recording under ``data``/gaitmap; none when there is none."""
    folder = Path(data) / "gaitmap"
    if not folder.is_dir():
        return []
    return [row for recording in gaitmap.find_recordings(folder) for row in recording_rows(recording)]


def recording_rows(recording: gaitmap.GaitmapRecording) -> list[dict]:
    feet = gaitmap.load_imu(recording.imu)
    reference = gaitmap.load_stride_events(recording.stride_events)
    items = {side: processor_items(foot, side) for side, foot in feet.items()}
    ours = {side: contacts_of(items[side], feet[side].rate_hz) for side in feet}
    peers, why_not = _peer_contacts(recording.imu)
    rows = []
    for code, label in CONTACTS.items():
        mine = _errors_ms(ours, reference, code)
        theirs = {name: _errors_ms(contacts, reference, code) for name, contacts in peers.items()}
        rows.append(_row(recording.name, label, mine, theirs, why_not))
    return rows + stride_length_rows(recording, items, reference)


def processor_contacts(foot: gaitmap.FootImu, side: str) -> dict[str, np.ndarray]:
    """The ``gait`` processor's contacts (in samples) for one foot's recording fed as a foot strap."""
    return contacts_of(processor_items(foot, side), foot.rate_hz)


def contacts_of(items: list, rate_hz: float) -> dict[str, np.ndarray]:
    """The contacts (in samples) among a ``gait`` processor's ``items``."""
    events = [i for i in items if isinstance(i, Event)]
    return {code: np.array([e.time_ns / 1e9 * rate_hz for e in events if e.kind == f"{kind}_contact"])
            for code, kind in (("ic", "initial"), ("tc", "final"))}  # fmt: skip


def processor_items(foot: gaitmap.FootImu, side: str) -> list:
    """Everything the ``gait`` processor gives for one foot's recording fed as a foot strap."""
    from kinefuse.plugin_loader import load_plugins

    spec = load_plugins(entry_points=False).processors["gait"]
    processor = spec.factory({name: field.default for name, field in spec.schema.items()}, "gait")
    device = DeviceInfo(f"{side}_foot", DeviceKind.IMU, foot.rate_hz, meta={"segment": f"{side}_foot"})
    processor.device_added(DeviceAdded("gaitmap", device))
    items = []
    for start in range(0, len(foot.time_s), BATCH):
        part = slice(start, start + BATCH)
        seq = np.arange(len(foot.time_s))[part]
        time_ns = np.round(foot.time_s[part] * 1e9).astype(np.int64)
        batch = ImuBatch("gaitmap", device.device_id, seq, seq.copy(), time_ns, foot.acc[part], foot.gyr[part],
                         time_ns=time_ns)  # fmt: skip
        items += processor.process(batch)
    return items + processor.flush()


def _peer_contacts(imu: Path) -> tuple[dict, str]:
    """Each gaitmap detector's contacts per foot (samples): {name: {side: {"ic": ..., "tc": ...}}}."""
    try:
        from gaitmap.event_detection import HerzerEventDetection, RamppEventDetection

        _, body, strides = gaitmap_strides(imu)
    except ImportError as exc:
        return {}, NOT_INSTALLED.format(exc.name)
    out = {}
    for name, detector in zip(PEERS, (RamppEventDetection(), HerzerEventDetection()), strict=True):
        found = detector.detect(data=body, stride_list=strides, sampling_rate_hz=gaitmap.RATE_HZ)
        events = found.min_vel_event_list_
        out[name] = {sensor.removesuffix("_sensor"): {code: events[sensor][code].dropna().to_numpy(np.float64)
                                                       for code in CONTACTS} for sensor in events}  # fmt: skip
    return out, ""


def _errors_ms(contacts: dict, reference: dict, code: str) -> dict:
    """Errors (ms) of the matched contacts over both feet, how many reference ones were found, and the
    unmatched detections inside the reference's annotated strides (outside them, at the start, end and the
    turn, the reference annotates nothing)."""
    errors, found, total, extra = [], 0, 0, 0
    for side, strides in reference.items():
        true = strides[code][np.isfinite(strides[code])] / gaitmap.RATE_HZ
        mine = contacts.get(side, {}).get(code, np.empty(0)) / gaitmap.RATE_HZ
        match = match_events(mine, true, MATCH_S)
        errors.append(match.errors_s * 1e3)
        at = mine[match.extra, None] * gaitmap.RATE_HZ
        inside = ((strides["start"] <= at) & (at <= strides["end"])).any(axis=1)
        found, total, extra = found + len(match.pairs), total + len(true), extra + int(np.sum(inside))
    return {"errors": np.concatenate(errors), "found": found, "total": total, "extra": extra}


def _row(name: str, label: str, mine: dict, theirs: dict, why_not: str) -> dict:
    metric = f"{label} |error| median (gait processor, foot straps)"
    median = {peer: float(np.median(np.abs(e["errors"]))) for peer, e in theirs.items() if len(e["errors"])}
    best = min(median, key=median.get) if median else None
    peers = "; ".join(f"gaitmap {peer}: {_describe(theirs[peer])}" for peer in theirs) or why_not
    note = (f"kinefuse: {_describe(mine)}; {peers}; reference from motion capture, {MATCH_S * 1e3:.0f} ms "
            "matching window, both feet")  # fmt: skip
    value = float(np.median(np.abs(mine["errors"]))) if len(mine["errors"]) else None
    return make_row(f"gaitmap {name}", metric, "ms", value, "lower",
                    peer=f"gaitmap {_version()} {best} (BarthDtw strides)" if best else None,
                    peer_value=median.get(best), note=note)  # fmt: skip


def _describe(result: dict) -> str:
    errors = result["errors"]
    if not len(errors):
        return f"none of {result['total']} found"
    p25, p75, p90 = np.percentile(np.abs(errors), [25, 75, 90])
    return (f"{result['found']}/{result['total']} found, {result['extra']} extra within annotated strides, "
            f"signed median {np.median(errors):+.1f} ms, |error| p25/p75/p90 {p25:.1f}/{p75:.1f}/{p90:.1f} "
            "ms")  # fmt: skip


def _version() -> str:
    from importlib.metadata import version

    return version("gaitmap")
