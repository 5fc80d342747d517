"""Keypoint sets by name: each detector output's keypoint names in order, for runtime code that must find a
joint in a camera's keypoints (the motion stream's triangulation and fusion). The synthetic detector
(kinefuse.sim.detector_model.KEYPOINT_SETS) takes its names from here and adds the body-model landmark each
keypoint sits on."""

from __future__ import annotations

import numpy as np

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


def person_size(position: np.ndarray, keypoint_set: str) -> np.ndarray:
    """The person's torso length in each of m frames' keypoint positions (m, K, D): the distance from the
    shoulders' midpoint to the hips' midpoint, in the positions' unit; NaN where one of the four is missing
    or the set has no such keypoints. A pose model's errors scale with it (docs/fusion.md, "Tolerance")."""
    names = KEYPOINT_NAMES.get(keypoint_set)
    if names is None or not {"left_shoulder", "right_shoulder", "left_hip", "right_hip"} <= set(names):
        return np.full(len(position), np.nan)
    at = {
        name: position[:, names.index(name)]
        for name in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
    }
    shoulders = (at["left_shoulder"] + at["right_shoulder"]) / 2.0
    hips = (at["left_hip"] + at["right_hip"]) / 2.0
    return np.linalg.norm(shoulders - hips, axis=-1)


def torso_length_seen(position: np.ndarray, keypoint_set: str) -> np.ndarray:
    """The torso length in each of m frames' keypoint positions (m, K, D) from whichever shoulders and hips
    are present: the mean of ``person_size`` and each side's shoulder-to-hip distance, where known (a side
    view often hides one side); NaN where none is."""
    names = KEYPOINT_NAMES.get(keypoint_set)
    if names is None or not {"left_shoulder", "right_shoulder", "left_hip", "right_hip"} <= set(names):
        return np.full(len(position), np.nan)
    sides = [
        np.linalg.norm(position[:, names.index(f"{side}_shoulder")] - position[:, names.index(f"{side}_hip")],
                       axis=-1)
        for side in ("left", "right")
    ]  # fmt: skip
    lengths = np.stack([person_size(position, keypoint_set), *sides])
    known = np.isfinite(lengths)
    return np.where(known.any(axis=0), np.nansum(lengths, axis=0) / np.maximum(known.sum(axis=0), 1), np.nan)
