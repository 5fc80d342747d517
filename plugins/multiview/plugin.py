"""The multiview plugin's hooks: the ``triangulate`` bench."""

from kinefuse import hookimpl
from kinefuse_plugins.multiview import bench_triangulate


@hookimpl
def register_benches():
    return [bench_triangulate.SPEC]
