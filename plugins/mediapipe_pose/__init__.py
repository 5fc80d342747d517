"""The ``mediapipe_pose`` plugin: BlazePose through mediapipe as a pose estimator the camera source runs by
name. Optional (the mediapipe extra). Hooks: plugin.py; the estimator: estimator.py. Guide: docs/pose.md."""
