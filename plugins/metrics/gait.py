"""Processor ``gait``: each foot's initial and final contacts from a strap on its foot or shank, else from one
strap on the lower back, else from the 3D keypoints of the motion stream, else from one camera's keypoints;
its strides (stride, stance, swing and step time, cadence) and the two feet's symmetry.

``source`` picks: ``auto`` (a foot's strap where it has one, else a lower-back strap, else the keypoints),
``straps`` (the same without keypoints), ``lower_back`` (only a lower-back strap, both feet),
``keypoints`` (3D, else one camera's) or ``camera`` (one camera's, ``camera`` naming it). A strap takes part
when its device declares a ``segment`` of ``left_foot``, ``right_foot``, ``left_shank`` or ``right_shank``
(one per foot: a foot strap is preferred to a shank's), or ``pelvis`` (a strap on the sacrum or lower back:
kinefuse_plugins.metrics.lower_back_contacts finds both feet's contacts,
each claiming McCamley et al.'s published error, ``lower_back_tolerance_s``). Every ``every_s``
of its samples the contacts of its last ``window_s`` are found (kinefuse_plugins.metrics.strap_contacts, on
the samples placed by sequence number; lost ones interpolated) and those at least ``delay_s`` old and not
yet reported go out: the detector needs the swings after a contact to be sure it is one.

From keypoints: the ``motion`` processor's items of ``revision`` with a triangulated ("3d") view; the same
window, pace and delay over the items' times (kinefuse_plugins.metrics.keypoint_contacts: heel and big toe
where the keypoint set has them, else the ankle, whose final contact is early: degraded, saying so). A
contact with any keypoint it rests on (the hips, for the pelvis, and its own) not measured within
``gap_margin_s`` (filled, predicted or missing: an ankle occluded at foot strike) is insufficient, saying
which and how many frames; one resting on a keypoint the triangulation flagged is degraded. Where the items
have no triangulated view (one camera), or ``source`` is camera: the camera's image, the same method along
its x axis (``keypoint_contacts.image_offsets``), each contact good only where the walk is about square to
the camera (within ``MAX_CAMERA_OBLIQUITY_DEG``, from the hips' and shoulders' apparent widths), else
degraded, and none where the window's walk is turned over ``EDGE_ON_OBLIQUITY_DEG`` (a camera in front of
or behind the athlete); no step length (no positions in metres); the camera's device id on each contact.

A foot strap also gives each stride's length, from the foot's rest in one stance to its rest in the next
(kinefuse_plugins.metrics.foot_strides), ``gait.<side>.stride_length`` and the speed over the stride, claiming
``stride_length_tolerance_m``; degraded until the strap has stood still for a second (its gyroscope's bias),
insufficient where a sample between the rests was lost; none on a ``treadmill``.

Each contact is an event ``initial_contact`` or ``final_contact`` (detail: side, segment or keypoint,
tolerance_s). A contact with any sample missing within ``gap_margin_s`` of it rests on interpolated
samples: its quality is insufficient, saying how many, and so is every stride value resting on it. Strides
and symmetry: kinefuse_plugins.metrics.gait_strides; a strap's contact claims ``contact_tolerance_s`` (a
shank's initial contact ``shank_initial_tolerance_s``), a
keypoints' ``keypoint_tolerance_s``.
"""

from __future__ import annotations

import numpy as np

from kinefuse.configschema import Field
from kinefuse.interfaces import ProcessorSpec
from kinefuse.keypoints import KEYPOINT_NAMES
from kinefuse.types import (
    TRIANGULATED_VIEW,
    DeviceAdded,
    DeviceKind,
    Event,
    ImuBatch,
    KeypointStatus,
    MotionItem,
    Provenance,
    Quality,
    QualityLevel,
    TriangulationCheck,
)
from kinefuse_plugins.metrics.foot_strides import rest_sample, standing_bias, stride_displacement
from kinefuse_plugins.metrics.gait_strides import Contact, Strides
from kinefuse_plugins.metrics.keypoint_contacts import (
    FACE,
    detect_keypoint_contacts,
    foot_points,
    forward_offsets,
    image_offsets,
)
from kinefuse_plugins.metrics.keypoint_window import KeypointWindow
from kinefuse_plugins.metrics.lower_back_contacts import detect_lower_back_contacts
from kinefuse_plugins.metrics.planar_angles import obliquity_deg
from kinefuse_plugins.metrics.quality import worst
from kinefuse_plugins.metrics.strap_contacts import detect_contacts
from kinefuse_plugins.metrics.strap_samples import StrapSamples

SCHEMA = {
    "source": Field(str, "auto", "contacts from: auto (a foot's strap, else a lower-back strap, else the 3D "
                    "keypoints, else one camera's), straps, lower_back, keypoints (3D, else one camera's), camera "
                    "(one camera's)", choices=("auto", "straps", "lower_back", "keypoints", "camera")),
    "camera": Field(str, "", "one camera's keypoints: its device id; empty: the first camera in the items"),
    "motion": Field(str, "motion", "keypoints: the id of the motion processor whose items are read"),
    "revision": Field(int, 0, "keypoints: motion items read: 0 as first published, 1 their smoothed revision",
                      min=0, max=1),
    "window_s": Field(float, 10.0, "contacts are found over this much of a strap's latest samples, s", min=3.0,
                      max=120.0),
    "every_s": Field(float, 1.0, "... this often, s of samples", min=0.1, max=60.0),
    "delay_s": Field(float, 3.0, "a contact is reported once this old (the swings after it confirm it), s",
                     min=0.5, max=60.0),
    "gap_margin_s": Field(float, 0.05, "a sample missing this close to a contact makes it insufficient, s",
                          min=0.0, max=1.0),
    "contact_tolerance_s": Field(float, 0.02, "what a strap's contact time claims (twice its standard "
                                 "deviation), s", min=0.001, max=1.0),
    "shank_initial_tolerance_s": Field(float, 0.04, "... a shank strap's initial contact (the impact after the "
                                       "swing: up to 35 ms late on the synthetic walker), s", min=0.001, max=1.0),
    "lower_back_tolerance_s": Field(float, 0.06, "what a lower-back strap's initial contact claims (McCamley "
                                    "et al. 2012: 0.02 +- 0.02 s; its final contact 1.5 times this), s",
                                    min=0.001, max=1.0),
    "treadmill": Field(bool, False, "the athlete walks or runs on a treadmill: no stride length from a foot "
                       "strap (the belt carries the foot through its stance, which is then never still)"),
    "stride_length_tolerance_m": Field(float, 0.10, "what a foot strap's stride length claims (twice its "
                                       "standard deviation on the gaitmap recording: 3.6 cm median |error|), m",
                                       min=0.001, max=2.0),
    "keypoint_tolerance_s": Field(float, 0.06, "what a contact time from keypoints claims, s", min=0.001,
                                  max=1.0),
    "symmetry_strides": Field(int, 20, "symmetry indices over each foot's last this many strides", min=2,
                              max=1000),
    "min_strides": Field(int, 10, "... of which this many good ones each are needed", min=1, max=1000),
}  # fmt: skip
SIDES = ("left", "right")
BOTH, LOWER_BACK = "both", "lower_back"  # a lower-back strap's side and place: it finds both feet's contacts
# McCamley et al. 2012 (Gait & Posture 36(2):316-318): final contacts 0.03 +- 0.03 s, initial 0.02 +- 0.02 s
_FINAL_OVER_INITIAL = 1.5
MAX_CAMERA_OBLIQUITY_DEG = 30.0  # one camera's contacts are good where the walk is this near square to it
EDGE_ON_OBLIQUITY_DEG = 60.0  # ... and none at all where the window's walk is further turned (a front view)
OBLIQUITY_S = 1.0  # ... the median over about a stride (an occluded far hip makes one frame's wander)
# stance, swing and step times from a lower-back strap (docs/metrics.md, "Contacts from a lower-back strap")
_TRUNK_TIMING = Quality(
    QualityLevel.DEGRADED,
    "from the trunk: each foot's initial and final contacts are found "
    "at different moments of the double support, biased differently where the two double "
    "supports differ (an asymmetric walk: its step-time asymmetry came out reversed)",
)
_PLACES = {f"{side}_{place}": (side, place) for side in SIDES for place in ("foot", "shank")}
_PLACES["pelvis"] = (BOTH, LOWER_BACK)
# the keypoints contacts from keypoints need: the pelvis and the facing direction (hips), the body's up
_BODY = ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "left_ankle", "right_ankle")
_FLAGGED = TriangulationCheck.BONE_LENGTH | TriangulationCheck.CAMERA_DRIFT
# at the heel's landing the trailing heel has risen: the ankles are closer than the heels (6 cm on the
# synthetic walker, whose heels give it within 2.5 cm)
_NO_BIAS = Quality(QualityLevel.DEGRADED, "the strap's gyroscope bias is not known (it has not stood still for "
                   "1 s): an uncorrected 5 deg/s lengthens strides by about 6 cm")  # fmt: skip
_ANKLE_STEP = Quality(QualityLevel.DEGRADED, "from the ankles (no heel keypoint): shorter than heel to heel")


class Gait:
    def __init__(self, options: dict, processor_id: str):
        self.options, self.processor_id = options, processor_id
        self._straps: dict[tuple[str, str], StrapSamples] = {}
        self._views: dict[str, KeypointWindow] = {}
        self._strides: dict[str, Strides] = {}

    def device_added(self, declaration: DeviceAdded) -> list:
        device = declaration.device
        segment = device.meta.get("segment")
        key = (declaration.source_id, device.device_id)
        if (self.options["source"] in ("keypoints", "camera") or device.kind is not DeviceKind.IMU
                or segment not in _PLACES or key in self._straps):  # fmt: skip
            return []
        side, place = _PLACES[segment]
        if self.options["source"] == LOWER_BACK and place != LOWER_BACK:
            return []
        rival = next((k for k, s in self._straps.items() if s.side == side and k[0] == key[0]), None)
        if rival is not None and not (place == "foot" and self._straps[rival].place == "shank"):
            return []  # one strap per foot: the first, or a foot's over a shank's
        self._straps.pop(rival, None)
        self._straps[key] = StrapSamples(side, place, segment)
        return []

    def process(self, batch) -> list:
        strap = self._straps.get((batch.source_id, batch.device_id))
        if strap is None or not isinstance(batch, ImuBatch) or not len(batch):
            return []
        newest = strap.due(batch, self._keep_ns(), self._keep_ns(), int(self.options["every_s"] * 1e9))
        if newest is None:
            return []
        return self._report(
            batch.source_id, batch.device_id, strap, newest - int(self.options["delay_s"] * 1e9)
        )

    def observe(self, items) -> list:
        """The motion items' 3D keypoints, else one camera's, for the feet the contacts come from keypoints
        for."""
        if self.options["source"] in ("straps", LOWER_BACK):
            return []
        out = []
        for item in items:
            if (isinstance(item, MotionItem) and item.processor == self.options["motion"]
                    and item.revision == self.options["revision"]):  # fmt: skip
                view = self._view_of(item)
                out += self._add_view(item.time_ns, view) if view is not None else []
        return out

    def _view_of(self, item: MotionItem):
        """The item's triangulated view (unless ``source`` is camera), else the camera's named by ``camera``
        or the first; None where there is none."""
        triangulated = next((v for v in item.keypoints if v.view == TRIANGULATED_VIEW), None)
        if triangulated is not None and self.options["source"] != "camera":
            return triangulated
        cameras = [v for v in item.keypoints if v.view != TRIANGULATED_VIEW]
        wanted = self.options["camera"]
        return next((v for v in cameras if not wanted or v.view == wanted), None)

    def flush(self) -> list:
        out = []
        for (source_id, device_id), strap in self._straps.items():
            if strap.seq:
                out += self._report(source_id, device_id, strap, int(strap.window(self._keep_ns())[1][-1]))
        for (source_id, _), view in self._views.items():
            if view.time_ns:
                out += self._report_view(source_id, view, view.time_ns[-1])
        return out

    def _keep_ns(self) -> int:
        return int(self.options["window_s"] * 1e9)

    def _report(self, source_id: str, device_id: str, strap: StrapSamples, until_ns: int) -> list:
        """The contacts found in the strap's window after those reported and up to ``until_ns``, as events,
        and the strides they end."""
        contacts = self._contacts(source_id, strap)
        fresh = [(side, c) for side, c in contacts if strap.reported_ns < c.time_ns <= until_ns]
        strap.reported_ns = max(strap.reported_ns, until_ns)
        out = []
        for side, contact in sorted(fresh, key=lambda x: x[1].time_ns):
            out.append(self._event(source_id, device_id, contact, {"side": side, "segment": strap.segment}))
            out += self._strides_of(source_id).add(side, contact, device_id)
        return out

    def _strides_of(self, source_id: str) -> Strides:
        if source_id not in self._strides:
            self._strides[source_id] = Strides(self.processor_id, source_id, self.options["symmetry_strides"],
                                               self.options["min_strides"])  # fmt: skip
        return self._strides[source_id]

    def _contacts(self, source_id: str, strap: StrapSamples) -> list[tuple[str, Contact]]:
        """Every contact in the strap's window with its foot, insufficient where samples near it are missing;
        a lower-back strap's only for the feet without their own strap."""
        grid = strap.grid(self._keep_ns())
        if grid is None:
            return []
        if strap.place == LOWER_BACK:
            found = detect_lower_back_contacts(grid.acc, grid.gyr, grid.rate_hz)
            claim = self.options["lower_back_tolerance_s"]
            feet = self._lower_back_sides(source_id)
            both = [(x, True, side, claim) for x, side in zip(found.initial, found.initial_side, strict=True)]
            both += [(x, False, side, claim * _FINAL_OVER_INITIAL)
                     for x, side in zip(found.final, found.final_side, strict=True)]  # fmt: skip
            both = [x for x in both if x[2] in feet]
        else:
            found = detect_contacts(grid.acc, grid.gyr, grid.rate_hz, strap.place)
            claim = self.options["contact_tolerance_s"]
            landing = self.options["shank_initial_tolerance_s"] if strap.place == "shank" else claim
            both = [(x, True, strap.side, landing) for x in found.initial]
            both += [(x, False, strap.side, claim) for x in found.final]
        between = _TRUNK_TIMING if strap.place == LOWER_BACK else None
        lengths = {}
        if strap.place == "foot" and not self.options["treadmill"]:
            lengths = self._stride_lengths(grid, found, strap)
        return [(side, Contact(grid.time_at(where), initial, grid.gap_quality(where, self.options["gap_margin_s"]),
                               tolerance, between=between, stride_length=lengths.get(where)))
                for where, initial, side, tolerance in both]  # fmt: skip

    def _stride_lengths(self, grid, found, strap: StrapSamples) -> dict[float, tuple[float, float, Quality]]:
        """A foot strap's stride lengths (kinefuse_plugins.metrics.foot_strides), by the initial contact that
        ends each stride: from the rest in the stance before it to the rest in its own stance (the stance runs
        to the next swing's final contact), insufficient where a sample between them was lost, degraded until
        the strap has stood still once (its gyroscope's bias)."""
        if strap.gyr_bias is None:
            strap.gyr_bias = standing_bias(grid.gyr, grid.acc, grid.rate_hz)
        bias, fit = strap.gyr_bias, Quality(QualityLevel.GOOD)
        if bias is None:
            bias, fit = np.zeros(3), _NO_BIAS
        stances = zip(found.initial, found.final[1:], strict=False)  # the last stance has no end yet
        rests = [rest_sample(grid.gyr, ic, tc, grid.rate_hz) for ic, tc in stances]
        claim, out = self.options["stride_length_tolerance_m"], {}
        for k in range(1, len(rests)):
            start, stop = rests[k - 1], rests[k]
            if start is None or stop is None or stop <= start:
                continue
            lost = int(np.sum(~grid.present[start : stop + 1]))
            if lost:
                why = f"{lost} samples lost between the foot's rests: the integration would rest on interpolated ones"
                out[float(found.initial[k])] = (np.nan, np.nan, Quality(QualityLevel.INSUFFICIENT, why))
                continue
            out[float(found.initial[k])] = (_stride_length(strap, grid, start, stop, bias), claim, fit)
        first = grid.time_at(0)
        strap.stride_lengths = {key: v for key, v in strap.stride_lengths.items() if key[0] >= first}
        return out

    def _lower_back_sides(self, source_id: str) -> tuple[str, ...]:
        """The feet a lower-back strap's contacts are for: those without a strap of their own."""
        own = {
            s.side for (source, _), s in self._straps.items() if source == source_id and s.place != LOWER_BACK
        }
        return tuple(side for side in SIDES if side not in own)

    def _add_view(self, time_ns: int, view) -> list:
        names = KEYPOINT_NAMES.get(view.keypoint_set, ())
        if not set(_BODY) <= set(names) or not self._keypoint_sides():
            return []
        key = (view.source_id, view.view)
        buffer = self._views.get(key)
        if buffer is None:
            camera = None if view.view == TRIANGULATED_VIEW else view.view
            face = tuple(n for n in FACE if n in names) if camera else ()
            wanted = tuple(
                dict.fromkeys(_BODY + sum((foot_points(names, side) for side in SIDES), ()) + face)
            )
            buffer = self._views[key] = KeypointWindow(wanted, [names.index(n) for n in wanted], camera)
        buffer.add(time_ns, view)
        if buffer.next_ns is None:
            buffer.next_ns = time_ns + int(self.options["window_s"] * 1e9)
        if time_ns < buffer.next_ns:
            return []
        buffer.next_ns = time_ns + int(self.options["every_s"] * 1e9)
        return self._report_view(view.source_id, buffer, time_ns - int(self.options["delay_s"] * 1e9))

    def _keypoint_sides(self) -> tuple[str, ...]:
        """The feet whose contacts come from keypoints: those without a strap on the foot, shank or lower back
        (source auto), or both."""
        strapped = {side for strap in self._straps.values()
                    for side in (SIDES if strap.side == BOTH else (strap.side,))}  # fmt: skip
        return tuple(side for side in SIDES if side not in strapped)

    def _report_view(self, source_id: str, view: KeypointWindow, until_ns: int) -> list:
        found = [(side, point, c) for side, point, c in self._keypoint_contacts(view)
                 if view.reported_ns < c.time_ns <= until_ns]  # fmt: skip
        view.reported_ns = max(view.reported_ns, until_ns)
        out = []
        for side, point, contact in sorted(found, key=lambda x: x[2].time_ns):
            out.append(self._event(source_id, view.camera, contact, {"side": side, "keypoint": point}))
            out += self._strides_of(source_id).add(side, contact, view.camera)
        return out

    def _keypoint_contacts(self, view: KeypointWindow) -> list[tuple[str, str, Contact]]:
        """Every contact in the view's window of the feet without a strap: (side, keypoint, contact)."""
        time_ns, position, status, checks, tolerance = view.window(self._keep_ns())
        seen = np.isfinite(position).all(axis=2)
        needed = [k for k, name in enumerate(view.names) if name not in FACE]
        if len(time_ns) < 3 or (seen[:, needed].sum(axis=0) < 2).any():
            return []
        grid = np.arange(len(time_ns))
        rate_hz = float((len(time_ns) - 1) / ((time_ns[-1] - time_ns[0]) / 1e9))
        points = {name: _interpolated(grid, seen[:, k], position[:, k]) for k, name in enumerate(view.names)}
        turns = _obliquities(points) if view.camera else None
        if turns is not None and not _median(turns) <= EDGE_ON_OBLIQUITY_DEG:
            return []  # a camera in front of or behind the athlete sees no fore-aft excursion to read
        ahead = image_offsets(points, rate_hz) if view.camera else forward_offsets(points, rate_hz)
        if ahead is None:
            return []
        out = []
        for side in self._keypoint_sides():
            first, last = foot_points(view.names, side)
            found = detect_keypoint_contacts(ahead[first], ahead[last], rate_hz)
            other = foot_points(view.names, SIDES[1 - SIDES.index(side)])[0]
            for where, initial in [(x, True) for x in found.initial] + [(x, False) for x in found.final]:
                point = first if initial else last
                quality = self._keypoint_quality(view.names, status, checks, where, rate_hz, point, initial)
                if turns is not None and quality.level is QualityLevel.GOOD:
                    quality = _square_to(turns, where, rate_hz)
                step = None
                # from 3D keypoints, the feet apart along the way the athlete faces (Zeni's markers)
                if initial and turns is None:
                    nearest = int(round(where))
                    stated = float(
                        np.hypot(*tolerance[nearest, [view.names.index(n) for n in (first, other)]])
                    )
                    both = self._keypoint_quality(view.names, status, checks, where, rate_hz, other, True)
                    poorest = worst(quality, both)
                    if poorest.level is QualityLevel.GOOD and first.endswith("_ankle"):
                        poorest = _ANKLE_STEP
                    step = (float(np.interp(where, grid, ahead[first] - ahead[other])),
                            stated if np.isfinite(stated) else None, poorest)  # fmt: skip
                contact = Contact(int(round(np.interp(where, grid, time_ns))), initial, quality,
                                  self.options["keypoint_tolerance_s"], step)  # fmt: skip
                out.append((side, point, contact))
        return out

    def _keypoint_quality(self, names, status, checks, where: float, rate_hz: float, point: str,
                          initial: bool) -> Quality:  # fmt: skip
        """Insufficient where a keypoint it rests on is not measured within ``gap_margin_s``; degraded where
        the triangulation flagged one, or where an ankle stands for the toe."""
        margin = int(round(self.options["gap_margin_s"] * rate_hz))
        near = slice(max(int(np.floor(where)) - margin, 0), int(np.ceil(where)) + margin + 1)
        used = [names.index(n) for n in ("left_hip", "right_hip", point)]
        unmeasured = status[near][:, used] != KeypointStatus.MEASURED
        if unmeasured.any():
            lost = used[int(np.argmax(unmeasured.sum(axis=0)))]
            why = (f"{names[lost]} not measured in {int(unmeasured[:, used.index(lost)].sum())} frames within "
                   f"{self.options['gap_margin_s'] * 1e3:.0f} ms (filled, predicted or missing)")  # fmt: skip
            return Quality(QualityLevel.INSUFFICIENT, why)
        flagged = np.bitwise_or.reduce(checks[near][:, used] & _FLAGGED, axis=None)
        if flagged:
            what = ", ".join(check.name.lower().replace("_", " ") for check in TriangulationCheck
                             if flagged & check)  # fmt: skip
            return Quality(QualityLevel.DEGRADED, f"the triangulation flagged a keypoint it rests on: {what}")
        if not initial and point.endswith("_ankle"):
            return Quality(QualityLevel.DEGRADED, "from the ankle (no toe keypoint): the ankle is farthest "
                                                  "behind as the heel rises, before the toe leaves")  # fmt: skip
        return Quality(QualityLevel.GOOD)

    def _event(self, source_id: str, device_id: str | None, contact: Contact, detail: dict) -> Event:
        return Event(
            kind="initial_contact" if contact.initial else "final_contact",
            time_ns=contact.time_ns,
            source_id=source_id,
            device_id=device_id,
            detail={**detail, "tolerance_s": contact.tolerance_s},
            provenance=Provenance.MEASURED,
            quality=contact.quality,
            processor=self.processor_id,
        )


def _stride_length(strap: StrapSamples, grid, start: int, stop: int, bias: np.ndarray) -> float:
    """The foot's horizontal travel (m) from rest ``start`` to rest ``stop`` (grid indices), computed once
    per stride and bias: each detection over the window sees the stride again."""
    key = (grid.time_at(start), grid.time_at(stop), tuple(bias))
    if key not in strap.stride_lengths:
        moved = stride_displacement(
            grid.acc[start : stop + 1], grid.gyr[start : stop + 1], grid.rate_hz, bias
        )
        strap.stride_lengths[key] = float(np.hypot(moved[0], moved[1]))
    return strap.stride_lengths[key]


def _check(options: dict) -> list[tuple[str, str]]:
    if options["min_strides"] > options["symmetry_strides"]:
        return [("min_strides", f"must be at most symmetry_strides ({options['symmetry_strides']})")]
    if options["delay_s"] >= options["window_s"]:
        return [("delay_s", f"must be shorter than window_s ({options['window_s']})")]
    return []


def _square_to(turns: np.ndarray, where: float, rate_hz: float) -> Quality:
    """A contact from one camera's image is good where the walk is about square to the camera there (the
    plane of motion's turn from the image plane in each frame, ``turns``, median over a stride's
    ``OBLIQUITY_S``); else degraded, saying how far: the walk goes partly in depth, and the peaks shift."""
    half = int(0.5 * OBLIQUITY_S * rate_hz)
    turn = _median(turns[max(int(where) - half, 0) : int(where) + half + 1])
    if not turn > MAX_CAMERA_OBLIQUITY_DEG:
        return Quality(QualityLevel.GOOD)
    return Quality(
        QualityLevel.DEGRADED,
        f"the walk is turned about {turn:.0f} deg from the camera's image "
        f"plane (over {MAX_CAMERA_OBLIQUITY_DEG:g}): partly in depth, its contacts shift",
    )


def _obliquities(points: dict[str, np.ndarray]) -> np.ndarray:
    """The plane of motion's turn from the image plane (deg) in each frame of a camera's window; NaN where
    unknown (planar_angles.obliquity_deg)."""
    return np.array(
        [obliquity_deg({name: x[i] for name, x in points.items()}) for i in range(len(points["left_hip"]))]
    )


def _median(turns: np.ndarray) -> float:
    """The median of the known ``turns``; NaN where none is."""
    return float(np.nanmedian(turns)) if np.isfinite(turns).any() else float("nan")


def _interpolated(grid: np.ndarray, seen: np.ndarray, position: np.ndarray) -> np.ndarray:
    """A keypoint's positions (n, D) over the window, the unseen ones interpolated; all NaN where it is seen in
    fewer than two items."""
    if seen.sum() < 2:
        return np.full(position.shape, np.nan)
    return np.column_stack(
        [np.interp(grid, grid[seen], position[seen, axis]) for axis in range(position.shape[1])]
    )


SPEC = ProcessorSpec("gait", Gait, SCHEMA, __doc__.strip(), check=_check)
