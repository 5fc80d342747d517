import dataclasses
import json
import re

import numpy as np
import pytest

from kinefuse import streamjson
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
    Triangulated,
    TriangulationCheck,
    imu_batch,
    keypoint_batch,
)


def _imu(mag=None, aligned=True):
    batch = imu_batch(
        "synth",
        "pelvis",
        seq=[7, 8],
        device_time=[1000, 2000],
        host_ns=[5_000, 6_000],
        acc=[[0.123456789, 9.81, -1.0], [-0.00001, 9.8, 0.5]],
        gyr=[[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]],
        mag=mag,
    )
    return dataclasses.replace(batch, time_ns=np.array([4_900, 5_900], dtype=np.int64)) if aligned else batch


def test_imu_batch_gives_one_record_per_sample():
    rows = streamjson.records(_imu())
    assert [r["seq"] for r in rows] == [7, 8]
    first = rows[0]
    assert first == {
        "type": "imu",
        "source": "synth",
        "device": "pelvis",
        "seq": 7,
        "device_time": 1000,
        "host_ns": 5000,
        "t_ns": 4900,
        "acc": [0.1235, 9.81, -1.0],
        "gyr": [0.1, 0.2, 0.3],
        "mag": None,
        "units": {"acc": "m/s^2", "gyr": "rad/s", "mag": "uT"},
        "provenance": "measured",
        "quality": "good",
    }
    assert all(type(v) is int for v in (first["seq"], first["device_time"], first["host_ns"], first["t_ns"]))


def test_imu_magnetometer_and_unaligned_times():
    rows = streamjson.records(_imu(mag=[[20.0, -5.0, 40.123456], [21.0, -5.0, 40.0]], aligned=False))
    assert rows[0]["mag"] == [20.0, -5.0, 40.1235]
    assert rows[1]["t_ns"] is None


def test_keypoints_are_rounded_from_float32():
    keypoints = np.array([[[100.123456, 200.5, 0.9], [1.0, 2.0, 0.25]]], dtype=np.float32)
    batch = keypoint_batch("synth", "cam0", [3], [90_000], [7_000], "coco17", keypoints)
    (row,) = streamjson.records(dataclasses.replace(batch, time_ns=np.array([6_500])))
    assert row["type"] == "keypoints"
    assert row["keypoint_set"] == "coco17"
    assert row["keypoints"] == [[100.1235, 200.5, 0.9], [1.0, 2.0, 0.25]]
    assert (row["seq"], row["t_ns"], row["provenance"], row["quality"]) == (3, 6_500, "measured", "good")


def test_metric_carries_provenance_quality_reason_and_tolerance():
    value = DerivedValue(
        name="cadence",
        time_ns=123,
        value=None,
        unit="steps/min",
        provenance=Provenance.FUSED,
        quality=Quality(QualityLevel.INSUFFICIENT, "fewer than 4 steps seen"),
        source_id="synth",
        device_id="lshank",
        processor="gait",
    )
    assert streamjson.records(value) == [
        {
            "type": "metric",
            "name": "cadence",
            "source": "synth",
            "device": "lshank",
            "processor": "gait",
            "t_ns": 123,
            "value": None,
            "unit": "steps/min",
            "provenance": "fused",
            "quality": "insufficient",
            "quality_reason": "fewer than 4 steps seen",
            "tolerance": None,
        }
    ]
    stated = dataclasses.replace(value, value=112.0, quality=Quality(QualityLevel.GOOD), tolerance=3.5)
    assert streamjson.records(stated)[0]["tolerance"] == 3.5


def test_event_and_device_records():
    event = Event(
        "sample_gap", 55, "synth", "pelvis", {"missing": np.int64(3), "after_seq": 9}, processor="gaps"
    )
    (row,) = streamjson.records(event)
    assert (row["type"], row["kind"], row["t_ns"], row["quality"], row["quality_reason"]) == (
        "event",
        "sample_gap",
        55,
        "good",
        "",
    )
    # numpy values a plugin left in a detail still encode as plain JSON numbers
    assert json.loads(streamjson.encode([row]))["detail"] == {"missing": 3, "after_seq": 9}

    device = DeviceInfo("cam0", DeviceKind.CAMERA, 90_000.0, keypoint_set="coco17", meta={"fps": 30})
    assert streamjson.records(DeviceAdded("synth", device)) == [
        {
            "type": "device",
            "source": "synth",
            "device": "cam0",
            "kind": "camera",
            "clock_hz": 90_000.0,
            "keypoint_set": "coco17",
            "meta": {"fps": 30},
        }
    ]


def test_encode_writes_one_compact_line_per_record():
    lines = streamjson.encode(streamjson.records(_imu())).decode().splitlines()
    assert len(lines) == 2
    assert '"acc":[0.0,9.8,0.5]' in lines[1]  # not -0.0
    assert " " not in lines[0]


def test_unknown_item_is_a_type_error():
    with pytest.raises(TypeError, match="not a stream item: dict"):
        streamjson.records({"type": "imu"})


def test_missing_keypoints_become_null_not_nan():
    keypoints = np.array([[[10.0, 20.0, 0.9], [np.nan, np.nan, 0.0]]], dtype=np.float32)
    batch = keypoint_batch("s", "cam0", [0], [0], [1], "COCO-17", keypoints)
    (record,) = streamjson.records(batch)
    assert record["keypoints"] == [[10.0, 20.0, 0.9], [None, None, 0.0]]
    assert b"NaN" not in streamjson.encode([record])


def test_motion_record_flags_every_segment_and_keypoint():
    status = np.array([KeypointStatus.MEASURED, KeypointStatus.FILLED, KeypointStatus.MISSING], dtype=np.int8)
    position = np.array([[10.0, 20.0], [11.0, 21.0], [np.nan, np.nan]])
    view = KeypointView("cam0", "synth", "toy-3", "px", position, np.array([2.0, 6.5, np.nan]), status)
    missing = Quality(QualityLevel.INSUFFICIENT, "insufficient data: no strap samples around this time")
    segments = (
        SegmentOrientation("pelvis", "synth", "imu_pelvis", (1.0, 0.0, 0.0, 0.0), Provenance.FUSED,
                           Quality(QualityLevel.DEGRADED, "mounting not calibrated")),
        SegmentOrientation("trunk", "synth", "imu_trunk", None, None, missing),
    )  # fmt: skip
    (record,) = streamjson.records(MotionItem(33_333_333, 30.0, segments, (view,), "motion"))
    assert (record["type"], record["t_ns"], record["rate_hz"], record["processor"], record["revision"]) == (
        "motion", 33_333_333, 30.0, "motion", 0)  # fmt: skip
    assert record["segments"]["pelvis"] == {
        "source": "synth", "device": "imu_pelvis", "quaternion": [1.0, 0.0, 0.0, 0.0], "provenance": "fused",
        "quality": "degraded", "quality_reason": "mounting not calibrated", "tolerance_deg": None,
        "world": ""}  # fmt: skip
    trunk = record["segments"]["trunk"]
    assert trunk["quaternion"] is None and trunk["provenance"] is None and trunk["quality"] == "insufficient"
    cam = record["keypoints"]["cam0"]
    assert cam["position"] == [[10.0, 20.0], [11.0, 21.0], [None, None]] and cam["sigma"] == [2.0, 6.5, None]
    assert cam["provenance"] == ["measured", "filled", None]
    assert cam["quality"] == ["good", "degraded", "insufficient"]
    assert cam["quality_reason"][0] == "" and all(cam["quality_reason"][1:])
    assert b"NaN" not in streamjson.encode([record])


def test_a_triangulated_view_carries_its_checks_and_the_quality_they_give():
    checks = np.array([0, TriangulationCheck.BONE_LENGTH], dtype=np.uint8)
    found = Triangulated(np.array([3, 2], np.int8), np.array([4.0, 9.5]), checks)
    status = np.array([KeypointStatus.MEASURED, KeypointStatus.MEASURED], dtype=np.int8)
    view = KeypointView("3d", "synth", "toy-2", "m", np.zeros((2, 3)), np.full(2, 0.01), status, None, found)
    (record,) = streamjson.records(MotionItem(33_333_333, 30.0, (), (view,), "motion"))
    out = record["keypoints"]["3d"]
    assert out["views"] == [3, 2] and out["error_px"] == [4.0, 9.5] and out["checks"] == [0, 2]
    assert out["quality"] == ["good", "degraded"] and "bone" in out["quality_reason"][1]


def test_a_frame_with_several_people_lists_the_others_with_their_track_ids():
    keypoints = np.array([[[10.0, 20.0, 0.9]], [[11.0, 21.0, 0.8]]], dtype=np.float32)
    others = np.array(
        [[[[50.0, 60.0, 0.7]], [[np.nan, np.nan, 0.0]]], [[[51.0, 61.0, 0.7]], [[80.0, 90.0, 0.5]]]]
    )
    batch = keypoint_batch("s", "cam0", [0, 1], [0, 1], [1, 2], "COCO-17", keypoints, track_id=[3, 3],
                           others=others, other_ids=[[5, -1], [5, 8]])  # fmt: skip
    first, second = streamjson.records(batch)
    assert first["track_id"] == 3 and first["others"] == [{"track_id": 5, "keypoints": [[50.0, 60.0, 0.7]]}]
    assert [o["track_id"] for o in second["others"]] == [5, 8]


@pytest.mark.parametrize(
    ("people", "message"),
    [
        ({"track_id": [1, 2, 3]}, "track_id has shape (3,), expected (2,)"),
        ({"others": np.zeros((2, 1, 4, 3)), "other_ids": [[1], [2]]}, "expected (2, P, 17, 3) and (2, P)"),
    ],
)
def test_a_malformed_frame_of_several_people_is_rejected_naming_the_field(people, message):
    from kinefuse.types import BatchError, check_batch

    batch = keypoint_batch("s", "cam0", [0, 1], [0, 1], [1, 2], "COCO-17", np.zeros((2, 17, 3)), **people)
    with pytest.raises(BatchError, match=re.escape(message)):
        check_batch(batch)
