"""The small interfaces a plugin implements, and the specs it registers them with.

A plugin never receives a call per sample: sources push batches through ``SourceContext.emit``,
processors and sinks receive batches.  See docs/plugins.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kinefuse.configschema import Schema
from kinefuse.types import (
    DerivedValue,
    DeviceAdded,
    DeviceInfo,
    Event,
    MotionItem,
    SampleBatch,
    SessionInfo,
    StreamItem,
)


class SourceContext(Protocol):
    """What the supervisor hands a running source."""

    source_id: str
    log: logging.Logger
    database_path: (
        Path | None
    )  # the daemon's SQLite file ([storage] path), to read what commands stored there

    def add_device(self, device: DeviceInfo) -> None:
        """Declare a device before emitting its first batch."""

    def emit(self, batch: SampleBatch) -> None:
        """Hand a batch to the pipeline. Never blocks: a full channel drops its oldest item."""

    async def wait_for_room(self) -> None:
        """Yield to the pipeline now and then, and wait while its channels are more than half full. A source replaying
        recorded input as fast as it can awaits this between batches, so that nothing it replays is
        dropped; a live source never waits (its device would not)."""

    def decode_error(self, message: str) -> None:
        """Count and log input the source could not decode; name the device and packet in ``message``."""

    def note_dropped(self, samples: int) -> None:
        """Count samples the source itself let go (a camera's stale frames while pose was busy)."""


class Source(Protocol):
    async def run(self, ctx: SourceContext) -> None:
        """Produce batches until cancelled. Raise to be restarted; return when the input has ended."""


class Processor(Protocol):
    def process(self, batch: SampleBatch) -> Iterable[DerivedValue | Event | MotionItem]:
        """Derive values, events or motion items from one clock-aligned batch."""

    def flush(self) -> Iterable[DerivedValue | Event | MotionItem]:
        """Emit what is still held back; called once at stop."""

    def device_added(self, declaration: DeviceAdded) -> Iterable[DerivedValue | Event | MotionItem]:
        """Optional (the agent calls it where a processor defines it): a source declared a device, with its
        kind, clock and meta (a strap's ``segment``), before the device's first batch and again when the
        source restarts."""

    def observe(self, items: list) -> Iterable[DerivedValue | Event | MotionItem]:
        """Optional: the items the processors listed before this one in the config made of the same batch
        (or flush), before this one's ``process`` (or ``flush``) of it: metrics over the motion stream."""


class Sink(Protocol):
    async def start(self, session: SessionInfo) -> None: ...

    async def write(self, items: Sequence[StreamItem | DeviceAdded]) -> None:
        """Take a batch of stream items; may buffer, but must make them durable within its flush interval."""

    async def update_source_stats(self, source_stats: Sequence[dict]) -> None:
        """Save the supervisors' live counters (called every few seconds) so a crash keeps them."""

    async def stop(self, source_stats: Sequence[dict]) -> None:
        """Flush everything and close; ``source_stats`` are the supervisors' final counters."""


class AgentView(Protocol):
    """What services see of the running agent."""

    ready: asyncio.Event  # set once every source has been started
    stopping: asyncio.Event  # set when a stop begins

    def status(self) -> dict: ...

    def subscribe(self, capacity: int) -> Any:
        """A Subscription: ``await sub.get()`` yields stream items; ``sub.skipped`` counts what it missed."""

    def unsubscribe(self, subscription: Any) -> None: ...


class Service(Protocol):
    async def run(self, agent: AgentView) -> None:
        """Run beside the pipeline until cancelled (status socket, watchdog pings, terminal status line)."""


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A source type: ``[[sources]] type = name`` builds one with ``factory(options, source_id)``.

    ``check(options)``, when given, returns (key, message) pairs for options that pass their schema but can
    never run together; ``check-config`` and ``run`` refuse them, with file and line, before anything starts."""

    name: str
    factory: Callable[[dict, str], Source]
    schema: Schema
    doc: str
    check: Callable[[dict], list[tuple[str, str]]] | None = None


@dataclasses.dataclass(frozen=True)
class ProcessorSpec:
    """A processor type: ``[[processors]] type = name`` builds one with ``factory(options, processor_id)``;
    ``check(options)`` as for SourceSpec."""

    name: str
    factory: Callable[[dict, str], Processor]
    schema: Schema
    doc: str
    check: Callable[[dict], list[tuple[str, str]]] | None = None


class PoseEstimator(Protocol):
    """Keypoints of the people in one frame; called from the camera's worker thread."""

    def __call__(self, frame_bgr: Any) -> Inference:
        """``result`` (people, keypoints, 3) as x, y in image pixels and confidence, ``timings`` in seconds
        by stage."""


@dataclasses.dataclass(frozen=True)
class Inference:
    """People found: keypoints (P, K, 3) or boxes (P, 5) in image pixels, and the stage times in seconds."""

    result: np.ndarray
    timings: dict[str, float]

    @classmethod
    def timed(cls, result: np.ndarray, start: float, prepared: float, inferred: float) -> Inference:
        """``result`` with the stage times from perf_counter readings taken at each stage's start (now: done)."""
        done = time.perf_counter()
        stages = {
            "preprocess": prepared - start,
            "inference": inferred - prepared,
            "postprocess": done - inferred,
        }
        return cls(result, stages)


@dataclasses.dataclass(frozen=True)
class PoseEstimatorSpec:
    """A pose estimator the ``camera`` source runs when its ``model`` is ``name``: ``factory(options)`` gets
    the camera's options and returns a PoseEstimator emitting ``keypoint_set`` (e.g. "BlazePose-33")."""

    name: str
    factory: Callable[[dict], PoseEstimator]
    keypoint_set: str
    doc: str


@dataclasses.dataclass(frozen=True)
class SinkSpec:
    """A sink type, enabled by ``[daemon] sinks``; ``factory(config)`` gets the whole validated config."""

    name: str
    factory: Callable[[Any], Sink]
    doc: str


@dataclasses.dataclass(frozen=True)
class ServiceSpec:
    """A service started beside the pipeline; ``factory(config)`` returns None when config disables it."""

    name: str
    factory: Callable[[Any], Service | None]
    doc: str


@dataclasses.dataclass(frozen=True)
class ConfigSection:
    """A top-level config table a plugin owns, validated as strictly as the core's."""

    name: str
    schema: Schema
    doc: str


@dataclasses.dataclass(frozen=True)
class CommandSpec:
    """A ``kinefuse NAME`` subcommand: ``configure`` adds its arguments, ``run(args)`` returns an exit code."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@dataclasses.dataclass(frozen=True)
class BenchSpec:
    """A ``kinefuse bench NAME``: ``run(options)`` returns bench rows (see kinefuse.bench)."""

    name: str
    doc: str
    run: Callable[[dict], Awaitable[list[dict]] | list[dict]]


@dataclasses.dataclass
class PluginRecord:
    name: str
    version: str
    origin: str  # "built-in", "entry point" or "registered"
    hooks: list[str]
    status: str = "loaded"  # or "quarantined"
    reason: str = ""


@dataclasses.dataclass
class Registry:
    """Everything the loaded plugins registered, by name, and a record of every plugin."""

    sources: dict[str, SourceSpec] = dataclasses.field(default_factory=dict)
    processors: dict[str, ProcessorSpec] = dataclasses.field(default_factory=dict)
    pose_estimators: dict[str, PoseEstimatorSpec] = dataclasses.field(default_factory=dict)
    sinks: dict[str, SinkSpec] = dataclasses.field(default_factory=dict)
    services: dict[str, ServiceSpec] = dataclasses.field(default_factory=dict)
    config_sections: dict[str, ConfigSection] = dataclasses.field(default_factory=dict)
    commands: dict[str, CommandSpec] = dataclasses.field(default_factory=dict)
    benches: dict[str, BenchSpec] = dataclasses.field(default_factory=dict)
    plugins: list[PluginRecord] = dataclasses.field(default_factory=list)

    def quarantine_hint(self) -> str:
        bad = [p for p in self.plugins if p.status == "quarantined"]
        if not bad:
            return ""
        return "; quarantined plugins: " + "; ".join(f"{p.name} ({p.reason})" for p in bad)
