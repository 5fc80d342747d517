"""Per-keypoint Kalman filtering and smoothing of 2D keypoints (see the .pyx docstring)."""

import numpy as np
import numpy.typing as npt

MEASURED: int
FILLED: int
REJECTED: int
MISSING: int
STATE_VERSION: int
ROBUST_ITERATIONS: int

def filter_track(
    times: npt.NDArray[np.float64],
    keypoints: npt.NDArray[np.float64],
    dim: int = ...,
    q: float = ...,
    r0: float = ...,
    min_confidence: float = ...,
    gate: float = ...,
    max_gap_s: float = ...,
    init_velocity_sigma: float = ...,
    init_acceleration_sigma: float = ...,
    confidence_power: float = ...,
    measurement_dof: float = ...,
    robust_after: int = ...,
) -> dict[str, np.ndarray]: ...
def rts_smooth(
    times: npt.NDArray[np.float64], filtered: dict[str, np.ndarray], dim: int = ..., q: float = ...
) -> tuple[np.ndarray, np.ndarray]: ...
def smooth_track(
    times: npt.NDArray[np.float64],
    keypoints: npt.NDArray[np.float64],
    dim: int = ...,
    q: float = ...,
    r0: float = ...,
    min_confidence: float = ...,
    gate: float = ...,
    max_gap_s: float = ...,
    init_velocity_sigma: float = ...,
    init_acceleration_sigma: float = ...,
    confidence_power: float = ...,
    measurement_dof: float = ...,
    robust_after: int = ...,
) -> dict[str, np.ndarray]: ...

Emitted = tuple[float, np.ndarray, np.ndarray, np.ndarray]

class LiveKeypointFilter:
    n_keypoints: int
    capacity: int
    lag_s: float
    dim: int
    def __init__(
        self,
        n_keypoints: int,
        dim: int = ...,
        q: float = ...,
        r0: float = ...,
        min_confidence: float = ...,
        gate: float = ...,
        max_gap_s: float = ...,
        init_velocity_sigma: float = ...,
        init_acceleration_sigma: float = ...,
        lag_s: float = ...,
        capacity: int = ...,
        confidence_power: float = ...,
        measurement_dof: float = ...,
        robust_after: int = ...,
    ) -> None: ...
    def begin_frame(self, t: float) -> list[Emitted]: ...
    def step(self, k: int, x: float, y: float, confidence: float) -> int: ...
    def end_frame(self) -> list[Emitted]: ...
    def estimate(self, k: int) -> tuple[float, float, float, float, float]: ...
    def push(self, t: float, keypoints: npt.NDArray[np.float64]) -> list[Emitted]: ...
    def flush(self) -> list[Emitted]: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...
