import numpy as np
import pytest

from kinefuse.bench.scoring.events import match_events, timing_summary


def test_identical_sequences_match_exactly():
    times = [0.5, 1.6, 2.7, 3.9]
    match = match_events(times, times, 0.05)
    np.testing.assert_array_equal(match.pairs, [[0, 0], [1, 1], [2, 2], [3, 3]])
    np.testing.assert_array_equal(match.errors_s, 0.0)
    assert match.missed.size == 0 and match.extra.size == 0


def test_errors_are_estimated_minus_reference():
    match = match_events([1.01, 1.98], [1.0, 2.0], 0.05)
    np.testing.assert_allclose(match.errors_s, [0.01, -0.02])


def test_out_of_tolerance_is_a_miss_and_an_extra():
    match = match_events([1.0, 2.2, 3.0], [1.0, 2.0, 3.0], 0.1)
    np.testing.assert_array_equal(match.pairs, [[0, 0], [2, 2]])
    np.testing.assert_array_equal(match.missed, [1])
    np.testing.assert_array_equal(match.extra, [1])


def test_tolerance_is_inclusive():
    assert len(match_events([1.25], [1.0], 0.25).pairs) == 1


def test_one_to_one_keeps_the_closest_of_two_candidates():
    # two detections near one reference: the closer one pairs, the other is extra
    match = match_events([0.98, 1.03], [1.0], 0.05)
    np.testing.assert_array_equal(match.pairs, [[0, 0]])
    np.testing.assert_array_equal(match.extra, [1])


def test_matching_maximises_pairs_where_greedy_nearest_would_not():
    # greedy nearest-first pairs 0.09 with 0.05 (0.04 apart) and strands 0.0 and 0.14;
    # the optimum pairs both, each 0.05 apart
    match = match_events([0.0, 0.09], [0.05, 0.14], 0.06)
    np.testing.assert_array_equal(match.pairs, [[0, 0], [1, 1]])
    np.testing.assert_allclose(match.errors_s, [-0.05, -0.05])


def test_unsorted_input_indices_refer_to_the_input_order():
    estimated, reference = [3.02, 1.01, 2.0], [2.0, 3.0, 1.0]
    match = match_events(estimated, reference, 0.1)
    # pairs come in reference time order, with indices into the arrays as given
    np.testing.assert_array_equal(match.pairs, [[1, 2], [2, 0], [0, 1]])
    np.testing.assert_allclose(match.errors_s, [0.01, 0.0, 0.02], atol=1e-12)


def test_long_sequences_with_dropouts():
    rng = np.random.default_rng(0)
    reference = np.arange(1000) * 1.1
    estimated = reference + rng.normal(0.0, 0.01, reference.size)
    keep = np.ones(reference.size, bool)
    keep[::50] = False  # missed detections
    estimated = np.concatenate([estimated[keep], [0.55, 100.5]])  # and two false ones
    match = match_events(estimated, reference, 0.1)
    assert len(match.pairs) == keep.sum()
    np.testing.assert_array_equal(match.missed, np.flatnonzero(~keep))
    np.testing.assert_array_equal(match.extra, [keep.sum(), keep.sum() + 1])


def test_empty_sequences():
    match = match_events([], [1.0, 2.0], 0.1)
    assert match.pairs.shape == (0, 2)
    np.testing.assert_array_equal(match.missed, [0, 1])
    assert timing_summary(match) == {
        "mean_ms": None,
        "sd_ms": None,
        "rmse_ms": None,
        "max_abs_ms": None,
        "matched": 0,
        "missed": 2,
        "extra": 0,
    }


def test_timing_summary_figures():
    match = match_events([1.01, 2.0, 2.98, 5.0], [1.0, 2.01, 3.0, 4.0], 0.05)
    summary = timing_summary(match)
    errors_ms = np.array([10.0, -10.0, -20.0])
    assert summary["matched"] == 3 and summary["missed"] == 1 and summary["extra"] == 1
    assert summary["mean_ms"] == pytest.approx(errors_ms.mean())
    assert summary["sd_ms"] == pytest.approx(errors_ms.std(ddof=1))
    assert summary["rmse_ms"] == pytest.approx(np.sqrt(np.mean(errors_ms**2)))
    assert summary["max_abs_ms"] == pytest.approx(20.0)


def test_single_pair_has_no_sd():
    summary = timing_summary(match_events([1.0], [1.0], 0.1))
    assert summary["matched"] == 1 and summary["sd_ms"] is None and summary["rmse_ms"] == 0.0


@pytest.mark.parametrize(
    ("estimated", "reference", "tolerance", "message"),
    [([1.0], [1.0], -0.1, "tolerance_s must be >= 0"), ([np.nan], [1.0], 0.1, "must be finite")],
)
def test_bad_input_is_reported(estimated, reference, tolerance, message):
    with pytest.raises(ValueError, match=message):
        match_events(estimated, reference, tolerance)
