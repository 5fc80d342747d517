"""Motions of the synthetic athlete, the entry point: ``make_motion(kind, shape, **controls)`` for each of
``KINDS``, the controls each kind takes (``controls_for``). A motion is built once per (kind, shape,
controls) and reused.

Where motions are made:

- ``kinefuse.sim.motion``: the ``Motion`` type, joint-angle and pelvis trajectories stored as periodic
  cubic splines (exact first and second derivatives), and the curve and joint-rotation helpers every
  builder uses.
- ``kinefuse.sim.gait``: what walking and running share: landmark tables of joint curves, the joint
  angles of a stride from them, and the timing the controls fix.
- ``kinefuse.sim.walking``: walking: Perry & Burnfield's normative walk sets the contact times, step lengths
  and foot pitch; the pelvis follows a designed inverted-pendulum path and the legs are solved onto planted
  feet.
- ``kinefuse.sim.running``: running, a designed spring-mass pelvis with the legs by inverse kinematics.
- ``kinefuse.sim.tasks``: the closed-chain tasks (squat, sit-to-stand, lunge, single-leg balance, drop
  landing), feet planted exactly, legs by inverse kinematics.

Controls (all optional): ``cadence_spm``, ``speed_mps``, ``step_length_m`` (walk; speed = cadence ·
step length / 60, steps per minute times metres per step; give any two, or all three consistently),
``stance_asymmetry`` (0.10: right stance time 10 % longer than left), ``step_asymmetry`` (0.10: right
step 10 % longer than left, -0.10: left 10 % longer than right, by scaling each hip's flexion range; up to
about 0.1 either way), ``knee_valgus_deg``,
``trunk_lean_deg`` (forward) and ``trunk_lateral_lean_deg`` (to the left), ``rep_period_s`` (non-cyclic
tasks), ``knee_rom_scale``, ``knee_flexion_change_deg_per_week`` with ``session_week``, ``sway_deg``
(single-leg balance), ``drop_height_m`` (drop landing), ``stance_leg`` (single-leg balance: "left"/"right"),
``lead_leg`` (lunge). ``shape`` (a BodyShape) sizes the motion.
"""

from __future__ import annotations

import functools
import threading

from kinefuse.sim.body import BodyShape
from kinefuse.sim.motion import Motion
from kinefuse.sim.running import run_motion
from kinefuse.sim.tasks import COMMON_CONTROLS, TASK_CONTROLS, task_motion
from kinefuse.sim.walking import walk_motion

KINDS = ("walk", "run", "squat", "sit_to_stand", "lunge", "single_leg_balance", "drop_landing")
GAIT_KINDS = ("walk", "run")
_KNEE_RANGE_CONTROLS = ("knee_rom_scale", "knee_flexion_change_deg_per_week", "session_week")
_WALK_ONLY_CONTROLS = (*_KNEE_RANGE_CONTROLS, "step_asymmetry")
GAIT_CONTROLS = (
    "cadence_spm",
    "speed_mps",
    "step_length_m",
    "stance_asymmetry",
    "step_asymmetry",
    "knee_valgus_deg",
    "trunk_lean_deg",
    "trunk_lateral_lean_deg",
    "knee_rom_scale",
    "knee_flexion_change_deg_per_week",
    "session_week",
)
_BUILD_LOCK = threading.Lock()


def controls_for(kind: str) -> tuple[str, ...]:
    """The controls ``make_motion`` accepts for ``kind``."""
    if kind == "run":  # the designed swing sets the knee's range and the steps (kinefuse.sim.running)
        return tuple(c for c in GAIT_CONTROLS if c not in _WALK_ONLY_CONTROLS)
    if kind in GAIT_KINDS:
        return GAIT_CONTROLS
    return COMMON_CONTROLS + TASK_CONTROLS[kind]


def make_motion(kind: str, shape: BodyShape | None = None, **controls: object) -> Motion:
    """A motion of ``kind`` (one of ``KINDS``) for ``shape`` (default ``BodyShape()``); see the module
    docstring for the controls. Unknown controls, and controls that do not apply to ``kind``, are errors."""
    if kind not in KINDS:
        raise ValueError(f"unknown motion kind {kind!r}; expected one of {', '.join(KINDS)}")
    shape = shape or BodyShape()
    controls = {k: v for k, v in controls.items() if v is not None}
    unknown = sorted(set(controls) - set(controls_for(kind)))
    if unknown:
        raise ValueError(f"{kind}: controls {unknown} do not apply; it takes {', '.join(controls_for(kind))}")
    with (
        _BUILD_LOCK
    ):  # sources are built in worker threads: the second asking for a motion reuses the first's
        return _build_motion(kind, shape, tuple(sorted(controls.items())))


@functools.lru_cache(maxsize=32)
def _build_motion(kind: str, shape: BodyShape, controls: tuple[tuple[str, object], ...]) -> Motion:
    """Motions are immutable and take a fraction of a second to build: a restarted source reuses them."""
    if kind == "run":
        motion = run_motion(shape, dict(controls))
    elif kind in GAIT_KINDS:
        motion = walk_motion(kind, shape, dict(controls))
    else:
        motion = task_motion(kind, shape, dict(controls))
    motion.remake = make_motion  # Motion.for_shape builds it again through here
    return motion
