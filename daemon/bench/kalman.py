"""Built-in bench ``kinefuse bench kalman``: frames per second filtering and smoothing 26 keypoints in 2D
(HALPE-26 from one camera) with kinefuse's keypoint Kalman kernel through its batch API, filter only and
filter + RTS, against filterpy's KalmanFilter.batch_filter and rts_smoother on the same model and the same
frames, measured in the same run; and the live fixed-lag smoother, frame by frame."""

from __future__ import annotations

import math
import timeit

import numpy as np

from kinefuse import hookimpl
from kinefuse._native import IMPLEMENTATION, keypoint_kalman
from kinefuse.bench import make_row
from kinefuse.fusion.keypoint_smoothing import KeypointFilterSettings, LiveKeypointSmoother
from kinefuse.interfaces import BenchSpec

KEYPOINTS = 26
FRAMES = 1000  # about 33 s at 30 fps, for ours and filterpy alike
DROPPED = 0.05  # share of detections missing (NaN): both filters predict through them
GOAL = "goal: >= 100x filterpy, and 26 keypoints x 1000 frames filtered + smoothed in <= 5 ms"


def recording(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``frames`` frames at about 30 fps (+-4 ms jitter) of 26 keypoints swaying slowly enough for the
    constant-velocity model to follow (its gate rejects almost nothing, so filterpy, which has no gate,
    does the same work), noise sigma 3 px / confidence, and DROPPED of the detections missing."""
    rng = np.random.default_rng(seed)
    times = np.arange(frames) / 30.0 + rng.uniform(-0.004, 0.004, frames)
    phase = rng.uniform(0, 2 * np.pi, (KEYPOINTS, 2))
    truth = 400 + 60 * np.sin(2 * np.pi * 0.5 * times[:, None, None] + phase)
    confidence = rng.uniform(0.3, 1.0, (frames, KEYPOINTS))
    xy = truth + rng.normal(size=truth.shape) * (3.0 / confidence)[..., None]
    dropped = rng.random((frames, KEYPOINTS)) < DROPPED
    dropped[0] = False  # every track starts in the first frame
    xy[dropped] = np.nan
    return times, np.concatenate([xy, confidence[..., None]], axis=-1)


def filterpy_track(
    times,
    keypoints,
    *,
    dim=2,
    q=5.0e4,
    r0=3.0,
    min_confidence=0.05,
    init_velocity_sigma=1000.0,
    init_acceleration_sigma=2000.0,
    smooth=True,
) -> list[dict]:
    """kinefuse's keypoint model (``keypoint_kalman.filter_track``'s arguments and defaults) on filterpy,
    one filter per keypoint, driven as filterpy's documentation shows for varying intervals:
    ``KalmanFilter.batch_filter`` with per-frame Fs, Qs and Rs, then ``KalmanFilter.rts_smoother``.

    The state is (x, vx, y, vy) (constant acceleration: x, vx, ax, y, vy, ay), F and Q block-diagonal over
    the axes (Q_continuous_white_noise, block_size=2), R = (r0 / c)² I per frame, and None for a frame
    without a usable detection. A track starts at its first usable detection, as ours does. filterpy has
    no gate and no track segments, so it equals ours only where no detection is rejected and no gap
    outlasts ``max_gap_s``.

    Returns one dict per keypoint of arrays over all frames, NaN before the track starts: "x" (n, 2 dim)
    and "P" (n, 2 dim, 2 dim), smoothed if ``smooth``; else filtered, with "x_pred" and "P_pred" too."""
    Fs, Qs = _filterpy_transitions(times, dim, q)
    usable = np.isfinite(keypoints).all(axis=-1) & (keypoints[..., 2] > min_confidence)
    variance = (r0 / keypoints[..., 2]) ** 2
    initial = [init_velocity_sigma**2, init_acceleration_sigma**2][: dim - 1]
    return [_filterpy_keypoint(keypoints[:, k, :2], usable[:, k], variance[:, k], Fs, Qs, initial, smooth)
            for k in range(keypoints.shape[1])]  # fmt: skip


def _filterpy_keypoint(z, usable, variance, Fs, Qs, initial, smooth) -> dict:
    from filterpy.kalman import KalmanFilter

    n, dim, start = len(z), len(initial) + 1, int(np.argmax(usable))
    if not usable[start]:
        return _padded(n, 0, dim, smooth, None)
    kf = KalmanFilter(dim_x=2 * dim, dim_z=2)
    kf.H = np.kron(np.eye(2), np.eye(1, dim))  # measures x and y
    kf.x = np.zeros((2 * dim, 1))
    kf.x[[0, dim], 0] = z[start]
    kf.P = np.diag([variance[start], *initial] * 2)
    x0, P0 = kf.x.copy(), kf.P.copy()
    zs = [z[f].reshape(2, 1) if usable[f] else None for f in range(start + 1, n)]
    Rs = variance[start + 1 :, None, None] * np.eye(2)
    x, P, x_pred, P_pred = kf.batch_filter(zs, Fs=Fs[start + 1 :], Qs=Qs[start + 1 :], Rs=Rs)
    x, P = np.concatenate([x0[None], x]), np.concatenate([P0[None], P])
    if smooth:  # rts_smoother's Fs[k + 1] is the step into frame k + 1, as batch_filter's Fs[k] is
        x, P, _, _ = kf.rts_smoother(x, P, Fs=Fs[start:], Qs=Qs[start:])
    return _padded(n, start, dim, smooth, (x, P, x_pred, P_pred))


def _filterpy_transitions(times, dim: int, q: float) -> tuple[list, list]:
    """F and Q of the step into each frame (frame 0: unused identity and zeros), state ordered by axis."""
    from filterpy.common import Q_continuous_white_noise

    Fs, Qs = [np.eye(2 * dim)], [np.zeros((2 * dim, 2 * dim))]
    for dt in np.diff(times):
        F = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])[:dim, :dim]
        Fs.append(np.kron(np.eye(2), F))
        Qs.append(Q_continuous_white_noise(dim, dt, q, block_size=2))
    return Fs, Qs


def _padded(n: int, start: int, dim: int, smooth: bool, outputs) -> dict:
    track = {"x": np.full((n, 2 * dim), np.nan), "P": np.full((n, 2 * dim, 2 * dim), np.nan)}
    if not smooth:
        track |= {"x_pred": np.full((n, 2 * dim), np.nan), "P_pred": np.full((n, 2 * dim, 2 * dim), np.nan)}
    if outputs is not None:
        x, P, x_pred, P_pred = outputs
        track["x"][start:], track["P"][start:] = x[..., 0], P
        if not smooth:
            track["x_pred"][start + 1 :], track["P_pred"][start + 1 :] = x_pred[..., 0], P_pred
    return track


def _seconds(run, repeats: int = 3) -> float:
    """Seconds per call as timeit measures it: each repeat runs enough calls to last 0.2 s (one, for a slow
    run), and the best repeat, the least disturbed, counts."""
    timer = timeit.Timer(run)
    number, _ = timer.autorange()
    return min(timer.repeat(repeats, number)) / number


def _live_seconds(times, keypoints) -> float:
    def run():
        smoother = LiveKeypointSmoother(KEYPOINTS)
        for t, frame in zip(times, keypoints, strict=True):
            smoother.push(t, frame)
        smoother.flush()

    return _seconds(run)


def run(options: dict) -> list[dict]:
    import filterpy

    times, keypoints = recording(FRAMES)
    # beside filterpy, the Gaussian update it computes (the default's Student-t update gets a row of its own)
    args = KeypointFilterSettings(measurement_dof=math.inf).kernel_args()
    robust = KeypointFilterSettings().kernel_args()
    model = {key: args[key] for key in ("dim", "q", "r0", "min_confidence")}  # all filterpy can express
    frames = len(times)
    ours_filter = _seconds(lambda: keypoint_kalman.filter_track(times, keypoints, **args))
    ours_smooth = _seconds(lambda: keypoint_kalman.smooth_track(times, keypoints, **args))
    ours_robust = _seconds(lambda: keypoint_kalman.smooth_track(times, keypoints, **robust))
    peer_filter = _seconds(lambda: filterpy_track(times, keypoints, **model, smooth=False))
    peer_smooth = _seconds(lambda: filterpy_track(times, keypoints, **model, smooth=True))
    ours_live = _live_seconds(times, keypoints)
    status = keypoint_kalman.filter_track(times, keypoints, **args)["status"]
    data = (
        f"{KEYPOINTS} keypoints x {frames} frames; {IMPLEMENTATION} kernel, its gate rejected "
        f"{np.count_nonzero(status == keypoint_kalman.REJECTED)} of {status.size} detections"
    )
    same = f"{data}; Gaussian update (measurement_dof = inf); filterpy on the same frames (it has no gate)"
    peer = f"filterpy {filterpy.__version__} KalmanFilter.batch_filter, a {2 * args['dim']}-state filter per keypoint"
    return [
        make_row("filter (batch)", "frames/s", "frames/s", frames / ours_filter, "higher", peer=peer,
                 peer_value=frames / peer_filter, note=f"{same}; filter_track {ours_filter * 1e3:.2f} ms; {GOAL}"),
        make_row("filter + RTS (batch)", "frames/s", "frames/s", frames / ours_smooth, "higher",
                 peer=f"{peer}, then its rts_smoother", peer_value=frames / peer_smooth,
                 note=f"{same}; smooth_track {ours_smooth * 1e3:.2f} ms; {GOAL}"),
        make_row("filter + RTS (batch), Student-t update (the default)", "frames/s", "frames/s",
                 frames / ours_robust, "higher",
                 note=f"{KEYPOINTS} keypoints x {frames} frames, measurement_dof = {robust['measurement_dof']:g}; "
                      f"smooth_track {ours_robust * 1e3:.2f} ms; no peer: filterpy has no Student-t update; {GOAL}"),
        make_row("live (filter + 100 ms fixed-lag RTS, per frame)", "frames/s", "frames/s", frames / ours_live,
                 "higher", note=f"{data}; the default settings; one Python call per frame; no peer: filterpy's "
                                "FixedLagSmoother keeps F and Q fixed, takes no missing detections and smooths "
                                "no covariance"),
    ]  # fmt: skip


@hookimpl
def register_benches():
    return [BenchSpec("kalman", __doc__.strip(), run)]
