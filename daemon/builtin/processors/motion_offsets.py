"""The motion stream's cross-modal time offsets (the ``motion`` processor; docs/fusion.md, "The motion
stream"): each camera's timeline against a strap's, from a thigh's or shank's angular velocity seen by both
(kinefuse.fusion.cross_modal.estimate_offset), so that a camera's frames sit on the straps' timeline even
though each device's clock alignment cannot see its link's latency floor.

Every ``offset_every_s`` of a camera's frames, the last ``offset_window_s`` of them are compared with each
strap on a segment whose two ends the camera's keypoint set has; the sufficient estimate with the highest
correlation is taken (an insufficient one, refused as ambiguous or uncertain, changes nothing). The offset
is a constant (each device's clock alignment already follows its skew), so the camera's applied offset is
the inverse-variance weighted mean of its sufficient estimates so far (weights 1 / the jackknife standard
error²): one 20 s window's estimate wanders by several ms, more than its standard error says. Each
evaluation is reported as a ``camera_offset`` event.

An estimate takes 5-10 ms of CPU per strap, too long for the processor's call (an item would wait for it),
so it runs on a worker thread and its result is taken up when the data reach ``APPLY_AFTER_S`` past the window's
end, waiting for the thread only if it has not finished by then: the same data give the same offsets at the
same place in the stream, however fast they come (``kinefuse analyze`` reproduces the live stream).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses

import numpy as np

from kinefuse.fusion.cross_modal import OffsetEstimate, estimate_offset, segment_angle_rate
from kinefuse.keypoints import KEYPOINT_NAMES
from kinefuse.types import Event, ImuBatch, KeypointBatch, Provenance, Quality, QualityLevel

_FIRST_AFTER_S = 10.0  # a camera's first evaluation: a few strides are needed to tell the lag
APPLY_AFTER_S = (
    1.0  # an estimate is taken up this far (data time) past its window: the thread is done by then
)


class _Buffer:
    """Recent samples of one device, times in s from the stream's first input: whole batches, the oldest
    dropped once their last sample is ``keep_s`` older than the newest. Kept in arrays that grow by
    doubling: a strap sends one sample a notification, and joining 4,000 one-sample arrays took the
    processing loop 10 ms at each estimate."""

    def __init__(self):
        self._times: np.ndarray | None = None
        self._values: np.ndarray | None = None
        self._base = 0  # the samples' count (from the first) at the arrays' row 0
        self._first = 0  # ... at the oldest kept sample
        self._count = 0  # samples added so far
        self._batches: collections.deque = collections.deque()  # (count at its end, its last time) per batch

    def add(self, times: np.ndarray, values: np.ndarray, keep_s: float) -> None:
        n = len(times)
        if self._times is None or self._count + n - self._base > len(self._times):
            self._grow(n, values)
        row = self._count - self._base
        self._times[row : row + n], self._values[row : row + n] = times, values
        self._count += n
        self._batches.append((self._count, times[-1]))
        while self._batches[0][1] < times[-1] - keep_s:
            self._first = self._batches.popleft()[0]

    def _grow(self, n: int, values: np.ndarray) -> None:
        """Room for ``n`` more: the kept samples moved to the start of arrays twice their size."""
        kept = self._count - self._first
        size = max(64, 2 * (kept + n))
        times, stored = np.empty(size), np.empty((size, *values.shape[1:]))
        if self._times is not None:
            times[:kept], stored[:kept] = self.arrays()
        self._times, self._values, self._base = times, stored, self._first

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The kept samples (copies: more come while the worker reads them)."""
        live = slice(self._first - self._base, self._count - self._base)
        return self._times[live].copy(), self._values[live].copy()


class CameraOffsets:
    """Per camera, its offset (s, added to its times) once a strap gave a sufficient one."""

    def __init__(self, options: dict, segment_ends: dict[str, tuple[str, str]], processor_id: str):
        self.window_s, self.every_s = options["offset_window_s"], options["offset_every_s"]
        self.segment_ends, self.processor_id = segment_ends, processor_id
        self.straps: dict[tuple[str, str], str] = {}  # strap -> its segment
        self.gyr: dict[tuple[str, str], _Buffer] = {}
        self.frames: dict[tuple[str, str], _Buffer] = {}
        self.keypoint_set: dict[tuple[str, str], str] = {}
        self.offset_ns: dict[tuple[str, str], int] = {}
        self._sums: dict[tuple[str, str], np.ndarray] = {}  # per camera: sum of weights, of weighted offsets
        self.state: dict[tuple[str, str], str] = {}  # why a camera has no offset
        self._next_s: dict[tuple[str, str], float] = {}
        self._origin_ns: int | None = None
        self.events: list[Event] = []
        self._pending: list[tuple[float, tuple[str, str], int, concurrent.futures.Future]] = []
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None

    def add_strap(self, key: tuple[str, str], segment: str) -> None:
        if segment in self.segment_ends:
            self.straps[key] = segment

    def observe(self, batch):
        """Keep the batch's samples for the estimate; a camera's batch comes back with its times corrected
        by its offset, once it has one."""
        key = (batch.source_id, batch.device_id)
        if not self.window_s or batch.time_ns is None or not len(batch):
            return batch
        if self._origin_ns is None:
            self._origin_ns = int(batch.time_ns.min())
        times = (batch.time_ns - self._origin_ns) / 1e9
        self._take_up(float(times[-1]))
        if isinstance(batch, ImuBatch):
            if key in self.straps:
                self.gyr.setdefault(key, _Buffer()).add(
                    times, np.asarray(batch.gyr, dtype=np.float64), self.window_s
                )
            return batch
        if not isinstance(batch, KeypointBatch) or batch.keypoint_set not in KEYPOINT_NAMES:
            return batch
        self.keypoint_set[key] = batch.keypoint_set
        self.frames.setdefault(key, _Buffer()).add(times, np.asarray(batch.keypoints, dtype=np.float64),
                                                   self.window_s)  # fmt: skip
        first = self._next_s.setdefault(key, float(times[0]) + _FIRST_AFTER_S)
        if times[-1] >= first:
            self._next_s[key] = float(times[-1]) + self.every_s
            self._evaluate(key, int(batch.time_ns.max()))
        shift = self.offset_ns.get(key)
        return batch if shift is None else dataclasses.replace(batch, time_ns=batch.time_ns + shift)

    def timing(self, key: tuple[str, str]) -> str:
        """Why the camera's times are only clock-aligned; empty once they are corrected."""
        if key in self.offset_ns:
            return ""
        return self.state.get(key, "no cross-modal offset yet")

    def _evaluate(self, camera: tuple[str, str], time_ns: int) -> None:
        """Start the estimate on the window's data as they are now; ``_take_up`` applies it."""
        cam_t, keypoints = self.frames[camera].arrays()
        names = KEYPOINT_NAMES[self.keypoint_set[camera]]
        jobs = [(strap, self.gyr[strap].arrays(), tuple(names.index(j) for j in self.segment_ends[segment]))
                for strap, segment in self.straps.items() if strap in self.gyr]  # fmt: skip
        if not jobs:
            return
        if self._worker is None:
            self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kinefuse-offsets")
        future = self._worker.submit(_best_estimate, cam_t, keypoints, jobs)
        self._pending.append((float(cam_t[-1]) + APPLY_AFTER_S, camera, time_ns, future))

    def finish(self) -> None:
        """At the end of the stream: apply every estimate still running, then let the worker thread go."""
        self._take_up(np.inf)
        if self._worker is not None:
            self._worker.shutdown()
            self._worker = None

    def _take_up(self, now_s: float) -> None:
        """Apply the estimates whose time has come, in the order they were started."""
        while self._pending and self._pending[0][0] <= now_s:
            _, camera, time_ns, future = self._pending.pop(0)
            self._apply(camera, time_ns, *future.result())

    def _apply(self, camera: tuple[str, str], time_ns: int, strap, best: OffsetEstimate) -> None:
        if best.sufficient:
            weight = 1.0 / max(best.uncertainty_s, 1e-4) ** 2
            sums = self._sums.setdefault(camera, np.zeros(2))
            sums += (weight, weight * best.offset_s)
            self.offset_ns[camera] = round(sums[1] / sums[0] * 1e9)
        else:
            self.state[camera] = f"no cross-modal offset: {best.reason}"
        self.events.append(self._event(camera, strap, best, time_ns))

    def _event(self, camera, strap, estimate: OffsetEstimate, time_ns: int) -> Event:
        detail = {"strap": strap[1], "correlation": round(estimate.confidence, 3), "samples": estimate.samples,
                  "offset_ms": None if estimate.offset_s is None else estimate.offset_s * 1e3,
                  "uncertainty_ms": None if estimate.uncertainty_s is None else estimate.uncertainty_s * 1e3,
                  "applied_ms": self.offset_ns[camera] / 1e6 if camera in self.offset_ns else None}  # fmt: skip
        quality = (Quality(QualityLevel.GOOD) if estimate.sufficient
                   else Quality(QualityLevel.INSUFFICIENT, estimate.reason))  # fmt: skip
        return Event("camera_offset", time_ns, camera[0], camera[1], detail, Provenance.FUSED, quality,
                     self.processor_id)  # fmt: skip


def _best_estimate(cam_t, keypoints, jobs) -> tuple[tuple[str, str], OffsetEstimate]:
    """On the worker thread: each strap's estimate against the camera's segment, the best one (sufficient
    first, then by correlation)."""
    tries = []
    for strap, (imu_t, gyr), (proximal, distal) in jobs:
        mid, rate = segment_angle_rate(cam_t, keypoints, proximal, distal)
        tries.append((strap, estimate_offset(imu_t, gyr, mid, rate)))
    return max(tries, key=lambda t: (t[1].sufficient, t[1].confidence))
