"""The metrics plugin's hooks: the ``joint_angles``, ``gait`` and ``reps`` processors."""

from kinefuse import hookimpl
from kinefuse_plugins.metrics import gait, joint_angles, reps


@hookimpl
def register_processors():
    return [joint_angles.SPEC, gait.SPEC, reps.SPEC]
