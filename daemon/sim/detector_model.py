"""The 2D pose detector model: what a detector such as RTMPose or MoveNet reports for a camera that films
the synthetic athlete, with every kind of error it makes switchable.

Works on plain arrays: landmarks are world positions ``{name: (n, 3)}`` (x forward, y left, z up,
metres) and capsules ``{segment: (start (n, 3), end (n, 3), radius)}``, as the body model provides them.

Error model (each switched off by the default value of its field, see ``DetectorErrors``):

- confidence: per keypoint and frame, ``confidence_mean`` exactly, or Beta-distributed with that mean
  and standard deviation ``confidence_spread``;
- pixel noise: isotropic Gaussian with σ = pixel_noise_px / max(confidence, 0.1) per axis, so a keypoint
  the detector is unsure of is also placed worse (the 0.1 floor keeps σ finite);
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

Each error draws from its own random stream (spawned from the caller's generator), so switching one error
on or off never changes the draws of another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from kinefuse.camera_calibration import CameraCalibration, project

Capsule = tuple[
    np.ndarray, np.ndarray, float | np.ndarray
]  # start (n, 3), end (n, 3), radius (scalar or (n,))

_MIN_CONFIDENCE_FOR_NOISE = 0.1


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


# COCO keypoint order (Lin et al., Microsoft COCO, 2014; the person_keypoints annotation files).
_COCO_17 = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# HALPE-26 (AlphaPose; RTMPose body-with-feet; Pose2Sim skeletons.py ids 17-25) appends these to COCO-17.
# The body model has one toe landmark per foot, so big and small toe both sit on it.
_HALPE_EXTRA = (
    ("head", "head_top"),
    ("neck", "neck"),
    ("hip", "pelvis_centre"),
    ("left_big_toe", "left_toe"),
    ("right_big_toe", "right_toe"),
    ("left_small_toe", "left_toe"),
    ("right_small_toe", "right_toe"),
    ("left_heel", "left_heel"),
    ("right_heel", "right_heel"),
)
KEYPOINT_SETS: dict[str, KeypointSet] = {
    "COCO-17": KeypointSet("COCO-17", _COCO_17, _COCO_17),
    "HALPE-26": KeypointSet(
        "HALPE-26",
        _COCO_17 + tuple(k for k, _ in _HALPE_EXTRA),
        _COCO_17 + tuple(lm for _, lm in _HALPE_EXTRA),
    ),
}


@dataclasses.dataclass(frozen=True)
class Occluder:
    """Scripted occlusion: ``keypoints`` (detector names) are missing in frames with start_s <= t < end_s."""

    keypoints: tuple[str, ...]
    start_s: float
    end_s: float


def _field(default: float | bool, doc: str):
    return dataclasses.field(default=default, metadata={"doc": doc})  # scenario schemas show the doc


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
        for name in ("pixel_noise_px", "occluded_error_px", "timestamp_jitter_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
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
    conf_rng, noise_rng, occlusion_rng, swap_rng, drop_rng, jitter_rng = rng.spawn(6)

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
    )


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
