"""The pose estimators plugins registered (``register_pose_estimators``), by name, for the camera source.

Sources are built from their options alone (``SourceSpec.factory(options, source_id)``), so this plugin's
``plugins_loaded`` hook keeps what was registered here once every plugin has loaded; the last load wins,
as the daemon loads once.
"""

from __future__ import annotations

from kinefuse.interfaces import PoseEstimatorSpec

_REGISTERED: dict[str, PoseEstimatorSpec] = {}


def publish(specs: dict[str, PoseEstimatorSpec]) -> None:
    _REGISTERED.clear()
    _REGISTERED.update(specs)


def lookup(name: str) -> PoseEstimatorSpec | None:
    return _REGISTERED.get(name)


def registered() -> dict[str, PoseEstimatorSpec]:
    return dict(_REGISTERED)
