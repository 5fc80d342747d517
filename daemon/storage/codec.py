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
IDS = np.dtype("<i8")  # track ids


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


def pack_people(others: np.ndarray, other_ids: np.ndarray) -> tuple[list, list]:
    """Each frame's other people, ``others`` (n, P, N, 3) with ids (n, P) (-1: an empty row), as two blobs
    per frame holding only the rows with someone (keypoints float32, ids int64); None where nobody."""
    people, ids = [], []
    for frame, frame_ids in zip(others, other_ids, strict=True):
        present = frame_ids >= 0
        someone = bool(present.any())
        people.append(np.ascontiguousarray(frame[present], dtype=DTYPE).tobytes() if someone else None)
        ids.append(np.ascontiguousarray(frame_ids[present], dtype=IDS).tobytes() if someone else None)
    return people, ids


def unpack_people(blobs: Sequence[bytes | None], id_blobs: Sequence[bytes | None], n_keypoints: int):
    """``pack_people``'s blobs back as (others (n, P, N, 3) NaN-padded, ids (n, P) -1-padded), P the most
    people in one frame; (None, None) where no frame had anyone else."""
    ids = [np.frombuffer(b, dtype=IDS) if b else np.empty(0, dtype=IDS) for b in id_blobs]
    most = max((len(i) for i in ids), default=0)
    if not most:
        return None, None
    others = np.full((len(ids), most, n_keypoints, 3), np.nan, dtype=np.float32)
    padded = np.full((len(ids), most), -1, dtype=np.int64)
    for j, (blob, frame_ids) in enumerate(zip(blobs, ids, strict=True)):
        if len(frame_ids):
            others[j, : len(frame_ids)] = np.frombuffer(blob, dtype=DTYPE).reshape(-1, n_keypoints, 3)
            padded[j, : len(frame_ids)] = frame_ids
    return others, padded
