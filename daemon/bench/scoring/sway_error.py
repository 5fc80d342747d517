"""Scoring the ``sway`` metrics on the synthetic single-leg balance: each window's stored sway against the same
measures (kinefuse.sway) of the simulator's true segment orientations over the same window. Times: a value's
stored time less its strap's aligned-time offset, as the other scorings; windows ending after ``WARMUP_S``.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.bench import make_row
from kinefuse.bench.scoring.segment_error import sim_times_by_device
from kinefuse.sway import MEASURES, measures, tilt

PROCESSOR = "sway"  # the id the accuracy runs give it (segment_error.processors)
SEGMENT, WINDOW_S = "pelvis", 10.0  # its defaults
WARMUP_S = 10.0
RATE_HZ = 100.0  # the truth is sampled this often over each window
_METRICS = ("SELECT m.time_ns, m.name, m.value, m.quality, d.device_id FROM metrics m JOIN devices d ON "
            "d.id = m.device_ref WHERE m.analysis_id IS NULL AND m.processor = ? ORDER BY m.time_ns")  # fmt: skip


def sway_rows(name: str, simulation, db) -> list[dict]:
    """Per measure, the stored good windows' median |error| against the truth, and the stored values'
    quality; a scenario without the sway processor's metrics gives none."""
    if simulation.scenario.sections["motion"]["kind"] != "single_leg_balance":
        return []
    straps = {d.name: d for d in simulation.imus if d.segment == SEGMENT}
    stored = [r for r in db.query(_METRICS, [PROCESSOR]) if r["device_id"] in straps]
    if not stored:
        return []
    ends = sim_times_by_device(db, straps, stored)
    found: dict[str, list] = {measure: [] for measure in MEASURES}
    truths: dict[float, dict] = {}
    for row, end in zip(stored, ends, strict=True):
        measure = row["name"].removeprefix("sway.")
        if end < WARMUP_S + WINDOW_S or measure not in MEASURES:
            continue
        key = round(float(end), 3)
        if key not in truths:
            truths[key] = true_sway(simulation, end - WINDOW_S, end)
        found[measure].append((row["value"], truths[key][measure], row["quality"]))
    return [_row(name, measure, found[measure]) for measure in MEASURES if found[measure]]


def true_sway(simulation, start_s: float, end_s: float) -> dict[str, float]:
    """The sway measures of the true segment's orientations over [start_s, end_s]."""
    t = np.arange(start_s, end_s, 1.0 / RATE_HZ)
    rotations = Rotation.from_matrix(simulation.body.segment(SEGMENT, t).R)
    return measures(tilt(rotations), t)


def _row(name: str, measure: str, found: list) -> dict:
    metric = f"sway {measure.replace('_', ' ')} |error| median (sway, from the lower-back strap)"
    unit = MEASURES[measure]
    good = [(v, true) for v, true, quality in found if quality == "good" and v is not None]
    qualities = ", ".join(f"{sum(q == level for *_, q in found)} {level}"
                          for level in ("good", "degraded", "insufficient"))  # fmt: skip
    if not good:
        scored = [(v, true) for v, true, _ in found if v is not None]
        note = f"insufficient data: no good window ({qualities})"
        if scored:
            errors = np.array([v - true for v, true in scored])
            note += (
                f"; the others: reported median {np.median([v for v, _ in scored]):.3g}, true "
                f"{np.median([true for _, true in scored]):.3g}, |error| median {np.median(np.abs(errors)):.3g}"
            )
        return make_row(name, metric, unit, None, "lower", note=note)
    errors = np.array([v - true for v, true in good])
    note = (f"{len(good)} good {WINDOW_S:.0f} s windows after {WARMUP_S:.0f} s ({qualities}); reported median "
            f"{np.median([v for v, _ in good]):.3g}, true {np.median([t for _, t in good]):.3g} {unit}; "
            f"signed median {np.median(errors):+.3g}")  # fmt: skip
    return make_row(name, metric, unit, float(np.median(np.abs(errors))), "lower", note=note)
