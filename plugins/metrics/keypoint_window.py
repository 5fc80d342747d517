"""The latest keypoints of a triangulated view (or one camera's) that the ``gait`` processor keeps, with
their status, triangulation checks and stated tolerances, for its contacts from keypoints."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class KeypointWindow:
    """A triangulated view's (or, ``camera`` named, one camera's) latest items: the keypoints ``names`` (at
    ``indices`` of its keypoint set)."""

    names: tuple[str, ...]
    indices: list[int]
    camera: str | None = None
    time_ns: list = dataclasses.field(default_factory=list)
    position: list = dataclasses.field(default_factory=list)  # (K, 3) each; a camera's (K, 2) px
    status: list = dataclasses.field(default_factory=list)  # (K,) each
    checks: list = dataclasses.field(default_factory=list)  # (K,) each
    tolerance: list = dataclasses.field(default_factory=list)  # (K,) each, m (NaN: none stated)
    reported_ns: int = -1
    next_ns: int | None = None

    def add(self, time_ns: int, view) -> None:
        self.time_ns.append(time_ns)
        self.position.append(view.position[self.indices])
        self.status.append(view.status[self.indices])
        flags = view.triangulation.checks[self.indices] if view.triangulation is not None else 0
        self.checks.append(np.zeros(len(self.indices), dtype=np.uint8) | flags)
        stated = (
            view.tolerance[self.indices] if view.tolerance is not None else np.full(len(self.indices), np.nan)
        )
        self.tolerance.append(stated)

    def window(self, keep_ns: int) -> tuple[np.ndarray, ...]:
        first = int(np.searchsorted(np.array(self.time_ns), self.time_ns[-1] - keep_ns))
        for name in ("time_ns", "position", "status", "checks", "tolerance"):
            del getattr(self, name)[:first]
        return np.array(self.time_ns, dtype=np.int64), *(np.array(getattr(self, n)) for n in
                                                         ("position", "status", "checks", "tolerance"))  # fmt: skip
