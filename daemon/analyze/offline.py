"""The offline motion stream: items on the live processor's grid (one per 1 / ``rate_hz``, from the first item
time the live processor would take) with a segment per strap and a view per camera, as live, but each from an
acausal estimate over the whole recording:

- a strap's orientation from the offline orientation smoother (kinefuse.fusion.orientation_smoother: VQF's
  bias forward and backward, zero-phase inclination and heading corrections; Laidig & Seel 2023). A strap
  whose gyroscope bias is beyond what the filter's bias estimate reaches (``bias_clip``, 2 deg/s) gets it
  from its first rest the smoother detects (at least ``rest_window_s`` long): the mean gyroscope there,
  subtracted from the first sample on, and the smoother runs again;
- a leg strap's mounting on its segment from the whole recording: that first rest as the static pose and
  every movement sample after it, through the live ``MountingCalibration`` (kinefuse.fusion.mounting), applied
  from the first sample on (live applies it only once calibrated);
- a camera's keypoints from the full Rauch-Tung-Striebel smoother (kinefuse.fusion.keypoint_smoothing.
  smooth_offline), lost frames pushed as frames without detections, and gaps flagged as live, its times
  corrected by its cross-modal offset over the whole recording;
- with two or more calibrated cameras, the "3d" view and each thigh's and shank's heading from the video,
  smoothed forward and backward (kinefuse.analyze.offline_fusion).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from kinefuse.analyze.offline_fusion import calibrated_cameras, camera_offsets, fuse_offline, shifted
from kinefuse.builtin.processors.motion_cameras import FrameSeries, lost_frame_times
from kinefuse.builtin.processors.motion_people import PersonAssociation
from kinefuse.builtin.processors.motion_straps import (
    CALIBRATED_KINDS,
    MountingCalibration,
    fill_lost,
    rest_window,
    still_windows,
)
from kinefuse.fusion.keypoint_smoothing import KeypointFilterSettings, SmoothedKeypoints, smooth_offline
from kinefuse.fusion.orientation_smoother import smooth_orientation
from kinefuse.fusion.segments import MAGNETIC_HEADING_SIGMA_DEG, orientation_tolerance_deg, segment_quaternion
from kinefuse.fusion.timeline import brackets, slerp
from kinefuse.types import (
    SEGMENTS,
    WORLD_MAGNETIC,
    WORLD_STRAP,
    DeviceAdded,
    DeviceKind,
    ImuBatch,
    KeypointBatch,
    MotionItem,
    Provenance,
    Quality,
    QualityLevel,
    SegmentOrientation,
)

log = logging.getLogger(__name__)
_MOUNTING = "strap-to-segment mounting not calibrated (nominal mounting)"
_NO_MAG = "no magnetometer: heading relative to where the strap started"
_DISTURBED = "magnetic disturbance: heading held on the gyroscope"
_GAP_PERIODS = 1.5  # as live: samples further apart than this many periods make the value between them filled


def offline_items(
    options: dict, processor_id: str, added: list[DeviceAdded], inputs: list, found: dict | None = None
) -> list[MotionItem]:
    """The offline items of a whole session for the ``motion`` processor ``options``, each camera's frames
    first associated with the person the others see (motion_people, as live); ``found`` (when given) gets
    what the recording gave: each strap's mounting, each camera's offset, and the association's changes."""
    straps, cameras = _stream_devices(added, processor_id)
    tracked = [
        b for b in inputs if b.time_ns is not None and (b.source_id, b.device_id) in {**straps, **cameras}
    ]
    if not tracked:
        return []
    people = PersonAssociation(calibrated_cameras(added), options["associate_limit"], processor_id)
    tracked = [people.choose(b) if isinstance(b, KeypointBatch) else b for b in tracked]  # as live, in order
    offset_ns, untimed = (
        camera_offsets(options, processor_id, straps, tracked) if options["video_fusion"] else ({}, {})
    )
    tracked = [shifted(b, offset_ns) for b in tracked]
    period = round(1e9 / options["rate_hz"])
    epoch_ns = -(-int(tracked[0].time_ns.min()) // period) * period  # the live processor's first item
    parts: dict[tuple[str, str], list] = {key: [] for key in (*straps, *cameras)}
    for batch in tracked:
        parts[(batch.source_id, batch.device_id)].append(batch)
    strap_values = [_strap(key, straps[key], parts[key], epoch_ns, options) for key in straps if parts[key]]
    settings = KeypointFilterSettings(process_noise=options["process_noise"], pixel_sigma=options["pixel_sigma"],
                                      max_gap_s=options["max_gap_s"], lag_s=options["lag_s"])  # fmt: skip
    frames = [(key, cameras[key], _frames(parts[key], epoch_ns, settings)) for key in cameras if parts[key]]
    ends = [s.times[-1] for s in strap_values if s is not None] + [f.times[-1] for _, _, (f, _) in frames]
    grid_ns = np.arange(epoch_ns, epoch_ns + math.floor(max(ends) * 1e9) + 1, period)
    grid = (grid_ns - epoch_ns) / 1e9
    segments = [s.at(grid, options["max_gap_s"]) for s in strap_values if s is not None]
    views = {key: FrameSeries.of(*f).views(grid, options["max_gap_s"], *key, keypoint_set,
                                           options["detector_error"])[0]
             for key, keypoint_set, f in frames}  # fmt: skip
    mounted = {s.segment: (s.mounting_record.get("matrix") is not None, s.mounting_sigma)
               for s in strap_values if s is not None}  # fmt: skip
    triangulated, segments = fuse_offline(views, calibrated_cameras(added), segments, mounted, grid, options,
                                          untimed)  # fmt: skip
    extra = [(v,) for v in triangulated] if triangulated else [()] * len(grid)
    if found is not None:
        found["mounting"] = {s.segment: s.mounting_record for s in strap_values if s is not None}
        found["camera_offset_ms"] = {key[1]: offset_ns[key] / 1e6 for key in offset_ns}
        found["person_association"] = [event.detail["reason"] for event in people.events]
    return [MotionItem(t, options["rate_hz"], tuple(s[j] for s in segments),
                       tuple(v[j] for v in views.values()) + extra[j], processor_id)
            for j, t in enumerate(grid_ns.tolist())]  # fmt: skip


def _stream_devices(added: list[DeviceAdded], processor_id: str) -> tuple[dict, dict]:
    """The straps in the stream by key with their segment, and the cameras with their keypoint set: the live
    processor's rule (a strap on a known segment no other strap has; every camera)."""
    straps, cameras = {}, {}
    for declaration in added:
        device, key = declaration.device, (declaration.source_id, declaration.device.device_id)
        if device.kind is DeviceKind.CAMERA:
            cameras[key] = device.keypoint_set or ""
            continue
        segment = device.meta.get("segment")
        if segment in SEGMENTS and segment not in straps.values():
            straps[key] = segment
        else:
            why = "no known segment in its meta" if segment not in SEGMENTS else f"{segment} is taken"
            log.warning("%s: strap %s/%s left out of the offline analysis: %s", processor_id, *key, why)
    return straps, cameras


def _increasing(times: np.ndarray) -> np.ndarray:
    """Which times follow every time before them (the clock fit may step a device's times back)."""
    return times > np.maximum.accumulate(np.concatenate([[-math.inf], times]))[:-1]


class _StrapValues:
    """A strap's offline orientations at its sample times (s from the epoch), read onto the grid."""

    def __init__(self, key, segment, times, quats, disturbed, with_mag: bool, no_rest_bias: str | None,
                 rate_hz, mounting: tuple[str | None, dict]):  # fmt: skip
        self.key, self.segment, self.times, self.quats = key, segment, times, quats
        self.disturbed, self.with_mag, self.no_rest_bias = disturbed, with_mag, no_rest_bias
        self.period_s = 1.0 / rate_hz
        self.mounting_reason, self.mounting_record = mounting
        self.mounting_sigma = self.mounting_record.get("sigma_deg")  # None: no calibration without caveat

    def at(self, grid: np.ndarray, max_gap_s: float) -> list[SegmentOrientation]:
        left, fraction, valid = brackets(self.times, grid, max_gap_s)
        right = np.minimum(left + 1, len(self.times) - 1)
        quats = slerp(self.quats[left], self.quats[right], fraction)
        span, disturbed = self.times[right] - self.times[left], self.disturbed[left] | self.disturbed[right]
        return [
            self._value(quats[j], span[j], disturbed[j]) if valid[j] else self._missing()
            for j in range(len(grid))
        ]

    def _value(self, quat, span: float, disturbed: bool) -> SegmentOrientation:
        reasons = [why for why in (self.mounting_reason, self.no_rest_bias) if why]
        reasons += [] if self.with_mag and not disturbed else [_DISTURBED if self.with_mag else _NO_MAG]
        provenance = Provenance.FUSED
        if span > _GAP_PERIODS * self.period_s:
            provenance = Provenance.FILLED
            reasons.append(f"interpolated over a {span * 1e3:.0f} ms gap in the strap's samples")
        quality = (
            Quality(QualityLevel.DEGRADED, "; ".join(reasons)) if reasons else Quality(QualityLevel.GOOD)
        )
        # as live: a tolerance only with an absolute heading and a mounting that needs no caveat
        absolute = self.with_mag and not disturbed and self.mounting_sigma is not None
        tolerance = (
            orientation_tolerance_deg(MAGNETIC_HEADING_SIGMA_DEG, self.mounting_sigma) if absolute else None
        )
        return SegmentOrientation(
            self.segment,
            *self.key,
            tuple(quat.tolist()),
            provenance,
            quality,
            tolerance,
            WORLD_MAGNETIC if self.with_mag else WORLD_STRAP,  # as live: a disturbed field is still its world
        )

    def _missing(self) -> SegmentOrientation:
        why = "insufficient data: no strap samples around this time"
        return SegmentOrientation(
            self.segment, *self.key, None, None, Quality(QualityLevel.INSUFFICIENT, why)
        )


def _strap(key, segment: str, parts: list[ImuBatch], epoch_ns: int, options: dict) -> _StrapValues | None:
    times = np.concatenate([(b.time_ns - epoch_ns) / 1e9 for b in parts])
    gyr, acc = (np.concatenate([getattr(b, name) for b in parts]) for name in ("gyr", "acc"))
    with_mag = all(b.mag is not None for b in parts)
    mag = np.concatenate([b.mag for b in parts]) if with_mag else None
    keep = _increasing(times)
    if keep.sum() < max(options["rate_samples"], 2):
        log.warning("%s/%s: too few samples (%d) for an offline orientation", *key, int(keep.sum()))
        return None
    seq = np.concatenate([b.seq for b in parts])[keep].astype(np.int64)
    times, gyr, acc, mag = times[keep], gyr[keep], acc[keep], None if mag is None else mag[keep]
    rate_hz = round(1.0 / float(np.median(np.diff(times))), 3)
    # as live: samples the link lost put back, so the smoother integrates across them
    times, arrays, _ = fill_lost(seq, times, [x for x in (gyr, acc, mag) if x is not None],
                                 math.floor(options["max_gap_s"] * rate_hz))  # fmt: skip
    gyr, acc, mag = arrays[0], arrays[1], arrays[2] if mag is not None else None
    out = smooth_orientation(gyr, acc, mag, rate_hz=rate_hz)
    rest = first_rest(gyr, acc, rate_hz, options)
    bias = None if rest is None else gyr[rest].mean(axis=0)
    if bias is not None:
        out = smooth_orientation(gyr - bias, acc, mag, rate_hz=rate_hz)
    no_rest = (
        None if bias is not None else "gyroscope bias from the orientation smoother alone (no rest found)"
    )
    quats = out["quat9d" if with_mag else "quat6d"]
    estimate, mounting = strap_mounting(segment, times, gyr if bias is None else gyr - bias, acc, rest)
    if estimate is not None:
        quats = segment_quaternion(quats, estimate)
    return _StrapValues(
        key, segment, times, quats, out["mag_disturbed"], with_mag, no_rest, rate_hz, mounting
    )


def strap_mounting(segment: str, times, gyr, acc, rest: slice | None):
    """A strap's mounting (3, 3 segment-from-sensor, or None: nominal), the reason its values give about it
    (None: nothing to say) and what was found, for the record. The live calibration (``MountingCalibration``)
    with the first rest as its static pose and one window over every sample after it (bias-corrected
    gyroscope): offline the whole recording is the functional movement."""
    calibration = MountingCalibration(segment, math.inf)  # one window: every sample given
    if calibration.kind not in CALIBRATED_KINDS:
        return None, (calibration.reason(0.0), {"quality": "nominal", "reason": calibration.reason(0.0)})
    if rest is None:
        why = f"{_MOUNTING}: no rest in the recording for the static pose"
        return None, (why, {"quality": "nominal", "reason": why})
    calibration.static_pose(acc[rest], float(times[rest.stop - 1]))
    calibration.movement(gyr[rest.stop :], acc[rest.stop :], times[rest.stop :])
    calibration.end_window()
    estimate = calibration.estimate
    if estimate is None:
        why = f"{_MOUNTING}: no samples after the rest"
        return None, (why, {"quality": "nominal", "reason": why})
    record = {"quality": estimate.quality.level.value, "reason": estimate.quality.reason, "fixed": estimate.fixed,
              "static_samples": rest.stop - rest.start, "axis_sigma_deg": _finite(estimate.axis_sigma_deg)}  # fmt: skip
    if estimate.mounting is None:
        why = f"{_MOUNTING}: {estimate.quality.reason}"
        return None, (why, {**record, "reason": why})
    record["matrix"] = np.round(estimate.mounting, 6).tolist()
    record["sigma_deg"] = calibration.sigma_deg(calibration.calibrated_s)  # None: its reason states a caveat
    record["angle_deg"] = round(float(np.degrees(estimate.rotation.magnitude())), 3)
    return estimate.mounting, (calibration.reason(calibration.calibrated_s), record)


def _finite(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None


def first_rest(gyr: np.ndarray, acc: np.ndarray, rate_hz: float, options: dict) -> slice | None:
    """The first rest window of the recording by the live processor's stationarity test
    (``still_windows``), so offline and live find the same rest; None without one."""
    n = rest_window(options, rate_hz)
    if len(gyr) < n:
        return None
    hits = np.flatnonzero(still_windows(gyr, acc, rate_hz, options))
    return None if not len(hits) else slice(int(hits[0]), int(hits[0]) + n)


def _frames(
    parts: list[KeypointBatch], epoch_ns: int, settings: KeypointFilterSettings
) -> tuple[SmoothedKeypoints, np.ndarray]:
    """The camera's frames smoothed over the whole recording, with the detections (fillers included) they
    were made from."""
    counts = [b.keypoints.shape[1] for b in parts]
    if (
        len(set(counts)) > 1
    ):  # another pose model after a restart: the live stream, too, goes on with the last
        first = max(i for i, c in enumerate(counts) if c != counts[-1]) + 1
        log.warning("%s/%s: keypoint count changed; the offline pass uses its last %d batches",
                    parts[0].source_id, parts[0].device_id, len(parts) - first)  # fmt: skip
        parts = parts[first:]
    times = np.concatenate([(b.time_ns - epoch_ns) / 1e9 for b in parts])
    seq = np.concatenate([b.seq for b in parts])
    keypoints = np.concatenate([b.keypoints for b in parts]).astype(np.float64)
    keep = _increasing(times)
    times, keypoints = _with_fillers(times[keep], seq[keep], keypoints[keep])
    return smooth_offline(times, keypoints, settings), keypoints


def _with_fillers(times: np.ndarray, seq: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames lost before each frame inserted as frames without detections, as the live camera pushes them
    (``lost_frame_times``)."""
    out_t, out_k = [], []
    empty = np.full(keypoints.shape[1:], np.nan)
    for i in range(len(times)):
        fill = (
            lost_frame_times(float(times[i - 1]), int(seq[i - 1]), float(times[i]), int(seq[i])) if i else []
        )
        out_t += fill
        out_k += [empty] * len(fill)
        out_t.append(float(times[i]))
        out_k.append(keypoints[i])
    return np.array(out_t), np.array(out_k)
