"""Keypoint sets by name: each detector output's keypoint names in order, for runtime code that must find a
joint in a camera's keypoints (the motion stream's triangulation and fusion). The synthetic detector
(kinefuse.sim.detector_model.KEYPOINT_SETS) takes its names from here and adds the body-model landmark each
keypoint sits on."""

from __future__ import annotations

# COCO keypoint order (Lin et al., "Microsoft COCO: common objects in context", ECCV 2014; the
# person_keypoints annotation files).
COCO_17 = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# HALPE-26 (AlphaPose; RTMPose body-with-feet; Pose2Sim skeletons.py ids 17-25) appends these to COCO-17.
HALPE_26 = COCO_17 + (
    "head",
    "neck",
    "hip",
    "left_big_toe",
    "right_big_toe",
    "left_small_toe",
    "right_small_toe",
    "left_heel",
    "right_heel",
)
KEYPOINT_NAMES: dict[str, tuple[str, ...]] = {"COCO-17": COCO_17, "HALPE-26": HALPE_26}
