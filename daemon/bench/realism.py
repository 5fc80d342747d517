"""The realism rows of ``kinefuse bench accuracy``: how much the synthetic athlete's signals look like real
people's and real detectors', each statistic of a simulated scenario beside the same statistic measured on
the public data in the shared folder (or, where that has no recording, beside published figures quoted in
the row's note): the IMU straps (``kinefuse.bench.scoring.imu_realism``) and the keypoint detector
(``kinefuse.bench.scoring.detector_realism``)."""

from __future__ import annotations

from pathlib import Path

from kinefuse.bench.scoring import detector_realism, imu_realism


def realism_rows(data_dir: Path, demo_run: tuple | None) -> list[dict]:
    """Every realism row, the real side measured from ``data_dir`` (the shared folder's ``data``) and
    ``demo_run`` (``detector_realism.real_tracks(data_dir)``, measured in this run)."""
    return imu_realism.rows(Path(data_dir)) + detector_realism.rows(Path(data_dir), demo_run)
