"""The multiview plugin's hooks: the ``calibrate`` and ``export`` commands and the ``triangulate`` bench."""

from kinefuse import hookimpl
from kinefuse_plugins.multiview import bench_triangulate, calibrate_command, export_command


@hookimpl
def register_benches():
    return [bench_triangulate.SPEC]


@hookimpl
def register_commands():
    return [calibrate_command.SPEC, export_command.SPEC]
