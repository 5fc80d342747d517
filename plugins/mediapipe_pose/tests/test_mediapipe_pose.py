"""The optional mediapipe_pose plugin (BlazePose, 33 landmarks with heels and toes): real mediapipe on the
shared image and videos, through the camera source into storage; a clear error when mediapipe is absent.
``make test`` installs mediapipe (see the Makefile), so these run there."""

import sys

import cv2
import numpy as np
import pytest

from kinefuse.bench.datasets import paths
from kinefuse.configschema import defaults
from kinefuse_plugins.camera.pose_models import spec
from kinefuse_plugins.camera.pose_runtime import PoseModel
from kinefuse_plugins.mediapipe_pose.estimator import LANDMARKS, NAME, MediaPipePose

SHARED = paths.shared_dir()
ASTRONAUT = SHARED / "data" / "images" / "astronaut.png"
VIDEO = SHARED / "data" / "pose2sim_demo" / "videos" / "cam01.mp4"
needs_shared = pytest.mark.skipif(
    not ASTRONAUT.is_file() or not VIDEO.is_file(), reason=f"{SHARED} is absent"
)


def _have_mediapipe() -> bool:
    try:
        from mediapipe.python.solutions import pose  # noqa: F401
    except ImportError:
        return False
    return True


needs_mediapipe = pytest.mark.skipif(
    not _have_mediapipe(), reason="mediapipe is not installed (make test installs it)"
)


@needs_shared
@needs_mediapipe
def test_blazepose_finds_the_astronauts_face_and_shoulders():
    image = cv2.imread(str(ASTRONAUT))
    people = MediaPipePose({"static_image_mode": True})(image).result
    assert people.shape == (1, 33, 3)
    k = dict(zip(LANDMARKS, people[0], strict=True))
    # the same regions as the MoveNet test (plugins/camera/tests/test_models_on_real_images.py)
    assert 205 <= k["nose"][0] <= 245 and 105 <= k["nose"][1] <= 135
    assert 185 <= k["right_eye"][0] <= 220 and 85 <= k["right_eye"][1] <= 115
    assert 230 <= k["left_eye"][0] <= 265 and 85 <= k["left_eye"][1] <= 115
    assert k["right_shoulder"][0] < 170 < 270 < k["left_shoulder"][0]
    assert 220 <= k["right_shoulder"][1] <= 320 and 220 <= k["left_shoulder"][1] <= 320
    assert (
        min(k[name][2] for name in ("nose", "left_eye", "right_eye", "left_shoulder", "right_shoulder")) > 0.9
    )
    assert k["left_heel"][2] < 0.1  # the feet are out of the image: landmarks guessed, and it says so


@needs_shared
@needs_mediapipe
def test_a_camera_with_blazepose_stores_33_landmarks_on_the_person(kinefuse_pipeline):
    source = {
        "id": "cam",
        "type": "camera",
        "path": str(VIDEO),
        "model": "mediapipe_pose_full",
        "realtime": False,
    }
    result = kinefuse_pipeline(sources=[source], duration_s=60.0)
    assert result.exit_code == 0
    frames = result.keypoint_frames("cam")
    assert set(frames["keypoint_set"]) == {"BlazePose-33"}
    keypoints = frames["keypoints"][np.argsort(frames["seq"])]
    assert keypoints.shape[1:] == (33, 3) and len(keypoints) >= 95  # 100 frames at 60 fps
    k = {name: keypoints[:, i] for i, name in enumerate(LANDMARKS)}
    seen = keypoints[..., 2] > 0.5
    assert seen.mean() > 0.9  # measured: 1.00
    for side in ("left", "right"):  # heels and toes: below the knees, at the ankles' height or lower
        feet = (k[f"{side}_heel"][:, 2] > 0.5) & (k[f"{side}_knee"][:, 2] > 0.5)
        assert feet.mean() > 0.9, side
        assert np.all(k[f"{side}_heel"][feet, 1] > k[f"{side}_knee"][feet, 1]), side
    # an independent person box (RTMDet) on the first frame holds the confident landmarks
    detector = SHARED / "models" / spec("rtmdet_nano_person").file
    ok, first = cv2.VideoCapture(str(VIDEO)).read()
    x1, y1, x2, y2, _ = PoseModel(spec("rtmdet_nano_person"), detector)(first).result[0]
    margin = 0.1 * (x2 - x1)
    xy = keypoints[0][seen[0], :2]
    inside = (
        (xy[:, 0] > x1 - margin)
        & (xy[:, 0] < x2 + margin)
        & (xy[:, 1] > y1 - margin)
        & (xy[:, 1] < y2 + margin)
    )
    assert ok and len(xy) > 10 and inside.mean() > 0.9
    shoulders = keypoints[:, 11:13]
    both = (shoulders[..., 2] > 0.5).all(axis=1)
    assert abs(np.sign(shoulders[both, 0, 0] - shoulders[both, 1, 0]).mean()) > 0.8  # left/right consistent


def test_without_mediapipe_the_camera_fails_saying_how_to_install_it(monkeypatch):
    for name in ("mediapipe", "mediapipe.python", "mediapipe.python.solutions"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if it were not installed
    with pytest.raises(ValueError, match=r"mediapipe_pose_full needs the mediapipe package.*pip install"):
        MediaPipePose({})


def test_blazepose_is_whole_image_so_a_detector_is_refused():
    from kinefuse.plugin_loader import load_plugins
    from kinefuse_plugins.camera.source import SCHEMA, CameraSource

    load_plugins(entry_points=False)
    options = defaults(SCHEMA)
    options.update(path=str(VIDEO), model=NAME, detector="rtmdet_nano_person")
    with pytest.raises(ValueError, match="top-down path"):
        CameraSource(options, "cam")
