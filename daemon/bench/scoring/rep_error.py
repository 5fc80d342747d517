"""Scoring the ``reps`` metrics on the synthetic athlete's exercises (squat, lunge, sit-to-stand): the
repetitions the daemon counted against the simulator's, and each counted one's range of motion and peak
against its true repetition's, and its left/right difference (its peak less the left knee's flexion peak)
against the true one.

A true repetition is one period of the exercise (kinefuse.sim.body.Body.motion: each starts and ends at
rest), on the motion's own clock (``Body.motion_time``). Counted: those with at least ``INSIDE`` of their
period between the first and last value of the angle the reps processor reads (before, it has nothing to
count). A counted repetition is matched to the true one its peak falls in; its true range of motion and
peak are the true angle's (kinefuse.sim.body.Body.joint_angles, the joint angles' definitions)
over that period, sampled at ``TRUTH_HZ``.
"""

from __future__ import annotations

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.scoring.segment_error import sim_time_s

EXERCISES = ("squat", "lunge", "sit_to_stand")
# the ids the accuracy runs give the two reps processors (segment_error.processors), by the way the angle
# moves in a repetition: up from standing, down from sitting; and what they read:
PROCESSORS = {"squat": "reps", "lunge": "reps", "sit_to_stand": "reps_down"}
ANGLE_PROCESSOR, JOINT, ANGLE_INDEX = "joint_angles", "right_knee", 0  # right_knee.flexion
COMPARED = "left_knee"  # the reps processor's compare: left_knee.flexion
TRUTH_HZ = 200.0
INSIDE = 0.9  # a true repetition counts where this much of its period has angle values


def rep_rows(name: str, simulation, db) -> list[dict]:
    """Count, range-of-motion and peak rows of an exercise scenario with the reps metrics."""
    kind = simulation.scenario.sections["motion"]["kind"]
    if kind not in EXERCISES or not simulation.imus:
        return []
    processor, sign = PROCESSORS[kind], (-1.0 if kind == "sit_to_stand" else 1.0)
    clock = simulation.imus[
        0
    ]  # metric times are motion item times: any strap's aligned-time offset maps them
    angle = _stored(db, clock, ANGLE_PROCESSOR, f"{JOINT}.flexion")
    if not len(angle):
        return []
    rows = {metric: _stored(db, clock, processor, metric) for metric in _METRICS}
    period = simulation.body.motion.period_s
    first, last = angle[0]["t"], angle[-1]["t"]
    true_reps = _rep_indices(simulation, first, last, period)
    what = f"reps on {JOINT.replace('_', ' ')} flexion"
    counted = int(max((r["value"] for r in rows["reps.count"]), default=0))
    note = (f"{counted} counted, {len(true_reps)} true repetitions (one exercise period each, {period:g} s) "
            f"inside the {last - first:.1f} s the angle has values; the {processor} metric")  # fmt: skip
    count_row = make_row(name, f"repetition count |error| ({what})", "reps", float(abs(counted - len(true_reps))),
                         "lower", note=note)  # fmt: skip
    return [count_row, *_per_rep_rows(name, simulation, rows, period, what, sign)]


_METRICS = ("reps.count", "reps.rom", "reps.peak", "reps.from_peak", "reps.difference")
_SCORED = ("reps.rom", "reps.peak", "reps.difference")


def _stored(db, clock, processor: str, metric: str) -> list[dict]:
    """The live stream's values of one metric: value, quality and the simulation's time (s)."""
    query = ("SELECT time_ns, value, quality FROM metrics WHERE analysis_id IS NULL AND processor = ? "
             "AND name = ? ORDER BY time_ns")  # fmt: skip
    rows = list(db.query(query, [processor, metric]))
    times = sim_time_s(db, clock, np.array([r["time_ns"] for r in rows], dtype=np.int64)) if rows else []
    return [{**row, "t": float(t)} for row, t in zip(rows, times, strict=True)]


def _rep_indices(simulation, first: float, last: float, period: float) -> list[int]:
    """The repetitions (periods of the motion's clock) at least ``INSIDE`` inside [first, last]."""
    tau = simulation.body.motion_time(np.array([first, last]))[0]
    slack = (1.0 - INSIDE) * period
    return list(range(int(np.ceil((tau[0] - slack) / period)), int(np.floor((tau[1] + slack) / period))))


def _truth(simulation, period: float, sign: float) -> dict[int, dict]:
    """Each repetition's true peak (the farthest in the direction ``sign``: +1 up, -1 down), range of motion
    and left/right difference (deg), by index."""
    t = np.arange(0.0, simulation.duration_s, 1.0 / TRUTH_HZ)
    index = np.floor(simulation.body.motion_time(t)[0] / period).astype(int)
    angles = simulation.body.joint_angles(t)
    angle, other = sign * angles[JOINT][:, ANGLE_INDEX], sign * angles[COMPARED][:, ANGLE_INDEX]
    out = {}
    for k in np.unique(index):
        inside = index == k
        out[int(k)] = {"reps.peak": sign * float(angle[inside].max()),
                       "reps.rom": float(angle[inside].max() - angle[inside].min()),
                       "reps.difference": sign * float(angle[inside].max() - other[inside].max())}  # fmt: skip
    return out


def _per_rep_rows(name: str, simulation, rows: dict, period: float, what: str, sign: float) -> list[dict]:
    truth, out = _truth(simulation, period, sign), []
    # each repetition's peak time: its end less its time from the peak
    peak_times = [end["t"] - end["value"] for end in rows["reps.from_peak"]]
    # no row on tempo: a squat's bottom is a plateau (a pause at depth), where the peak's time is any of it
    for metric in _SCORED:
        unit, errors = "deg", []
        levels = [r["quality"] for r in rows[metric]]
        for row, peak_t in zip(rows[metric], peak_times, strict=True):
            if row["value"] is None:
                continue
            k = int(np.floor(simulation.body.motion_time(np.array([peak_t]))[0][0] / period))
            errors.append(row["value"] - truth[k][metric])
        label = f"repetition {_LABELS[metric]} |error| median ({what})"
        if not errors:
            out.append(make_row(name, label, unit, None, "lower", note="insufficient data: no repetition"))
            continue
        errors = np.array(errors)
        shares = ", ".join(f"{levels.count(level)} {level}" for level in ("good", "degraded"))
        note = (f"{len(errors)} repetitions ({shares}); signed median {np.median(errors):+.2f} {unit}, |error| "
                f"max {np.max(np.abs(errors)):.2f} {unit}, against the true angle over its period")  # fmt: skip
        out.append(make_row(name, label, unit, float(np.median(np.abs(errors))), "lower", note=note))
    return out


_LABELS = {"reps.rom": "range of motion", "reps.peak": "peak", "reps.difference": "left/right difference"}
