"""Built-in pose estimator ``mediapipe_pose_full``: Google's BlazePose (33 landmarks, heels and toes
included, useful for gait) through the ``mediapipe`` package's pose solution.

Optional: it needs ``mediapipe`` (0.10.14 ships the full landmark model inside its wheel; the lite and
heavy variants would be downloaded at run time, so only ``full`` is offered) — see docs/pose.md for the
install. Without it, a camera asking for this model fails with that instruction and the daemon runs on.

BlazePose: Bazarevsky et al., "BlazePose: On-device Real-time Body Pose tracking", CVPR Workshops 2020.
MediaPipe gives x, y normalised to the image's edges; kinefuse puts pixel centres at integers (as OpenCV
does), so a landmark is at x * width - 0.5. Its own landmark smoothing is off: smoothing is kinefuse's
job downstream, where it is marked as such.
"""

from __future__ import annotations

import time

import numpy as np

from kinefuse.interfaces import Inference, PoseEstimatorSpec

NAME = "mediapipe_pose_full"
KEYPOINT_SET = "BlazePose-33"
LANDMARKS = ("nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
             "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
             "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
             "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
             "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel", "right_heel",
             "left_foot_index", "right_foot_index")  # fmt: skip
INSTALL_HINT = "pip install 'kinefuse[mediapipe]' && pip install --no-deps mediapipe==0.10.14"


class MediaPipePose:
    """One camera's BlazePose tracker (video mode: it tracks between frames, so one per camera)."""

    def __init__(self, options: dict):
        try:
            from mediapipe.python.solutions import pose
        except ImportError as error:
            raise ValueError(
                f"pose model {NAME} needs the mediapipe package ({error}); install: {INSTALL_HINT}"
            ) from error
        self._pose = pose.Pose(static_image_mode=options.get("static_image_mode", False), model_complexity=1,
                               smooth_landmarks=False, min_detection_confidence=0.5,
                               min_tracking_confidence=0.5)  # fmt: skip

    def __call__(self, frame_bgr: np.ndarray) -> Inference:
        import cv2

        start = time.perf_counter()
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        prepared = time.perf_counter()
        found = self._pose.process(rgb).pose_landmarks
        inferred = time.perf_counter()
        height, width = frame_bgr.shape[:2]
        people = np.zeros((0, len(LANDMARKS), 3))
        if found is not None:
            marks = [(m.x * width - 0.5, m.y * height - 0.5, m.visibility) for m in found.landmark]
            people = np.array(marks, dtype=np.float64)[None]
        return Inference.timed(people, start, prepared, inferred)


SPEC = PoseEstimatorSpec(
    NAME,
    MediaPipePose,
    KEYPOINT_SET,
    "BlazePose full (33 landmarks with heels and toes) via mediapipe; single person",
)
