"""The SQLite sink: one writer thread owns the connection; rows are buffered and committed together.

Committing once per ``flush_interval_s`` (or per ``batch_max_rows``) rather than per batch is what
lets SQLite keep up with tens of thousands of samples per second, while a SIGKILL loses at most the
rows of the last interval: WAL with synchronous=NORMAL keeps every committed transaction (schema.py).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import datetime
import itertools
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from kinefuse.storage.codec import CODES, pack_people, pack_rows
from kinefuse.storage.schema import open_database
from kinefuse.types import (
    TRIANGULATED_VIEW,
    DerivedValue,
    DeviceAdded,
    Event,
    ImuBatch,
    KeypointBatch,
    KeypointView,
    MotionItem,
    SessionInfo,
    StreamItem,
)

log = logging.getLogger(__name__)

_SAMPLE_COLUMNS = ("session_id", "device_ref", "seq", "device_time", "host_ns", "time_ns")
COLUMNS = {
    "imu_samples": (*_SAMPLE_COLUMNS, "acc", "gyr", "mag"),
    "keypoint_frames": (
        *_SAMPLE_COLUMNS,
        "keypoint_set",
        "n_keypoints",
        "keypoints",
        "swap_corrected",
        "track_id",
        "others",
        "other_ids",
    ),  # fmt: skip
    "metrics": (
        "session_id",
        "device_ref",
        "source_id",
        "time_ns",
        "name",
        "value",
        "unit",
        "provenance",
        "quality",
        "reason",
        "processor",
        "tolerance",
        "analysis_id",
    ),
    "events": (
        "session_id",
        "device_ref",
        "source_id",
        "time_ns",
        "kind",
        "detail",
        "provenance",
        "quality",
        "reason",
        "processor",
        "analysis_id",
    ),
    "motion_segments": (
        "session_id",
        "device_ref",
        "time_ns",
        "segment",
        "quaternion",
        "provenance",
        "quality",
        "reason",
        "processor",
        "revision",
        "analysis_id",
        "tolerance_deg",
        "world",
    ),
    "motion_keypoints": (
        "session_id",
        "device_ref",
        "time_ns",
        "view",
        "keypoint_set",
        "unit",
        "n_keypoints",
        "dims",
        "position",
        "sigma",
        "status",
        "processor",
        "revision",
        "analysis_id",
        "tolerance",
        "views",
        "error_px",
        "checks",
    ),
}
STATS_KEYS = ("source_id", "type", "state", "reason", "received", "dropped", "decode_errors", "restarts")
_INSERT_BATCH = 500  # rows per INSERT statement; sqlite-utils lowers it to fit SQLite's variable limit


class SqliteSink:
    """Writes the stream of one session into the SQLite file at ``path`` (kinefuse.interfaces.Sink).

    ``rows_committed``, ``rejected`` (batches and values naming an undeclared device) and
    ``latency_ns`` (commit time minus arrival, per committed sample row) are read by status and benches.
    """

    def __init__(self, path: str | Path, flush_interval_s: float = 0.25, batch_max_rows: int = 5000):
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.batch_max_rows = batch_max_rows
        self.rows_committed = 0
        self.rejected = 0
        self.analysis_id: int | None = None  # the rows' analysis (kinefuse analyze); None: the live stream
        self.latency_ns: collections.deque[int] = collections.deque(maxlen=200_000)
        # one thread, so the connection is only ever touched by the thread that opened it
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="kinefuse-sqlite"
        )
        self._flusher: asyncio.Task | None = None
        # everything below belongs to the writer thread
        self._db: sqlite_utils.Database | None = None
        self._session_id: int | None = None
        self._device_refs: dict[tuple[str, str], int] = {}
        self._reported_undeclared: set[tuple[str, str]] = set()
        self._pending: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
        self._pending_rows = 0
        self._pending_host_ns: list[np.ndarray] = []
        self._last_commit = time.monotonic()

    # --- Sink ----------------------------------------------------------------------------------
    async def start(self, session: SessionInfo) -> None:
        await self._call(self._start, session)
        self._flusher = asyncio.create_task(self._flush_periodically(), name="kinefuse-sqlite-flush")

    async def write(self, items: Sequence[StreamItem | DeviceAdded]) -> None:
        await self._call(self._write, items)

    async def stop(self, source_stats: Sequence[dict]) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        try:
            await self._call(self._stop, list(source_stats))
        finally:
            self._executor.shutdown(wait=True)

    async def update_source_stats(self, source_stats: Sequence[dict]) -> None:
        """Store the live counters now, so that they survive a crash of the daemon."""
        await self._call(self._store_stats, list(source_stats))

    # --- event loop side -----------------------------------------------------------------------
    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _flush_periodically(self) -> None:
        """Commit rows that would otherwise wait for the next write, so none waits past the interval."""
        while True:
            try:
                delay = await self._call(self._flush_if_due)
            except Exception:  # a failing disk must not end the timer: it may recover, and writes report it
                log.exception("%s: periodic commit failed", self.path)
                delay = self.flush_interval_s
            await asyncio.sleep(delay)

    # --- writer thread -------------------------------------------------------------------------
    def _start(self, session: SessionInfo) -> None:
        self._db = open_database(self.path)
        athlete_id = self._db["athletes"].lookup(
            {"name": session.athlete}, {"created_wall": datetime.datetime.now(datetime.UTC).isoformat()}
        )
        self._session_id = (
            self._db["sessions"]
            .insert(
                {
                    "uuid": session.session_uuid,
                    "athlete_id": athlete_id,
                    "started_wall": session.started_wall,
                    "started_ns": session.started_ns,
                    "config_path": session.config_path,
                    "kinefuse_version": session.kinefuse_version,
                    "status": "running",
                }
            )
            .last_pk
        )
        self._last_commit = time.monotonic()

    def _write(self, items: Sequence[StreamItem | DeviceAdded]) -> None:
        for item in items:
            if isinstance(item, ImuBatch):
                self._add_imu(item)
            elif isinstance(item, KeypointBatch):
                self._add_keypoints(item)
            elif isinstance(item, DerivedValue):
                self._add_metric(item)
            elif isinstance(item, Event):
                self._add_event(item)
            elif isinstance(item, MotionItem):
                self._add_motion(item)
            elif isinstance(item, DeviceAdded):
                self._add_device(item)
            else:
                raise TypeError(f"SqliteSink cannot store {type(item).__name__} items")
        self._flush_if_due()

    def _add_device(self, item: DeviceAdded) -> None:
        key = (item.source_id, item.device.device_id)
        if key in self._device_refs:
            return  # a restarted source declares its devices again
        device = item.device
        # committed at once, outside the row buffer: sample rows reference it
        self._device_refs[key] = (
            self._db["devices"]
            .insert(
                {
                    "session_id": self._session_id,
                    "source_id": item.source_id,
                    "device_id": device.device_id,
                    "kind": str(device.kind),
                    "clock_hz": device.clock_hz,
                    "keypoint_set": device.keypoint_set,
                    "meta": _json(device.meta),
                }
            )
            .last_pk
        )

    def _device_ref(self, source_id: str, device_id: str, what: str) -> int | None:
        """The devices.id of a declared device; None (logged once per device, counted) otherwise."""
        ref = self._device_refs.get((source_id, device_id))
        if ref is None:
            self.rejected += 1
            if (source_id, device_id) not in self._reported_undeclared:
                self._reported_undeclared.add((source_id, device_id))
                log.error(
                    "%s: %s for source %r device %r rejected: the device was never declared (DeviceAdded); "
                    "further ones are only counted",
                    self.path,
                    what,
                    source_id,
                    device_id,
                )
        return ref

    def _add_imu(self, batch: ImuBatch) -> None:
        ref = self._device_ref(batch.source_id, batch.device_id, "IMU batch")
        if ref is None:
            return
        n = len(batch)
        mag = pack_rows(batch.mag) if batch.mag is not None else itertools.repeat(None, n)
        self._add_samples("imu_samples", batch, ref, pack_rows(batch.acc), pack_rows(batch.gyr), mag)

    def _add_keypoints(self, batch: KeypointBatch) -> None:
        ref = self._device_ref(batch.source_id, batch.device_id, "keypoint batch")
        if ref is None:
            return
        n = len(batch)
        self._add_samples(
            "keypoint_frames",
            batch,
            ref,
            itertools.repeat(batch.keypoint_set, n),
            itertools.repeat(batch.keypoints.shape[1], n),
            pack_rows(batch.keypoints),
            itertools.repeat(0, n)
            if batch.swap_corrected is None
            else batch.swap_corrected.astype(int).tolist(),
            itertools.repeat(None, n) if batch.track_id is None else _ids(batch.track_id),
            *_others(batch),
        )

    def _add_samples(self, table: str, batch: ImuBatch | KeypointBatch, ref: int, *payload) -> None:
        n = len(batch)
        time_ns = batch.time_ns.tolist() if batch.time_ns is not None else itertools.repeat(None, n)
        self._pending[table].extend(
            zip(
                itertools.repeat(self._session_id, n),
                itertools.repeat(ref, n),
                batch.seq.tolist(),
                batch.device_time.tolist(),
                batch.host_ns.tolist(),
                time_ns,
                *payload,
                strict=False,  # the repeat() columns are endless
            )
        )
        self._pending_host_ns.append(batch.host_ns)
        self._pending_rows += n

    def _optional_ref(self, source_id: str, device_id: str | None, what: str) -> tuple[bool, int | None]:
        """(accepted, devices.id or None) for values that may name no device."""
        if device_id is None:
            return True, None
        ref = self._device_ref(source_id, device_id, what)
        return ref is not None, ref

    def _add_metric(self, value: DerivedValue) -> None:
        accepted, ref = self._optional_ref(value.source_id, value.device_id, f"metric {value.name!r}")
        if not accepted:
            return
        self._pending["metrics"].append(
            (
                self._session_id,
                ref,
                value.source_id,
                value.time_ns,
                value.name,
                value.value,
                value.unit,
                str(value.provenance),
                str(value.quality.level),
                value.quality.reason,
                value.processor,
                value.tolerance,
                self.analysis_id,
            )
        )
        self._pending_rows += 1

    def _add_event(self, event: Event) -> None:
        accepted, ref = self._optional_ref(event.source_id, event.device_id, f"event {event.kind!r}")
        if not accepted:
            return
        self._pending["events"].append(
            (
                self._session_id,
                ref,
                event.source_id,
                event.time_ns,
                event.kind,
                _json(event.detail),
                str(event.provenance),
                str(event.quality.level),
                event.quality.reason,
                event.processor,
                self.analysis_id,
            )
        )
        self._pending_rows += 1

    def _add_motion(self, item: MotionItem) -> None:
        """One row per segment and one per keypoint view, each with the item's time."""
        for segment in item.segments:
            ref = self._device_ref(
                segment.source_id, segment.device_id, f"motion segment {segment.segment!r}"
            )
            if ref is None:
                continue
            quaternion = None if segment.quaternion is None else pack_rows(np.array([segment.quaternion]))[0]
            provenance = None if segment.provenance is None else str(segment.provenance)
            self._pending["motion_segments"].append(
                (
                    self._session_id,
                    ref,
                    item.time_ns,
                    segment.segment,
                    quaternion,
                    provenance,
                    str(segment.quality.level),
                    segment.quality.reason,
                    item.processor,
                    item.revision,
                    self.analysis_id,
                    segment.tolerance_deg,
                    segment.world,
                )
            )
            self._pending_rows += 1
        for view in item.keypoints:
            by_device = view.view != TRIANGULATED_VIEW  # triangulated: no one device's view, device_ref NULL
            what = f"motion keypoints of view {view.view!r}"
            ref = self._device_ref(view.source_id, view.view, what) if by_device else None
            if ref is None and by_device:
                continue
            n_keypoints, dims = view.position.shape
            self._pending["motion_keypoints"].append(
                (
                    self._session_id,
                    ref,
                    item.time_ns,
                    view.view,
                    view.keypoint_set,
                    view.unit,
                    n_keypoints,
                    dims,
                    pack_rows(view.position[None])[0],
                    pack_rows(view.sigma[None])[0],
                    pack_rows(view.status[None], CODES)[0],
                    item.processor,
                    item.revision,
                    self.analysis_id,
                    None if view.tolerance is None else pack_rows(view.tolerance[None])[0],
                    *_triangulated_blobs(view),
                )
            )
            self._pending_rows += 1

    def _flush_if_due(self) -> float:
        """Commit when the buffer is full or its oldest rows reach the interval; seconds until next due."""
        since_commit = time.monotonic() - self._last_commit
        if self._pending_rows and (
            self._pending_rows >= self.batch_max_rows or since_commit >= self.flush_interval_s
        ):
            self._commit()
            return self.flush_interval_s
        return max(self.flush_interval_s - since_commit, 0.0) if self._pending_rows else self.flush_interval_s

    def _commit(self) -> None:
        with self._db.atomic():
            for table, rows in self._pending.items():
                if rows:
                    self._db[table].insert_all(
                        itertools.chain([COLUMNS[table]], rows), batch_size=_INSERT_BATCH
                    )
        now_ns = time.monotonic_ns()
        for host_ns in self._pending_host_ns:
            self.latency_ns.extend((now_ns - host_ns).tolist())
        self.rows_committed += self._pending_rows
        for rows in self._pending.values():
            rows.clear()
        self._pending_host_ns.clear()
        self._pending_rows = 0
        self._last_commit = time.monotonic()

    def _store_stats(self, source_stats: list[dict]) -> None:
        now_ns = time.monotonic_ns()
        rows = [
            {"session_id": self._session_id, **{key: stats[key] for key in STATS_KEYS}, "updated_ns": now_ns}
            for stats in source_stats
        ]
        self._db["source_stats"].upsert_all(rows, pk=("session_id", "source_id"))

    def _store_clock_fits(self, source_stats: list[dict]) -> None:
        """Store each device's clock fit, given as stats["clock"][device_id] = {"clock_offset_ns", "clock_skew_ppm"}."""
        for stats in source_stats:
            for device_id, fit in stats.get("clock", {}).items():
                ref = self._device_refs.get((stats["source_id"], device_id))
                if ref is not None:
                    self._db["devices"].update(
                        ref,
                        {"clock_offset_ns": fit["clock_offset_ns"], "clock_skew_ppm": fit["clock_skew_ppm"]},
                    )

    def _stop(self, source_stats: list[dict]) -> None:
        try:
            if self._pending_rows:
                self._commit()
            with self._db.atomic():
                self._store_stats(source_stats)
                self._store_clock_fits(source_stats)
                ended = {"ended_ns": time.monotonic_ns(), "status": "stopped"}
                self._db["sessions"].update(self._session_id, ended)
            # fold the WAL into the main file, so that the .db alone is the whole session
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()


def _json(value: dict) -> str:
    # default=str: plugin-supplied details may hold Paths, enums or numpy scalars; storing their text
    # beats losing the whole commit
    return json.dumps(value, sort_keys=True, default=str)


def _triangulated_blobs(view: KeypointView) -> tuple[bytes | None, bytes | None, bytes | None]:
    """A "3d" view's views, error_px and checks columns; NULLs for a camera's view."""
    found = view.triangulation
    if found is None:
        return None, None, None
    return (pack_rows(found.views[None], CODES)[0], pack_rows(found.error_px[None])[0],
            pack_rows(found.checks[None], CODES)[0])  # fmt: skip


def _ids(track_id: np.ndarray) -> list[int | None]:
    return [None if i < 0 else i for i in track_id.tolist()]


def _others(batch: KeypointBatch) -> tuple:
    n = len(batch)
    if batch.others is None:
        return itertools.repeat(None, n), itertools.repeat(None, n)
    return pack_people(batch.others, batch.other_ids)
