"""Asymmetric walks move their legs as walking legs move: no spike in either leg's accelerations.

The two shanks' peaks were once also held to differ no more than the swing times and steps explain (a
swing covers its step in its own swing time); once the pelvis swayed over the stance foot (docs/simulation.md,
"Lateral sway") 8 % step asymmetry alone put them 1.24 times apart, in the swing and in the loading response
alike (3.9 and 4.8 g, 4.3 and 5.4 g; before, 4.6 g both): the knee, solved from the hip-ankle distance, flexes
after contact as the hip's path lets it, and that path now moves across at contact. No model says how far
apart real shanks' peaks lie in such a walk, so only the spike bound stays."""

import numpy as np
import pytest

from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.motions import make_motion

# the packaged scenarios/walk_asymmetric.toml's athlete and walk
SHAPE = BodyShape(1.68)
WALK = {"cadence_spm": 104.0, "speed_mps": 1.1}
GRAVITY = np.array([0.0, 0.0, -9.81])
# Lafortune, "Three-dimensional acceleration of the tibia during walking and running", J Biomech 24:877
# (1991; triaxial accelerometer on a pin in the tibia): the resultant tibial acceleration peaks at 2.7-3.7 g
# after foot strike in walking, and at most 10.6 g in running. A leg point past twice the walking peak is
# not walking (the model's rigid heel strike has no impact transient, so it should stay well under it);
# the stance-asymmetric walk once put 18 g at 100 Hz (182 g sampled every millisecond) into the shank.
LIMIT_G = 8.0
# points on the thigh and shank (segment frame, m): the straps' places (the scenario's shank straps, on
# either side) and the segment's far ends (the hip; the ankle). Not the knee centre: it swings on the
# whole shank's loading-response flexion, 5.6 g in the symmetric walk (9.4 g with 8 % step asymmetry),
# with or without stance asymmetry (a matter of the normative knee curve, not of the asymmetry), and
# Lafortune's pin sat in the tibia below it. Nor the foot: its toe tip turns over at toe-off (17 g at the
# tip in the symmetric walk, by design: the foot stops turning toe-down within _TURN_OVER_S), which the
# tibial figures do not bound; test_motions.py's toe-off test bounds the foot's laces
POINTS = {
    "thigh": (np.zeros(3), np.array([0.0, 0.07, -0.2]), np.array([0.0, -0.07, -0.2])),
    "shank": (np.array([0.02, 0.05, -0.15]), np.array([0.02, -0.05, -0.15]),
              np.array([0.0, 0.0, -SHAPE.shank_length])),
}  # fmt: skip


def _specific_force_peaks(body: Body) -> dict[str, float]:
    """The largest |specific force| (m/s²) over a stride of ``POINTS`` on each thigh and shank, on a 1 ms grid
    (the motion's joint curves are splines on a 2 ms grid: a near-corner in them shows up at this spacing)."""
    t = np.arange(0.0, body.motion.period_s, 0.001)
    peaks = {}
    for side in ("left", "right"):
        for segment, points in POINTS.items():
            state = body.segment(f"{side}_{segment}", t)
            peaks[f"{side}_{segment}"] = max(
                float(np.linalg.norm(state.point(p)[2] - GRAVITY, axis=1).max()) for p in points
            )
    return peaks


@pytest.mark.parametrize("step_asymmetry", [-0.08, 0.0, 0.08])
@pytest.mark.parametrize("stance_asymmetry", [-0.1, 0.0, 0.1, 0.2])
def test_asymmetric_walks_keep_leg_accelerations_those_of_walking(stance_asymmetry, step_asymmetry):
    motion = make_motion(
        "walk", shape=SHAPE, stance_asymmetry=stance_asymmetry, step_asymmetry=step_asymmetry, **WALK
    )
    peaks = _specific_force_peaks(Body(SHAPE, motion))
    worst = max(peaks, key=peaks.get)
    assert peaks[worst] < LIMIT_G * 9.81, (worst, peaks[worst] / 9.81)


def test_the_swing_knee_joins_its_landing_smoothly():
    """The knee of the leg with the longer stance approaches its contact nearly straight; solved onto a foot
    path from the hip-ankle distance (an arccos, whose rate is unbounded at full extension) it was held
    straight and then flexed at 840 deg/s within a sample. Its angular acceleration stays that of a swing."""
    motion = make_motion("walk", shape=SHAPE, stance_asymmetry=0.1, step_asymmetry=-0.06, **WALK)
    t = np.arange(0.0, motion.period_s, 0.0005)
    for side in ("left", "right"):
        knee, _, acceleration = motion.angles(f"{side}_knee", t)
        assert knee[:, 0].min() > np.radians(0.5), side
        # the normative swing's knee reaches about 230 rad/s² (the left's, unchanged by the fix); 13600 then
        assert np.abs(acceleration[:, 0]).max() < 600.0, side
