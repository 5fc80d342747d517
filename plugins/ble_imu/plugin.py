"""The ble_imu plugin's hooks: the ``ble_imu`` source, the ``devices`` command and the ``ble`` bench."""

from kinefuse import hookimpl
from kinefuse_plugins.ble_imu import bench_ble, devices_command, source


@hookimpl
def register_sources():
    return [source.SPEC]


@hookimpl
def register_commands():
    return [devices_command.SPEC]


@hookimpl
def register_benches():
    return [bench_ble.SPEC]
