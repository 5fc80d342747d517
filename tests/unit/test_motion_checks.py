"""The 3D keypoints' checks (kinefuse.builtin.processors.motion_checks): bones against their running lengths,
and the calibration watch naming the one camera that moved, on exact geometry with detector-sized noise."""

import numpy as np

from kinefuse.builtin.processors.motion_checks import BONE_MIN_SAMPLES, BoneLengths, CalibrationWatch
from kinefuse.camera_calibration import project
from kinefuse.sim.camera_rig import look_at
from kinefuse.types import GOOD, KeypointStatus, KeypointView, QualityLevel, Triangulated, TriangulationCheck

NAMES = ("left_hip", "left_knee", "left_ankle")


def _leg(thigh: np.ndarray, shank: float = 0.4) -> np.ndarray:
    """Points (m, 3, 3): hip at the origin, knee ``thigh`` below, ankle ``shank`` below that."""
    points = np.zeros((len(thigh), 3, 3))
    points[:, 1, 2] = -thigh
    points[:, 2, 2] = -thigh - shank
    return points


def test_a_bone_off_its_running_length_flags_both_ends():
    bones = BoneLengths(NAMES)
    tolerance = np.full((BONE_MIN_SAMPLES, 3), 0.01)
    rng = np.random.default_rng(1)
    learned = bones.check(_leg(0.42 + rng.normal(0, 0.005, BONE_MIN_SAMPLES)), tolerance, learn=True)
    assert not learned.any()  # no running length yet: nothing to check against
    off = bones.check(_leg(np.array([0.42, 0.50, 0.36, 0.44])), tolerance[:4], learn=False)
    # 0.50 m is 19 % off 0.42, past the 15 % slack; 0.36 m is 14 % off and 0.44 m 5 %: within it
    assert off.tolist() == [[False] * 3, [True, True, False], [False] * 3, [False] * 3]
    assert len(bones.lengths[bones.bones.index((0, 1))]) == BONE_MIN_SAMPLES  # learn=False kept nothing
    # a point that claims a wide tolerance is not flagged for what its tolerance allows
    assert not bones.check(_leg(np.array([0.50])), np.full((1, 3), 0.1), learn=False).any()


def _ring(count: int):
    angles = np.radians(np.linspace(-90.0, 90.0, count))
    return [look_at(f"cam{i}", (4 * np.cos(a), 4 * np.sin(a), 1.2), (0.0, 0.0, 0.9), (1280, 720), 1000.0)
            for i, a in enumerate(angles)]  # fmt: skip


def _feed(watch, cams, seconds: float, shift_px=None, seed=0):
    """Feed ``seconds`` of 17 points near the athlete at 5 items/s, 3 px of noise; camera ``shift_px[0]``
    seeing its points ``shift_px[1]`` px to the right. The cameras flagged."""
    rng = np.random.default_rng(seed)
    flagged = []
    for start in np.arange(0.0, seconds, 1.0):
        times = start + np.arange(5) / 5.0
        points = rng.normal((0.0, 0.0, 1.0), (0.2, 0.2, 0.5), (5, 17, 3))
        pixels = np.stack([project(cam, points) for cam in cams]) + rng.normal(0, 3.0, (len(cams), 5, 17, 2))
        if shift_px is not None:
            pixels[shift_px[0], ..., 0] += shift_px[1]
        flagged += watch.update(cams, times, pixels, np.ones(pixels.shape[:3]))
    return flagged


def test_the_watch_names_the_camera_that_moved_and_only_it():
    cams, watch = _ring(4), CalibrationWatch(window_s=10.0, ratio=2.0)
    assert _feed(watch, cams, 20.0) == []  # the baseline, then steady: nothing
    (drift,) = _feed(watch, cams, 20.0, shift_px=(2, 40.0), seed=1)
    assert drift.camera == "cam2" and drift.together == ("cam2",)
    assert drift.now_px > 2 * drift.baseline_px
    assert _feed(watch, cams, 30.0, shift_px=(2, 40.0), seed=2) == []  # the others, measured afresh, agree


def test_with_two_cameras_both_are_flagged_together():
    cams, watch = _ring(2), CalibrationWatch(window_s=10.0, ratio=2.0)
    _feed(watch, cams, 12.0)
    drifts = _feed(watch, cams, 20.0, shift_px=(1, 40.0), seed=1)
    assert {d.camera for d in drifts} == {"cam0", "cam1"} and drifts[0].together == ("cam0", "cam1")


def test_a_checked_keypoint_is_degraded_with_the_reason():
    checks = np.array([0, TriangulationCheck.VIEW_LEFT_OUT, TriangulationCheck.BONE_LENGTH,
                       TriangulationCheck.CAMERA_DRIFT | TriangulationCheck.BONE_LENGTH], dtype=np.uint8)  # fmt: skip
    status = np.array([KeypointStatus.MEASURED] * 3 + [KeypointStatus.MEASURED], dtype=np.int8)
    view = KeypointView("3d", "s", "COCO-17", "m", np.zeros((4, 3)), np.zeros(4), status, None,
                        Triangulated(np.full(4, 3, np.int8), np.zeros(4), checks))  # fmt: skip
    assert view.quality(0) == GOOD and view.quality(1) == GOOD  # a view left out: the rest still agree
    assert view.quality(2).level is QualityLevel.DEGRADED and "bone" in view.quality(2).reason
    assert "bone" in view.quality(3).reason and "drifted" in view.quality(3).reason
    filled = KeypointView("3d", "s", "COCO-17", "m", np.zeros((4, 3)), np.zeros(4),
                          np.full(4, KeypointStatus.FILLED, np.int8), None, view.triangulation)  # fmt: skip
    assert filled.quality(2) == KeypointStatus.FILLED.quality  # a worse status says its own reason
