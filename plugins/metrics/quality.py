"""The order of quality levels the metrics share: a value is as good as the worst of what it rests on."""

from __future__ import annotations

from kinefuse.types import Quality, QualityLevel

SEVERITY = {QualityLevel.GOOD: 0, QualityLevel.DEGRADED: 1, QualityLevel.INSUFFICIENT: 2}


def worst(*qualities: Quality) -> Quality:
    """The worst of ``qualities`` (the first of them where several are as bad)."""
    return max(qualities, key=lambda q: SEVERITY[q.level])
