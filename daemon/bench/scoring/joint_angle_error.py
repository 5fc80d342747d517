"""Scoring the ``joint_angles`` metrics on the synthetic athlete: each joint whose two segments carry straps,
its three ISB angles (kinefuse.joint_angles) as the daemon stored them against the simulator's true joint
angles (kinefuse.sim.body.Body.joint_angles, built on the same definitions), at the metrics' times.

Scored: every value from ``WARMUP_S`` on; the note gives the share of each quality level and the error of the
values reported good alone. Times: a metric's time is its motion item's (aligned host time); the
true angles are taken at that time less the parent strap's aligned-time offset (its link's latency floor,
the median of aligned time minus true sample time), as the segment scoring does.
"""

from __future__ import annotations

import numpy as np

from kinefuse.bench import make_row
from kinefuse.joint_angles import ANGLES, joints_between

WARMUP_S = 10.0
PROCESSOR = "joint_angles"  # the processor id the accuracy runs give it


def joint_angle_rows(name: str, simulation, db) -> list[dict]:
    straps = {d.segment: d for d in simulation.imus}
    rows = []
    for joint, (parent, _) in joints_between(straps).items():
        times, values, levels = _stored(db, joint)
        if not len(times):
            continue
        sim_t = _sim_time(simulation, db, straps[parent], times)
        truth = simulation.body.joint_angles(sim_t)[joint]
        after = sim_t >= WARMUP_S
        valued = after & np.isfinite(values).all(axis=1)
        good = valued & (levels == "good")
        share = ", ".join(
            f"{np.mean(levels[after] == level):.0%} {level}" for level in ("good", "degraded", "insufficient")
        )
        for i, angle in enumerate(ANGLES):
            error = values[:, i] - truth[:, i]
            note = (f"{int(valued.sum())} values after {WARMUP_S:.0f} s ({share}); over the good ones only: "
                    f"{_fmt(_rms(error[good]))} deg; ISB joint coordinate system, the joint_angles metric")  # fmt: skip
            rows.append(make_row(name, f"{joint.replace('_', ' ')} {angle} RMSE (from straps)", "deg",
                                 _rms(error[valued]), "lower", note=note))  # fmt: skip
    return rows


def _stored(db, joint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The joint's stored angles: item times (ns), values (n, 3) in degrees (NaN where none), and their
    quality level (the flexion's; the three share theirs)."""
    columns = {angle: list(db.query("SELECT time_ns, value, quality FROM metrics WHERE processor = ? AND name = ? "
                                    "ORDER BY time_ns", [PROCESSOR, f"{joint}.{angle}"]))
               for angle in ANGLES}  # fmt: skip
    times = np.array([r["time_ns"] for r in columns[ANGLES[0]]], dtype=np.int64)
    values = np.array([[np.nan if r["value"] is None else r["value"] for r in columns[a]] for a in ANGLES]).T
    levels = np.array([r["quality"] for r in columns[ANGLES[0]]])
    return times, values.reshape(len(times), 3), levels


def _sim_time(simulation, db, strap, time_ns: np.ndarray) -> np.ndarray:
    from kinefuse.storage import reader

    zero_ns = reader.device_meta(db, strap.name)["sim_time_zero_ns"]
    samples = reader.imu_samples(db, device_id=strap.name)
    offset = np.median((np.asarray(samples["time_ns"]) - zero_ns) / 1e9 - samples["seq"] / strap.rate_hz)
    return (time_ns - zero_ns) / 1e9 - offset


def _rms(error: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(error**2))) if len(error) else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
