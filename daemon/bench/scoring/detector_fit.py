"""Fitting the detector model's errors to what the shipped pose model does on the Pose2Sim demo videos.

``python -m kinefuse.bench.scoring.detector_fit [DATA_DIR]`` runs the camera source's top-down path over
the four demo videos (kinefuse.bench.scoring.detector_realism.real_tracks), fits, and prints the fitted
``[cameras.detector]`` values with the statistics behind them. Nothing is cached; about a minute on two
cores. The figures depend on the CPU's int8 kernels and on the camera path (docs/simulation.md).

What is fitted, and how:

- confidence: a Beta law with the mean of every keypoint's confidence in every frame and view and the
  same fraction at or below 0.3 (what the fusion counts as unseen), solved with scipy.stats.beta.cdf and
  scipy.optimize.brentq. The maximum-likelihood Beta (scipy.stats.beta.fit) is printed beside it: it
  fits the bulk and puts half as many keypoints at or below 0.3 as MoveNet does;
- jitter: the Student-t's scale s and degrees of freedom ν at confidence 1, the power γ of the scale's
  growth and the power κ of ν's fall as confidence falls. The jitter is seen only through the 9-frame
  quadratic residual, which mixes each frame's error with its neighbours', so the fit is by simulation
  (indirect inference, Gourieroux, Monfort & Renault, J. Appl. Econometrics 8, 1993): noise
  s · torso · max(c, 0.1)^-γ · t with ν · max(c, 0.1)^κ degrees of freedom, clipped as the model clips it,
  drawn on the real confidences c of every keypoint, frame and view, through the same residual, and
  (ln s, ln ν, γ, κ) chosen (scipy.optimize, Nelder-Mead, the same draws throughout) to match the
  residual's median and 90th percentile in five confidence bands, its 99th percentile in those with 500
  values and pooled, in log ratio. A starting point comes
  from scipy.stats.t.fit on the residuals standardised by the torso, the γ of a log-log fit of the band
  medians and the residual filter's gain (the residual of independent noise has 0.863 times its σ);
- drift: its correlation time τ from a grid, its RMS σ for each τ from the twin (with the fitted
  confidence and jitter), once without drift and once with a trial σ over ``DRIFT_SEEDS`` seeds, which
  gives the slow error² ≈ a · σ² + b, solved for the real views' slow error; of the grid, the τ whose
  twin best matches the real views' persistence (the autocorrelation of the error against the other
  views at 2, 5 and 10 frames), in squared difference;
- offsets: the twin (detector_realism.synthetic_tracks, with the fitted confidence and jitter) goes
  through the same leave-one-out triangulation as the real views, once without offsets (the reference's
  own error, b) and once with a trial RMS per group over ``OFFSET_SEEDS`` offset draws, which gives the
  measured RMS² ≈ a · RMS² + b per group; the fitted RMS solves it for the real views' figure.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from kinefuse.bench.scoring import detector_realism as realism
from kinefuse.sim.detector_model import JITTER_LIMIT_TORSO, DetectorErrors, JointOffsets

BANDS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
REPEATS = 8  # simulated copies of the real confidences in the jitter fit
OPTIMISER = {"xatol": 1e-3, "fatol": 1e-6}  # Nelder-Mead stops when both hold
SEED = 7
OFFSET_SEEDS = 24
TRIAL_OFFSET = 0.05  # torso lengths, per axis
DRIFT_SEEDS = 8
TRIAL_DRIFT = 0.04  # torso lengths, per axis
DRIFT_TIMES_FRAMES = (5, 8, 12, 18, 27, 40, 60)  # at the demo's 60 fps
JITTER_MIN_CONFIDENCE = 0.0  # the jitter is fitted on every keypoint the model reports


def band_statistics(residuals, sizes, confidences) -> np.ndarray:
    """log of the residual's median and p90 per confidence band (NaN where a band has under 30 values) and
    p99 (NaN under 500 values), then the pooled p99: the targets of the jitter fit."""
    values = np.concatenate([np.abs(r / s).ravel() for r, s in zip(residuals, sizes, strict=True)])
    conf = np.concatenate([np.repeat(c[..., None], 2, axis=-1).ravel() for c in confidences])
    seen = np.isfinite(values)
    values, conf = values[seen], conf[seen]
    out = []
    for low, high in zip(BANDS[:-1], BANDS[1:], strict=True):
        band = values[(conf > low) & (conf <= high)]
        out += [np.log(np.median(band)), np.log(np.percentile(band, 90))] if len(band) >= 30 else [np.nan] * 2
        out.append(np.log(np.percentile(band, 99)) if len(band) >= 500 else np.nan)
    return np.array([*out, np.log(np.percentile(values, 99))])


def _residuals(tracks):
    return [realism.quadratic_residuals(t, min_confidence=JITTER_MIN_CONFIDENCE) for t in tracks]


def fit_confidence(tracks) -> dict:
    """The Beta law's (mean, standard deviation): ``matched`` (the sample mean and the fraction at or below
    ``realism.MIN_CONFIDENCE``) and ``likelihood`` (scipy.stats.beta.fit)."""
    conf = np.concatenate([np.asarray(t)[..., 2].ravel() for t in tracks])
    conf = np.clip(conf[np.isfinite(conf)], 1e-4, 1 - 1e-4)
    a, b, _, _ = stats.beta.fit(conf, floc=0.0, fscale=1.0)
    mean, low = float(np.mean(conf)), float(np.mean(conf <= realism.MIN_CONFIDENCE))

    def excess(log_concentration: float) -> float:  # falls as the law narrows (concentration grows)
        k = np.exp(log_concentration)
        return float(stats.beta.cdf(realism.MIN_CONFIDENCE, mean * k, (1 - mean) * k)) - low

    k = float(np.exp(optimize.brentq(excess, np.log(0.5), np.log(1000.0))))
    spread = float(np.sqrt(mean * (1 - mean) / (k + 1)))
    fitted = a / (a + b)
    likelihood = (float(fitted), float(np.sqrt(fitted * (1 - fitted) / (a + b + 1))))
    return {"matched": (mean, spread), "likelihood": likelihood, "low_fraction": low}


def jitter_start(tracks, sizes) -> dict:
    """Starting values: γ from the band medians, ν and the scale from scipy.stats.t.fit on the residuals
    standardised by torso and confidence, the scale divided by the residual filter's gain."""
    residuals = _residuals(tracks)
    conf = [np.asarray(t)[..., 2] for t in tracks]
    mids = (np.array(BANDS[:-1]) + np.array(BANDS[1:])) / 2
    medians = band_statistics(residuals, sizes, conf)[:-1:3]
    use = np.isfinite(medians)
    power = -stats.linregress(np.log(mids[use]), medians[use]).slope
    z = np.concatenate([
        (r / s * np.maximum(c, 0.1)[..., None] ** power).ravel() for r, s, c in zip(residuals, sizes, conf, strict=True)
    ])  # fmt: skip
    z = z[np.isfinite(z)]
    dof, _, scale = stats.t.fit(z, floc=0.0)
    gain = np.sqrt(1.0 - realism.quadratic_weights()[realism.WINDOW // 2])
    return {"dof": float(dof), "scale": float(scale / gain), "power": float(power),
            "residual_t_dof": float(dof), "residual_t_scale": float(scale)}  # fmt: skip


def fit_jitter(tracks, sizes) -> dict:
    """ν, s, γ and the tail power by indirect inference on the real confidences (see the module docstring)."""
    tracks = [np.asarray(t, dtype=np.float64) for t in tracks]
    target = band_statistics(_residuals(tracks), sizes, [t[..., 2] for t in tracks])
    start = jitter_start(tracks, sizes)
    rng = np.random.default_rng(SEED)
    # the clips end to end (a few 9-frame windows straddle two copies), with common random numbers: the
    # same uniform draws become t quantiles at every step of the search
    copies = [np.tile(t, (REPEATS, 1, 1)) for t in tracks]
    uniform = [rng.random((*c.shape[:-1], 2)) for c in copies]
    use = np.isfinite(target)

    def simulated(params) -> np.ndarray:
        log_scale, log_dof, power, tail_power = params
        residuals = []
        for copy, u, size in zip(copies, uniform, sizes, strict=True):
            floored = np.maximum(np.nan_to_num(copy[..., 2]), 0.1)[..., None]
            sigma = np.exp(log_scale) * size * floored**-power
            unit = stats.t.ppf(u, np.exp(log_dof) * floored**tail_power)
            limit = JITTER_LIMIT_TORSO * size
            noisy = copy.copy()
            noisy[..., :2] = np.clip(
                sigma * unit, -limit, limit
            )  # about a truth at 0: the residual is the same
            residuals.append(realism.quadratic_residuals(noisy, min_confidence=JITTER_MIN_CONFIDENCE))
        return band_statistics(residuals, sizes, [c[..., 2] for c in copies])

    def loss(params) -> float:
        return float(np.sum((simulated(params) - target)[use] ** 2))

    # Nelder-Mead's first steps are 5 % of each start: the tail power starts at 0.5, not 0
    x0 = np.array([np.log(start["scale"]), np.log(max(start["dof"], 1.1)), start["power"], 0.5])
    result = optimize.minimize(loss, x0, method="Nelder-Mead", options=OPTIMISER)
    log_scale, log_dof, power, tail_power = result.x
    return {**start, "scale": float(np.exp(log_scale)), "dof": float(np.exp(log_dof)), "power": float(power),
            "tail_power": float(tail_power), "loss": float(result.fun), "start_loss": loss(x0),
            "target": target.tolist(), "fitted": simulated(result.x).tolist()}  # fmt: skip


def _twin_mean(cams, errors: DetectorErrors, seeds: range, pick) -> float:
    return float(
        np.nanmean(
            [pick(realism.measure(cams, realism.synthetic_tracks(cams, errors, seed=s))) for s in seeds]
        )
    )


def fit_drift(cams, real: dict, errors: DetectorErrors) -> dict:
    """σ and τ of the drift (see the module docstring); the grid's losses beside them."""
    seeds = range(2000, 2000 + DRIFT_SEEDS)
    bare = _twin_mean(cams, errors, seeds, lambda m: m["slow"] ** 2)
    target = np.array([real["persistence"][lag] for lag in realism.PERSISTENCE_LAGS])
    grid = []
    for frames in DRIFT_TIMES_FRAMES:
        tau = frames / realism.TWIN_FPS
        trial = dataclasses.replace(errors, drift_scale=TRIAL_DRIFT, drift_time_s=tau)
        a = (_twin_mean(cams, trial, seeds, lambda m: m["slow"] ** 2) - bare) / TRIAL_DRIFT**2
        sigma = float(np.sqrt(max(real["slow"] ** 2 - bare, 0.0) / a))
        fitted = dataclasses.replace(errors, drift_scale=sigma, drift_time_s=tau)
        persistence = np.array(
            [
                _twin_mean(cams, fitted, seeds, lambda m, k=lag: m["persistence"][k])
                for lag in realism.PERSISTENCE_LAGS
            ]
        )
        grid.append((float(np.sum((persistence - target) ** 2)), tau, sigma, persistence.tolist()))
    loss, tau, sigma, persistence = min(grid)
    return {"scale": sigma, "time_s": tau, "loss": loss, "persistence": persistence, "target": target.tolist(),
            "slow_without_drift": float(np.sqrt(bare)), "grid": grid}  # fmt: skip


def fit_offsets(cams, real: dict, errors: DetectorErrors) -> dict[str, float]:
    """RMS per axis per group such that the twin measures what the real views do (see the docstring)."""
    groups = [f.name for f in dataclasses.fields(JointOffsets)]
    bare, trial = {g: [] for g in groups}, {g: [] for g in groups}
    for seed in range(OFFSET_SEEDS):
        offsets = JointOffsets(**dict.fromkeys(groups, TRIAL_OFFSET))
        with_offsets = dataclasses.replace(errors, offsets=offsets, offset_seed=seed)
        for errors_now, into in ((errors, bare), (with_offsets, trial)):
            measured = realism.measure(cams, realism.synthetic_tracks(cams, errors_now, seed=1000 + seed))
            for g in groups:
                into[g].append(measured["offsets"].get(g, np.nan) ** 2)
    fitted = {}
    for g in groups:
        if g not in real["offsets"]:
            continue
        b, with_trial = np.nanmean(bare[g]), np.nanmean(trial[g])
        a = (with_trial - b) / TRIAL_OFFSET**2
        fitted[g] = float(np.sqrt(max(real["offsets"][g] ** 2 - b, 0.0) / a))
        fitted[f"{g} (reference error)"] = float(np.sqrt(b))
    return fitted


def fit(data_dir: Path, tracks=None) -> dict:
    """Every fit; ``tracks`` (the camera source's output on the four videos) are measured if not given."""
    if tracks is None:
        run = realism.real_tracks(data_dir)
        if run is None:
            raise SystemExit(f"the demo videos or the shipped models are not under {data_dir}")
        tracks = run[0]
    cams = realism.demo_cameras(data_dir)
    real = realism.measure(cams, tracks)
    sizes = real["torso_px"]
    confidence = fit_confidence(tracks)
    mean, spread = confidence["matched"]
    jitter = fit_jitter(tracks, sizes)
    errors = DetectorErrors(confidence_mean=round(mean, 3), confidence_spread=round(spread, 3),
                            jitter_scale=round(jitter["scale"], 4), jitter_dof=round(jitter["dof"], 2),
                            jitter_confidence_power=round(jitter["power"], 2),
                            jitter_tail_power=round(jitter["tail_power"], 2))  # fmt: skip
    drift = fit_drift(cams, real, errors)
    errors = dataclasses.replace(
        errors, drift_scale=round(drift["scale"], 4), drift_time_s=round(drift["time_s"], 3)
    )
    offsets = fit_offsets(cams, real, errors)
    errors = dataclasses.replace(errors, offsets=JointOffsets(**{
        group: round(value, 4) for group, value in offsets.items() if group in JointOffsets.__dataclass_fields__
    }))  # fmt: skip
    return {"real": real, "confidence": confidence, "jitter": jitter, "drift": drift, "offsets": offsets,
            "errors": errors}  # fmt: skip


def toml(errors: DetectorErrors) -> str:
    """The fitted fields as a ``[cameras.detector]`` table."""
    lines = ["[cameras.detector]"]
    for field in ("confidence_mean", "confidence_spread", "jitter_scale", "jitter_dof", "jitter_confidence_power",
                  "jitter_tail_power", "drift_scale", "drift_time_s"):  # fmt: skip
        lines.append(f"{field} = {getattr(errors, field)!r}")
    lines.append("[cameras.detector.offsets]")
    lines += [f"{f.name} = {getattr(errors.offsets, f.name)!r}" for f in dataclasses.fields(JointOffsets)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from kinefuse.bench.datasets.paths import shared_dir

    args = sys.argv[1:] if argv is None else argv
    data_dir = Path(args[0]) if args else shared_dir() / "data"
    result = fit(data_dir)
    real = result["real"]
    for key in ("torso_px", "jitter", "jitter_px", "jitter_all", "jitter_all_px", "lag1", "low_confidence", "offsets",
                "slow", "persistence"):  # fmt: skip
        print(f"real {key}: {real[key]}")
    print("offset medians (px), views x COCO-17 keypoints x (x, y):")
    print(np.array2string(real["offset_medians_px"], precision=1, suppress_small=True, max_line_width=200))
    print("confidence:", result["confidence"])
    print("jitter:", result["jitter"])
    print("drift:", result["drift"])
    print("offsets:", result["offsets"])
    print(toml(result["errors"]))


if __name__ == "__main__":
    main()
