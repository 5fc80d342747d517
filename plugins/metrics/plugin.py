"""The metrics plugin's hooks: the ``joint_angles``, ``gait``, ``reps`` and ``landing`` processors."""

from kinefuse import hookimpl
from kinefuse_plugins.metrics import gait, joint_angles, landing, reps


@hookimpl
def register_processors():
    return [joint_angles.SPEC, gait.SPEC, reps.SPEC, landing.SPEC]
