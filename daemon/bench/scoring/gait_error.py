"""Scoring the ``gait`` metrics on the synthetic athlete: the contacts the daemon stored against the
simulator's true initial contacts and toe-offs (kinefuse.sim.body.Body.gait_events), the symmetry indices
against the same indices of the true strides, and whether the stride values reported good are within twice
their stated tolerance of the true strides'.

Scored: from ``WARMUP_S`` on, to ``END_MARGIN_S`` before the end (the last swing has nothing after it to
confirm it). A stored contact pairs with a true one of its foot and kind within ``MATCH_S``
(kinefuse.bench.scoring.events.match_events); the rows give the median |error| of every stored contact,
good or not, and the note how many were found, missed, extra and insufficient. Times: a contact's stored
time (aligned host time) less its strap's aligned-time offset, as the other scorings.
"""

from __future__ import annotations

import json

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.scoring.events import match_events
from kinefuse.bench.scoring.segment_error import sim_time_s

WARMUP_S = 10.0
END_MARGIN_S = 2.0
MATCH_S = 0.15
PROCESSOR = "gait"  # the processor id the accuracy runs give it (segment_error.processors)
SIDES = ("left", "right")
KINDS = {"initial_contact": "ic", "final_contact": "tc"}
STRIDE_VALUES = ("stride_time", "stance_time", "step_time")
# the live stream's (an analysis of the session writes its own beside them)
_METRICS = ("SELECT m.time_ns, m.value, m.tolerance, d.device_id FROM metrics m JOIN devices d "
            "ON d.id = m.device_ref WHERE m.analysis_id IS NULL AND m.processor = ?")  # fmt: skip


def gait_rows(name: str, simulation, db) -> list[dict]:
    """Contact timing and honesty rows of a scenario with a strap on a foot or shank, for the feet that have
    one; symmetry rows where both have."""
    straps = {d.name: d for d in simulation.imus if d.segment.endswith(("_foot", "_shank"))}
    stored = _stored_contacts(db, straps)
    if not straps or not stored:
        return []
    span = (WARMUP_S, simulation.duration_s - END_MARGIN_S)
    truth = simulation.body.gait_events(0.0, simulation.duration_s)
    sides = tuple(side for side in SIDES if any(d.segment.startswith(side) for d in straps.values()))
    places = " and ".join(sorted({d.segment.split("_")[1] for d in straps.values()}))
    what = f"gait, from {places} straps"
    rows = [_contact_row(name, kind, stored, truth, span, what, sides) for kind in KINDS]
    if sides == SIDES:  # symmetry needs both feet
        rows += _symmetry_rows(name, db, straps, truth, span, what)
    return rows + [_honesty_row(name, db, straps, truth, span, what, sides)]


def _stored_contacts(db, straps: dict) -> list[dict]:
    """The gait processor's contacts: side, kind, quality and the simulation's time (s)."""
    query = (
        "SELECT e.*, d.device_id FROM events e JOIN devices d ON d.id = e.device_ref "
        "WHERE e.analysis_id IS NULL AND e.processor = ? ORDER BY e.time_ns"
    )
    rows = [r for r in db.query(query, [PROCESSOR]) if r["device_id"] in straps and r["kind"] in KINDS]
    return [{"side": json.loads(row["detail"])["side"], "kind": KINDS[row["kind"]], "quality": row["quality"],
             "t": float(t)} for row, t in zip(rows, _sim_times(db, straps, rows), strict=True)]  # fmt: skip


def _sim_times(db, straps: dict, rows: list[dict]) -> np.ndarray:
    """Each row's ``time_ns`` as the simulation's time (s), by its strap's aligned-time offset (looked up
    once per strap: it reads the strap's stored samples)."""
    out = np.empty(len(rows))
    for name, device in straps.items():
        mine = [i for i, row in enumerate(rows) if row["device_id"] == name]
        if mine:
            out[mine] = sim_time_s(db, device, np.array([rows[i]["time_ns"] for i in mine], dtype=np.int64))
    return out


def _contact_row(
    name: str, kind: str, stored: list, truth: list, span: tuple, what: str, sides: tuple
) -> dict:
    code = KINDS[kind]
    errors, found, missed, extra, insufficient, total = [], 0, 0, 0, 0, 0
    for side in sides:
        mine = [c for c in stored if c["side"] == side and c["kind"] == code and span[0] <= c["t"] <= span[1]]
        true = [
            e.time_s for e in truth if e.side == side and e.kind == code and span[0] <= e.time_s <= span[1]
        ]
        if not true:
            continue
        match = match_events([c["t"] for c in mine], true, MATCH_S)
        errors.append(match.errors_s * 1e3)
        found, missed, extra = found + len(match.pairs), missed + len(match.missed), extra + len(match.extra)
        insufficient += sum(c["quality"] == "insufficient" for c in mine)
        total += len(true)
    error = np.concatenate(errors) if errors else np.empty(0)
    label = kind.replace("_", " ")
    metric = f"{label} |error| median ({what})"
    if not len(error):
        return make_row(
            name, metric, "ms", None, "lower", note=f"insufficient data: no {label} found of {total}"
        )
    note = (f"{found} of {total} true contacts found ({missed} missed, {extra} extra, {insufficient} reported "
            f"insufficient) within {MATCH_S * 1e3:.0f} ms; signed median {np.median(error):+.1f} ms, "
            f"|error| p90 {np.percentile(np.abs(error), 90):.1f} ms; the {PROCESSOR} processor's events")  # fmt: skip
    return make_row(name, metric, "ms", float(np.median(np.abs(error))), "lower", note=note)


def true_strides(truth: list, side: str) -> list[dict]:
    """The true strides of one foot: end time and stride, stance and step time (NaN where not defined)."""
    contacts = sorted(e.time_s for e in truth if e.side == side and e.kind == "ic")
    finals = np.array(sorted(e.time_s for e in truth if e.side == side and e.kind == "tc"))
    other = np.array(sorted(e.time_s for e in truth if e.side != side and e.kind == "ic"))
    out = []
    for start, end in zip(contacts[:-1], contacts[1:], strict=True):
        final = finals[(finals > start) & (finals < end)]
        step = other[(other > start) & (other < end)]
        out.append({"end": end, "stride_time": end - start,
                    "stance_time": final[0] - start if len(final) == 1 else np.nan,
                    "step_time": end - step[0] if len(step) == 1 else np.nan})  # fmt: skip
    return out


def _symmetry_rows(name: str, db, straps: dict, truth: list, span: tuple, what: str) -> list[dict]:
    """Per index: the median |reported - true| over the good values, the truth over the same strides (each
    foot's last ``symmetry_strides`` ending by the value's time)."""
    count = _symmetry_strides()
    strides = {side: true_strides(truth, side) for side in SIDES}
    rows = []
    for value in STRIDE_VALUES:
        times, values = _good_values(db, straps, f"gait.{value}_si", span)
        true = np.array([_true_index(strides, value, t, count) for t in times])
        error = np.abs(values - true)
        metric = f"{value.replace('_', ' ')} asymmetry |error| median ({what})"
        if not len(error) or not np.isfinite(error).any():
            rows.append(make_row(name, metric, "pp", None, "lower", note="insufficient data: no good value"))
            continue
        note = (f"{len(values)} good values after {WARMUP_S:.0f} s; reported median {np.median(values):+.2f} %, "
                f"true {np.nanmedian(true):+.2f} % (symmetry index 100 (left - right) / mean, each foot's "
                f"median over its last {count} strides); |error| max {np.nanmax(error):.2f} pp")  # fmt: skip
        rows.append(make_row(name, metric, "pp", float(np.nanmedian(error)), "lower", note=note))
    return rows


def _true_index(strides: dict, value: str, t: float, count: int) -> float:
    medians = []
    for side in SIDES:
        recent = [s[value] for s in strides[side] if s["end"] <= t + 1e-3][-count:]
        recent = [x for x in recent if np.isfinite(x)]
        if not recent:
            return np.nan
        medians.append(float(np.median(recent)))
    left, right = medians
    return 100.0 * (left - right) / (0.5 * (left + right))


def _good_values(db, straps: dict, metric: str, span: tuple) -> tuple[np.ndarray, np.ndarray]:
    rows = list(db.query(f"{_METRICS} AND m.name = ? AND m.quality = 'good'", [PROCESSOR, metric]))
    rows = [r for r in rows if r["device_id"] in straps]
    t = _sim_times(db, straps, rows)
    values = np.array([r["value"] for r in rows], dtype=np.float64)
    inside = (t >= span[0]) & (t <= span[1]) if len(t) else np.zeros(0, dtype=bool)
    return t[inside], values[inside]


def _honesty_row(name: str, db, straps: dict, truth: list, span: tuple, what: str, sides: tuple) -> dict:
    """The share of good stride values (stride, stance, step time) beyond twice their stated tolerance of the
    true stride ending nearest their time."""
    ratios = []
    for side in sides:
        strides = true_strides(truth, side)
        ends = np.array([s["end"] for s in strides])
        for value in STRIDE_VALUES:
            rows = list(db.query(f"{_METRICS} AND m.name = ? AND m.quality = 'good' AND m.tolerance IS NOT NULL",
                                 [PROCESSOR, f"gait.{side}.{value}"]))  # fmt: skip
            rows = [r for r in rows if r["device_id"] in straps]
            for row, t in zip(rows, _sim_times(db, straps, rows), strict=True):
                if not (span[0] <= t <= span[1]) or not len(ends):
                    continue
                nearest = int(np.argmin(np.abs(ends - t)))
                true = strides[nearest][value] if abs(ends[nearest] - t) <= MATCH_S else np.nan
                ratios.append(abs(row["value"] - true) / row["tolerance"] if np.isfinite(true) else np.inf)
    metric = f"honesty: good stride values beyond twice their tolerance ({what})"
    if not ratios:
        return make_row(name, metric, "share", None, "lower", note="insufficient data: no good stride value")
    ratios = np.array(ratios)
    note = (f"{len(ratios)} good stride, stance and step times after {WARMUP_S:.0f} s (a value with no true "
            f"stride ending within {MATCH_S * 1e3:.0f} ms counts as beyond); error over tolerance p50 "
            f"{np.median(ratios):.2f}, max {np.max(ratios):.2f}")  # fmt: skip
    return make_row(name, metric, "share", float(np.mean(ratios > 2.0)), "lower", note=note)


def _symmetry_strides() -> int:
    """The gait processor's default ``symmetry_strides``, as the accuracy runs use it."""
    from kinefuse.plugin_loader import load_plugins

    return int(load_plugins(entry_points=False).processors[PROCESSOR].schema["symmetry_strides"].default)
