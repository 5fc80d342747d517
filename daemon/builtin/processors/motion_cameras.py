"""The motion stream's cameras: one ``CameraTrack`` per camera, its live keypoint smoother and its recent
smoothed frames, read onto the stream's timeline (the ``motion`` processor,
kinefuse.builtin.processors.motion_stream, documents the behaviour)."""

from __future__ import annotations

import collections
import math

import numpy as np

from kinefuse.fusion.keypoint_smoothing import KeypointFilterSettings, LiveKeypointSmoother, SmoothedKeypoints
from kinefuse.fusion.timeline import brackets
from kinefuse.keypoints import person_size
from kinefuse.types import KEYPOINT_SEVERITY, KeypointBatch, KeypointStatus, KeypointView

_MAX_FILLERS = 64  # lost frames stood in for by empty ones; more cannot matter past max_gap_s


def keypoint_tolerance(
    sigma: np.ndarray, size: np.ndarray, detector_error: float, disagreement: np.ndarray
) -> np.ndarray:
    """The tolerance (px) each keypoint (m, K) states: twice its radial standard deviation, the smoother's
    ``sigma`` per axis with the pose model's own error, ``detector_error`` times the person's size (m,) per
    axis, as a floor (the detector's slow drift and fixed offsets, which no smoothing removes); and, summed in
    quadrature, its ``disagreement`` with the detection it used. NaN where sigma or size is unknown: no
    claim."""
    per_axis = np.sqrt(sigma**2 + (detector_error * size[:, None]) ** 2)
    return np.hypot(2.0 * math.sqrt(2.0) * per_axis, disagreement)


def disagreement(frames: SmoothedKeypoints, detections: np.ndarray) -> np.ndarray:
    """How far (px) each measured value (n, K) lies from the detection (n, K, 3) it used; 0 where it used
    none. Where the motion model and the detector part (a foot stopping dead at strike, which the constant-
    velocity model overshoots and the robust update takes for an outlier) the value may be off by as much as
    they are apart, which the smoother's sigma does not say: its tolerance includes it."""
    distance = np.nan_to_num(np.linalg.norm(frames.mean - detections[..., :2], axis=-1))
    return np.where(frames.status == KeypointStatus.MEASURED, distance, 0.0)


def _carried(sizes: np.ndarray, last: float) -> np.ndarray:
    """Each frame's size, or the last known one before it where the frame has none."""
    out, known = np.empty(len(sizes)), last
    for j, value in enumerate(sizes.tolist()):
        known = value if math.isfinite(value) else known
        out[j] = known
    return out


def lost_frame_times(last_t: float, last_seq: int, t: float, seq: int) -> list[float]:
    """Times of the frames lost between two (a jump in sequence numbers), evenly spaced, at most
    ``_MAX_FILLERS``: pushed without detections, the smoother counts them into the gap (filled, then
    missing) instead of stepping across it as if nothing was lost."""
    lost = seq - last_seq - 1
    if lost < 1:
        return []
    step = (t - last_t) / (lost + 1)
    return (last_t + step * np.arange(1, min(lost, _MAX_FILLERS) + 1)).tolist()


class FrameSeries:
    """A camera's recent frames of one kind (as filtered, or smoothed), times in s from the processor's epoch."""

    def __init__(self, n_keypoints: int):
        self.times, self.position = np.empty(0), np.empty((0, n_keypoints, 2))
        self.sigma, self.status = np.empty((0, n_keypoints)), np.empty((0, n_keypoints), dtype=np.int8)
        self.disagreement = np.empty((0, n_keypoints))  # px from the detection used (``disagreement``)

    def append(self, frames: list[SmoothedKeypoints], disagreements: list[np.ndarray]) -> None:
        if frames:
            self.times = np.concatenate([self.times, *(f.times for f in frames)])
            self.position = np.concatenate([self.position, *(f.mean for f in frames)])
            self.sigma = np.concatenate([self.sigma, *(f.sigma for f in frames)])
            self.status = np.concatenate([self.status, *(f.status for f in frames)])
            self.disagreement = np.concatenate([self.disagreement, *disagreements])

    @classmethod
    def of(cls, frames: SmoothedKeypoints, detections: np.ndarray) -> FrameSeries:
        """A whole recording's frames, with the detections (n, K, 3) they were made from."""
        series = cls(frames.mean.shape[1])
        series.append([frames], [disagreement(frames, detections)])
        return series

    def end_s(self) -> float | None:
        return float(self.times[-1]) if len(self.times) else None

    def views(self, grid: np.ndarray, max_gap_s: float, source_id: str, device_id: str, keypoint_set: str,
              detector_error: float, size: float = math.nan) -> tuple[list[KeypointView], float]:  # fmt: skip
        """The camera's ``KeypointView`` at each grid time (``at``), each with its tolerance
        (``keypoint_tolerance``); and the person's last known size, for the next call (``size`` is this
        call's start)."""
        position, sigma, status, apart = self.at(grid, max_gap_s)
        sizes = _carried(person_size(position, keypoint_set), size)
        tolerance = keypoint_tolerance(sigma, sizes, detector_error, apart)
        views = [KeypointView(device_id, source_id, keypoint_set, "px", position[j], sigma[j], status[j],
                              tolerance[j]) for j in range(len(grid))]  # fmt: skip
        return views, float(sizes[-1]) if len(sizes) else size

    def at(self, grid: np.ndarray, max_gap_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Position (m, K, 2), sigma (m, K), status (m, K) and disagreement (m, K) at each grid time: linearly
        interpolated between the frames around it, the status the worse of the two (the frame's own on a
        frame), missing across a gap over ``max_gap_s``."""
        m, k = len(grid), self.position.shape[1]
        position, sigma = np.full((m, k, 2), np.nan), np.full((m, k), np.nan)
        apart = np.zeros((m, k))
        status = np.full((m, k), KeypointStatus.MISSING, dtype=np.int8)
        if not len(self.times):
            return position, sigma, status, apart
        left, fraction, valid = brackets(self.times, grid, max_gap_s)
        right = np.minimum(left + 1, len(self.times) - 1)
        f = fraction[:, None]
        a, b = self.status[left], self.status[right]
        worse = np.where(KEYPOINT_SEVERITY[a] >= KEYPOINT_SEVERITY[b], a, b)
        status = np.where(f == 0.0, a, np.where(f == 1.0, b, worse)).astype(np.int8)
        status[~valid] = KeypointStatus.MISSING
        for mine, values in ((sigma, self.sigma), (position, self.position), (apart, self.disagreement)):
            ff = f.reshape(m, 1, *([1] * (values.ndim - 2)))
            a, b = values[left], values[right]
            mine[:] = np.where(ff == 0.0, a, np.where(ff == 1.0, b, (1.0 - ff) * a + ff * b))
        missing = status == KeypointStatus.MISSING
        position[missing], sigma[missing], apart[missing] = np.nan, np.nan, 0.0
        return position, sigma, status, apart

    def trim(self, until_s: float) -> None:
        """Drop the frames no later item needs: all before the last one at or before ``until_s``."""
        first = max(int(np.searchsorted(self.times, until_s, side="right")) - 1, 0)
        self.times, self.position = self.times[first:], self.position[first:]
        self.sigma, self.status = self.sigma[first:], self.status[first:]
        self.disagreement = self.disagreement[first:]


class CameraTrack:
    """One camera: its live smoother (built at its first frame, which gives the keypoint count), its recent
    frames as filtered (causal: each as soon as it arrives) and as smoothed (``lag_s`` later)."""

    def __init__(self, source_id: str, device_id: str, keypoint_set: str, settings: KeypointFilterSettings,
                 detector_error: float):  # fmt: skip
        self.source_id, self.device_id, self.keypoint_set = source_id, device_id, keypoint_set
        self.settings, self.detector_error = settings, detector_error
        self.size = {0: math.nan, 1: math.nan}  # the person's last known size (px), by revision
        self.smoother: LiveKeypointSmoother | None = None
        self._reset(0)

    def _reset(self, n_keypoints: int) -> None:
        self.n_keypoints, self.last_seq, self.last_t = n_keypoints, None, -math.inf
        self.smoother = LiveKeypointSmoother(n_keypoints, self.settings) if n_keypoints else None
        self.filtered, self.smoothed = FrameSeries(n_keypoints), FrameSeries(n_keypoints)
        self._pending: collections.deque[np.ndarray] = collections.deque()  # detections not yet smoothed

    def add(self, batch: KeypointBatch, epoch_ns: int) -> None:
        # the first frame, or another pose model after a restart
        if batch.keypoints.shape[1] != self.n_keypoints:
            self._reset(batch.keypoints.shape[1])
        empty = np.full((self.n_keypoints, 3), np.nan)
        filtered, smoothed, apart, smoothed_apart = [], [], [], []
        for t, seq, keypoints in zip(((batch.time_ns - epoch_ns) / 1e9).tolist(), batch.seq.tolist(),
                                     batch.keypoints, strict=True):  # fmt: skip
            if not t > self.last_t:
                continue
            for time_s, detections in [(filler, empty) for filler in self._fillers(t, seq)] + [
                (t, keypoints)
            ]:
                frame, due = self.smoother.push_filtered(time_s, detections)
                filtered.append(frame)
                apart.append(disagreement(frame, detections[None]))
                self._pending.append(detections)
                smoothed += due
                smoothed_apart += self._smoothed_apart(due)
            self.last_t, self.last_seq = t, seq
        self.filtered.append(filtered, apart)
        self.smoothed.append(smoothed, smoothed_apart)

    def _smoothed_apart(self, due: list[SmoothedKeypoints]) -> list[np.ndarray]:
        """The smoothed frames' disagreements: the smoother gives back every frame once, in order."""
        return [disagreement(frame, self._pending.popleft()[None]) for frame in due]

    def _fillers(self, t: float, seq: int) -> list[float]:
        return [] if self.last_seq is None else lost_frame_times(self.last_t, self.last_seq, t, seq)

    def flush(self) -> None:
        if self.smoother is not None:
            due = self.smoother.flush()
            self.smoothed.append(due, self._smoothed_apart(due))

    def frames(self, revision: int) -> FrameSeries:
        """The frames an item of ``revision`` reads: 0 as filtered, 1 as smoothed."""
        return self.smoothed if revision else self.filtered

    def end_s(self, revision: int = 0) -> float | None:
        return self.frames(revision).end_s()

    def trim(self, until_s: float, revision: int) -> None:
        """Drop the frames no later item of ``revision`` needs."""
        self.frames(revision).trim(until_s)

    def views(self, grid: np.ndarray, max_gap_s: float, revision: int) -> list[KeypointView]:
        views, self.size[revision] = self.frames(revision).views(
            grid, max_gap_s, self.source_id, self.device_id, self.keypoint_set, self.detector_error,
            self.size[revision],
        )  # fmt: skip
        return views
