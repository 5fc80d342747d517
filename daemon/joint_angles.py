"""Joint angles from two segments' orientations, in the ISB joint coordinate system (public plugin API).

The convention (``CONVENTION``): Grood & Suntay 1983 (J Biomech Eng 105:136), as the ISB adopted it for the
lower limb (Wu et al. 2002, J Biomech 35:543) and the upper limb (Wu et al. 2005, J Biomech 38:981): a joint's
three angles are the Cardan rotations parent -> child about the parent's medio-lateral axis (flexion), the
floating axis (adduction) and the child's long axis (rotation), so the parent-to-child rotation is
Ry(sf a0) Rx(sa a1) Rz(sr a2) (intrinsic y-x'-z''). kinefuse's segment frames have x anterior, y to the left
and z up along the segment in neutral standing (ISB's x anterior, y up, z right, relabelled), and the signs
(sf, sa, sr) in ``JOINT_SIGNS`` turn the right-handed rotations into the clinical ones on both sides:
flexion +, adduction (varus) +, internal rotation +; at the ankle dorsiflexion +, inversion +, toe-in +. The
synthetic athlete (kinefuse.sim.body) is built on the same definitions, so its joint angles are the truth
these are scored against.

The shoulder uses the same flexion-adduction-rotation sequence rather than ISB's y-x-y humerothoracic one,
which is singular with the arm hanging at the side (as kinefuse.sim.body says).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

CONVENTION = "ISB JCS (Grood & Suntay 1983; Wu et al. 2002, 2005): flexion, adduction, internal rotation +"
ANGLES = ("flexion", "adduction", "rotation")

# Each segment's parent and the joint between them (the pelvis's "joint" is its attitude in the world).
CHAIN: dict[str, tuple[str | None, str]] = {
    "pelvis": (None, "pelvis"),
    "trunk": ("pelvis", "lumbar"),
    "head": ("trunk", "neck"),
    "left_thigh": ("pelvis", "left_hip"),
    "left_shank": ("left_thigh", "left_knee"),
    "left_foot": ("left_shank", "left_ankle"),
    "right_thigh": ("pelvis", "right_hip"),
    "right_shank": ("right_thigh", "right_knee"),
    "right_foot": ("right_shank", "right_ankle"),
    "left_upper_arm": ("trunk", "left_shoulder"),
    "left_forearm": ("left_upper_arm", "left_elbow"),
    "right_upper_arm": ("trunk", "right_shoulder"),
    "right_forearm": ("right_upper_arm", "right_elbow"),
}

# (flexion, adduction, rotation) sign of each clinical angle on the right-handed rotation about (y, x, z)
JOINT_SIGNS: dict[str, tuple[float, float, float]] = {
    "pelvis": (1.0, 1.0, 1.0),
    "lumbar": (1.0, -1.0, 1.0),
    "neck": (1.0, -1.0, 1.0),
}
for _side, _m in (("left", -1.0), ("right", 1.0)):
    JOINT_SIGNS[f"{_side}_hip"] = (-1.0, _m, _m)
    JOINT_SIGNS[f"{_side}_knee"] = (1.0, _m, _m)
    JOINT_SIGNS[f"{_side}_ankle"] = (-1.0, _m, _m)
    JOINT_SIGNS[f"{_side}_shoulder"] = (-1.0, _m, _m)
    JOINT_SIGNS[f"{_side}_elbow"] = (-1.0, _m, _m)


def joints_between(segments) -> dict[str, tuple[str, str]]:
    """The joints whose two segments are both among ``segments``: joint -> (parent, child)."""
    present = set(segments)
    return {joint: (parent, child) for child, (parent, joint) in CHAIN.items()
            if parent is not None and parent in present and child in present}  # fmt: skip


def joint_angles(joint: str, parent: np.ndarray, child: np.ndarray) -> np.ndarray:
    """The joint's (flexion, adduction, rotation) in degrees (n, 3) from the parent's and the child's
    orientations, quaternions (n, 4) w, x, y, z turning segment coordinates into one shared world's."""
    to_scipy = [1, 2, 3, 0]  # scipy's quaternions are x, y, z, w
    return _clinical(joint, *(Rotation.from_quat(np.atleast_2d(q)[:, to_scipy]) for q in (parent, child)))


def angles_of_frames(joint: str, parent: np.ndarray, child: np.ndarray) -> np.ndarray:
    """``joint_angles`` from the two segments' rotation matrices (n, 3, 3), segment to world."""
    return _clinical(joint, Rotation.from_matrix(parent), Rotation.from_matrix(child))


def _clinical(joint: str, parent: Rotation, child: Rotation) -> np.ndarray:
    """The Cardan y-x'-z'' angles of parent -> child in degrees, with the joint's clinical signs."""
    return np.degrees((parent.inv() * child).as_euler("YXZ")) / np.array(JOINT_SIGNS[joint])


def keypoint_frames(points: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Segment frames (n, 3, 3) built from 3D joint positions (name -> (n, 3), world with z up): the pelvis
    from its hips (its y, to the left) and the shoulders' midpoint (its z, up), each thigh along knee -> hip
    and each shank along ankle -> knee (their z), their y the pelvis's made square to it. A thigh's or shank's
    turn about its own long axis is therefore not seen (no keypoint marks it): only flexion and adduction of
    the hip and knee mean anything from these frames (``KEYPOINT_ANGLES``). NaN where a point is."""
    hips = (points["left_hip"] + points["right_hip"]) / 2.0
    shoulders = (points["left_shoulder"] + points["right_shoulder"]) / 2.0
    pelvis = _frame(shoulders - hips, points["left_hip"] - points["right_hip"])
    frames = {"pelvis": pelvis}
    for side in ("left", "right"):
        frames[f"{side}_thigh"] = _frame(points[f"{side}_hip"] - points[f"{side}_knee"], pelvis[..., 1])
        frames[f"{side}_shank"] = _frame(points[f"{side}_knee"] - points[f"{side}_ankle"], pelvis[..., 1])
    return frames


KEYPOINT_ANGLES = ("flexion", "adduction")  # what keypoint frames show (``keypoint_frames``)


def trunk_lean_deg(left_hip, right_hip, left_shoulder, right_shoulder) -> tuple[np.ndarray, np.ndarray]:
    """The trunk's lean (deg) from the world's vertical (z up), from 3D joint positions ((3,) or (n, 3)):
    the line from the hips' to the shoulders' midpoint, forward (+) along the way the hips face (their line,
    left minus right, made horizontal, turned a quarter clockwise seen from above) and to the left (+)."""
    trunk = (np.asarray(left_shoulder) + right_shoulder - left_hip - right_hip) / 2.0
    left = np.asarray(left_hip, dtype=np.float64) - right_hip
    left[..., 2] = 0.0
    left /= np.linalg.norm(left, axis=-1, keepdims=True)
    forward = np.cross(left, [0.0, 0.0, 1.0])
    up = trunk[..., 2]
    return (np.degrees(np.arctan2(np.sum(trunk * forward, axis=-1), up)),
            np.degrees(np.arctan2(np.sum(trunk * left, axis=-1), up)))  # fmt: skip


def _frame(up: np.ndarray, left: np.ndarray) -> np.ndarray:
    """The frame (n, 3, 3) whose z is ``up`` and whose y is ``left`` made square to it; columns x, y, z."""
    z = up / np.linalg.norm(up, axis=-1, keepdims=True)
    y = left - np.sum(left * z, axis=-1, keepdims=True) * z
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    return np.stack([np.cross(y, z), y, z], axis=-1)
