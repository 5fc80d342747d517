"""Scoring estimates against ground truth: orientation (BROAD method), event timing, clock recovery."""
