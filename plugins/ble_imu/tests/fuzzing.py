"""Fuzz targets for the BLE protocol decoders, shared by the short in-test fuzz and fuzz_decoders.py.

Each target takes arbitrary bytes and may only return or raise DecodeError; its seeds are valid inputs that
the mutators (bit flips, truncation, extension) start from.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable

import numpy as np

from kinefuse_plugins.ble_imu.protocols import open_profile, polar_pmd, witmotion
from kinefuse_plugins.ble_imu.protocols.common import DecodeError
from kinefuse_plugins.ble_imu.protocols.polar_pmd import MeasurementType, PmdSettings, SettingType

# The first input byte picks the Polar settings in force (its low 3 bits, so the fuzzer explores every
# resolution) and the stream's previous frame (its high 5 bits: 0 none, 31 one stamped after this frame, k
# one stamped k x 2.5 ms before it), so both of the SDK's sample time rules and their refusals are explored.
POLAR_RESOLUTIONS = (8, 12, 16, 22, 24, 32)
_POLAR_PREVIOUS_STEP_NS = 2_500_000


def _polar_settings(resolution: int) -> dict[int, PmdSettings]:
    return {
        MeasurementType.ACC: PmdSettings(52, resolution),
        MeasurementType.GYRO: PmdSettings(52, resolution, factor=0.061),
        MeasurementType.MAG: PmdSettings(50, resolution, channels=4),
    }


_POLAR_SETTINGS = [_polar_settings(r) for r in POLAR_RESOLUTIONS]


def _polar_frame_times(choice: int, frame: bytes) -> polar_pmd.FrameTimes:
    times = polar_pmd.FrameTimes()
    with contextlib.suppress(DecodeError):  # no header: decode itself says so
        header = polar_pmd.parse_header(frame)
        if choice:
            offset = 1_000_000 if choice == 31 else -choice * _POLAR_PREVIOUS_STEP_NS
            previous = min(max(header.timestamp_ns + offset, 0), 2**63 - 1)
            times.advance(dataclasses.replace(header, timestamp_ns=previous))
    return times


def _polar_data(data: bytes) -> object:
    if not data:
        return None
    settings = _POLAR_SETTINGS[(data[0] & 7) % len(_POLAR_SETTINGS)]
    return polar_pmd.decode(data[1:], settings, _polar_frame_times(data[0] >> 3, data[1:]))


def _polar_control(data: bytes) -> object:
    parse = polar_pmd.parse_control_response if data[:1] == b"\xf0" else polar_pmd.parse_request
    return parse(data)


def _open_profile(data: bytes) -> object:
    return open_profile.decode(data, 32768.0, previous_ticks=2**32 - 5)


def _open_profile_control(data: bytes) -> object:
    parse = open_profile.decode_info if len(data) == 15 else open_profile.parse_command
    return parse(data)


TARGETS: dict[str, Callable[[bytes], object]] = {
    "witmotion": witmotion.decode,
    "witmotion_command": witmotion.parse_rate_command,
    "polar_data": _polar_data,
    "polar_control": _polar_control,
    "open_profile": _open_profile,
    "open_profile_control": _open_profile_control,
}


def _ramp(n: int, channels: int, scale: int) -> np.ndarray:
    rng = np.random.default_rng(n * 31 + channels)
    return np.cumsum(rng.integers(-scale, scale + 1, size=(n, channels)), axis=0)


def _polar_seeds() -> list[bytes]:
    seeds = []
    for variant, resolution in enumerate(POLAR_RESOLUTIONS):
        limit = 1 << (resolution - 2)
        samples = np.clip(_ramp(20, 3, 40), -limit, limit)
        for measurement in (MeasurementType.ACC, MeasurementType.GYRO):
            frame = polar_pmd.encode_frame(measurement, 10**18, samples, 0x80, resolution, block_samples=7)
            seeds.append(bytes([variant]) + frame)
        mag = polar_pmd.encode_frame(
            MeasurementType.MAG, 10**18, np.clip(_ramp(9, 4, 5), -60, 60), 0x81, resolution
        )
        seeds.append(bytes([variant | 8 * 7]) + mag)  # with a previous frame 17.5 ms earlier
        mag = polar_pmd.encode_frame(MeasurementType.MAG, 10**18, np.clip(samples, -60, 60), 0x80, resolution)
        seeds.append(bytes([variant]) + mag)
    for frame_type in (0, 1, 2):
        frame = polar_pmd.encode_frame(
            MeasurementType.ACC, 5 * 10**17, np.clip(_ramp(10, 3, 9), -100, 100), frame_type
        )
        seeds.append(b"\x02" + frame)
    return seeds


def _open_profile_seeds() -> list[bytes]:
    rng = np.random.default_rng(7)
    acc, gyr, mag = (rng.uniform(-2, 2, (6, 3)) for _ in range(3))
    return [
        open_profile.encode(65535, 2**32 - 3, 328, acc, gyr * 100),
        open_profile.encode(12, 1000, 100, acc[:1], gyr[:1], mag[:1] * 40, clock_restarted=True),
    ]


SEEDS: dict[str, list[bytes]] = {
    "witmotion": [
        witmotion.encode(np.ones((k, 3)), np.full((k, 3), 250.0), np.zeros((k, 3))) for k in (1, 2, 3)
    ],
    "witmotion_command": [*witmotion.rate_commands(100), witmotion.register_write(0x02, 0x1E)],
    "polar_data": _polar_seeds(),
    "polar_control": [
        polar_pmd.start_request(
            MeasurementType.ACC, {SettingType.SAMPLE_RATE: 52, SettingType.RESOLUTION: 16}
        ),
        polar_pmd.get_settings_request(MeasurementType.GYRO),
        polar_pmd.stop_request(MeasurementType.MAG),
        polar_pmd.encode_settings_response(
            MeasurementType.ACC,
            {SettingType.SAMPLE_RATE: (26, 52, 104), SettingType.RANGE_MILLIUNIT: (8000,)},
        ),
        polar_pmd.encode_settings_response(
            MeasurementType.GYRO, {SettingType.FACTOR: (0.061,)}, polar_pmd.ControlOp.START
        ),
        polar_pmd.encode_control_response(
            polar_pmd.ControlOp.START, 2, polar_pmd.ResponseStatus.INVALID_SAMPLE_RATE
        ),
    ],
    "open_profile": _open_profile_seeds(),
    "open_profile_control": [
        open_profile.encode_info(open_profile.StrapInfo(32768, 104.0, 16, 2000, 4900)),
        open_profile.encode_command(open_profile.Command.SET_RATE, 0.2),
        open_profile.encode_command(open_profile.Command.START),
    ],
}
