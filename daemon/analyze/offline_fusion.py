"""The offline stream's IMU + video fusion: the live stream's (kinefuse.builtin.processors.motion_fusion), over
the whole recording at once.

- cameras: the live processor's cross-modal offsets (``CameraOffsets``) over all frames, the final
  inverse-variance mean applied to every frame from the first (live applies it only once estimated);
- "3d" view: the calibrated cameras' RTS-smoothed keypoints triangulated as live (``triangulated_views``),
  its bones checked against their lengths over the whole recording (a first pass learns them); the live
  stream's calibration-drift watch is not run here (its events are in the stored session);
- heading: a two-filter smoother (Fraser & Potter, "The optimum linear smoother as a combination of two
  optimum linear filters", IEEE Trans. Autom. Control 14:387, 1969): the live ``HeadingFusion`` run forward
  and over the time-reversed series, the two estimates of psi combined by their variances. Each filter is
  robust and starts from its own circular median, so the backward one also covers the first ``init_s`` the
  forward one needs to fix the heading. The measurement at a sample counts in both filters (they give
  filtered, not predicted, estimates); against the hundreds of samples each has seen that is negligible.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.builtin.processors.motion_checks import BoneLengths
from kinefuse.builtin.processors.motion_fusion import (
    SEGMENT_ENDS,
    TriangulationSettings,
    fused_orientation,
    heading_settings,
    segment_axis,
    triangulated_views,
    unfused,
)
from kinefuse.builtin.processors.motion_offsets import CameraOffsets
from kinefuse.camera_calibration import calibration_from_meta
from kinefuse.fusion.segments import FusedSegment, fuse_heading
from kinefuse.keypoints import KEYPOINT_NAMES
from kinefuse.types import (
    WORLD_MAGNETIC,
    DeviceAdded,
    DeviceKind,
    KeypointBatch,
    KeypointView,
    SegmentOrientation,
)

_NO_OFFSET = "camera times only clock-aligned ({})"


def camera_offsets(options: dict, processor_id: str, straps: dict, inputs: list) -> tuple[dict, dict]:
    """Per camera, its cross-modal offset (ns) from the live estimator fed every batch, and why a camera has
    none."""
    offsets = CameraOffsets(options, SEGMENT_ENDS, processor_id)
    for key, segment in straps.items():
        offsets.add_strap(key, segment)
    for batch in inputs:
        offsets.observe(batch)
    offsets.finish()  # the estimates still running count too, as at the live stream's end
    cameras = {(b.source_id, b.device_id) for b in inputs if isinstance(b, KeypointBatch)}
    return dict(offsets.offset_ns), {key: offsets.timing(key) for key in cameras if offsets.timing(key)}


def shifted(batch, offset_ns: dict):
    """A camera batch's times corrected by its offset (other batches as they are)."""
    shift = offset_ns.get((batch.source_id, batch.device_id))
    if shift is None or not isinstance(batch, KeypointBatch):
        return batch
    return dataclasses.replace(batch, time_ns=batch.time_ns + shift)


def calibrated_cameras(added: list[DeviceAdded]) -> dict:
    """The cameras whose device meta carries a calibration (a malformed one is left out, as live)."""
    cams = {}
    for declaration in added:
        if declaration.device.kind is not DeviceKind.CAMERA:
            continue
        try:
            cam = calibration_from_meta(declaration.device.device_id, declaration.device.meta)
        except (ValueError, TypeError):
            continue
        if cam is not None:
            cams[(declaration.source_id, declaration.device.device_id)] = cam
    return cams


def _checked_views(views: dict, cams: list, reject_tolerances: float) -> list[KeypointView]:
    """``triangulated_views`` with its bones checked against the lengths the whole recording gives."""
    bones = BoneLengths(KEYPOINT_NAMES[next(iter(views.values()))[0].keypoint_set])
    triangulated_views(views, cams, TriangulationSettings(reject_tolerances, bones=bones, learn=True))
    return triangulated_views(views, cams, TriangulationSettings(reject_tolerances, bones=bones))


def fuse_offline(
    views: dict, cams: dict, segments: list[list[SegmentOrientation]], mounted: dict, times: np.ndarray,
    options: dict, untimed: dict,
) -> tuple[list[KeypointView] | None, list[list[SegmentOrientation]]]:  # fmt: skip
    """The "3d" view per grid time (None with fewer than two calibrated cameras of one keypoint set) and the
    segments with the video's heading where it fixes one. ``views``: per camera key its views on the grid;
    ``mounted``: per segment whether its mounting is calibrated and its standard deviation (deg; None with a
    caveat): as live, a strap without a calibrated mounting gets no video heading (its axes are not the
    segment's); ``untimed``: per camera why its times are not corrected."""
    usable = {key: v for key, v in views.items() if key in cams and v and v[0].keypoint_set in KEYPOINT_NAMES}
    sets = [v[0].keypoint_set for v in usable.values()]
    usable = {key: v for key, v in usable.items() if v[0].keypoint_set == sets[0]}
    if not options["video_fusion"] or len(usable) < 2:
        return None, segments
    triangulated = _checked_views(usable, [cams[key] for key in usable], options["reject_tolerances"])
    context = (f"{len(cams)} calibrated, {len(usable)} of them with keypoints here",
               _NO_OFFSET.format("; ".join(f"{key[1]}: {why}" for key, why in untimed.items() if key in usable))
               if any(key in usable for key in untimed) else "")  # fmt: skip
    out = []
    for strap in segments:
        segment = strap[0].segment
        calibrated, sigma = mounted.get(segment, (False, None))
        if segment not in SEGMENT_ENDS or not calibrated:
            why = "no video heading until the strap's mounting is calibrated"
            out.append(strap if segment not in SEGMENT_ENDS else [unfused(s, why) for s in strap])
            continue
        quats = np.array([s.quaternion if s.quaternion is not None else (np.nan,) * 4 for s in strap])
        magnetic = any(s.world == WORLD_MAGNETIC for s in strap)
        fused = smooth_heading(times, quats, segment_axis(triangulated, segment),
                               heading_settings(options, magnetic))  # fmt: skip
        out.append([fused_orientation(s, fused, j, True, *context, sigma) for j, s in enumerate(strap)])
    return triangulated, out


def smooth_heading(times: np.ndarray, quats: np.ndarray, axis: np.ndarray, settings: dict) -> FusedSegment:
    """The heading correction psi from the forward and the time-reversed HeadingFusion, combined by their
    variances (two-filter smoother); where only one has fixed the heading, that one. Reversed time runs
    forward for the filter (times negated), so its rate state is minus the forward one's, which it learns."""
    forward = fuse_heading(times, quats, axis, **settings)
    backward = fuse_heading(-times[::-1], quats[::-1], axis[::-1], **settings)
    psi_f, var_f = forward.heading_correction, forward.heading_sigma**2
    psi_b, var_b = backward.heading_correction[::-1], backward.heading_sigma[::-1] ** 2
    with np.errstate(invalid="ignore"):
        w_b = np.where(np.isnan(psi_f), 1.0, np.where(np.isnan(psi_b), 0.0, var_f / (var_f + var_b)))
        difference = np.nan_to_num(np.angle(np.exp(1j * (psi_b - psi_f))))
        psi = np.where(np.isnan(psi_f), psi_b, np.angle(np.exp(1j * (psi_f + w_b * difference))))
        variance = np.where(
            np.isnan(psi_f), var_b, np.where(np.isnan(psi_b), var_f, var_f * var_b / (var_f + var_b))
        )
    since = np.minimum(forward.since_video_s, backward.since_video_s[::-1])  # to the nearest video correction
    return FusedSegment(times, turned(quats, psi), psi, np.sqrt(variance), since, forward.bridge_s)


def turned(quats: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """rot_z(psi) q per sample (n, 4); NaN where either is unknown."""
    known = np.isfinite(quats).all(axis=1) & np.isfinite(psi)
    out = np.full(quats.shape, np.nan)
    if known.any():
        imu = Rotation.from_quat(quats[known], scalar_first=True)
        out[known] = (Rotation.from_euler("z", psi[known][:, None]) * imu).as_quat(scalar_first=True)
    return out
