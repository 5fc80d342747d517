"""What every strap protocol decodes to, the one error a decoder may raise, and byte helpers."""

from __future__ import annotations

import dataclasses

import numpy as np

STANDARD_GRAVITY = 9.80665  # m/s^2 per g (CGPM 1901)


@dataclasses.dataclass(frozen=True)
class Decoded:
    """Samples of one notification, in SI units, oldest first."""

    acc: (
        np.ndarray | None
    )  # (n, 3) float64, m/s^2, specific force incl. gravity; None when the packet has none
    gyr: np.ndarray | None  # (n, 3) float64, rad/s; None when the packet has none
    device_time: (
        np.ndarray | None
    )  # (n,) int64 device-clock ticks per sample; None when the protocol has no clock
    clock_hz: float | None  # ticks per second of device_time
    seq: int | None  # packet sequence number when the protocol has one
    extra: dict = dataclasses.field(
        default_factory=dict
    )  # protocol-specific arrays, e.g. {"angle_deg": (n, 3)}


class DecodeError(ValueError):
    """A packet that is not what the protocol says; message says what was expected, where (byte offset)."""


def hexdump(packet: bytes, limit: int = 64) -> str:
    """Space-separated hex of the first ``limit`` bytes, saying how many more there were."""
    shown = bytes(packet[:limit]).hex(" ")
    hidden = len(packet) - limit
    return f"{shown} ... (+{hidden} bytes)" if hidden > 0 else shown


def require_length(packet: bytes, needed: int, what: str, offset: int = 0) -> None:
    """DecodeError unless ``packet`` holds ``needed`` bytes from ``offset`` on."""
    if len(packet) < offset + needed:
        raise DecodeError(
            f"{what}: needs {needed} bytes at offset {offset}, packet has {len(packet)}: {hexdump(packet)}"
        )


def signed_le(data: bytes, width: int, count: int, offset: int = 0) -> np.ndarray:
    """``count`` little-endian two's complement integers of ``width`` bytes (1..4) from ``offset``, as int64."""
    raw = np.frombuffer(data, dtype=np.uint8, count=count * width, offset=offset).reshape(count, width)
    weights = np.left_shift(np.int64(1), 8 * np.arange(width, dtype=np.int64))
    unsigned = raw.astype(np.int64) @ weights
    sign_bit = np.int64(1) << (8 * width - 1)
    return (unsigned ^ sign_bit) - sign_bit
