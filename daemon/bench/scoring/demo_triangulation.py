"""The Pose2Sim demo in 3D, with no truth to score against: the shipped pose model's keypoints on the four
demo videos (``detector_realism.real_tracks``: RTMDet-nano then MoveNet int8, through the daemon's camera
source) and the demo's two calibrations of the same cameras, Calib_scene.toml (Pose2Sim's scene
calibration) and Calib_qualisys.toml (its Qualisys export).

- Which calibration fits the videos better: each camera's confident keypoints (confidence >=
  ``MIN_CONFIDENCE``) against the point the other three triangulate (``leave_one_out_residuals``), the
  median distance over all cameras, per calibration; the per-camera medians in the note.
- With the better one, how steady the triangulated body is: ``triangulate_robust`` per frame, then each
  bone's length (thigh, shank, upper arm, forearm, both sides) over the frames where both of its ends are
  triangulated; its variability is the MAD over the median (x 1.4826, a standard deviation for Gaussian
  spread), and the row is the median over the bones. A rigid bone measured perfectly would give 0.

MoveNet's int8 kernels differ between CPUs (AVX2, AVX-512 VNNI), so these rows do too; each note says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinefuse.bench import make_row
from kinefuse.bench.scoring.detector_realism import COCO, CPU_NOTE, DEMO
from kinefuse.camera_calibration import leave_one_out_residuals, read_calibration, triangulate_robust

CALIBRATIONS = ("Calib_scene.toml", "Calib_qualisys.toml")
MIN_CONFIDENCE = 0.5
MAX_ERROR_PX = 15.0
BONES = {f"{side} {bone}": (f"{side}_{a}", f"{side}_{b}") for side in ("left", "right")
         for bone, a, b in (("thigh", "hip", "knee"), ("shank", "knee", "ankle"),
                            ("upper arm", "shoulder", "elbow"), ("forearm", "elbow", "wrist"))}  # fmt: skip
CASE = "Pose2Sim demo in 3D"
_MAD_TO_SIGMA = 1.4826


def demo_rows(data_dir: Path, run: tuple[list[np.ndarray], str] | None) -> list[dict]:
    """The rows above from ``run`` (``detector_realism.real_tracks``: the four views' (n, 17, 3) COCO-17
    keypoints, the int8 paths); none without it."""
    if run is None:
        return []
    tracks, int8_path = run
    keypoints = np.stack([np.asarray(t, dtype=np.float64) for t in tracks])
    confident = np.nan_to_num(keypoints[..., 2]) >= MIN_CONFIDENCE
    pixels = np.where(confident[..., None], keypoints[..., :2], np.nan)
    weights = np.where(confident, keypoints[..., 2], 0.0)
    cpu = CPU_NOTE + (f"; int8 path {int8_path}" if int8_path else "")
    setup = (f"MoveNet int8 (top-down, RTMDet-nano) on the 4 demo videos, {keypoints.shape[1]} frames, "
             f"keypoints of confidence >= {MIN_CONFIDENCE:g}")  # fmt: skip
    fits = {}
    for name in CALIBRATIONS:
        cams = read_calibration(Path(data_dir) / DEMO / "calibration" / name)
        fits[name] = (cams, np.linalg.norm(leave_one_out_residuals(cams, pixels, weights), axis=-1))
    rows = [_fit_row(name, cams, errors, f"{setup}; {cpu}") for name, (cams, errors) in fits.items()]
    best = min(fits, key=lambda name: np.nanmedian(fits[name][1]))
    return rows + _bone_rows(best, fits[best][0], pixels, weights, f"{setup}; {cpu}")


def _fit_row(name: str, cams, errors: np.ndarray, note: str) -> dict:
    per_camera = ", ".join(
        f"{cam.name} {np.nanmedian(e):.1f} px" for cam, e in zip(cams, errors, strict=True)
    )
    return make_row(CASE, f"reprojection error median against the other 3 views, {name}", "px",
                    float(np.nanmedian(errors)), "lower",
                    note=f"{note}; each camera's keypoints against the point the other cameras triangulate; per "
                         f"camera: {per_camera}; {np.isfinite(errors).sum()} keypoints")  # fmt: skip


def _bone_rows(name: str, cams, pixels: np.ndarray, weights: np.ndarray, note: str) -> list[dict]:
    found = triangulate_robust(cams, pixels, weights, MAX_ERROR_PX)
    variability, lengths = {}, {}
    for bone, (a, b) in BONES.items():
        length = np.linalg.norm(found.points[:, COCO.keypoints.index(a)] - found.points[:, COCO.keypoints.index(b)],
                                axis=-1)  # fmt: skip
        length = length[np.isfinite(length)]
        if len(length) >= 10:
            median = float(np.median(length))
            lengths[bone] = median
            variability[bone] = _MAD_TO_SIGMA * float(np.median(np.abs(length - median))) / median
    detail = ", ".join(
        f"{bone} {lengths[bone] * 100:.0f} cm ±{variability[bone]:.1%}" for bone in variability
    )
    return [
        make_row(CASE, f"reprojection error median, triangulated with {name}, leaving out views over 15 px",
                 "px", float(np.nanmedian(found.error_px)), "lower",
                 note=f"{note}; RMS over the views each point used"),
        make_row(CASE, f"bone length variability, median over {len(variability)} bones, {name}", "%",
                 float(np.median(list(variability.values()))) * 100.0 if variability else None, "lower",
                 note=f"{note}; per bone, the MAD of its length over frames over its median (x 1.4826); "
                      f"{detail}" if variability else f"{note}; no bone triangulated in 10 frames"),
    ]  # fmt: skip
