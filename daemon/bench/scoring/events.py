"""Event timing against a reference (e.g. detected initial contacts vs motion-capture ones).

Matching is one-to-one within a tolerance and optimal: as many pairs as possible, and among those the
smallest total |error|. The events are split where the time line has a gap wider than the tolerance (no
pair can span it), and each cluster is an assignment problem solved with the Hungarian method
(scipy.optimize.linear_sum_assignment); clusters are small, so long recordings stay cheap.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclasses.dataclass(frozen=True)
class EventMatch:
    pairs: np.ndarray  # (k, 2) int: (index into estimated, index into reference), by reference time
    errors_s: np.ndarray  # (k,) estimated - reference: positive means the estimate is late
    missed: np.ndarray  # indices into reference with no estimate within tolerance
    extra: np.ndarray  # indices into estimated with no reference within tolerance


def match_events(estimated_s, reference_s, tolerance_s: float) -> EventMatch:
    """Pair estimated with reference event times (seconds) one-to-one where |difference| <= tolerance_s."""
    estimated = np.asarray(estimated_s, dtype=np.float64).ravel()
    reference = np.asarray(reference_s, dtype=np.float64).ravel()
    if not tolerance_s >= 0:
        raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
    if not (np.all(np.isfinite(estimated)) and np.all(np.isfinite(reference))):
        raise ValueError("event times must be finite")
    pairs = [pair for cluster in _clusters(estimated, reference, tolerance_s) for pair in _assign(*cluster)]
    pairs = np.array(sorted(pairs, key=lambda p: reference[p[1]]), dtype=np.int64).reshape(-1, 2)
    return EventMatch(
        pairs=pairs,
        errors_s=estimated[pairs[:, 0]] - reference[pairs[:, 1]],
        missed=np.setdiff1d(np.arange(len(reference)), pairs[:, 1]),
        extra=np.setdiff1d(np.arange(len(estimated)), pairs[:, 0]),
    )


def _clusters(estimated: np.ndarray, reference: np.ndarray, tolerance_s: float):
    """(estimated indices, reference indices, their times, tolerance) of each stretch between wide gaps."""
    times = np.concatenate([estimated, reference])
    is_reference = np.arange(len(times)) >= len(estimated)
    order = np.argsort(times, kind="stable")
    breaks = np.flatnonzero(np.diff(times[order]) > tolerance_s) + 1
    for members in np.split(order, breaks):
        est = members[~is_reference[members]]
        ref = members[is_reference[members]] - len(estimated)
        if len(est) and len(ref):
            yield est, ref, estimated[est], reference[ref], tolerance_s


def _assign(est_idx, ref_idx, est_t, ref_t, tolerance_s: float) -> list[tuple[int, int]]:
    cost = np.abs(est_t[:, None] - ref_t[None, :])
    allowed = cost <= tolerance_s
    # a forbidden pair costs more than every allowed pair together, so the solver first maximises the
    # number of allowed pairs and only then minimises their summed error
    forbidden = (cost[allowed].sum() + 1.0) if allowed.any() else 1.0
    rows, cols = linear_sum_assignment(np.where(allowed, cost, forbidden))
    return [(int(est_idx[r]), int(ref_idx[c])) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]


def timing_summary(match: EventMatch) -> dict:
    """Mean, SD (n-1), RMSE and max |error| in ms over matched pairs, with the counts; a statistic that
    needs more pairs than there are (any with none, SD with fewer than two) is None."""
    errors_ms = match.errors_s * 1e3
    matched = len(errors_ms)
    return {
        "mean_ms": float(np.mean(errors_ms)) if matched else None,
        "sd_ms": float(np.std(errors_ms, ddof=1)) if matched > 1 else None,
        "rmse_ms": float(np.sqrt(np.mean(errors_ms**2))) if matched else None,
        "max_abs_ms": float(np.max(np.abs(errors_ms))) if matched else None,
        "matched": matched,
        "missed": len(match.missed),
        "extra": len(match.extra),
    }
