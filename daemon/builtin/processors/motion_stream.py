"""Built-in processor: the motion stream. Puts the athlete's body on one timeline, ``rate_hz`` items a second
(kinefuse.types.MotionItem): each strap's segment orientation (the VQF orientation filter) and each camera's
smoothed 2D keypoints (the fixed-lag Kalman / RTS smoother with flagged gaps), both interpolated onto the
item's time.

A strap's segment is the ``segment`` in its device's meta (the synthetic source's scenario, a BLE strap's
``kinefuse devices assign``), learnt from its declaration (``device_added``); a strap without one is left
out. With no strap-to-segment calibration yet the strap's axes are taken as the segment's (the nominal
mounting: the segment's orientation is the strap's), so every orientation is degraded and says so.

Gyroscope bias: uncalibrated consumer straps are off by up to ±5 deg/s, beyond what the filter's own bias
estimate learns (``bias_clip``, 2 deg/s). Each strap looks for rest from its first sample: a window of
``rest_window_s`` whose gyroscope and accelerometer spread stay within ``rest_noise_ratio`` times the
sensor's white noise and whose mean specific force is within ``rest_acc_tolerance`` of g (a stationarity
test after Skog et al. 2010). The window's mean gyroscope is the bias; the filter restarts from that window
with it subtracted, as on every later sample. Until then each orientation says "settling: gyroscope bias
not yet estimated (no rest yet)", after ``settle_timeout_s`` "gyroscope bias not estimated: no rest in the
first N s" (the search goes on).

Timing: the item for time t goes out once every device's output reaches t (a camera's smoothed frames come
``lag_s`` and one frame after its detections), or once the newest input is ``max_wait_s`` past t; a device
still late then has no value in that item. docs/fusion.md, "The motion stream".
"""

from __future__ import annotations

import logging
import math

import numpy as np

from kinefuse import hookimpl
from kinefuse.builtin.processors.strap_orientation import SETTLING_S, measured_rate
from kinefuse.configschema import Field
from kinefuse.fusion.keypoint_smoothing import KeypointFilterSettings, LiveKeypointSmoother
from kinefuse.fusion.orientation_filter import OrientationFilter
from kinefuse.fusion.timeline import brackets, slerp
from kinefuse.interfaces import ProcessorSpec
from kinefuse.types import (
    SEGMENTS,
    DeviceAdded,
    DeviceKind,
    ImuBatch,
    KeypointBatch,
    KeypointStatus,
    KeypointView,
    MotionItem,
    Provenance,
    Quality,
    QualityLevel,
    SampleBatch,
    SegmentOrientation,
)

log = logging.getLogger(__name__)

SCHEMA = {
    "rate_hz": Field(float, 30.0, "motion items per second", min=1.0, max=1000.0),
    "lag_s": Field(float, 0.1, "keypoint smoothing delay (fixed-lag RTS smoother)", min=0.0, max=2.0),
    "max_gap_s": Field(float, 0.15, "longest gap bridged: beyond it there is no value", min=0.01, max=2.0),
    "max_wait_s": Field(float, 0.5, "longest an item waits for a late device", min=0.0, max=10.0),
    "pixel_sigma": Field(float, 5.0, "keypoint measurement scale at confidence 1 (px)", min=0.01, max=1000.0),
    "process_noise": Field(float, 2.0e5, "keypoint process noise (px²/s³)", min=1.0, max=1.0e10),
    "rate_samples": Field(int, 50, "samples measuring a strap's sample rate", min=5, max=10_000),
    "rest_window_s": Field(
        float, 1.5, "rest needed to estimate a strap's gyroscope bias (s)", min=0.1, max=10.0
    ),
    "gyr_noise_density": Field(float, 0.015, "gyroscope white noise (deg/s/√Hz)", min=1e-5, max=10.0),
    "acc_noise_density": Field(float, 230.0, "accelerometer white noise (µg/√Hz)", min=0.1, max=1e5),
    "rest_noise_ratio": Field(
        float, 2.0, "rest: spread at most this many times the white noise", min=1.0, max=100.0
    ),
    "rest_acc_tolerance": Field(
        float, 0.5, "rest: |mean specific force| within this of g (m/s²)", min=0.01, max=5.0
    ),
    "settle_timeout_s": Field(
        float, 30.0, "no rest this long: say the bias is not estimated", min=1.0, max=3600.0
    ),
}
_G = 9.81  # m/s², the body model's gravity; the acceleration tolerance covers the difference to a local g
_DPS, _UG = math.pi / 180.0, 9.80665e-6  # rad/s per deg/s, m/s² per µg
_SETTLING_BIAS = "settling: gyroscope bias not yet estimated (no rest yet)"
_MOUNTING = "strap-to-segment mounting not calibrated (nominal mounting)"
_NO_MAG, _DISTURBED = 1, 2  # per-sample flags: heading without a magnetometer, magnetic disturbance
_FLAG_REASONS = {_NO_MAG: "no magnetometer: heading relative to where the strap started",
                 _DISTURBED: "magnetic disturbance: heading held on the gyroscope"}  # fmt: skip
_MAX_FILLERS = 64  # lost frames stood in for by empty ones; more cannot matter past max_gap_s
_GAP_PERIODS = 1.5  # samples further apart than this many periods: the orientation between them is filled


def _check(options: dict) -> list[tuple[str, str]]:
    if options["max_wait_s"] <= options["lag_s"]:
        return [("max_wait_s", f"must exceed lag_s ({options['lag_s']} s): every camera would be too late")]
    return []


def _increasing(times: np.ndarray, last: float) -> np.ndarray:
    """Which times follow ``last`` and every time before them: the clock fit may step a device's times back."""
    before = np.maximum.accumulate(np.concatenate([[last], times]))[:-1]
    return times > before


def _window_sum(x: np.ndarray, n: int) -> np.ndarray:
    """The sums of every n consecutive rows of x (len(x) - n + 1 of them)."""
    c = np.concatenate([np.zeros((1, *x.shape[1:])), np.cumsum(x, axis=0)])
    return c[n:] - c[:-n]


def _window_mean(x: np.ndarray, n: int) -> np.ndarray:
    return _window_sum(x, n) / n


def _window_spread(x: np.ndarray, n: int) -> np.ndarray:
    """Every window's mean squared distance of its rows from their mean (summed over the axes), shifted by
    the first row for precision."""
    d = x - x[0]
    mean = _window_mean(d, n)
    return (_window_sum(d**2, n) / n - mean**2).sum(axis=1)


def _missing_segment(strap: _Strap, reason: str) -> SegmentOrientation:
    return SegmentOrientation(strap.segment, strap.source_id, strap.device_id, None, None,
                              Quality(QualityLevel.INSUFFICIENT, f"insufficient data: {reason}"))  # fmt: skip


class _Strap:
    """One strap: its filter and its recent orientations, times in seconds from the processor's epoch."""

    def __init__(self, source_id: str, device_id: str, segment: str, rest: dict):
        self.source_id, self.device_id, self.segment = source_id, device_id, segment
        self.rest = rest
        self.waiting: list[ImuBatch] = []
        self.filter: OrientationFilter | None = None
        self.rate_hz = self.started_s = self.period_s = 0.0
        self.bias: np.ndarray | None = None  # the gyroscope bias (rad/s), once a rest gave it
        self.bias_s: float | None = None  # the end of that rest
        self.first_s: float | None = None  # the first sample's time
        self.recent = (
            np.empty((0, 3)),
            np.empty((0, 3)),
            None,
        )  # the last samples before a bias: gyr, acc, mag
        self.times, self.quats, self.flags = np.empty(0), np.empty((0, 4)), np.empty(0, dtype=np.int8)

    def add(self, batch: ImuBatch, epoch_ns: int, rate_samples: int) -> None:
        if self.filter is None:
            self.waiting.append(batch)
            rate_hz = measured_rate(self.waiting, rate_samples)
            if rate_hz is None:
                return
            self.filter, self.period_s, self.rate_hz = OrientationFilter(rate_hz), 1.0 / rate_hz, rate_hz
            self.started_s = self.first_s = (min(int(b.time_ns.min()) for b in self.waiting) - epoch_ns) / 1e9
            batches, self.waiting = self.waiting, []
        else:
            batches = [batch]
        for b in batches:
            self._run(b, epoch_ns)

    def _run(self, batch: ImuBatch, epoch_ns: int) -> None:
        gyr, acc = (np.ascontiguousarray(x, dtype=np.float64) for x in (batch.gyr, batch.acc))
        mag = None if batch.mag is None else np.ascontiguousarray(batch.mag, dtype=np.float64)
        times = (batch.time_ns - epoch_ns) / 1e9
        end = self._rest_end(gyr, acc, mag) if self.bias is None else None
        if end is None:
            self._filter(gyr, acc, mag, times)
            return
        # a rest ends at sample ``end``: the filter restarts from the rest's samples, bias-corrected
        self._filter(
            gyr[: end + 1], acc[: end + 1], None if mag is None else mag[: end + 1], times[: end + 1]
        )
        self.bias_s = float(times[end])
        rest_gyr, rest_acc, rest_mag = self.recent
        self.filter, self.recent = OrientationFilter(self.rate_hz), None
        self.started_s = self.bias_s - len(rest_gyr) * self.period_s
        self.filter.update_batch(np.ascontiguousarray(rest_gyr - self.bias), rest_acc, rest_mag)
        rest = slice(end + 1, None)
        self._filter(gyr[rest], acc[rest], None if mag is None else mag[rest], times[rest])

    def _rest_end(self, gyr: np.ndarray, acc: np.ndarray, mag: np.ndarray | None) -> int | None:
        """The index in this batch of the first sample ending a rest window (sets ``bias`` and ``recent`` to
        that window), or None (``recent`` keeps the last window's samples). Stationarity test after I. Skog
        et al., "Zero-velocity detection: an algorithm evaluation", IEEE Trans. Biomed. Eng. 57(11), 2010:
        the window's mean squared spread about its mean, gyroscope and accelerometer, each over its white
        noise variance, at most ``rest_noise_ratio``² (the spread is about the mean, not zero, for the
        gyroscope's bias is unknown), and the mean specific force within ``rest_acc_tolerance`` of g."""
        old_gyr, old_acc, old_mag = self.recent
        if (mag is None) != (old_mag is None) and len(old_gyr):
            old_gyr, old_acc, old_mag = (
                np.empty((0, 3)),
                np.empty((0, 3)),
                None,
            )  # the magnetometer came or went
        all_gyr, all_acc = np.concatenate([old_gyr, gyr]), np.concatenate([old_acc, acc])
        all_mag = (
            None if mag is None else np.concatenate([np.empty((0, 3)) if old_mag is None else old_mag, mag])
        )
        n = max(round(self.rest["rest_window_s"] * self.rate_hz), 2)
        if len(all_gyr) >= n:
            var_gyr = (self.rest["gyr_noise_density"] * _DPS) ** 2 * self.rate_hz
            var_acc = (self.rest["acc_noise_density"] * _UG) ** 2 * self.rate_hz
            spread = _window_spread(all_gyr, n) / var_gyr + _window_spread(all_acc, n) / var_acc
            mean_acc = _window_mean(all_acc, n)
            still = (spread <= 2 * 3 * self.rest["rest_noise_ratio"] ** 2) & (
                np.abs(np.linalg.norm(mean_acc, axis=1) - _G) <= self.rest["rest_acc_tolerance"]
            )
            first = max(len(old_gyr), n - 1) - (n - 1)  # windows ending in this batch
            hits = np.flatnonzero(still[first:]) + first
            if len(hits):
                stop = int(hits[0]) + n
                self.bias = all_gyr[stop - n : stop].mean(axis=0)
                self.recent = (all_gyr[stop - n: stop], all_acc[stop - n: stop],
                               None if all_mag is None else all_mag[stop - n: stop])  # fmt: skip
                return stop - 1 - len(old_gyr)
        keep = slice(max(len(all_gyr) - (n - 1), 0), None)
        self.recent = (all_gyr[keep], all_acc[keep], None if all_mag is None else all_mag[keep])
        return None

    def _filter(self, gyr: np.ndarray, acc: np.ndarray, mag: np.ndarray | None, times: np.ndarray) -> None:
        if not len(gyr):
            return
        if self.bias is not None:
            gyr = gyr - self.bias
        gyr, acc = np.ascontiguousarray(gyr), np.ascontiguousarray(acc)
        mag = None if mag is None else np.ascontiguousarray(mag)
        out = self.filter.update_batch(gyr, acc, mag)
        quats = out["quat6d"] if mag is None else out["quat9d"]
        flags = (np.full(len(gyr), _NO_MAG) if mag is None
                 else np.where(np.asarray(out["mag_disturbed"], dtype=bool), _DISTURBED, 0))  # fmt: skip
        keep = _increasing(times, self.times[-1] if len(self.times) else -math.inf)
        self.times = np.concatenate([self.times, times[keep]])
        self.quats = np.concatenate([self.quats, quats[keep]])
        self.flags = np.concatenate([self.flags, flags[keep].astype(np.int8)])

    def end_s(self) -> float | None:
        return float(self.times[-1]) if len(self.times) else None

    def orientations(self, grid: np.ndarray, max_gap_s: float) -> list[SegmentOrientation]:
        if not len(self.times):
            reason = "measuring the strap's sample rate" if self.filter is None else "no strap samples yet"
            return [_missing_segment(self, reason)] * len(grid)
        left, fraction, valid = brackets(self.times, grid, max_gap_s)
        right = np.minimum(left + 1, len(self.times) - 1)
        quats = slerp(self.quats[left], self.quats[right], fraction)
        span, flags = self.times[right] - self.times[left], self.flags[left] | self.flags[right]
        return [
            self._orientation(quats[j], grid[j], span[j], flags[j]) if valid[j]
            else _missing_segment(self, "no strap samples around this time")
            for j in range(len(grid))
        ]  # fmt: skip

    def _orientation(self, quat, t: float, span: float, flags: int) -> SegmentOrientation:
        reasons = [_MOUNTING]
        if self.bias_s is None or t < self.bias_s:
            if t - self.first_s < self.rest["settle_timeout_s"]:
                reasons.append(_SETTLING_BIAS)
            else:
                reasons.append(f"gyroscope bias not estimated: no rest in the first "
                               f"{self.rest['settle_timeout_s']:g} s")  # fmt: skip
        if t < self.started_s + SETTLING_S:
            reasons.append("orientation filter settling")
        reasons += [reason for flag, reason in _FLAG_REASONS.items() if flags & flag]
        provenance = Provenance.FUSED
        if span > _GAP_PERIODS * self.period_s:
            provenance = Provenance.FILLED
            reasons.append(f"interpolated over a {span * 1e3:.0f} ms gap in the strap's samples")
        return SegmentOrientation(self.segment, self.source_id, self.device_id, tuple(quat.tolist()), provenance,
                                  Quality(QualityLevel.DEGRADED, "; ".join(reasons)))  # fmt: skip

    def trim(self, until_s: float) -> None:
        """Drop the samples no later item needs: all before the last one at or before ``until_s``."""
        first = max(int(np.searchsorted(self.times, until_s, side="right")) - 1, 0)
        self.times, self.quats, self.flags = self.times[first:], self.quats[first:], self.flags[first:]


class _Camera:
    """One camera: its live smoother (built at its first frame, which gives the keypoint count) and its recent
    smoothed frames, times in seconds from the processor's epoch."""

    def __init__(self, source_id: str, device_id: str, keypoint_set: str, settings: KeypointFilterSettings):
        self.source_id, self.device_id, self.keypoint_set = source_id, device_id, keypoint_set
        self.settings = settings
        self.smoother: LiveKeypointSmoother | None = None
        self._reset(0)

    def _reset(self, n_keypoints: int) -> None:
        self.n_keypoints, self.last_seq, self.last_t = n_keypoints, None, -math.inf
        self.smoother = LiveKeypointSmoother(n_keypoints, self.settings) if n_keypoints else None
        self.times, self.position = np.empty(0), np.empty((0, n_keypoints, 2))
        self.sigma, self.status = np.empty((0, n_keypoints)), np.empty((0, n_keypoints), dtype=np.int8)

    def add(self, batch: KeypointBatch, epoch_ns: int) -> None:
        # the first frame, or another pose model after a restart
        if batch.keypoints.shape[1] != self.n_keypoints:
            self._reset(batch.keypoints.shape[1])
        empty = np.full((self.n_keypoints, 3), np.nan)
        frames = []
        for t, seq, keypoints in zip(((batch.time_ns - epoch_ns) / 1e9).tolist(), batch.seq.tolist(),
                                     batch.keypoints, strict=True):  # fmt: skip
            if not t > self.last_t:
                continue
            for filler in self._fillers(t, seq):
                frames += self.smoother.push(filler, empty)
            frames += self.smoother.push(t, keypoints)
            self.last_t, self.last_seq = t, seq
        self._append(frames)

    def _fillers(self, t: float, seq: int) -> list[float]:
        """Times of the frames lost before this one (a jump in sequence numbers): pushed without detections,
        the smoother counts them into the gap (filled, then missing) instead of stepping across it as if
        nothing was lost."""
        if self.last_seq is None or seq - self.last_seq < 2:
            return []
        lost = seq - self.last_seq - 1
        step = (t - self.last_t) / (lost + 1)
        return (self.last_t + step * np.arange(1, min(lost, _MAX_FILLERS) + 1)).tolist()

    def _append(self, frames) -> None:
        if frames:
            self.times = np.concatenate([self.times, *(f.times for f in frames)])
            self.position = np.concatenate([self.position, *(f.mean for f in frames)])
            self.sigma = np.concatenate([self.sigma, *(f.sigma for f in frames)])
            self.status = np.concatenate([self.status, *(f.status for f in frames)])

    def flush(self) -> None:
        if self.smoother is not None:
            self._append(self.smoother.flush())

    def end_s(self) -> float | None:
        return float(self.times[-1]) if len(self.times) else None

    def views(self, grid: np.ndarray, max_gap_s: float) -> list[KeypointView]:
        """Each keypoint linearly interpolated between the smoothed frames around each grid time; its status
        the worse of the two (or the frame's own on a frame), missing across a gap over ``max_gap_s``."""
        m, k = len(grid), self.n_keypoints
        position, sigma = np.full((m, k, 2), np.nan), np.full((m, k), np.nan)
        status = np.full((m, k), KeypointStatus.MISSING, dtype=np.int8)
        if len(self.times):
            left, fraction, valid = brackets(self.times, grid, max_gap_s)
            right = np.minimum(left + 1, len(self.times) - 1)
            f = fraction[:, None]
            blend = np.maximum(self.status[left], self.status[right])
            status = np.where(f == 0.0, self.status[left], np.where(f == 1.0, self.status[right], blend))
            status[~valid] = KeypointStatus.MISSING
            for mine, values in ((sigma, self.sigma), (position, self.position)):
                ff = f.reshape(m, 1, *([1] * (values.ndim - 2)))
                a, b = values[left], values[right]
                mine[:] = np.where(ff == 0.0, a, np.where(ff == 1.0, b, (1.0 - ff) * a + ff * b))
            missing = status == KeypointStatus.MISSING
            position[missing], sigma[missing] = np.nan, np.nan
        return [KeypointView(self.device_id, self.source_id, self.keypoint_set, "px", position[j], sigma[j],
                             status[j]) for j in range(m)]  # fmt: skip

    def trim(self, until_s: float) -> None:
        first = max(int(np.searchsorted(self.times, until_s, side="right")) - 1, 0)
        self.times, self.position = self.times[first:], self.position[first:]
        self.sigma, self.status = self.sigma[first:], self.status[first:]


class MotionStream:
    def __init__(self, options: dict, processor_id: str):
        self.processor_id, self.rate_hz = processor_id, options["rate_hz"]
        self.period_ns = round(1e9 / self.rate_hz)
        self.max_gap_s, self.max_wait_ns = options["max_gap_s"], round(options["max_wait_s"] * 1e9)
        self.rate_samples = options["rate_samples"]
        self.rest = {
            key: options[key]
            for key in (
                "rest_window_s",
                "gyr_noise_density",
                "acc_noise_density",
                "rest_noise_ratio",
                "rest_acc_tolerance",
                "settle_timeout_s",
            )
        }
        self.settings = KeypointFilterSettings(
            process_noise=options["process_noise"], pixel_sigma=options["pixel_sigma"],
            max_gap_s=options["max_gap_s"], lag_s=options["lag_s"],
        )  # fmt: skip
        self._straps: dict[tuple[str, str], _Strap] = {}
        self._cameras: dict[tuple[str, str], _Camera] = {}
        self._epoch_ns: int | None = None  # the first item's time; devices keep their times in s from it
        self._next_ns = 0  # the next item's time
        self._horizon_ns = 0  # the newest input time

    def device_added(self, declaration: DeviceAdded) -> list:
        device, key = declaration.device, (declaration.source_id, declaration.device.device_id)
        if key in self._straps or key in self._cameras:
            return []  # a restarted source declares its devices again; they keep their state and segment
        if device.kind is DeviceKind.CAMERA:
            self._cameras[key] = _Camera(*key, device.keypoint_set or "", self.settings)
            return []
        segment = device.meta.get("segment")
        owner = next((s.device_id for s in self._straps.values() if s.segment == segment), None)
        if segment not in SEGMENTS or owner is not None:
            why = f"{owner} is already on {segment}" if owner else "no known segment in its meta"
            log.warning("%s: strap %s/%s left out of the motion stream: %s", self.processor_id, *key, why)
            return []
        self._straps[key] = _Strap(*key, segment, self.rest)
        return []

    def process(self, batch: SampleBatch) -> list[MotionItem]:
        key = (batch.source_id, batch.device_id)
        device = (self._straps if isinstance(batch, ImuBatch) else self._cameras).get(key)
        if device is None or batch.time_ns is None:
            return []
        if self._epoch_ns is None:
            self._epoch_ns = self._next_ns = -(-int(batch.time_ns.min()) // self.period_ns) * self.period_ns
        self._horizon_ns = max(self._horizon_ns, int(batch.time_ns.max()))
        if isinstance(batch, ImuBatch):
            device.add(batch, self._epoch_ns, self.rate_samples)
        else:
            device.add(batch, self._epoch_ns)
        return self._publish(self._horizon_ns - self.max_wait_ns)

    def flush(self) -> list[MotionItem]:
        """Publish every item some device still covers; the devices that do not have no value there."""
        for camera in self._cameras.values():
            camera.flush()
        ends = [end for end in (d.end_s() for d in self._devices()) if end is not None]
        return self._publish(self._epoch_ns + round(max(ends) * 1e9)) if ends else []

    def _devices(self) -> list[_Strap | _Camera]:
        return [*self._straps.values(), *self._cameras.values()]

    def _publish(self, until_ns: int) -> list[MotionItem]:
        """Every item up to ``until_ns``, or up to where every device's output reaches if that is later."""
        ends = [d.end_s() for d in self._devices()]
        if ends and None not in ends:
            until_ns = max(until_ns, self._epoch_ns + math.floor(min(ends) * 1e9))
        if until_ns < self._next_ns:
            return []
        grid_ns = np.arange(self._next_ns, until_ns + 1, self.period_ns)
        self._next_ns = int(grid_ns[-1]) + self.period_ns
        grid = (grid_ns - self._epoch_ns) / 1e9
        segments = [strap.orientations(grid, self.max_gap_s) for strap in self._straps.values()]
        views = [
            cam.views(grid, self.max_gap_s) for cam in self._cameras.values() if cam.smoother is not None
        ]
        for device in self._devices():
            device.trim(float(grid[-1]))
        return [MotionItem(t, self.rate_hz, tuple(s[j] for s in segments), tuple(v[j] for v in views),
                           self.processor_id) for j, t in enumerate(grid_ns.tolist())]  # fmt: skip


@hookimpl
def register_processors():
    return [ProcessorSpec("motion", MotionStream, SCHEMA, __doc__.strip(), check=_check)]
