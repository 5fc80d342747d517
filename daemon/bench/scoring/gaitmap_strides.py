"""Stride length on the gaitmap recordings against motion capture: the ``gait`` processor's
``gait.<side>.stride_length`` from a foot strap beside gaitmap's own (its StrideLevelTrajectory on Rampp's
strides, then SpatialParameterCalculation, as its documentation's pipeline runs them) in the same run.

Truth: the heel marker's (FCC) horizontal displacement from one reference initial contact to the next of the
same foot (heel to heel: the foot is on the ground at both). A value is paired with the reference stride
whose contacts lie within ``MATCH_S`` of its own: for the processor, the initial contact its metric is
stamped with (the stride's end) and the one before; for gaitmap, its stride's ``pre_ic`` and ``ic``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.datasets import gaitmap
from kinefuse.bench.scoring.gaitmap_peer import NOT_INSTALLED, gaitmap_strides
from kinefuse.types import DerivedValue

MATCH_S = 0.15
MAX_STRIDE_S = 2.5  # consecutive reference contacts further apart than this are not one stride
HEEL = {"left": "L_FCC", "right": "R_FCC"}


def stride_length_rows(recording: gaitmap.GaitmapRecording, items: dict, reference: dict) -> list[dict]:
    """The stride length row and its honesty row; ``items``: the gait processor's per foot."""
    mocap = Path(recording.imu).parent / f"mocap_{recording.name}.csv"
    name, metric = f"gaitmap {recording.name}", "stride length |error| median (gait processor, foot straps)"
    if not mocap.is_file():
        return [make_row(name, metric, "cm", None, "lower", note=f"insufficient data: no {mocap.name}")]
    markers = gaitmap.load_markers(mocap)
    truth = {side: _heel_to_heel(markers[HEEL[side]], reference[side]["ic"])
             for side in reference if HEEL.get(side) in markers}  # fmt: skip
    errors, ratios, levels = _ours(items, truth)
    peer, why_not = _peer(recording.imu, truth)
    describe = _describe(errors, levels)
    note = (f"kinefuse: {describe}; gaitmap StrideLevelTrajectory: {_describe(peer) if peer is not None else why_not}; "
            "truth: the heel marker from one reference initial contact to the next, both feet")  # fmt: skip
    value = float(np.median(np.abs(errors))) if len(errors) else None
    peer_value = float(np.median(np.abs(peer))) if peer is not None and len(peer) else None
    honesty = "honesty: good stride lengths beyond twice their tolerance (gait processor, foot straps)"
    return [make_row(name, metric, "cm", value, "lower", peer=_peer_name() if peer_value is not None else None,
                     peer_value=peer_value, note=note),
            make_row(name, honesty, "share", float(np.mean(ratios > 2.0)) if len(ratios) else None, "lower",
                     note=f"{len(ratios)} good values with a tolerance" if len(ratios)
                     else "insufficient data: no value reported good with a tolerance")]  # fmt: skip


def _heel_to_heel(heel: np.ndarray, ics: np.ndarray) -> list[tuple[float, float, float]]:
    """Per reference stride of one foot: its start and end (s) and the heel's horizontal travel (cm)."""
    ics = np.sort(ics[np.isfinite(ics)]) / gaitmap.RATE_HZ
    out = []
    for start, end in zip(ics[:-1], ics[1:], strict=True):
        a, b = (int(round(t * gaitmap.MOCAP_RATE_HZ)) for t in (start, end))
        if end - start <= MAX_STRIDE_S and b < len(heel) and np.isfinite(heel[[a, b]]).all():
            out.append((start, end, 100.0 * float(np.linalg.norm((heel[b] - heel[a])[:2]))))
    return out


def _true_length(truth: list, start_s: float | None, end_s: float) -> float:
    """The true stride ending within MATCH_S of ``end_s`` (and starting so of ``start_s``, given); NaN if none."""
    for start, end, length in truth:
        if abs(end - end_s) <= MATCH_S and (start_s is None or abs(start - start_s) <= MATCH_S):
            return length
    return np.nan


def _ours(items: dict, truth: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The processor's values' errors (cm; those paired with a true stride), good ones' |error| / tolerance,
    and every value's quality level."""
    errors, ratios, levels = [], [], []
    for side, found in items.items():
        for value in found:
            if not (isinstance(value, DerivedValue) and value.name == f"gait.{side}.stride_length"):
                continue
            levels.append(value.quality.level.value)
            if value.value is None or side not in truth:
                continue
            error = 100.0 * value.value - _true_length(truth[side], None, value.time_ns / 1e9)
            if np.isfinite(error):
                errors.append(error)
                if value.quality.level.value == "good" and value.tolerance:
                    ratios.append(abs(error) / (100.0 * value.tolerance))
    return np.array(errors), np.array(ratios), np.array(levels)


def _peer(imu: Path, truth: dict) -> tuple[np.ndarray | None, str]:
    """gaitmap's stride lengths' errors (cm), or None and why."""
    try:
        from gaitmap.event_detection import RamppEventDetection
        from gaitmap.parameters import SpatialParameterCalculation
        from gaitmap.trajectory_reconstruction import StrideLevelTrajectory

        aligned, body, strides = gaitmap_strides(imu)
    except ImportError as exc:
        return None, NOT_INSTALLED.format(exc.name)
    rate = gaitmap.RATE_HZ
    events = (
        RamppEventDetection()
        .detect(data=body, stride_list=strides, sampling_rate_hz=rate)
        .min_vel_event_list_
    )
    trajectory = StrideLevelTrajectory().estimate(
        data=aligned, stride_event_list=events, sampling_rate_hz=rate
    )
    spatial = SpatialParameterCalculation().calculate(
        stride_event_list=events, positions=trajectory.position_, orientations=trajectory.orientation_,
        sampling_rate_hz=rate,
    ).parameters_  # fmt: skip
    errors = []
    for sensor, strides_of in events.items():
        side = sensor.removesuffix("_sensor")
        for stride_id, stride in strides_of.iterrows():
            true = _true_length(truth.get(side, []), stride["pre_ic"] / rate, stride["ic"] / rate)
            errors.append(100.0 * spatial[sensor].loc[stride_id, "stride_length"] - true)
    errors = np.array(errors)
    return errors[np.isfinite(errors)], ""


def _describe(errors: np.ndarray, levels: np.ndarray | None = None) -> str:
    if not len(errors):
        return "no value paired with a true stride"
    p90 = np.percentile(np.abs(errors), 90)
    shares = ""
    if levels is not None and len(levels):
        shares = (
            ", ".join(f"{np.mean(levels == lv):.0%} {lv}" for lv in ("good", "degraded", "insufficient"))
            + "; "
        )
    return (f"{len(errors)} strides paired ({shares}signed median {np.median(errors):+.1f} cm, |error| p90 "
            f"{p90:.1f} cm, max {np.max(np.abs(errors)):.1f} cm)")  # fmt: skip


def _peer_name() -> str:
    from importlib.metadata import version

    return f"gaitmap {version('gaitmap')} StrideLevelTrajectory (Rampp strides)"
