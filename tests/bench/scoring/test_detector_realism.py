"""The detector-realism statistics on tracks built to a known answer, the demo's twin, the rows, and the fit's
parts on data drawn from known laws."""

import asyncio
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kinefuse.bench import check_row
from kinefuse.bench.scoring import detector_fit
from kinefuse.bench.scoring import detector_realism as realism
from kinefuse.camera_calibration import project
from kinefuse.sim.camera_rig import ring
from kinefuse.sim.detector_model import KEYPOINT_SETS, DetectorErrors, JointOffsets
from kinefuse.sim.scenario import apply_overrides, load_scenario

NAMES = KEYPOINT_SETS["COCO-17"].keypoints
SCENARIOS = sorted((Path(__file__).resolve().parents[3] / "scenarios").glob("*.toml"))
# four cameras around the twin's place, as the demo's stand (portrait, 1680 px focal length)
CAMS = ring(4, 3.5, 1.8, (*realism.TWIN_ORIGIN_XY, 0.9), (1088, 1920), 1680.0, start_deg=20.0)


def track_of(xy, confidence=0.9):
    """(n, K, 3) from positions (n, K, 2) and a confidence (scalar or (n, K))."""
    xy = np.asarray(xy, dtype=np.float64)
    conf = np.broadcast_to(np.asarray(confidence, dtype=np.float64), xy.shape[:2])
    return np.concatenate([xy, conf[..., None]], axis=-1)


def test_quadratic_weights_are_savitzky_and_golay_s():
    # Savitzky & Golay, Anal. Chem. 36 (1964), Table I (quadratic/cubic smoothing): 9 and 15 points
    np.testing.assert_allclose(
        realism.quadratic_weights(9) * 231, [-21, 14, 39, 54, 59, 54, 39, 14, -21], atol=1e-9
    )
    fifteen = [-78, -13, 42, 87, 122, 147, 162, 167, 162, 147, 122, 87, 42, -13, -78]
    np.testing.assert_allclose(realism.quadratic_weights(15) * 1105, fifteen, atol=1e-9)
    for window in (2, 8):
        with pytest.raises(ValueError, match="odd"):
            realism.quadratic_weights(window)


def test_a_quadratic_path_leaves_nothing_and_a_spike_leaves_the_filter_s_weights():
    t = np.arange(40, dtype=np.float64)
    path = np.stack([3 + 2 * t + 0.5 * t**2, 700 - 4 * t - 0.25 * t**2], axis=-1)[:, None]  # (40, 1, 2)
    residual = realism.quadratic_residuals(track_of(path))
    assert np.isnan(residual[:4]).all() and np.isnan(residual[-4:]).all()
    np.testing.assert_allclose(residual[4:-4], 0.0, atol=1e-8)
    spike = np.full((40, 1, 2), 50.0)
    spike[20, 0, 0] += 10.0
    residual = realism.quadratic_residuals(track_of(spike))[:, 0, 0]
    weights = realism.quadratic_weights(9)
    expected = np.zeros(40)
    expected[16:25] = -10.0 * weights[::-1]
    expected[20] += 10.0
    np.testing.assert_allclose(residual[4:-4], expected[4:-4], atol=1e-9)
    assert residual[20] == pytest.approx(10.0 * (1 - 59 / 231))


def test_an_unconfident_or_missing_frame_blanks_every_window_it_touches():
    xy = np.random.default_rng(0).normal(100.0, 2.0, (40, 2, 2))
    confidence = np.full((40, 2), 0.9)
    confidence[20, 0] = 0.2
    xy[30, 1] = np.nan
    residual = realism.quadratic_residuals(track_of(xy, confidence))
    blank = np.zeros((40, 2), dtype=bool)
    blank[:4], blank[-4:] = True, True
    blank[16:25, 0], blank[26:35, 1] = True, True
    np.testing.assert_array_equal(np.isnan(residual).any(axis=-1), blank)
    assert np.isnan(residual).any(axis=-1).tolist() == np.isnan(residual).all(axis=-1).tolist()
    everything = realism.quadratic_residuals(track_of(xy, confidence), min_confidence=0.0)
    assert np.isfinite(everything[16:25, 0]).all()  # confidence 0.2 > 0 counts then


def filter_autocorrelation() -> float:
    """Lag-1 autocorrelation of independent noise through the residual filter: Σ g_i g_(i+1) / Σ g_i²."""
    g = -realism.quadratic_weights(9)
    g[4] += 1.0
    return float(np.sum(g[:-1] * g[1:]) / np.sum(g * g))


@pytest.mark.parametrize("law", ["gauss", "t3"])
def test_independent_noise_gives_the_filter_s_own_autocorrelation_and_gain(law):
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((4000, 3, 2)) if law == "gauss" else rng.standard_t(3.0, (4000, 3, 2))
    sigma = 1.0 if law == "gauss" else np.sqrt(3.0)  # t(3) has variance 3
    residual = realism.quadratic_residuals(track_of(200.0 + noise))
    assert filter_autocorrelation() == pytest.approx(-0.349, abs=5e-4)
    # 24 000 pairs: the estimate's standard error is below 0.01
    assert realism.lag1_autocorrelation([residual]) == pytest.approx(filter_autocorrelation(), abs=0.03)
    gain = np.sqrt(np.nanmean(residual**2)) / sigma
    assert gain == pytest.approx(np.sqrt(1 - 59 / 231), rel=0.04 if law == "gauss" else 0.1)


def test_noise_that_persists_raises_the_autocorrelation():
    rng = np.random.default_rng(2)
    persistent = np.zeros((4000, 3, 2))
    for i in range(1, 4000):
        persistent[i] = 0.6 * persistent[i - 1] + rng.standard_normal((3, 2))
    residual = realism.quadratic_residuals(track_of(persistent))
    assert realism.lag1_autocorrelation([residual]) > filter_autocorrelation() + 0.15


def test_lag1_autocorrelation_of_constructed_series():
    assert realism.lag1_autocorrelation([np.ones((10, 1, 2))]) == pytest.approx(1.0)
    alternating = np.array([1.0, -1.0] * 5)[:, None, None] * np.ones((1, 1, 2))
    assert realism.lag1_autocorrelation([alternating]) == pytest.approx(-1.0)
    # pairs with a NaN are left out: only (2, 2) and (2, 1) remain
    series = np.array([3.0, np.nan, 2.0, 2.0, 1.0])[:, None, None]
    assert realism.lag1_autocorrelation([series]) == pytest.approx(6 / np.sqrt(8 * 5))
    assert np.isnan(realism.lag1_autocorrelation([np.full((5, 1, 1), np.nan)]))


def test_jitter_statistics_pool_the_views_each_by_its_size():
    signs = np.where(np.arange(100) % 2, -1.0, 1.0)
    first = (np.arange(1.0, 101.0) * signs).reshape(50, 1, 2)  # |values| 1..100, size 10
    second = np.full((20, 1, 2), np.nan)  # nothing finite: adds nothing
    out = realism.jitter_statistics([first, second], [10.0, 3.0])
    values = np.arange(1.0, 101.0) / 10.0
    assert out["median"] == pytest.approx(5.05)
    assert out["p90"] == pytest.approx(np.percentile(values, 90))
    assert out["p99"] == pytest.approx(np.percentile(values, 99))
    assert out["rms"] == pytest.approx(np.sqrt(100 * 101 * 201 / 6 / 100) / 10)
    scaled = realism.jitter_statistics([first, first * 2.0], [10.0, 20.0])  # twice the size: the same
    assert scaled == pytest.approx(out)
    assert all(np.isnan(v) for v in realism.jitter_statistics([second], [1.0]).values())


def test_torso_length_is_the_median_over_frames_where_all_four_are_confident():
    lengths = [200.0] * 7 + [260.0] * 4 + [1000.0]
    xy = np.zeros((len(lengths), 17, 2))
    confidence = np.full((len(lengths), 17), 0.9)
    for frame, length in enumerate(lengths):
        xy[frame, NAMES.index("left_shoulder")] = (80.0, 100.0)
        xy[frame, NAMES.index("right_shoulder")] = (120.0, 100.0)
        xy[frame, NAMES.index("left_hip")] = (90.0, 100.0 + length)
        xy[frame, NAMES.index("right_hip")] = (110.0, 100.0 + length)
    confidence[-1, NAMES.index("left_hip")] = 0.1  # the 1000 px frame does not count
    assert realism.torso_length_px(track_of(xy, confidence)) == pytest.approx(200.0)
    confidence[:, NAMES.index("right_shoulder")] = 0.0
    assert np.isnan(realism.torso_length_px(track_of(xy, confidence)))


def test_low_confidence_fraction_counts_missing_keypoints_as_low():
    confidence = np.array([0.9] * 7 + [0.3, 0.1, np.nan])[:, None]
    assert realism.low_confidence_fraction([track_of(np.zeros((10, 1, 2)), confidence)]) == pytest.approx(0.3)


def figure_points(n: int) -> np.ndarray:
    """(n, 17, 3) world points of a person standing at the twin's place, swaying a little."""
    from kinefuse.sim.body import Body, BodyShape
    from kinefuse.sim.motions import make_motion

    shape = BodyShape(1.7)
    body = Body(shape, make_motion("single_leg_balance", shape), realism.TWIN_ORIGIN_XY)
    landmarks = body.landmarks(np.arange(n) / 60.0)
    return np.stack([landmarks[name] for name in NAMES], axis=1)


def test_view_offsets_find_a_known_offset_against_exact_other_views():
    points = figure_points(30)
    tracks = [track_of(project(cam, points)) for cam in CAMS]
    tracks[2][:, 5, :2] += (7.0, -3.0)
    differences, medians = realism.view_offsets(CAMS, tracks)
    assert differences.shape == (4, 30, 17, 2) and medians.shape == (4, 17, 2)
    np.testing.assert_allclose(medians[2, 5], (7.0, -3.0), atol=1e-6)
    untouched = np.ones((4, 17), dtype=bool)
    untouched[:, 5] = False  # the other views' reference for keypoint 5 carries view 2's offset
    np.testing.assert_allclose(medians[untouched], 0.0, atol=1e-6)
    assert np.abs(medians[[0, 1, 3], 5]).max() > 0.1
    # fewer than MIN_OFFSET_FRAMES confident frames: no median
    tracks[0][realism.MIN_OFFSET_FRAMES - 1 :, 0, 2] = 0.1
    _, medians = realism.view_offsets(CAMS, tracks)
    assert np.isnan(medians[0, 0]).all() and np.isfinite(medians[0, 1]).all()


def test_group_rms_pools_views_and_joints_of_each_group():
    medians = np.full((2, 17, 2), np.nan)
    head = [NAMES.index(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    medians[0, head] = (3.0, 4.0)  # size 100
    medians[1, head] = (6.0, 8.0)  # size 200: the same in torso lengths
    medians[0, NAMES.index("left_knee")] = (-10.0, 0.0)
    out = realism.group_rms(medians, [100.0, 200.0], NAMES)
    assert out["head"] == pytest.approx(np.sqrt((0.03**2 + 0.04**2) / 2))
    assert out["knees"] == pytest.approx(np.sqrt(0.1**2 / 2))
    assert "wrists" not in out
    assert out["all"] == pytest.approx(np.sqrt((20 * (0.03**2 + 0.04**2) / 2 + 0.01) / 22))


def test_slow_error_passes_slow_wander_and_damps_white_noise():
    n = 1200
    t = np.arange(n)
    wander = 5.0 + np.sin(2 * np.pi * t / 200.0)  # whole periods about 5: the median is 5
    differences = np.stack([wander, -wander], axis=-1)[None, :, None, :]  # (1 view, n, 1 keypoint, 2)
    medians = np.array([[[5.0, -5.0]]])
    assert realism.slow_error(differences, medians) == pytest.approx(1 / np.sqrt(2), rel=0.01)
    noise = np.random.default_rng(3).standard_normal((1, 20000, 1, 2))
    expected = np.sqrt(np.sum(realism.quadratic_weights(15) ** 2))  # the smoother's gain on white noise
    assert realism.slow_error(noise, np.zeros((1, 1, 2))) == pytest.approx(expected, rel=0.03)


def test_persistence_of_a_known_autoregression():
    rng = np.random.default_rng(4)
    series = np.zeros((20000, 2, 2))
    for i in range(1, len(series)):
        series[i] = 0.9 * series[i - 1] + rng.standard_normal((2, 2))
    differences = (series + 3.0)[None]
    medians = np.full((1, 2, 2), 3.0)
    for lag in realism.PERSISTENCE_LAGS:
        value = realism.difference_autocorrelation(differences, medians, lag)
        assert value == pytest.approx(0.9**lag, abs=0.04), lag


def test_the_twin_without_errors_measures_no_error():
    tracks = realism.synthetic_tracks(CAMS, DetectorErrors())
    assert len(tracks) == 4 and tracks[0].shape == (realism.TWIN_FRAMES, 17, 3)
    measured = realism.measure(CAMS, tracks)
    # the balance's own motion, nearly quadratic over 9 frames (1.4e-3 at the 99th percentile since the body
    # tilts as one pendulum): under a quarter of the jitter measured on the real demo (0.019 median)
    assert measured["jitter"]["p99"] < 5e-3
    assert measured["offsets"]["all"] < 1e-6 and measured["low_confidence"] == 0.0
    assert min(measured["torso_px"]) > 150 and max(measured["torso_px"]) < 350  # the demo's 229..278


def test_the_twin_with_errors_measures_them():
    jitter = realism.measure(
        CAMS, realism.synthetic_tracks(CAMS, DetectorErrors(jitter_scale=0.02, jitter_dof=50.0))
    )
    # nearly Gaussian σ = 0.02 torso (at the torso's depth): the residual's median is 0.674 · 0.863 σ
    assert jitter["jitter"]["median"] == pytest.approx(0.674 * np.sqrt(1 - 59 / 231) * 0.02, rel=0.1)
    assert jitter["lag1"] == pytest.approx(filter_autocorrelation(), abs=0.03)
    offsets = DetectorErrors(offsets=JointOffsets(head=0.05, feet=0.05), offset_seed=3)
    measured = realism.measure(CAMS, realism.synthetic_tracks(CAMS, offsets))
    assert measured["offsets"]["head"] > 0.02 and measured["offsets"]["feet"] > 0.02
    assert measured["offsets"]["knees"] < measured["offsets"]["head"] / 3  # only the others' reference error


def test_rows_are_valid_and_carry_both_sides():
    synthetic = realism.measure(CAMS, realism.synthetic_tracks(CAMS, realism.FITTED))
    real = realism.measure(CAMS, realism.synthetic_tracks(CAMS, realism.FITTED, seed=5))  # a stand-in
    rows = realism.realism_rows(synthetic, real, "fused")
    assert len({row["metric"] for row in rows}) == len(rows) == 22
    for row in rows:
        check_row(row)
        assert row["peer"] == realism.PEER and "int8" in row["note"] and "fused" in row["note"]
    by_metric = {row["metric"]: row for row in rows}
    assert by_metric["jitter median, confidence > 0.3"]["value"] == synthetic["jitter"]["median"]
    assert by_metric["jitter RMS, every keypoint"]["peer_value"] == real["jitter_all"]["rms"]
    assert by_metric["offset against the other views: head"]["peer_value"] == real["offsets"]["head"]
    assert (
        by_metric["error against the other views: autocorrelation at 5 frames"]["value"]
        == synthetic["persistence"][5]
    )


def test_no_demo_no_rows(tmp_path):
    assert realism.real_tracks(tmp_path) is None and realism.rows(tmp_path, None) == []


def test_fit_confidence_recovers_a_beta_law():
    mean, spread = 0.7, 0.2
    k = mean * (1 - mean) / spread**2 - 1
    conf = stats.beta(mean * k, (1 - mean) * k).rvs((1000, 17), random_state=5)
    fit = detector_fit.fit_confidence([track_of(np.zeros((1000, 17, 2)), conf)])
    for key in ("matched", "likelihood"):
        assert fit[key] == pytest.approx((mean, spread), abs=0.01), key


def test_fit_jitter_recovers_the_law_it_was_drawn_from(monkeypatch):
    """Noise drawn with the model's law on Beta confidences: the indirect inference gives back the
    parameters to within what 4 x 250 frames of 17 keypoints allow (ν and its fall with confidence trade
    off against each other)."""
    monkeypatch.setattr(detector_fit, "REPEATS", 2)
    monkeypatch.setattr(detector_fit, "OPTIMISER", {"xatol": 1e-2, "fatol": 1e-4})
    truth = {"scale": 0.02, "dof": 4.0, "power": 0.7, "tail_power": 0.8}
    rng = np.random.default_rng(6)
    tracks, sizes = [], [250.0, 220.0, 240.0, 270.0]
    for size in sizes:
        conf = rng.beta(0.7 * 4.5, 0.3 * 4.5, (250, 17))
        floored = np.maximum(conf, 0.1)[..., None]
        unit = stats.t(truth["dof"] * floored ** truth["tail_power"]).rvs((250, 17, 2), random_state=rng)
        tracks.append(track_of(truth["scale"] * size * floored ** -truth["power"] * unit, conf))
    fit = detector_fit.fit_jitter(tracks, sizes)
    assert fit["scale"] == pytest.approx(truth["scale"], rel=0.15)
    assert fit["dof"] == pytest.approx(truth["dof"], rel=0.4)
    assert fit["power"] == pytest.approx(truth["power"], abs=0.2)
    assert fit["tail_power"] == pytest.approx(truth["tail_power"], abs=0.35)
    assert fit["loss"] < fit["start_loss"]


def test_what_the_fit_prints_is_a_scenario_s_detector_table(tmp_path):
    scenario = tmp_path / "fit.toml"
    scenario.write_text(
        '[scenario]\nname = "fit"\n[[cameras]]\nname = "c"\nposition = [3.0, 0.0, 1.0]\n'
        f"target = [0.0, 0.0, 0.9]\n{detector_fit.toml(realism.FITTED)}\n"
    )
    assert apply_overrides(DetectorErrors(), load_scenario(scenario).cameras[0]["detector"]) == realism.FITTED


def test_the_int8_path_is_read_from_anywhere_in_the_device_meta():
    meta = {
        "path": "cam01.mp4",
        "pose_runtime": {"int8_path": "fused"},
        "detector_runtime": {"int8_path": "x"},
    }
    assert realism._int8_paths(meta) == {"fused", "x"}
    assert realism._int8_paths({"int8_path": "precise"}) == {"precise"} and realism._int8_paths([]) == set()


def test_the_real_side_runs_from_inside_an_event_loop_too(tmp_path):
    async def inside():
        return realism.real_tracks(tmp_path), await realism.real_tracks_async(tmp_path)

    assert asyncio.run(inside()) == (None, None)
