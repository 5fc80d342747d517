"""Built-in processor: finds samples a device never delivered, from jumps in its sequence numbers,
and reports each gap as an event (how many samples, between which sequence numbers)."""

from __future__ import annotations

import numpy as np

from kinefuse import hookimpl
from kinefuse.interfaces import ProcessorSpec
from kinefuse.types import Event, Provenance, SampleBatch


class SequenceGaps:
    def __init__(self, options: dict, processor_id: str):
        self.processor_id = processor_id
        self._last_seq: dict[tuple[str, str], int] = {}

    def process(self, batch: SampleBatch) -> list[Event]:
        key = (batch.source_id, batch.device_id)
        previous = self._last_seq.get(key)
        seq = batch.seq if previous is None else np.concatenate([[previous], batch.seq])
        self._last_seq[key] = int(batch.seq[-1])
        offset = 0 if previous is None else 1
        jumps = np.flatnonzero(np.diff(seq) > 1)
        return [self._gap_event(batch, seq, i, i + 1 - offset) for i in jumps]

    def _gap_event(self, batch: SampleBatch, seq: np.ndarray, jump: int, resumed_at: int) -> Event:
        time_ns = batch.time_ns if batch.time_ns is not None else batch.host_ns
        return Event(
            kind="sample_gap",
            time_ns=int(time_ns[resumed_at]),
            source_id=batch.source_id,
            device_id=batch.device_id,
            detail={"missing": int(seq[jump + 1] - seq[jump] - 1), "after_seq": int(seq[jump])},
            provenance=Provenance.MEASURED,
            processor=self.processor_id,
        )

    def flush(self) -> list[Event]:
        return []


@hookimpl
def register_processors():
    return [ProcessorSpec("sequence_gaps", SequenceGaps, {}, __doc__.strip())]
