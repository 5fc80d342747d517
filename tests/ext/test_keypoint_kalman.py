"""The keypoint Kalman kernel: compiled and reference twin agree, both agree with filterpy (the oracle), the
live fixed-lag smoother equals the offline smoother on what it has seen, and the gap policy is honest."""

import numpy as np
import pytest

from kinefuse._ext import keypoint_kalman as compiled
from kinefuse._pure import keypoint_kalman as twin
from kinefuse.bench.kalman import filterpy_track

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
def test_smooth_track_is_filter_track_then_rts_smooth(implementation, dim):
    times, keypoints, _ = recording()
    fused = implementation.smooth_track(times, keypoints, dim=dim, **MODEL)
    filtered = implementation.filter_track(times, keypoints, dim=dim, **MODEL)
    states, covariances = implementation.rts_smooth(times, filtered, dim=dim, q=MODEL["q"])
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
    with pytest.raises(ValueError, match="2 times for 3 filtered frames"):
        implementation.rts_smooth(
            np.arange(2.0), implementation.filter_track(np.arange(3.0), np.zeros((3, 1, 3)))
        )
    live = implementation.LiveKeypointFilter(2)
    live.push(1.0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="does not follow"):
        live.push(1.0, np.zeros((2, 3)))
