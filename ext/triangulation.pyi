"""Weighted linear triangulation and the points' standard deviations; see the .pyx docstring."""

import numpy as np
import numpy.typing as npt

def triangulate(
    projections: npt.NDArray[np.float64], xy: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]: ...
def triangulate_rejecting(
    projections: npt.NDArray[np.float64],
    xy: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    scale: npt.NDArray[np.float64],
    max_error: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.uint8], npt.NDArray[np.float64]]: ...
def point_sigma(
    projections: npt.NDArray[np.float64],
    centres: npt.NDArray[np.float64],
    points: npt.NDArray[np.float64],
    angular: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]: ...
