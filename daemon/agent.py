"""The agent: ordered start (sinks, processors, services, sources), the processing loop, and a
graceful stop that drains every channel and flushes the sinks within the configured deadline."""

from __future__ import annotations

import asyncio
import datetime
import gc
import logging
import signal
import time
import uuid
from pathlib import Path

from kinefuse import __version__
from kinefuse.channels import ChannelClosed, DropOldestChannel
from kinefuse.clock import ClockAligner
from kinefuse.config import Config
from kinefuse.interfaces import Processor, Sink
from kinefuse.plugin_loader import Registry
from kinefuse.processor_chain import run_chain
from kinefuse.supervisor import RestartPolicy, SourceState, SourceSupervisor
from kinefuse.types import DeviceAdded, ImuBatch, KeypointBatch, SessionInfo

log = logging.getLogger(__name__)
_BATCH_TYPES = (ImuBatch, KeypointBatch)
_TAKE = 256  # items taken from a channel at once
_STEP_NS = 2_000_000  # the processing loop runs at most this long before it lets other tasks run
_YIELD_DEPTH = 32  # batches a replaying source leaves waiting before it yields (_wait_for_room)
_ROOM_POLL_S = 0.005  # how often a waiting replay looks at the channels again
_STATS_INTERVAL_S = 2.0  # how often live source counters are saved by the sinks


def _is_declaration(item: object) -> bool:
    return isinstance(item, DeviceAdded)


class Subscription:
    """A live view of the stream with its own bounded channel: a slow reader skips ahead, never slows the agent."""

    def __init__(self, capacity: int):
        self.channel: DropOldestChannel = DropOldestChannel(capacity, "subscriber")

    @property
    def skipped(self) -> int:
        return self.channel.dropped

    async def get_many(self, max_items: int = _TAKE) -> list:
        return await self.channel.get_many(max_items)


class _SinkRunner:
    """One sink behind its own channel."""

    def __init__(self, name: str, sink: Sink, capacity: int):
        self.name, self.sink = name, sink
        self.channel: DropOldestChannel = DropOldestChannel(capacity, f"sink:{name}", pinned=_is_declaration)
        self.errors = 0

    async def run(self) -> None:
        while True:
            try:
                items = await self.channel.get_many(4096)
            except ChannelClosed:
                return
            try:
                await self.sink.write(items)
            except Exception:
                self.errors += 1
                log.exception("sink %s failed to write %d items", self.name, len(items))


class Agent:
    """Implements kinefuse.interfaces.AgentView for services."""

    def __init__(self, config: Config, registry: Registry):
        self.config, self.registry = config, registry
        self.aligner = ClockAligner()
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.started_ns = time.monotonic_ns()
        self.session = self._new_session()
        self.ingest: DropOldestChannel = DropOldestChannel(
            config["channels"]["ingest_capacity"], "ingest", self._count_drop, pinned=_is_declaration
        )
        policy_section = config["supervisor"]
        self.supervisors = {
            c.id: SourceSupervisor(
                c,
                registry.sources[c.type],
                self.ingest.put,
                RestartPolicy.from_config(policy_section),
                Path(config["storage"]["path"]),
                self._wait_for_room,
            )
            for c in config.sources
        }
        self.processors: dict[str, Processor] = {}
        self.processor_errors: dict[str, int] = {}
        self.sinks: dict[str, _SinkRunner] = {}
        self.subscribers: list[Subscription] = []
        self._tasks: dict[str, list[asyncio.Task]] = {"sources": [], "services": [], "sinks": [], "core": []}
        self._yield_after_ns = 0  # a replaying source's next yield (_wait_for_room)
        self._replaying = False  # a source paces itself by the channels' room: the processing loop must too

    def _new_session(self) -> SessionInfo:
        return SessionInfo(
            session_uuid=str(uuid.uuid4()),
            athlete=self.config["daemon"]["athlete"],
            started_wall=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            started_ns=self.started_ns,
            config_path=str(self.config.path),
            kinefuse_version=__version__,
        )

    async def _wait_for_room(self) -> None:
        """Yield now and then, and wait while the ingest channel or a sink's is more than half full (replaying
        sources await this so that a slow disk slows them instead of dropping what they replay). A yield on
        every batch took 40 % of a flat-out replay's rate, so one each ``_STEP_NS``, or sooner once
        ``_YIELD_DEPTH`` batches wait (the processing loop takes them all at once; what it makes of them
        waits for the sinks' room, ``_deliver``)."""
        self._replaying = True
        if len(self.ingest) >= _YIELD_DEPTH or time.monotonic_ns() >= self._yield_after_ns:
            await asyncio.sleep(0)
            self._yield_after_ns = time.monotonic_ns() + _STEP_NS
        await self._wait_while_half_full([self.ingest, *(runner.channel for runner in self.sinks.values())])

    async def _wait_while_half_full(self, channels: list) -> None:
        while any(len(ch) > ch.capacity // 2 for ch in channels) and not self.stopping.is_set():
            await asyncio.sleep(_ROOM_POLL_S)

    def _count_drop(self, item: object) -> None:
        if isinstance(item, _BATCH_TYPES):
            self.supervisors[item.source_id].note_dropped(len(item))

    # --- AgentView ------------------------------------------------------------------------------
    def subscribe(self, capacity: int) -> Subscription:
        subscription = Subscription(capacity)
        self.subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self.subscribers:
            self.subscribers.remove(subscription)

    def status(self) -> dict:
        return {
            "state": "stopping"
            if self.stopping.is_set()
            else ("running" if self.ready.is_set() else "starting"),
            "version": __version__,
            "session": self.session.session_uuid,
            "athlete": self.session.athlete,
            "uptime_s": round((time.monotonic_ns() - self.started_ns) / 1e9, 1),
            "sources": {sid: sup.stats() for sid, sup in self.supervisors.items()},
            "processors": {pid: {"errors": n} for pid, n in self.processor_errors.items()},
            "channels": {
                ch.name: {"size": len(ch), "capacity": ch.capacity, "dropped": ch.dropped}
                for ch in [self.ingest, *(s.channel for s in self.sinks.values())]
            },
            "sinks": {name: {"errors": runner.errors} for name, runner in self.sinks.items()},
            "subscribers": len(self.subscribers),
            "clock": {f"{s}/{d}": fit for (s, d), fit in self.aligner.fits().items()},
        }

    # --- lifecycle ------------------------------------------------------------------------------
    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stop requested")
            self.stopping.set()

    async def run(self, duration_s: float | None = None) -> int:
        """Start in order, run until stopped (or for ``duration_s``), then stop gracefully. Returns an exit code."""
        await self._start_sinks()
        self._start_processors()
        self._start_services()
        self._tasks["core"].append(asyncio.create_task(self._process_loop(), name="process"))
        self._tasks["core"].append(asyncio.create_task(self._save_stats_loop(), name="stats"))
        for sid, supervisor in self.supervisors.items():
            self._tasks["sources"].append(asyncio.create_task(supervisor.run(), name=f"source:{sid}"))
        self._tasks["core"].append(asyncio.create_task(self._stop_when_sources_end(), name="sources-ended"))
        self.ready.set()
        log.info("running: session %s, %d sources", self.session.session_uuid, len(self.supervisors))
        # what exists now (modules, plugins, models) lives as long as the agent: a full collection that
        # walked it too paused the stream 35-65 ms each time; only what streaming makes is collected
        gc.collect()
        gc.freeze()
        try:
            await asyncio.wait_for(self.stopping.wait(), duration_s)
        except TimeoutError:
            self.stopping.set()
        finally:
            gc.unfreeze()  # an agent run inside a longer process (tests, benches) leaves it as it found it
        deadline = self.config["daemon"]["stop_deadline_s"]
        try:
            await asyncio.wait_for(self._stop(), deadline)
        except TimeoutError:
            log.error("stop did not finish within %.1f s; data still queued may be lost", deadline)
            return 1
        log.info("stopped cleanly")
        return 1 if self._all_sources_failed() else 0

    async def _stop_when_sources_end(self) -> None:
        """With nothing left to record (every input played out or failed), stop rather than idle."""
        if self._tasks["sources"]:
            await asyncio.gather(*self._tasks["sources"], return_exceptions=True)
            if not self.stopping.is_set():
                log.info("every source has ended")
                self.request_stop()

    def _all_sources_failed(self) -> bool:
        states = [s.state for s in self.supervisors.values()]
        return bool(states) and all(state is SourceState.FAILED for state in states)

    async def _start_sinks(self) -> None:
        capacity = self.config["channels"]["sink_capacity"]
        for name in self.config["daemon"]["sinks"]:
            sink = self.registry.sinks[name].factory(self.config)
            await sink.start(self.session)
            runner = _SinkRunner(name, sink, capacity)
            self.sinks[name] = runner
            self._tasks["sinks"].append(asyncio.create_task(runner.run(), name=f"sink:{name}"))

    def _start_processors(self) -> None:
        for component in self.config.processors:
            self.processors[component.id] = self.registry.processors[component.type].factory(
                component.options, component.id
            )
            self.processor_errors[component.id] = 0

    def _start_services(self) -> None:
        for name, spec in self.registry.services.items():
            service = spec.factory(self.config)
            if service is not None:
                self._tasks["services"].append(asyncio.create_task(service.run(self), name=f"service:{name}"))

    async def _process_loop(self) -> None:
        while True:
            try:
                items = await self.ingest.get_many(_TAKE)
            except ChannelClosed:
                return
            # each item's output goes out as soon as it is made, and a long take yields now and then, so
            # that a backlog never holds the sinks and subscribers (the live stream's latency) behind it
            step_end_ns = time.monotonic_ns() + _STEP_NS
            for item in items:
                if isinstance(item, DeviceAdded):
                    self.aligner.add_device(item.source_id, item.device)
                    out = [item, *self._declare(item)]
                else:
                    out = self._process_batch(item)
                if self._replaying:
                    await self._deliver(out)
                else:
                    self._fan_out(out)
                if time.monotonic_ns() > step_end_ns:
                    await asyncio.sleep(0)
                    step_end_ns = time.monotonic_ns() + _STEP_NS

    def _declare(self, declaration: DeviceAdded) -> list:
        """Tell the processors that want it (``device_added``) about a device."""
        out: list = []
        for pid, processor in self.processors.items():
            device_added = getattr(processor, "device_added", None)
            if device_added is None:
                continue
            try:
                out.extend(device_added(declaration))
            except Exception:
                self.processor_errors[pid] += 1
                log.exception("processor %s failed on device %s/%s", pid, declaration.source_id,
                              declaration.device.device_id)  # fmt: skip
        return out

    def _process_batch(self, batch) -> list:
        aligned = self.aligner.align(batch)
        derived = self._run_chain(
            lambda p: p.process(aligned), f"a batch from {batch.source_id}/{batch.device_id}"
        )
        self.supervisors[batch.source_id].latency_ns = time.monotonic_ns() - int(batch.host_ns[-1])
        return [aligned, *derived]

    def _run_chain(self, call, what: str) -> list:
        """What the processors make of ``call``, chained (kinefuse.processor_chain); a processor's exception is
        counted and logged, and the others go on."""

        def failed(pid: str) -> None:
            self.processor_errors[pid] += 1
            log.exception("processor %s failed on %s", pid, what)

        return [item for _, item in run_chain(self.processors.items(), call, on_error=failed)]

    async def _deliver(self, items: list) -> None:
        """``_fan_out``, but waiting for room in a full sink's channel instead of dropping its oldest: while a
        replay runs, and drains at its stop (what one batch makes, a motion item and every metric on it, can be
        hundreds of items: nothing replayed is lost to a full channel), and for the final flush (the sinks
        run until after it; the agent's stop timeout bounds a wait on one that died). Live, nothing waits: a
        slow sink drops its oldest."""
        for item in items:
            while any(len(runner.channel) >= runner.channel.capacity for runner in self.sinks.values()):
                await asyncio.sleep(_ROOM_POLL_S)
            self._fan_out([item])

    def _fan_out(self, items: list) -> None:
        for runner in self.sinks.values():
            for item in items:
                runner.channel.put(item)
        for subscription in self.subscribers:
            for item in items:
                subscription.channel.put(item)

    async def _save_stats_loop(self) -> None:
        while True:
            await asyncio.sleep(_STATS_INTERVAL_S)
            stats = self._final_stats()
            for runner in self.sinks.values():
                await runner.sink.update_source_stats(stats)

    def _final_stats(self) -> list[dict]:
        fits = self.aligner.fits()
        stats = []
        for supervisor in self.supervisors.values():
            row = supervisor.stats()
            row["clock"] = {
                d: fits[(supervisor.source_id, d)]
                for d in row["devices"]
                if (supervisor.source_id, d) in fits
            }
            stats.append(row)
        return stats

    async def _stop(self) -> None:
        """Stop sources, drain ingest through processors, flush processors, drain and close sinks."""
        await _cancel(self._tasks["sources"])
        process, *helpers = self._tasks["core"]
        await _cancel(helpers)
        self.ingest.close()
        await process
        await self._deliver(self._run_chain(lambda p: p.flush(), "its flush"))
        for runner in self.sinks.values():
            runner.channel.close()
        await asyncio.gather(*self._tasks["sinks"])
        stats = self._final_stats()
        for runner in self.sinks.values():
            await runner.sink.stop(stats)
        await _cancel(self._tasks["services"])


async def _cancel(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
            log.error("%s ended with %s: %s", task.get_name(), type(result).__name__, result)


async def run_agent(config: Config, registry: Registry, duration_s: float | None = None) -> int:
    """Run an agent with SIGTERM and SIGINT wired to a graceful stop."""
    agent = Agent(config, registry)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    try:
        return await agent.run(duration_s)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
