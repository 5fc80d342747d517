"""Scoring the ``landing`` metrics on the synthetic drop landing: each stored landing against the simulator's
true landing (kinefuse.sim.body.Body.gait_events: ``ic`` of a drop landing), its flight time against the
true flight (take-off to landing), and the knee's flexion at the landing and its peak within the absorption
against the true knee angle (kinefuse.sim.body.Body.joint_angles). Times: a landing's stored time less its
strap's aligned-time offset, as the other scorings; after ``WARMUP_S``.
"""

from __future__ import annotations

import json

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.scoring.events import match_events
from kinefuse.bench.scoring.segment_error import sim_times_by_device

PROCESSOR = "landing"  # the id the accuracy runs give it (segment_error.processors)
WARMUP_S, MATCH_S = 10.0, 0.15
ABSORB_S = 0.5  # the processor's default absorb_s: the true peak is looked for as long
_EVENTS = ("SELECT e.time_ns, e.detail, e.quality, d.device_id FROM events e JOIN devices d ON d.id = "
           "e.device_ref WHERE e.analysis_id IS NULL AND e.processor = ? AND e.kind = 'landing' "
           "ORDER BY e.time_ns")  # fmt: skip
_METRIC = ("SELECT value, quality FROM metrics WHERE analysis_id IS NULL AND processor = ? AND name = ? "
           "AND time_ns = ?")  # fmt: skip


def landing_rows(name: str, simulation, db) -> list[dict]:
    """Landing time, flight time and knee rows of a scenario with the landing processor's events."""
    if simulation.scenario.sections["motion"]["kind"] != "drop_landing":
        return []
    straps = {d.name: d for d in simulation.imus}
    stored = [r for r in db.query(_EVENTS, [PROCESSOR]) if r["device_id"] in straps]
    if not stored:
        return []
    truth = simulation.body.gait_events(0.0, simulation.duration_s)
    found = {}  # metric -> list of (stored value, true value, quality)
    timing = []
    for row, t in zip(stored, sim_times_by_device(db, straps, stored), strict=True):
        side = json.loads(row["detail"])["side"]
        if t < WARMUP_S:
            continue
        lands = [e.time_s for e in truth if e.side == side and e.kind == "ic"]
        match = match_events([t], lands, MATCH_S)
        if not len(match.pairs):
            continue
        land = lands[int(match.pairs[0][1])]
        timing.append((t - land) * 1e3)
        take_off = max(
            (e.time_s for e in truth if e.side == side and e.kind == "tc" and e.time_s < land), default=np.nan
        )
        for metric, true in _truths(simulation, side, land, take_off).items():
            value = list(db.query(_METRIC, [PROCESSOR, f"landing.{side}.{metric}", row["time_ns"]]))
            if value:
                found.setdefault(metric, []).append((value[0]["value"], true, value[0]["quality"]))
    return [
        _timing_row(name, timing, len(stored)),
        *(_value_row(name, m, found[m]) for m in _UNITS if m in found),
    ]


_UNITS = {"free_fall_time": "ms", "knee_flexion_at_contact": "deg", "knee_flexion_peak": "deg"}


def _truths(simulation, side: str, land: float, take_off: float) -> dict:
    t = np.linspace(land, land + ABSORB_S, 101)
    knee = simulation.body.joint_angles(t)[f"{side}_knee"][:, 0]
    return {"free_fall_time": land - take_off, "knee_flexion_at_contact": float(knee[0]),
            "knee_flexion_peak": float(knee.max())}  # fmt: skip


def _timing_row(name: str, errors: list, stored: int) -> dict:
    metric = "landing |error| median (landing, from shank straps)"
    if not errors:
        return make_row(name, metric, "ms", None, "lower", note="insufficient data: no landing matched")
    errors = np.array(errors)
    note = (f"{len(errors)} landings after {WARMUP_S:.0f} s matched within {MATCH_S * 1e3:.0f} ms ({stored} stored in "
            f"all); signed median {np.median(errors):+.1f} ms; the impact after a free fall")  # fmt: skip
    return make_row(name, metric, "ms", float(np.median(np.abs(errors))), "lower", note=note)


def _value_row(name: str, metric: str, found: list) -> dict:
    unit = _UNITS[metric]
    scale = 1e3 if unit == "ms" else 1.0
    valued = [(v, t, q) for v, t, q in found if v is not None]
    label = f"landing {metric.replace('_', ' ')} |error| median (landing)"
    if not valued:
        return make_row(
            name, label, unit, None, "lower", note=f"insufficient data: none of {len(found)} has a value"
        )
    errors = np.array([(v - t) * scale for v, t, _ in valued])
    levels = [q for _, _, q in found]
    shares = ", ".join(f"{levels.count(level)} {level}" for level in ("good", "degraded", "insufficient"))
    note = (
        f"{len(found)} landings ({shares}); signed median {np.median(errors):+.1f} {unit}, against the truth"
    )
    return make_row(name, label, unit, float(np.median(np.abs(errors))), "lower", note=note)
