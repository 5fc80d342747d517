"""Runs one configured source: builds a fresh instance per (re)start, owns its counters, restarts it
after a failure with jittered exponential backoff inside a restart budget, then marks it failed."""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from kinefuse.config import ComponentConfig
from kinefuse.interfaces import SourceSpec
from kinefuse.types import BatchError, DeviceAdded, DeviceInfo, SampleBatch, check_batch

_NS = 1_000_000_000


class SourceState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"  # waiting to restart after a failure
    FAILED = "failed"  # restart budget spent; the reason says why
    FINISHED = "finished"  # the input ended (e.g. a file played out)
    STOPPED = "stopped"


class RestartPolicy:
    """At most ``budget`` restarts within ``window_s``; delays double from ``initial_s`` up to ``max_s``,
    each multiplied by a random factor in [0.5, 1.5) so that sources failing together do not retry together."""

    def __init__(self, budget: int, window_s: float, initial_s: float, max_s: float, rng: random.Random):
        self.budget, self.window_ns = budget, int(window_s * _NS)
        self.initial_s, self.max_s = initial_s, max_s
        self._rng = rng
        self._restarts_ns: collections.deque[int] = collections.deque()

    @classmethod
    def from_config(cls, section: dict) -> RestartPolicy:
        return cls(
            section["restart_budget"],
            section["restart_window_s"],
            section["backoff_initial_s"],
            section["backoff_max_s"],
            random.Random(),
        )

    def next_delay(self, now_ns: int) -> float | None:
        """The delay before the next restart, or None when the budget is spent."""
        while self._restarts_ns and now_ns - self._restarts_ns[0] > self.window_ns:
            self._restarts_ns.popleft()
        if len(self._restarts_ns) >= self.budget:
            return None
        attempt = len(self._restarts_ns)
        self._restarts_ns.append(now_ns)
        return min(self.max_s, self.initial_s * 2**attempt) * self._rng.uniform(0.5, 1.5)


class SourceSupervisor:
    """One configured source under supervision. Implements kinefuse.interfaces.SourceContext."""

    def __init__(
        self,
        component: ComponentConfig,
        spec: SourceSpec,
        emit_item: Callable[[object], None],
        policy: RestartPolicy,
        database_path: Path | None = None,
        room: Callable[[], Awaitable[None]] | None = None,
    ):
        self.source_id = component.id
        self.database_path = database_path
        self.component, self.spec = component, spec
        self.log = logging.getLogger(f"kinefuse.source.{component.id}")
        self._emit_item = emit_item
        self._room = room  # the agent's: waits while the pipeline's channels are crowded
        self._policy = policy
        self.state = SourceState.STARTING
        self.reason = ""
        self.devices: dict[str, DeviceInfo] = {}
        self.received = 0  # samples accepted into the pipeline
        self.dropped = 0  # samples lost to full channels
        self.decode_errors = 0  # input the source could not decode, and malformed batches
        self.restarts = 0
        self.latency_ns = 0  # arrival to processing, last batch
        self._rate = _RateMeter()

    # --- SourceContext -------------------------------------------------------------------------
    def add_device(self, device: DeviceInfo) -> None:
        known = self.devices.get(device.device_id)
        if known is not None:
            # a restarted source declares its devices again; its meta may differ, but not what it is
            if (known.kind, known.clock_hz, known.keypoint_set) != (
                device.kind,
                device.clock_hz,
                device.keypoint_set,
            ):
                raise ValueError(
                    f"source {self.source_id!r}: device {device.device_id!r} redeclared differently"
                )
            return
        self.devices[device.device_id] = device
        self._emit_item(DeviceAdded(self.source_id, device))

    def emit(self, batch: SampleBatch) -> None:
        try:
            if batch.source_id != self.source_id:
                raise BatchError(f"source {self.source_id!r} emitted a batch labelled {batch.source_id!r}")
            if batch.device_id not in self.devices:
                raise BatchError(f"source {self.source_id!r}: device {batch.device_id!r} was never declared")
            check_batch(batch)
        except BatchError as exc:
            self.decode_error(str(exc))
            return
        self.received += len(batch)
        self._rate.add(len(batch))
        self._emit_item(batch)

    async def wait_for_room(self) -> None:
        if self._room is None:
            await asyncio.sleep(0)
        else:
            await self._room()

    def decode_error(self, message: str) -> None:
        self.decode_errors += 1
        self.log.warning("decode error: %s", message)

    # --- supervision ---------------------------------------------------------------------------
    def note_dropped(self, samples: int) -> None:
        self.dropped += samples

    async def run(self) -> None:
        """Run the source until cancelled, it finishes, or its restart budget is spent."""
        try:
            while True:
                try:
                    self.state = SourceState.STARTING
                    # constructors may block (open files, build models): off the loop, so others run on
                    source = await asyncio.to_thread(
                        self.spec.factory, self.component.options, self.source_id
                    )
                    self.state = SourceState.RUNNING
                    await source.run(self)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any plugin failure is contained here
                    if not await self._back_off(exc):
                        return
                else:
                    self.state, self.reason = SourceState.FINISHED, "input ended"
                    self.log.info("finished: input ended")
                    return
        finally:
            if self.state in (SourceState.RUNNING, SourceState.BACKOFF, SourceState.STARTING):
                self.state = SourceState.STOPPED

    async def _back_off(self, exc: Exception) -> bool:
        self.reason = f"{type(exc).__name__}: {exc}"
        delay = self._policy.next_delay(time.monotonic_ns())
        if delay is None:
            self.state = SourceState.FAILED
            self.reason = f"restart budget spent; last error: {self.reason}"
            self.log.error("failed: %s", self.reason)
            return False
        self.state = SourceState.BACKOFF
        self.log.warning("error: %s; restarting in %.2f s", self.reason, delay)
        await asyncio.sleep(delay)
        self.restarts += 1
        return True

    def stats(self) -> dict:
        return {
            "source_id": self.source_id,
            "type": self.component.type,
            "state": str(self.state),
            "reason": self.reason,
            "received": self.received,
            "dropped": self.dropped,
            "decode_errors": self.decode_errors,
            "restarts": self.restarts,
            "rate_hz": round(self._rate.rate(), 1),
            "latency_ms": round(self.latency_ns / 1e6, 2),
            "devices": sorted(self.devices),
        }


class _RateMeter:
    """Samples per second over the last few seconds, from monotonic time."""

    WINDOW_NS = 5 * _NS

    def __init__(self) -> None:
        self._events: collections.deque[tuple[int, int]] = collections.deque()

    def add(self, count: int) -> None:
        now = time.monotonic_ns()
        self._events.append((now, count))
        while now - self._events[0][0] > self.WINDOW_NS:
            self._events.popleft()

    def rate(self) -> float:
        if len(self._events) < 2:
            return 0.0
        span = self._events[-1][0] - self._events[0][0]
        counted = sum(c for _, c in list(self._events)[1:])
        return counted * _NS / span if span > 0 else 0.0
