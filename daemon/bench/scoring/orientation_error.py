"""Orientation error the way BROAD scores it (Laidig, Caruso, Cereatti, Seel, "BROAD — A Benchmark for
Robust Inertial Orientation Estimation", Data 2021, 6(7):72).

Quaternions are (w, x, y, z), unit, and map frame coordinates into reference coordinates (v_ref = q v q*).
An estimate ``est`` is the IMU frame S relative to the estimator's reference E (z up); the truth is the
marker body B relative to the optical reference O. Two constant rotations tie them:

    est(t) = reference ⊗ truth(t) ⊗ sensor        reference: O -> E,  sensor: S -> B

Both are estimated from the scored samples themselves, so only the time-varying part of the difference
counts as error. The residual ``q_err = est ⊗ (reference ⊗ truth ⊗ sensor)*`` is a rotation in E; it is
split into a rotation about E's vertical axis (heading error) and one about a horizontal axis (inclination
error: the angle between the estimated and the true vertical), as in the paper.

BROAD ships its truth already as the IMU frame relative to ENU, so there ``sensor`` is near identity and
``align_sensor=False`` may fix it; the fitted reference then plays the part of the paper's removed heading
offset, and in general also absorbs an estimate's unknown initial orientation. The fit takes the
least-squares best alignment, so an error that a constant rotation can partly mimic is partly forgiven: a
heading drift during motion about a few persistent axes leaks into a fitted sensor rotation and shows as
some inclination error instead of all heading error.

9D estimates (magnetometer-aided) have a fixed heading, so the full residual is scored. 6D estimates have a
heading that drifts freely, so only inclination is scored and the reference rotation reduces to where E's
vertical points in O.

Alignment (least squares, in closed form per half-step):

* start ``sensor`` from the relative rotations, which do not depend on ``reference``: between samples i and
  j, est_i* ⊗ est_j = sensor* ⊗ (truth_i* ⊗ truth_j) ⊗ sensor, so the vector parts (rotation axes scaled
  by sin(angle/2)) satisfy b = R(sensor) a: Wahba's problem, solved by SVD (the hand-eye idea of Park &
  Martin 1994, "Robot sensor calibration: solving AX = XB on the Euclidean group");
* 9D: alternate ``reference`` = average of est ⊗ (truth ⊗ sensor)* and ``sensor`` = average of
  (reference ⊗ truth)* ⊗ est. The average is Markley, Cheng, Crassidis, Oshman 2007 ("Averaging
  quaternions"): the eigenvector of the largest eigenvalue of Σ q qᵀ, which maximises Σ (q̄·q)²; that is
  1 - ‖R(q̄) - R(q)‖²_F / 8, so each half-step is the exact minimiser of the same cost
  Σ ‖R(est) - R(reference ⊗ truth ⊗ sensor)‖²_F with the other rotation fixed and the cost never rises;
* 6D: the cost is Σ ‖up_S - R(sensor)ᵀ R(truth)ᵀ up_O‖² between the estimator's vertical seen from the
  sensor (up_S = R(est)ᵀ e_z) and the truth's; alternate up_O = normalised mean of R(truth ⊗ sensor) up_S
  and ``sensor`` = Wahba(up_S -> R(truth)ᵀ up_O), again each the exact minimiser of the same cost.

Iteration stops when the cost stops falling (relative change below 1e-12) or after 100 rounds.

**BROAD's own protocol** (:func:`score_broad_protocol`), beside the fitted frames so that figures compare
with the paper's: BROAD ships ``opt_quat`` with its alignment already applied (the IMU frame relative to
ENU), so nothing is fitted per trial. The error is q_err = est ⊗ truth*, a rotation in ENU; total error =
its angle 2·acos|w|, heading error = its rotation about the vertical 2·atan|z/w|, inclination error =
2·acos √(w² + z²), each an RMSE over the movement samples with valid truth: the paper's error metrics, as
the dataset's evaluation code computes them for its Madgwick and Mahony results (dlaidig/broad,
``example_code/broad_utils.py``, ``calculateRMSE``: the estimate compared directly with ``opt_quat``). 9D
estimates are compared directly. A 6D estimate's heading is arbitrary, so one constant heading offset is
removed first: the rotation about the vertical h maximising Σ ((h* ⊗ q_err)_w)², i.e. the least-squares
best constant offset in the same chordal sense as the 9D fit above (it minimises Σ sin²(θ/2) of the total
error θ); with h = (c, 0, 0, s), (h* ⊗ q)_w = c·w + s·z, so (c, s) is the eigenvector of the largest
eigenvalue of Σ [w z]ᵀ[w z]. Inclination is unaffected by a rotation about the vertical.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from kinefuse.fusion.strapdown import quat_multiply

MODES = ("9d", "6d")
_MAX_ROUNDS = 100
_RELATIVE_TOLERANCE = 1e-12
# pairs for the relative-rotation start: lags 1, 2, 4, … samples; pairs whose relative rotation exceeds
# 120° are dropped because near 180° the sign of the axis is ill-defined
_MIN_RELATIVE_W = 0.5
_E_Z = np.array([0.0, 0.0, 1.0])
_IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])


FITTED = "fitted frames"
BROAD_PROTOCOL = "BROAD protocol"
# what each protocol does, for the rows' notes
PROTOCOL_NOTES = {
    FITTED: "reference-frame rotation fitted per trial (least squares), sensor frame as given",
    BROAD_PROTOCOL: "BROAD protocol: est ⊗ truth* as shipped, nothing fitted; 6D: one constant heading offset "
    "removed (least-squares best over the trial)",
}
# (protocol, mode, metric name, score key) of the orientation table rows, as the accuracy harness and
# bench ahrs report them
ORIENTATION_METRICS = (
    (FITTED, "9d", "9D heading RMSE", "heading_rmse_deg"),
    (FITTED, "9d", "9D inclination RMSE", "inclination_rmse_deg"),
    (FITTED, "9d", "9D total RMSE", "total_rmse_deg"),
    (FITTED, "6d", "6D inclination RMSE", "inclination_rmse_deg"),
    (BROAD_PROTOCOL, "9d", "9D heading RMSE (BROAD protocol)", "heading_rmse_deg"),
    (BROAD_PROTOCOL, "9d", "9D inclination RMSE (BROAD protocol)", "inclination_rmse_deg"),
    (BROAD_PROTOCOL, "9d", "9D total RMSE (BROAD protocol)", "total_rmse_deg"),
    (BROAD_PROTOCOL, "6d", "6D heading RMSE (BROAD protocol)", "heading_rmse_deg"),
    (BROAD_PROTOCOL, "6d", "6D inclination RMSE (BROAD protocol)", "inclination_rmse_deg"),
    (BROAD_PROTOCOL, "6d", "6D total RMSE (BROAD protocol)", "total_rmse_deg"),
)


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    return np.asarray(q, dtype=np.float64) * np.array([1.0, -1.0, -1.0, -1.0])


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """R(q) v for (…, 4) quaternions and (…, 3) vectors."""
    qv = np.concatenate([np.zeros(np.shape(v)[:-1] + (1,)), v], axis=-1)
    return quat_multiply(quat_multiply(q, qv), quat_conjugate(q))[..., 1:]


def heading_inclination_error(q_err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split error rotations (…, 4), expressed in a z-up frame, into heading and inclination, in degrees.

    q_err = heading ⊗ inclination with heading = (w, 0, 0, z)/‖·‖ about the vertical; the remainder
    heading* ⊗ q_err has no z component, so it turns about a horizontal axis by the angle between the
    vertical and R(q_err) e_z. Heading is signed, wrapped to (-180, 180]; inclination is in [0, 180].
    """
    w, x, y, z = np.moveaxis(np.asarray(q_err, dtype=np.float64), -1, 0)
    heading = _wrap_deg(np.degrees(2.0 * np.arctan2(z, w)))
    inclination = np.degrees(2.0 * np.arctan2(np.hypot(x, y), np.hypot(w, z)))
    return heading, inclination


def score_orientation(
    est_quat: np.ndarray,
    truth_quat: np.ndarray,
    movement: np.ndarray,
    mode: str = "9d",
    *,
    align_sensor: bool = True,
) -> dict:
    """RMSE of heading, inclination and total error, in degrees, over the movement samples with valid truth.

    ``mode="6d"`` scores inclination only: ``heading_rmse_deg`` and ``total_rmse_deg`` are None, as a
    6D estimate has no defined heading. ``align_sensor=False`` fixes the sensor rotation to identity, for
    truth that is already the IMU frame's orientation (BROAD ships it so): then only the reference rotation
    is fitted and a drifting estimate cannot hide part of its drift in a fitted sensor rotation. Raises
    ValueError for mismatched shapes, an unknown mode, no scorable samples, or a non-finite estimate where
    it is scored.
    """
    est, truth = _scored_samples(est_quat, truth_quat, movement, mode)
    sensor = _relative_rotation_start(est, truth) if align_sensor else _IDENTITY
    if mode == "9d":
        reference, sensor = _align_9d(est, truth, sensor, align_sensor)
    else:
        reference, sensor = _align_6d(est, truth, sensor, align_sensor)
    q_err = quat_multiply(est, quat_conjugate(quat_multiply(reference, quat_multiply(truth, sensor))))
    scores = _error_rmse(q_err)
    if mode == "6d":  # the fitted reference leaves the heading undefined: only inclination is scored
        scores |= {"heading_rmse_deg": None, "total_rmse_deg": None}
    return scores


def score_broad_protocol(est_quat: np.ndarray, truth_quat: np.ndarray, movement: np.ndarray,
                         mode: str = "9d") -> dict:  # fmt: skip
    """RMSE of heading, inclination and total error, in degrees, as the BROAD paper scores them (see the
    module docstring): 9D compared directly, 6D after removing one constant heading offset, which is
    returned as ``heading_offset_deg`` (0 for 9D). Samples and errors as :func:`score_orientation`."""
    est, truth = _scored_samples(est_quat, truth_quat, movement, mode)
    q_err = quat_multiply(est, quat_conjugate(truth))
    offset = _best_heading_offset(q_err) if mode == "6d" else _IDENTITY
    scores = _error_rmse(quat_multiply(quat_conjugate(offset), q_err))
    return scores | {
        "heading_offset_deg": float(_wrap_deg(np.degrees(2.0 * np.arctan2(offset[3], offset[0]))))
    }


def score_metrics(estimates: dict, truth_quat: np.ndarray, movement: np.ndarray) -> dict[str, float]:
    """Every ``ORIENTATION_METRICS`` value, by metric name, for ``estimates`` {"9d": quats, "6d": quats}."""
    scorers = {
        FITTED: lambda est, mode: score_orientation(est, truth_quat, movement, mode, align_sensor=False),
        BROAD_PROTOCOL: lambda est, mode: score_broad_protocol(est, truth_quat, movement, mode),
    }
    scores = {
        (protocol, mode): scorers[protocol](estimates[mode], mode)
        for protocol, mode in dict.fromkeys((p, m) for p, m, _, _ in ORIENTATION_METRICS)
    }
    return {metric: scores[(protocol, mode)][key] for protocol, mode, metric, key in ORIENTATION_METRICS}


def _error_rmse(q_err: np.ndarray) -> dict:
    heading, inclination = heading_inclination_error(q_err)
    total = np.degrees(2.0 * np.arctan2(np.linalg.norm(q_err[:, 1:], axis=1), np.abs(q_err[:, 0])))
    return {
        "heading_rmse_deg": _rms(heading),
        "inclination_rmse_deg": _rms(inclination),
        "total_rmse_deg": _rms(total),
        "samples": len(q_err),
    }


def _best_heading_offset(q_err: np.ndarray) -> np.ndarray:
    """The rotation about the vertical h maximising Σ ((h* ⊗ q_err)_w)² (see the module docstring)."""
    wz = q_err[:, [0, 3]]
    _, vectors = np.linalg.eigh(wz.T @ wz)
    c, s = vectors[:, -1]
    return np.array([c, 0.0, 0.0, s])


def _scored_samples(est_quat, truth_quat, movement, mode: str) -> tuple[np.ndarray, np.ndarray]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    est, truth = np.asarray(est_quat, dtype=np.float64), np.asarray(truth_quat, dtype=np.float64)
    movement = np.asarray(movement, dtype=bool)
    n = len(truth)
    if est.shape != (n, 4) or truth.shape != (n, 4) or movement.shape != (n,):
        raise ValueError(
            f"expected est_quat (n, 4), truth_quat (n, 4), movement (n,); got {est.shape}, {truth.shape}, "
            f"{movement.shape}"
        )
    scored = movement & np.all(np.isfinite(truth), axis=1)
    if not scored.any():
        raise ValueError("no sample to score: movement is never set where the truth is valid")
    bad = scored & ~np.all(np.isfinite(est), axis=1)
    if bad.any():
        raise ValueError(
            f"the estimate is not finite at {bad.sum()} scored samples (first: {np.argmax(bad)})"
        )
    return _normalised(est[scored]), _normalised(truth[scored])


def _align_9d(
    est: np.ndarray, truth: np.ndarray, sensor: np.ndarray, align_sensor: bool
) -> tuple[np.ndarray, np.ndarray]:
    previous = np.inf
    for _ in range(_MAX_ROUNDS):
        reference = _average(quat_multiply(est, quat_conjugate(quat_multiply(truth, sensor))))
        if not align_sensor:
            break
        sensor = _average(quat_multiply(quat_conjugate(quat_multiply(reference, truth)), est))
        model = quat_multiply(reference, quat_multiply(truth, sensor))
        cost = np.sum(1.0 - np.sum(est * model, axis=1) ** 2)
        if cost >= previous * (1.0 - _RELATIVE_TOLERANCE):
            break
        previous = cost
    return reference, sensor


def _align_6d(
    est: np.ndarray, truth: np.ndarray, sensor: np.ndarray, align_sensor: bool
) -> tuple[np.ndarray, np.ndarray]:
    up_sensor = rotate(quat_conjugate(est), _E_Z)
    previous = np.inf
    for _ in range(_MAX_ROUNDS):
        up_optical = _unit(np.mean(rotate(quat_multiply(truth, sensor), up_sensor), axis=0))
        if not align_sensor:
            break
        sensor = _wahba(up_sensor, rotate(quat_conjugate(truth), up_optical))
        model = rotate(quat_conjugate(quat_multiply(truth, sensor)), up_optical)
        cost = np.sum((up_sensor - model) ** 2)
        if cost >= previous * (1.0 - _RELATIVE_TOLERANCE):
            break
        previous = cost
    # any rotation taking up_optical to E's vertical will do: the heading it leaves is not scored
    reference = Rotation.align_vectors(_E_Z[None], up_optical[None])[0].as_quat(scalar_first=True)
    return reference, sensor


def _relative_rotation_start(est: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``sensor`` from relative rotations over several lags (see the module docstring)."""
    axes_sensor, axes_body = [], []
    lag = 1
    while lag < len(est):
        rel_est = quat_multiply(quat_conjugate(est[:-lag]), est[lag:])
        rel_truth = quat_multiply(quat_conjugate(truth[:-lag]), truth[lag:])
        # q and -q are the same rotation: make w >= 0 so the vector parts of a pair agree in sign
        rel_est *= np.sign(rel_est[:, :1]) + (rel_est[:, :1] == 0)
        rel_truth *= np.sign(rel_truth[:, :1]) + (rel_truth[:, :1] == 0)
        keep = (rel_est[:, 0] > _MIN_RELATIVE_W) & (rel_truth[:, 0] > _MIN_RELATIVE_W)
        axes_sensor.append(rel_est[keep, 1:])
        axes_body.append(rel_truth[keep, 1:])
        lag *= 2
    if not axes_sensor:
        return _IDENTITY
    return _wahba(np.concatenate(axes_sensor), np.concatenate(axes_body))


def _wahba(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The rotation q minimising Σ ‖b - R(q) a‖² (SVD solution of Wahba's problem, Markley 1988)."""
    u, _, vt = np.linalg.svd(b.T @ a)
    # the middle factor keeps a proper rotation (det +1) when the best orthogonal fit is a reflection
    fix = np.diag([1.0, 1.0, np.linalg.det(u) * np.linalg.det(vt)])
    return Rotation.from_matrix(u @ fix @ vt).as_quat(scalar_first=True)


def _average(q: np.ndarray) -> np.ndarray:
    """Markley et al. 2007: the unit q̄ maximising Σ (q̄·q_i)², blind to each q_i's sign."""
    _, vectors = np.linalg.eigh(q.T @ q)
    return vectors[:, -1]


def _normalised(q: np.ndarray) -> np.ndarray:
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _wrap_deg(angle: np.ndarray) -> np.ndarray:
    return 180.0 - np.mod(180.0 - angle, 360.0)


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))
