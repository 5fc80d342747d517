"""The mediapipe_pose plugin's hook: the ``mediapipe_pose_full`` pose estimator."""

from kinefuse import hookimpl
from kinefuse_plugins.mediapipe_pose import estimator


@hookimpl
def register_pose_estimators():
    return [estimator.SPEC]
