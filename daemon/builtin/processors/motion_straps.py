"""The motion stream's straps: one ``StrapTrack`` per strap, its orientation filter, its gyroscope bias from
a rest at the start and its recent orientations, read onto the stream's timeline (the ``motion`` processor,
kinefuse.builtin.processors.motion_stream, documents the behaviour)."""

from __future__ import annotations

import math

import numpy as np

from kinefuse.builtin.processors.strap_orientation import SETTLING_S, measured_rate
from kinefuse.fusion.orientation_filter import OrientationFilter
from kinefuse.fusion.timeline import brackets, slerp
from kinefuse.types import (
    STANDARD_GRAVITY,
    ImuBatch,
    Provenance,
    Quality,
    QualityLevel,
    SegmentOrientation,
)

_DPS, _UG = math.pi / 180.0, 9.80665e-6  # rad/s per deg/s, m/s² per µg
_SETTLING_BIAS = "settling: gyroscope bias not yet estimated (no rest yet)"
_MOUNTING = "strap-to-segment mounting not calibrated (nominal mounting)"
_NO_MAG, _DISTURBED = 1, 2  # per-sample flags: heading without a magnetometer, magnetic disturbance
_FLAG_REASONS = {_NO_MAG: "no magnetometer: heading relative to where the strap started",
                 _DISTURBED: "magnetic disturbance: heading held on the gyroscope"}  # fmt: skip
_GAP_PERIODS = 1.5  # samples further apart than this many periods: the orientation between them is filled


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


def _missing_segment(strap: StrapTrack, reason: str) -> SegmentOrientation:
    return SegmentOrientation(strap.segment, strap.source_id, strap.device_id, None, None,
                              Quality(QualityLevel.INSUFFICIENT, f"insufficient data: {reason}"))  # fmt: skip


class StrapTrack:
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
                np.abs(np.linalg.norm(mean_acc, axis=1) - STANDARD_GRAVITY) <= self.rest["rest_acc_tolerance"]
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
