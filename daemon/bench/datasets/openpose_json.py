"""Per-frame 2D keypoint JSON files as OpenPose writes them and Pose2Sim reads them.

One file per frame, named with the frame number as the last digits of the name (``cam01_000000000012_keypoints.json``
or ``cam01_000012.json``), holding ``{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, …]}, …]}``.
OpenPose writes an undetected keypoint as (0, 0, 0); here its x and y become NaN so nobody averages it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

_FRAME_NUMBER = re.compile(r"(\d+)\D*$")


class KeypointFrames(NamedTuple):
    frames: np.ndarray  # (n,) int frame numbers, ascending
    keypoints: np.ndarray  # (n, K, 3) x, y (pixels), confidence; NaN x, y and 0 confidence where unseen
    person: np.ndarray  # (n,) int: index in the file's "people" of the person kept; -1 if nobody


def read_frames(folder: str | Path) -> KeypointFrames:
    """Read every ``*.json`` in ``folder``, keeping per frame the person with the highest total confidence."""
    folder = Path(folder)
    files: dict[int, Path] = {}
    for path in sorted(folder.glob("*.json")):
        frame = _frame_number(path)
        if frame in files:
            raise ValueError(f"{path}: frame {frame} again (also {files[frame].name})")
        files[frame] = path
    if not files:
        raise FileNotFoundError(f"{folder}: no keypoint .json files")
    frames = np.array(sorted(files), dtype=np.int64)
    people = [_people(files[frame]) for frame in frames]
    count = _keypoint_count(files, frames, people)
    keypoints = np.full((len(frames), count, 3), np.nan)
    keypoints[:, :, 2] = 0.0
    person = np.full(len(frames), -1, dtype=np.int64)
    for i, candidates in enumerate(people):
        if candidates:
            # summed confidence over the keypoints: the most completely and surely seen person
            person[i] = np.argmax([candidate[:, 2].sum() for candidate in candidates])
            keypoints[i] = candidates[person[i]]
    unseen = keypoints[:, :, 2] <= 0
    keypoints[unseen, :2] = np.nan
    return KeypointFrames(frames, keypoints, person)


def _frame_number(path: Path) -> int:
    match = _FRAME_NUMBER.search(path.stem)
    if match is None:
        raise ValueError(f"{path}: no frame number in the file name (expected it as the name's last digits)")
    return int(match.group(1))


def _people(path: Path) -> list[np.ndarray]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        people = [np.asarray(p["pose_keypoints_2d"], dtype=np.float64) for p in document["people"]]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f'{path}: expected {{"people": [{{"pose_keypoints_2d": [x, y, c, ...]}}, ...]}}: {exc!r}'
        ) from None
    for flat in people:
        if flat.ndim != 1 or flat.size % 3:
            raise ValueError(f"{path}: pose_keypoints_2d holds {flat.size} numbers, not a multiple of 3")
    return [flat.reshape(-1, 3) for flat in people]


def _keypoint_count(files: dict[int, Path], frames: np.ndarray, people: list[list[np.ndarray]]) -> int:
    counts = {len(p): frame for frame, candidates in zip(frames, people, strict=True) for p in candidates}
    if len(counts) > 1:
        seen = ", ".join(f"{count} in {files[frame].name}" for count, frame in counts.items())
        raise ValueError(f"keypoint counts differ between people or frames: {seen}")
    return next(iter(counts), 0)
