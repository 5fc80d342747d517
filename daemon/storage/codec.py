"""The one place float arrays become SQLite blobs and back: little-endian float32, row-major.

float32 halves the file against float64 and still holds 7 significant digits, more than any IMU or
pose model delivers.  Blobs carry no shape: the column (acc, gyr, mag: 3 values; keypoints:
``n_keypoints`` x 3) says how to read them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DTYPE = np.dtype("<f4")


def pack_rows(array: np.ndarray) -> list[bytes]:
    """One blob per entry along the first axis: (n, 3) gives n 12-byte blobs, (n, N, 3) n frames."""
    packed = np.ascontiguousarray(array, dtype=DTYPE)
    data = packed.tobytes()
    # one tobytes() per batch and slicing is several times faster than one tobytes() per row
    size = packed[0].nbytes if len(packed) else 0
    return [data[i : i + size] for i in range(0, len(data), size)] if size else [b""] * len(packed)


def unpack_rows(blobs: Sequence[bytes], row_shape: tuple[int, ...]) -> np.ndarray:
    """Stack blobs written by ``pack_rows`` into a float32 array of shape (len(blobs), *row_shape)."""
    return np.frombuffer(b"".join(blobs), dtype=DTYPE).reshape(len(blobs), *row_shape)
