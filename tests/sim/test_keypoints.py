"""The detector model on a hand-built stick figure: each error alone changes only what it should."""

import dataclasses

import numpy as np
import pytest
from scipy import stats

from kinefuse.camera_calibration import depth, project
from kinefuse.sim.camera_rig import look_at
from kinefuse.sim.detector_model import (
    JITTER_LIMIT_TORSO,
    KEYPOINT_SETS,
    DetectorErrors,
    JointOffsets,
    Occluder,
    offset_groups,
    simulate_keypoints,
)

# A person standing upright facing +x (y left, z up, metres), feet on the floor at the origin.
STANDING = {
    "nose": (0.11, 0.0, 1.62),
    "left_eye": (0.10, 0.035, 1.66),
    "right_eye": (0.10, -0.035, 1.66),
    "left_ear": (0.0, 0.105, 1.64),
    "right_ear": (0.0, -0.105, 1.64),
    "head_top": (0.0, 0.0, 1.76),
    "neck": (0.0, 0.0, 1.47),
    "left_shoulder": (0.0, 0.19, 1.45),
    "right_shoulder": (0.0, -0.19, 1.45),
    "left_elbow": (0.0, 0.22, 1.17),
    "right_elbow": (0.0, -0.22, 1.17),
    "left_wrist": (0.03, 0.23, 0.92),
    "right_wrist": (0.03, -0.23, 0.92),
    "pelvis_centre": (0.0, 0.0, 0.95),
    "left_hip": (0.0, 0.10, 0.95),
    "right_hip": (0.0, -0.10, 0.95),
    "left_knee": (0.02, 0.10, 0.52),
    "right_knee": (0.02, -0.10, 0.52),
    "left_ankle": (0.0, 0.10, 0.09),
    "right_ankle": (0.0, -0.10, 0.09),
    "left_heel": (-0.05, 0.10, 0.03),
    "right_heel": (-0.05, -0.10, 0.03),
    "left_toe": (0.16, 0.10, 0.02),
    "right_toe": (0.16, -0.10, 0.02),
}
# segment: (start landmark or point, end landmark or point, radius)
SEGMENTS = {
    "head": ((0.0, 0.0, 1.58), (0.0, 0.0, 1.68), 0.10),
    "torso": ("neck", "pelvis_centre", 0.14),
    **{
        f"{side}_{segment}": (f"{side}_{a}", f"{side}_{b}", r)
        for side in ("left", "right")
        for segment, a, b, r in (
            ("upper_arm", "shoulder", "elbow", 0.045),
            ("forearm", "elbow", "wrist", 0.04),
            ("thigh", "hip", "knee", 0.07),
            ("shank", "knee", "ankle", 0.05),
            ("foot", "heel", "toe", 0.03),
        )
    },
}


def walking_figure(n, velocity=(0.0, 0.0, 0.0)):
    """Landmarks and capsules of the standing figure translating at ``velocity`` m per frame."""
    shift = np.arange(n)[:, None] * np.asarray(velocity)
    landmarks = {name: np.asarray(p) + shift for name, p in STANDING.items()}

    def track(end):
        return landmarks[end] if isinstance(end, str) else np.asarray(end) + shift

    capsules = {name: (track(a), track(b), r) for name, (a, b, r) in SEGMENTS.items()}
    return landmarks, capsules


FRONT = look_at("front", (4.0, 0.0, 1.2), (0.0, 0.0, 1.0), (1280, 720), 1000.0)
LEFT = look_at("left", (0.0, 4.0, 1.2), (0.0, 0.0, 1.0), (1280, 720), 1000.0)
RIGHT = look_at("right", (0.0, -4.0, 1.2), (0.0, 0.0, 1.0), (1280, 720), 1000.0)
COCO = KEYPOINT_SETS["COCO-17"]


PERFECT = DetectorErrors()


def detect(
    errors=PERFECT, n=50, cam=FRONT, seed=0, keypoint_set="COCO-17", velocity=(0.005, 0, 0), body=True
):
    """The detector on the figure at 50 fps; ``body=False`` leaves out the capsules (no occlusion test)."""
    landmarks, capsules = walking_figure(n, velocity)
    times = np.arange(n) / 50.0
    return simulate_keypoints(
        cam, keypoint_set, landmarks, capsules if body else None, times, errors, np.random.default_rng(seed)
    )


def column(name):
    return COCO.keypoints.index(name)


def test_coco_order_and_mirror_pairs():
    assert COCO.keypoints[:5] == ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    assert COCO.keypoints[-2:] == ("left_ankle", "right_ankle") and len(COCO.keypoints) == 17
    assert COCO.mirror.tolist() == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    halpe = KEYPOINT_SETS["HALPE-26"]
    assert halpe.keypoints[:17] == COCO.keypoints and len(halpe.keypoints) == 26
    assert halpe.keypoints[17:20] == ("head", "neck", "hip")
    assert halpe.landmarks[20:24] == ("left_toe", "right_toe", "left_toe", "right_toe")


@pytest.mark.parametrize("keypoint_set", sorted(KEYPOINT_SETS))
def test_perfect_detector_reports_exact_projections(keypoint_set):
    track = detect(keypoint_set=keypoint_set)
    landmarks, _ = walking_figure(50, (0.005, 0, 0))
    kset = KEYPOINT_SETS[keypoint_set]
    truth = project(FRONT, np.stack([landmarks[name] for name in kset.landmarks], axis=1))
    assert np.array_equal(track.truth_xy, truth)
    assert track.keypoints.dtype == np.float32 and track.keypoints.shape == (50, len(kset.keypoints), 3)
    assert np.array_equal(track.keypoints[..., :2], truth.astype(np.float32))
    assert (track.keypoints[..., 2] == 1.0).all()
    for flags in (track.scripted_missing, track.out_of_view, track.swapped, track.dropped):
        assert not flags.any()
    # occlusion is truth whether or not the detector pays for it: from the front the feet hide the heels
    hidden = {kset.keypoints[k] for k in np.flatnonzero(track.occluded.any(axis=0))}
    assert hidden == (set() if keypoint_set == "COCO-17" else {"left_heel", "right_heel"})
    assert np.array_equal(track.reported_time_s, np.arange(50) / 50.0)
    assert track.names == kset.keypoints and track.camera == "front"


def changed(track, perfect):
    """Which outputs differ from the perfect detector's."""
    xy, conf = track.keypoints[..., :2], track.keypoints[..., 2]
    return {
        "xy": ~np.isclose(xy, perfect.keypoints[..., :2], rtol=0, atol=0, equal_nan=True).all(axis=-1),
        "confidence": conf != perfect.keypoints[..., 2],
        "swapped": track.swapped,
        "dropped": track.dropped,
        "time": track.reported_time_s != perfect.reported_time_s,
        "scripted": track.scripted_missing,
    }


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (DetectorErrors(pixel_noise_px=2.0), {"xy"}),
        (DetectorErrors(confidence_mean=0.7), {"confidence"}),
        (DetectorErrors(confidence_mean=0.7, confidence_spread=0.1), {"confidence"}),
        (DetectorErrors(occlusion=True), {"xy", "confidence"}),
        (DetectorErrors(swap_probability=0.3), {"xy", "swapped"}),  # confidences are all 1
        (DetectorErrors(frame_drop=0.3), {"dropped"}),
        (DetectorErrors(timestamp_jitter_s=0.002), {"time"}),
        (DetectorErrors(occluders=(Occluder(("left_ankle",), 0.2, 0.4),)), {"xy", "confidence", "scripted"}),
        (DetectorErrors(jitter_scale=0.02), {"xy"}),
        (DetectorErrors(drift_scale=0.05), {"xy"}),
        (DetectorErrors(offsets=JointOffsets(knees=0.05)), {"xy"}),
    ],
    ids=[
        "noise",
        "confidence",
        "confidence-spread",
        "occlusion",
        "swap",
        "drop",
        "jitter",
        "occluder",
        "heavy-jitter",
        "drift",
        "offsets",
    ],  # fmt: skip
)
def test_each_error_alone_changes_only_what_it_should(errors, expected):
    perfect = detect(cam=LEFT)
    track = detect(errors, cam=LEFT)
    differences = changed(track, perfect)
    assert {name for name, mask in differences.items() if mask.any()} == expected
    for flag in ("occluded", "out_of_view"):  # truth, whatever the detector does
        assert np.array_equal(getattr(track, flag), getattr(perfect, flag))
    assert np.array_equal(track.truth_xy, perfect.truth_xy)
    if errors.occlusion:  # only the hidden keypoints change
        assert track.occluded.any()
        assert np.array_equal(differences["xy"], track.occluded)
        assert np.array_equal(differences["confidence"], track.occluded)
        assert np.allclose(track.keypoints[..., 2][track.occluded], 0.2)


def test_noise_grows_as_confidence_falls():
    """σ = base / max(confidence, 0.1), measured per confidence bin."""
    base = 2.0
    errors = DetectorErrors(pixel_noise_px=base, confidence_mean=0.5, confidence_spread=0.25)
    track = detect(errors, n=4000, velocity=(0, 0, 0))
    error = (track.keypoints[..., :2] - track.truth_xy).reshape(-1, 2)
    conf = track.keypoints[..., 2].ravel().astype(np.float64)
    assert 0.48 < conf.mean() < 0.52 and 0.23 < conf.std() < 0.27
    measured, expected = [], []
    for low, high in ((0.15, 0.25), (0.35, 0.45), (0.55, 0.65), (0.85, 0.95)):
        in_bin = (conf >= low) & (conf < high)
        assert in_bin.sum() > 3000
        measured.append(error[in_bin].std())
        expected.append(np.sqrt(np.mean((base / conf[in_bin]) ** 2)))
    assert np.allclose(measured, expected, rtol=0.05), (measured, expected)
    assert all(a > b for a, b in zip(measured, measured[1:], strict=False))


def test_a_point_behind_a_capsule_is_occluded_and_seen_from_the_other_side_it_is_not():
    left_knee, right_knee = column("left_knee"), column("right_knee")
    from_left = detect(cam=LEFT)  # the right knee is behind the left leg
    assert from_left.occluded[:, right_knee].all() and not from_left.occluded[:, left_knee].any()
    from_right = detect(cam=RIGHT)
    assert from_right.occluded[:, left_knee].all() and not from_right.occluded[:, right_knee].any()
    # from the side, the hanging arm hides the hip next to it
    assert from_left.occluded[:, column("left_hip")].all()
    from_front = detect(cam=FRONT)  # facing the camera, nothing is hidden
    assert not from_front.occluded.any()
    # seen from behind, the head hides the nose and eyes
    behind = look_at("behind", (-4.0, 0.0, 1.6), (0.0, 0.0, 1.6), (1280, 720), 1000.0)
    from_behind = detect(cam=behind, velocity=(0, 0, 0))
    hidden = {COCO.keypoints[k] for k in np.flatnonzero(from_behind.occluded[0])}
    assert {"nose", "left_eye", "right_eye"} <= hidden and "left_shoulder" not in hidden


def test_scripted_occluder_hits_exactly_its_frames():
    occluder = Occluder(("left_ankle", "left_knee"), start_s=0.5, end_s=0.7)  # frames 25..34 at 50 fps
    track = detect(DetectorErrors(occluders=(occluder,)), n=60)
    expected = np.zeros((60, 17), dtype=bool)
    expected[25:35, [column("left_ankle"), column("left_knee")]] = True
    assert np.array_equal(track.scripted_missing, expected)
    assert np.isnan(track.keypoints[expected][:, :2]).all() and (track.keypoints[expected][:, 2] == 0).all()
    assert np.isfinite(track.keypoints[~expected]).all()
    with pytest.raises(ValueError, match="left_toe"):
        detect(DetectorErrors(occluders=(Occluder(("left_toe",), 0.0, 1.0),)))


def test_swap_exchanges_exactly_the_left_right_pairs():
    perfect = detect(n=2000, velocity=(0, 0, 0))
    track = detect(DetectorErrors(swap_probability=0.3), n=2000, velocity=(0, 0, 0))
    assert abs(track.swapped.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 2000)
    assert np.array_equal(track.keypoints[track.swapped], perfect.keypoints[track.swapped][:, COCO.mirror])
    assert np.array_equal(track.keypoints[~track.swapped], perfect.keypoints[~track.swapped])
    nose = column("nose")
    assert np.array_equal(track.keypoints[:, nose], perfect.keypoints[:, nose])


def test_frame_drop_rate_matches_its_probability():
    track = detect(DetectorErrors(frame_drop=0.1), n=20000, velocity=(0, 0, 0), body=False)
    assert abs(track.dropped.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 20000)


def test_timestamp_jitter_has_its_sigma():
    track = detect(DetectorErrors(timestamp_jitter_s=0.003), n=20000, velocity=(0, 0, 0), body=False)
    jitter = track.reported_time_s - np.arange(20000) / 50.0
    assert abs(jitter.mean()) < 1e-4 and abs(jitter.std() / 0.003 - 1) < 0.03


def test_out_of_view_and_behind_the_camera_are_missing():
    # walking sideways out of the frame, then past the camera
    landmarks, capsules = walking_figure(100, (0.0, 0.0, 0.0))
    landmarks = {name: p + np.linspace([0, 0, 0], [6.0, 0.0, 0.0], 100) for name, p in landmarks.items()}
    cam = look_at("cam", (4.0, 1.0, 1.2), (0.0, 1.0, 1.0), (1280, 720), 1000.0)
    track = simulate_keypoints(
        cam, "COCO-17", landmarks, None, np.arange(100) / 50.0, DetectorErrors(), np.random.default_rng(0)
    )
    xy = track.truth_xy
    inside = (xy[..., 0] >= -0.5) & (xy[..., 0] < 1279.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] < 719.5)
    assert np.array_equal(track.out_of_view, ~inside)
    assert track.out_of_view[0].sum() == 0 and track.out_of_view[-1].all()
    assert np.isnan(xy[-1]).all()  # behind the camera: no projection at all
    assert np.isnan(track.keypoints[track.out_of_view][:, :2]).all()
    assert (track.keypoints[track.out_of_view][:, 2] == 0).all()


def test_same_seed_same_bytes():
    errors = DetectorErrors(
        pixel_noise_px=1.5,
        confidence_mean=0.8,
        confidence_spread=0.1,
        occlusion=True,
        swap_probability=0.05,
        frame_drop=0.02,
        timestamp_jitter_s=0.001,
        occluders=(Occluder(("right_wrist",), 0.1, 0.3),),
    )
    first, again, other = (detect(errors, cam=LEFT, seed=seed) for seed in (7, 7, 8))
    for field in dataclasses.fields(first):
        a, b = getattr(first, field.name), getattr(again, field.name)
        assert (a.tobytes() == b.tobytes()) if isinstance(a, np.ndarray) else a == b
    assert first.keypoints.tobytes() != other.keypoints.tobytes()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown keypoint set"):
        detect(keypoint_set="BODY-25")
    with pytest.raises(ValueError, match="confidence_spread"):
        detect(DetectorErrors(confidence_mean=0.9, confidence_spread=0.4))
    landmarks, capsules = walking_figure(10)
    del landmarks["left_knee"]
    with pytest.raises(ValueError, match="left_knee"):
        simulate_keypoints(
            FRONT, "COCO-17", landmarks, capsules, np.arange(10), DetectorErrors(), np.random.default_rng()
        )
    with pytest.raises(ValueError, match="capsules"):
        landmarks, _ = walking_figure(10)
        simulate_keypoints(
            FRONT,
            "COCO-17",
            landmarks,
            None,
            np.arange(10),
            DetectorErrors(occlusion=True),
            np.random.default_rng(),
        )


# ---- the errors fitted to MoveNet: heavy-tailed jitter, drift, per-joint offsets --------------------------


def torso_px(cam, n, velocity=(0.0, 0.0, 0.0)):
    """(n,) the figure's torso length in pixels at its depth, as the module docstring defines it."""
    landmarks, _ = walking_figure(n, velocity)
    shoulders = (landmarks["left_shoulder"] + landmarks["right_shoulder"]) / 2
    hips = (landmarks["left_hip"] + landmarks["right_hip"]) / 2
    focal = (cam.matrix[0, 0] + cam.matrix[1, 1]) / 2
    return focal * np.linalg.norm(shoulders - hips, axis=-1) / depth(cam, (shoulders + hips) / 2)


def errors_over_torso(track, torso):
    return ((track.keypoints[..., :2].astype(np.float64) - track.truth_xy) / torso[:, None, None]).reshape(-1)


def test_the_new_errors_are_off_by_default():
    errors = DetectorErrors()
    assert errors.jitter_scale == 0 and errors.drift_scale == 0 and not errors.offsets.any()
    assert np.array_equal(
        detect(errors).keypoints, detect(DetectorErrors(jitter_dof=1.0, drift_time_s=9.0)).keypoints
    )


@pytest.mark.parametrize(
    ("confidence", "power", "dof", "tail_power"),
    [(1.0, 0.64, 4.31, 0.81), (0.5, 0.64, 4.31, 0.81), (0.3, 1.0, 6.0, 0.0), (0.05, 0.5, 6.0, 0.5)],
)
def test_jitter_is_student_t_scaled_by_torso_and_confidence(confidence, power, dof, tail_power):
    """error / (scale · torso · max(c, 0.1)^-power) follows Student-t with dof · max(c, 0.1)^tail_power:
    Kolmogorov-Smirnov against it, at the 0.1 % critical value (1.95 / sqrt(n))."""
    scale, n = 0.02, 1500
    errors = DetectorErrors(jitter_scale=scale, jitter_dof=dof, jitter_confidence_power=power,
                            jitter_tail_power=tail_power, confidence_mean=confidence)  # fmt: skip
    track = detect(errors, n=n, velocity=(0, 0, 0), body=False)
    floored = max(confidence, 0.1)
    unit = errors_over_torso(track, torso_px(FRONT, n)) / (scale * floored**-power)
    law, critical = stats.t(dof * floored**tail_power), 1.95 / np.sqrt(unit.size)
    assert stats.kstest(unit, law.cdf).statistic < critical
    assert stats.kstest(unit * 1.1, law.cdf).statistic > critical  # 10 % off in scale: the test can tell


def test_jitter_scales_with_the_person_not_the_image():
    """Twice as far away, half the error in pixels, the same in torso lengths."""
    far = look_at("far", (8.0, 0.0, 1.2), (0.0, 0.0, 1.0), (1280, 720), 1000.0)
    errors = DetectorErrors(jitter_scale=0.02, jitter_dof=30.0)
    near = detect(errors, n=2000, velocity=(0, 0, 0), body=False)
    far_track = detect(errors, n=2000, velocity=(0, 0, 0), body=False, cam=far)
    near_px = (near.keypoints[..., :2] - near.truth_xy).std()
    far_px = (far_track.keypoints[..., :2] - far_track.truth_xy).std()
    ratio = torso_px(far, 1)[0] / torso_px(FRONT, 1)[0]
    assert 0.45 < ratio < 0.55
    assert abs(far_px / near_px / ratio - 1) < 0.05


def test_jitter_is_clipped_at_its_limit():
    errors = DetectorErrors(jitter_scale=0.5, jitter_dof=0.5)  # a tail heavy enough to reach the limit often
    track = detect(errors, n=400, velocity=(0, 0, 0), body=False)
    unit = np.abs(errors_over_torso(track, torso_px(FRONT, 400)))
    assert unit.max() <= JITTER_LIMIT_TORSO * (1 + 1e-6)
    assert np.mean(unit > JITTER_LIMIT_TORSO * 0.999) > 0.1


def test_drift_is_an_ornstein_uhlenbeck_process_of_its_rms_and_correlation_time():
    """Stationary RMS drift_scale · torso and autocorrelation exp(-Δt / τ) over the real time between frames:
    100 fps for the first half, 25 fps for the second."""
    scale, tau, n = 0.05, 0.2, 4000
    errors = DetectorErrors(drift_scale=scale, drift_time_s=tau)
    landmarks, _ = walking_figure(n)
    times = np.concatenate([np.arange(n // 2) * 0.01, 20.0 + np.arange(n // 2) * 0.04])
    track = simulate_keypoints(FRONT, "COCO-17", landmarks, None, times, errors, np.random.default_rng(2))
    drift = (track.keypoints[..., :2].astype(np.float64) - track.truth_xy) / torso_px(FRONT, n)[:, None, None]
    # independent samples: at least n / 2 / (2 tau / 0.01) per series and half, 34 series
    for half, dt in ((drift[: n // 2], 0.01), (drift[n // 2 :], 0.04)):
        assert abs(np.sqrt(np.mean(half**2)) / scale - 1) < 0.08
        for lag in (1, 5, 10):
            a, b = half[:-lag], half[lag:]
            correlation = np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))
            assert abs(correlation - np.exp(-lag * dt / tau)) < 0.05, (dt, lag, correlation)
    # nothing is correlated from one keypoint to the next
    assert abs(np.corrcoef(drift[:, 0, 0], drift[:, 5, 0])[0, 1]) < 0.15


@pytest.mark.parametrize(
    ("group", "keypoints"),
    [
        ("head", {"nose", "left_eye", "right_eye", "left_ear", "right_ear", "head"}),
        ("shoulders", {"left_shoulder", "right_shoulder", "neck"}),
        ("elbows", {"left_elbow", "right_elbow"}),
        ("wrists", {"left_wrist", "right_wrist"}),
        ("hips", {"left_hip", "right_hip", "hip"}),
        ("knees", {"left_knee", "right_knee"}),
        (
            "feet",
            {
                "left_ankle",
                "right_ankle",
                "left_big_toe",
                "right_big_toe",
                "left_small_toe",
                "right_small_toe",
                "left_heel",
                "right_heel",
            },
        ),  # fmt: skip
    ],
)
def test_each_offset_group_moves_its_keypoints_only(group, keypoints):
    errors = DetectorErrors(offsets=JointOffsets(**{group: 0.05}))
    track, perfect = detect(errors, keypoint_set="HALPE-26"), detect(keypoint_set="HALPE-26")
    moved = np.abs(track.keypoints[..., :2] - perfect.keypoints[..., :2]).max(axis=(0, 2)) > 1e-3
    assert {KEYPOINT_SETS["HALPE-26"].keypoints[k] for k in np.flatnonzero(moved)} == keypoints


def test_offsets_are_fixed_per_joint_and_camera_whatever_the_generator():
    errors = DetectorErrors(offsets=JointOffsets(head=0.04, knees=0.02))
    first = detect(errors, n=30, seed=1, velocity=(0.01, 0, 0))
    other_chunk = detect(errors, n=30, seed=2, velocity=(0.01, 0, 0))
    torso = torso_px(FRONT, 30, (0.01, 0, 0))
    offset = (first.keypoints[..., :2].astype(np.float64) - first.truth_xy) / torso[:, None, None]
    assert np.allclose(offset, offset[0], atol=1e-4)  # the same in every frame, in torso lengths
    assert np.array_equal(first.keypoints, other_chunk.keypoints)  # not from the caller's generator
    moved = {
        COCO.keypoints[k] for k in np.flatnonzero(np.abs(offset[0]).max(axis=1) > 1e-3)
    }  # float32 rounding
    assert moved == {"nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_knee", "right_knee"}
    elsewhere = detect(
        errors, n=30, cam=look_at("other", (4.0, 0.0, 1.2), (0.0, 0.0, 1.0), (1280, 720), 1000.0)
    )
    assert not np.array_equal(
        elsewhere.keypoints, detect(errors, n=30).keypoints
    )  # another camera, another draw
    reseeded = detect(dataclasses.replace(errors, offset_seed=5), n=30)
    assert not np.array_equal(reseeded.keypoints, detect(errors, n=30).keypoints)
    # the directions do not depend on the sizes: doubling one group doubles its offsets, leaves the rest
    doubled = detect(dataclasses.replace(errors, offsets=JointOffsets(head=0.08, knees=0.02)), n=30)
    base = detect(errors, n=30)
    perfect = detect(n=30)
    nose, knee = column("nose"), column("left_knee")
    shift = base.keypoints[:, nose, :2] - perfect.keypoints[:, nose, :2]
    np.testing.assert_allclose(
        doubled.keypoints[:, nose, :2] - perfect.keypoints[:, nose, :2], 2 * shift, atol=1e-3
    )
    assert np.array_equal(doubled.keypoints[:, knee], base.keypoints[:, knee])


@pytest.mark.parametrize("keypoint_set", sorted(KEYPOINT_SETS))
def test_offsets_have_their_groups_rms_over_cameras(keypoint_set):
    """Over 300 cameras (each its own draw), each group's offsets have the configured RMS per axis and no
    mean: 300 cameras x at least 2 keypoints x 2 axes give the RMS to within 10 %."""
    sizes = {"head": 0.04, "shoulders": 0.01, "elbows": 0.02, "wrists": 0.03, "hips": 0.015, "knees": 0.025,
             "feet": 0.035}  # fmt: skip
    errors = DetectorErrors(offsets=JointOffsets(**sizes))
    kset = KEYPOINT_SETS[keypoint_set]
    groups = np.array(offset_groups(kset.landmarks))
    draws = []
    for i in range(300):
        cam = look_at(f"cam{i}", (4.0, 0.0, 1.2), (0.0, 0.0, 1.0), (1280, 720), 1000.0)
        track = detect(errors, n=1, cam=cam, keypoint_set=keypoint_set, velocity=(0, 0, 0), body=False)
        draws.append((track.keypoints[0, :, :2].astype(np.float64) - track.truth_xy[0]) / torso_px(cam, 1)[0])
    draws = np.array(draws)  # (cameras, K, 2)
    for group, size in sizes.items():
        values = draws[:, groups == group]
        assert abs(np.sqrt(np.mean(values**2)) / size - 1) < 0.1, group
        assert abs(values.mean()) < 4 * size / np.sqrt(values.size)
    assert abs(np.corrcoef(draws[:, 0, 0], draws[:, 0, 1])[0, 1]) < 0.2  # no preferred direction


def test_the_new_errors_draw_from_their_own_streams():
    """Switching jitter, drift or offsets on changes no other error's draws, and each adds the same
    amount whatever else is on."""
    old = DetectorErrors(pixel_noise_px=1.5, confidence_mean=0.8, confidence_spread=0.1, occlusion=True,
                         swap_probability=0.05, frame_drop=0.05, timestamp_jitter_s=0.001)  # fmt: skip
    new = {"jitter_scale": 0.02, "drift_scale": 0.03, "offsets": JointOffsets(hips=0.03, wrists=0.02)}
    base = detect(old, cam=LEFT, n=200, seed=3)
    every = detect(dataclasses.replace(old, **new), cam=LEFT, n=200, seed=3)
    for flag in ("swapped", "dropped", "reported_time_s", "occluded", "scripted_missing", "out_of_view"):
        assert np.array_equal(getattr(every, flag), getattr(base, flag))
    assert np.array_equal(every.keypoints[..., 2], base.keypoints[..., 2])
    assert not np.allclose(every.keypoints[..., :2], base.keypoints[..., :2])
    for name, value in new.items():
        one = detect(dataclasses.replace(old, **{name: value}), cam=LEFT, n=200, seed=3)
        alone = detect(dataclasses.replace(DetectorErrors(confidence_mean=0.8, confidence_spread=0.1, occlusion=True),
                                           **{name: value}), cam=LEFT, n=200, seed=3)  # fmt: skip
        plain = detect(DetectorErrors(confidence_mean=0.8, confidence_spread=0.1, occlusion=True), cam=LEFT, n=200,
                       seed=3)  # fmt: skip
        added = alone.keypoints[..., :2].astype(np.float64) - plain.keypoints[..., :2]
        unswapped = ~one.swapped  # a swapped frame moves the error with the label
        np.testing.assert_allclose((one.keypoints[..., :2].astype(np.float64) - base.keypoints[..., :2])[unswapped],
                                   added[unswapped], atol=2e-3, err_msg=name)  # fmt: skip


def test_bad_values_of_the_new_errors_are_refused():
    for errors, match in (
        (DetectorErrors(jitter_scale=-0.1), "jitter_scale"),
        (DetectorErrors(jitter_dof=0.0), "jitter_dof"),
        (DetectorErrors(jitter_confidence_power=-1.0), "jitter_confidence_power"),
        (DetectorErrors(jitter_tail_power=-1.0), "jitter_tail_power"),
        (DetectorErrors(drift_scale=-0.1), "drift_scale"),
        (DetectorErrors(drift_time_s=0.0), "drift_time_s"),
        (DetectorErrors(offsets=JointOffsets(knees=-0.01)), "offsets.knees"),
    ):
        with pytest.raises(ValueError, match=match):
            detect(errors)
