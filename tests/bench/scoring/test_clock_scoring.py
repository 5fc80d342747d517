import numpy as np

from kinefuse.bench.scoring.clock_error import score_alignment, true_mapper_skew_ppm
from kinefuse.sim.timing import DeviceClock


def test_perfect_alignment_scores_the_latency_floor_with_no_spread():
    t = np.arange(0, 30, 0.01)
    time_ns = (1_000_000_000 + (t + 0.007) * 1e9).astype(np.int64)
    score = score_alignment(time_ns, t, 1_000_000_000, warmup_s=10.0)
    assert abs(score["median_ms"] - 7.0) < 1e-3
    assert score["p95_spread_ms"] < 1e-3
    assert score["samples"] == np.count_nonzero(t >= 10.0)


def test_spread_measures_the_aligner_error():
    rng = np.random.default_rng(0)
    t = np.arange(0, 60, 0.01)
    time_ns = ((t + rng.normal(0, 0.002, len(t))) * 1e9).astype(np.int64)
    score = score_alignment(time_ns, t, 0, warmup_s=0.0)
    assert 3.5 < score["p95_spread_ms"] < 4.3  # 1.96 sigma of 2 ms


def test_nothing_past_the_warmup_gives_none():
    assert score_alignment(np.zeros(3, dtype=np.int64), np.arange(3.0), 0, 10.0)["median_ms"] is None


def test_true_mapper_skew_is_the_inverse_rate():
    assert abs(true_mapper_skew_ppm(DeviceClock(1e6, 0.0, 40.0)) + 39.9984) < 1e-3
