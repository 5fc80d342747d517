"""kinefuse: IMU straps and cameras fused into one time-aligned motion stream whose every value carries
its provenance and quality.

Importing kinefuse loads the compiled kernels and fails loudly when they are missing
(KINEFUSE_PUREPYTHON=1 selects the slow pure-Python twins, for debugging only).
"""

import importlib.metadata

import pluggy

try:
    __version__ = importlib.metadata.version("kinefuse")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

hookimpl = pluggy.HookimplMarker("kinefuse")

from kinefuse import _native  # noqa: E402,F401  (import for its check: the extension must be there)

__all__ = ["__version__", "hookimpl"]
