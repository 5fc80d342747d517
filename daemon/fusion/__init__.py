"""Fusion: keypoint smoothing with honest gap filling, orientation filters, clock alignment, IMU + video.

Thin public wrappers over the compiled kernels in ``kinefuse._ext`` (see docs/fusion.md)."""
