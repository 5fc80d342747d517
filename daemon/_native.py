"""Selects the compiled kernels (kinefuse._ext) or, with KINEFUSE_PUREPYTHON=1, their pure-Python twins.

Every other module imports kernels from here, never from kinefuse._ext directly.
"""

import os

PURE_PYTHON_ENV = "KINEFUSE_PUREPYTHON"

if os.environ.get(PURE_PYTHON_ENV) == "1":
    from kinefuse._pure import ahrs, clock_map, keypoint_kalman, one_euro, triangulation

    IMPLEMENTATION = "pure-python"
else:
    try:
        from kinefuse._ext import ahrs, clock_map, keypoint_kalman, one_euro, triangulation
    except ImportError as exc:
        raise ImportError(
            "kinefuse's compiled extension (kinefuse._ext) is missing or broken: "
            f"{exc}. Build it with `make build` (or `pip install -e .`). "
            f"To debug without it, set {PURE_PYTHON_ENV}=1 to use the slow pure-Python twins."
        ) from exc
    IMPLEMENTATION = "compiled"

__all__ = ["IMPLEMENTATION", "ahrs", "clock_map", "keypoint_kalman", "one_euro", "triangulation"]
