"""Stream items as JSON-ready records, one per sample, for the status socket and ``kinefuse tail``.

Batches are converted column-wise with numpy ``tolist()`` so that the only Python loop is the one that
assembles each sample's dict.  Every record has a ``type``: imu, keypoints, metric, event, motion or device.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable

import numpy as np

from kinefuse.types import (
    DerivedValue,
    DeviceAdded,
    Event,
    ImuBatch,
    ImuSample,
    KeypointBatch,
    KeypointStatus,
    KeypointView,
    MotionItem,
    Provenance,
    QualityLevel,
    SegmentOrientation,
)

_DECIMALS = 4  # enough for m/s^2, rad/s, uT and sub-pixel keypoints; keeps lines short
IMU_UNITS = {"acc": ImuSample.ACC_UNIT, "gyr": ImuSample.GYR_UNIT, "mag": ImuSample.MAG_UNIT}
KINDS = {  # stream item type -> the ``type`` of its records
    ImuBatch: "imu",
    KeypointBatch: "keypoints",
    DerivedValue: "metric",
    Event: "event",
    MotionItem: "motion",
    DeviceAdded: "device",
}


def kind(item: object) -> str:
    """The record ``type`` an item becomes; TypeError for anything that is not a stream item."""
    try:
        return KINDS[type(item)]
    except KeyError:
        raise TypeError(f"not a stream item: {type(item).__name__}") from None


def records(item: object) -> list[dict]:
    """The JSON-ready records of one stream item: one per sample for batches, else exactly one."""
    return _CONVERTERS[kind(item)](item)


def encode(rows: Iterable[dict]) -> bytes:
    """Newline-delimited JSON, one compact line per record."""
    return b"".join(json.dumps(r, separators=(",", ":"), default=jsonable).encode() + b"\n" for r in rows)


def jsonable(value: object) -> object:
    """``json.dumps`` fallback for what plugins put in event details and status: numpy values, dataclasses."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _rounded(values: np.ndarray) -> list:
    # float32 keypoints are widened first: rounding in float32 would print as 0.12340000271797180;
    # adding 0.0 turns the -0.0 that rounding leaves of tiny negatives into 0.0
    rounded = np.round(values.astype(np.float64, copy=False), _DECIMALS) + 0.0
    missing = np.isnan(rounded)
    if not missing.any():
        return rounded.tolist()
    cells = rounded.astype(object)  # a missing keypoint's NaN becomes null: JSON has no NaN
    cells[missing] = None
    return cells.tolist()


def _times(batch: ImuBatch | KeypointBatch) -> list:
    """Aligned host-monotonic times, or nulls for a batch that never went through clock alignment."""
    return [None] * len(batch) if batch.time_ns is None else batch.time_ns.tolist()


def _sample_headers(batch: ImuBatch | KeypointBatch, record_type: str) -> list[dict]:
    """What every sample record carries: who sent it, its sequence number and its three times."""
    columns = zip(
        batch.seq.tolist(), batch.device_time.tolist(), batch.host_ns.tolist(), _times(batch), strict=True
    )
    return [
        {
            "type": record_type,
            "source": batch.source_id,
            "device": batch.device_id,
            "seq": seq,
            "device_time": device_time,
            "host_ns": host_ns,
            "t_ns": t_ns,
            "provenance": Provenance.MEASURED.value,
            "quality": QualityLevel.GOOD.value,
        }
        for seq, device_time, host_ns, t_ns in columns
    ]


def _imu(batch: ImuBatch) -> list[dict]:
    mags = [None] * len(batch) if batch.mag is None else _rounded(batch.mag)
    columns = zip(_sample_headers(batch, "imu"), _rounded(batch.acc), _rounded(batch.gyr), mags, strict=True)
    return [
        {**head, "acc": acc, "gyr": gyr, "mag": mag, "units": IMU_UNITS} for head, acc, gyr, mag in columns
    ]


def _keypoints(batch: KeypointBatch) -> list[dict]:
    columns = zip(_sample_headers(batch, "keypoints"), _rounded(batch.keypoints), strict=True)
    records = [{**head, "keypoint_set": batch.keypoint_set, "keypoints": kp} for head, kp in columns]
    if batch.track_id is not None:
        for record, track_id in zip(records, batch.track_id.tolist(), strict=True):
            record["track_id"] = track_id if track_id >= 0 else None
    if batch.others is not None:  # everyone else the source followed: [{track_id, keypoints}, ...]
        for record, people, ids in zip(records, batch.others, batch.other_ids.tolist(), strict=True):
            record["others"] = [{"track_id": i, "keypoints": _rounded(p)} for p, i in zip(people, ids, strict=True)
                                if i >= 0]  # fmt: skip
    return records


def _metric(value: DerivedValue) -> list[dict]:
    return [
        {
            "type": "metric",
            "name": value.name,
            "source": value.source_id,
            "device": value.device_id,
            "processor": value.processor,
            "t_ns": value.time_ns,
            "value": value.value,
            "unit": value.unit,
            "provenance": value.provenance.value,
            "quality": value.quality.level.value,
            "quality_reason": value.quality.reason,
            "tolerance": value.tolerance,
        }
    ]


def _event(event: Event) -> list[dict]:
    return [
        {
            "type": "event",
            "kind": event.kind,
            "source": event.source_id,
            "device": event.device_id,
            "processor": event.processor,
            "t_ns": event.time_ns,
            "detail": event.detail,
            "provenance": event.provenance.value,
            "quality": event.quality.level.value,
            "quality_reason": event.quality.reason,
        }
    ]


def _segment(segment: SegmentOrientation) -> dict:
    quaternion = None if segment.quaternion is None else _rounded(np.array(segment.quaternion))
    return {
        "source": segment.source_id,
        "device": segment.device_id,
        "quaternion": quaternion,
        "provenance": None if segment.provenance is None else segment.provenance.value,
        "quality": segment.quality.level.value,
        "quality_reason": segment.quality.reason,
        "tolerance_deg": segment.tolerance_deg,
        "world": segment.world,
    }


# a keypoint status's provenance, quality and reason as a record lists them
_STATUS_FIELDS = {
    int(s): (None if s.provenance is None else s.provenance.value, s.quality.level.value, s.quality.reason)
    for s in KeypointStatus
}


def _view(view: KeypointView) -> dict:
    provenance, quality, reason = (list(column) for column in zip(
        *(_STATUS_FIELDS[code] for code in view.status.tolist()), strict=True))  # fmt: skip
    out = {
        "source": view.source_id,
        "keypoint_set": view.keypoint_set,
        "unit": view.unit,
        "position": _rounded(view.position),
        "sigma": _rounded(view.sigma),
        "tolerance": None if view.tolerance is None else _rounded(view.tolerance),
        "provenance": provenance,
        "quality": quality,
        "quality_reason": reason,
    }
    found = view.triangulation
    if found is not None:
        for k in np.flatnonzero(found.checks).tolist():  # a check can only lower a good keypoint's quality
            checked = view.quality(k)
            quality[k], reason[k] = checked.level.value, checked.reason
        out |= {
            "views": found.views.tolist(),
            "error_px": _rounded(found.error_px),
            "checks": found.checks.tolist(),
        }
    return out


def _motion(item: MotionItem) -> list[dict]:
    return [
        {
            "type": "motion",
            "processor": item.processor,
            "t_ns": item.time_ns,
            "rate_hz": item.rate_hz,
            "revision": item.revision,
            "segments": {segment.segment: _segment(segment) for segment in item.segments},
            "keypoints": {view.view: _view(view) for view in item.keypoints},
        }
    ]


def _device(added: DeviceAdded) -> list[dict]:
    device = added.device
    return [
        {
            "type": "device",
            "source": added.source_id,
            "device": device.device_id,
            "kind": device.kind.value,
            "clock_hz": device.clock_hz,
            "keypoint_set": device.keypoint_set,
            "meta": device.meta,
        }
    ]


_CONVERTERS = {"imu": _imu, "keypoints": _keypoints, "metric": _metric, "event": _event, "motion": _motion,
               "device": _device}  # fmt: skip
