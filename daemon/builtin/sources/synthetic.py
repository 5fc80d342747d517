"""Built-in source: the synthetic athlete. Streams any scenario (kinefuse.sim) through the daemon, in real
time or as fast as possible, with every device on its own clock and link, so the whole pipeline runs, and
can be scored against the truth, with no hardware."""

from __future__ import annotations

import asyncio
import heapq
import importlib.resources
import itertools
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kinefuse import hookimpl
from kinefuse.camera_calibration import calibration_meta
from kinefuse.configschema import ConfigInvalid, Field
from kinefuse.interfaces import SourceContext, SourceSpec
from kinefuse.types import DeviceInfo, DeviceKind, imu_batch, keypoint_batch

if TYPE_CHECKING:
    from kinefuse.sim.simulate import CameraChunk, ImuChunk

DEFAULT_SCENARIO = "walk.toml"
_DUE_EARLY_NS = 2_000_000  # in real time, notifications due within this much are sent together

SCHEMA = {
    "scenario": Field(
        str, "", "scenario file (empty: the built-in treadmill walk, scenarios/walk.toml)", is_path=True
    ),
    "realtime": Field(
        bool,
        True,
        "deliver at the simulated arrival times; false: as fast as possible, "
        "stamping the simulated arrival times",
    ),
    "loop": Field(bool, True, "after the scenario's duration carry on (the motion continues); false: finish"),
    "chunk_s": Field(float, 10.0, "seconds simulated at a time, ahead of delivery", min=1.0, max=600.0),
    "seed": Field(int, -1, "random seed (-1: the scenario's own)", min=-1),
    "fail_after_s": Field(float, 0.0, "fault injection: raise after this many seconds (0: never)", min=0.0),
}


def scenario_path(option: str) -> Path:
    if option:
        return Path(option)
    return Path(str(importlib.resources.files("kinefuse.scenarios") / DEFAULT_SCENARIO))


class SyntheticSource:
    def __init__(self, options: dict, source_id: str):
        # the simulator (scipy's interpolation and signal modules) loads with the first synthetic source, not
        # with the plugin: every kinefuse command loads the plugins, and this cost each one 0.4 s
        from kinefuse.sim.scenario import load_scenario
        from kinefuse.sim.simulate import Simulation

        self.options, self.source_id = options, source_id
        path = scenario_path(options["scenario"])
        try:
            scenario = load_scenario(path)
        except ConfigInvalid as exc:
            raise ValueError(f"scenario {path} is invalid:\n{exc}") from None
        self.simulation = Simulation(scenario, None if options["seed"] < 0 else options["seed"])

    def devices(self, start_ns: int) -> list[DeviceInfo]:
        """The devices, each noting the host time of the simulation's time zero, so a scorer can find the truth;
        cameras with their calibration (the simulated one, exact; the shape ``calibration_meta`` writes)."""
        common = {"scenario": self.simulation.scenario.name, "sim_time_zero_ns": start_ns}
        imus = [
            DeviceInfo(d.name, DeviceKind.IMU, d.clock.hz,
                       meta={**common, "segment": d.segment, "rate_hz": d.rate_hz, "offset_m": d.offset_m.tolist()})
            for d in self.simulation.imus
        ]  # fmt: skip
        cameras = [
            DeviceInfo(d.name, DeviceKind.CAMERA, d.clock.hz, keypoint_set=d.keypoint_set,
                       meta={**common, "fps": d.fps, "size": list(d.calibration.size),
                             "calibration": calibration_meta(d.calibration)})
            for d in self.simulation.cameras
        ]  # fmt: skip
        return imus + cameras

    async def run(self, ctx: SourceContext) -> None:
        chunk_s, duration = self.options["chunk_s"], self.simulation.duration_s
        last, until = (
            (None, np.inf) if self.options["loop"] else (int(np.ceil(duration / chunk_s)) - 1, duration)
        )
        simulate = self.simulation.chunk
        current = await asyncio.to_thread(simulate, 0, chunk_s, until)
        # time 0 once the first chunk exists: a clock started before it would find every notification due
        # meanwhile overdue, and real time would begin with a burst that no device sends
        # true time 0 of the simulation on the host clock; as fast as possible, arrivals are the simulated
        # ones from a fixed epoch, so that a replay is bit-reproducible (the motion stream's item grid is
        # anchored in absolute time: a start that moved from run to run would move it against the samples)
        start_ns = time.monotonic_ns() if self.options["realtime"] else _REPLAY_EPOCH_NS
        for device in self.devices(start_ns):
            ctx.add_device(device)
        for index in itertools.count():
            if index != last:  # simulate the next chunk in a thread while this one is delivered
                pending = asyncio.ensure_future(asyncio.to_thread(simulate, index + 1, chunk_s, until))
            await self._deliver(ctx, current, start_ns)
            if index == last:
                return
            current = await pending

    async def _deliver(self, ctx: SourceContext, chunks: list, start_ns: int) -> None:
        realtime, fail_after_ns = self.options["realtime"], int(self.options["fail_after_s"] * 1e9)
        for arrival_ns, chunk, rows in _notifications(chunks, start_ns):
            if fail_after_ns and arrival_ns - start_ns >= fail_after_ns:
                raise RuntimeError(f"injected failure after {self.options['fail_after_s']} s (fail_after_s)")
            if realtime:
                delay_ns = arrival_ns - time.monotonic_ns()
                if delay_ns > _DUE_EARLY_NS:
                    await asyncio.sleep(delay_ns / 1e9)
                host_ns = time.monotonic_ns()  # stamped on arrival, as a real device's callback does
            else:
                host_ns = arrival_ns
                await ctx.wait_for_room()
            ctx.emit(self._batch(chunk, rows, host_ns))

    def _batch(self, chunk: ImuChunk | CameraChunk, rows: np.ndarray, host_ns: int):
        from kinefuse.sim.simulate import ImuChunk  # loaded with the source already: a dictionary lookup

        arrivals = np.full(len(rows), host_ns)
        if isinstance(chunk, ImuChunk):
            track = chunk.track
            mag = None if track.mag is None else track.mag[rows]
            return imu_batch(self.source_id, chunk.device.name, chunk.seq[rows], chunk.ticks[rows], arrivals,
                             track.acc[rows], track.gyr[rows], mag)  # fmt: skip
        common = (self.source_id, chunk.device.name, chunk.seq[rows], chunk.ticks[rows], arrivals,
                  chunk.device.keypoint_set)  # fmt: skip
        if not chunk.others:
            return keypoint_batch(*common, chunk.track.keypoints[rows])
        return keypoint_batch(*common, **_people(chunk, rows))


def _people(chunk, rows: np.ndarray) -> dict:
    """Everyone in the camera's view as its tracker reports them: the athlete (track id 0) as its choice and
    the scenario's other people (ids 1, 2, ...) beside, id -1 where out of view; within ``follows_person_s``
    the tracker follows the first other person instead (a passer-by nearer this camera, the largest box)."""
    people = np.stack([chunk.track.keypoints[rows], *(o.keypoints[rows] for o in chunk.others)], axis=1)
    ids = np.broadcast_to(np.arange(people.shape[1]), people.shape[:2]).copy()
    span = chunk.device.follows_person_s
    if span:
        wrong = (chunk.t[rows] >= span[0]) & (chunk.t[rows] < span[1])
        people[wrong, :2], ids[wrong, :2] = people[wrong, 1::-1], ids[wrong, 1::-1]
    ids[~np.isfinite(people[..., :2]).any(axis=(2, 3))] = -1  # out of view: not reported
    return {
        "keypoints": people[:, 0],
        "track_id": ids[:, 0],
        "others": people[:, 1:],
        "other_ids": ids[:, 1:],
    }


_REPLAY_EPOCH_NS = 1_000_000_000_000  # 1000 s


def _notifications(chunks: list, start_ns: int):
    """(arrival on the host clock, chunk, sample rows) of every delivered notification, in arrival order."""
    from kinefuse.sim.simulate import ImuChunk  # loaded with the source already

    streams = []
    for order, chunk in enumerate(chunks):
        delivered = chunk.delivery.kept if isinstance(chunk, ImuChunk) else chunk.delivered
        rows = np.flatnonzero(delivered)
        if len(rows) == 0:
            continue
        groups = np.split(rows, np.flatnonzero(np.diff(chunk.delivery.notification[rows])) + 1)
        arrivals = [start_ns + round(chunk.delivery.arrival_s[g[0]] * 1e9) for g in groups]
        streams.append([(a, order, chunk, g) for a, g in zip(arrivals, groups, strict=True)])
    for arrival_ns, _, chunk, rows in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        yield arrival_ns, chunk, rows


@hookimpl
def register_sources():
    return [SourceSpec("synthetic", SyntheticSource, SCHEMA, __doc__.strip())]
