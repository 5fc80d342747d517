"""The multiview plugin: several calibrated cameras seen as one (triangulation and its bench; calibration and
synchronisation are to come, issue 15). README.md lists its files."""
