"""Short fuzz of every decoder (the long one is plugins/ble_imu/tests/fuzz_decoders.py): any input gives a result or
DecodeError, never another exception."""

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinefuse_plugins.ble_imu.protocols.common import DecodeError
from plugins.ble_imu.tests.fuzzing import SEEDS, TARGETS


@st.composite
def mutated(draw, seeds):
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        if data:
            bit = draw(st.integers(0, 8 * len(data) - 1))
            data[bit // 8] ^= 1 << (bit % 8)
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data) + draw(st.binary(max_size=8))


@pytest.mark.parametrize("target", list(TARGETS))
def test_decoder_raises_only_decode_error(target):
    @settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(st.binary(max_size=300), mutated(SEEDS[target])))
    def fuzz(data):
        with contextlib.suppress(DecodeError):
            TARGETS[target](data)

    fuzz()
