"""The metrics plugin's hooks: the ``joint_angles`` and ``gait`` processors."""

from kinefuse import hookimpl
from kinefuse_plugins.metrics import gait, joint_angles


@hookimpl
def register_processors():
    return [joint_angles.SPEC, gait.SPEC]
