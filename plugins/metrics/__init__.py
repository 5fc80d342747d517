"""Metrics over the motion stream (joint angles so far); README.md lists its files."""
