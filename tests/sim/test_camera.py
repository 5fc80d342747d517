"""Virtual cameras and the rendered video of the figure, read back through a real decode."""

import cv2
import numpy as np
import pytest

from kinefuse.camera_calibration import depth, project, triangulate
from kinefuse.sim.camera_rig import look_at, ring
from kinefuse.sim.render import render_video
from tests.sim.test_keypoints import walking_figure


def test_look_at_puts_the_target_at_the_image_centre_upright():
    cam = look_at("c", (5.0, 2.0, 1.5), (0.0, 0.0, 1.0), (1920, 1080), 1400.0)
    assert np.allclose(cam.centre, (5.0, 2.0, 1.5), atol=1e-12)
    assert np.allclose(project(cam, (0.0, 0.0, 1.0)), (959.5, 539.5), atol=1e-9)
    assert np.isclose(depth(cam, (0.0, 0.0, 1.0)), np.sqrt(25 + 4 + 0.25))
    above, below = project(cam, [(0.0, 0.0, 2.0), (0.0, 0.0, 0.0)])
    assert above[1] < 539.5 < below[1] and np.isclose(above[0], below[0], atol=1e-9)  # no roll: z up is up
    # facing the athlete (who faces +x), the athlete's left (+y) is on the image's right
    facing = look_at("f", (5.0, 0.0, 1.0), (0.0, 0.0, 1.0), (1920, 1080), 1400.0)
    assert project(facing, (0.0, 0.5, 1.0))[0] > 959.5
    assert cam.size == (1920, 1080) and (cam.distortions == 0).all()


def test_look_at_refuses_to_look_straight_down():
    with pytest.raises(ValueError, match="straight up or down"):
        look_at("c", (0.0, 0.0, 5.0), (0.0, 0.0, 0.0), (640, 480), 500.0)


def test_a_ring_surrounds_the_target_and_triangulates_it():
    cams = ring(4, radius_m=4.0, height_m=1.5, target=(0.5, 0.0, 1.0), size=(1280, 720), focal_px=900.0)
    assert [cam.name for cam in cams] == ["cam01", "cam02", "cam03", "cam04"]
    centres = np.array([cam.centre for cam in cams])
    assert np.allclose(centres, [(4.5, 0, 1.5), (0.5, 4, 1.5), (-3.5, 0, 1.5), (0.5, -4, 1.5)], atol=1e-12)
    points = np.random.default_rng(0).uniform([0, -0.5, 0], [1, 0.5, 2], (100, 3))
    pixels = np.stack([project(cam, points) for cam in cams])
    assert np.linalg.norm(triangulate(cams, pixels) - points, axis=-1).max() < 1e-9


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The figure walking past a camera, rendered with its capsules and as a stick figure."""
    cam = look_at("c", (4.0, 1.5, 1.3), (0.0, 0.0, 1.0), (640, 480), 500.0)
    landmarks, capsules = walking_figure(30, (0.01, 0.0, 0.0))
    times = np.arange(30) / 30.0
    folder = tmp_path_factory.mktemp("video")
    paths = {kind: folder / f"{kind}.mp4" for kind in ("capsules", "again", "stick")}
    render_video(paths["capsules"], cam, landmarks, times, 30.0, capsules)
    render_video(paths["again"], cam, landmarks, times, 30.0, capsules)
    render_video(paths["stick"], cam, landmarks, times, 30.0)
    return cam, landmarks, paths


def decode(path):
    video = cv2.VideoCapture(str(path))
    try:
        size = (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT))
        frames = []
        while (frame := video.read())[0]:
            frames.append(frame[1])
        return size, video.get(cv2.CAP_PROP_FPS), np.array(frames)
    finally:
        video.release()


def contrast(pixels):
    """How far a pixel is from the mid-grey background, in its most different channel."""
    return np.abs(pixels.astype(np.int16) - 128).max(axis=-1)


# landmarks no stick joins / off every capsule of the test figure (its face sits just outside the head)
_NOT_DRAWN = {
    "stick": ("head_top", "neck", "pelvis_centre"),
    "capsules": ("head_top", "nose", "left_eye", "right_eye", "left_ear", "right_ear"),
}


@pytest.mark.parametrize("kind", ["capsules", "stick"])
def test_rendered_video_shows_the_figure_where_its_landmarks_project(rendered, kind):
    cam, landmarks, paths = rendered
    size, fps, frames = decode(paths[kind])
    assert size == (640, 480) and fps == 30.0 and frames.shape == (30, 480, 640, 3)
    names = [name for name in landmarks if name not in _NOT_DRAWN[kind]]
    pixels = np.round(project(cam, np.stack([landmarks[name] for name in names], axis=1))).astype(int)
    on_figure = contrast(frames[np.arange(30)[:, None], pixels[..., 1], pixels[..., 0]])
    # mpeg4's 4:2:0 chroma and quantisation soften small coloured details, hence the margin
    assert (on_figure > 30).all(), [names[k] for k in np.flatnonzero((on_figure <= 30).any(axis=0))]
    # far from the figure: the grey background
    assert (contrast(frames[:, :100, :100]) < 15).all() and (contrast(frames[:, -100:, -100:]) < 15).all()
    # the figure walks 0.3 m: its pixels follow
    ankle = names.index("left_ankle")
    assert pixels[0, ankle, 0] != pixels[-1, ankle, 0]


def test_same_input_same_video_bytes(rendered):
    _, _, paths = rendered
    assert paths["capsules"].read_bytes() == paths["again"].read_bytes()


def test_frame_times_must_match_the_frame_rate(tmp_path):
    cam = look_at("c", (4.0, 0.0, 1.2), (0.0, 0.0, 1.0), (320, 240), 250.0)
    landmarks, _ = walking_figure(3)
    with pytest.raises(ValueError, match="evenly spaced"):
        render_video(tmp_path / "v.mp4", cam, landmarks, np.array([0.0, 0.04, 0.1]), 25.0)
