"""The whole kinefuse plugin contract.

Every hook is called once, at start-up; none is called per sample. The ``register_*`` hooks register
things; ``plugins_loaded`` tells a plugin what all of them registered.  A plugin module
implements any subset with ``@kinefuse.hookimpl``.  Each hook is documented in docs/plugins.md
(tests/unit/test_hookspecs_documented.py fails when one is not).
"""

import pluggy

hookspec = pluggy.HookspecMarker("kinefuse")


@hookspec
def register_sources():
    """Return a list of kinefuse.interfaces.SourceSpec: source types usable as ``[[sources]] type = ...``."""


@hookspec
def register_processors():
    """Return a list of kinefuse.interfaces.ProcessorSpec: processor and metric types usable as
    ``[[processors]] type = ...``; each receives clock-aligned batches and returns derived values or events."""


@hookspec
def register_pose_estimators():
    """Return a list of kinefuse.interfaces.PoseEstimatorSpec: pose estimators the ``camera`` source can use
    by name (``model = ...``) beside its own ONNX models."""


@hookspec
def register_sinks():
    """Return a list of kinefuse.interfaces.SinkSpec: destinations for the stream, enabled by ``[daemon] sinks``."""


@hookspec
def register_services():
    """Return a list of kinefuse.interfaces.ServiceSpec: tasks run beside the pipeline, such as the status
    socket and the systemd watchdog."""


@hookspec
def register_config_sections():
    """Return a list of kinefuse.interfaces.ConfigSection: top-level config tables the plugin owns."""


@hookspec
def register_commands():
    """Return a list of kinefuse.interfaces.CommandSpec: subcommands added to the ``kinefuse`` CLI."""


@hookspec
def register_benches():
    """Return a list of kinefuse.interfaces.BenchSpec: benchmarks run by ``kinefuse bench NAME``."""


@hookspec
def plugins_loaded(registry):
    """Called once after every plugin has registered, with the kinefuse.interfaces.Registry of everything
    registered: for a plugin that uses what others register (the camera runs the pose estimators other
    plugins register). Read it; do not change it."""
