"""A stored session back as the pipeline saw it: its device declarations and its batches, aligned times
included, in arrival order (kinefuse.storage.reader.stored_batches); and the live motion processor run
over them again."""

from __future__ import annotations

import numpy as np

from kinefuse.builtin.processors.motion_stream import MotionStream
from kinefuse.types import DeviceAdded, DeviceInfo, DeviceKind, ImuBatch, KeypointBatch, MotionItem


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


def replay_live(processor: MotionStream, added: list[DeviceAdded], inputs: list) -> list[MotionItem]:
    """Every motion item the processor publishes for these declarations and batches, then at its flush, as
    the agent calls it (kinefuse.agent: device_added, process per batch in arrival order, flush at stop).
    Its events (camera offsets, calibration drift, person association) are left out: the live session
    stored them already, and the events table has no place for an analysis's own."""
    for declaration in added:
        processor.device_added(declaration)
    items = [item for batch in inputs for item in processor.process(batch)] + processor.flush()
    return [item for item in items if isinstance(item, MotionItem)]
