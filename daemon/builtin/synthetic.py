"""Built-in source: a synthetic walking athlete with IMU straps and one or more cameras, each device on
its own clock (offset and skew), so the whole pipeline runs with no hardware."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from kinefuse import hookimpl
from kinefuse.builtin.walking_model import STRAP_SEGMENTS, Walker
from kinefuse.configschema import Field
from kinefuse.interfaces import SourceContext, SourceSpec
from kinefuse.types import DeviceInfo, DeviceKind, imu_batch, keypoint_batch

IMU_CLOCK_HZ = 1e6  # strap timestamps in microseconds, as most BLE IMUs report
CAMERA_CLOCK_HZ = 90_000.0  # the RTP/MPEG presentation-timestamp clock

SCHEMA = {
    "straps": Field(
        int, 4, "IMU straps, on pelvis, shanks, trunk, thighs in that order", min=0, max=len(STRAP_SEGMENTS)
    ),
    "imu_rate_hz": Field(float, 100.0, "IMU sample rate", min=1.0, max=4000.0),
    "cameras": Field(int, 1, "side-view cameras producing COCO-17 keypoints", min=0, max=8),
    "camera_fps": Field(float, 30.0, "camera frame rate", min=1.0, max=240.0),
    "push_interval_s": Field(
        float, 0.1, "samples arrive in batches this far apart, as BLE notifications do", min=0.001, max=1.0
    ),
    "realtime": Field(bool, True, "pace output by the clock; false runs as fast as possible"),
    "cadence_spm": Field(float, 110.0, "walking cadence, steps per minute", min=30.0, max=220.0),
    "max_clock_skew_ppm": Field(
        float, 50.0, "device clocks run fast or slow by up to this much", min=0.0, max=1000.0
    ),
    "packet_loss": Field(float, 0.0, "fraction of IMU samples lost on the way", min=0.0, max=0.5),
    "seed": Field(int, 0, "random seed for clocks, noise and loss"),
    "fail_after_s": Field(float, 0.0, "fault injection: raise after this many seconds (0: never)", min=0.0),
}


class _DeviceClock:
    def __init__(self, rng: np.random.Generator, hz: float, max_skew_ppm: float):
        self.hz = hz
        self.skew = rng.uniform(-max_skew_ppm, max_skew_ppm) * 1e-6
        self.boot_s = rng.uniform(1.0, 1000.0)  # the device was switched on some time before

    def ticks(self, t: np.ndarray) -> np.ndarray:
        return np.floor((self.boot_s + t * (1.0 + self.skew)) * self.hz).astype(np.int64)


class SyntheticSource:
    def __init__(self, options: dict, source_id: str):
        self.options, self.source_id = options, source_id
        self.rng = np.random.default_rng(options["seed"])
        self.walker = Walker(cadence_spm=options["cadence_spm"])
        skew = options["max_clock_skew_ppm"]
        self.straps = [
            (f"imu_{seg}", seg, _DeviceClock(self.rng, IMU_CLOCK_HZ, skew))
            for seg in STRAP_SEGMENTS[: options["straps"]]
        ]
        self.cameras = [
            (f"cam{i}", _DeviceClock(self.rng, CAMERA_CLOCK_HZ, skew)) for i in range(options["cameras"])
        ]
        self.imu_next = 0  # index of the next sample / frame to produce (their sequence numbers)
        self.frame_next = 0

    def devices(self) -> list[DeviceInfo]:
        imus = [
            DeviceInfo(d, DeviceKind.IMU, IMU_CLOCK_HZ, meta={"segment": seg}) for d, seg, _ in self.straps
        ]
        cams = [
            DeviceInfo(
                d,
                DeviceKind.CAMERA,
                CAMERA_CLOCK_HZ,
                keypoint_set="COCO-17",
                meta={"width": 1280, "height": 720},
            )
            for d, _ in self.cameras
        ]
        return imus + cams

    async def run(self, ctx: SourceContext) -> None:
        for device in self.devices():
            ctx.add_device(device)
        start_ns = time.monotonic_ns()
        step, fail_after = self.options["push_interval_s"], self.options["fail_after_s"]
        pushes = 0
        while True:
            pushes += 1
            now_s = pushes * step
            if self.options["realtime"]:
                await asyncio.sleep(max(0.0, start_ns / 1e9 + now_s - time.monotonic_ns() / 1e9))
            else:
                await asyncio.sleep(0)  # let the rest of the pipeline run
            if fail_after and now_s >= fail_after:
                raise RuntimeError(f"injected failure after {fail_after} s (fail_after_s)")
            self._emit_until(ctx, now_s)

    def _emit_until(self, ctx: SourceContext, now_s: float) -> None:
        host_ns = time.monotonic_ns()  # one arrival stamp per push, like one BLE notification
        imu_end = int(now_s * self.options["imu_rate_hz"])
        if imu_end > self.imu_next and self.straps:
            self._emit_imu(ctx, np.arange(self.imu_next, imu_end), host_ns)
            self.imu_next = imu_end
        frame_end = int(now_s * self.options["camera_fps"])
        if frame_end > self.frame_next and self.cameras:
            self._emit_frames(ctx, np.arange(self.frame_next, frame_end), host_ns)
            self.frame_next = frame_end

    def _emit_imu(self, ctx: SourceContext, seq: np.ndarray, host_ns: int) -> None:
        t = seq / self.options["imu_rate_hz"]
        for device_id, segment, clock in self.straps:
            kept = self.rng.random(len(seq)) >= self.options["packet_loss"]
            if not kept.any():
                continue
            acc, gyr, mag = self.walker.imu(segment, t[kept])
            acc += self.rng.normal(0.0, 0.05, acc.shape)
            gyr += self.rng.normal(0.0, 0.005, gyr.shape)
            mag += self.rng.normal(0.0, 0.3, mag.shape)
            ctx.emit(
                imu_batch(
                    self.source_id,
                    device_id,
                    seq[kept],
                    clock.ticks(t[kept]),
                    np.full(kept.sum(), host_ns),
                    acc,
                    gyr,
                    mag,
                )
            )

    def _emit_frames(self, ctx: SourceContext, seq: np.ndarray, host_ns: int) -> None:
        t = seq / self.options["camera_fps"]
        xy = self.walker.keypoints(t, 1280, 720)
        confidence = self.rng.uniform(0.75, 0.98, xy.shape[:2])
        confidence[:, 2::2] *= 0.7  # the right side is turned away from the camera
        for device_id, clock in self.cameras:
            noisy = xy + self.rng.normal(0.0, 1.5, xy.shape) / confidence[..., None]
            keypoints = np.concatenate([noisy, confidence[..., None]], axis=2)
            ctx.emit(
                keypoint_batch(
                    self.source_id,
                    device_id,
                    seq,
                    clock.ticks(t),
                    np.full(len(seq), host_ns),
                    "COCO-17",
                    keypoints,
                )
            )


@hookimpl
def register_sources():
    return [SourceSpec("synthetic", SyntheticSource, SCHEMA, __doc__.strip())]
