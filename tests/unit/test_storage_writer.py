"""The SQLite sink stores every stream item exactly (at float32 precision), commits while running,
and rejects batches of undeclared devices without failing."""

import asyncio
import dataclasses
import logging
import time

import numpy as np
import sqlite_utils

from kinefuse.storage import reader
from kinefuse.storage.writer import SqliteSink
from kinefuse.types import (
    DerivedValue,
    DeviceAdded,
    DeviceInfo,
    DeviceKind,
    Event,
    KeypointStatus,
    KeypointView,
    MotionItem,
    Provenance,
    Quality,
    QualityLevel,
    SegmentOrientation,
    SessionInfo,
    Triangulated,
    TriangulationCheck,
    imu_batch,
    keypoint_batch,
)

IMU = DeviceInfo("imu0", DeviceKind.IMU, clock_hz=1e6)
CAMERA = DeviceInfo("cam0", DeviceKind.CAMERA, clock_hz=90_000, keypoint_set="coco17", meta={"fps": 30})
STATS = {
    "type": "synthetic",
    "state": "stopped",
    "reason": "",
    "received": 7,
    "dropped": 1,
    "decode_errors": 2,
    "restarts": 0,
}
rng = np.random.default_rng(7)


def session(uuid="u-1"):
    return SessionInfo(uuid, "ana", "2024-05-01T10:00:00+00:00", time.monotonic_ns(), "/etc/k.toml", "0.1.0")


def imu(n, start=0, mag=True, aligned=True):
    seq = np.arange(start, start + n)
    batch = imu_batch(
        "strap",
        "imu0",
        seq,
        seq * 1000,
        time.monotonic_ns() + seq,
        rng.normal(size=(n, 3)),
        rng.normal(size=(n, 3)),
        rng.normal(size=(n, 3)) if mag else None,
    )
    return dataclasses.replace(batch, time_ns=batch.host_ns - 500) if aligned else batch


def frames(n):
    seq = np.arange(n)
    batch = keypoint_batch(
        "cam",
        "cam0",
        seq,
        seq * 3000,
        time.monotonic_ns() + seq,
        "coco17",
        rng.uniform(0, 640, size=(n, 17, 3)),
        swap_corrected=seq % 2 == 1,
        track_id=np.where(seq == 2, -1, 3),
        others=rng.uniform(0, 640, size=(n, 2, 17, 3)),
        other_ids=np.array([[5, -1], [5, 7], [-1, -1], [7, -1]])[seq % 4],
    )
    return dataclasses.replace(batch, time_ns=batch.host_ns - 1_000)


def test_round_trip_of_every_item_kind(tmp_path):
    path = tmp_path / "k.db"
    first, second, video = imu(50), imu(30, start=50, mag=False, aligned=False), frames(4)
    value = DerivedValue(
        "cadence",
        123,
        171.5,
        "1/min",
        Provenance.MEASURED,
        Quality(QualityLevel.GOOD),
        "strap",
        "imu0",
        "steps",
        2.5,
    )
    missing = DerivedValue(
        "stride",
        124,
        None,
        "m",
        Provenance.FILLED,
        Quality(QualityLevel.INSUFFICIENT, "gap"),
        "strap",
        None,
        "steps",
    )
    event = Event("gap", 125, "strap", "imu0", {"samples": 3})
    clock = {"imu0": {"clock_offset_ns": -42, "clock_skew_ppm": 12.5}}

    async def run():
        sink = SqliteSink(path, flush_interval_s=0.05)
        await sink.start(session())
        await sink.write([DeviceAdded("strap", IMU), DeviceAdded("cam", CAMERA), first])
        await sink.write([DeviceAdded("strap", IMU), second, video, value, missing, event])
        await sink.stop(
            [
                {"source_id": "strap", **STATS, "devices": ["imu0"], "clock": clock},
                {"source_id": "cam", **STATS, "devices": ["cam0"]},
            ]
        )
        return sink

    sink = asyncio.run(run())
    assert sink.rows_committed == 50 + 30 + 4 + 3 and sink.rejected == 0
    assert len(sink.latency_ns) == 84 and min(sink.latency_ns) > 0

    got = reader.imu_samples(path, device_id="imu0")
    f32 = np.float32
    np.testing.assert_array_equal(got["seq"], np.arange(80))
    np.testing.assert_array_equal(got["host_ns"], np.concatenate([first.host_ns, second.host_ns]))
    np.testing.assert_array_equal(got["acc"], np.concatenate([first.acc, second.acc]).astype(f32))
    np.testing.assert_array_equal(got["gyr"], np.concatenate([first.gyr, second.gyr]).astype(f32))
    np.testing.assert_array_equal(got["mag"][:50], first.mag.astype(f32))
    assert np.isnan(got["mag"][50:]).all()
    np.testing.assert_array_equal(got["time_ns"][:50], first.time_ns)
    assert got["time_ns"].mask[50:].all() and not got["time_ns"].mask[:50].any()
    assert set(got["device_id"]) == {"imu0"} and set(got["source_id"]) == {"strap"}

    cams = reader.keypoint_frames(path)
    np.testing.assert_array_equal(cams["keypoints"], video.keypoints)
    np.testing.assert_array_equal(cams["time_ns"], video.time_ns)
    assert list(cams["keypoint_set"]) == ["coco17"] * 4
    np.testing.assert_array_equal(cams["swap_corrected"], [False, True, False, True])
    # several people: the frame's track id, and everyone else with theirs (only the rows with someone kept)
    np.testing.assert_array_equal(cams["track_id"], [3, 3, -1, 3])
    np.testing.assert_array_equal(cams["other_ids"], video.other_ids)
    present = video.other_ids >= 0
    np.testing.assert_array_equal(cams["others"][present], video.others[present])
    assert np.isnan(cams["others"][~present]).all()
    stored = [
        b for b in reader.stored_batches(path, 1) if b["table"] == "keypoint_frames"
    ]  # one per frame here
    assert [None if b["other_ids"] is None else b["other_ids"][0].tolist() for b in stored] == [
        [5],
        [5, 7],
        None,
        [7],
    ]
    assert [int(b["track_id"][0]) for b in stored] == [3, 3, -1, 3]

    db = sqlite_utils.Database(path)
    metrics = list(
        db.query("SELECT name, value, unit, provenance, quality, reason, device_ref, tolerance FROM metrics")
    )
    assert [(m["name"], m["value"], m["quality"], m["reason"], m["tolerance"]) for m in metrics] == [
        ("cadence", 171.5, "good", "", 2.5),
        ("stride", None, "insufficient", "gap", None),
    ]
    assert metrics[0]["device_ref"] is not None and metrics[1]["device_ref"] is None
    assert [(e["kind"], e["detail"]) for e in db.query("SELECT * FROM events")] == [("gap", '{"samples": 3}')]
    devices = {d["device_id"]: d for d in db["devices"].rows}
    fits = {name: (d["clock_offset_ns"], d["clock_skew_ppm"], d["meta"]) for name, d in devices.items()}
    assert fits == {"imu0": (-42, 12.5, "{}"), "cam0": (None, None, '{"fps": 30}')}
    db.close()

    (stored,) = reader.summary(path)["sessions"]
    assert (stored["athlete"], stored["status"], stored["uuid"]) == ("ana", "stopped", "u-1")
    assert stored["duration_s"] > 0
    strap, cam = stored["sources"][1], stored["sources"][0]
    counters = ("received", "dropped", "decode_errors", "state")
    assert tuple(strap[key] for key in counters) == (7, 1, 2, "stopped")
    (imu_summary,) = strap["devices"]
    assert imu_summary["count"] == 80
    assert cam["devices"][0]["count"] == 4


def test_rows_are_committed_while_running_and_athletes_reused(tmp_path):
    path = tmp_path / "k.db"

    async def run():
        sink = SqliteSink(path, flush_interval_s=0.05)
        await sink.start(session())
        await sink.write([DeviceAdded("strap", IMU), imu(25)])
        deadline = time.monotonic() + 1.0  # the promise: a crash loses at most the last second
        while time.monotonic() < deadline and len(reader.imu_samples(path)["seq"]) < 25:
            await asyncio.sleep(0.01)
        seen_while_running = len(reader.imu_samples(path)["seq"])
        await sink.update_source_stats([{"source_id": "strap", **STATS, "state": "running"}])
        live = reader.summary(path)["sessions"][0]
        await sink.stop([])
        return seen_while_running, live

    seen, live = asyncio.run(run())
    assert seen == 25
    assert live["status"] == "running" and live["duration_s"] is None
    assert live["sources"][0]["state"] == "running"

    async def second_session():
        sink = SqliteSink(path)
        await sink.start(session("u-2"))
        await sink.stop([])

    asyncio.run(second_session())
    sessions = reader.summary(path)["sessions"]
    assert [s["athlete"] for s in sessions] == ["ana", "ana"]
    db = sqlite_utils.Database(path)
    assert db["athletes"].count == 1
    db.close()


def test_full_buffer_commits_before_the_interval(tmp_path):
    async def run():
        sink = SqliteSink(tmp_path / "k.db", flush_interval_s=1.0, batch_max_rows=20)
        await sink.start(session())
        await sink.write([DeviceAdded("strap", IMU), imu(10)])
        await sink.write([imu(10, start=10)])
        committed = sink.rows_committed
        await sink.stop([])
        return committed

    assert asyncio.run(run()) == 20


def test_batch_of_undeclared_device_is_rejected_with_a_message(tmp_path, caplog):
    path = tmp_path / "k.db"
    ghost = dataclasses.replace(imu(5), device_id="ghost")

    async def run():
        sink = SqliteSink(path, flush_interval_s=0.05)
        await sink.start(session())
        await sink.write([DeviceAdded("strap", IMU), ghost, imu(5)])
        await sink.stop([])
        return sink

    with caplog.at_level(logging.ERROR, logger="kinefuse.storage.writer"):
        sink = asyncio.run(run())
    assert sink.rejected == 1 and sink.rows_committed == 5
    (record,) = caplog.records
    assert "'strap'" in record.getMessage() and "'ghost'" in record.getMessage()
    assert list(reader.imu_samples(path)["device_id"]) == ["imu0"] * 5


def motion_item(time_ns, hidden):
    """A motion item: one strap's segment (no value when ``hidden``) and one camera's three keypoints."""
    status = np.array([KeypointStatus.MISSING if hidden else KeypointStatus.FILLED, KeypointStatus.MEASURED,
                       KeypointStatus.REJECTED], dtype=np.int8)  # fmt: skip
    position = np.array([[np.nan, np.nan] if hidden else [1.5, 2.5], [3.25, 4.0], [5.0, 6.0]])
    sigma = np.where(status == KeypointStatus.MISSING, np.nan, [7.0, 2.0, 9.5])
    view = KeypointView("cam0", "cam", "coco17", "px", position, sigma, status)
    quality = Quality(QualityLevel.INSUFFICIENT, "insufficient data: x") if hidden else Quality(
        QualityLevel.DEGRADED, "mounting not calibrated")  # fmt: skip
    quaternion, provenance = (None, None) if hidden else ((0.5, 0.5, -0.5, 0.5), Provenance.FUSED)
    segment = SegmentOrientation("left_shank", "strap", "imu0", quaternion, provenance, quality)
    return MotionItem(time_ns, 30.0, (segment,), (view,), "motion")


def test_motion_items_round_trip_as_arrays(tmp_path):
    path = tmp_path / "k.db"
    items = [motion_item(1_000, hidden=False), motion_item(34_333_333, hidden=True)]

    async def run():
        sink = SqliteSink(path)
        await sink.start(session())
        await sink.write([DeviceAdded("strap", IMU), DeviceAdded("cam", CAMERA), *items])
        await sink.stop([])
        return sink

    assert asyncio.run(run()).rows_committed == 4
    segments = reader.motion_segments(path, segment="left_shank")
    np.testing.assert_array_equal(segments["time_ns"], [1_000, 34_333_333])
    np.testing.assert_array_equal(segments["quaternion"][0], [0.5, 0.5, -0.5, 0.5])
    assert np.isnan(segments["quaternion"][1]).all()
    assert list(segments["provenance"]) == ["fused", None]
    assert list(segments["quality"]) == ["degraded", "insufficient"]
    assert list(segments["device_id"]) == ["imu0", "imu0"] and list(segments["processor"]) == ["motion"] * 2

    keypoints = reader.motion_keypoints(path, view="cam0")
    assert keypoints["position"].shape == (2, 3, 2) and keypoints["status"].dtype == np.int8
    for stored, item in zip(range(2), items, strict=True):
        view = item.keypoints[0]
        np.testing.assert_array_equal(keypoints["position"][stored], view.position.astype(np.float32))
        np.testing.assert_array_equal(keypoints["sigma"][stored], view.sigma.astype(np.float32))
        np.testing.assert_array_equal(keypoints["status"][stored], view.status)
    assert list(keypoints["device_id"]) == ["cam0", "cam0"] and list(keypoints["unit"]) == ["px", "px"]
    assert len(reader.motion_keypoints(path, view="3d")["time_ns"]) == 0


def test_a_triangulated_views_checks_round_trip(tmp_path):
    path = tmp_path / "k.db"
    checks = np.array([0, TriangulationCheck.VIEW_LEFT_OUT, TriangulationCheck.BONE_LENGTH], dtype=np.uint8)
    found = Triangulated(np.array([4, 3, 0], np.int8), np.array([2.5, 7.25, np.nan]), checks)
    status = np.array([KeypointStatus.MEASURED, KeypointStatus.MEASURED, KeypointStatus.MISSING], np.int8)
    position = np.array([[0.1, 0.2, 0.9], [0.3, 0.1, 0.5], [np.nan] * 3])
    view = KeypointView(
        "3d", "cam", "coco17", "m", position, np.array([0.01, 0.02, np.nan]), status, None, found
    )
    item = dataclasses.replace(motion_item(1_000, hidden=False), keypoints=(view,))

    async def run():
        sink = SqliteSink(path)
        await sink.start(session())
        await sink.write(
            [DeviceAdded("strap", IMU), DeviceAdded("cam", CAMERA), item, motion_item(2_000, False)]
        )
        await sink.stop([])

    asyncio.run(run())
    stored = reader.motion_keypoints(path, view="3d")
    assert stored["views"].tolist() == [[4, 3, 0]] and stored["checks"].tolist() == [checks.tolist()]
    np.testing.assert_array_equal(stored["error_px"][0], found.error_px.astype(np.float32))
    camera = reader.motion_keypoints(path, view="cam0")  # a camera's view states none of these
    assert camera["views"].tolist() == [[-1] * 3] and camera["checks"].tolist() == [[0] * 3]
    assert np.isnan(camera["error_px"]).all()
