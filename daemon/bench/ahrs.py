"""Built-in bench ``kinefuse bench ahrs [--data DIR]``: orientation accuracy on every BROAD trial (in
../shared/data/broad, or DIR) scored as the accuracy harness does (fitted frames and BROAD's own protocol),
with kinefuse's orientation filter next to vqf and imufusion measured in the same run; the offline
orientation smoother (kinefuse.fusion.orientation_smoother: offline VQF with its own rule for magnetic
disturbances) next to vqf's offlineVQF and next to the live filter, same run, same scoring (cases "...
offline"); then speed, samples per second, per sample and in batch, live and offline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from kinefuse import hookimpl
from kinefuse.bench import make_row
from kinefuse.bench.datasets import broad
from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.bench.scoring.orientation_error import ORIENTATION_METRICS, PROTOCOL_NOTES, score_metrics
from kinefuse.fusion.orientation_filter import OrientationFilter
from kinefuse.interfaces import BenchSpec

VQF = "vqf (PyPI), VQF defaults"
VQF_OFFLINE = "vqf (PyPI) offlineVQF, VQF defaults"
LIVE = "kinefuse live filter (OrientationFilter)"
OFFLINE = "offline"  # the case suffix of the offline smoother's rows
IMUFUSION = "imufusion (PyPI), gain 0.5, rejection 10 deg / 5 s"
SPEED_SAMPLES = 20_000  # per-sample timing: Python-level calls, one per sample


def _arrays(trial):
    return tuple(np.ascontiguousarray(x, dtype=np.float64) for x in (trial.gyr, trial.acc, trial.mag))


def _ours(trial) -> dict:
    g, a, m = _arrays(trial)
    nine = OrientationFilter(trial.rate_hz).update_batch(g, a, m)["quat9d"]
    return {"9d": nine, "6d": OrientationFilter(trial.rate_hz).update_batch(g, a)["quat6d"]}


def _vqf(trial) -> dict:
    from vqf import VQF as Vqf

    g, a, m = _arrays(trial)
    return {"9d": Vqf(1.0 / trial.rate_hz).updateBatch(g, a, m)["quat9D"],
            "6d": Vqf(1.0 / trial.rate_hz).updateBatch(g, a)["quat6D"]}  # fmt: skip


def _offline(trial) -> dict:
    # here, not at the top: scipy.signal's import cost every kinefuse command 0.3 s (the benches load with it)
    from kinefuse.fusion.orientation_smoother import smooth_orientation

    g, a, m = _arrays(trial)
    return {"9d": smooth_orientation(g, a, m, rate_hz=trial.rate_hz)["quat9d"],
            "6d": smooth_orientation(g, a, rate_hz=trial.rate_hz)["quat6d"]}  # fmt: skip


def _vqf_offline(trial) -> dict:
    from vqf import offlineVQF

    g, a, m = _arrays(trial)
    return {"9d": offlineVQF(g, a, m, 1.0 / trial.rate_hz)["quat9D"],
            "6d": offlineVQF(g, a, None, 1.0 / trial.rate_hz)["quat6D"]}  # fmt: skip


def _imufusion_filter(rate_hz: float):
    import imufusion

    settings = imufusion.AhrsSettings()
    settings.convention = imufusion.CONVENTION_ENU
    settings.gain, settings.gyroscope_range = 0.5, 2000
    settings.acceleration_rejection, settings.magnetic_rejection, settings.rejection_timeout = 10, 10, 5
    settings.sample_rate = int(round(rate_hz))
    ahrs = imufusion.Ahrs()
    ahrs.set_settings(settings)
    return ahrs


def _imufusion(trial) -> dict:
    g, a, m = _arrays(trial)
    degrees, in_g = np.degrees(g), a / 9.81
    out = {}
    for mode in ("9d", "6d"):
        ahrs, q = _imufusion_filter(trial.rate_hz), np.empty((len(g), 4))
        for i in range(len(g)):
            if mode == "9d":
                ahrs.update(degrees[i], in_g[i], m[i])
            else:
                ahrs.update_no_magnetometer(degrees[i], in_g[i])
            q[i] = ahrs.get_quaternion()
        out[mode] = q
    return out


def accuracy_rows(trial) -> list[dict]:
    mine = score_metrics(_ours(trial), trial.opt_quat, trial.movement)
    peers = {peer: score_metrics(estimates, trial.opt_quat, trial.movement)
             for peer, estimates in ((VQF, _vqf(trial)), (IMUFUSION, _imufusion(trial)))}  # fmt: skip
    offline = score_metrics(_offline(trial), trial.opt_quat, trial.movement)
    offline_peers = {
        VQF_OFFLINE: score_metrics(_vqf_offline(trial), trial.opt_quat, trial.movement),
        LIVE: mine,
    }
    return _rows(f"BROAD {trial.name}", mine, peers) + _rows(
        f"BROAD {trial.name} {OFFLINE}", offline, offline_peers
    )


def _rows(case: str, mine: dict, peers: dict) -> list[dict]:
    rows = []
    for protocol, _, metric, _ in ORIENTATION_METRICS:
        note = f"movement samples; {PROTOCOL_NOTES[protocol]}"
        rows += [make_row(case, metric, "deg", mine[metric], "lower", peer=peer, peer_value=theirs[metric],
                          note=note) for peer, theirs in peers.items()]  # fmt: skip
    return rows


def _best_rate(samples: int, run) -> float:
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return samples / best


def speed_rows(trial) -> list[dict]:
    from vqf import VQF as Vqf

    g, a, m = _arrays(trial)
    rate = trial.rate_hz
    batch = _best_rate(len(g), lambda: OrientationFilter(rate).update_batch(g, a, m))
    batch_peer = _best_rate(len(g), lambda: Vqf(1.0 / rate).updateBatch(g, a, m))
    n = min(SPEED_SAMPLES, len(g))
    rows_g, rows_a, rows_m = g[:n].tolist(), a[:n].tolist(), m[:n].tolist()
    arrays_g, arrays_a, arrays_m = list(g[:n]), list(a[:n]), list(m[:n])

    def ours():
        update = OrientationFilter(rate).update
        for x, y, z in zip(rows_g, rows_a, rows_m, strict=True):
            update(x[0], x[1], x[2], y[0], y[1], y[2], z[0], z[1], z[2])

    def vqf_per_sample():
        update = Vqf(1.0 / rate).update
        for x, y, z in zip(arrays_g, arrays_a, arrays_m, strict=True):
            update(x, y, z)

    degrees, in_g = list(np.degrees(g[:n])), list(a[:n] / 9.81)

    def imufusion_per_sample():
        update = _imufusion_filter(rate).update
        for x, y, z in zip(degrees, in_g, arrays_m, strict=True):
            update(x, y, z)

    from vqf import offlineVQF

    from kinefuse.fusion.orientation_smoother import smooth_orientation

    offline = _best_rate(len(g), lambda: smooth_orientation(g, a, m, rate_hz=rate))
    offline_peer = _best_rate(len(g), lambda: offlineVQF(g, a, m, 1.0 / rate))
    single = _best_rate(n, ours)
    note = f"BROAD {trial.name}, 9D, {len(g)} samples (per sample: {n}, one Python call each)"
    return [
        make_row("batch", "samples/s", "samples/s", batch, "higher", peer=VQF + " updateBatch",
                 peer_value=batch_peer, note=note),
        make_row("per sample", "samples/s", "samples/s", single, "higher", peer=VQF + " update",
                 peer_value=_best_rate(n, vqf_per_sample), note=note),
        make_row("per sample", "samples/s", "samples/s", single, "higher", peer=IMUFUSION + " update",
                 peer_value=_best_rate(n, imufusion_per_sample), note=note),
        make_row(OFFLINE, "samples/s", "samples/s", offline, "higher", peer=VQF_OFFLINE, peer_value=offline_peer,
                 note=note + "; the whole recording, two causal passes in per-sample Python calls"),
    ]  # fmt: skip


def run(options: dict) -> list[dict]:
    folder = Path(options["shared_dir"]) if options.get("shared_dir") else shared_dir() / "data" / "broad"
    trials = broad.find_trials(folder)
    if not trials:
        raise ValueError(f"no BROAD trials (.hdf5 or .mat) in {folder}")
    loaded = [broad.load_trial(path) for path in trials]
    rows = [row for trial in loaded for row in accuracy_rows(trial)]
    return rows + speed_rows(max(loaded, key=lambda trial: len(trial.gyr)))


@hookimpl
def register_benches():
    return [BenchSpec("ahrs", __doc__.strip(), run)]
