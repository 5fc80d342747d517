"""The metrics plugin's hooks: the ``joint_angles`` processor."""

from kinefuse import hookimpl
from kinefuse_plugins.metrics import joint_angles


@hookimpl
def register_processors():
    return [joint_angles.SPEC]
