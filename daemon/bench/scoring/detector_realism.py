"""How much the synthetic detector (kinefuse.sim.detector_model) errs like the shipped pose model on real
video: the same statistics on both, the real side measured in the same run.

The real side is the camera source's own pose path run through the daemon (the core never imports the
camera plugin: the agent loads it as any plugin), top-down with the shipped RTMDet-nano person detector
and MoveNet SinglePose Lightning int8, one onnxruntime thread, over the four synchronised Pose2Sim demo
videos (a person balancing on one leg, 60 fps, 100 frames, 1080 or 1088 x 1920 portrait). The synthetic
side is a twin of that recording: a 1.70 m athlete balancing on one leg at the place the demo's person
stands, filmed by the demo's own four calibrated cameras at 60 fps, through the detector model with the
errors ``FITTED`` (fitted to the real side by kinefuse.bench.scoring.detector_fit).

Statistics (each on both sides with the same code):

- jitter: per keypoint and axis, the residual of a least-squares quadratic over the 9 frames centred on
  each frame (the Savitzky-Golay smoother's residual: Savitzky & Golay, Anal. Chem. 36, 1964), where the
  keypoint is confident (> ``MIN_CONFIDENCE``) in all 9, and again for every keypoint reported; its
  absolute value's median, 90th and 99th percentiles and RMS, as a fraction of the view's torso length in
  pixels (the median over the clip of the mid-shoulder to mid-hip distance), so that they transfer to
  other image sizes and distances. For
  independent noise of standard deviation σ the residual has standard deviation 0.863 σ and lag-1
  autocorrelation -0.349 (the filter's own), whatever the noise's law;
- lag-1 autocorrelation of that residual, pooled over keypoints and axes: above -0.349 when the detector's
  errors persist from one frame to the next;
- low-confidence fraction: keypoints at or below ``MIN_CONFIDENCE``;
- per-joint offsets: for each view, each keypoint's median position minus the reprojection of the point
  triangulated from the other three views' confident keypoints (kinefuse.camera_calibration.triangulate,
  weighted by confidence), as a fraction of the torso length; RMS per axis over the views and the
  joints of each group. The reference carries the other views' own errors: the twin goes through the same
  estimator, so the comparison is like for like, and ``detector_fit`` uses the twin to size the offsets
  the model must draw to give the measured figure;
- slow error: how far that difference wanders from its median over the clip (smoothed over 15 frames),
  RMS per axis: errors that persist for longer than the jitter window; and how long they persist, the
  difference's autocorrelation at 2, 5 and 10 frames.

MoveNet int8 runs on integer kernels that differ between instruction sets (AVX2, AVX-512 VNNI), so the
real side's figures (every row's peer_value) depend on the CPU's int8 path and on the camera path; each
row's note says so, with the int8 paths the camera source reported. The synthetic side (every row's
value) is seeded and deterministic. The real side runs in about 10-20 s on two cores.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kinefuse.bench import make_row
from kinefuse.camera_calibration import CameraCalibration, leave_one_out_residuals, read_calibration
from kinefuse.sim.detector_model import (
    KEYPOINT_SETS,
    DetectorErrors,
    JointOffsets,
    offset_groups,
    simulate_keypoints,
)

WINDOW = 9  # frames of the local quadratic fit
MIN_CONFIDENCE = 0.3  # what the fusion counts as seen (kinefuse.fusion.cross_modal)
MIN_OFFSET_FRAMES = 10  # frames a view's offset median needs
SLOW_WINDOW = 15  # frames of the smoother that separates slow error from jitter
PERSISTENCE_LAGS = (2, 5, 10)  # frames at which the error against the other views is autocorrelated
COCO = KEYPOINT_SETS["COCO-17"]
_SHOULDERS = (COCO.keypoints.index("left_shoulder"), COCO.keypoints.index("right_shoulder"))
_HIPS = (COCO.keypoints.index("left_hip"), COCO.keypoints.index("right_hip"))

DEMO = "pose2sim_demo"
VIDEOS = tuple(f"cam0{i}.mp4" for i in range(1, 5))
CALIBRATION = "Calib_scene.toml"  # its triangulation reprojects into the views better than Calib_qualisys
MOVENET = "movenet_singlepose_lightning_int8.onnx"
RTMDET = "rtmdet-nano_coco-person_320x320.onnx"
PEER = "MoveNet int8 on the Pose2Sim demo videos (top-down with RTMDet-nano, 4 views x 100 frames)"
CPU_NOTE = "real side depends on the CPU's int8 kernels (AVX2 or AVX-512 VNNI)"

# The twin of the demo's person: height from the triangulated thigh and shank lengths (0.41 m, 0.39 m);
# standing where the triangulated hips are, facing +x (the hips' left-right axis lies along +y).
TWIN_HEIGHT_M = 1.70
TWIN_ORIGIN_XY = (-1.03, -0.07)
TWIN_MOTION = {"stance_leg": "left", "sway_deg": 6.0, "rep_period_s": 2.0}
TWIN_FPS = 60.0
TWIN_FRAMES = 100
TWIN_SEED = 2024

# Fitted to the real side by kinefuse.bench.scoring.detector_fit on an AMD EPYC (AVX-512 VNNI), its output
# copied here (docs/simulation.md, "The detector model against MoveNet"). Occlusion stays off: MoveNet's
# confidence is already fitted as a whole, hidden keypoints included.
FITTED = DetectorErrors(
    confidence_mean=0.693,
    confidence_spread=0.198,
    jitter_scale=0.0186,
    jitter_dof=4.31,
    jitter_confidence_power=0.64,
    jitter_tail_power=0.81,
    drift_scale=0.0553,
    drift_time_s=0.45,
    offsets=JointOffsets(head=0.0371, wrists=0.0218),
)


# ---- statistics ------------------------------------------------------------------------------------------


def quadratic_weights(window: int = WINDOW) -> np.ndarray:
    """Weights giving a least-squares quadratic's value at the centre of ``window`` equally spaced samples
    (the hat matrix's middle row, Savitzky & Golay 1964)."""
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be odd and at least 3, got {window}")
    offsets = np.arange(window) - window // 2
    design = np.vander(offsets, 3)
    return (design @ np.linalg.pinv(design))[window // 2]


def quadratic_residuals(track: np.ndarray, window: int = WINDOW, min_confidence: float = MIN_CONFIDENCE):
    """(n, K, 2): each keypoint's position minus the local quadratic through the ``window`` frames centred on
    it; NaN at the ends and wherever a frame of the window is missing or not confident. ``track`` is
    (n, K, 3): x, y, confidence."""
    track = np.asarray(track, dtype=np.float64)
    xy = np.where(_confident(track, min_confidence)[..., None], track[..., :2], np.nan)
    residual = np.full(xy.shape, np.nan)
    half = window // 2
    if len(xy) < window:
        return residual
    windows = np.lib.stride_tricks.sliding_window_view(xy, window, axis=0)  # (n - window + 1, K, 2, window)
    residual[half : len(xy) - half] = xy[half : len(xy) - half] - windows @ quadratic_weights(window)
    return residual


def torso_length_px(track: np.ndarray, min_confidence: float = MIN_CONFIDENCE) -> float:
    """The median over frames of the distance from mid-shoulder to mid-hip, where all four are confident;
    NaN if no frame has them."""
    track = np.asarray(track, dtype=np.float64)
    joints = list(_SHOULDERS + _HIPS)
    seen = _confident(track[:, joints], min_confidence).all(axis=1)
    if not seen.any():
        return float("nan")
    shoulders = track[seen][:, list(_SHOULDERS), :2].mean(axis=1)
    hips = track[seen][:, list(_HIPS), :2].mean(axis=1)
    return float(np.median(np.linalg.norm(shoulders - hips, axis=1)))


def jitter_statistics(residuals: Sequence[np.ndarray], sizes: Sequence[float]) -> dict[str, float]:
    """Median, p90, p99 and RMS of the absolute residuals, each view's divided by its size, pooled."""
    values = np.concatenate(
        [np.abs(np.asarray(r) / s).ravel() for r, s in zip(residuals, sizes, strict=True)]
    )
    values = values[np.isfinite(values)]
    if not len(values):
        return dict.fromkeys(("median", "p90", "p99", "rms"), float("nan"))
    return {
        "median": float(np.median(values)),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
        "rms": float(np.sqrt(np.mean(values**2))),
    }


def lag1_autocorrelation(residuals: Sequence[np.ndarray]) -> float:
    """Σ r_t r_(t+1) / sqrt(Σ r_t² Σ r_(t+1)²) over every keypoint and axis of every view, pairs of
    consecutive finite residuals only (no mean removed: the residual's mean is zero by construction)."""
    products, first, second = 0.0, 0.0, 0.0
    for residual in residuals:
        a, b = np.asarray(residual)[:-1], np.asarray(residual)[1:]
        both = np.isfinite(a) & np.isfinite(b)
        products += float(np.sum(a[both] * b[both]))
        first += float(np.sum(a[both] ** 2))
        second += float(np.sum(b[both] ** 2))
    return products / np.sqrt(first * second) if first > 0 and second > 0 else float("nan")


def low_confidence_fraction(tracks: Sequence[np.ndarray], min_confidence: float = MIN_CONFIDENCE) -> float:
    """The fraction of keypoints (every frame of every view) reported at or below ``min_confidence`` (a
    missing keypoint, confidence 0, counts as low)."""
    confidence = np.concatenate([np.nan_to_num(np.asarray(t)[..., 2], nan=0.0).ravel() for t in tracks])
    return float(np.mean(confidence <= min_confidence))


def view_offsets(
    cams: Sequence[CameraCalibration], tracks: Sequence[np.ndarray], min_confidence: float = MIN_CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Each view's keypoints against the other views: (differences (V, n, K, 2), medians (V, K, 2)), in
    pixels, where the difference is the keypoint minus the reprojection of the point the other views
    triangulate from their confident keypoints (weighted by confidence). NaN where the view's keypoint is
    not confident or the others see it in fewer than two views; a median needs ``MIN_OFFSET_FRAMES``."""
    stack = np.stack([np.asarray(t, dtype=np.float64) for t in tracks])
    confident = _confident(stack, min_confidence)
    weights = np.where(confident, np.nan_to_num(stack[..., 2]), 0.0)
    differences = leave_one_out_residuals(cams, stack[..., :2], weights)
    differences[~confident] = np.nan
    counts = np.isfinite(differences).all(axis=-1).sum(axis=1)  # (V, K)
    medians = np.full((*counts.shape, 2), np.nan)
    enough = counts >= MIN_OFFSET_FRAMES
    for view, keypoint in zip(*np.nonzero(enough), strict=True):
        medians[view, keypoint] = np.nanmedian(differences[view, :, keypoint], axis=0)
    return differences, medians


def slow_error(differences: np.ndarray, medians: np.ndarray, window: int = SLOW_WINDOW) -> float:
    """RMS per axis of the differences smoothed over ``window`` frames (a local quadratic, where all of the
    window is finite) about each view and keypoint's median: error that lasts longer than the jitter."""
    values = []
    weights = quadratic_weights(window)
    for view_differences, view_medians in zip(differences, medians, strict=True):
        if len(view_differences) < window:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(view_differences, window, axis=0)
        smooth = windows @ weights  # NaN wherever the window has a gap
        deviation = smooth - view_medians[None]
        values.append(deviation[np.isfinite(deviation)])
    values = np.concatenate(values) if values else np.array([])
    return float(np.sqrt(np.mean(values**2))) if len(values) else float("nan")


def difference_autocorrelation(differences: np.ndarray, medians: np.ndarray, lag: int) -> float:
    """Autocorrelation at ``lag`` frames of the differences (V, n, K, 2) about each view and keypoint's
    median, pooled as in lag1_autocorrelation: how long the error against the other views persists."""
    about = np.asarray(differences) - np.asarray(medians)[:, None]
    return lag1_autocorrelation(_lagged(about, lag))


def _lagged(about: np.ndarray, lag: int) -> list[np.ndarray]:
    """Series whose consecutive elements are ``lag`` frames apart: each view's frames taken every ``lag``,
    from each of the ``lag`` starting frames."""
    return [view[start::lag] for view in about for start in range(lag)]


def group_rms(medians: np.ndarray, sizes: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    """RMS per axis of the offset medians (V, K, 2), each view's divided by its size, over the views and
    the keypoints of each offset group (kinefuse.sim.detector_model.offset_groups), and over all."""
    scaled = np.asarray(medians) / np.asarray(sizes, dtype=np.float64)[:, None, None]
    groups = offset_groups(names)
    out = {}
    for group in (f.name for f in dataclasses.fields(JointOffsets)):
        columns = [k for k, g in enumerate(groups) if g == group]
        values = scaled[:, columns].ravel()
        values = values[np.isfinite(values)]
        if len(values):
            out[group] = float(np.sqrt(np.mean(values**2)))
    values = scaled[np.isfinite(scaled)]
    out["all"] = float(np.sqrt(np.mean(values**2))) if len(values) else float("nan")
    return out


def measure(cams: Sequence[CameraCalibration], tracks: Sequence[np.ndarray]) -> dict:
    """Every statistic of the module docstring for one recording: ``tracks`` (V, n, 17, 3) COCO-17
    keypoints of the views ``cams``, x, y in pixels, confidence; NaN where missing."""
    sizes = [torso_length_px(t) for t in tracks]
    residuals = [quadratic_residuals(t) for t in tracks]
    every = [quadratic_residuals(t, min_confidence=0.0) for t in tracks]
    differences, medians = view_offsets(cams, tracks)
    scaled = differences / np.asarray(sizes)[:, None, None, None]
    return {
        "torso_px": sizes,
        "jitter": jitter_statistics(residuals, sizes),
        "jitter_px": jitter_statistics(residuals, [1.0] * len(sizes)),
        "jitter_all": jitter_statistics(every, sizes),
        "jitter_all_px": jitter_statistics(every, [1.0] * len(sizes)),
        "lag1": lag1_autocorrelation(residuals),
        "low_confidence": low_confidence_fraction(tracks),
        "offsets": group_rms(medians, sizes, COCO.keypoints),
        "offset_medians_px": medians,
        "slow": slow_error(scaled, medians / np.asarray(sizes)[:, None, None]),
        "persistence": {
            lag: difference_autocorrelation(differences, medians, lag) for lag in PERSISTENCE_LAGS
        },
    }


def _confident(track: np.ndarray, min_confidence: float) -> np.ndarray:
    return np.isfinite(track[..., :2]).all(axis=-1) & (np.nan_to_num(track[..., 2]) > min_confidence)


# ---- the two sides ---------------------------------------------------------------------------------------


def demo_cameras(data_dir: Path) -> list[CameraCalibration]:
    return read_calibration(Path(data_dir) / DEMO / "calibration" / CALIBRATION)


def synthetic_tracks(
    cams: Sequence[CameraCalibration], errors: DetectorErrors, seed: int = TWIN_SEED
) -> list[np.ndarray]:
    """The twin of the demo through the detector model: (n, 17, 3) per camera, NaN where missing."""
    from kinefuse.sim.body import Body, BodyShape
    from kinefuse.sim.motions import make_motion

    shape = BodyShape(TWIN_HEIGHT_M)
    body = Body(shape, make_motion("single_leg_balance", shape, **TWIN_MOTION), TWIN_ORIGIN_XY)
    t = np.arange(TWIN_FRAMES) / TWIN_FPS
    landmarks, capsules = body.landmarks(t), body.capsules(t)
    tracks = []
    for index, cam in enumerate(cams):
        rng = np.random.default_rng([seed, index])
        track = simulate_keypoints(cam, "COCO-17", landmarks, capsules, t, errors, rng)
        tracks.append(track.keypoints.astype(np.float64))
    return tracks


def real_tracks(data_dir: Path) -> tuple[list[np.ndarray], str] | None:
    """The camera source (top-down: RTMDet-nano, then MoveNet int8 per crop, the tracker's athlete) over the
    four demo videos through the daemon, one onnxruntime thread per camera: ((n, 17, 3) per video in frame
    order, the int8 paths the source reported in its device meta, or "" if it reports none). None when the
    videos or the models are not there. Runs its own event loop (in a thread if one is running here);
    from a coroutine, ``await real_tracks_async(data_dir)``."""
    return _run(real_tracks_async(data_dir))


async def real_tracks_async(data_dir: Path) -> tuple[list[np.ndarray], str] | None:
    """``real_tracks`` for a caller inside an event loop (the accuracy bench)."""
    data_dir = Path(data_dir)
    videos = [data_dir / DEMO / "videos" / name for name in VIDEOS]
    models = data_dir.parent / "models"
    if (
        not all(v.is_file() for v in videos)
        or not (models / MOVENET).is_file()
        or not (models / RTMDET).is_file()
    ):
        return None
    return await _run_cameras(videos, models)


def _run(coroutine):
    """Run ``coroutine`` to its end from synchronous code, whether or not an event loop runs in this thread."""
    import asyncio
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # asyncio.run refuses a thread with a running loop
        return pool.submit(asyncio.run, coroutine).result()


async def _run_cameras(videos: list[Path], models: Path) -> tuple[list[np.ndarray], str]:
    import json

    from kinefuse.config import load_config
    from kinefuse.inprocess import replay_in_process, write_config
    from kinefuse.plugin_loader import load_plugins
    from kinefuse.storage import reader

    with tempfile.TemporaryDirectory(prefix="kinefuse-detector-realism-") as tmp:
        folder = Path(tmp)
        camera = {
            "type": "camera",
            "model_path": models / MOVENET,
            "detector": "rtmdet_nano_person",
            "detector_path": models / RTMDET,
            "threads": 1,
            "realtime": False,
            "batch_across_cameras": False,  # a session per camera: the two cores run two cameras at once
        }
        sources = [{"id": video.stem, "path": video, **camera} for video in videos]
        tables = {
            "daemon": {"athlete": "detector-realism", "log_level": "warning"},
            "storage": {"path": folder / "realism.db"},
            "status": {"socket_path": folder / "k.sock"},
            "sources": sources,
        }
        config_path = write_config(folder / "config.toml", tables)
        registry = load_plugins()
        await replay_in_process(load_config(config_path, registry), registry, "the camera sources")
        db = reader.open_for_reading(folder / "realism.db")
        try:
            tracks = []
            for video in videos:
                frames = reader.keypoint_frames(db, device_id=video.stem)
                tracks.append(frames["keypoints"][np.argsort(frames["seq"])].astype(np.float64))
            metas = [json.loads(row["meta"] or "{}") for row in db.query("SELECT meta FROM devices")]
        finally:
            db.close()
    return tracks, ", ".join(sorted({path for meta in metas for path in _int8_paths(meta)}))


def _int8_paths(meta) -> set[str]:
    """Every ``int8_path`` the camera source put in its device's meta (its models' runtime tables)."""
    if not isinstance(meta, dict):
        return set()
    found = {str(meta["int8_path"])} if "int8_path" in meta else set()
    return found.union(*(_int8_paths(value) for value in meta.values()))


# ---- rows ------------------------------------------------------------------------------------------------


def rows(data_dir: Path, run: tuple[list[np.ndarray], str] | None) -> list[dict]:
    """The synthetic detector (``FITTED``, on the twin) beside MoveNet on the demo videos (``run``, from
    ``real_tracks(data_dir)`` in this run); none without it."""
    if run is None:
        return []
    tracks, int8_path = run
    cams = demo_cameras(data_dir)
    return realism_rows(measure(cams, synthetic_tracks(cams, FITTED)), measure(cams, tracks), int8_path)


def realism_rows(synthetic: dict, real: dict, int8_path: str = "") -> list[dict]:
    """One row per statistic: the twin's value, the real videos' as the peer. For realism the ratio is
    what counts (1 is best); ``better`` says which way the detector itself would be better."""
    cpu = CPU_NOTE + (f"; int8 path {int8_path}" if int8_path else "")
    twin = (
        f"twin: {TWIN_HEIGHT_M:.2f} m athlete balancing on one leg, the demo's 4 calibrated views, "
        f"{TWIN_FRAMES} frames at {TWIN_FPS:g} fps, seed {TWIN_SEED}"
    )
    size = "per axis, in torso image lengths"
    residual = f"|residual| of a {WINDOW}-frame local quadratic, {size}"
    against = "each view's keypoint minus the other 3 views' triangulation reprojected"
    out = []

    def row(metric: str, unit: str, value: float, peer_value: float, note: str) -> None:
        out.append(
            make_row(
                "detector model (demo twin)",
                metric,
                unit,
                value,
                "lower",
                peer=PEER,
                peer_value=peer_value,
                note=f"{note}; {twin}; {cpu}",
            )
        )

    subsets = (
        ("jitter", f"confidence > {MIN_CONFIDENCE:g}", "keypoints confident in all 9 frames"),
        ("jitter_all", "every keypoint", "every keypoint reported"),
    )
    for key, subset, which in subsets:
        for stat, label in (("median", "median"), ("p90", "p90"), ("p99", "p99"), ("rms", "RMS")):
            note = f"{residual}, {which}"
            row(f"jitter {label}, {subset}", "torso", synthetic[key][stat], real[key][stat], note)
    note = "of that residual, confident keypoints; -0.349 for independent noise"
    row("jitter lag-1 autocorrelation", "", synthetic["lag1"], real["lag1"], note)
    note = "keypoints of every frame and view, a missing one counted low"
    metric = f"low-confidence fraction (<= {MIN_CONFIDENCE:g})"
    row(metric, "", synthetic["low_confidence"], real["low_confidence"], note)
    for group, value in synthetic["offsets"].items():
        note = f"RMS over views and joints of the median of {against}, {size}"
        row(f"offset against the other views: {group}", "torso", value, real["offsets"].get(group), note)
    note = f"RMS of {against}, smoothed over {SLOW_WINDOW} frames, about its median, {size}"
    row("slow error against the other views", "torso", synthetic["slow"], real["slow"], note)
    for lag in PERSISTENCE_LAGS:
        note = f"of {against}, about its median, {lag / TWIN_FPS * 1e3:.0f} ms apart"
        metric = f"error against the other views: autocorrelation at {lag} frames"
        row(metric, "", synthetic["persistence"][lag], real["persistence"][lag], note)
    return out
