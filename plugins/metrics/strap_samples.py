"""A strap's latest samples, kept by the ``gait`` and ``landing`` processors: by sequence number, with what
has been reported of them, and their window placed on a grid (lost samples interpolated and marked)."""

from __future__ import annotations

import dataclasses

import numpy as np

from kinefuse.types import ImuBatch, Quality, QualityLevel


@dataclasses.dataclass(frozen=True)
class StrapGrid:
    """A strap's window of samples placed by sequence number (``index`` into the grid): ``acc`` and ``gyr``
    on every grid sample, the lost ones interpolated, and which were ``present``."""

    index: np.ndarray
    time_ns: np.ndarray
    rate_hz: float
    present: np.ndarray
    acc: np.ndarray
    gyr: np.ndarray

    def time_at(self, where: float) -> int:
        """The time (ns) of a fractional grid position."""
        return int(round(np.interp(where, self.index, self.time_ns)))

    def gap_quality(self, where: float, margin_s: float) -> Quality:
        """Insufficient where a sample within ``margin_s`` of ``where`` was lost (it rests on interpolated
        ones), saying how many; else good."""
        margin = int(round(margin_s * self.rate_hz))
        missing = int(
            np.sum(~self.present[max(int(np.floor(where)) - margin, 0) : int(np.ceil(where)) + margin + 1])
        )
        if not missing:
            return Quality(QualityLevel.GOOD)
        why = f"{missing} samples missing within {margin_s * 1e3:.0f} ms: it rests on interpolated ones"
        return Quality(QualityLevel.INSUFFICIENT, why)


@dataclasses.dataclass
class StrapSamples:
    """One strap's latest samples (by sequence number), with what has been reported of them (the ``gait`` and
    ``landing`` processors)."""

    side: str
    place: str
    segment: str
    seq: list = dataclasses.field(default_factory=list)
    time_ns: list = dataclasses.field(default_factory=list)
    acc: list = dataclasses.field(default_factory=list)
    gyr: list = dataclasses.field(default_factory=list)
    reported_ns: int = -1  # contacts up to this time are out
    next_ns: int | None = None  # the next detection once samples reach this time
    gyr_bias: np.ndarray | None = None  # rad/s, from its first standing still (kept once found)
    stride_lengths: dict = dataclasses.field(default_factory=dict)  # (rest, rest times ns, bias) -> m

    def add(self, batch: ImuBatch, keep_ns: int) -> None:
        times = batch.time_ns if batch.time_ns is not None else batch.host_ns
        self.seq.append(batch.seq)
        self.time_ns.append(np.asarray(times, dtype=np.int64))
        self.acc.append(batch.acc)
        self.gyr.append(batch.gyr)
        if len(self.seq) > 64:
            self._merge()
            self._trim(keep_ns)

    def due(self, batch: ImuBatch, keep_ns: int, first_ns: int, every_ns: int) -> int | None:
        """Keep ``batch``; the newest sample's time where a detection is due (``first_ns`` after the first
        sample, then every ``every_ns`` of samples), else None."""
        self.add(batch, keep_ns)
        newest = int(self.time_ns[-1][-1])
        if self.next_ns is None:
            self.next_ns = newest + first_ns
        if newest < self.next_ns:
            return None
        self.next_ns = newest + every_ns
        return newest

    def grid(self, keep_ns: int) -> StrapGrid | None:
        """The window placed by sequence number; None with fewer than two samples or no time between them."""
        seq, time_ns, acc, gyr = self.window(keep_ns)
        index = seq - seq[0]
        if len(seq) < 2 or time_ns[-1] <= time_ns[0]:
            return None
        grid = np.arange(index[-1] + 1)
        present = np.zeros(len(grid), dtype=bool)
        present[index] = True
        acc, gyr = (np.column_stack([np.interp(grid, index, x[:, k]) for k in range(3)]) for x in (acc, gyr))
        return StrapGrid(
            index, time_ns, float(index[-1] / ((time_ns[-1] - time_ns[0]) / 1e9)), present, acc, gyr
        )

    def window(self, keep_ns: int) -> tuple[np.ndarray, ...]:
        self._merge()
        self._trim(keep_ns)
        return self.seq[0], self.time_ns[0], self.acc[0], self.gyr[0]

    def _merge(self) -> None:
        for name in ("seq", "time_ns", "acc", "gyr"):
            setattr(self, name, [np.concatenate(getattr(self, name))])

    def _trim(self, keep_ns: int) -> None:
        first = int(np.searchsorted(self.time_ns[0], self.time_ns[0][-1] - keep_ns))
        for name in ("seq", "time_ns", "acc", "gyr"):
            setattr(self, name, [getattr(self, name)[0][first:]])
