"""The joint_angles processor: on the synthetic athlete's true segment orientations it gives the true joint
angles, and on its true 3D joints the true knee flexion; a joint's quality is its worse segment's (or worst
keypoint's), and there is no value where a segment has none or the two are in different worlds; in the
daemon it reads the motion processor listed before it, and only that."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from kinefuse.keypoints import COCO_17
from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.motions import make_motion
from kinefuse.types import (
    TRIANGULATED_VIEW,
    KeypointStatus,
    KeypointView,
    MotionItem,
    Provenance,
    Quality,
    QualityLevel,
    SegmentOrientation,
)
from kinefuse_plugins.metrics.joint_angles import _TRUNK_LINE, SPEC, JointAngles

OPTIONS = {
    "revision": 1,
    "motion": "motion",
    "source": "segments",
    "max_tolerance_deg": 5.0,
    "camera": "",
    "max_obliquity_deg": 20.0,
}  # the smoothed items (the daemon test: 0)
LEGS = ("pelvis", "left_thigh", "left_shank", "left_foot", "right_thigh", "right_shank", "right_foot")


def _segment(name, quaternion, level=QualityLevel.GOOD, reason="", world="cameras", provenance=Provenance.FUSED,
             tolerance_deg=None):  # fmt: skip
    if quaternion is None:
        return SegmentOrientation(
            name, "sim", f"imu_{name}", None, None, Quality(QualityLevel.INSUFFICIENT, reason)
        )
    return SegmentOrientation(name, "sim", f"imu_{name}", tuple(quaternion), provenance, Quality(level, reason),
                              tolerance_deg, world)  # fmt: skip


def _values(metrics) -> dict:
    return {m.name: m for m in metrics}


def test_the_true_segment_orientations_give_the_true_joint_angles():
    shape = BodyShape(1.75)
    body = Body(shape, make_motion("walk", shape=shape))
    t = np.linspace(1.0, 3.0, 25)
    truth = body.joint_angles(t)
    quats = {s: Rotation.from_matrix(body.segment(s, t).R).as_quat()[:, [3, 0, 1, 2]] for s in LEGS}
    processor = JointAngles(OPTIONS, "joint_angles")
    for j in range(len(t)):
        item = MotionItem(j, 30.0, tuple(_segment(s, quats[s][j]) for s in LEGS), (), "motion", 1)
        got = _values(processor.observe([item]))
        assert len(got) == 6 * 3  # hips, knees, ankles
        for joint in ("left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"):
            for i, angle in enumerate(("flexion", "adduction", "rotation")):
                value = got[f"{joint}.{angle}"]
                assert value.value == pytest.approx(truth[joint][j, i], abs=1e-6)
                assert "ISB" in value.unit and value.quality.level is QualityLevel.GOOD


def test_a_joint_is_as_good_as_its_worse_segment_and_has_no_value_across_worlds():
    processor = JointAngles(OPTIONS, "joint_angles")
    still = (1.0, 0.0, 0.0, 0.0)

    def knee(thigh, shank):
        return _values(processor.observe([MotionItem(0, 30.0, (thigh, shank), (), "motion", 1)]))[
            "left_knee.flexion"
        ]

    degraded = knee(_segment("left_thigh", still, QualityLevel.DEGRADED, "mounting bias"),
                    _segment("left_shank", still, provenance=Provenance.MEASURED))  # fmt: skip
    assert degraded.quality == Quality(QualityLevel.DEGRADED, "left_thigh: mounting bias")
    assert degraded.value == pytest.approx(0.0) and degraded.provenance is Provenance.FUSED
    assert degraded.tolerance is None  # the thigh states none
    both = knee(
        _segment("left_thigh", still, tolerance_deg=3.0), _segment("left_shank", still, tolerance_deg=4.0)
    )
    assert both.tolerance == pytest.approx(5.0)
    assert degraded.tolerance is None  # the thigh states none
    both = knee(
        _segment("left_thigh", still, tolerance_deg=3.0), _segment("left_shank", still, tolerance_deg=4.0)
    )
    assert both.tolerance == pytest.approx(5.0)
    apart = knee(_segment("left_thigh", still), _segment("left_shank", still, world="magnetic"))
    assert apart.value is None and apart.quality.level is QualityLevel.INSUFFICIENT
    assert "different worlds (cameras, magnetic)" in apart.quality.reason
    own = knee(_segment("left_thigh", still, world="strap"), _segment("left_shank", still, world="strap"))
    assert own.value is None and "different worlds (strap, strap)" in own.quality.reason
    missing = knee(_segment("left_thigh", None, reason="no samples"), _segment("left_shank", still))
    assert missing.value is None and missing.quality.reason == "left_thigh: no samples"
    # another processor's items, or the other revision, are not read
    other = MotionItem(
        0, 30.0, (_segment("left_thigh", still), _segment("left_shank", still)), (), "motion", 0
    )
    assert processor.observe([other]) == []


def test_a_leg_joint_turned_past_any_one_s_rotation_has_no_rotation_and_says_the_flexion_may_be_mirrored():
    """A shank (or thigh) turned 180 deg about its long axis, a strap's forward taken backward (its
    mounting's sign), puts the knee's rotation near 180 deg: no rotation, and flexion and adduction
    degraded (right if the shank is the one turned, as here, mirrored if the thigh); 80 deg is a value."""
    processor = JointAngles(OPTIONS, "joint_angles")
    thigh = _segment(
        "left_thigh", (1.0, 0.0, 0.0, 0.0), QualityLevel.DEGRADED, "mounting: forward may be backward"
    )
    for turn in (180.0, -100.0, 80.0):
        bent = Rotation.from_euler("YZ", [30.0, turn], degrees=True).as_quat()[[3, 0, 1, 2]]
        item = MotionItem(0, 30.0, (thigh, _segment("left_shank", bent)), (), "motion", 1)
        got = _values(processor.observe([item]))
        flexion, rotation = got["left_knee.flexion"], got["left_knee.rotation"]
        assert flexion.value == pytest.approx(30.0) and flexion.quality.level is QualityLevel.DEGRADED
        if abs(turn) > 90.0:
            assert rotation.value is None and rotation.quality.level is QualityLevel.INSUFFICIENT
            assert "beyond any knee's" in rotation.quality.reason
            assert "right if it is the left_shank, mirrored if the left_thigh" in flexion.quality.reason
            assert "forward may be backward" in flexion.quality.reason
        else:
            assert abs(rotation.value) == pytest.approx(turn)
            assert flexion.quality.reason == "left_thigh: mounting: forward may be backward"


STRAPS = """
[scenario]
name = "pelvis_and_trunk"
duration_s = 12.0
[motion]
kind = "walk"
treadmill = true
[[imus]]
name = "imu_pelvis"
segment = "pelvis"
offset_m = [-0.1, 0.0, 0.05]
[[imus]]
name = "imu_trunk"
segment = "trunk"
offset_m = [-0.12, 0.0, 0.25]
"""


def test_in_the_daemon_it_reads_the_motion_processor_listed_before_it(kinefuse_pipeline, tmp_path):
    scenario = tmp_path / "straps.toml"
    scenario.write_text(STRAPS)
    source = {"id": "synth", "type": "synthetic", "scenario": str(scenario), "realtime": False, "loop": False}
    result = kinefuse_pipeline(sources=[source], duration_s=120.0, processors=[
        {"id": "early", "type": "joint_angles"},  # before the motion processor: sees none of its items
        {"id": "motion", "type": "motion"},
        {"id": "joint_angles", "type": "joint_angles"},
    ])  # fmt: skip
    assert result.exit_code == 0 and result.status["processors"]["joint_angles"]["errors"] == 0
    metrics = result.metrics()
    assert metrics and {m["processor"] for m in metrics} == {"joint_angles"}
    lumbar = [m for m in metrics if m["name"] == "lumbar.flexion"]
    assert len(lumbar) > 100 and all("ISB" in m["unit"] for m in lumbar)
    assert {m["quality"] for m in lumbar} <= {"good", "degraded", "insufficient"}
    assert all((m["value"] is None) == (m["quality"] == "insufficient") for m in lumbar)


def test_the_processor_is_documented():
    assert "ISB" in SPEC.doc and SPEC.name == "joint_angles"


def _view(points: np.ndarray, status: np.ndarray, tolerance_m: float = 0.001) -> KeypointView:
    n = len(points)
    return KeypointView(
        TRIANGULATED_VIEW, "", "COCO-17", "m", points, np.zeros(n), status, np.full(n, tolerance_m)
    )


def test_from_the_true_3d_joints_the_knee_flexion_is_the_true_one_and_rotation_is_not_claimed():
    shape = BodyShape(1.75)
    body = Body(shape, make_motion("walk", shape=shape))
    t = np.linspace(1.0, 3.0, 25)
    marks, truth = body.landmarks(t), body.joint_angles(t)
    processor = JointAngles({**OPTIONS, "source": "keypoints"}, "joint_angles")
    for j in range(len(t)):
        points = np.array([marks[n][j] if n in marks else [np.nan] * 3 for n in COCO_17])
        status = np.where(np.isfinite(points).all(axis=1), KeypointStatus.MEASURED, KeypointStatus.MISSING)
        got = _values(processor.observe([MotionItem(j, 30.0, (), (_view(points, status),), "motion", 1)]))
        assert set(got) == {f"{s}_{joint}.{a}" for s in ("left", "right") for joint in ("hip", "knee")
                            for a in ("flexion", "adduction")} | {"trunk.lean", "trunk.side_lean"}  # fmt: skip
        for side in ("left", "right"):
            # within 0.01 deg: the frames' medio-lateral axes are the pelvis's, not each segment's own
            assert got[f"{side}_knee.flexion"].value == pytest.approx(truth[f"{side}_knee"][j, 0], abs=0.01)
            assert got[f"{side}_knee.flexion"].quality.level is QualityLevel.GOOD


def test_from_the_true_3d_joints_a_hip_takes_in_the_lumbar_bend_and_says_so():
    """Hips and shoulders do not show the pelvis's tilt: the keypoint pelvis stands on the trunk's line, so a
    sit-to-stand's hip flexion from its true joints is off by most of the lumbar spine's flexion (0.8 of it),
    more than 5 deg RMS; every hip value is degraded, saying why."""
    shape = BodyShape(1.75)
    body = Body(shape, make_motion("sit_to_stand", shape=shape))
    t = np.linspace(0.0, 6.0, 61)  # one repetition: seated, up, seated
    marks, truth = body.landmarks(t), body.joint_angles(t)
    processor = JointAngles({**OPTIONS, "source": "keypoints"}, "joint_angles")
    hips = []
    for j in range(len(t)):
        points = np.array([marks[n][j] for n in COCO_17])
        status = np.full(len(COCO_17), KeypointStatus.MEASURED, dtype=np.int8)
        hip = _values(processor.observe([MotionItem(j, 30.0, (), (_view(points, status),), "motion", 1)]))[
            "left_hip.flexion"
        ]
        assert hip.quality == Quality(QualityLevel.DEGRADED, _TRUNK_LINE)
        hips.append(hip.value)
    error, lumbar = np.array(hips) - truth["left_hip"][:, 0], truth["lumbar"][:, 0]
    assert np.sqrt(np.mean(error**2)) > 5.0
    slope = np.polyfit(lumbar, error, 1)[0]
    assert 0.7 < slope < 0.9 and np.corrcoef(lumbar, error)[0, 1] > 0.99


def test_from_the_true_3d_joints_the_trunk_lean_is_the_true_one():
    """A squat leans the trunk forward (the synthetic squatter 15 deg at depth, on a 20 deg pelvis tilt) and
    not sideways: from its true joints, the trunk line's lean along the way it faces, within 0.01 deg."""
    shape = BodyShape(1.75)
    body = Body(shape, make_motion("squat", shape=shape))
    t = np.linspace(0.0, 3.0, 31)
    marks = body.landmarks(t)
    trunk = (marks["left_shoulder"] + marks["right_shoulder"] - marks["left_hip"] - marks["right_hip"]) / 2
    ahead = trunk[:, 0] * np.cos(body.heading_rad) + trunk[:, 1] * np.sin(body.heading_rad)
    truth = np.degrees(np.arctan2(ahead, trunk[:, 2]))
    assert truth.max() > 20.0
    processor = JointAngles({**OPTIONS, "source": "keypoints"}, "joint_angles")
    for j in range(len(t)):
        points = np.array([marks[n][j] for n in COCO_17])
        status = np.full(len(COCO_17), KeypointStatus.MEASURED, dtype=np.int8)
        got = _values(processor.observe([MotionItem(j, 30.0, (), (_view(points, status),), "motion", 1)]))
        assert got["trunk.lean"].value == pytest.approx(truth[j], abs=0.01)
        assert got["trunk.side_lean"].value == pytest.approx(0.0, abs=0.01)
        assert got["trunk.lean"].quality.level is QualityLevel.GOOD and got["trunk.lean"].tolerance < 1.0


def test_a_keypoint_angle_is_as_good_as_its_worst_keypoint():
    points = np.array([[0.0, 0.0, 1.5]] * 17) + np.arange(17)[:, None] * [0.01, 0.02, -0.05]
    status = np.full(17, KeypointStatus.MEASURED, dtype=np.int8)
    status[COCO_17.index("left_ankle")] = KeypointStatus.FILLED
    status[COCO_17.index("right_knee")] = KeypointStatus.MISSING
    processor = JointAngles({**OPTIONS, "source": "keypoints"}, "joint_angles")
    got = _values(processor.observe([MotionItem(0, 30.0, (), (_view(points, status),), "motion", 1)]))
    assert got["left_hip.flexion"].quality == Quality(QualityLevel.DEGRADED, _TRUNK_LINE)  # its one caveat
    assert got["left_knee.flexion"].quality.level is QualityLevel.DEGRADED
    assert got["left_knee.flexion"].provenance is Provenance.FILLED
    assert got["right_knee.flexion"].value is None and got["right_hip.adduction"].value is None
    assert got["right_knee.flexion"].quality.reason.startswith("3D keypoints missing")
    # keypoints within 5 cm of lines a few cm long here: the angle may be off by far more than 5 deg
    loose = _view(points, np.full(17, KeypointStatus.MEASURED, dtype=np.int8), tolerance_m=0.05)
    hip = _values(processor.observe([MotionItem(0, 30.0, (), (loose,), "motion", 1)]))["left_hip.flexion"]
    assert hip.quality.level is QualityLevel.DEGRADED and "tolerances allow" in hip.quality.reason
    assert hip.tolerance > 5.0 and f"{hip.tolerance:.0f} deg" in hip.quality.reason
    assert hip.tolerance > 5.0 and f"{hip.tolerance:.0f} deg" in hip.quality.reason
