"""The one place arrays become SQLite blobs and back: little-endian float32 (or one-byte codes), row-major.

float32 halves the file against float64 and still holds 7 significant digits, more than any IMU or
pose model delivers.  Blobs carry no shape: the column (acc, gyr, mag: 3 values; keypoints:
``n_keypoints`` x 3; a motion view's status: ``n_keypoints`` codes) says how to read them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DTYPE = np.dtype("<f4")
CODES = np.dtype("u1")  # small integer codes (a keypoint's status), one byte each


def pack_rows(array: np.ndarray, dtype: np.dtype = DTYPE) -> list[bytes]:
    """One blob per entry along the first axis: (n, 3) gives n 12-byte blobs, (n, N, 3) n frames."""
    packed = np.ascontiguousarray(array, dtype=dtype)
    data = packed.tobytes()
    # one tobytes() per batch and slicing is several times faster than one tobytes() per row
    size = packed[0].nbytes if len(packed) else 0
    return [data[i : i + size] for i in range(0, len(data), size)] if size else [b""] * len(packed)


def unpack_rows(blobs: Sequence[bytes], row_shape: tuple[int, ...], dtype: np.dtype = DTYPE) -> np.ndarray:
    """Stack blobs written by ``pack_rows`` into an array of shape (len(blobs), *row_shape)."""
    return np.frombuffer(b"".join(blobs), dtype=dtype).reshape(len(blobs), *row_shape)
