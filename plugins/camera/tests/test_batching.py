"""Cameras sharing a model file share one session; concurrent requests run as one batch when the model
really takes more than one image (measured by a probe), each camera gets exactly its own result, and an
error reaches the callers it belongs to without leaving anyone waiting."""

import threading

import cv2
import numpy as np
import pytest

from kinefuse.bench.datasets import paths
from kinefuse_plugins.camera.batching import SharedModel
from kinefuse_plugins.camera.pose_models import spec
from kinefuse_plugins.camera.pose_runtime import PoseModel

SHARED = paths.shared_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "models").is_dir(), reason=f"{SHARED}/models is absent")


def _concurrently(shared: SharedModel, tensors: list[np.ndarray]) -> list:
    """Each tensor sent from its own thread, as cameras do; the result or the exception for each."""
    results: list = [None] * len(tensors)

    def camera(i):
        try:
            results[i] = shared.run(tensors[i])
        except Exception as error:
            results[i] = error

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(len(tensors))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive(), "a caller was left waiting"
    return results


@pytest.fixture
def channel_means_model(tmp_path):
    """A model that takes any batch: (N, 3, 8, 8) float images -> (N, 3) channel means times two."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Add", ["mean", "mean"], ["twice"]),
    ]
    graph = helper.make_graph(
        nodes,
        "channel_means",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("twice", TensorProto.FLOAT, ["batch", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "channel_means.onnx"
    onnx.save(model, str(path))
    return path


def test_concurrent_requests_run_as_one_batch_and_each_gets_its_own_rows(channel_means_model):
    shared = SharedModel(channel_means_model, window_s=0.2)
    tensors = [np.full((1, 3, 8, 8), float(i), np.float32) for i in range(4)]
    results = _concurrently(shared, tensors)
    assert shared.batchable, shared.why_not_batched
    for i, outputs in enumerate(results):
        np.testing.assert_array_equal(outputs[0], np.full((1, 3), 2.0 * i, np.float32))
    assert shared.requests == 4 and shared.runs < 4


def test_a_bad_request_fails_alone_and_nobody_is_left_waiting(channel_means_model):
    shared = SharedModel(channel_means_model, window_s=0.2)
    tensors = [np.ones((1, 3, 8, 8), np.float32), np.ones((1, 3, 4, 4), np.float32)]
    good, bad = _concurrently(shared, tensors)
    np.testing.assert_array_equal(good[0], np.full((1, 3), 2.0, np.float32))
    assert isinstance(bad, Exception) and "image" in str(bad)


@needs_shared
@pytest.mark.parametrize(
    ("model", "why"),
    [("rtmdet_nano_person", "a batch of 2 fails"), ("movenet_singlepose_lightning_int8", "fixed at 1")],
)
def test_shipped_models_share_a_session_but_run_one_by_one(model, why):
    """RTMDet's input batch is free but its export breaks at 2; MoveNet's is fixed: the probe says so."""
    path = SHARED / "models" / spec(model).file
    alone = PoseModel(spec(model), path)
    videos = sorted((SHARED / "data" / "pose2sim_demo" / "videos").glob("cam*.mp4"))
    frames = [cv2.VideoCapture(str(v)).read()[1] for v in videos]
    shared = SharedModel(path, window_s=0.05)
    results = _concurrently(shared, [alone.preprocess(frame)[0] for frame in frames])
    assert shared.batchable is False and why in shared.why_not_batched
    assert shared.runs == shared.requests == len(frames)
    for frame, outputs in zip(frames, results, strict=True):
        _, transform = alone.preprocess(frame)
        decoded = alone._to_image(alone.decode(outputs, spec(model).size), transform)
        np.testing.assert_allclose(decoded, alone(frame).result, rtol=1e-4, atol=1e-3)


def test_cameras_with_batching_on_share_one_session():
    path = SHARED / "models" / spec("rtmdet_nano_person").file
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    first, second = (PoseModel(spec("rtmdet_nano_person"), path, shared=True) for _ in range(2))
    separate = PoseModel(spec("rtmdet_nano_person"), path)
    assert first.session is second.session and separate.session is not first.session
