"""Joint angles from one camera's 2D keypoints, as the image shows them (a 2D projection): the hips' and
knees' flexion and the trunk's forward lean where the camera sees the athlete from the side, the knees'
frontal plane projection angle where it sees them from the front; and how far the plane of motion is from
the image plane.

Each segment's angle is taken from the image's downward vertical (image y down; a level camera), positive
towards where the athlete faces: the nose ahead of the ears' (else the eyes') midpoint. Hip flexion is the
thigh's (hip to knee) angle less the trunk's (shoulders' to hips' midpoint), knee flexion the thigh's less the
shank's (knee to ankle), the signs of the ISB angles (flexion +).

The trunk's forward lean is its angle (shoulders' to hips' midpoint) from the vertical, leaning forward +.
The frontal plane projection angle (FPPA; Willson & Davis 2008, Clin Biomech 23(2):203-211) is the angle
between the thigh (hip to knee) and the shank (knee to ankle) in a frontal view, positive where the knee
lies medial of the hip-to-ankle line (towards the other hip): a dynamic valgus proxy, an observation of the
image and not the knee's 3D angle.

**Obliquity.** A camera square to the plane of motion sees the hips and the shoulders one behind the other;
turned by an angle θ about the vertical it sees them sin θ of their width apart. The widths are taken as
fractions of the torso (the shoulders' to the hips' midpoint, which the turn leaves alone): hip joint
centres 0.0955 H apart (Harrington et al. 2007, J Biomech 40:595), shoulder joint centres 0.8 of the
shoulder width 0.259 H, torso 0.288 H (Winter 2009, "Biomechanics and Motor Control of Human Movement",
Fig. 4.1). A plane turned by θ shortens every horizontal extent by cos θ, so a segment at angle α shows at
atan(tan α cos θ): ``projection_error_deg`` is what that does to a joint angle, which its tolerance
includes.
"""

from __future__ import annotations

import numpy as np

JOINTS = {  # joint -> (parent segment, child segment, sign): flexion = sign (child's angle - parent's)
    "hip": ("trunk", "thigh", 1.0),  # the thigh ahead of the trunk
    "knee": ("thigh", "shank", -1.0),  # the shank behind the thigh
}
WIDTH_OVER_TORSO = (0.0955 + 0.8 * 0.259) / 0.288  # hips' and shoulders' joint-centre widths over the torso
_SEGMENTS = {"thigh": ("{side}_hip", "{side}_knee"), "shank": ("{side}_knee", "{side}_ankle")}


def facing(points: dict[str, np.ndarray]) -> float:
    """+1 where the athlete faces the image's +x, -1 towards -x, NaN where no face keypoints tell."""
    nose = points.get("nose")
    for left, right in (("left_ear", "right_ear"), ("left_eye", "right_eye")):
        if nose is None or left not in points or right not in points:
            continue
        behind = 0.5 * (points[left] + points[right])
        if np.isfinite(behind).all() and np.isfinite(nose).all():
            return float(np.sign(nose[0] - behind[0])) or np.nan
    return np.nan


def segment_angles(points: dict[str, np.ndarray], side: str, towards: float) -> dict[str, float]:
    """The trunk's, thigh's and shank's angles (rad) from the image's downward vertical, positive towards
    ``towards`` (+1 or -1, ``facing``); NaN where a keypoint is missing."""
    ends = {name: (a.format(side=side), b.format(side=side)) for name, (a, b) in _SEGMENTS.items()}
    out = {}
    for name, (a, b) in ends.items():
        out[name] = _angle(points[b] - points[a], towards)
    hips = 0.5 * (points["left_hip"] + points["right_hip"])
    shoulders = 0.5 * (points["left_shoulder"] + points["right_shoulder"])
    out["trunk"] = _angle(hips - shoulders, towards)
    return out


def flexion_deg(angles: dict[str, float], joint: str) -> float:
    """The joint's flexion (deg) from its segments' angles (``segment_angles``)."""
    parent, child, sign = JOINTS[joint]
    return float(np.degrees(sign * _wrap(angles[child] - angles[parent])))


def trunk_lean_deg(angles: dict[str, float]) -> float:
    """The trunk's forward lean (deg) from its angle (``segment_angles``): the shoulders ahead of the hips +."""
    return float(np.degrees(-angles["trunk"]))


def fppa_deg(points: dict[str, np.ndarray], side: str) -> float:
    """The knee's frontal plane projection angle (deg), valgus (the knee medial) +; NaN where a keypoint
    is missing."""
    other = "right" if side == "left" else "left"
    hip, knee, ankle = (points[f"{side}_{joint}"] for joint in ("hip", "knee", "ankle"))
    thigh, shank, line = knee - hip, ankle - knee, ankle - hip
    medial = points[f"{other}_hip"] - hip
    normal = np.array([-line[1], line[0]])
    offset = np.dot(knee - hip, normal) * np.sign(np.dot(medial, normal))  # towards the other hip: +
    turn = np.arctan2(abs(thigh[0] * shank[1] - thigh[1] * shank[0]), np.dot(thigh, shank))
    return float(np.degrees(np.sign(offset) * turn))


def obliquity_deg(points: dict[str, np.ndarray]) -> float:
    """How far (deg) the plane of motion is turned from the image plane, from the hips' and shoulders'
    apparent widths over the torso's length; NaN where one is missing."""
    width = np.linalg.norm(points["left_hip"] - points["right_hip"]) + np.linalg.norm(
        points["left_shoulder"] - points["right_shoulder"]
    )
    torso = np.linalg.norm(
        0.5 * (points["left_shoulder"] + points["right_shoulder"] - points["left_hip"] - points["right_hip"])
    )
    if not (np.isfinite(width) and np.isfinite(torso) and torso > 0):
        return np.nan
    return float(np.degrees(np.arcsin(min(width / (WIDTH_OVER_TORSO * torso), 1.0))))


def projection_error_deg(angles: dict[str, float], joint: str, obliquity: float) -> float:
    """How much the joint's angle as seen differs from the same angle in a plane turned by ``obliquity``
    (deg) from the image plane."""
    parent, child, _ = JOINTS[joint]
    shrink = np.cos(np.radians(min(obliquity, 89.0)))
    seen = {s: angles[s] for s in (parent, child)}
    true = {s: np.arctan2(np.sin(a) / shrink, np.cos(a)) for s, a in seen.items()}
    return float(abs(np.degrees(_wrap((true[child] - true[parent]) - (seen[child] - seen[parent])))))


def _angle(vector: np.ndarray, towards: float) -> float:
    return float(np.arctan2(towards * vector[0], vector[1]))


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)
