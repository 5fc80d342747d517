"""A stored session back as the pipeline saw it: its device declarations and its batches, aligned times
included, in arrival order (kinefuse.storage.reader.stored_batches); and processors chained over them again
as the agent chains them."""

from __future__ import annotations

from typing import Any

import numpy as np

from kinefuse.processor_chain import run_chain
from kinefuse.types import DeviceAdded, DeviceInfo, DeviceKind, ImuBatch, KeypointBatch


def declarations(devices: list[dict]) -> list[DeviceAdded]:
    """One DeviceAdded per stored device, in declaration order."""
    return [DeviceAdded(row["source_id"], DeviceInfo(row["device_id"], DeviceKind(row["kind"]), row["clock_hz"],
                                                     row["keypoint_set"], row["meta"]))
            for row in devices]  # fmt: skip


def batches(stored: list[dict], devices: list[dict]) -> list[ImuBatch | KeypointBatch]:
    """The stored batches as pipeline batches. A batch stored before clock alignment filled its times has
    ``time_ns`` None, as it had then; acc, gyr and mag come back as the float32 they were stored in."""
    names = {row["id"]: (row["source_id"], row["device_id"]) for row in devices}
    return [_batch(entry, *names[entry["device_ref"]]) for entry in stored]


def _batch(entry: dict, source_id: str, device_id: str) -> ImuBatch | KeypointBatch:
    time_ns = None if (entry["time_ns"] < 0).any() else entry["time_ns"]
    common = (source_id, device_id, entry["seq"], entry["device_time"], entry["host_ns"])
    if entry["table"] == "imu_samples":
        mag = None if entry["mag"] is None else _float64(entry["mag"])
        return ImuBatch(*common, _float64(entry["acc"]), _float64(entry["gyr"]), mag, time_ns)
    return KeypointBatch(*common, entry["keypoint_set"], entry["keypoints"], time_ns, entry["swap_corrected"],
                         entry["track_id"], entry["others"], entry["other_ids"])  # fmt: skip


def _float64(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def replay_chain(processors: list[tuple[str, Any]], added: list[DeviceAdded], inputs: list,
                 observed: list = ()) -> list[tuple[str, Any]]:  # fmt: skip
    """Every item each processor makes, as (its id, item), of these declarations and batches and then at its
    flush, chained as the agent chains them (kinefuse.processor_chain; here an exception propagates): each
    declaration to every ``device_added``; per batch, in arrival order, each processor's ``observe`` of what
    those before it made of the batch, then its ``process``; the same at flush. ``observed``: items every
    processor is first handed to observe, as made before the chain (an offline analysis's motion items)."""
    for declaration in added:
        for _, processor in processors:
            if hasattr(processor, "device_added"):
                processor.device_added(declaration)
    made = run_chain(processors, lambda p: [], observed) if observed else []
    for batch in inputs:
        made += run_chain(processors, lambda p, batch=batch: p.process(batch))
    return made + run_chain(processors, lambda p: p.flush())
