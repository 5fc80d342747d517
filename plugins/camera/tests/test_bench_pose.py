"""``kinefuse bench pose`` measures the stages, both camera counts and the path's cost in one run."""

import pytest

from kinefuse.bench.datasets import paths
from kinefuse_plugins.camera import bench_pose

needs_shared = pytest.mark.skipif(not (paths.shared_dir() / "models").is_dir(), reason="shared data absent")


@needs_shared
def test_the_bench_reports_every_stage_and_the_path_cost(monkeypatch):
    monkeypatch.setattr(bench_pose, "BARE_FRAMES", 20)
    rows = bench_pose.run({})
    metrics = {(row["case"], row["metric"]) for row in rows}
    for stage in (
        "decode",
        "preprocess",
        "inference",
        "postprocess",
        "frames/s",
        "path cost over bare onnxruntime",
    ):
        assert ("1 camera", stage) in metrics
    assert ("4 cameras", "frames/s (all cameras)") in metrics
    assert all(row["value"] is not None for row in rows)
