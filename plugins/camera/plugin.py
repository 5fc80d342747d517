"""The camera plugin's hooks: the ``camera`` source, the ``models`` command, the ``pose`` bench, and the
pose estimators other plugins register for the camera to run."""

from kinefuse import hookimpl
from kinefuse_plugins.camera import bench_pose, estimators, models_command, source


@hookimpl
def register_sources():
    return [source.SPEC]


@hookimpl
def register_commands():
    return [models_command.SPEC]


@hookimpl
def register_benches():
    return [bench_pose.SPEC]


@hookimpl
def plugins_loaded(registry):
    estimators.publish(registry.pose_estimators)
