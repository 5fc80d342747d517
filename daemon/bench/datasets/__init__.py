"""Readers for public motion data sets, and for users' own recordings in the same formats
(BROAD, gaitmap, Pose2Sim, TRC, C3D)."""
