"""The metrics plugin's hooks: the ``joint_angles``, ``gait``, ``reps``, ``landing`` and ``sway`` processors."""

from kinefuse import hookimpl
from kinefuse_plugins.metrics import gait, joint_angles, landing, reps, sway


@hookimpl
def register_processors():
    return [joint_angles.SPEC, gait.SPEC, reps.SPEC, landing.SPEC, sway.SPEC]
