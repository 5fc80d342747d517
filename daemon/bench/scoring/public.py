"""Scoring on public data sets (and users' recordings in the same formats) found under a folder.

Rows come only from measurements: orientation on BROAD trials, with kinefuse's orientation filter beside
pure gyroscope integration as the reference peer, each scored two ways (fitted frames and BROAD's own
protocol: ``kinefuse.bench.scoring.orientation_error``); and contacts on gaitmap foot-IMU recordings beside
the gaitmap package's detectors (``kinefuse.bench.scoring.gaitmap_events``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.datasets import broad
from kinefuse.bench.scoring.gaitmap_events import gaitmap_rows
from kinefuse.bench.scoring.orientation_error import ORIENTATION_METRICS, PROTOCOL_NOTES, score_metrics
from kinefuse.fusion.strapdown import integrate_gyro

STRAPDOWN = "gyroscope strapdown (no fusion, reference)"


def public_rows(folder: Path) -> list[dict]:
    """Rows for every BROAD trial in ``folder`` or below it and every gaitmap recording in its ``gaitmap``
    folder; none when there is none."""
    return [row for path in broad_trials(folder) for row in broad_rows(path)] + gaitmap_rows(folder)


def broad_trials(folder: Path) -> list[Path]:
    folders = [folder, *sorted(p for p in Path(folder).rglob("*") if p.is_dir())]
    return [trial for f in folders for trial in broad.find_trials(f)]


def broad_rows(path: Path) -> list[dict]:
    """kinefuse's orientation error on one BROAD trial beside the gyroscope strapdown baseline."""
    from kinefuse.fusion.orientation_filter import OrientationFilter

    trial = broad.load_trial(path)
    baseline = integrate_gyro(trial.gyr, trial.rate_hz, _first_valid(trial.opt_quat))
    gyr, acc, mag = (np.ascontiguousarray(x, dtype=np.float64) for x in (trial.gyr, trial.acc, trial.mag))
    ours = {"9d": OrientationFilter(trial.rate_hz).update_batch(gyr, acc, mag)["quat9d"],
            "6d": OrientationFilter(trial.rate_hz).update_batch(gyr, acc)["quat6d"]}  # fmt: skip
    mine = score_metrics(ours, trial.opt_quat, trial.movement)
    peer = score_metrics({"9d": baseline, "6d": baseline}, trial.opt_quat, trial.movement)
    samples = int(np.sum(trial.movement & np.isfinite(trial.opt_quat).all(axis=1)))
    rows = []
    for protocol, _, metric, _ in ORIENTATION_METRICS:
        note = (f"orientation filter (VQF algorithm), {samples} movement samples; {PROTOCOL_NOTES[protocol]}; "
                "vqf and imufusion: bench ahrs")  # fmt: skip
        rows.append(make_row(f"BROAD {trial.name}", metric, "deg", mine[metric], "lower", peer=STRAPDOWN,
                             peer_value=peer[metric], note=note))  # fmt: skip
    return rows


def _first_valid(quats: np.ndarray) -> np.ndarray:
    """The strapdown starts from the truth's first valid orientation, as a filter would after alignment."""
    return quats[np.flatnonzero(np.isfinite(quats).all(axis=1))[0]]
