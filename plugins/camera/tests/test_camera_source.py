"""The camera source in the real pipeline: a video file through MoveNet into storage, and clear errors for
bad input while the other sources run on."""

import json

import cv2
import numpy as np
import pytest

from kinefuse.bench.datasets import paths
from kinefuse_plugins.camera import cpu_features
from kinefuse_plugins.camera.pose_models import spec
from kinefuse_plugins.camera.pose_runtime import PoseModel

SHARED = paths.shared_dir()
DEMO = SHARED / "data" / "sports2d_demo" / "demo.mp4"
MODEL = SHARED / "models" / "movenet_singlepose_lightning_int8.onnx"
needs_shared = pytest.mark.skipif(not DEMO.is_file() or not MODEL.is_file(), reason=f"{SHARED} is absent")
FAIL_FAST = {"supervisor": {"restart_budget": 0}}
# The int8 paths kinefuse may choose, tests on MoveNet's output hold on each: auto (fused with VNNI/AMX,
# precise without: bit-identical, plugins/camera/tests/test_int8_path.py) and float (other architectures).
INT8_PATHS = ("auto", "float")


def _runtime(result, device_id: str) -> dict:
    """The device's meta in storage: how its keypoint frames were computed."""
    rows = list(result.db["devices"].rows_where("device_id = ?", [device_id]))
    return json.loads(rows[0]["meta"])


def camera(path, **options):
    return {
        "id": "cam",
        "type": "camera",
        "path": str(path),
        "model_path": str(MODEL),
        "realtime": False,
        **options,
    }


@needs_shared
@pytest.mark.parametrize("int8_path", INT8_PATHS)
def test_a_video_file_becomes_keypoint_frames_on_the_athlete(kinefuse_pipeline, monkeypatch, int8_path):
    monkeypatch.setenv(cpu_features.ENV, int8_path)
    result = kinefuse_pipeline(sources=[camera(DEMO)], duration_s=60.0)
    assert result.exit_code == 0
    meta = _runtime(result, "cam")
    assert meta["pose_runtime"]["int8_path"] == cpu_features.choose(cpu_features.detect(), int8_path)[0]
    assert meta["pose_runtime"]["cpu"] == cpu_features.detect().describe() and "detector_runtime" not in meta
    frames = result.keypoint_frames("cam")
    video = cv2.VideoCapture(str(DEMO))
    count, width, height = (int(video.get(p)) for p in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FRAME_WIDTH,
                                                         cv2.CAP_PROP_FRAME_HEIGHT))  # fmt: skip
    assert len(frames["seq"]) >= count - 1  # every frame, as fast as it decodes, then the source ends
    assert np.all(np.diff(np.sort(frames["seq"])) == 1)
    keypoints = frames["keypoints"][np.argsort(frames["seq"])]
    confident = keypoints[..., 2] > 0.3
    # the athlete is small in a 1080p frame for a whole-image model; measured 0.49 (fused, precise), 0.48 (float)
    assert confident.mean() > 0.3
    # an independent check: the RTMDet person detector's box, on every 10th frame, holds the keypoints
    detector = PoseModel(spec("rtmdet_nano_person"), SHARED / "models" / spec("rtmdet_nano_person").file)
    inside = []
    for index in range(0, min(len(keypoints), count), 10):
        video.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, image = video.read()
        boxes = detector(image).result
        if not ok or not len(boxes):
            continue
        x1, y1, x2, y2, _ = boxes[0]
        margin = 0.1 * (x2 - x1)
        xy = keypoints[index][confident[index], :2]
        inside += list((xy[:, 0] > x1 - margin) & (xy[:, 0] < x2 + margin) & (xy[:, 1] > y1 - margin)
                       & (xy[:, 1] < y2 + margin))  # fmt: skip
    assert len(inside) > 50 and np.mean(inside) > 0.9  # measured 0.937 (fused, precise), 0.948 (float)
    assert width > 0 and height > 0
    stats = result.source_stats("cam")
    assert stats["state"] == "finished"


@needs_shared
def test_a_missing_file_fails_clearly_while_the_synthetic_source_runs_on(kinefuse_pipeline, tmp_path):
    missing = tmp_path / "nope.mp4"
    synthetic = {"id": "synth", "type": "synthetic", "realtime": True}
    result = kinefuse_pipeline(
        sources=[camera(missing), synthetic], duration_s=2.0, config_overrides=FAIL_FAST
    )
    stats = result.source_stats("cam")
    assert stats["state"] == "failed" and f"video file {missing} does not exist" in stats["reason"]
    assert len(result.imu_samples()["seq"]) > 100


@needs_shared
@pytest.mark.parametrize("damage", ["truncated", "not_a_video"])
def test_damaged_files_fail_with_what_is_wrong(kinefuse_pipeline, tmp_path, damage):
    path = tmp_path / ("half.mp4" if damage == "truncated" else "notes.mp4")
    data = DEMO.read_bytes()
    path.write_bytes(
        data[: len(data) // 2] if damage == "truncated" else b"these are my notes, not a video\n" * 50
    )
    result = kinefuse_pipeline(sources=[camera(path)], duration_s=30.0, config_overrides=FAIL_FAST)
    stats = result.source_stats("cam")
    assert stats["state"] == "failed", stats
    assert str(path) in stats["reason"]
    assert "truncated" in stats["reason"] or "cannot open" in stats["reason"]


@needs_shared
def test_the_top_down_path_is_surer_of_a_small_athlete_and_reports_the_others(kinefuse_pipeline):
    detector = SHARED / "models" / spec("rtmdet_nano_person").file
    whole = kinefuse_pipeline(sources=[camera(DEMO)], duration_s=60.0).keypoint_frames("cam")
    top = kinefuse_pipeline(sources=[camera(DEMO, detector="rtmdet_nano_person", detector_path=str(detector))],
                            duration_s=60.0).keypoint_frames("cam")  # fmt: skip
    assert len(top["seq"]) == len(whole["seq"])
    assert np.nanmean(top["keypoints"][..., 2]) > np.nanmean(whole["keypoints"][..., 2]) + 0.2
    # the demo's passer-by (a woman walking across from about frame 40) is reported beside the athlete, under
    # her own track id, in the frames the person detector runs in, for the motion processor to associate
    others = (top["other_ids"] >= 0).any(axis=1)
    assert others.sum() >= 10
    assert not (top["other_ids"][others] == top["track_id"][others, None]).any()
    assert np.isfinite(top["others"][others][..., :2]).any(axis=(1, 2)).all()


@needs_shared
def test_a_camera_that_stops_giving_frames_is_restarted_by_its_watchdog(kinefuse_pipeline):
    # a real file read with a watchdog shorter than one frame's decode and inference: every attempt times out
    overrides = {"supervisor": {"restart_budget": 2, "backoff_initial_s": 0.05}}
    result = kinefuse_pipeline(
        sources=[camera(DEMO, watchdog_s=0.001)], duration_s=20.0, config_overrides=overrides
    )
    stats = result.source_stats("cam")
    assert stats["state"] == "failed" and stats["restarts"] == 2
    assert "no frame from" in stats["reason"] and "(watchdog)" in stats["reason"]


@needs_shared
@pytest.mark.parametrize("int8_path", INT8_PATHS)
def test_four_pose2sim_cameras_keep_the_person_and_left_right_consistent(
    kinefuse_pipeline, monkeypatch, int8_path
):
    monkeypatch.setenv(cpu_features.ENV, int8_path)
    videos = sorted((SHARED / "data" / "pose2sim_demo" / "videos").glob("cam*.mp4"))
    detector = SHARED / "models" / spec("rtmdet_nano_person").file
    sources = [
        camera(v, id=v.stem, detector="rtmdet_nano_person", detector_path=str(detector)) for v in videos
    ]
    result = kinefuse_pipeline(sources=sources, duration_s=60.0)
    boxes = PoseModel(spec("rtmdet_nano_person"), detector)
    for video in videos:
        meta = _runtime(result, video.stem)
        assert meta["pose_runtime"]["int8_path"] == cpu_features.choose(cpu_features.detect(), int8_path)[0]
        assert meta["detector_runtime"]["int8_path"] == "none (float model)"  # RTMDet-nano is float32
        frames = result.keypoint_frames(video.stem)
        keypoints = frames["keypoints"][np.argsort(frames["seq"])]
        assert len(keypoints) >= 95, video.name  # 100 frames at 60 fps
        shoulders = keypoints[:, 5:7]  # COCO left, right shoulder
        both = (shoulders[..., 2] > 0.3).all(axis=1)
        side = np.sign(shoulders[both, 0, 0] - shoulders[both, 1, 0])
        # measured on the four cameras: both shoulders 0.96-1.0 and the same side 0.98-1.0 with fused,
        # precise and float (cam04 alone through an emulated CPU without VNNI: 1.0 and 0.98 with precise); the
        # saturating fused kernels there left cam04 at 0.63 (issue 13, docs/pose.md)
        assert both.mean() > 0.9 and abs(side.mean()) > 0.9, (video.name, both.mean(), abs(side.mean()))
        capture = cv2.VideoCapture(str(video))
        ok, first = capture.read()
        x1, y1, x2, y2, _ = boxes(first).result[0]
        margin = 0.1 * (x2 - x1)
        seen = keypoints[0][keypoints[0][:, 2] > 0.3, :2]
        inside = ((seen[:, 0] > x1 - margin) & (seen[:, 0] < x2 + margin)
                  & (seen[:, 1] > y1 - margin) & (seen[:, 1] < y2 + margin))  # fmt: skip
        assert inside.mean() > 0.9, video.name


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_rtsp(port, fps=30):
    import subprocess
    from pathlib import Path

    server = Path(__file__).resolve().parent / "rtsp_server.py"
    process = subprocess.Popen(["/usr/bin/python3", str(server), str(port), str(fps)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert process.stdout.readline().strip() == "ready", "the RTSP test server did not start"
    return process


@needs_shared
def test_an_rtsp_camera_reconnects_after_its_server_dies_and_counts_the_gap(kinefuse_pipeline):
    import threading

    port = _free_port()
    servers = [_start_rtsp(port)]

    def outage():  # the server dies 3 s in and comes back 1.5 s later
        servers[0].kill()
        servers[0].wait()
        threading.Timer(1.5, lambda: servers.append(_start_rtsp(port))).start()

    threading.Timer(3.0, outage).start()
    try:
        result = kinefuse_pipeline(
            sources=[camera(f"rtsp://127.0.0.1:{port}/live", watchdog_s=1.0)],
            processors=[{"id": "gaps", "type": "sequence_gaps"}],
            duration_s=8.0,
            config_overrides={"supervisor": {"backoff_initial_s": 0.2, "backoff_max_s": 0.5}},
        )
    finally:
        for server in servers:
            server.kill()
    stats = result.source_stats("cam")
    assert stats["restarts"] >= 1
    frames = result.keypoint_frames("cam")
    host_s = (np.sort(frames["host_ns"]) - np.min(frames["host_ns"])) / 1e9
    assert (host_s < 1.0).sum() > 15 and (host_s > host_s[-1] - 1.0).sum() > 15  # frames before and after
    gaps = result.events("sample_gap")
    assert any(g["detail"]["missing"] >= 15 for g in gaps), gaps  # the outage, counted in frames


@needs_shared
def test_a_video_with_the_wrong_extension_is_read_by_its_content(kinefuse_pipeline, tmp_path):
    misnamed = tmp_path / "demo.txt"
    misnamed.write_bytes(DEMO.read_bytes())
    result = kinefuse_pipeline(sources=[camera(misnamed)], duration_s=60.0, config_overrides=FAIL_FAST)
    assert result.source_stats("cam")["state"] == "finished"
    assert len(result.keypoint_frames("cam")["seq"]) > 200


@needs_shared
def test_a_camera_faster_than_its_pose_model_drops_stale_frames_and_counts_them(kinefuse_pipeline):
    port = _free_port()
    server = _start_rtsp(port, fps=240)  # faster than the top-down path can estimate on this machine
    detector = SHARED / "models" / spec("rtmdet_nano_person").file
    try:
        result = kinefuse_pipeline(
            sources=[camera(f"rtsp://127.0.0.1:{port}/live", detector="rtmdet_nano_person",
                            detector_path=str(detector))],
            processors=[{"id": "gaps", "type": "sequence_gaps"}],
            duration_s=4.0,
        )  # fmt: skip
    finally:
        server.kill()
    stats = result.source_stats("cam")
    frames = result.keypoint_frames("cam")
    assert stats["dropped"] > 0 and len(frames["seq"]) > 20
    # each stale frame let go leaves a hole in the frame numbers (the first frame is kept while the models
    # warm up, so none is let go before a recorded one): both counts agree
    missing = sum(g["detail"]["missing"] for g in result.events("sample_gap"))
    assert abs(missing - stats["dropped"]) <= max(3, 0.1 * stats["dropped"]), (missing, stats["dropped"])
    host_s = (np.asarray(frames["host_ns"]) - np.min(frames["host_ns"])) / 1e9
    assert np.max(np.diff(np.sort(host_s))) < 0.5  # frames kept flowing: no backlog


@needs_shared
def test_a_wrong_url_and_a_vanished_device_fail_clearly_while_the_synthetic_source_runs_on(kinefuse_pipeline):
    url = f"rtsp://127.0.0.1:{_free_port()}/live"  # nothing listens there
    synthetic = {"id": "synth", "type": "synthetic", "realtime": True}
    result = kinefuse_pipeline(
        sources=[
            camera(url, id="ip_cam"),
            camera("/dev/v4l/by-id/usb-gone-video-index0", id="usb_cam"),
            synthetic,
        ],
        duration_s=3.0,
        config_overrides=FAIL_FAST,
    )
    ip_cam, usb_cam = result.source_stats("ip_cam"), result.source_stats("usb_cam")
    assert ip_cam["state"] == "failed" and f"cannot open {url} (no RTSP server answered" in ip_cam["reason"]
    assert usb_cam["state"] == "failed"
    assert "device /dev/v4l/by-id/usb-gone-video-index0 does not exist" in usb_cam["reason"]
    assert len(result.imu_samples()["seq"]) > 100


@needs_shared
@pytest.mark.parametrize("video", ["cam02", "cam04"])
def test_the_top_down_path_runs_its_detector_only_when_tracking_needs_it_and_keeps_the_athlete(video):
    """Real frames (a Pose2Sim camera: cam02 has a second person beside the athlete, cam04's athlete moves
    most): with the detector scheduled (topdown.Schedule) the athlete keeps one id and its keypoints stay
    where running the detector on every frame puts them, while the detector runs on a fraction of frames."""
    from kinefuse_plugins.camera.topdown import Schedule, TopDown
    from kinefuse_plugins.camera.tracking import Tracker

    detector = PoseModel(spec("rtmdet_nano_person"), SHARED / "models" / spec("rtmdet_nano_person").file)
    keypoints = PoseModel(spec("movenet_singlepose_lightning_int8"), MODEL)
    capture = cv2.VideoCapture(str(SHARED / "data" / "pose2sim_demo" / "videos" / f"{video}.mp4"))
    frames = [capture.read()[1] for _ in range(60)]
    runs = {}
    for name, schedule in (("every frame", Schedule(every=1)), ("scheduled", Schedule())):
        topdown, tracker = TopDown(detector, keypoints, schedule=schedule), Tracker((1080, 1920))
        seen = []
        for frame in frames:
            athlete = topdown.track(frame, tracker).athlete
            seen.append(
                (tracker.athlete_id, None if athlete is None or athlete.missed else athlete.keypoints.copy())
            )
        runs[name] = (seen, topdown)
    (reference, every), (scheduled, topdown) = runs["every frame"], runs["scheduled"]
    assert every.detections == 60 and topdown.detections <= 0.35 * 60, dict(topdown.reasons)
    assert {i for i, _ in scheduled} == {i for i, _ in reference} == {0}
    both = [
        (a, b) for (_, a), (_, b) in zip(reference, scheduled, strict=True) if a is not None and b is not None
    ]
    assert len(both) >= 0.95 * sum(a is not None for _, a in reference)
    errors, heights = [], []
    for a, b in both:
        sure = (a[:, 2] > 0.3) & (b[:, 2] > 0.3)
        errors.append(np.linalg.norm(a[sure, :2] - b[sure, :2], axis=1))
        heights.append(np.ptp(a[a[:, 2] > 0.3, 1]))
    errors, height = np.concatenate(errors), float(np.median(heights))
    assert np.median(errors) < 0.04 * height and np.percentile(errors, 90) < 0.1 * height, (
        np.median(errors),
        np.percentile(errors, 90),
        height,
    )


@needs_shared
@pytest.mark.parametrize("threads", [1, 2, 0])
def test_the_decoder_runs_on_the_configured_threads(threads):
    from kinefuse.configschema import defaults
    from kinefuse_plugins.camera.source import SCHEMA, CameraSource

    options = {**defaults(SCHEMA), "path": str(DEMO), "model_path": str(MODEL), "decode_threads": threads}
    capture, _, _ = CameraSource(options, "cam")._open()
    try:
        used = int(capture.get(cv2.CAP_PROP_N_THREADS))
        assert capture.read()[0]
    finally:
        capture.release()
    # 0: FFmpeg's own choice, one thread per core it sees (at least one)
    assert used == threads if threads else used >= 1
