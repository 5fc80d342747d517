"""The walker's pelvis sways over the stance foot (docs/simulation.md, "Lateral sway"): in mid single support
it is on the stance foot's side, at each contact it has not yet crossed to the landing foot's side by more
than a third of its excursion, and the heels land the step width apart."""

import numpy as np
import pytest

from kinefuse.sim.body import Body, BodyShape
from kinefuse.sim.motions import make_motion
from kinefuse.sim.walking import _STEP_WIDTH_M


@pytest.mark.parametrize("walk", [
    {"cadence_spm": 110.0, "speed_mps": 1.3},
    {"cadence_spm": 104.0, "speed_mps": 1.1, "stance_asymmetry": 0.1, "step_asymmetry": -0.06},
])  # fmt: skip
def test_the_pelvis_is_over_the_stance_foot_in_single_support(walk):
    shape = BodyShape(1.75)
    body = Body(shape, make_motion("walk", shape=shape, **walk))
    period = body.motion.period_s
    t = np.arange(5 * period, 9 * period, 0.002)
    across = body.segment("pelvis", t).position[:, 1]  # y: the athlete's left
    excursion = np.ptp(across)
    events = body.gait_events(5 * period, 9 * period)
    contacts = {s: [e.time_s for e in events if e.side == s and e.kind == "ic"] for s in ("left", "right")}
    toe_offs = {s: [e.time_s for e in events if e.side == s and e.kind == "tc"] for s in ("left", "right")}
    heels = body.landmarks(np.concatenate([contacts["left"], contacts["right"]]))
    for side, sign, other in (("left", 1.0, "right"), ("right", -1.0, "left")):
        # single support on this foot: from the other foot's toe-off to its next contact
        for off in toe_offs[other]:
            following = [c for c in contacts[other] if c > off]
            if following:
                middle = 0.5 * (off + following[0])
                assert sign * np.interp(middle, t, across) > 0.25 * excursion, (side, middle)
        for contact in contacts[side]:
            assert sign * np.interp(contact, t, across) < excursion / 3, (side, contact)
    n = len(contacts["left"])
    width = heels["left_heel"][:n, 1] - heels["right_heel"][n:, 1]
    assert np.allclose(width, _STEP_WIDTH_M, atol=0.005)
