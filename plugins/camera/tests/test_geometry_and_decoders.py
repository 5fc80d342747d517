"""Image geometry is exactly invertible, and each decoder reads outputs built to a known answer."""

import numpy as np
import pytest

from kinefuse_plugins.camera.decoders import (
    box_iou,
    movenet_singlepose,
    nms,
    rtmdet_persons,
    simcc,
    yolo_pose,
)
from kinefuse_plugins.camera.image_geometry import crop, letterbox


@pytest.mark.parametrize("align", ["centre", "top_left"])
def test_letterbox_maps_pixels_there_and_back(align):
    image = np.zeros((300, 500, 3), dtype=np.uint8)
    image[200, 120] = 255  # one bright pixel
    boxed, transform = letterbox(image, (256, 256), pad_value=7, align=align)
    assert boxed.shape == (256, 256, 3)
    where = transform.to_input(np.array([120.0, 200.0]))
    brightest = np.unravel_index(np.argmax(boxed[..., 0]), boxed.shape[:2])
    assert np.abs(np.array(brightest[::-1]) - where).max() <= 0.6  # the pixel lands where the transform says
    points = np.random.default_rng(0).uniform(0, 300, (50, 2))
    np.testing.assert_allclose(transform.to_image(transform.to_input(points)), points, atol=1e-12)
    if align == "centre":
        assert (boxed[:25] == 7).all() and (boxed[-25:] == 7).all()  # 500x300 -> 256x154, centred
    else:
        assert (boxed[160:] == 7).all()


def test_crop_centres_the_box_and_inverts():
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    image[240, 400] = 255
    out, transform = crop(image, (350, 150, 450, 330), (192, 256), padding=1.25)
    np.testing.assert_allclose(transform.to_input(np.array([400.0, 240.0])), [96.0, 128.0], atol=1e-9)
    brightest = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
    assert abs(brightest[1] - 96) <= 1 and abs(brightest[0] - 128) <= 1


def test_movenet_output_is_read_as_normalised_y_x_score():
    raw = np.zeros((1, 1, 17, 3), dtype=np.float32)
    raw[0, 0, 0] = (0.25, 0.75, 0.9)  # nose: a quarter down, three quarters across
    people = movenet_singlepose([raw], (192, 192))
    np.testing.assert_allclose(people[0, 0], [0.75 * 192 - 0.5, 0.25 * 192 - 0.5, 0.9], rtol=1e-6)


def test_simcc_takes_the_argmax_bins_and_the_weaker_peak():
    x, y = np.zeros((1, 2, 384)), np.zeros((1, 2, 512))
    x[0, 0, 101], y[0, 0, 300] = 0.8, 0.6  # keypoint 0 at (50.5, 150) with split ratio 2
    x[0, 1, 10], y[0, 1, 20] = 0.3, 0.9
    people = simcc([x, y], (192, 256))
    np.testing.assert_allclose(people[0], [[50.5, 150.0, 0.6], [5.0, 10.0, 0.3]])


def test_yolo_pose_keeps_the_best_of_overlapping_people():
    K = 17
    rows = np.zeros((3, 5 + 3 * K))
    rows[0, :5] = (100, 100, 50, 100, 0.9)
    rows[1, :5] = (102, 101, 50, 100, 0.8)  # the same person again: suppressed
    rows[2, :5] = (300, 120, 60, 110, 0.7)
    rows[0, 5:8] = (95, 60, 0.95)
    rows[2, 5:8] = (298, 70, 0.85)
    people = yolo_pose([rows.T[None]], (640, 640))
    assert people.shape == (2, K, 3)
    np.testing.assert_allclose(people[:, 0], [[95, 60, 0.95], [298, 70, 0.85]])


def test_rtmdet_keeps_confident_people_best_first():
    dets = np.array([[[10, 10, 50, 90, 0.5], [60, 5, 120, 100, 0.9], [0, 0, 5, 5, 0.1], [1, 1, 9, 9, 0.95]]])
    labels = np.array([[0, 0, 0, 56]])  # the last one is a chair
    boxes = rtmdet_persons([dets, labels], (320, 320))
    np.testing.assert_allclose(boxes[:, 4], [0.9, 0.5])


def test_nms_and_iou():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=float)
    np.testing.assert_allclose(box_iou(boxes[0], boxes[1:]), [81 / 119, 0.0])
    np.testing.assert_array_equal(nms(boxes, np.array([0.5, 0.9, 0.4]), 0.5), [1, 2])
