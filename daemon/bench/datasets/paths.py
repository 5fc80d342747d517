"""Where the shared public data lives: ``$KINEFUSE_SHARED``, else ``../shared`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_ENV = "KINEFUSE_SHARED"


def shared_dir() -> Path:
    """The shared data folder; it may not exist (tests then skip), so callers check ``.is_dir()``."""
    override = os.environ.get(SHARED_ENV)
    if override:
        return Path(override)
    # daemon/bench/datasets/paths.py -> parents[3] is the repository root, whether installed editable or run in place
    return Path(__file__).resolve().parents[3].parent / "shared"
