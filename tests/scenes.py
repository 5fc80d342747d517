"""Camera set-ups the multi-camera tests share (``kinefuse.testing.walking_scenario`` takes them)."""

import numpy as np

# the detector model with the figures fitted to MoveNet (kinefuse.bench.scoring.detector_realism.FITTED), and
# occlusion on (a walker's far limbs are hidden from some cameras)
MOVENET_LIKE = {"confidence_mean": 0.693, "confidence_spread": 0.198, "jitter_scale": 0.0186, "jitter_dof": 4.31,
                "jitter_confidence_power": 0.64, "jitter_tail_power": 0.81, "drift_scale": 0.0553,
                "drift_time_s": 0.45, "occlusion": True}  # fmt: skip


def half_ring(angles_deg=(-90.0, -30.0, 30.0, 90.0), radius_m: float = 4.0, **keys) -> list[dict]:
    """Cameras ``cam0``, ``cam1``, ... at those angles round the walker, ``radius_m`` out and 1.2 m up, looking
    at its hips; ``keys`` go into every camera's table."""
    return [{"name": f"cam{i}", "position": [radius_m * np.cos(a), radius_m * np.sin(a), 1.2],
             "target": [0.0, 0.0, 0.9], **keys}
            for i, a in enumerate(np.radians(angles_deg))]  # fmt: skip
