"""Scoring clock alignment against the simulator's truth: how far each aligned sample time lies from the
instant the sample was really taken, and how well the fitted skew matches the device clock's.

The aligner maps device time onto host time plus the link's minimum latency (the latency floor cannot
be seen from arrival times alone), so the median error is that floor; the spread around it is the
aligner's own error.
"""

from __future__ import annotations

import numpy as np

from kinefuse.sim.timing import DeviceClock


def true_mapper_skew_ppm(clock: DeviceClock) -> float:
    """The skew a perfect aligner reports: host seconds per device second, minus one, in ppm."""
    return (1.0 / (1.0 + clock.skew_ppm * 1e-6) - 1.0) * 1e6


def score_alignment(time_ns: np.ndarray, true_time_s: np.ndarray, time_zero_ns: int, warmup_s: float) -> dict:
    """Errors (ms) of aligned times against the true sample times, skipping the first ``warmup_s``.

    Returns the median error, the 95th percentile of its spread around the median, the largest spread, and
    the number of samples scored; None values when no sample is past the warm-up.
    """
    keep = true_time_s >= true_time_s.min() + warmup_s
    if not keep.any():
        return {"median_ms": None, "p95_spread_ms": None, "max_spread_ms": None, "samples": 0}
    error_ms = (time_ns[keep] - time_zero_ns) / 1e6 - true_time_s[keep] * 1e3
    median = float(np.median(error_ms))
    spread = np.abs(error_ms - median)
    return {
        "median_ms": median,
        "p95_spread_ms": float(np.percentile(spread, 95)),
        "max_spread_ms": float(spread.max()),
        "samples": int(keep.sum()),
    }
