"""The compiled clock_map kernel and its pure-Python twin must agree exactly, sample by sample."""

import numpy as np
import pytest

from kinefuse._ext import clock_map as compiled
from kinefuse._pure import clock_map as pure

IMPLS = [compiled, pure]
OPTION_SETS = [
    {},
    {"forgetting": 1.0, "leak_per_s": 0.0, "warmup": 0},
    {"forgetting": 0.9, "block_s": 0.25, "leak_per_s": 2e-3, "gate": 3.0, "warmup": 7},
]


def _hostile_stream(seed: int, n: int = 30_000) -> tuple[np.ndarray, np.ndarray]:
    """200 Hz on a us clock: skew, offset, jitter, batches of 1..8, spikes, a latency step, a host suspend,
    corrupt and out-of-order device stamps, and a NaN."""
    rng = np.random.default_rng(seed)
    ticks = 7.3e11 + np.arange(n) * 5000.0
    true_ns = 5e15 + (1 + 73e-6) * ticks * 1e3
    ends = np.cumsum(rng.integers(1, 9, size=n))
    ends = np.append(ends[ends < n], n)
    latency = 3e6 + rng.exponential(6e6, ends.size) + (rng.random(ends.size) < 0.02) * 250e6
    arrival = np.round(true_ns[ends - 1] + latency).astype(np.int64)
    host = np.repeat(arrival, np.diff(ends, prepend=0))
    host[n // 3 :] += 15_000_000  # the latency floor steps up
    host[2 * n // 3 :] -= 4_000_000_000  # the host slept 4 s
    ticks[rng.choice(n, 20, replace=False)] += rng.normal(0, 1e7, 20)  # corrupt device stamps
    ticks[[101, 102]] = ticks[[102, 101]]
    ticks[5000] = np.nan
    return ticks, host


def _run_batches(mapper, ticks, host, size=37):
    return np.concatenate(
        [mapper.update_batch(ticks[i : i + size], host[i : i + size]) for i in range(0, len(ticks), size)]
    )


def _run_per_sample(mapper, ticks, host):
    return np.array(
        [mapper.update(t, h) for t, h in zip(ticks.tolist(), host.tolist(), strict=True)], dtype=np.int64
    )


def _summary(mapper):
    return (
        mapper.get_state(),
        mapper.skew_ppm,
        mapper.offset_ns,
        mapper.count,
        mapper.rejected,
        mapper.clamped,
    )


@pytest.mark.parametrize("options", OPTION_SETS)
def test_compiled_and_twin_agree_per_sample_and_in_batches(options):
    ticks, host = _hostile_stream(1)
    results, summaries = [], []
    for impl in IMPLS:
        for run in (_run_batches, _run_per_sample):
            mapper = impl.ClockMapper(1e6, **options)
            results.append(run(mapper, ticks, host))
            summaries.append(_summary(mapper))
    for other in results[1:]:
        assert np.array_equal(results[0], other)
    assert all(s == summaries[0] for s in summaries[1:])
    assert summaries[0][4] > 0 and summaries[0][5] > 0  # the stream did exercise the gate and the clamp


@pytest.mark.parametrize(("first", "second"), [(compiled, compiled), (compiled, pure), (pure, compiled)])
def test_restored_mapper_continues_bit_identically(first, second):
    ticks, host = _hostile_stream(2)
    whole = compiled.ClockMapper(1e6)
    expected = whole.update_batch(ticks, host)
    half = len(ticks) // 2 + 3
    before = first.ClockMapper(1e6)
    head = before.update_batch(ticks[:half], host[:half])
    after = second.ClockMapper(1e6)
    after.set_state(before.get_state())
    tail = after.update_batch(ticks[half:], host[half:])
    assert np.array_equal(np.concatenate([head, tail]), expected)
    assert after.get_state() == whole.get_state()


def test_map_agrees_without_learning():
    ticks, host = _hostile_stream(3, n=8000)
    mappers = [impl.ClockMapper(1e6) for impl in IMPLS]
    for m in mappers:
        m.update_batch(ticks, host)
    probes = [0.0, ticks[0], ticks[-1] + 123.0, 1e13, -5e12]
    assert [mappers[0].map(p) for p in probes] == [mappers[1].map(p) for p in probes]
    assert mappers[0].offset_ns == mappers[1].offset_ns == mappers[0].map(0.0)
    assert mappers[0].get_state() == mappers[1].get_state()  # map learnt nothing


@pytest.mark.parametrize("impl", IMPLS)
def test_both_reject_the_same_bad_input(impl):
    with pytest.raises(ValueError, match="clock_hz"):
        impl.ClockMapper(0.0)
    with pytest.raises(ValueError, match="forgetting"):
        impl.ClockMapper(1e6, forgetting=1.5)
    mapper = impl.ClockMapper(1e6)
    with pytest.raises(ValueError, match="no sample yet"):
        mapper.map(0.0)
    assert mapper.offset_ns is None
    with pytest.raises(ValueError, match="equal length"):
        mapper.update_batch(np.zeros(3), np.zeros(2, dtype=np.int64))
    with pytest.raises(TypeError):
        mapper.update(1.0, 2.5)
    with pytest.raises(ValueError, match="Hz clock"):
        mapper.set_state(impl.ClockMapper(1e3).get_state())
    with pytest.raises(ValueError, match="state"):
        mapper.set_state((99,) + mapper.get_state()[1:])
