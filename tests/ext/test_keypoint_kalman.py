"""The keypoint Kalman kernel: compiled and reference twin agree, both agree with filterpy (the oracle), the
live fixed-lag smoother equals the offline smoother on what it has seen, and the gap policy is honest. The
Student-t update (``measurement_dof`` finite) is checked the same ways, against filterpy's update with the
variational Bayes weight computed here from filterpy's own posterior."""

import copy
import math

import numpy as np
import pytest

from kinefuse._ext import keypoint_kalman as compiled
from kinefuse._pure import keypoint_kalman as twin
from kinefuse.bench.kalman import filterpy_track

MODEL = {"q": 5.0e4, "r0": 3.0, "min_confidence": 0.05, "gate": 13.8, "max_gap_s": 0.15}
# the Student-t update, with the fitted jitter's confidence power and the gate for 4 degrees of freedom
ROBUST = {**MODEL, "measurement_dof": 4.0, "confidence_power": 0.64, "gate": 122.5}
MODELS = pytest.mark.parametrize("model", [MODEL, ROBUST], ids=["gaussian", "student-t"])


def assert_close(mine, theirs, tolerance=1e-9):
    """Equal, frame by frame, to ``tolerance`` relative to that frame's largest value (and NaN where the
    other is NaN): the implementations differ only in rounding (cofactor against LU inverses, summation
    order), which the first frames' huge initial uncertainties magnify in absolute terms."""
    mine, theirs = np.asarray(mine), np.asarray(theirs)
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
    frames = len(theirs)
    scale = np.nanmax(np.abs(theirs).reshape(frames, -1), axis=1, initial=0.0)
    error = np.nanmax(np.abs(mine - theirs).reshape(frames, -1), axis=1, initial=0.0)
    assert (error <= tolerance * scale).all(), (
        f"worst relative error {np.max(error / np.maximum(scale, 1e-300)):.2e}"
    )


def recording(n=300, K=4, seed=0, holes=True):
    """Irregular frames of K keypoints on smooth paths, with noise scaled by 1/confidence, dropped
    detections, a 0.4 s gap on keypoint 0 and a few wild outliers."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(1 / 40, 1 / 25, n))
    truth = np.stack([400 + 80 * np.sin(2.1 * times[:, None] + np.arange(K)),
                      300 + 60 * np.cos(1.3 * times[:, None] + 0.5 * np.arange(K))], axis=-1)  # fmt: skip
    confidence = rng.uniform(0.3, 1.0, (n, K))
    keypoints = np.concatenate([truth + rng.normal(size=truth.shape) * (3.0 / confidence)[..., None],
                                confidence[..., None]], axis=-1)  # fmt: skip
    if holes:
        keypoints[rng.random((n, K)) < 0.08, :2] = np.nan
        keypoints[rng.random((n, K)) < 0.05, 2] = 0.01
        if n > 112:
            keypoints[100:112, 0, :2] = np.nan  # about 0.4 s: longer than the 0.15 s gap limit
            keypoints[112, 0] = (*truth[112, 0], 0.9)
        outliers = [f for f in (40, 150, 220) if f < n]
        keypoints[outliers, 1] = np.column_stack([truth[outliers, 1, 0] + 150.0, truth[outliers, 1, 1],
                                                  np.full(len(outliers), 0.9)])  # fmt: skip
    return times, keypoints, truth


@MODELS
@pytest.mark.parametrize("dim", [2, 3])
def test_compiled_and_reference_twin_agree(dim, model):
    times, keypoints, _ = recording()
    a = compiled.filter_track(times, keypoints, dim=dim, **model)
    b = twin.filter_track(times, keypoints, dim=dim, **model)
    np.testing.assert_array_equal(a["status"], b["status"])
    np.testing.assert_array_equal(a["starts"], b["starts"])
    for key in ("x", "P", "x_pred", "P_pred"):
        assert_close(a[key], b[key])
    for x, y in zip(compiled.rts_smooth(times, a, dim=dim, q=model["q"]),
                    twin.rts_smooth(times, b, dim=dim, q=model["q"]), strict=True):  # fmt: skip
        assert_close(x, y)
    if model is ROBUST:  # and the Student-t update is not the Gaussian one
        gaussian = compiled.filter_track(times, keypoints, dim=dim, **{**MODEL, "gate": ROBUST["gate"]})
        assert np.nanmax(np.abs(a["x"] - gaussian["x"])[..., 0]) > 1.0


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
@MODELS
@pytest.mark.parametrize("dim", [2, 3])
def test_smooth_track_is_filter_track_then_rts_smooth(implementation, dim, model):
    times, keypoints, _ = recording()
    fused = implementation.smooth_track(times, keypoints, dim=dim, **model)
    filtered = implementation.filter_track(times, keypoints, dim=dim, **model)
    states, covariances = implementation.rts_smooth(times, filtered, dim=dim, q=model["q"])
    np.testing.assert_array_equal(fused["x"], states)  # the same steps in the same order: bit for bit
    np.testing.assert_array_equal(fused["P"], covariances)
    np.testing.assert_array_equal(fused["status"], filtered["status"])
    np.testing.assert_array_equal(fused["starts"], filtered["starts"])


def fillable(n=150, K=3, seed=1):
    """``recording`` without outliers, its detections missing only for as long as the filter fills them:
    10 % dropped (NaN), 5 % at a confidence below ``min_confidence``, three frames in a row on keypoint 0
    and the first two on keypoint 2 (its track starts late), while the confidence (so R) changes every
    frame."""
    times, keypoints, _ = recording(n, K, seed, holes=False)
    rng = np.random.default_rng(seed)
    keypoints[rng.random((n, K)) < 0.10, :2] = np.nan
    keypoints[rng.random((n, K)) < 0.05, 2] = 0.01
    keypoints[60:63, 0, :2] = np.nan
    keypoints[:2, 2, :2] = np.nan
    return times, keypoints


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
@pytest.mark.parametrize("dim", [2, 3])
@pytest.mark.parametrize("gaps", [False, True], ids=["every-frame", "with-gaps"])
def test_filterpy_gives_the_same_filter_and_rts_smoother(implementation, dim, gaps):
    """filterpy's batch_filter and rts_smoother (driven as the bench drives them: a frame without a usable
    detection is None, R per frame from the confidence) give our filtered, predicted and smoothed states
    and covariances. filterpy has no gate (ours is off here) and no segments (no gap outlasts the limit)."""
    times, keypoints = fillable() if gaps else recording(n=150, K=3, holes=False)[:2]
    settings = {**MODEL, "gate": 1e12}
    ours = implementation.filter_track(times, keypoints, dim=dim, **settings)
    smoothed = implementation.smooth_track(times, keypoints, dim=dim, **settings)
    unusable = np.isnan(keypoints[..., 0]) | (keypoints[..., 2] <= MODEL["min_confidence"])
    assert (ours["starts"].sum(axis=0) == 1).all()  # one track per keypoint: nothing outlasted the limit
    tracked = np.cumsum(ours["starts"], axis=0) > 0
    np.testing.assert_array_equal(ours["status"] == implementation.FILLED, unusable & tracked)
    assert (ours["status"] == implementation.FILLED).any() == gaps
    model = {key: settings[key] for key in ("q", "r0", "min_confidence")}
    theirs = filterpy_track(times, keypoints, dim=dim, **model, smooth=False)
    theirs_smoothed = filterpy_track(times, keypoints, dim=dim, **model, smooth=True)
    for k in range(keypoints.shape[1]):
        for key in ("x", "x_pred"):
            assert_close(ours[key][:, k], theirs[k][key].reshape(-1, 2, dim))
        for key in ("P", "P_pred"):
            assert_same_covariance(ours[key][:, k], theirs[k][key], dim)
        assert_close(smoothed["x"][:, k], theirs_smoothed[k]["x"].reshape(-1, 2, dim))
        assert_same_covariance(smoothed["P"][:, k], theirs_smoothed[k]["P"], dim)


def assert_same_covariance(mine, theirs, dim):
    """Our one (dim, dim) covariance is filterpy's block for x and its block for y (ordered by axis)."""
    assert_close(mine, theirs[:, :dim, :dim])
    assert_close(mine, theirs[:, dim:, dim:])


def filterpy_student_t(times, z, confidence, dim, q, r0, nu, power, iterations, robust_after):
    """One keypoint on filterpy (state ordered by axis, as kinefuse.bench.kalman drives it), detected in
    every frame, with the variational Bayes Student-t update written from its definition (Agamennoni,
    Nieto & Nebot 2011): the noise is N(0, R / w), and w is iterated as E[w] = (nu + m) / (nu + tr(R^-1 (r
    r' + H P+ H'))), r and P+ the residual and covariance of filterpy's own update with R / w; the first
    ``robust_after`` detections with w = 1. Returns the filtered states (n, 2 dim) and covariances."""
    from filterpy.common import Q_continuous_white_noise
    from filterpy.kalman import KalmanFilter

    kf = KalmanFilter(dim_x=2 * dim, dim_z=2)
    kf.H = np.kron(np.eye(2), np.eye(1, dim))
    R = (r0 * confidence**-power) ** 2
    kf.x = np.zeros((2 * dim, 1))
    kf.x[[0, dim], 0] = z[0]
    kf.P = np.diag([R[0], 1000.0**2, 2000.0**2][:dim] * 2)
    xs, Ps = [kf.x[:, 0].copy()], [kf.P.copy()]
    for f in range(1, len(times)):
        dt = times[f] - times[f - 1]
        F = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])[:dim, :dim]
        kf.predict(F=np.kron(np.eye(2), F), Q=Q_continuous_white_noise(dim, dt, q, block_size=2))
        w = 1.0
        for _ in range(iterations if f >= robust_after else 0):
            trial = copy.deepcopy(kf)
            trial.update(z[f].reshape(2, 1), R=np.eye(2) * R[f] / w)
            residual = z[f] - (kf.H @ trial.x)[:, 0]
            w = (nu + 2) / (nu + (residual @ residual + np.trace(kf.H @ trial.P @ kf.H.T)) / R[f])
        kf.update(z[f].reshape(2, 1), R=np.eye(2) * R[f] / w)
        xs.append(kf.x[:, 0].copy())
        Ps.append(kf.P.copy())
    return np.array(xs), np.array(Ps)


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
@pytest.mark.parametrize("dim", [2, 3])
def test_the_student_t_update_is_filterpys_with_the_variational_weight(implementation, dim):
    times, keypoints, truth = recording(n=150, K=2, holes=False)
    rng = np.random.default_rng(5)
    keypoints[:, :, :2] += rng.standard_t(2.0, size=truth.shape) * 4.0  # heavy tails: weights far from 1
    settings = {**ROBUST, "gate": 1e12}  # filterpy has no gate
    ours = implementation.filter_track(times, keypoints, dim=dim, **settings)
    for k in range(2):
        x, P = filterpy_student_t(times, keypoints[:, k, :2], keypoints[:, k, 2], dim, ROBUST["q"],
                                  ROBUST["r0"], ROBUST["measurement_dof"], ROBUST["confidence_power"],
                                  implementation.ROBUST_ITERATIONS, 2 * dim + 1)  # fmt: skip
        assert_close(ours["x"][:, k], x.reshape(-1, 2, dim))
        assert_same_covariance(ours["P"][:, k], P, dim)


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
def test_a_far_detection_moves_the_student_t_estimate_less_except_as_a_track_starts(implementation):
    """A keypoint held still with 1 px of noise, and a detection 25 px off: the Gaussian update moves 16 px
    toward it, the Student-t one 3. But a track segment's first 2 dim + 1 detections are taken at face
    value, as the Gaussian update takes them: a track that starts on an outlier (a left/right swap) gets
    a wrong velocity from its first two detections, and the robust update would then hold the good
    detections that follow against it (60 px off after the start here, against 13 px)."""
    rng = np.random.default_rng(2)
    times = np.arange(60) / 30.0
    keypoints = np.column_stack([100.0 + rng.normal(0, 1.0, 60), 50.0 + rng.normal(0, 1.0, 60), np.ones(60)])
    keypoints[0, 0] += 60.0  # the track starts on an outlier
    keypoints[40, 0] += 25.0
    keypoints = keypoints[:, None]
    settings = {**MODEL, "gate": 1e12}
    gaussian = implementation.filter_track(times, keypoints, **settings)["x"][:, 0, 0, 0]
    robust = implementation.filter_track(times, keypoints, measurement_dof=4.0, **settings)["x"][:, 0, 0, 0]
    np.testing.assert_array_equal(robust[:5], gaussian[:5])  # 2 dim + 1 = 5 detections at face value
    assert robust[5] != gaussian[5]
    start = slice(1, 20)  # after the outlier it started on
    assert np.max(np.abs(robust[start] - 100.0)) < np.max(np.abs(gaussian[start] - 100.0)) + 1.0
    assert gaussian[40] - gaussian[39] > 10.0 and 0.0 < robust[40] - robust[39] < 0.25 * (
        gaussian[40] - gaussian[39]
    )
    early = implementation.filter_track(times, keypoints, measurement_dof=4.0, robust_after=1, **settings)
    assert np.max(np.abs(early["x"][start, 0, 0, 0] - 100.0)) > 2 * np.max(np.abs(gaussian[start] - 100.0))


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
def test_student_t_with_infinite_dof_is_the_gaussian_filter(implementation):
    times, keypoints, _ = recording()
    gaussian = implementation.filter_track(times, keypoints, **MODEL)
    for dof, tolerance in ((math.inf, 0.0), (1e12, 1e-9)):
        robust = implementation.filter_track(times, keypoints, measurement_dof=dof, **MODEL)
        np.testing.assert_array_equal(robust["status"], gaussian["status"])
        assert_close(robust["x"], gaussian["x"], tolerance)
        assert_close(robust["P"], gaussian["P"], tolerance)


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
@MODELS
def test_live_fixed_lag_output_is_the_offline_smoother_on_what_had_arrived(implementation, model):
    times, keypoints, _ = recording(n=120)
    live = implementation.LiveKeypointFilter(4, lag_s=0.1, **model)
    emitted = []
    for f in range(len(times)):
        for t, mean, var, status in live.push(times[f], keypoints[f]):
            frame = int(np.searchsorted(times, t))
            assert times[f] - t >= 0.1 - 1e-12  # emitted once lag_s old
            seen = implementation.filter_track(times[: f + 1], keypoints[: f + 1], **model)
            states, covariances = implementation.rts_smooth(times[: f + 1], seen, q=model["q"])
            assert_close(mean, states[frame, :, :, 0], 1e-12)
            assert_close(var, covariances[frame, :, 0, 0], 1e-12)
            np.testing.assert_array_equal(status, seen["status"][frame])
            emitted.append(t)
    emitted += [t for t, *_ in live.flush()]
    np.testing.assert_array_equal(emitted, times)  # every frame exactly once, in order


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
def test_gaps_are_filled_only_up_to_the_limit_and_outliers_are_rejected(implementation):
    times, keypoints, _ = recording()
    out = implementation.filter_track(times, keypoints, **MODEL)
    status = out["status"]
    gap = times[100:112] - times[99]
    assert (status[100:112, 0][gap <= MODEL["max_gap_s"]] == implementation.FILLED).all()
    assert (status[100:112, 0][gap > MODEL["max_gap_s"]] == implementation.MISSING).all()
    assert np.isnan(out["x"][100:112, 0][gap > MODEL["max_gap_s"]]).all()
    assert status[112, 0] == implementation.MEASURED and out["starts"][112, 0]  # a new segment
    assert not out["starts"][1:100, 0].any()
    filled = status[100:112, 0] == implementation.FILLED
    assert np.all(np.diff(out["P"][100:112, 0, 0, 0][filled]) > 0)  # uncertainty grows while filling
    assert (status[[40, 150, 220], 1] == implementation.REJECTED).all()


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
@MODELS
def test_a_restored_filter_carries_on_exactly(implementation, model):
    times, keypoints, _ = recording(n=80)
    whole = implementation.LiveKeypointFilter(4, **model)
    first = implementation.LiveKeypointFilter(4, **model)
    out_whole, out_split = [], []
    for f in range(80):
        out_whole += whole.push(times[f], keypoints[f])
        if f < 40:
            out_split += first.push(times[f], keypoints[f])
    resumed = implementation.LiveKeypointFilter(4)  # the model comes with the state
    resumed.set_state(first.get_state())
    for f in range(40, 80):
        out_split += resumed.push(times[f], keypoints[f])
    out_whole += whole.flush()
    out_split += resumed.flush()
    assert len(out_whole) == len(out_split) == 80
    for (t1, m1, v1, s1), (t2, m2, v2, s2) in zip(out_whole, out_split, strict=True):
        assert t1 == t2
        np.testing.assert_array_equal(m1, m2)
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(s1, s2)


def test_per_keypoint_api_equals_whole_frames():
    times, keypoints, _ = recording(n=50)
    frames = compiled.LiveKeypointFilter(4, **MODEL)
    single = compiled.LiveKeypointFilter(4, **MODEL)
    for f in range(50):
        expected = frames.push(times[f], keypoints[f])
        got = single.begin_frame(times[f])
        for k in (2, 0, 3):  # any order; keypoint 1 not given: no detection this frame
            single.step(k, *keypoints[f, k])
        got += single.end_frame()
        if not np.isnan(keypoints[f, 1, 0]) and keypoints[f, 1, 2] > MODEL["min_confidence"]:
            continue  # only frames where leaving keypoint 1 out changes nothing are comparable
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_array_equal(a[1][[0, 2, 3]], b[1][[0, 2, 3]])
    x, y, vx, vy, var = single.estimate(0)
    assert np.isfinite([x, y, vx, vy, var]).all()


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
def test_bad_input_is_refused(implementation):
    with pytest.raises(ValueError, match="dim must be"):
        implementation.filter_track(np.arange(3.0), np.zeros((3, 1, 3)), dim=4)
    with pytest.raises(ValueError, match="times must increase"):
        implementation.filter_track(np.array([0.0, 1.0, 1.0]), np.zeros((3, 1, 3)))
    with pytest.raises(ValueError, match=r"\(n, K, 3\)"):
        implementation.filter_track(np.arange(3.0), np.zeros((3, 1, 2)))
    with pytest.raises(ValueError, match="2 times for 3 filtered frames"):
        implementation.rts_smooth(
            np.arange(2.0), implementation.filter_track(np.arange(3.0), np.zeros((3, 1, 3)))
        )
    live = implementation.LiveKeypointFilter(2)
    live.push(1.0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="does not follow"):
        live.push(1.0, np.zeros((2, 3)))
    for bad in ({"measurement_dof": 0.0}, {"measurement_dof": -1.0}, {"measurement_dof": math.nan},
                {"confidence_power": -0.5}, {"confidence_power": math.inf}, {"robust_after": 0}):  # fmt: skip
        with pytest.raises(ValueError, match=next(iter(bad))):
            implementation.filter_track(np.arange(3.0), np.zeros((3, 1, 3)), **bad)
        with pytest.raises(ValueError, match=next(iter(bad))):
            implementation.LiveKeypointFilter(2, **bad)
    with pytest.raises(ValueError, match="state version"):
        live.set_state({**live.get_state(), "version": 1})  # saved before the Student-t update
