"""The ``sqlite`` sink and the ``[storage]`` table that configures it."""

from kinefuse import hookimpl
from kinefuse.configschema import Field
from kinefuse.interfaces import ConfigSection, SinkSpec
from kinefuse.storage.writer import SqliteSink

STORAGE_SCHEMA = {
    "path": Field(
        str, "kinefuse.db", "SQLite file the sessions are written to", env="KINEFUSE_DB", is_path=True
    ),
    "flush_interval_s": Field(
        float, 0.25, "longest a row waits before it is committed: what a crash can lose", min=0.01, max=1.0
    ),
    "batch_max_rows": Field(int, 5000, "commit sooner once this many rows are waiting", min=1),
}


def _sink(config) -> SqliteSink:
    storage = config["storage"]
    return SqliteSink(storage["path"], storage["flush_interval_s"], storage["batch_max_rows"])


@hookimpl
def register_sinks():
    return [SinkSpec("sqlite", _sink, "writes every sample, frame, value and event to the [storage] file")]


@hookimpl
def register_config_sections():
    return [ConfigSection("storage", STORAGE_SCHEMA, "where and how often the sqlite sink commits")]
