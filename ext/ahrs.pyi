"""Orientation filters: VQF (Laidig & Seel 2023), Madgwick (2011), Mahony (2008); see the .pyx docstring."""

import numpy as np
import numpy.typing as npt

STATE_VERSION: int
PARAMETERS: tuple[str, ...]
DEFAULTS: dict[str, float | bool]
Quaternion = tuple[float, float, float, float]

class OrientationFilter:
    rate_hz: float
    options: dict
    def __init__(self, rate_hz: float, **options: float | bool) -> None: ...
    def update(
        self,
        gx: float,
        gy: float,
        gz: float,
        ax: float,
        ay: float,
        az: float,
        mx: float = ...,
        my: float = ...,
        mz: float = ...,
    ) -> None: ...
    def update_batch(
        self,
        gyr: npt.NDArray[np.float64],
        acc: npt.NDArray[np.float64],
        mag: npt.NDArray[np.float64] | None = ...,
    ) -> dict[str, np.ndarray]: ...
    def quaternion_6d(self) -> Quaternion: ...
    def quaternion_9d(self) -> Quaternion: ...
    @property
    def bias(self) -> tuple[float, float, float]: ...
    @property
    def rest_detected(self) -> bool: ...
    @property
    def mag_disturbed(self) -> bool: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...

class _Baseline:
    rate_hz: float
    def __init__(self, rate_hz: float) -> None: ...
    def update(
        self,
        gx: float,
        gy: float,
        gz: float,
        ax: float,
        ay: float,
        az: float,
        mx: float = ...,
        my: float = ...,
        mz: float = ...,
    ) -> None: ...
    def update_batch(
        self,
        gyr: npt.NDArray[np.float64],
        acc: npt.NDArray[np.float64],
        mag: npt.NDArray[np.float64] | None = ...,
    ) -> npt.NDArray[np.float64]: ...
    def quaternion(self) -> Quaternion: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...

class Madgwick(_Baseline):
    beta: float
    def __init__(self, rate_hz: float, beta: float = ...) -> None: ...

class Mahony(_Baseline):
    kp: float
    ki: float
    def __init__(self, rate_hz: float, kp: float = ..., ki: float = ...) -> None: ...
