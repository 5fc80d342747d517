"""The 2D pose detector model: what a detector such as RTMPose or MoveNet reports for a camera that films
the synthetic athlete, with every kind of error it makes switchable.

Works on plain arrays: landmarks are world positions ``{name: (n, 3)}`` (x forward, y left, z up,
metres) and capsules ``{segment: (start (n, 3), end (n, 3), radius)}``, as the body model provides them.

Error model (each switched off by the default value of its field, see ``DetectorErrors``):

- confidence: per keypoint and frame, ``confidence_mean`` exactly, or Beta-distributed with that mean
  and standard deviation ``confidence_spread``;
- pixel noise: isotropic Gaussian with σ = pixel_noise_px / max(confidence, 0.1) per axis, so a keypoint
  the detector is unsure of is also placed worse (the 0.1 floor keeps σ finite);
- jitter: heavy-tailed, as a real detector's frame-to-frame error is, and heavier the less sure the
  detector is: per axis, Student-t with ν = ``jitter_dof`` · max(confidence, 0.1) ^ ``jitter_tail_power``
  degrees of freedom and scale ``jitter_scale`` · torso · max(confidence, 0.1) ^
  -``jitter_confidence_power``, independent from frame to frame (MoveNet's is, at 60 fps), where torso is
  the person's torso length in pixels at its distance (focal length · mid-shoulder to mid-hip distance /
  depth of the torso's midpoint): the error scales with the person's image size, not the image's; each
  axis's jitter is clipped at ``JITTER_LIMIT_TORSO`` torso lengths (a tail this heavy would otherwise
  now and then throw a keypoint far off the person, which a detector that looks only at the person's
  crop never does);
- drift: a slowly wandering error on top of the jitter, per keypoint and axis an Ornstein-Uhlenbeck
  process (Uhlenbeck & Ornstein, Phys. Rev. 36, 1930) sampled at the frame times, stationary RMS
  ``drift_scale`` · torso and correlation time ``drift_time_s``: MoveNet's error against triangulation
  stays correlated for about half a second, longer than a few frames' jitter. It starts from its
  stationary law in each call, so it restarts at each chunk of a simulation, as the IMUs' drifts do;
- offsets: every keypoint sits off its landmark by a fixed 2D offset per joint and camera, drawn once,
  Gaussian per axis with the RMS of the joint's group in ``offsets`` (a fraction of the torso length, so
  it too scales with the person's image size), in a random direction (the offsets measured against
  triangulation show no preferred direction along or across the limb). The draw depends only on the
  camera's name and ``offset_seed``, not on the caller's generator, so every chunk of a recording sees the
  same offsets;
- self-occlusion: a keypoint hidden behind another segment's capsule is still reported, as detectors
  output every keypoint, but with its confidence multiplied by ``occluded_confidence`` and an extra
  Gaussian error of σ = ``occluded_error_px`` per axis (the detector's guess at where it is);
- scripted occluders, and keypoints out of the image or behind the camera: reported missing, x = y =
  NaN and confidence 0;
- left/right swap: with ``swap_probability`` per frame, every left keypoint is reported under its right
  label and vice versa;
- frame drop: with ``frame_drop`` per frame the frame never reaches the host (only ``dropped`` says so);
- timestamp jitter: the reported time is the true frame time plus Gaussian noise of σ =
  ``timestamp_jitter_s``.

Each error draws from its own random stream (spawned from the caller's generator; the offsets from their
own seed), so switching one error on or off never changes the draws of another. The figures MoveNet gives
on real video, and how they were fitted: docs/simulation.md, "The detector model against MoveNet".
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

from kinefuse.camera_calibration import CameraCalibration, depth, project
from kinefuse.keypoints import COCO_17, HALPE_26

Capsule = tuple[
    np.ndarray, np.ndarray, float | np.ndarray
]  # start (n, 3), end (n, 3), radius (scalar or (n,))

_MIN_CONFIDENCE_FOR_NOISE = 0.1
# MoveNet top-down on the Pose2Sim demo (kinefuse.bench.scoring.detector_fit): the largest 9-frame residual
# is 1.4 torso lengths, so about 1.9 of error (an isolated error leaves 0.745 of itself in the residual).
JITTER_LIMIT_TORSO = 2.0


@dataclasses.dataclass(frozen=True)
class KeypointSet:
    """A detector's keypoints in its output order, and the body-model landmark each one sits on."""

    name: str
    keypoints: tuple[str, ...]
    landmarks: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.keypoints) != len(self.landmarks):
            raise ValueError(
                f"{self.name}: {len(self.keypoints)} keypoints but {len(self.landmarks)} landmarks"
            )

    @property
    def mirror(self) -> np.ndarray:
        """Index of each keypoint's left/right counterpart (itself for midline keypoints)."""
        index = {name: i for i, name in enumerate(self.keypoints)}
        return np.array([index[_mirrored(name)] for name in self.keypoints])


def _mirrored(name: str) -> str:
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(side):
            return other + name.removeprefix(side)
    return name


# The keypoint names are the runtime's (kinefuse.keypoints); each sits on the body-model landmark of its name,
# and HALPE-26's additions on these (the body model has one toe landmark per foot, so big and small toe both
# sit on it).
_HALPE_LANDMARKS = ("head_top", "neck", "pelvis_centre", "left_toe", "right_toe", "left_toe", "right_toe",
                    "left_heel", "right_heel")  # fmt: skip
KEYPOINT_SETS: dict[str, KeypointSet] = {
    "COCO-17": KeypointSet("COCO-17", COCO_17, COCO_17),
    "HALPE-26": KeypointSet("HALPE-26", HALPE_26, COCO_17 + _HALPE_LANDMARKS),
}


# Offset groups: the landmarks whose keypoints share an offset size (JointOffsets' fields).
_OFFSET_GROUPS = {
    "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "head_top"),
    "shoulders": ("neck", "left_shoulder", "right_shoulder"),
    "elbows": ("left_elbow", "right_elbow"),
    "wrists": ("left_wrist", "right_wrist"),
    "hips": ("pelvis_centre", "left_hip", "right_hip"),
    "knees": ("left_knee", "right_knee"),
    "feet": ("left_ankle", "right_ankle", "left_heel", "right_heel", "left_toe", "right_toe"),
}
_GROUP_OF = {landmark: group for group, landmarks in _OFFSET_GROUPS.items() for landmark in landmarks}


def offset_groups(landmarks: Sequence[str]) -> list[str]:
    """The JointOffsets field that sizes each landmark's offset (COCO-17's keypoints are their landmarks)."""
    return [_GROUP_OF[name] for name in landmarks]


@dataclasses.dataclass(frozen=True)
class Occluder:
    """Scripted occlusion: ``keypoints`` (detector names) are missing in frames with start_s <= t < end_s."""

    keypoints: tuple[str, ...]
    start_s: float
    end_s: float


def _field(default: float | bool, doc: str):
    return dataclasses.field(default=default, metadata={"doc": doc})  # scenario schemas show the doc


@dataclasses.dataclass(frozen=True)
class JointOffsets:
    """RMS per axis of each keypoint's fixed offset, by joint group, as a fraction of the torso length."""

    head: float = _field(0.0, "nose, eyes, ears, head top")
    shoulders: float = _field(0.0, "shoulders and neck")
    elbows: float = _field(0.0, "elbows")
    wrists: float = _field(0.0, "wrists")
    hips: float = _field(0.0, "hips and pelvis centre")
    knees: float = _field(0.0, "knees")
    feet: float = _field(0.0, "ankles, heels, toes")

    def any(self) -> bool:
        return any(getattr(self, f.name) for f in dataclasses.fields(self))


@dataclasses.dataclass(frozen=True)
class DetectorErrors:
    """How the detector errs. The defaults are a perfect detector: exact projections, confidence 1."""

    pixel_noise_px: float = _field(0.0, "pixel noise σ per axis at confidence 1, growing as 1/confidence")
    confidence_mean: float = _field(1.0, "mean keypoint confidence")
    confidence_spread: float = _field(0.0, "standard deviation of the (Beta-distributed) confidence")
    occlusion: bool = _field(False, "degrade keypoints hidden behind another segment's capsule")
    occluded_confidence: float = _field(0.2, "factor on a hidden keypoint's confidence")
    occluded_error_px: float = _field(20.0, "σ per axis of a hidden keypoint's extra position error")
    swap_probability: float = _field(0.0, "probability per frame that left and right labels are swapped")
    frame_drop: float = _field(0.0, "probability per frame that it never reaches the host")
    timestamp_jitter_s: float = _field(0.0, "σ of the reported frame time")
    jitter_scale: float = _field(
        0.0, "Student-t jitter scale per axis at confidence 1, a fraction of the torso's image length"
    )
    jitter_dof: float = _field(
        3.0, "degrees of freedom of the jitter's Student-t at confidence 1 (smaller: heavier tail)"
    )
    jitter_confidence_power: float = _field(1.0, "jitter scale grows as max(confidence, 0.1) ^ -power")
    jitter_tail_power: float = _field(0.0, "jitter's degrees of freedom fall as max(confidence, 0.1) ^ power")
    drift_scale: float = _field(
        0.0, "RMS per axis of the slowly wandering error, a fraction of the torso length"
    )
    drift_time_s: float = _field(0.45, "correlation time of the wandering error (MoveNet's, fitted)")
    offsets: JointOffsets = dataclasses.field(
        default=JointOffsets(), metadata={"doc": "fixed per-joint offsets (RMS per axis, torso fraction)"}
    )
    offset_seed: int = _field(0, "seed of the offsets' draw (with the camera's name)")
    occluders: tuple[Occluder, ...] = ()

    def validate(self, keypoint_set: KeypointSet) -> None:
        m, s = self.confidence_mean, self.confidence_spread
        if not 0.0 < m <= 1.0:
            raise ValueError(f"confidence_mean must be in (0, 1], got {m}")
        if s < 0 or (s > 0 and s * s >= m * (1.0 - m)):
            raise ValueError(
                f"confidence_spread must be in [0, sqrt(mean (1 - mean))) for a Beta law, got {s}"
            )
        for name in ("swap_probability", "frame_drop", "occluded_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("pixel_noise_px", "occluded_error_px", "timestamp_jitter_s", "jitter_scale",
                     "jitter_confidence_power", "jitter_tail_power", "drift_scale"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("jitter_dof", "drift_time_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for group in dataclasses.fields(self.offsets):
            if getattr(self.offsets, group.name) < 0:
                raise ValueError(
                    f"offsets.{group.name} must not be negative, got {getattr(self.offsets, group.name)}"
                )
        for occluder in self.occluders:
            unknown = set(occluder.keypoints) - set(keypoint_set.keypoints)
            if unknown:
                raise ValueError(f"occluder names keypoints not in {keypoint_set.name}: {sorted(unknown)}")


@dataclasses.dataclass(frozen=True)
class KeypointTrack:
    """What one camera's detector reported, with the truth beside it.

    ``keypoints`` is in reported label order (a swapped frame reports the left ankle in the right ankle's
    slot); ``truth_xy`` and the (n, K) flags are in true label order. Dropped frames keep their values,
    for scoring; the host never saw them.
    """

    camera: str
    names: tuple[str, ...]
    keypoints: np.ndarray  # (n, K, 3) float32: x, y in pixels, confidence; missing: NaN, NaN, 0
    truth_xy: np.ndarray  # (n, K, 2) float64 perfect projections (NaN behind the camera)
    occluded: np.ndarray  # (n, K) bool: behind another segment's capsule from this camera
    scripted_missing: np.ndarray  # (n, K) bool: removed by a scripted occluder
    out_of_view: np.ndarray  # (n, K) bool: outside the image or behind the camera
    swapped: np.ndarray  # (n,) bool: left/right labels swapped
    dropped: np.ndarray  # (n,) bool: the frame never reached the host
    reported_time_s: np.ndarray  # (n,) true frame time plus jitter
    # (n, K, 2) px, true label order: the slow part of the error in ``keypoints``, drift plus fixed offset
    # (zero when both are off), which no temporal smoother can tell from motion: scoring's floor
    slow_error_xy: np.ndarray | None = None


def simulate_keypoints(
    cam: CameraCalibration,
    keypoint_set: str,
    landmarks: Mapping[str, np.ndarray],
    capsules: Mapping[str, Capsule] | None,
    frame_times_s: np.ndarray,
    errors: DetectorErrors,
    rng: np.random.Generator,
) -> KeypointTrack:
    """Detector output for ``cam`` filming ``landmarks`` at ``frame_times_s`` (see the module docstring)."""
    kset = _keypoint_set(keypoint_set)
    errors.validate(kset)
    times = np.asarray(frame_times_s, dtype=np.float64)
    points = _landmark_stack(kset, landmarks, len(times))
    if errors.occlusion and capsules is None:
        raise ValueError("occlusion needs the body's capsules")
    # the first six streams as before the jitter was added: spawning more children leaves them unchanged
    conf_rng, noise_rng, occlusion_rng, swap_rng, drop_rng, jitter_rng, heavy_rng, drift_rng = rng.spawn(8)

    truth = project(cam, points)
    out_of_view = ~_in_image(truth, cam.size)
    occluded = (
        np.zeros(truth.shape[:2], dtype=bool) if capsules is None else _occluded(points, cam.centre, capsules)
    )
    scripted = _scripted(kset, errors.occluders, times)

    confidence = _confidence(errors, truth.shape[:2], conf_rng)
    if errors.occlusion:
        confidence = np.where(occluded, confidence * errors.occluded_confidence, confidence)
    xy = truth.copy()
    if errors.pixel_noise_px:
        sigma = errors.pixel_noise_px / np.maximum(confidence, _MIN_CONFIDENCE_FOR_NOISE)
        xy += sigma[..., None] * noise_rng.standard_normal(xy.shape)
    if errors.jitter_scale or errors.drift_scale or errors.offsets.any():
        torso = _torso_px(cam, landmarks, len(times))[:, None, None]
    if errors.jitter_scale:
        floored = np.maximum(confidence, _MIN_CONFIDENCE_FOR_NOISE)[..., None]
        scale = errors.jitter_scale * torso * floored**-errors.jitter_confidence_power
        dof = errors.jitter_dof * floored**errors.jitter_tail_power
        unit = heavy_rng.standard_t(np.broadcast_to(dof, xy.shape))
        xy += np.clip(scale * unit, -JITTER_LIMIT_TORSO * torso, JITTER_LIMIT_TORSO * torso)
    slow = np.zeros_like(xy)
    if errors.drift_scale:
        drift = (
            errors.drift_scale
            * torso
            * _ornstein_uhlenbeck(times, errors.drift_time_s, xy.shape[1:], drift_rng)
        )
        xy += drift
        slow += drift
    if errors.offsets.any():
        offset = torso * _offsets(cam, kset, errors)[None]
        xy += offset
        slow += offset
    if errors.occlusion and errors.occluded_error_px:
        guess = errors.occluded_error_px * occlusion_rng.standard_normal(xy.shape)
        xy = np.where(occluded[..., None], xy + guess, xy)
    missing = scripted | out_of_view
    reported = np.concatenate([xy, confidence[..., None]], axis=-1)
    reported[missing] = (np.nan, np.nan, 0.0)

    swapped = _bernoulli(swap_rng, errors.swap_probability, len(times))
    reported[swapped] = reported[swapped][:, kset.mirror]
    return KeypointTrack(
        camera=cam.name,
        names=kset.keypoints,
        keypoints=reported.astype(np.float32),
        truth_xy=truth,
        occluded=occluded,
        scripted_missing=scripted,
        out_of_view=out_of_view,
        swapped=swapped,
        dropped=_bernoulli(drop_rng, errors.frame_drop, len(times)),
        reported_time_s=times + _normal(jitter_rng, errors.timestamp_jitter_s, len(times)),
        slow_error_xy=slow,
    )


def _torso_px(cam: CameraCalibration, landmarks: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    """(n,) the torso's length in pixels at its distance: focal length (mean of fx, fy) times the 3D
    distance from mid-shoulder to mid-hip over the depth of their midpoint; 0 behind the camera."""
    shoulders = (np.asarray(landmarks["left_shoulder"]) + np.asarray(landmarks["right_shoulder"])) / 2
    hips = (np.asarray(landmarks["left_hip"]) + np.asarray(landmarks["right_hip"])) / 2
    z = depth(cam, (shoulders + hips) / 2)
    focal = (cam.matrix[0, 0] + cam.matrix[1, 1]) / 2
    length = np.linalg.norm(shoulders - hips, axis=-1)
    return np.where(z > 0, focal * length / np.where(z > 0, z, 1.0), 0.0).reshape(n)


def _ornstein_uhlenbeck(times: np.ndarray, tau: float, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """(n, *shape) unit-variance Ornstein-Uhlenbeck processes at ``times``: the exact discretisation
    x_i = a x_(i-1) + sqrt(1 - a²) ε_i with a = exp(-Δt / tau), started from the stationary N(0, 1)."""
    steps = rng.standard_normal((len(times), *shape))
    out = np.empty_like(steps)
    if not len(times):
        return out
    decay = np.exp(-np.diff(times) / tau).reshape(-1, *[1] * len(shape))
    out[0] = steps[0]
    for i in range(1, len(times)):
        out[i] = decay[i - 1] * out[i - 1] + np.sqrt(1.0 - decay[i - 1] ** 2) * steps[i]
    return out


def _offsets(cam: CameraCalibration, kset: KeypointSet, errors: DetectorErrors) -> np.ndarray:
    """(K, 2) each keypoint's fixed offset in torso lengths for this camera: a unit Gaussian per keypoint
    and axis from a generator seeded by the camera's name and ``offset_seed`` (so the directions do not
    depend on the sizes), scaled by its group's RMS."""
    rng = np.random.default_rng([errors.offset_seed, zlib.crc32(cam.name.encode("utf-8"))])
    unit = rng.standard_normal((len(kset.keypoints), 2))
    sizes = np.array([getattr(errors.offsets, group) for group in offset_groups(kset.landmarks)])
    return unit * sizes[:, None]


def _keypoint_set(name: str) -> KeypointSet:
    if name not in KEYPOINT_SETS:
        raise ValueError(f"unknown keypoint set {name!r}; known: {sorted(KEYPOINT_SETS)}")
    return KEYPOINT_SETS[name]


def _landmark_stack(kset: KeypointSet, landmarks: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    missing = sorted(set(kset.landmarks) - set(landmarks))
    if missing:
        raise ValueError(f"{kset.name} needs landmarks the body model did not give: {missing}")
    columns = []
    for name in kset.landmarks:
        column = np.asarray(landmarks[name], dtype=np.float64)
        if column.shape != (n, 3):
            raise ValueError(f"landmark {name!r} must have shape ({n}, 3) for {n} frames, got {column.shape}")
        columns.append(column)
    return np.stack(columns, axis=1)


def _in_image(pixels: np.ndarray, size: tuple[float, float]) -> np.ndarray:
    """Inside the image: pixel centres are at integer coordinates, so it spans [-0.5, size - 0.5)."""
    width, height = size
    x, y = pixels[..., 0], pixels[..., 1]
    return (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)  # NaN (behind) is False


def _scripted(kset: KeypointSet, occluders: tuple[Occluder, ...], times: np.ndarray) -> np.ndarray:
    hidden = np.zeros((len(times), len(kset.keypoints)), dtype=bool)
    for occluder in occluders:
        frames = (times >= occluder.start_s) & (times < occluder.end_s)
        columns = [kset.keypoints.index(name) for name in occluder.keypoints]
        hidden[np.ix_(frames, columns)] = True
    return hidden


def _confidence(errors: DetectorErrors, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    m, s = errors.confidence_mean, errors.confidence_spread
    if not s:
        return np.full(shape, m)
    concentration = m * (1.0 - m) / (s * s) - 1.0  # Beta(a, b) with mean a/(a+b) = m and variance s²
    return rng.beta(m * concentration, (1.0 - m) * concentration, shape)


def _normal(rng: np.random.Generator, sigma: float, n: int) -> np.ndarray:
    return rng.normal(0.0, sigma, n) if sigma else np.zeros(n)


def _bernoulli(rng: np.random.Generator, p: float, n: int) -> np.ndarray:
    return rng.random(n) < p if p else np.zeros(n, dtype=bool)


def _occluded(points: np.ndarray, centre: np.ndarray, capsules: Mapping[str, Capsule]) -> np.ndarray:
    """(n, K) whether the sight line from each keypoint to the camera centre passes through a capsule of
    another segment. A keypoint's own segments are the capsules that contain it (a joint sits inside
    both segments it joins), which is why they cannot hide it."""
    hidden = np.zeros(points.shape[:2], dtype=bool)
    for start, end, radius in capsules.values():
        a = np.asarray(start, dtype=np.float64)[:, None]
        b = np.asarray(end, dtype=np.float64)[:, None]
        r = np.asarray(radius, dtype=np.float64)
        r = r[:, None] if r.ndim else r
        own = _point_segment_distance(points, a, b) <= r
        hidden |= ~own & (_segment_segment_distance(points, centre, a, b) <= r)
    return hidden


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    length2 = _dot(ab, ab)
    t = np.clip(_dot(p - a, ab) / np.where(length2 > 0, length2, 1.0), 0.0, 1.0)
    return _norm(p - (a + t[..., None] * ab))


def _segment_segment_distance(p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Shortest distance between segments p1q1 and p2q2, broadcast over leading axes (Ericson, Real-Time
    Collision Detection, 2005, §5.1.9 ClosestPtSegmentSegment). p1q1 never degenerates here: a keypoint
    is never at the camera centre."""
    d1, d2, r = q1 - p1, q2 - p2, p1 - p2
    a = _dot(d1, d1)
    e = _dot(d2, d2)
    f = _dot(d2, r)
    c = _dot(d1, r)
    b = _dot(d1, d2)
    denom = a * e - b * b
    safe_e = np.where(e > 0, e, 1.0)
    # parallel segments (denom 0) may take any s; 0 as Ericson does
    s = np.where(denom > 0, np.clip((b * f - c * e) / np.where(denom > 0, denom, 1.0), 0.0, 1.0), 0.0)
    t = np.where(e > 0, (b * s + f) / safe_e, 0.0)  # a zero-length axis (a sphere): t = 0, s below
    s_nearest_p2 = np.clip(-c / a, 0.0, 1.0)
    s = np.where(t < 0, s_nearest_p2, np.where(t > 1, np.clip((b - c) / a, 0.0, 1.0), s))
    s = np.where(e > 0, s, s_nearest_p2)
    t = np.clip(t, 0.0, 1.0)
    return _norm((p1 + s[..., None] * d1) - (p2 + t[..., None] * d2))


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", u, v)  # several times faster than np.sum(u * v, axis=-1) over 3


def _norm(u: np.ndarray) -> np.ndarray:
    return np.sqrt(_dot(u, u))
