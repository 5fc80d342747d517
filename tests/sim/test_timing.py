import numpy as np
import pytest

from kinefuse.sim.timing import DeviceClock, Link, deliver


def test_device_clock_has_offset_and_skew():
    clock = DeviceClock(hz=1e6, offset_s=12.5, skew_ppm=40.0)
    ticks = clock.ticks(np.array([0.0, 100.0]))
    assert ticks[0] == 12_500_000
    assert ticks[1] - ticks[0] == 100_004_000  # 100 s run 40 ppm fast


def test_perfect_link_delivers_everything_at_once():
    t = np.arange(100) / 100.0
    delivery = deliver(t, Link(), np.random.default_rng(0))
    assert delivery.kept.all() and np.array_equal(delivery.arrival_s, t)


def test_batching_waits_for_the_last_sample_and_loses_whole_notifications():
    t = np.arange(10_000) / 100.0
    delivery = deliver(
        t, Link(batch=5, loss=0.1, latency_min_s=0.007, latency_jitter_s=0.01), np.random.default_rng(1)
    )
    arrival = delivery.arrival_s.reshape(-1, 5)
    assert (arrival == arrival[:, :1]).all()  # one notification, one arrival
    assert (arrival[:, 0] >= t.reshape(-1, 5)[:, -1] + 0.007).all()
    assert (np.diff(delivery.arrival_s) >= 0).all()
    kept = delivery.kept.reshape(-1, 5)
    assert (kept == kept[:, :1]).all()
    assert 0.08 < 1 - delivery.kept.mean() < 0.12


def test_bad_link_is_refused():
    with pytest.raises(ValueError, match="batch"):
        deliver(np.arange(3.0), Link(batch=0), np.random.default_rng(0))
