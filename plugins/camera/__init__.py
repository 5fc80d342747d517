"""The ``camera`` plugin: video files, V4L2 devices and RTSP streams through a pose model into keypoint
frames. Pose models are described as data (models.toml), decoded exactly, run through onnxruntime, top-down
with a person detector and tracked; ``kinefuse models`` installs them and ``kinefuse bench pose`` times
them. Hooks: plugin.py. Guide: docs/pose.md."""
