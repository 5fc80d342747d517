import numpy as np

from kinefuse.builtin.processors.sequence_gaps import SequenceGaps
from kinefuse.types import imu_batch


def batch(seq):
    n = len(seq)
    b = imu_batch("s", "imu0", seq, np.arange(n), np.arange(n) * 10, np.zeros((n, 3)), np.zeros((n, 3)))
    return b


def test_gaps_inside_and_between_batches_are_reported_once_each():
    gaps = SequenceGaps({}, "gaps")
    first = gaps.process(batch([0, 1, 2, 5, 6]))
    second = gaps.process(batch([9, 10]))
    third = gaps.process(batch([11, 12]))
    assert [(e.detail["after_seq"], e.detail["missing"]) for e in first] == [(2, 2)]
    assert first[0].time_ns == 30  # stamped at the first sample after the gap
    assert [(e.detail["after_seq"], e.detail["missing"]) for e in second] == [(6, 2)]
    assert second[0].time_ns == 0
    assert third == [] and gaps.flush() == []
    assert first[0].kind == "sample_gap" and first[0].processor == "gaps"
