"""Built-in bench ``kinefuse bench stream``: how soon the motion stream publishes an item once its inputs are in.

The real agent runs the ``motion`` processor (its defaults) on 8 straps x 200 Hz and 2 cameras x 30 fps whose
keypoints come from the simulated detector (no pose inference: the pipeline bench's live scenario), in real
time. A subscriber process on the Unix socket takes the motion items only (as ``kinefuse tail --kind motion``
does) and stamps each with ``time.monotonic_ns()`` as it reads it. For each causal item (revision 0) at time T
the input it needs last is, over the devices, the first sample or frame at or after T on the processor's
timeline (a strap's orientation and a camera's filtered keypoints are interpolated between the inputs around
T): the stored aligned times, a camera's moved by the cross-modal offset the processor had applied by then
(its ``camera_offset`` events). Its arrival stamp is the stored ``host_ns``. The latency is the item's
reading minus the latest of those arrivals. An item that went out without some device (``max_wait_s``
passed) is counted apart. CLOCK_MONOTONIC is one clock for the whole machine, so the stamps compare. Goal
(issue 14): p99 <= 20 ms on 2 cores. A second case runs the metrics processors after ``motion``
(``METRICS``: they share the processing loop, so what they cost shows in the same latency).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from kinefuse import hookimpl
from kinefuse.bench import make_row
from kinefuse.bench.pipeline import case_config, describe, own_files
from kinefuse.bench.pipeline_latency import LIVE_SCENARIO, live_source, run_with_subscriber, stream_records
from kinefuse.interfaces import BenchSpec

GOAL_P99_MS = 20.0
# the metrics plugin's processors by type (the daemon does not import plugins; the config names them)
METRICS = [{"id": "joint_angles", "type": "joint_angles"}, {"id": "gait", "type": "gait"},
           {"id": "sway", "type": "sway"}]  # fmt: skip
CASES = {"motion stream": [], "motion stream + metrics (joint_angles, gait, sway)": METRICS}
_SKIP_S = 5.0  # the straps' sample rates are measured and the filters start first: not scored


async def _measure(duration_s: float, after: list[dict]) -> dict:
    with tempfile.TemporaryDirectory(prefix="kinefuse-bench-stream-") as tmp:
        folder = Path(tmp)
        config_path = case_config(
            folder, live_source(duration_s), [{"id": "motion", "type": "motion"}, *after]
        )
        _, received = await run_with_subscriber(config_path, duration_s, __name__)
        return {**received, "inputs": stored_inputs(folder / "bench.db")}


def stored_inputs(path: Path) -> dict[str, tuple[list[int], list[int]]]:
    """Per device, its inputs' times on the processor's timeline and their arrival stamps, from storage."""
    from kinefuse.storage import reader

    db = reader.open_for_reading(path)
    try:
        inputs = {}
        for read in (reader.imu_samples, reader.keypoint_frames):
            rows = read(db)
            for device in set(rows["device_id"].tolist()):
                mine = rows["device_id"] == device
                times = np.asarray(rows["time_ns"][mine], dtype=np.int64)
                inputs[device] = ((times + _applied_offsets(db, device, times)).tolist(),
                                  np.asarray(rows["host_ns"][mine], dtype=np.int64).tolist())  # fmt: skip
        return inputs
    finally:
        db.close()


def _applied_offsets(db, device: str, times: np.ndarray) -> np.ndarray:
    """The cross-modal offset (ns) the processor had applied to a camera's frame at each time: each
    ``camera_offset`` event's ``applied_ms`` from its time plus the delay it is taken up after."""
    from kinefuse.builtin.processors.motion_offsets import APPLY_AFTER_S

    shift = np.zeros(len(times), dtype=np.int64)
    query = ("SELECT e.time_ns, e.detail FROM events e JOIN devices d ON d.id = e.device_ref "
             "WHERE e.kind = 'camera_offset' AND d.device_id = ? ORDER BY e.time_ns")  # fmt: skip
    for row in db.query(query, [device]):
        applied = json.loads(row["detail"])["applied_ms"]
        if applied is not None:
            shift[times >= row["time_ns"] + APPLY_AFTER_S * 1e9] = round(applied * 1e6)
    return shift


def latencies(received: dict) -> dict:
    """From the subscriber's records: each causal item's latency (ms) after its last needed input, the
    items that went out without some device, and each revision's age (reading minus item time, ms)."""
    ready = {}
    for device, (times, arrivals) in received["inputs"].items():
        order = np.argsort(times)
        times, arrivals = np.asarray(times)[order], np.asarray(arrivals)[order]
        # the earliest arrival among the inputs at or after each time: when the device first reached it
        ready[device] = (times, np.minimum.accumulate(arrivals[::-1])[::-1])
    first = min(times[0] for times, _ in ready.values()) + _SKIP_S * 1e9
    latency, short, revision_age = [], 0, []
    for t_ns, revision, read_ns in received["items"]:
        if t_ns < first:
            continue
        if revision:
            revision_age.append((read_ns - t_ns) / 1e6)
            continue
        needed = []
        for times, reached in ready.values():
            i = int(np.searchsorted(times, t_ns))
            needed.append(reached[i] if i < len(times) and reached[i] <= read_ns else None)
        if None in needed:
            short += 1
        else:
            latency.append((read_ns - max(needed)) / 1e6)
    return {"latency_ms": np.array(latency), "short": short, "revision_age_ms": np.array(revision_age)}


def _rows(case: str, found: dict, received: dict, duration_s: float) -> list[dict]:
    values = found["latency_ms"]
    note = (f"{duration_s:.0f} s realtime, {describe(LIVE_SCENARIO)}, keypoints without pose inference, the "
            f"motion processor's defaults, {len(os.sched_getaffinity(0))} cores; {len(values)} causal items "
            f"scored (first {_SKIP_S:.0f} s not), {found['short']} went out without some device, "
            f"{received['skipped']} records skipped for the subscriber; goal p99 <= {GOAL_P99_MS:.0f} ms")  # fmt: skip
    rows = [make_row(case, f"last input to causal item p{q}", "ms",
                     float(np.percentile(values, q)) if len(values) else None, "lower", note=note)
            for q in (50, 99)]  # fmt: skip
    ages = found["revision_age_ms"]
    age = float(np.percentile(ages, 50)) if len(ages) else None
    note = f"{len(ages)} fixed-lag revisions; their age includes the camera link and lag_s"
    rows.append(make_row(case, "revision age p50 (item time to reading)", "ms", age, "lower", note=note))
    return rows


async def run(options: dict) -> list[dict]:
    duration = options.get("duration_s") or 30.0
    rows = []
    for case, after in CASES.items():
        with own_files():
            received = await _measure(duration, after)
        rows += _rows(case, latencies(received), received, duration)
    return rows


@hookimpl
def register_benches():
    return [BenchSpec("stream", __doc__.strip(), run)]


# --- the subscriber process -------------------------------------------------------------------------
def subscribe(path: str) -> dict:
    """Read the motion items until the daemon ends the stream: each one's (time, revision, reading stamp)."""
    items, skipped = [], 0
    for now_ns, record in stream_records(path, {"cmd": "subscribe", "kinds": ["motion"]}):
        kind = record.get("type")
        if kind == "motion":
            items.append((record["t_ns"], record["revision"], now_ns))
        elif kind == "skipped":
            skipped += record["count"]
    return {"items": items, "skipped": skipped}


if __name__ == "__main__":
    print("ready", flush=True)  # imported: the bench may start the agent now
    Path(sys.argv[2]).write_text(json.dumps(subscribe(sys.argv[1])), encoding="utf-8")
