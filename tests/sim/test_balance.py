"""The single-leg stance sways as one inverted pendulum about the stance ankle (docs/simulation.md, "Single-leg
balance"): the pelvis tilts as far as the line from the ankle to it leans, and the trunk stands upright over
the hitched pelvis."""

import numpy as np
import pytest

from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.motions import make_motion


@pytest.mark.parametrize("stance_leg", ["left", "right"])
def test_the_pelvis_tilts_with_the_sway_and_the_trunk_stands_upright(stance_leg):
    shape = BodyShape(1.70)
    body = Body(shape, make_motion("single_leg_balance", shape=shape, stance_leg=stance_leg, sway_deg=2.0))
    t = np.arange(0.0, body.motion.period_s, 0.01)
    pelvis, trunk = body.segment("pelvis", t), body.segment("trunk", t)
    line = pelvis.position - body.landmarks(t)[f"{stance_leg}_ankle"]
    lean = np.degrees(np.arctan2(line[:, :2], line[:, 2:]))  # forward and leftward, about the ankle
    axis = pelvis.R[:, :, 2]
    tilt = np.degrees(np.arctan2(axis[:, :2], axis[:, 2:]))
    # the same sway (the pelvis's hitch and the ankle's offset from under the hip are constant)
    assert np.allclose(tilt - tilt.mean(axis=0), lean - lean.mean(axis=0), atol=0.05)
    assert np.ptp(lean, axis=0).min() > 1.0  # it does sway
    upright = trunk.R[:, :, 2]
    assert np.degrees(np.abs(np.arctan2(upright[:, :2], upright[:, 2:]).mean(axis=0))).max() < 0.5
