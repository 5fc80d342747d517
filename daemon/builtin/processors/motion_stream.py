"""Built-in processor: the motion stream. Puts the athlete's body on one timeline, ``rate_hz`` items a second
(kinefuse.types.MotionItem): each strap's segment orientation (the VQF orientation filter) and each camera's
smoothed 2D keypoints (the fixed-lag Kalman / RTS smoother with flagged gaps), both interpolated onto the
item's time. Where two or more cameras declare their calibration, their keypoints are also triangulated
(the view "3d") and a thigh's or shank's heading is taken from the video (``video_fusion``; motion_fusion).

A strap's segment is the ``segment`` in its device's meta (the synthetic source's scenario, a BLE strap's
``kinefuse devices assign``), learnt from its declaration (``device_added``); a strap without one is left
out. Mounting: a shank or thigh strap's first rest (below) is the static pose and the next
``mounting_window_s`` of movement the functional movement of a strap-to-segment calibration (Seel et al.
2014, kinefuse.fusion.mounting); from then on the segment's orientation is the strap's composed with the
inverse mounting. Until then, and on other segments, the strap's axes are taken as the segment's (the
nominal mounting), and the orientation is degraded and says so; an insufficient window says why and the
next is tried. A thigh's calibrated mounting stays degraded with its measured bias.

Gyroscope bias: uncalibrated consumer straps are off by up to ±5 deg/s, beyond what the filter's own bias
estimate learns (``bias_clip``, 2 deg/s). Each strap looks for rest from its first sample: a window of
``rest_window_s`` whose gyroscope and accelerometer spread stay within ``rest_noise_ratio`` times the
sensor's white noise and whose mean specific force is within ``rest_acc_tolerance`` of g (a stationarity
test after Skog et al. 2010). The window's mean gyroscope is the bias; the filter restarts from that window
with it subtracted, as on every later sample. Until then each orientation says "settling: gyroscope bias
not yet estimated (no rest yet)", after ``settle_timeout_s`` "gyroscope bias not estimated: no rest in the
first N s" (the search goes on).

Timing: the item for time t goes out once every device's output reaches t (a camera's smoothed frames come
``lag_s`` and one frame after its detections), or once the newest input is ``max_wait_s`` past t; a device
still late then has no value in that item. docs/fusion.md, "The motion stream".
"""

from __future__ import annotations

import logging
import math

import numpy as np

from kinefuse import hookimpl
from kinefuse.builtin.processors.motion_cameras import CameraTrack
from kinefuse.builtin.processors.motion_fusion import VideoFusion
from kinefuse.builtin.processors.motion_people import PersonAssociation
from kinefuse.builtin.processors.motion_straps import StrapTrack
from kinefuse.configschema import Field
from kinefuse.fusion.keypoint_smoothing import KeypointFilterSettings
from kinefuse.interfaces import ProcessorSpec
from kinefuse.types import SEGMENTS, DeviceAdded, DeviceKind, ImuBatch, KeypointBatch, MotionItem, SampleBatch

log = logging.getLogger(__name__)

SCHEMA = {
    "rate_hz": Field(float, 30.0, "motion items per second", min=1.0, max=1000.0),
    "lag_s": Field(float, 0.1, "keypoint smoothing delay (fixed-lag RTS smoother)", min=0.0, max=2.0),
    "max_gap_s": Field(float, 0.15, "longest gap bridged: beyond it there is no value", min=0.01, max=2.0),
    "max_wait_s": Field(float, 0.5, "longest an item waits for a late device", min=0.0, max=10.0),
    "pixel_sigma": Field(float, 5.0, "keypoint measurement scale at confidence 1 (px)", min=0.01, max=1000.0),
    "detector_error": Field(
        float,
        0.07,
        "the pose model's error per axis, in torso lengths: keypoint tolerances' floor",
        min=0.0,
        max=1.0,
    ),
    "process_noise": Field(float, 2.0e5, "keypoint process noise (px²/s³)", min=1.0, max=1.0e10),
    "rate_samples": Field(int, 50, "samples measuring a strap's sample rate", min=5, max=10_000),
    "rest_window_s": Field(
        float, 1.5, "rest needed to estimate a strap's gyroscope bias (s)", min=0.1, max=10.0
    ),
    "gyr_noise_density": Field(float, 0.015, "gyroscope white noise (deg/s/√Hz)", min=1e-5, max=10.0),
    "acc_noise_density": Field(float, 230.0, "accelerometer white noise (µg/√Hz)", min=0.1, max=1e5),
    "rest_noise_ratio": Field(
        float, 2.0, "rest: spread at most this many times the white noise", min=1.0, max=100.0
    ),
    "rest_max_bias": Field(
        float, 10.0, "rest: the window's mean angular rate at most this (deg/s)", min=0.1, max=100.0
    ),
    "rest_acc_tolerance": Field(
        float, 0.5, "rest: |mean specific force| within this of g (m/s²)", min=0.01, max=5.0
    ),
    "settle_timeout_s": Field(
        float, 30.0, "no rest this long: say the bias is not estimated", min=1.0, max=3600.0
    ),
    "mounting_window_s": Field(
        float, 10.0, "movement after the rest that calibrates a leg strap's mounting (s)", min=2.0, max=600.0
    ),
    "video_fusion": Field(
        bool, True, "triangulate calibrated cameras and take thigh and shank headings from the video"
    ),
    "heading_sigma_deg": Field(
        float, 20.0, "one video sample's heading error, horizontal segment (deg)", min=0.1, max=180.0
    ),
    "heading_init_s": Field(
        float, 2.0, "video seen before a segment's heading is fixed (s)", min=0.0, max=60.0
    ),
    "heading_bridge_s": Field(
        float, 2.0, "video heading this old or newer counts as current (s)", min=0.0, max=600.0
    ),
    "reject_tolerances": Field(
        float,
        1.0,
        "a camera this many keypoint tolerances from where the others put a keypoint is left out",
        min=0.1,
        max=100.0,
    ),
    "drift_window_s": Field(
        float,
        10.0,
        "calibration drift: a camera's error over this long against its first (s)",
        min=1.0,
        max=3600.0,
    ),
    "drift_ratio": Field(
        float, 2.0, "calibration drift: flagged at this many times its first error", min=1.1, max=100.0
    ),
    "associate_limit": Field(
        float,
        0.5,
        "several people in view: two views farther apart than this (epipolar, torso lengths) are two people",
        min=0.01,
        max=10.0,
    ),
    "offset_window_s": Field(
        float, 20.0, "camera-strap time offset: data correlated (s; 0: off)", min=0.0, max=600.0
    ),
    "offset_every_s": Field(
        float, 5.0, "camera-strap time offset: re-estimated this often (s)", min=0.5, max=600.0
    ),
}


def _check(options: dict) -> list[tuple[str, str]]:
    if options["max_wait_s"] <= options["lag_s"]:
        return [("max_wait_s", f"must exceed lag_s ({options['lag_s']} s): every camera would be too late")]
    return []


class MotionStream:
    def __init__(self, options: dict, processor_id: str):
        self.processor_id, self.rate_hz = processor_id, options["rate_hz"]
        self.period_ns = round(1e9 / self.rate_hz)
        self.max_gap_s, self.max_wait_ns = options["max_gap_s"], round(options["max_wait_s"] * 1e9)
        self.rate_samples = options["rate_samples"]
        self.rest = {
            key: options[key]
            for key in (
                "rest_window_s",
                "gyr_noise_density",
                "acc_noise_density",
                "rest_noise_ratio",
                "rest_acc_tolerance",
                "rest_max_bias",
                "settle_timeout_s",
                "mounting_window_s",
                "max_gap_s",
            )
        }
        self.settings = KeypointFilterSettings(
            process_noise=options["process_noise"], pixel_sigma=options["pixel_sigma"],
            max_gap_s=options["max_gap_s"], lag_s=options["lag_s"],
        )  # fmt: skip
        self.detector_error = options["detector_error"]
        self._straps: dict[tuple[str, str], StrapTrack] = {}
        self._video = VideoFusion(options, processor_id)  # triangulation and segment heading fusion
        # with several people in view, each camera's athlete is the person the calibrated cameras agree on
        self._people = PersonAssociation(self._video.cameras, options["associate_limit"], processor_id)
        self._cameras: dict[tuple[str, str], CameraTrack] = {}
        self._epoch_ns: int | None = None  # the first item's time; devices keep their times in s from it
        self._next_ns = {0: 0, 1: 0}  # the next item's time, by revision
        self._horizon_ns = 0  # the newest input time
        self._revise_until_ns: int | None = None  # revision 1's publishing, left to the next call

    def device_added(self, declaration: DeviceAdded) -> list:
        device, key = declaration.device, (declaration.source_id, declaration.device.device_id)
        if key in self._straps or key in self._cameras:
            return []  # a restarted source declares its devices again; they keep their state and segment
        if device.kind is DeviceKind.CAMERA:
            self._cameras[key] = CameraTrack(
                *key, device.keypoint_set or "", self.settings, self.detector_error
            )
            self._next_ns[1] = max(self._next_ns.values())  # revisions start with the first camera
            self._video.add_camera(*key, device.meta)
            return []
        segment = device.meta.get("segment")
        owner = next((s.device_id for s in self._straps.values() if s.segment == segment), None)
        if segment not in SEGMENTS or owner is not None:
            why = f"{owner} is already on {segment}" if owner else "no known segment in its meta"
            log.warning("%s: strap %s/%s left out of the motion stream: %s", self.processor_id, *key, why)
            return []
        self._straps[key] = StrapTrack(*key, segment, self.rest)
        self._video.add_strap(key, segment)
        return []

    def process(self, batch: SampleBatch) -> list[MotionItem]:
        # the revisions the previous call made ready go out now, ahead of this batch: made before it, they
        # are what they would have been then, and the causal items never wait for them
        return self._revised() + self._causal(batch)

    def _revised(self) -> list:
        """Revision 1's items up to where the previous call left it (none without a lagging smoother)."""
        until_ns, self._revise_until_ns = self._revise_until_ns, None
        return [] if until_ns is None else self._fused(self._publish(until_ns, (1,)))

    def _causal(self, batch: SampleBatch) -> list:
        batch = self._video.observe(batch)  # a camera's times corrected by its cross-modal offset
        if isinstance(batch, KeypointBatch):
            batch = self._people.choose(batch)
        key = (batch.source_id, batch.device_id)
        device = (self._straps if isinstance(batch, ImuBatch) else self._cameras).get(key)
        if device is None or batch.time_ns is None:
            return []
        if self._epoch_ns is None:
            self._epoch_ns = -(-int(batch.time_ns.min()) // self.period_ns) * self.period_ns
            self._next_ns = {0: self._epoch_ns, 1: self._epoch_ns}
        self._horizon_ns = max(self._horizon_ns, int(batch.time_ns.max()))
        if isinstance(batch, ImuBatch):
            device.add(batch, self._epoch_ns, self.rate_samples)
        else:
            device.add(batch, self._epoch_ns)
        until_ns = self._horizon_ns - self.max_wait_ns
        if 1 in self._revisions():
            self._revise_until_ns = until_ns
        events, self._people.events = self._people.events, []
        return [*self._fused(self._publish(until_ns, (0,))), *events]

    def flush(self) -> list[MotionItem]:
        """Publish every item some device still covers; the devices that do not have no value there."""
        revised = self._revised()
        self._video.finish()
        for camera in self._cameras.values():
            camera.flush()
        ends = [end for end in (d.end_s() for d in self._devices()) if end is not None]
        if not ends:
            return revised
        return revised + self._fused(
            self._publish(self._epoch_ns + round(max(ends) * 1e9), self._revisions())
        )

    def _fused(self, items: list[MotionItem]) -> list:
        """The items through the video fusion; the straps' mountings are looked up only when there are items
        (most calls publish none)."""
        return self._video.fuse(items, self._mounted_ns() if items else {})

    def _mounted_ns(self) -> dict[str, tuple[int, float | None] | None]:
        """Per strap segment, the item time from which its calibrated mounting applies and that mounting's
        standard deviation (deg; None where it has a caveat) (None: not calibrated yet)."""
        out = {}
        for strap in self._straps.values():
            since = strap.mounting.calibrated_s
            out[strap.segment] = None if since is None else (
                self._epoch_ns + round(since * 1e9), strap.mounting.sigma_deg(since)
            )  # fmt: skip
        return out

    def _devices(self) -> list[StrapTrack | CameraTrack]:
        return [*self._straps.values(), *self._cameras.values()]

    def _revisions(self) -> tuple[int, ...]:
        """0, the causal items; and 1, their smoothed revisions, when a camera's smoother lags."""
        return (0, 1) if self._cameras and self.settings.lag_s > 0 else (0,)

    def _publish(self, until_ns: int, revisions: tuple[int, ...]) -> list[MotionItem]:
        items = [item for revision in revisions for item in self._items(revision, until_ns)]
        if not items:
            return []  # most calls: straps send hundreds of batches a second, items go out 30
        oldest_s = (min(self._next_ns[r] for r in self._revisions()) - self.period_ns - self._epoch_ns) / 1e9
        for strap in self._straps.values():
            strap.trim(oldest_s)
        for camera in self._cameras.values():
            for revision in revisions:
                camera.trim((self._next_ns[revision] - self.period_ns - self._epoch_ns) / 1e9, revision)
        return items

    def _items(self, revision: int, until_ns: int) -> list[MotionItem]:
        """Every item of ``revision`` up to ``until_ns``, or up to where every device's output reaches (a
        strap's filtered samples; a camera's frames as filtered for 0, as smoothed for 1) if that is later."""
        ends = [s.end_s() for s in self._straps.values()] + [
            c.end_s(revision) for c in self._cameras.values()
        ]
        if ends and None not in ends:
            until_ns = max(until_ns, self._epoch_ns + math.floor(min(ends) * 1e9))
        if until_ns < self._next_ns[revision]:
            return []
        grid_ns = np.arange(self._next_ns[revision], until_ns + 1, self.period_ns)
        self._next_ns[revision] = int(grid_ns[-1]) + self.period_ns
        grid = (grid_ns - self._epoch_ns) / 1e9
        segments = [strap.orientations(grid, self.max_gap_s) for strap in self._straps.values()]
        views = [cam.views(grid, self.max_gap_s, revision) for cam in self._cameras.values()
                 if cam.smoother is not None]  # fmt: skip
        return [MotionItem(t, self.rate_hz, tuple(s[j] for s in segments), tuple(v[j] for v in views),
                           self.processor_id, revision) for j, t in enumerate(grid_ns.tolist())]  # fmt: skip


@hookimpl
def register_processors():
    return [ProcessorSpec("motion", MotionStream, SCHEMA, __doc__.strip(), check=_check)]
