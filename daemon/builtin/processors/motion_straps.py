"""The motion stream's straps: one ``StrapTrack`` per strap, its orientation filter, its gyroscope bias from
a rest at the start, its mounting on the segment (``MountingCalibration``: that rest as the static pose,
the movement after it as the functional movement) and its recent orientations, read onto the stream's
timeline (the ``motion`` processor, kinefuse.builtin.processors.motion_stream, documents the behaviour)."""

from __future__ import annotations

import math

import numpy as np

from kinefuse.builtin.processors.strap_orientation import SETTLING_S, measured_rate
from kinefuse.fusion.mounting import MountingEstimate, estimate_mounting
from kinefuse.fusion.orientation_filter import OrientationFilter
from kinefuse.fusion.segments import (
    MAGNETIC_HEADING_SIGMA_DEG,
    MOUNTING_FLOOR_DEG,
    orientation_tolerance_deg,
    segment_quaternion,
)
from kinefuse.fusion.timeline import brackets, slerp
from kinefuse.types import (
    STANDARD_GRAVITY,
    WORLD_MAGNETIC,
    WORLD_STRAP,
    ImuBatch,
    Provenance,
    Quality,
    QualityLevel,
    SegmentOrientation,
)

_DPS, _UG = math.pi / 180.0, 9.80665e-6  # rad/s per deg/s, m/s² per µg
_SETTLING_BIAS = "settling: gyroscope bias not yet estimated (no rest yet)"
_MOUNTING = "strap-to-segment mounting not calibrated (nominal mounting)"
_NOT_YET = "mounting not calibrated yet (nominal mounting)"
# segments whose main rotation in walking is the knee's flexion (Seel et al. 2014): their mounting is calibrated
CALIBRATED_KINDS = ("shank", "thigh")
# the thigh also turns with the pelvis, tilting its main rotation axis off the hip's flexion axis; measured
# on the synthetic walker through this code (kinefuse bench accuracy, "mounting calibration" rows)
_THIGH_BIAS = ("mounting of a thigh strap: the pelvis's rotation tilts the thigh's main rotation axis off the "
               "hip's flexion axis (4.5-8.3° off, median 6.9°, over 40 synthetic walks; a shank 0.2-2.3°)")  # fmt: skip
# gyroscope samples slower than this are left out of the functional movement: standing still they are
# noise about no axis, and would make the axis's spread over blocks look like a wandering axis
_MOVING_RAD_S = 0.2
# a leg segment's swing must be this much faster than its other way to tell forward (kinefuse.fusion.mounting):
# walking shanks 1.42-1.83, a lunge's 1.17-1.19 and a sit-to-stand's 1.29-1.32 on the synthetic athlete, a
# walker's thigh 1.05-1.11
SIGN_CUE = 1.35
# the way a leg segment leans on average while it moves (kinefuse.fusion.mounting): a thigh forward, a shank back
LEAN_SIGNS = {"thigh": 1.0, "shank": -1.0}
# per-sample flags: heading without a magnetometer, magnetic disturbance, a lost sample put back
_NO_MAG, _DISTURBED, _LOST = 1, 2, 4
_FLAG_REASONS = {_NO_MAG: "no magnetometer: heading relative to where the strap started",
                 _DISTURBED: "magnetic disturbance: heading held on the gyroscope"}  # fmt: skip
_QUEUE_SAMPLES = 4  # filtered once this many are queued, so that an item finds few left to filter
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


def rest_window(rest: dict, rate_hz: float) -> int:
    """Samples in a rest window: ``rest_window_s`` at the rate, at least 2."""
    return max(round(rest["rest_window_s"] * rate_hz), 2)


def rest_speed_limit(rest: dict, rate_hz: float) -> float:
    """The fastest angular rate (rad/s) a sample of a rest window can have: the window's mean is at most
    ``rest_max_bias``, and a sample d from the mean adds d²/n to the window's spread, which a rest keeps
    within its threshold. Walking exceeds it at almost every stride, so most windows need no test."""
    var_gyr = (rest["gyr_noise_density"] * _DPS) ** 2 * rate_hz
    spread = 2 * 3 * rest["rest_noise_ratio"] ** 2 * var_gyr
    return rest["rest_max_bias"] * _DPS + math.sqrt(rest_window(rest, rate_hz) * spread)


def still_windows(gyr: np.ndarray, acc: np.ndarray, rate_hz: float, rest: dict) -> np.ndarray:
    """Whether each window of ``rest_window`` consecutive samples (len - n + 1 of them) is a rest, by the
    stationarity test ``StrapTrack._rest_end`` describes (Skog et al. 2010); ``rest``: the processor's
    rest options."""
    n = rest_window(rest, rate_hz)
    var_gyr = (rest["gyr_noise_density"] * _DPS) ** 2 * rate_hz
    var_acc = (rest["acc_noise_density"] * _UG) ** 2 * rate_hz
    spread = _window_spread(gyr, n) / var_gyr + _window_spread(acc, n) / var_acc
    gravity = (
        np.abs(np.linalg.norm(_window_mean(acc, n), axis=1) - STANDARD_GRAVITY) <= rest["rest_acc_tolerance"]
    )
    # a steady turn is as smooth as a rest: its mean rate must be one a bias can have
    slow = np.linalg.norm(_window_mean(gyr, n), axis=1) <= rest["rest_max_bias"] * _DPS
    return (spread <= 2 * 3 * rest["rest_noise_ratio"] ** 2) & slow & gravity


def _bridged(steps: np.ndarray, max_fill: int) -> np.ndarray:
    """Which steps between received sequence numbers skip a run of lost samples short enough to put back."""
    return (steps > 1) & (steps - 1 <= max_fill)


def fill_lost(seq: np.ndarray, times: np.ndarray, arrays: list[np.ndarray], max_fill: int):
    """Samples a strap's link lost put back: each run of at most ``max_fill`` missing sequence numbers
    between two received samples, its times and (n, 3) ``arrays`` interpolated linearly over the sequence
    numbers; longer runs (nothing bridges them) and sequence numbers that go back are left as they are.
    Returns the times, the arrays and which samples were put back. Why: the orientation filter assumes one
    sample a period, and a skipped 50 ms notification in a swing at 400 deg/s would leave the orientation
    20 deg behind until the accelerometer pulls it back."""
    steps = np.diff(seq)
    counts = np.where(_bridged(steps, max_fill), steps - 1, 0)
    if not counts.any():
        return times, arrays, np.zeros(len(times), dtype=bool)
    left = np.repeat(np.arange(len(steps)), counts)  # the received sample before each put-back one
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    fraction = within / steps[left]
    order = np.argsort(
        np.concatenate([np.arange(len(seq), dtype=np.float64), left + fraction]), kind="stable"
    )

    def merged(x: np.ndarray) -> np.ndarray:
        between = x[left] + (x[left + 1] - x[left]) * (fraction if x.ndim == 1 else fraction[:, None])
        return np.concatenate([x, between])[order]

    filled = np.concatenate([np.zeros(len(seq), dtype=bool), np.ones(len(left), dtype=bool)])[order]
    return merged(times), [merged(x) for x in arrays], filled


def _joined(batches: list[ImuBatch]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The batches' sequence numbers, times (ns) and gyr, acc (and mag) arrays as one (float64)."""

    def joined(name: str) -> np.ndarray:
        parts = [getattr(b, name) for b in batches]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    names = ("gyr", "acc", "mag") if batches[0].mag is not None else ("gyr", "acc")
    return joined("seq"), joined("time_ns"), [np.asarray(joined(n), dtype=np.float64) for n in names]


def _missing_segment(strap: StrapTrack, reason: str) -> SegmentOrientation:
    return SegmentOrientation(strap.segment, strap.source_id, strap.device_id, None, None,
                              Quality(QualityLevel.INSUFFICIENT, f"insufficient data: {reason}"))  # fmt: skip


class StrapTrack:
    """One strap: its filter and its recent orientations, times in seconds from the processor's epoch.

    Batches are queued and filtered together, once ``_QUEUE_SAMPLES`` wait or when something reads the
    orientations or the mounting: a filter call and a rest search per one-sample notification at 200 Hz cost
    the stream bench's loop about a fifth of a core. The grouping changes no value (test)."""

    def __init__(self, source_id: str, device_id: str, segment: str, rest: dict):
        self.source_id, self.device_id, self.segment = source_id, device_id, segment
        self.rest = rest
        self.waiting: list[ImuBatch] = []  # the batches that measure the sample rate
        self.pending: list[ImuBatch] = []  # the batches not yet filtered
        self.newest_s: float | None = None  # the newest sample's time, once filtered or queued
        self.epoch_ns = 0
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
        self._mounting = MountingCalibration(segment, rest["mounting_window_s"])
        self.last_sample = None  # (seq, time, gyr, acc, mag) of the newest sample, to bridge a lost one
        self.max_fill = 0  # samples a lost run may have and still be put back (max_gap_s at the rate)

    def add(self, batch: ImuBatch, epoch_ns: int, rate_samples: int) -> None:
        self.epoch_ns = epoch_ns
        if self.filter is None:
            self.waiting.append(batch)
            rate_hz = measured_rate(self.waiting, rate_samples)
            if rate_hz is None:
                return
            self.filter, self.period_s, self.rate_hz = OrientationFilter(rate_hz), 1.0 / rate_hz, rate_hz
            self.max_fill = math.floor(self.rest["max_gap_s"] * rate_hz)
            self.started_s = self.first_s = (min(int(b.time_ns.min()) for b in self.waiting) - epoch_ns) / 1e9
            batches, self.waiting = self.waiting, []
        else:
            batches = [batch]
        self.pending += batches
        newest = max((int(b.time_ns.max()) - epoch_ns) / 1e9 for b in batches)
        self.newest_s = newest if self.newest_s is None else max(self.newest_s, newest)
        if sum(len(b) for b in self.pending) >= _QUEUE_SAMPLES:
            self._catch_up()

    @property
    def mounting(self) -> MountingCalibration:
        self._catch_up()
        return self._mounting

    def _catch_up(self) -> None:
        """Filter the queued batches, each run of them with the same sensors as one."""
        pending, self.pending = self.pending, []
        start = 0
        for i in range(1, len(pending) + 1):
            if i == len(pending) or (pending[i].mag is None) != (pending[start].mag is None):
                self._run(*self._filled(*_joined(pending[start:i])))
                start = i

    def _filled(self, seq: np.ndarray, time_ns: np.ndarray, arrays: list[np.ndarray]):
        """The samples' gyr, acc, mag and times (s) with the samples the link lost before and among them put
        back (``fill_lost``) and which ones those are."""
        times, seq = (time_ns - self.epoch_ns) / 1e9, seq.astype(np.int64)
        last, self.last_sample = self.last_sample, (int(seq[-1]), float(times[-1]), [x[-1] for x in arrays])
        if not self._lost_any(seq, last):  # nearly every batch: nothing to put back, so nothing to join
            return (
                *arrays[:2],
                arrays[2] if len(arrays) > 2 else None,
                times,
                np.zeros(len(times), dtype=bool),
            )
        bridge = last is not None and len(last[2]) == len(arrays)  # the magnetometer neither came nor went
        if bridge:
            seq, times = np.concatenate([[last[0]], seq]), np.concatenate([[last[1]], times])
            arrays = [np.vstack([first, x]) for first, x in zip(last[2], arrays, strict=True)]
        times, arrays, filled = fill_lost(seq, times, arrays, self.max_fill)
        start = 1 if bridge else 0  # the previous batch's last sample only anchored a gap
        return (*(x[start:] for x in arrays[:2]), arrays[2][start:] if len(arrays) > 2 else None,
                times[start:], filled[start:])  # fmt: skip

    def _lost_any(self, seq: np.ndarray, last) -> bool:
        """Whether ``fill_lost`` would put back any sample before or within the batch (``last``: the sample
        before it)."""
        steps = np.diff(seq, prepend=seq[0] if last is None else last[0])
        return bool(_bridged(steps, self.max_fill).any())

    def _run(self, gyr, acc, mag, times, filled) -> None:
        gyr, acc = np.ascontiguousarray(gyr), np.ascontiguousarray(acc)
        end = self._rest_end(gyr, acc, mag) if self.bias is None else None
        if end is None:
            self._filter(gyr, acc, mag, times, filled)
            return
        # a rest ends at sample ``end``: the filter restarts from the rest's samples, bias-corrected
        head = slice(None, end + 1)
        # the samples up to the rest's end meet the filter that knew no bias
        bias, self.bias = self.bias, None
        self._filter(gyr[head], acc[head], None if mag is None else mag[head], times[head], filled[head])
        self.bias, self.bias_s = bias, float(times[end])
        rest_gyr, rest_acc, rest_mag = self.recent
        self._mounting.static_pose(rest_acc, self.bias_s)
        self.filter, self.recent = OrientationFilter(self.rate_hz), None
        self.started_s = self.bias_s - len(rest_gyr) * self.period_s
        self.filter.update_batch(np.ascontiguousarray(rest_gyr - self.bias), rest_acc, rest_mag)
        rest = slice(end + 1, None)
        self._filter(gyr[rest], acc[rest], None if mag is None else mag[rest], times[rest], filled[rest])

    def _rest_end(self, gyr: np.ndarray, acc: np.ndarray, mag: np.ndarray | None) -> int | None:
        """The index in this batch of the first sample ending a rest window (sets ``bias`` and ``recent`` to
        that window), or None (``recent`` keeps the last window's samples). Stationarity test after I. Skog
        et al., "Zero-velocity detection: an algorithm evaluation", IEEE Trans. Biomed. Eng. 57(11), 2010:
        the window's mean squared spread about its mean, gyroscope and accelerometer, each over its white
        noise variance, at most ``rest_noise_ratio``² (the spread is about the mean, not zero, for the
        gyroscope's bias is unknown), the mean angular rate at most ``rest_max_bias`` (deg/s), and the mean specific
        force within ``rest_acc_tolerance`` of g."""
        fast = np.flatnonzero(np.linalg.norm(gyr, axis=1) > rest_speed_limit(self.rest, self.rate_hz))
        if len(fast):  # no window holding these samples is a rest: search before the first and after the last
            first, after = int(fast[0]), int(fast[-1]) + 1
            end = (
                self._rest_end(gyr[:first], acc[:first], None if mag is None else mag[:first])
                if first
                else None
            )
            if end is not None:
                return end
            self.recent = (np.empty((0, 3)), np.empty((0, 3)), None)
            end = (
                self._rest_end(gyr[after:], acc[after:], None if mag is None else mag[after:])
                if after < len(gyr)
                else None
            )
            return None if end is None else end + after
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
        n = rest_window(self.rest, self.rate_hz)
        if len(all_gyr) >= n:
            still = still_windows(all_gyr, all_acc, self.rate_hz, self.rest)
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

    def _filter(self, gyr: np.ndarray, acc: np.ndarray, mag: np.ndarray | None, times: np.ndarray,
                filled: np.ndarray) -> None:  # fmt: skip
        if not len(gyr):
            return
        if self.bias is not None:
            gyr = gyr - self.bias
        gyr, acc = np.ascontiguousarray(gyr), np.ascontiguousarray(acc)
        mag = None if mag is None else np.ascontiguousarray(mag)
        out = self.filter.update_batch(gyr, acc, mag)
        if self.bias is not None:
            self._mounting.movement(gyr, acc, times)
        quats = out["quat6d"] if mag is None else out["quat9d"]
        flags = (np.full(len(gyr), _NO_MAG) if mag is None
                 else np.where(np.asarray(out["mag_disturbed"], dtype=bool), _DISTURBED, 0))  # fmt: skip
        flags = flags | np.where(filled, _LOST, 0)
        keep = _increasing(times, self.times[-1] if len(self.times) else -math.inf)
        self.times = np.concatenate([self.times, times[keep]])
        self.quats = np.concatenate([self.quats, quats[keep]])
        self.flags = np.concatenate([self.flags, flags[keep].astype(np.int8)])

    def end_s(self) -> float | None:
        """Where the strap's orientations reach: its newest sample, filtered or queued (the filter keeps every
        sample later than all before it)."""
        return self.newest_s

    def orientations(self, grid: np.ndarray, max_gap_s: float) -> list[SegmentOrientation]:
        self._catch_up()
        if not len(self.times):
            reason = "measuring the strap's sample rate" if self.filter is None else "no strap samples yet"
            return [_missing_segment(self, reason)] * len(grid)
        left, fraction, valid = brackets(self.times, grid, max_gap_s)
        right = np.minimum(left + 1, len(self.times) - 1)
        quats = self._mounting.segment_quaternions(slerp(self.quats[left], self.quats[right], fraction), grid)
        span, flags = self.times[right] - self.times[left], self.flags[left] | self.flags[right]
        return [
            self._orientation(quats[j], grid[j], span[j], flags[j]) if valid[j]
            else _missing_segment(self, "no strap samples around this time")
            for j in range(len(grid))
        ]  # fmt: skip

    def _orientation(self, quat, t: float, span: float, flags: int) -> SegmentOrientation:
        reasons = [why for why in (self._mounting.reason(t),) if why]
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
        elif flags & _LOST:
            provenance = Provenance.FILLED
            reasons.append("integrated over strap samples the link lost, interpolated")
        quality = (
            Quality(QualityLevel.DEGRADED, "; ".join(reasons)) if reasons else Quality(QualityLevel.GOOD)
        )
        return SegmentOrientation(self.segment, self.source_id, self.device_id, tuple(quat.tolist()), provenance,
                                  quality, self._tolerance(t, flags),
                                  WORLD_STRAP if flags & _NO_MAG else WORLD_MAGNETIC)  # fmt: skip

    def _tolerance(self, t: float, flags: int) -> float | None:
        """The tolerance the strap's own value claims: only with an absolute heading (a magnetometer, not
        disturbed) and a calibrated mounting that needs no caveat."""
        if flags & (_NO_MAG | _DISTURBED) or self._mounting.sigma_deg(t) is None:
            return None
        return orientation_tolerance_deg(MAGNETIC_HEADING_SIGMA_DEG, self._mounting.sigma_deg(t))

    def trim(self, until_s: float) -> None:
        """Drop the samples no later item needs: all before the last one at or before ``until_s``."""
        self._catch_up()
        first = max(int(np.searchsorted(self.times, until_s, side="right")) - 1, 0)
        self.times, self.quats, self.flags = self.times[first:], self.quats[first:], self.flags[first:]


class MountingCalibration:
    """A leg strap's mounting on its segment (``kinefuse.fusion.mounting.estimate_mounting``), found live: the
    strap's first rest is the static upright pose (gravity gives the segment's z axis), the ``window_s`` of
    gyroscope samples from the first movement after it the functional movement (the knee's flexion axis,
    the segment's y; Seel, Raisch & Schauer 2014, Sensors 14:6891), their specific force the segment's
    mean lean, which tells forward outside walking. Samples slower than ``_MOVING_RAD_S``
    are left out. A window without movement ends ``window_s`` after the rest, so a strap that never moves
    is told insufficient. An insufficient window is reported and the next one tried; only the current
    window's samples are kept.
    Segments other than ``CALIBRATED_KINDS`` keep the nominal mounting."""

    def __init__(self, segment: str, window_s: float):
        self.segment, self.kind = segment, segment.partition("_")[2]
        self.window_s = window_s
        self.static_acc: np.ndarray | None = None
        self.window_start_s: float | None = None
        self.moving: list[np.ndarray] = []  # the current window's moving gyroscope samples (rad/s)
        self.moving_acc: list[np.ndarray] = []  # and their specific force (m/s²)
        self.last_s: float | None = None
        self.estimate: MountingEstimate | None = None  # the accepted one, or the last insufficient one
        self.calibrated_s: float | None = None  # from when the mounting is applied

    @property
    def calibrated(self) -> bool:
        return self.calibrated_s is not None

    def static_pose(self, acc: np.ndarray, end_s: float) -> None:
        if self.kind in CALIBRATED_KINDS and self.static_acc is None:
            self.static_acc, self.window_start_s = np.array(acc), end_s

    def movement(self, gyr: np.ndarray, acc: np.ndarray, times: np.ndarray) -> None:
        """Bias-corrected gyroscope samples (rad/s) and specific force (m/s²) at ``times`` (s), after the
        static pose. A window ends with its first sample ``window_s`` after its start, however the samples
        were batched."""
        if self.static_acc is None or self.calibrated:
            return
        after = times > self.window_start_s
        gyr, acc, times = gyr[after], acc[after], times[after]
        while len(times) and not self.calibrated:
            moving = np.linalg.norm(gyr, axis=1) > _MOVING_RAD_S
            ends = np.flatnonzero(times - self.window_start_s >= self.window_s)
            first = int(np.argmax(moving))
            if not self.moving and moving[first] and (not len(ends) or first <= ends[0]):
                # the window starts with the movement (if that comes before the window's end)
                self.window_start_s = float(times[first]) - 1e-9
                ends = np.flatnonzero(times - self.window_start_s >= self.window_s)
            stop = int(ends[0]) + 1 if len(ends) else len(times)
            if moving[:stop].any():
                self.moving.append(gyr[:stop][moving[:stop]])
                self.moving_acc.append(acc[:stop][moving[:stop]])
            self.last_s = float(times[stop - 1])
            if len(ends):
                self._estimate()
            gyr, acc, times = gyr[stop:], acc[stop:], times[stop:]

    def end_window(self) -> None:
        """Estimate from the current window's samples now (offline: the whole recording is one window)."""
        if self.static_acc is not None and not self.calibrated and self.last_s is not None:
            self._estimate()

    def _estimate(self) -> None:
        estimate = estimate_mounting(
            np.concatenate([np.empty((0, 3)), *self.moving]), np.concatenate([np.empty((0, 3)), *self.moving_acc]),
            static_acc=self.static_acc, min_sign_cue=SIGN_CUE, lean_sign=LEAN_SIGNS.get(self.kind, 0.0),
        )  # fmt: skip
        self.moving, self.moving_acc, self.window_start_s = [], [], self.last_s
        self.estimate = estimate
        if estimate.mounting is not None:
            self.calibrated_s = self.last_s

    def segment_quaternions(self, quats: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """Strap orientations (n, 4) at ``grid`` turned into the segment's from ``calibrated_s`` on."""
        if not self.calibrated or not len(quats):
            return quats
        after = grid >= self.calibrated_s
        quats = quats.copy()
        if after.any():
            quats[after] = segment_quaternion(quats[after], self.estimate.mounting)
        return quats

    def sigma_deg(self, t: float) -> float | None:
        """The calibrated mounting's standard deviation (deg) at ``t``; None before it, or when its reason
        says the value is biased or partial."""
        if not self.calibrated or t < self.calibrated_s or self.reason(t) is not None:
            return None
        axis = self.estimate.axis_sigma_deg
        return max(axis if np.isfinite(axis) else MOUNTING_FLOOR_DEG, MOUNTING_FLOOR_DEG)

    def reason(self, t: float) -> str | None:
        """What the segment orientation at ``t`` says about the mounting; None when nothing is wrong."""
        if self.kind not in CALIBRATED_KINDS:
            return f"{_MOUNTING}: no functional calibration for the {self.segment}"
        if self.calibrated and t >= self.calibrated_s:
            if self.estimate.quality.level is QualityLevel.GOOD:
                return _THIGH_BIAS if self.kind == "thigh" else None
            also = f"; {_THIGH_BIAS}" if self.kind == "thigh" else ""
            return f"mounting: {self.estimate.quality.reason}{also}"
        if self.static_acc is None:
            return f"{_NOT_YET}: no rest yet for the static pose"
        if self.calibrated:  # an item from before the calibration, published after it
            return f"{_NOT_YET}: collecting movement"
        if self.estimate is not None and not self.calibrated:
            return (f"{_NOT_YET}: insufficient over {self.window_s:g} s after the rest: "
                    f"{self.estimate.quality.reason}; trying the next {self.window_s:g} s")  # fmt: skip
        if not self.moving:
            return f"{_NOT_YET}: waiting for movement after the rest (the static pose)"
        return f"{_NOT_YET}: collecting movement ({self.last_s - self.window_start_s:.0f} of {self.window_s:g} s)"
