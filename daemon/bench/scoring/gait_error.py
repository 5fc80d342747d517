"""Scoring the ``gait`` metrics on the synthetic athlete: the contacts the daemon stored against the
simulator's true initial contacts and toe-offs (kinefuse.sim.body.Body.gait_events), the symmetry indices
against the same indices of the true strides, and whether the contacts and stride values reported good are
within twice their stated tolerance of the truth. Four gait processors are scored: one on the foot or shank
straps (``PROCESSOR``), one on a lower-back strap alone (``LOWER_BACK_PROCESSOR``, where the scenario has one
on the pelvis), one on the 3D keypoints (``KEYPOINT_PROCESSOR``, where two cameras see the athlete), one on
the first camera's 2D keypoints alone (``CAMERA_PROCESSOR``).

Scored: from ``WARMUP_S`` on, to ``END_MARGIN_S`` before the end (the last swing has nothing after it to
confirm it). A stored contact pairs with a true one of its foot and kind within ``MATCH_S``
(kinefuse.bench.scoring.events.match_events); the rows give the median |error| of every stored contact,
good or not, and the note how many were found, missed, extra and insufficient. Times: a contact's stored
time (aligned host time) less its strap's (or, from keypoints, the first camera's) aligned-time offset, as
the other scorings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.scoring.events import match_events
from kinefuse.bench.scoring.segment_error import sim_time_s, sim_times_by_device

WARMUP_S = 10.0
END_MARGIN_S = 2.0
MATCH_S = 0.15
# the processor ids the accuracy runs give the gait processors (segment_error.processors)
PROCESSOR, LOWER_BACK_PROCESSOR, KEYPOINT_PROCESSOR = "gait", "gait_lower_back", "gait_keypoints"
CAMERA_PROCESSOR = "gait_camera"
SIDES = ("left", "right")
KINDS = {"initial_contact": "ic", "final_contact": "tc"}
STRIDE_VALUES = ("stride_time", "stance_time", "step_time")
# the live stream's (an analysis of the session writes its own beside them)
_METRICS = ("SELECT m.time_ns, m.value, m.tolerance, m.quality, d.device_id FROM metrics m LEFT JOIN devices d "
            "ON d.id = m.device_ref WHERE m.analysis_id IS NULL AND m.processor = ?")  # fmt: skip
_EVENTS = ("SELECT e.*, d.device_id FROM events e LEFT JOIN devices d ON d.id = e.device_ref "
           "WHERE e.analysis_id IS NULL AND e.processor = ? ORDER BY e.time_ns")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class _Origin:
    """One gait processor's rows: its id, what the rows say it rests on, the feet it has contacts of, which
    stored rows are its (by device) and their times as the simulation's (s)."""

    processor: str
    what: str
    sides: tuple[str, ...]
    mine: Callable[[dict], bool]
    sim_times: Callable[[list[dict]], np.ndarray]

    def query(self, db, sql: str, params: list) -> tuple[list[dict], np.ndarray]:
        rows = [r for r in db.query(sql, params) if self.mine(r)]
        return rows, self.sim_times(rows) if rows else np.empty(0)


def gait_rows(name: str, simulation, db) -> list[dict]:
    """Contact timing and honesty rows, from the straps for the feet that have one on a foot or shank and
    from the 3D keypoints where two cameras see the athlete; symmetry rows where both feet have contacts."""
    truth = simulation.body.gait_events(0.0, simulation.duration_s)
    if not truth:
        return []
    return [
        row
        for origin in _origins(simulation, db)
        for row in _origin_rows(name, simulation, db, origin, truth)
    ]


def _origins(simulation, db) -> list[_Origin]:
    straps = {d.name: d for d in simulation.imus if d.segment.endswith(("_foot", "_shank"))}
    out = []
    if straps:
        sides = tuple(side for side in SIDES if any(d.segment.startswith(side) for d in straps.values()))
        places = " and ".join(sorted({d.segment.split("_")[1] for d in straps.values()}))
        out.append(_Origin(PROCESSOR, f"gait, from {places} straps", sides, lambda r: r["device_id"] in straps,
                           lambda rows: sim_times_by_device(db, straps, rows)))  # fmt: skip
    lower_back = {d.name: d for d in simulation.imus if d.segment == "pelvis"}
    if lower_back:
        out.append(_Origin(LOWER_BACK_PROCESSOR, "gait, from a lower-back strap", SIDES,
                           lambda r: r["device_id"] in lower_back,
                           lambda rows: sim_times_by_device(db, lower_back, rows)))  # fmt: skip
    if len(simulation.cameras) >= 2:
        camera = simulation.cameras[0]
        out.append(_Origin(KEYPOINT_PROCESSOR, "gait, from 3D keypoints", SIDES, lambda r: r["device_id"] is None,
                           lambda rows: sim_time_s(db, camera, np.array([r["time_ns"] for r in rows]))))  # fmt: skip
    if simulation.cameras:
        first = simulation.cameras[0]
        out.append(_Origin(CAMERA_PROCESSOR, f"gait, from {first.name}'s 2D keypoints", SIDES,
                           lambda r: r["device_id"] == first.name,
                           lambda rows: sim_time_s(db, first, np.array([r["time_ns"] for r in rows]))))  # fmt: skip
    return out


def _origin_rows(name: str, simulation, db, origin: _Origin, truth: list) -> list[dict]:
    stored = _stored_contacts(db, origin)
    if not stored:  # not gait (a drop landing's contacts are not strides), or nobody there to see it
        return []
    span = (WARMUP_S, simulation.duration_s - END_MARGIN_S)
    rows = [_contact_row(name, kind, stored, truth, span, origin) for kind in KINDS]
    if origin.sides == SIDES:  # symmetry needs both feet
        rows += _symmetry_rows(name, db, origin, truth, span)
    if origin.processor == KEYPOINT_PROCESSOR:  # step length needs positions
        rows += _length_rows(name, simulation, db, origin, truth, span)
    return rows + [_contact_honesty_row(name, stored, truth, span, origin),
                   _honesty_row(name, db, origin, truth, span)]  # fmt: skip


def _stored_contacts(db, origin: _Origin) -> list[dict]:
    """The processor's contacts: side, kind, quality, stated tolerance (s) and the simulation's time (s)."""
    rows, times = origin.query(db, _EVENTS, [origin.processor])
    details = [json.loads(row["detail"]) for row in rows]
    return [{"side": detail["side"], "kind": KINDS[row["kind"]], "quality": row["quality"],
             "tolerance_s": detail["tolerance_s"], "t": float(t)}
            for row, detail, t in zip(rows, details, times, strict=True) if row["kind"] in KINDS]  # fmt: skip


def _contact_row(name: str, kind: str, stored: list, truth: list, span: tuple, origin: _Origin) -> dict:
    code = KINDS[kind]
    errors, found, missed, extra, insufficient, total = [], 0, 0, 0, 0, 0
    for side in origin.sides:
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
    metric = f"{label} |error| median ({origin.what})"
    if not len(error):
        return make_row(
            name, metric, "ms", None, "lower", note=f"insufficient data: no {label} found of {total}"
        )
    note = (f"{found} of {total} true contacts found ({missed} missed, {extra} extra, {insufficient} reported "
            f"insufficient) within {MATCH_S * 1e3:.0f} ms; signed median {np.median(error):+.1f} ms, "
            f"|error| p90 {np.percentile(np.abs(error), 90):.1f} ms; the {origin.processor} processor's "
            "events")  # fmt: skip
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


def _symmetry_rows(name: str, db, origin: _Origin, truth: list, span: tuple) -> list[dict]:
    """Per index: the median |reported - true| over the good values, the truth over the same strides (each
    foot's last ``symmetry_strides`` ending by the value's time)."""
    count = _symmetry_strides()
    strides = {side: true_strides(truth, side) for side in SIDES}
    rows = []
    for value in STRIDE_VALUES:
        times, values = _values(db, origin, f"gait.{value}_si", span)
        true = np.array([_true_index(strides, value, t, count) for t in times])
        error = np.abs(values - true)
        metric = f"{value.replace('_', ' ')} asymmetry |error| median ({origin.what})"
        if not len(error) or not np.isfinite(error).any():
            note = "insufficient data: no good value" + _degraded_note(
                db, origin, strides, value, span, count
            )
            rows.append(make_row(name, metric, "pp", None, "lower", note=note))
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


def _degraded_note(db, origin: _Origin, strides: dict, value: str, span: tuple, count: int) -> str:
    """What the degraded values of a symmetry index say against the truth, for a row with no good value."""
    times, values = _values(db, origin, f"gait.{value}_si", span, "degraded")
    true = np.array([_true_index(strides, value, t, count) for t in times])
    if not len(values) or not np.isfinite(true).any():
        return ""
    return (
        f"; the {len(values)} degraded ones: reported median {np.median(values):+.2f} %, true "
        f"{np.nanmedian(true):+.2f} %, |error| median {np.nanmedian(np.abs(values - true)):.2f} pp"
    )


def _values(
    db, origin: _Origin, metric: str, span: tuple, quality: str = "good"
) -> tuple[np.ndarray, np.ndarray]:
    rows, t = origin.query(
        db, f"{_METRICS} AND m.name = ? AND m.quality = ?", [origin.processor, metric, quality]
    )
    values = np.array([r["value"] for r in rows], dtype=np.float64)
    inside = (t >= span[0]) & (t <= span[1]) if len(t) else np.zeros(0, dtype=bool)
    return t[inside], values[inside]


def _length_rows(name: str, simulation, db, origin: _Origin, truth: list, span: tuple) -> list[dict]:
    """Step length against the true heels' distance along the heading at the true initial contact nearest
    each value, and walking speed against the motion's: every value (any quality), their quality shares."""
    steps, speeds = [], []  # (error, quality)
    heading = simulation.body.heading_rad
    forward = np.array([np.cos(heading), np.sin(heading), 0.0])
    for side in origin.sides:
        other = SIDES[1 - SIDES.index(side)]
        landings = np.array([e.time_s for e in truth if e.side == side and e.kind == "ic"])
        sql = f"{_METRICS} AND m.name = ? AND m.value IS NOT NULL"
        rows, times = origin.query(db, sql, [origin.processor, f"gait.{side}.step_length"])
        for row, t in zip(rows, times, strict=True):
            if span[0] <= t <= span[1] and len(landings):
                at = landings[np.argmin(np.abs(landings - t))]
                heels = simulation.body.landmarks(np.array([at]))
                true = float((heels[f"{side}_heel"][0] - heels[f"{other}_heel"][0]) @ forward)
                steps.append((row["value"] - true, row["quality"]))
    sql = f"{_METRICS} AND m.name = 'gait.speed' AND m.value IS NOT NULL".replace(
        "m.tolerance,", "m.tolerance, m.quality,"
    )
    rows, times = origin.query(db, sql, [origin.processor])
    speed = simulation.body.motion.info.get("speed_mps")
    speeds = [(row["value"] - speed, row["quality"]) for row, t in zip(rows, times, strict=True)
              if speed is not None and span[0] <= t <= span[1]]  # fmt: skip
    out = []
    cases = (
        ("step length", "m", steps, "the true heels' distance along the heading at the landing"),
        ("walking speed", "m/s", speeds, f"the motion's {speed:.3g} m/s"),
    )
    for label, unit, found, truth_note in cases:
        metric = f"{label} |error| median ({origin.what})"
        if not found:
            out.append(make_row(name, metric, unit, None, "lower", note="insufficient data: no value"))
            continue
        errors = np.array([e for e, _ in found])
        levels = [q for _, q in found]
        shares = ", ".join(f"{levels.count(level)} {level}" for level in ("good", "degraded"))
        note = (f"{len(found)} values after {WARMUP_S:.0f} s ({shares}); signed median {np.median(errors):+.3f} "
                f"{unit}, against {truth_note}")  # fmt: skip
        out.append(make_row(name, metric, unit, float(np.median(np.abs(errors))), "lower", note=note))
    return out


def _contact_honesty_row(name: str, stored: list, truth: list, span: tuple, origin: _Origin) -> dict:
    """The share of good contacts beyond twice their stated tolerance of the true contact of their foot and
    kind nearest them (none within ``MATCH_S``: beyond)."""
    ratios = []
    for contact in stored:
        if contact["quality"] != "good" or not (span[0] <= contact["t"] <= span[1]):
            continue
        true = np.array([e.time_s for e in truth if e.side == contact["side"] and e.kind == contact["kind"]])
        error = np.min(np.abs(true - contact["t"])) if len(true) else np.inf
        ratios.append(error / contact["tolerance_s"] if error <= MATCH_S else np.inf)
    return _beyond_row(name, f"good contacts beyond twice their tolerance ({origin.what})", ratios,
                       "good contact", f"good initial and final contacts after {WARMUP_S:.0f} s (none within "
                       f"{MATCH_S * 1e3:.0f} ms of a true one counts as beyond)")  # fmt: skip


def _honesty_row(name: str, db, origin: _Origin, truth: list, span: tuple) -> dict:
    """The share of good stride values (stride, stance, step time) beyond twice their stated tolerance of the
    true stride ending nearest their time."""
    ratios = []
    for side in origin.sides:
        strides = true_strides(truth, side)
        ends = np.array([s["end"] for s in strides])
        for value in STRIDE_VALUES:
            sql = f"{_METRICS} AND m.name = ? AND m.quality = 'good' AND m.tolerance IS NOT NULL"
            rows, times = origin.query(db, sql, [origin.processor, f"gait.{side}.{value}"])
            for row, t in zip(rows, times, strict=True):
                if not (span[0] <= t <= span[1]) or not len(ends):
                    continue
                nearest = int(np.argmin(np.abs(ends - t)))
                true = strides[nearest][value] if abs(ends[nearest] - t) <= MATCH_S else np.nan
                ratios.append(abs(row["value"] - true) / row["tolerance"] if np.isfinite(true) else np.inf)
    return _beyond_row(name, f"good stride values beyond twice their tolerance ({origin.what})", ratios,
                       "good stride value", f"good stride, stance and step times after {WARMUP_S:.0f} s (a value "
                       f"with no true stride ending within {MATCH_S * 1e3:.0f} ms counts as beyond)")  # fmt: skip


def _beyond_row(name: str, what: str, ratios: list, unit: str, counted: str) -> dict:
    """An honesty row: the share of ``ratios`` (|error| / stated tolerance) over 2."""
    if not ratios:
        return make_row(
            name, f"honesty: {what}", "share", None, "lower", note=f"insufficient data: no {unit}"
        )
    ratios = np.array(ratios)
    note = (f"{len(ratios)} {counted}; error over tolerance p50 {np.median(ratios):.2f}, max "
            f"{np.max(ratios):.2f}")  # fmt: skip
    return make_row(name, f"honesty: {what}", "share", float(np.mean(ratios > 2.0)), "lower", note=note)


def _symmetry_strides() -> int:
    """The gait processor's default ``symmetry_strides``, as the accuracy runs use it."""
    from kinefuse.plugin_loader import load_plugins

    return int(load_plugins(entry_points=False).processors[PROCESSOR].schema["symmetry_strides"].default)
