"""``kinefuse bench pose`` measures, in one run, the stages, the bare onnxruntime calls, both paths (whole image
and top-down) for 1 and 4 cameras flat out, the path's cost and the 4 cameras paced at 30 frames/s each;
and a paced camera really is paced: frame k is due k/30 s, through the real source. No speed is asserted."""

import asyncio
import re

import numpy as np
import pytest

from kinefuse.bench.datasets import paths
from kinefuse_plugins.camera import bench_pose

needs_shared = pytest.mark.skipif(not (paths.shared_dir() / "models").is_dir(), reason="shared data absent")


@needs_shared
def test_the_bench_reports_both_paths_the_path_cost_and_the_paced_cameras(monkeypatch):
    monkeypatch.setattr(bench_pose, "BARE_FRAMES", 10)
    rows = bench_pose.run({"duration_s": 1.0, "frames": 20})
    by_key = {(row["case"], row["metric"]): row for row in rows}
    expected = [("1 camera", stage) for stage in ("decode", "preprocess", "inference", "postprocess")]
    expected += [
        ("bare onnxruntime", f"{name} session.run") for name in (bench_pose.MODEL, bench_pose.DETECTOR)
    ]
    for path in bench_pose.PATHS:
        cost = "path cost over bare onnxruntime"
        expected += [(f"1 camera, {path}", metric) for metric in ("frames/s", cost, f"{cost}, CPU time")]
        expected += [
            (f"4 cameras, {path}", "frames/s (all cameras)"),
            (f"4 cameras, {path}", "CPU per frame"),
        ]
        paced = f"4 cameras at 30 frames/s each, {path}"
        expected += [(paced, "frames/s, slowest camera"), (paced, "CPU used")]
        expected += [(paced, "frame lateness p99 (behind its due time)")]
    for case in ("1 camera, top-down", "4 cameras, top-down", "4 cameras at 30 frames/s each, top-down"):
        expected.append((case, "detections per frame"))
    for key in expected:
        assert key in by_key and by_key[key]["value"] is not None, key
    assert len(rows) == len(expected)
    for case in ("1 camera, top-down", "4 cameras, top-down", "4 cameras at 30 frames/s each, top-down"):
        assert 0 < by_key[(case, "detections per frame")]["value"] <= 1
    note = by_key[("4 cameras at 30 frames/s each, whole image", "frames/s, slowest camera")]["note"]
    per_camera = re.search(r"per camera frames/s ([\d., ]+);", note).group(1).split(", ")
    assert len(per_camera) == 4 and re.search(r"30 frames/s each sustained: (yes|no) \(goal", note)
    slowest = by_key[("4 cameras at 30 frames/s each, whole image", "frames/s, slowest camera")]["value"]
    assert slowest == pytest.approx(min(map(float, per_camera)), abs=0.01)
    assert "80 frames" in note  # 20 frames from each of the 4 cameras


@needs_shared
def test_a_paced_camera_delivers_frame_k_at_k_over_30_s_and_plays_its_file_again():
    files = bench_pose._files({})
    video = files["cameras"][0]
    source, taps = bench_pose._camera(video, files["model"], None, fps=30.0, loops=2, limit=130)
    (context,), wall_s, _ = asyncio.run(bench_pose._run_cameras([(source, taps)]))
    assert context.frames == 130 == taps.decoded  # 100 frames, then 30 more from the start again
    steps = np.diff(context.device_us)
    assert np.all(np.abs(steps - 1e6 / 30) <= 1)
    assert wall_s >= 129 / 30  # paced: flat out, 130 frames take far less than 4.3 s
