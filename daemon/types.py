"""The data model: devices, sample batches, derived values, and the quality every value carries.

Samples travel in batches (struct-of-arrays, one batch per device per push) so that no stage pays a
Python call per sample; ``ImuBatch.samples()`` and ``KeypointBatch.frames()`` give the per-sample
typed view when one is wanted.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

# m/s²: the gravity of the synthetic athlete's world and of the daemon's rest and mounting tests (a local g
# differs by under 0.3 %, within their tolerances).
STANDARD_GRAVITY = 9.81

# The body segments a strap can sit on and the synthetic athlete models, by name, everywhere in kinefuse.
SEGMENTS = (
    "pelvis",
    "trunk",
    "head",
    "left_thigh",
    "left_shank",
    "left_foot",
    "right_thigh",
    "right_shank",
    "right_foot",
    "left_upper_arm",
    "left_forearm",
    "right_upper_arm",
    "right_forearm",
)


class Provenance(enum.StrEnum):
    """Where a value came from."""

    MEASURED = "measured"  # straight from a sensor
    FILLED = "filled"  # predicted inside a gap
    FUSED = "fused"  # combined from several inputs
    EXTRAPOLATED = "extrapolated"  # predicted past the last measurement


class QualityLevel(enum.StrEnum):
    """Whether a value is good enough to use."""

    GOOD = "good"
    DEGRADED = "degraded"
    INSUFFICIENT = "insufficient"


@dataclasses.dataclass(frozen=True, slots=True)
class Quality:
    level: QualityLevel
    reason: str = ""

    def __post_init__(self) -> None:
        if self.level is not QualityLevel.GOOD and not self.reason:
            raise ValueError(f"a {self.level} quality needs a reason")


GOOD = Quality(QualityLevel.GOOD)


class DeviceKind(enum.StrEnum):
    IMU = "imu"
    CAMERA = "camera"


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One physical device behind a source: its id, its kind and its clock."""

    device_id: str
    kind: DeviceKind
    clock_hz: float  # device timestamps count ticks of this clock
    keypoint_set: str | None = None  # cameras: the keypoint set their frames use
    meta: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class ImuSample:
    """One IMU reading, in the units named below."""

    ACC_UNIT: ClassVar[str] = "m/s^2"  # specific force, gravity included
    GYR_UNIT: ClassVar[str] = "rad/s"
    MAG_UNIT: ClassVar[str] = "uT"

    source_id: str
    device_id: str
    seq: int
    device_time: int  # ticks of the device clock
    host_ns: int  # time.monotonic_ns() at arrival on the host
    acc: tuple[float, float, float]
    gyr: tuple[float, float, float]
    mag: tuple[float, float, float] | None


@dataclasses.dataclass(frozen=True, slots=True)
class KeypointFrame:
    """One camera frame's 2D keypoints: an (N, 3) array of x, y (pixels) and confidence (0..1)."""

    source_id: str
    device_id: str
    seq: int
    device_time: int
    host_ns: int
    keypoint_set: str
    keypoints: np.ndarray


def _as_int64(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int64)


@dataclasses.dataclass(frozen=True, slots=True)
class ImuBatch:
    """Consecutive samples of one IMU. ``time_ns`` is filled in by clock alignment (host monotonic ns)."""

    source_id: str
    device_id: str
    seq: np.ndarray  # int64 (n,)
    device_time: np.ndarray  # int64 (n,), device ticks
    host_ns: np.ndarray  # int64 (n,), arrival stamps
    acc: np.ndarray  # float64 (n, 3), ImuSample.ACC_UNIT
    gyr: np.ndarray  # float64 (n, 3), ImuSample.GYR_UNIT
    mag: np.ndarray | None = None  # float64 (n, 3), ImuSample.MAG_UNIT
    time_ns: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.seq)

    def samples(self) -> Iterator[ImuSample]:
        for i in range(len(self)):
            yield ImuSample(
                self.source_id,
                self.device_id,
                int(self.seq[i]),
                int(self.device_time[i]),
                int(self.host_ns[i]),
                tuple(self.acc[i].tolist()),
                tuple(self.gyr[i].tolist()),
                None if self.mag is None else tuple(self.mag[i].tolist()),
            )


@dataclasses.dataclass(frozen=True, slots=True)
class KeypointBatch:
    """Consecutive frames of one camera: ``keypoints`` is (n, N, 3) of x, y, confidence."""

    source_id: str
    device_id: str
    seq: np.ndarray
    device_time: np.ndarray
    host_ns: np.ndarray
    keypoint_set: str
    keypoints: np.ndarray  # float32 (n, N, 3)
    time_ns: np.ndarray | None = None
    swap_corrected: np.ndarray | None = None  # bool (n,): the source undid a left/right swap in the frame
    # With several people in view: the source's track id of the person in ``keypoints`` (int64 (n,), -1: no
    # id), and everyone else it follows in the frame, ``others`` float32 (n, P, N, 3) with their track ids
    # ``other_ids`` int64 (n, P), NaN rows and id -1 where a frame has fewer than P. The motion stream picks,
    # per camera, the person the other cameras see (docs/fusion.md, "Several people in view").
    track_id: np.ndarray | None = None
    others: np.ndarray | None = None
    other_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.seq)

    def frames(self) -> Iterator[KeypointFrame]:
        for i in range(len(self)):
            yield KeypointFrame(
                self.source_id,
                self.device_id,
                int(self.seq[i]),
                int(self.device_time[i]),
                int(self.host_ns[i]),
                self.keypoint_set,
                self.keypoints[i],
            )


SampleBatch = ImuBatch | KeypointBatch


def imu_batch(source_id, device_id, seq, device_time, host_ns, acc, gyr, mag=None) -> ImuBatch:
    """Build an ImuBatch, converting to the dtypes and shapes the pipeline expects."""
    return ImuBatch(
        source_id,
        device_id,
        _as_int64(seq),
        _as_int64(device_time),
        _as_int64(host_ns),
        np.ascontiguousarray(acc, dtype=np.float64).reshape(-1, 3),
        np.ascontiguousarray(gyr, dtype=np.float64).reshape(-1, 3),
        None if mag is None else np.ascontiguousarray(mag, dtype=np.float64).reshape(-1, 3),
    )


def keypoint_batch(
    source_id, device_id, seq, device_time, host_ns, keypoint_set, keypoints, swap_corrected=None,
    track_id=None, others=None, other_ids=None,
) -> KeypointBatch:  # fmt: skip
    """Build a KeypointBatch, converting to the dtypes the pipeline expects (KeypointBatch says what
    ``others`` and ``other_ids`` hold; ``check_batch`` that they come together)."""
    return KeypointBatch(
        source_id,
        device_id,
        _as_int64(seq),
        _as_int64(device_time),
        _as_int64(host_ns),
        keypoint_set,
        np.ascontiguousarray(keypoints, dtype=np.float32),
        swap_corrected=None if swap_corrected is None else np.asarray(swap_corrected, dtype=bool),
        track_id=None if track_id is None else _as_int64(track_id),
        others=None if others is None else np.ascontiguousarray(others, dtype=np.float32),
        other_ids=None if other_ids is None else np.asarray(other_ids, dtype=np.int64),
    )


class BatchError(ValueError):
    """A batch a source emitted does not have the shape the pipeline needs."""


def check_batch(batch: SampleBatch) -> None:
    """Raise BatchError naming the device and field when a batch is malformed."""
    n = len(batch.seq)
    where = f"source {batch.source_id!r} device {batch.device_id!r}"
    if n == 0:
        raise BatchError(f"{where}: empty batch")
    for name in ("device_time", "host_ns"):
        if getattr(batch, name).shape != (n,):
            raise BatchError(f"{where}: {name} has shape {getattr(batch, name).shape}, expected ({n},)")
    if isinstance(batch, ImuBatch):
        arrays = {"acc": batch.acc, "gyr": batch.gyr, "mag": batch.mag}
        for name, arr in arrays.items():
            if arr is None:
                continue
            if arr.shape != (n, 3):
                raise BatchError(f"{where}: {name} has shape {arr.shape}, expected ({n}, 3)")
            if not np.isfinite(arr).all():
                raise BatchError(f"{where}: {name} holds a non-finite value")
    else:
        kp = batch.keypoints
        if kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != 3:
            raise BatchError(f"{where}: keypoints has shape {kp.shape}, expected ({n}, N, 3)")
        _check_people(batch, where)


def _check_people(batch: KeypointBatch, where: str) -> None:
    n, k = batch.keypoints.shape[:2]
    if batch.track_id is not None and batch.track_id.shape != (n,):
        raise BatchError(f"{where}: track_id has shape {batch.track_id.shape}, expected ({n},)")
    if (batch.others is None) != (batch.other_ids is None):
        raise BatchError(f"{where}: others and other_ids come together")
    if batch.others is None:
        return
    p = batch.other_ids.shape[1] if batch.other_ids.ndim == 2 else -1
    if batch.other_ids.shape != (n, p) or batch.others.shape != (n, p, k, 3):
        raise BatchError(f"{where}: others has shape {batch.others.shape} and other_ids {batch.other_ids.shape}, "
                         f"expected ({n}, P, {k}, 3) and ({n}, P)")  # fmt: skip


@dataclasses.dataclass(frozen=True, slots=True)
class DerivedValue:
    """A value a processor computed, with where it came from and whether it can be used.

    ``value`` is None exactly when quality is INSUFFICIENT: then ``quality.reason`` says why. ``tolerance``,
    in the value's unit: how far from the truth it claims to be (twice its standard deviation, as a motion
    item's); None where it makes no such claim.
    """

    name: str
    time_ns: int
    value: float | None
    unit: str
    provenance: Provenance
    quality: Quality
    source_id: str
    device_id: str | None = None
    processor: str = ""
    tolerance: float | None = None

    def __post_init__(self) -> None:
        insufficient = self.quality.level is QualityLevel.INSUFFICIENT
        if insufficient != (self.value is None):
            raise ValueError(f"{self.name}: value must be None exactly when quality is insufficient")


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """Something that happened at an instant: a gap in a device's samples, a foot strike, a restart."""

    kind: str
    time_ns: int
    source_id: str
    device_id: str | None
    detail: dict
    provenance: Provenance = Provenance.MEASURED
    quality: Quality = GOOD
    processor: str = ""


class KeypointStatus(enum.IntEnum):
    """What a keypoint's value in a motion item is, ordered from best to worst; the codes are the keypoint
    smoother's (kinefuse.fusion.keypoint_smoothing)."""

    MEASURED = 0  # smoothed with a detection: provenance measured, quality good
    FILLED = 1  # no usable detection within the gap limit: predicted; provenance filled, quality degraded
    REJECTED = 2  # the detection was rejected as an outlier: predicted, as FILLED
    MISSING = 3  # no value: quality insufficient
    # a causal item's keypoint with no usable detection at its newest frame: predicted past the last one (the
    # filter's forward estimate); its fixed-lag revision says FILLED or MISSING once later frames are in
    EXTRAPOLATED = 4

    @property
    def provenance(self) -> Provenance | None:
        return _KEYPOINT_PROVENANCE[self]

    @property
    def severity(self) -> int:
        """Rank from best (0) to worst: a value between two frames is as bad as the worse of them."""
        return _KEYPOINT_SEVERITY[self]

    @property
    def quality(self) -> Quality:
        return _KEYPOINT_QUALITY[self]


_KEYPOINT_QUALITY = {
    KeypointStatus.MEASURED: GOOD,
    KeypointStatus.FILLED: Quality(QualityLevel.DEGRADED, "filled by prediction: no usable detection"),
    KeypointStatus.REJECTED: Quality(
        QualityLevel.DEGRADED, "filled by prediction: detection rejected as an outlier"
    ),
    KeypointStatus.MISSING: Quality(
        QualityLevel.INSUFFICIENT, "insufficient data: no detection within the gap limit"
    ),
    KeypointStatus.EXTRAPOLATED: Quality(
        QualityLevel.DEGRADED, "extrapolated: no usable detection yet at this time (a revision may follow)"
    ),
}
_KEYPOINT_PROVENANCE = {
    KeypointStatus.MEASURED: Provenance.MEASURED,
    KeypointStatus.FILLED: Provenance.FILLED,
    KeypointStatus.REJECTED: Provenance.FILLED,
    KeypointStatus.MISSING: None,
    KeypointStatus.EXTRAPOLATED: Provenance.EXTRAPOLATED,
}
_KEYPOINT_SEVERITY = {
    KeypointStatus.MEASURED: 0,
    KeypointStatus.FILLED: 1,
    KeypointStatus.REJECTED: 2,
    KeypointStatus.EXTRAPOLATED: 3,
    KeypointStatus.MISSING: 4,
}
# each code's severity, indexed by an array of codes: a value between two frames is the worse of them
KEYPOINT_SEVERITY = np.array(
    [_KEYPOINT_SEVERITY[KeypointStatus(code)] for code in range(len(KeypointStatus))]
)


@dataclasses.dataclass(frozen=True, slots=True)
class SegmentOrientation:
    """One body segment's orientation in a motion item, from the strap worn on it.

    ``quaternion`` (w, x, y, z) turns segment coordinates into world ones, z up; ``world`` says which:
    ``WORLD_CAMERAS`` (the calibrated cameras' world: a heading fused from video), ``WORLD_MAGNETIC`` (x
    magnetic east, y magnetic north) or ``WORLD_STRAP`` (a heading relative to where the strap started). It
    and ``provenance`` are None exactly when quality is INSUFFICIENT. ``tolerance_deg``: the angle within
    which the value claims to be of the segment's true orientation in its world (twice its standard
    deviation from what it rests on: kinefuse.fusion.segments.orientation_tolerance_deg); None where it
    makes no such claim (no value, a heading relative to where the strap started, a mounting not calibrated
    or with a caveat).
    """

    segment: str
    source_id: str
    device_id: str
    quaternion: tuple[float, float, float, float] | None
    provenance: Provenance | None
    quality: Quality
    tolerance_deg: float | None = None
    world: str = ""  # WORLD_*; empty where there is no value

    def __post_init__(self) -> None:
        insufficient = self.quality.level is QualityLevel.INSUFFICIENT
        if insufficient != (self.quaternion is None) or insufficient != (self.provenance is None):
            raise ValueError(f"{self.segment}: no value exactly when quality is insufficient")


WORLD_CAMERAS, WORLD_MAGNETIC, WORLD_STRAP = "cameras", "magnetic", "strap"  # SegmentOrientation.world

# The view name of triangulated keypoints in a motion item (unit "m", (K, 3)); no one device makes it.
TRIANGULATED_VIEW = "3d"


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class KeypointView:
    """One view's keypoints in a motion item, as arrays (no object per keypoint).

    A camera's view is named by its device id and holds image positions (unit "px", ``position`` (K, 2)); the
    view name "3d" is kept for triangulated positions (unit "m", (K, 3)). ``status`` (K,) holds
    KeypointStatus codes; ``position`` and ``sigma`` (the smoother's standard deviation per axis) are NaN where
    a keypoint is MISSING. ``tolerance`` (K,), in the view's unit: the distance within which a keypoint claims
    to be of the true joint's image (or, for "3d", of the joint), the smoother's sigma with the pose model's
    own error as a floor and the value's distance from its detection (docs/fusion.md, "Tolerance"); NaN
    where it claims none (missing, or the person's size not yet known), None for a view that states no
    tolerance at all.
    """

    view: str
    source_id: str
    keypoint_set: str
    unit: str
    position: np.ndarray  # float64 (K, D)
    sigma: np.ndarray  # float64 (K,)
    status: np.ndarray  # int8 (K,)
    tolerance: np.ndarray | None = None  # float64 (K,)
    triangulation: Triangulated | None = None  # the "3d" view's per-keypoint checks; None for a camera's

    def provenance(self, keypoint: int) -> Provenance | None:
        return KeypointStatus(int(self.status[keypoint])).provenance

    def quality(self, keypoint: int) -> Quality:
        quality = KeypointStatus(int(self.status[keypoint])).quality
        if self.triangulation is None or quality.level is not QualityLevel.GOOD:
            return quality
        return self.triangulation.quality(keypoint)


class TriangulationCheck(enum.IntFlag):
    """What the checks of a triangulated keypoint found (``Triangulated.checks``, bits)."""

    VIEW_LEFT_OUT = 1  # a camera disagreed with the others beyond the limit and was left out: still good
    BONE_LENGTH = 2  # a bone to it is off the athlete's running length by more than its tolerance
    CAMERA_DRIFT = 4  # it rests on a camera flagged for calibration drift (no two others saw it)


_CHECK_REASONS = {
    TriangulationCheck.BONE_LENGTH: "a bone to it is off the athlete's running length",
    TriangulationCheck.CAMERA_DRIFT: "it rests on a camera whose calibration seems to have drifted",
}


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Triangulated:
    """Per keypoint of a "3d" view (K,): how many cameras the point rests on (``views``, int8), their RMS
    reprojection error (``error_px``, NaN where no point) and ``checks`` (uint8 bits of
    TriangulationCheck). BONE_LENGTH and CAMERA_DRIFT make a good keypoint degraded."""

    views: np.ndarray
    error_px: np.ndarray
    checks: np.ndarray

    def quality(self, keypoint: int) -> Quality:
        found = [reason for check, reason in _CHECK_REASONS.items() if int(self.checks[keypoint]) & check]
        return Quality(QualityLevel.DEGRADED, "; ".join(found)) if found else GOOD


@dataclasses.dataclass(frozen=True, slots=True)
class MotionItem:
    """The athlete's body at one instant of the motion timeline (docs/fusion.md, "The motion stream"):
    ``time_ns``, aligned host time, is a multiple of round(1e9 / ``rate_hz``) ns; one orientation per sensed
    segment and one KeypointView per camera."""

    time_ns: int
    rate_hz: float
    segments: tuple[SegmentOrientation, ...]
    keypoints: tuple[KeypointView, ...]
    processor: str = ""
    revision: int = (
        0  # 0: published causally as soon as its inputs were in; 1: its fixed-lag smoothed revision
    )


StreamItem = ImuBatch | KeypointBatch | DerivedValue | Event | MotionItem


@dataclasses.dataclass(frozen=True, slots=True)
class SessionInfo:
    session_uuid: str
    athlete: str
    started_wall: str  # ISO 8601, UTC
    started_ns: int  # time.monotonic_ns()
    config_path: str
    kinefuse_version: str


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceAdded:
    """Stream item: a source declared a device. Travels in order with the batches."""

    source_id: str
    device: DeviceInfo
