"""Pose estimation: models described as data, their decoders, exact image geometry, onnxruntime sessions."""
