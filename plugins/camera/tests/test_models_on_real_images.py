"""Real onnxruntime on the shared models and images: keypoints land on the person."""

import cv2
import pytest

from kinefuse.bench.datasets import paths
from kinefuse_plugins.camera import cpu_features
from kinefuse_plugins.camera.pose_models import spec
from kinefuse_plugins.camera.pose_runtime import PoseModel

SHARED = paths.shared_dir()
needs_shared = pytest.mark.skipif(not (SHARED / "models").is_dir(), reason=f"{SHARED}/models is absent")
COCO = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder")


def _model(name):
    model = spec(name)
    return PoseModel(model, SHARED / "models" / model.file)


@needs_shared
@pytest.mark.parametrize("int8_path", ("auto", "float"))  # this CPU's choice; other architectures'
def test_movenet_finds_the_astronauts_face_and_shoulders(monkeypatch, int8_path):
    monkeypatch.setenv(cpu_features.ENV, int8_path)
    image = cv2.imread(str(SHARED / "data" / "images" / "astronaut.png"))
    people = _model("movenet_singlepose_lightning_int8")(image).result
    assert people.shape == (1, 17, 3)
    k = dict(zip(COCO, people[0], strict=False))
    # regions read off the 512 x 512 image by eye (the face is at x 180-290, y 40-190; eyes at y ~100)
    assert 205 <= k["nose"][0] <= 245 and 105 <= k["nose"][1] <= 135
    assert 185 <= k["right_eye"][0] <= 220 and 85 <= k["right_eye"][1] <= 115
    assert 230 <= k["left_eye"][0] <= 265 and 85 <= k["left_eye"][1] <= 115
    assert k["right_eye"][0] < k["nose"][0] < k["left_eye"][0]  # the person's right is the image's left
    assert k["right_shoulder"][0] < 170 < 270 < k["left_shoulder"][0]
    assert 220 <= k["right_shoulder"][1] <= 320 and 220 <= k["left_shoulder"][1] <= 320
    assert min(k[name][2] for name in COCO) > 0.3  # 0.365 with fused, precise and float alike


@needs_shared
def test_rtmdet_boxes_the_astronaut():
    image = cv2.imread(str(SHARED / "data" / "images" / "astronaut.png"))
    boxes = _model("rtmdet_nano_person")(image).result
    x1, y1, x2, y2, score = boxes[0]
    assert score > 0.5
    assert x1 < 60 and y1 < 60 and 330 < x2 < 420 and y2 > 480  # head to the bottom edge, not the helmet
    assert boxes.shape[0] == 1 or boxes[1, 4] < 0.5
