"""The keypoint Kalman kernel: compiled and reference twin agree, both agree with filterpy (the oracle), the
live fixed-lag smoother equals the offline smoother on what it has seen, and the gap policy is honest."""

import numpy as np
import pytest
from filterpy.common import Q_continuous_white_noise
from filterpy.kalman import KalmanFilter, rts_smoother

from kinefuse._ext import keypoint_kalman as compiled
from kinefuse._pure import keypoint_kalman as twin

MODEL = {"q": 5.0e4, "r0": 3.0, "min_confidence": 0.05, "gate": 13.8, "max_gap_s": 0.15}


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


@pytest.mark.parametrize("dim", [2, 3])
def test_compiled_and_reference_twin_agree(dim):
    times, keypoints, _ = recording()
    a = compiled.filter_track(times, keypoints, dim=dim, **MODEL)
    b = twin.filter_track(times, keypoints, dim=dim, **MODEL)
    np.testing.assert_array_equal(a["status"], b["status"])
    np.testing.assert_array_equal(a["starts"], b["starts"])
    for key in ("x", "P", "x_pred", "P_pred"):
        assert_close(a[key], b[key])
    for x, y in zip(compiled.rts_smooth(times, a, dim=dim, q=MODEL["q"]),
                    twin.rts_smooth(times, b, dim=dim, q=MODEL["q"]), strict=True):  # fmt: skip
        assert_close(x, y)


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
@pytest.mark.parametrize("dim", [2, 3])
def test_filterpy_gives_the_same_filter_and_rts_smoother(implementation, dim):
    times, keypoints, _ = recording(n=150, K=2, holes=False)
    ours = implementation.filter_track(times, keypoints, dim=dim, **{**MODEL, "gate": 1e12})
    smoothed, smoothed_P = implementation.rts_smooth(times, ours, dim=dim, q=MODEL["q"])
    for k in range(2):
        for axis in range(2):
            x, P, s, sP = _filterpy(times, keypoints[:, k, axis], keypoints[:, k, 2], dim)
            for mine, theirs in ((ours["x"][:, k, axis], x), (ours["P"][:, k], P), (smoothed[:, k, axis], s),
                                 (smoothed_P[:, k], sP)):  # fmt: skip
                assert_close(mine, theirs)


def _filterpy(times, z, confidence, dim):
    kf = KalmanFilter(dim_x=dim, dim_z=1)
    kf.H = np.eye(1, dim)
    xs, Ps, Fs, Qs = [], [], [], []
    for f, t in enumerate(times):
        R = (MODEL["r0"] / confidence[f]) ** 2
        if f == 0:
            kf.x = np.zeros((dim, 1))
            kf.x[0, 0] = z[0]
            kf.P = np.diag([R, 1000.0**2, 2000.0**2][:dim])
        else:
            kf.F, kf.Q = _transition(t - times[f - 1], dim)
            kf.predict()
            kf.update(z[f], R=R)
        xs.append(kf.x[:, 0].copy())
        Ps.append(kf.P.copy())
        F, Q = _transition(times[f + 1] - t if f + 1 < len(times) else 0.03, dim)
        Fs.append(F)
        Qs.append(Q)
    smoothed, smoothed_P, _, _ = rts_smoother(np.array(xs)[..., None], np.array(Ps), Fs, Qs)
    return np.array(xs), np.array(Ps), smoothed[..., 0], smoothed_P


def _transition(dt, dim):
    F = np.array([[1.0, dt, dt * dt / 2], [0.0, 1.0, dt], [0.0, 0.0, 1.0]])[:dim, :dim]
    return F, Q_continuous_white_noise(dim, dt, MODEL["q"])


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
def test_live_fixed_lag_output_is_the_offline_smoother_on_what_had_arrived(implementation):
    times, keypoints, _ = recording(n=120)
    live = implementation.LiveKeypointFilter(4, lag_s=0.1, **MODEL)
    emitted = []
    for f in range(len(times)):
        for t, mean, var, status in live.push(times[f], keypoints[f]):
            frame = int(np.searchsorted(times, t))
            assert times[f] - t >= 0.1 - 1e-12  # emitted once lag_s old
            seen = implementation.filter_track(times[: f + 1], keypoints[: f + 1], **MODEL)
            states, covariances = implementation.rts_smooth(times[: f + 1], seen, q=MODEL["q"])
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
def test_a_restored_filter_carries_on_exactly(implementation):
    times, keypoints, _ = recording(n=80)
    whole = implementation.LiveKeypointFilter(4, **MODEL)
    first = implementation.LiveKeypointFilter(4, **MODEL)
    out_whole, out_split = [], []
    for f in range(80):
        out_whole += whole.push(times[f], keypoints[f])
        if f < 40:
            out_split += first.push(times[f], keypoints[f])
    resumed = implementation.LiveKeypointFilter(4, **MODEL)
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
    live = implementation.LiveKeypointFilter(2)
    live.push(1.0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="does not follow"):
        live.push(1.0, np.zeros((2, 3)))
