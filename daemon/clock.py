"""Clock alignment: each device's clock mapped onto host monotonic time, one ClockMapper per device.

The mapping itself (lower envelope of the residuals for the offset, forgetting least squares on block
minima for the skew) lives in the ``clock_map`` kernel; see ext/clock_map.pyx.

A device that declares a constant frame rate (a camera whose ``DeviceInfo.meta`` has ``"fps"``) stamps
frame k at t0 + k / fps on its own clock, but the stamps it reports carry jitter (exposure, driver and
detector scheduling).  Its stamps first go through a ``FrameGrid``: a robust running line fit of device
time against the frame number ``seq`` that gives each frame its regularised device time, so the jitter
reaches neither the aligned times nor the mapper's skew fit.  IMUs are mapped from their stamps as they
are.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from kinefuse._native import clock_map
from kinefuse.types import DeviceInfo, DeviceKind, SampleBatch

_MAD_TO_SIGMA = 1.4826  # the median absolute deviation of a Gaussian times this is its sigma


class UnknownDeviceError(KeyError):
    """A batch came from a device that was never added."""

    def __str__(self) -> str:  # KeyError would print the message quoted, as if it were a key
        return str(self.args[0])


class FrameGrid:
    """Regularised device times of a constant-rate stream from its jittered stamps, causally.

    Frame ``seq`` of a stream at a constant rate was taken at ``t0 + seq * period`` device ticks; the
    stamps scatter around that line.  Over the last ``window`` accepted frames the line is fitted
    robustly: its slope is the median of the slopes between frames half the window apart (Theil's
    abbreviated estimator, H. Theil, "A rank-invariant method of linear and polynomial regression
    analysis", Proc. KNAW 53, 1950; the median-of-pairwise-slopes estimator of P. K. Sen, "Estimates of
    the regression coefficient based on Kendall's tau", JASA 63, 1968, restricted to O(n) pairs), its
    intercept the median of the residuals, and each frame gets the fitted line's value at its ``seq``,
    the fit including that frame and nothing later.  A dropped frame is a jump of ``seq`` and keeps the
    grid.  The fit is first trusted after ``min_frames`` frames; before that the stamps pass unchanged.

    A stamp more than ``gate`` robust scales (1.4826 median absolute deviations, at least ``min_scale_s``)
    off the line is not learnt from and passes unchanged; ``restart_after`` such stamps in a row (a new
    time base, another frame rate), a ``seq`` that does not increase (a restarted device) or one that
    jumps by more than a window start a new fit.
    """

    def __init__(
        self,
        ticks_per_frame: float,
        window: int = 256,
        min_frames: int = 16,
        gate: float = 5.0,
        min_scale_s: float = 1e-4,
        restart_after: int = 3,
        clock_hz: float = 1.0,
    ) -> None:
        if not (math.isfinite(ticks_per_frame) and ticks_per_frame > 0.0):
            raise ValueError(f"ticks_per_frame must be finite and positive, got {ticks_per_frame!r}")
        if not 4 <= min_frames <= window:
            raise ValueError(f"need 4 <= min_frames <= window, got {min_frames} and {window}")
        self._period = float(ticks_per_frame)
        self._window, self._min_frames, self._gate = int(window), int(min_frames), float(gate)
        self._min_scale = float(min_scale_s) * float(clock_hz)
        self._restart_after = int(restart_after)
        # frames kept in order in the second half-or-less of a double-length buffer (amortised O(1) append)
        self._s = np.empty(2 * self._window)
        self._y = np.empty(2 * self._window)
        self.restarts = 0
        self._reset()

    def _reset(self) -> None:
        self._lo = self._hi = 0
        self._seq0 = None  # the fit's origin: seq0 and its stamp; y = stamp - (tick0 + period * s)
        self._tick0 = 0.0
        self._last_seq = None
        self._line = None  # (intercept, slope, scale) of the current fit, y against s
        self._off: list[tuple[int, float]] = []  # consecutive stamps off the line

    @property
    def frames(self) -> int:
        """Frames in the current fit."""
        return self._hi - self._lo

    def regularise(self, seq, device_ticks) -> np.ndarray:
        """Each frame's device time (ticks, float64) on the fitted grid, in order, learning as it goes."""
        seqs = np.asarray(seq, dtype=np.int64)
        ticks = np.asarray(device_ticks, dtype=np.float64)
        out = ticks.copy()
        for i in range(len(seqs)):
            out[i] = self._step(int(seqs[i]), float(ticks[i]))
        return out

    def _step(self, seq: int, tick: float) -> float:
        if not math.isfinite(tick):
            return tick
        if self._last_seq is not None and not 0 < seq - self._last_seq <= self._window:
            self.restarts += 1
            self._reset()
        self._last_seq = seq
        if self._seq0 is None:
            self._seq0, self._tick0 = seq, tick
        s = float(seq - self._seq0)
        y = tick - (self._tick0 + self._period * s)
        if self._line is not None:
            a, b, scale = self._line
            if abs(y - (a + b * s)) > self._gate * scale:
                self._off.append((seq, tick))
                if len(self._off) >= self._restart_after:
                    self.restarts += 1
                    off = self._off
                    self._reset()
                    for q, t in off:
                        self._last_seq = q
                        if self._seq0 is None:
                            self._seq0, self._tick0 = q, t
                        self._append(
                            float(q - self._seq0), t - (self._tick0 + self._period * (q - self._seq0))
                        )
                return tick
        self._off.clear()
        self._append(s, y)
        if self._line is None:
            return tick
        a, b, _ = self._line
        return self._tick0 + self._period * s + (a + b * s)

    def _append(self, s: float, y: float) -> None:
        if self._hi == len(self._s):
            keep = self._window - 1
            self._s[:keep] = self._s[self._hi - keep : self._hi]
            self._y[:keep] = self._y[self._hi - keep : self._hi]
            self._lo, self._hi = 0, keep
        self._s[self._hi], self._y[self._hi] = s, y
        self._hi += 1
        if self._hi - self._lo > self._window:
            self._lo += 1
        n = self._hi - self._lo
        if n < self._min_frames:
            self._line = None
            return
        sw, yw = self._s[self._lo : self._hi], self._y[self._lo : self._hi]
        h = n // 2
        b = float(np.median((yw[h:] - yw[: n - h]) / (sw[h:] - sw[: n - h])))
        r = yw - b * sw
        a = float(np.median(r))
        scale = max(_MAD_TO_SIGMA * float(np.median(np.abs(r - a))), self._min_scale)
        self._line = (a, b, scale)


def frame_period_ticks(device: DeviceInfo) -> float | None:
    """Device ticks per frame of a device that declares a constant frame rate (a camera with a positive
    ``meta["fps"]``), else None."""
    if device.kind != DeviceKind.CAMERA:
        return None
    fps = device.meta.get("fps") if isinstance(device.meta, dict) else None
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(fps) and fps > 0.0):
        return None
    return float(device.clock_hz) / fps


_RESTART_BACK_S = 1.0  # device clock seconds back (with the sequence numbers) that mean the clock restarted


class ClockAligner:
    """Fills in ``time_ns`` of every batch; ``mapper_options`` (forgetting, ...) go to each ClockMapper."""

    def __init__(self, **mapper_options) -> None:
        self._options = mapper_options
        self._mappers: dict[tuple[str, str], clock_map.ClockMapper] = {}
        self._grids: dict[tuple[str, str], FrameGrid] = {}
        self._last: dict[tuple[str, str], tuple[int, int]] = {}  # each device's last (seq, device time)
        self.clock_restarts: dict[tuple[str, str], int] = {}

    def add_device(self, source_id: str, device: DeviceInfo) -> None:
        """Start mapping a device's clock.  Adding it again (a restarted source) keeps what was learnt,
        unless its clock rate changed.  A device with a constant frame rate (``frame_period_ticks``) has
        its stamps regularised onto its frame grid (``FrameGrid``) before the mapping."""
        key = (source_id, device.device_id)
        mapper = self._mappers.get(key)
        if mapper is None or mapper.clock_hz != float(device.clock_hz):
            self._mappers[key] = clock_map.ClockMapper(device.clock_hz, **self._options)
        period = frame_period_ticks(device)
        if period is None:
            self._grids.pop(key, None)
        elif key not in self._grids or self._grids[key]._period != period:
            self._grids[key] = FrameGrid(period, clock_hz=device.clock_hz)

    def align(self, batch: SampleBatch) -> SampleBatch:
        """The batch with ``time_ns`` set to its samples' device times mapped onto host monotonic ns."""
        mapper = self._mappers.get((batch.source_id, batch.device_id))
        if mapper is None:
            raise UnknownDeviceError(
                f"source {batch.source_id!r} emitted a batch for device {batch.device_id!r} before adding it "
                "(call add_device first)"
            )
        key = (batch.source_id, batch.device_id)
        if self._restarted(key, batch):
            # the device's clock started again (a power-cycled strap, a restarted simulation): the old mapping
            # would put its new samples far in the past; a reconnect that kept the clock running keeps it
            # (a frame grid starts a new fit by itself when the sequence numbers go back)
            mapper = self._mappers[key] = clock_map.ClockMapper(mapper.clock_hz, **self._options)
            self.clock_restarts[key] = self.clock_restarts.get(key, 0) + 1
        grid = self._grids.get(key)
        ticks = batch.device_time if grid is None else grid.regularise(batch.seq, batch.device_time)
        return dataclasses.replace(batch, time_ns=mapper.update_batch(ticks, batch.host_ns))

    def _restarted(self, key: tuple[str, str], batch: SampleBatch) -> bool:
        """Whether the batch starts a new run of the device: its sequence numbers went back and its clock
        more than ``_RESTART_BACK_S`` (a late notification goes back less; a wrapped counter alone, not both)."""
        last = self._last.get(key)
        self._last[key] = (int(batch.seq[-1]), int(batch.device_time[-1]))
        if last is None or int(batch.seq[0]) >= last[0]:
            return False
        return last[1] - int(batch.device_time[0]) > _RESTART_BACK_S * self._mappers[key].clock_hz

    def fits(self) -> dict[tuple[str, str], dict]:
        """Per (source_id, device_id): the current fit and its counters; offset None before any sample."""
        return {
            key: {
                "clock_offset_ns": m.offset_ns,
                "clock_skew_ppm": m.skew_ppm,
                "samples": m.count,
                "rejected": m.rejected,
                "clamped": m.clamped,
            }
            for key, m in self._mappers.items()
        }
