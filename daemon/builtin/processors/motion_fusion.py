"""The motion stream's IMU + video fusion (the ``motion`` processor, kinefuse.builtin.processors.motion_stream,
documents the behaviour; docs/fusion.md, "The motion stream").

Cameras that declare their calibration (``calibration`` in their device meta, the shape ``calibration_meta``
writes) are triangulated: wherever two or more of them see a keypoint, its 3D position goes into the item as
the view "3d" (unit m). A strap segment whose two end keypoints are triangulated (a thigh: hip to knee; a
shank: knee to ankle) gets its heading from the video by a ``HeadingFusion`` (kinefuse.fusion.segments): the
item's orientation becomes rot_z(psi) q_strap, in the cameras' world, its inclination still the strap's.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from kinefuse.builtin.processors.motion_checks import BoneLengths, StreamWatch
from kinefuse.builtin.processors.motion_offsets import CameraOffsets
from kinefuse.camera_calibration import (
    CameraCalibration,
    calibration_from_meta,
    focal_lengths,
    point_sigma,
    triangulate_robust,
)
from kinefuse.fusion.segments import VIDEO_HEADING_FLOOR_DEG, HeadingFusion, orientation_tolerance_deg
from kinefuse.keypoints import KEYPOINT_NAMES
from kinefuse.types import (
    KEYPOINT_SEVERITY,
    TRIANGULATED_VIEW,
    WORLD_CAMERAS,
    WORLD_MAGNETIC,
    Event,
    KeypointStatus,
    KeypointView,
    MotionItem,
    Quality,
    QualityLevel,
    SegmentOrientation,
    Triangulated,
    TriangulationCheck,
)

log = logging.getLogger(__name__)

# Each segment's long axis as keypoints, proximal to distal (the segment frame's -z, kinefuse.fusion.segments).
SEGMENT_ENDS = {
    f"{side}_{segment}": (f"{side}_{a}", f"{side}_{b}")
    for side in ("left", "right")
    for segment, (a, b) in (("thigh", ("hip", "knee")), ("shank", ("knee", "ankle")))
}
# What a fused heading makes untrue of a strap's own orientation: its heading is now the cameras'.
_HEADING_REASONS = (
    "no magnetometer: heading relative to where the strap started",
    "magnetic disturbance: heading held on the gyroscope",
)
_USABLE = (KeypointStatus.MEASURED, KeypointStatus.FILLED, KeypointStatus.REJECTED)  # measured or filled


class VideoFusion:
    """The calibrated cameras and one HeadingFusion per segment and item revision (each revision is its own
    causal series of times)."""

    def __init__(self, options: dict, processor_id: str):
        self.enabled, self.processor_id = options["video_fusion"], processor_id
        self.options = options
        self.cameras: dict[tuple[str, str], CameraCalibration] = {}
        # per segment and revision: the filter, with the mounting's time and the strap's world it started with
        self.fusions: dict[tuple[str, int], tuple[tuple[int, bool], HeadingFusion]] = {}
        self.mounted_ns: dict[str, tuple[int, float] | None] = {}
        self.offsets = CameraOffsets(options, SEGMENT_ENDS, processor_id)
        self.watch = StreamWatch(options, processor_id)
        self.bones: dict[str, BoneLengths] = {}  # per keypoint set
        self.top_revision = 0  # the checks learn from the most refined revision seen
        self.drift_events: list[Event] = []

    def add_strap(self, key: tuple[str, str], segment: str) -> None:
        self.offsets.add_strap(key, segment)

    def finish(self) -> None:
        """At the end of the stream: the cross-modal estimates still running are applied and reported."""
        self.offsets.finish()

    def observe(self, batch):
        """The batch as the stream should see it: a camera's times corrected by its cross-modal offset."""
        return self.offsets.observe(batch) if self.enabled else batch

    def add_camera(self, source_id: str, device_id: str, meta: dict) -> None:
        try:
            cam = calibration_from_meta(device_id, meta)
        except (ValueError, TypeError) as exc:
            log.warning(
                "%s: camera %s/%s is left uncalibrated: %s", self.processor_id, source_id, device_id, exc
            )
            return
        if cam is not None:
            self.cameras[(source_id, device_id)] = cam

    def fuse(self, items: list[MotionItem], mounted_ns: dict[str, tuple[int, float] | None]) -> list:
        """The items with the "3d" view added and the strap segments' headings fused, where the cameras allow
        and the strap's mounting is calibrated (``mounted_ns``: per segment, the time from which it is and
        its standard deviation in degrees; None: not yet); then the cross-modal offset events since the
        last call."""
        self.mounted_ns = mounted_ns
        events, self.offsets.events = self.offsets.events, []
        if not self.enabled or not items:
            return [*items, *events]
        out = list(items)
        for revision in sorted({item.revision for item in items}):
            index = [i for i, item in enumerate(items) if item.revision == revision]
            for i, item in zip(index, self._fuse_series([items[i] for i in index], revision), strict=True):
                out[i] = item
        events, self.drift_events = [*events, *self.drift_events], []
        return [*out, *events]

    def _fuse_series(self, items: list[MotionItem], revision: int) -> list[MotionItem]:
        views = self._calibrated_views(items)
        triangulated = self._triangulated(views, items, revision) if len(views) >= 2 else None
        times = np.array([item.time_ns for item in items], dtype=np.float64) / 1e9
        cameras = f"{len(self.cameras)} calibrated, {len(views)} of them with keypoints here"
        timing = [f"{key[1]}: {self.offsets.timing(key)}" for key in views if self.offsets.timing(key)]
        context = (cameras, f"camera times only clock-aligned ({'; '.join(timing)})" if timing else "")
        fused = {}
        for segment in {s.segment for item in items for s in item.segments if s.segment in SEGMENT_ENDS}:
            fused[segment] = self._fuse_segment(segment, revision, times, items, triangulated, context)
        return [
            dataclasses.replace(
                item,
                segments=tuple(fused[s.segment][j] if s.segment in fused else s for s in item.segments),
                keypoints=item.keypoints + ((triangulated[j],) if triangulated else ()),
            )
            for j, item in enumerate(items)
        ]

    def _triangulated(self, views, items: list[MotionItem], revision: int) -> list[KeypointView]:
        """The "3d" views, checked; the most refined revision also feeds the checks (bones, drift)."""
        cams = [self.cameras[key] for key in views]
        self.top_revision = max(self.top_revision, revision)
        learn = revision == self.top_revision
        if learn:
            self.drift_events += self.watch.observe(views, cams, items)
        keypoint_set = next(iter(views.values()))[0].keypoint_set
        if keypoint_set not in self.bones:
            self.bones[keypoint_set] = BoneLengths(KEYPOINT_NAMES[keypoint_set])
        bones = self.bones[keypoint_set]
        settings = TriangulationSettings(self.options["reject_tolerances"], frozenset(self.watch.cameras.flagged),
                                         bones, learn)  # fmt: skip
        return triangulated_views(views, cams, settings)

    def _calibrated_views(self, items: list[MotionItem]) -> dict[tuple[str, str], list[KeypointView]]:
        """Per calibrated camera with a known keypoint set in every item, its views (one per item). Cameras
        with another keypoint set than the first are left out: a 3D point needs the same keypoint in all."""
        views: dict[tuple[str, str], list[KeypointView]] = {}
        for key in self.cameras:
            mine = [next((v for v in item.keypoints if (v.source_id, v.view) == key), None) for item in items]
            if all(v is not None and v.keypoint_set in KEYPOINT_NAMES for v in mine):
                views[key] = mine
        sets = [vs[0].keypoint_set for vs in views.values()]
        return {key: vs for key, vs in views.items() if vs[0].keypoint_set == sets[0]}

    def _fuse_segment(
        self, segment, revision, times, items, triangulated, context
    ) -> list[SegmentOrientation]:
        strap = [next(s for s in item.segments if s.segment == segment) for item in items]
        mounted_ns, mounting_sigma = self.mounted_ns.get(segment) or (None, None)
        # a strap's axes are not the segment's before its mounting is calibrated: its long axis would give a
        # wrong heading, and the calibration a step in it; so the heading filter starts with the mounting
        ready = np.flatnonzero(
            np.array([mounted_ns is not None and item.time_ns >= mounted_ns for item in items], dtype=bool)
        )
        if triangulated is None:
            why = f"no video heading: video fusion needs two calibrated cameras ({context[0]})"
        else:
            why = "no video heading until the strap's mounting is calibrated"
        if not len(ready):
            return [unfused(s, why) for s in strap]
        since, fusion = self.fusions.get((segment, revision), (None, None))
        # the strap's world as its newest value says; an item without a value (a strap gap) says nothing
        known = [strap[j].world for j in ready.tolist() if strap[j].quaternion is not None]
        magnetic = known[-1] == WORLD_MAGNETIC if known else since is not None and since[1]
        if since != (mounted_ns, magnetic):  # a new mounting, or the magnetometer came or went
            fusion = HeadingFusion(**heading_settings(self.options, magnetic))
            self.fusions[(segment, revision)] = ((mounted_ns, magnetic), fusion)
        quaternions = np.array([s.quaternion if s.quaternion is not None else (np.nan,) * 4 for s in strap])
        axis = segment_axis(triangulated, segment) if triangulated else np.full((len(items), 3), np.nan)
        result = fusion.update_batch(times[ready], quaternions[ready], axis[ready])
        out = [unfused(s, why) for s in strap]
        for k, j in enumerate(ready.tolist()):
            out[j] = fused_orientation(
                strap[j], result, k, triangulated is not None, *context, mounting_sigma
            )
        return out


@dataclasses.dataclass
class TriangulationSettings:
    """How ``triangulated_views`` checks: a view farther than ``reject_tolerances`` times the views' typical
    tolerance from where the others put a keypoint is left out (triangulate_robust), the cameras ``drifted``
    left out where two others see a keypoint, ``bones`` (None: no bone check) and whether this call's lengths
    join them (``learn``)."""

    reject_tolerances: float
    drifted: frozenset[str] = frozenset()
    bones: BoneLengths | None = None
    learn: bool = False


def triangulated_views(views: dict[tuple[str, str], list[KeypointView]], cams: list[CameraCalibration],
                       settings: TriangulationSettings):  # fmt: skip
    """The "3d" view of each item: every keypoint that two or more cameras have (measured or filled; only the
    measured ones where two are),
    triangulated by weighted linear DLT (Hartley & Zisserman, Multiple View Geometry, 2nd ed., §12.2;
    kinefuse.camera_calibration.triangulate_robust: a view that disagrees with the others by more than
    ``settings.reject_tolerances`` times the median tolerance of the views (px: the detector's error at the
    person's size in the images, so the limit scales with it) is left out while more than two remain), each
    view weighted by 1 / the smoother's sigma (px; ``triangulate`` puts the rows in pixels), so each row pair
    of the DLT is about one standard deviation. Its sigma is the used views' sigmas carried through the
    geometry (``point_sigma``); its tolerance, their tolerances (each twice a radial standard deviation)
    carried the same way, as twice the point's radial standard deviation (NaN where a view used states none).
    Each keypoint's views used, reprojection error and checks (bones, drifted cameras: motion_checks) go with
    it (``Triangulated``)."""
    per_camera = list(views.values())
    pixels = np.stack([[v.position for v in vs] for vs in per_camera])  # (ncam, m, K, 2)
    sigma = np.stack([[v.sigma for v in vs] for vs in per_camera])  # (ncam, m, K)
    status = np.stack([[v.status for v in vs] for vs in per_camera])
    tolerance = np.stack([[_tolerance_of(v) for v in vs] for vs in per_camera])
    focal = focal_lengths(cams)[:, None, None]
    usable = np.isin(status, _USABLE) & np.isfinite(sigma) & (sigma > 0) & np.isfinite(pixels).all(axis=-1)
    drifted = np.array([cam.name in settings.drifted for cam in cams])[:, None, None]
    usable = _without_predicted(_without_drifted(usable, drifted), status)
    weights = np.where(usable, 1.0 / np.where(usable, sigma, 1.0), 0.0)
    # (m, K, 3); NaN where fewer than two cameras have the keypoint
    stated = usable & np.isfinite(tolerance)
    limit = settings.reject_tolerances * _median(tolerance[stated]) if stated.any() else math.inf
    found = triangulate_robust(cams, np.where(usable[..., None], pixels, np.nan), weights, limit)
    points, used = found.points, found.views & usable
    # a view's tolerance is twice its radial (2-axis) deviation; the point's, twice its radial (3-axis) one
    points_sigma, per_axis = (
        point_sigma(cams, points, np.where(used, s, np.nan) / focal)
        for s in (sigma, tolerance / (2.0 * np.sqrt(2.0)))
    )
    claimed = (used <= np.isfinite(tolerance)).all(axis=0)  # every view used states one
    point_tolerance = np.where(claimed, 2.0 * np.sqrt(3.0) * per_axis, np.nan)
    worst = _worst_status(status, used)
    missing = ~np.isfinite(points).all(axis=-1) | ~np.isfinite(points_sigma)
    worst[missing] = KeypointStatus.MISSING
    points[missing], points_sigma[missing], point_tolerance[missing] = np.nan, np.nan, np.nan
    checks = np.where((usable & ~used).any(axis=0), TriangulationCheck.VIEW_LEFT_OUT, 0)
    checks |= np.where((used & drifted).any(axis=0), TriangulationCheck.CAMERA_DRIFT, 0)
    if settings.bones is not None:
        good = worst == KeypointStatus.MEASURED
        off = settings.bones.check(np.where(good[..., None], points, np.nan), point_tolerance, settings.learn)
        checks |= np.where(off, TriangulationCheck.BONE_LENGTH, 0)
    checks = np.where(missing, 0, checks).astype(np.uint8)
    counts = np.where(missing, 0, used.sum(axis=0)).astype(np.int8)
    error = np.where(missing, np.nan, found.error_px)
    keypoint_set, source = per_camera[0][0].keypoint_set, per_camera[0][0].source_id
    return [KeypointView(TRIANGULATED_VIEW, source, keypoint_set, "m", points[j], points_sigma[j], worst[j],
                         point_tolerance[j], Triangulated(counts[j], error[j], checks[j]))
            for j in range(points.shape[0])]  # fmt: skip


def _median(values: np.ndarray) -> float:
    """The median of a few dozen values (np.median's generic path costs the stream 70 µs an item)."""
    ordered = np.sort(values)
    middle = len(ordered) // 2
    return float(ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2.0)


def _without_drifted(usable: np.ndarray, drifted: np.ndarray) -> np.ndarray:
    """The views usable (ncam, m, K) once the ``drifted`` cameras (ncam, 1, 1) are left out wherever two
    other cameras see the keypoint."""
    if not drifted.any():
        return usable
    others = (usable & ~drifted).sum(axis=0) >= 2
    return usable & ~(drifted & others[None])


def _without_predicted(usable: np.ndarray, status: np.ndarray) -> np.ndarray:
    """The views usable (ncam, m, K) once predicted ones (filled, rejected) are left out wherever two measured
    views see the keypoint: a camera that lost it for a moment would otherwise make the point predicted too
    (its status is the worst of the views used)."""
    measured = usable & (status == KeypointStatus.MEASURED)
    return np.where((measured.sum(axis=0) >= 2)[None], measured, usable)


def _tolerance_of(view: KeypointView) -> np.ndarray:
    return np.full(len(view.status), np.nan) if view.tolerance is None else view.tolerance


def _worst_status(status: np.ndarray, used: np.ndarray) -> np.ndarray:
    """The worst status among the used views of each keypoint (m, K): measured only if every view was."""
    severity = np.where(used, KEYPOINT_SEVERITY[status], -1)
    pick = np.take_along_axis(status, np.argmax(severity, axis=0)[None], axis=0)[0]
    return pick.astype(np.int8)


def segment_axis(views: list[KeypointView], segment: str) -> np.ndarray:
    """A segment's long axis (proximal to distal, m) in each triangulated view (n, 3); NaN unless both its end
    keypoints are there."""
    names = KEYPOINT_NAMES[views[0].keypoint_set]
    start, end = (names.index(joint) for joint in SEGMENT_ENDS[segment])
    position = np.stack([v.position for v in views])
    return position[:, end] - position[:, start]


def unfused(strap: SegmentOrientation, why: str) -> SegmentOrientation:
    """The strap's own orientation, saying why the video gives it no heading."""
    if strap.quaternion is None:
        return strap
    return dataclasses.replace(strap, quality=Quality(strap.quality.level, f"{strap.quality.reason}; {why}"))


# A strap whose heading a magnetometer holds (its world magnetic) does not drift: its heading correction is
# the one constant between magnetic north and the cameras' x, its rate only what slow magnetic disturbances
# leave. Modelled as drifting like a gyroscope's (1 deg/s at the start), the correction followed the video's
# slow, gait-correlated heading errors: on the walk scenario's two cameras the fused shanks were 3.5 and
# 2.8 deg RMS off against 3.1 and 3.8 deg for the strap aligned once; held constant, 2.5 and 2.3 deg.
_MAGNETIC_HEADING = {"rate_noise": np.radians(0.001), "rate_sigma0": np.radians(0.01)}


def heading_settings(options: dict, magnetic: bool) -> dict:
    """The HeadingFusion settings of the motion processor's ``options`` for a strap whose values are in the
    magnetic world (``magnetic``) or its own."""
    settings = {"heading_sigma_deg": options["heading_sigma_deg"], "init_s": options["heading_init_s"],
                "bridge_s": options["heading_bridge_s"]}  # fmt: skip
    return {**settings, **_MAGNETIC_HEADING} if magnetic else settings


def fused_orientation(
    strap: SegmentOrientation, fused, j: int, triangulated: bool, cameras: str, timing: str,
    mounting_sigma: float | None,
):  # fmt: skip
    """The strap's orientation with its heading from the video, once the video fixed it; before that the
    strap's own, its reason saying why the video does not yet give the heading."""
    if strap.quaternion is None:
        return strap
    if not np.isfinite(fused.heading_correction[j]):
        if not triangulated:
            why = f"no video heading: video fusion needs two calibrated cameras ({cameras})"
        else:
            why = "no video heading yet: the cameras have not seen the segment long enough to fix it"
        if strap.quality.level is QualityLevel.GOOD:
            return strap  # a good strap value (magnetometer, calibrated mounting) needs no excuse
        return dataclasses.replace(
            strap, quality=Quality(strap.quality.level, f"{strap.quality.reason}; {why}")
        )
    reasons = [r for r in strap.quality.reason.split("; ") if r and r not in _HEADING_REASONS]
    since = float(fused.since_video_s[j])
    if since > fused.bridge_s:
        reasons.append(f"IMU only for {since:.1f} s since the last video heading: heading may drift")
    if timing:
        reasons.append(timing)
    quaternion = tuple(float(x) for x in fused.quaternion[j])
    tolerance = None
    if mounting_sigma is not None:  # the video's heading: the filter's uncertainty over the detector's floor
        heading = math.hypot(math.degrees(float(fused.heading_sigma[j])), VIDEO_HEADING_FLOOR_DEG)
        tolerance = orientation_tolerance_deg(heading, mounting_sigma)
    return dataclasses.replace(
        strap, quaternion=quaternion, tolerance_deg=tolerance, world=WORLD_CAMERAS,
        quality=Quality(QualityLevel.DEGRADED, "; ".join(reasons)) if reasons else Quality(QualityLevel.GOOD),
    )  # fmt: skip
