"""The One Euro filter: compiled and twin are bit-identical; it holds still when the input does, and
follows fast motion more closely as beta grows (Casiez et al. 2012), heavy-tailed noise's spikes too."""

import numpy as np
import pytest

from kinefuse._ext import one_euro as compiled
from kinefuse._pure import one_euro as twin


def signal(n=500, seed=0):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.01, 0.04, n))
    truth = np.column_stack([np.where(times > 5, 100.0, 0.0), 50 * np.sin(3 * times)])
    noisy = truth + rng.normal(0, 2.0, truth.shape)
    noisy[rng.random(noisy.shape) < 0.05] = np.nan
    return times, truth, noisy


def test_compiled_and_twin_are_bit_identical():
    times, _, noisy = signal()
    a = compiled.OneEuroFilter(2, 1.0, 0.05, 1.0).filter_batch(times, noisy)
    b = twin.OneEuroFilter(2, 1.0, 0.05, 1.0).filter_batch(times, noisy)
    np.testing.assert_array_equal(a, b)
    single = compiled.OneEuroFilter(2, 1.0, 0.05, 1.0)
    per_sample = [
        [single.filter_one(c, t, row[c]) for c in range(2)] for t, row in zip(times, noisy, strict=True)
    ]
    np.testing.assert_array_equal(np.array(per_sample), a)


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
def test_still_input_stays_still_and_noise_is_reduced(implementation):
    rng = np.random.default_rng(1)
    times = np.arange(300) / 30.0
    noisy = 10.0 + rng.normal(0, 2.0, (300, 1))
    out = implementation.OneEuroFilter(1, min_cutoff=1.0, beta=0.0).filter_batch(times, noisy)
    assert np.std(out[100:]) < 0.5 * np.std(noisy[100:])
    assert abs(np.mean(out[100:]) - 10.0) < 0.5


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
def test_more_beta_follows_a_step_faster(implementation):
    times = np.arange(200) / 30.0
    step = np.where(times > 2, 100.0, 0.0)[:, None]
    lagging = implementation.OneEuroFilter(1, min_cutoff=0.5, beta=0.0).filter_batch(times, step)
    quick = implementation.OneEuroFilter(1, min_cutoff=0.5, beta=0.5).filter_batch(times, step)
    after = times > 2.05
    assert np.all(quick[after] >= lagging[after] - 1e-9)
    assert quick[np.argmax(after) + 3, 0] > 80 > lagging[np.argmax(after) + 3, 0]


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
def test_nan_is_skipped_and_state_resumes(implementation):
    times, _, noisy = signal(n=100)
    whole = implementation.OneEuroFilter(2).filter_batch(times, noisy)
    first = implementation.OneEuroFilter(2)
    head = first.filter_batch(times[:50], noisy[:50])
    second = implementation.OneEuroFilter(2)
    second.set_state(first.get_state())
    np.testing.assert_array_equal(np.vstack([head, second.filter_batch(times[50:], noisy[50:])]), whole)
    assert np.array_equal(np.isnan(whole), np.isnan(noisy))
    with pytest.raises(ValueError, match="does not follow"):
        second.filter_one(0, 0.0, 1.0)


@pytest.mark.parametrize("implementation", [compiled, twin], ids=["compiled", "twin"])
def test_heavy_tailed_noise_opens_a_speed_adaptive_filter(implementation):
    # a still signal under Student-t noise (2 degrees of freedom): the spikes read as speed, so beta raises
    # the cutoff and lets them through (over seeds 0-4: beta 0.1 leaves 1.3-1.6 times the noise beta 0
    # leaves): why OneEuroKeypoints keeps beta small against a detector's heavy-tailed jitter
    rng = np.random.default_rng(0)
    times = np.arange(600) / 30.0
    noisy = 10.0 + 2.0 * rng.standard_t(2.0, (600, 1))

    def left(beta):
        out = implementation.OneEuroFilter(1, min_cutoff=5.0, beta=beta).filter_batch(times, noisy)
        return np.sqrt(np.mean((out[30:] - 10.0) ** 2) / np.mean((noisy[30:] - 10.0) ** 2))

    assert left(0.0) < 0.7
    assert left(0.1) > 1.2 * left(0.0)
