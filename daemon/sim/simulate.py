"""Running a scenario: the athlete (and anyone else in view), the devices on and around them, and what
each device delivers to the host, chunk by chunk, with the exact truth beside it.

Every device draws from its own random stream, seeded by (scenario seed, device index, chunk index), so a
chunk can be simulated on its own (the live source streams chunk after chunk) and the same seed gives the
same data. Sensor error processes (bias drift) restart at each chunk boundary; the motion does not, nor does its
stride-to-stride variation (``kinefuse.sim.motion.TimeWarp``, seeded by the scenario's seed: a pure function of
time).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.camera_calibration import CameraCalibration
from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.camera_rig import look_at
from kinefuse.sim.detector_model import DetectorErrors, KeypointTrack, Occluder, simulate_keypoints
from kinefuse.sim.imu import PRESETS, ImuErrors, ImuTrack, simulate_imu
from kinefuse.sim.magnetic import FerrousDisturbance, MagneticEnvironment
from kinefuse.sim.motion import StandingStart, TimeWarp
from kinefuse.sim.motions import make_motion
from kinefuse.sim.scenario import Scenario, apply_overrides
from kinefuse.sim.timing import Delivery, DeviceClock, Link, deliver

_WARP_STREAM = 1_000_003  # the athlete's time warp draws from (seed, this); devices from (seed, index, chunk)


@dataclasses.dataclass(frozen=True)
class ImuDevice:
    name: str
    segment: str
    offset_m: np.ndarray  # strap position in the segment frame
    mounting: np.ndarray  # (3, 3) segment-from-sensor rotation
    rate_hz: float
    errors: ImuErrors
    magnetometer: bool
    clock: DeviceClock
    link: Link


@dataclasses.dataclass(frozen=True)
class CameraDevice:
    calibration: CameraCalibration
    fps: float
    keypoint_set: str
    detector: DetectorErrors
    occluders: list[dict]  # scenario [[cameras.occluders]] tables, resolved per chunk
    clock: DeviceClock
    link: Link
    render: bool
    bump_at_s: float = 0.0  # from then on the camera is turned by bump (its calibration is not): 0, never
    bump: np.ndarray = dataclasses.field(default_factory=lambda: np.eye(3))  # in the camera's own frame
    follows_person_s: tuple[float, ...] = ()  # from, to: its tracker follows the first other person instead

    @property
    def name(self) -> str:
        return self.calibration.name

    def seen(self, t: np.ndarray, points: dict) -> dict:
        """World points (name -> (n, 3), or capsules' (start, end, radius)) where the declared calibration
        sees them: after a bump, moved so that the calibrated camera sees them where the turned one does,
        x' = R^T (B (R x + t) - t)."""
        after = t >= self.bump_at_s if self.bump_at_s > 0 else np.zeros(len(t), dtype=bool)
        if not after.any():
            return points
        rotation, translation = self.calibration.rotation_matrix, self.calibration.translation

        def move(x: np.ndarray) -> np.ndarray:
            moved = ((self.bump @ (x @ rotation.T + translation).T).T - translation) @ rotation
            return np.where(after[:, None], moved, x)

        return {
            name: (move(v[0]), move(v[1]), v[2]) if isinstance(v, tuple) else move(v)
            for name, v in points.items()
        }


@dataclasses.dataclass(frozen=True)
class ImuChunk:
    device: ImuDevice
    seq: np.ndarray  # sample numbers since the start of the recording
    t: np.ndarray  # true sample times, s
    ticks: np.ndarray  # what the device stamped
    delivery: Delivery
    track: ImuTrack


@dataclasses.dataclass(frozen=True)
class CameraChunk:
    device: CameraDevice
    seq: np.ndarray
    t: np.ndarray
    ticks: np.ndarray  # stamped from the (jittered) reported frame times
    delivery: Delivery
    track: KeypointTrack  # the athlete's keypoints
    delivered: np.ndarray  # (n,) bool: the frame reached the host (not dropped by the camera or the link)
    others: tuple[KeypointTrack, ...] = ()  # everyone else in view, in scenario order (no scripted occluders)


class Simulation:
    """A scenario ready to run. ``seed`` overrides the scenario's own."""

    def __init__(self, scenario: Scenario, seed: int | None = None):
        self.scenario = scenario
        self.seed = scenario.sections["scenario"]["seed"] if seed is None else seed
        athlete, motion = scenario.sections["athlete"], scenario.sections["motion"]
        shape = BodyShape(athlete["height_m"])
        played = make_motion(motion["kind"], shape=shape, **scenario.motion_controls())
        # the athlete's strides vary (seeded by the scenario's seed; the same for every chunk); the others in
        # view walk their periodic motion
        warp = (
            TimeWarp(played.period_s, scenario.stride_time_cv, (self.seed, _WARP_STREAM))
            if scenario.stride_time_cv > 0
            else None
        )
        standing = StandingStart(motion["standing_start_s"]) if motion["standing_start_s"] > 0 else None
        self.body = Body(
            shape, played, treadmill=motion["treadmill"], time_warp=warp, standing_start=standing
        )
        self.others = [
            Body(
                BodyShape(p["height_m"]),
                make_motion(p["kind"], shape=BodyShape(p["height_m"])),
                tuple(p["origin_xy"]),
                np.radians(p["heading_deg"]),
            )
            for p in scenario.people
        ]
        self.magnetic = MagneticEnvironment(
            heading_deg=scenario.sections["magnetic"]["heading_deg"],
            disturbances=tuple(
                FerrousDisturbance(tuple(d["position"]), tuple(d["moment_Am2"]))
                for d in scenario.disturbances
            ),
        )
        self.cameras = [_camera(c) for c in scenario.cameras]
        self.imus = [_imu(i) for i in scenario.imus]

    @property
    def duration_s(self) -> float:
        return self.scenario.sections["scenario"]["duration_s"]

    def _rng(self, device_index: int, chunk_index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, device_index, chunk_index])

    def imu_chunk(self, index: int, start_s: float, end_s: float, chunk_index: int = 0) -> ImuChunk:
        """What IMU ``index`` measures and delivers for samples taken in [start_s, end_s)."""
        device = self.imus[index]
        seq = _sample_numbers(start_s, end_s, device.rate_hz)
        t = seq / device.rate_hz
        rng = self._rng(len(self.cameras) + index, chunk_index)
        state = self.body.segment(device.segment, t)
        position, _, acceleration = state.point(device.offset_m)
        track = simulate_imu(
            t, state.R, state.omega, acceleration, position, device.mounting, device.errors,
            self.magnetic if device.magnetometer else None, rng,
        )  # fmt: skip
        return ImuChunk(device, seq, t, device.clock.ticks(t), deliver(t, device.link, rng), track)

    def camera_chunk(self, index: int, start_s: float, end_s: float, chunk_index: int = 0) -> CameraChunk:
        """What camera ``index`` reports of the athlete for frames taken in [start_s, end_s)."""
        device = self.cameras[index]
        seq = _sample_numbers(start_s, end_s, device.fps)
        t = seq / device.fps
        rng = self._rng(index, chunk_index)
        errors = dataclasses.replace(device.detector, occluders=self._occluders(device, start_s, end_s))
        capsules = device.seen(t, self.capsules(t))
        track = simulate_keypoints(
            device.calibration,
            device.keypoint_set,
            device.seen(t, self.body.landmarks(t)),
            capsules,
            t,
            errors,
            rng,
        )
        delivery = deliver(t, device.link, rng)
        ticks = device.clock.ticks(track.reported_time_s)
        bystander = dataclasses.replace(device.detector, occluders=())
        others = tuple(
            simulate_keypoints(device.calibration, device.keypoint_set, device.seen(t, other.landmarks(t)), capsules, t,
                               bystander, np.random.default_rng([self.seed, index, chunk_index, number]))
            for number, other in enumerate(self.others, start=1)
        )  # fmt: skip
        return CameraChunk(device, seq, t, ticks, delivery, track, delivery.kept & ~track.dropped, others)

    def chunk(self, index: int, chunk_s: float, until_s: float = np.inf) -> list[ImuChunk | CameraChunk]:
        """Every device's data for samples taken in [index, index + 1) * chunk_s, and before ``until_s``.
        The live source and ``kinefuse simulate`` both go chunk by chunk, so they produce the same data
        for the same seed and chunk length."""
        start, end = index * chunk_s, min((index + 1) * chunk_s, until_s)
        imus = [self.imu_chunk(i, start, end, index) for i in range(len(self.imus))]
        return imus + [self.camera_chunk(i, start, end, index) for i in range(len(self.cameras))]

    def capsules(self, t: np.ndarray) -> dict:
        """Every body's segments as capsules: the athlete's by name, others' prefixed (they occlude too)."""
        capsules = dict(self.body.capsules(t))
        for number, other in enumerate(self.others, start=1):
            capsules |= {f"person{number}_{name}": c for name, c in other.capsules(t).items()}
        return capsules

    def _occluders(self, device: CameraDevice, start_s: float, end_s: float) -> tuple[Occluder, ...]:
        out = []
        for spec in device.occluders:
            keypoints = tuple(spec["keypoints"])
            if not spec["around"]:
                out.append(Occluder(keypoints, spec["start_s"], spec["end_s"]))
                continue
            side, kind = spec["around"].split("_")
            half = spec["frames"] / device.fps / 2
            for event in self.body.gait_events(start_s - half, end_s + half):
                if (event.side, event.kind) == (side, kind):
                    out.append(Occluder(keypoints, event.time_s - half, event.time_s + half))
        return tuple(out)


def _sample_numbers(start_s: float, end_s: float, rate_hz: float) -> np.ndarray:
    """Numbers k of the samples k / rate taken in [start_s, end_s): consecutive chunks neither skip nor repeat."""
    return np.arange(
        int(np.ceil(start_s * rate_hz - 1e-9)), int(np.ceil(end_s * rate_hz - 1e-9)), dtype=np.int64
    )


def _link(table: dict) -> Link:
    return apply_overrides(Link(), table)


def _camera(spec: dict) -> CameraDevice:
    calibration = look_at(spec["name"], spec["position"], spec["target"], tuple(spec["size"]), spec["focal_px"],
                          tuple(spec["distortions"]))  # fmt: skip
    return CameraDevice(
        calibration,
        spec["fps"],
        spec["keypoint_set"],
        apply_overrides(DetectorErrors(), spec["detector"]),
        spec["occluders"],
        DeviceClock(spec["clock_hz"], spec["clock_offset_s"], spec["clock_skew_ppm"]),
        _link(spec["link"]),
        spec["render"],
        spec["bump_at_s"],
        Rotation.from_euler("xyz", spec["bump_deg"], degrees=True).as_matrix(),
        tuple(spec["follows_person_s"]),
    )


def _imu(spec: dict) -> ImuDevice:
    if spec["preset"] not in PRESETS:
        raise ValueError(
            f"imu {spec['name']!r}: unknown preset {spec['preset']!r} (known: {', '.join(PRESETS)})"
        )
    return ImuDevice(
        spec["name"],
        spec["segment"],
        np.asarray(spec["offset_m"], dtype=np.float64),
        Rotation.from_euler("xyz", spec["mounting_deg"], degrees=True).as_matrix(),
        spec["rate_hz"],
        apply_overrides(PRESETS[spec["preset"]], spec["errors"]),
        spec["magnetometer"],
        DeviceClock(spec["clock_hz"], spec["clock_offset_s"], spec["clock_skew_ppm"]),
        _link(spec["link"]),
    )
