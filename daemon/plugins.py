"""Plugin loading: built-ins first, then the ``kinefuse.plugins`` entry points one at a time.

A plugin that fails to import, misnames a hook, or raises or returns nonsense from a registration
hook is quarantined with the reason; the rest load and the daemon runs on.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import logging
from types import ModuleType

import pluggy

from kinefuse import hookspecs
from kinefuse.interfaces import (
    BenchSpec,
    CommandSpec,
    ConfigSection,
    PoseEstimatorSpec,
    ProcessorSpec,
    ServiceSpec,
    SinkSpec,
    SourceSpec,
)
from kinefuse.pose import estimators

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "kinefuse.plugins"
BUILTIN_MODULES = (
    "kinefuse.builtin.synthetic",
    "kinefuse.builtin.sequence_gaps",
    "kinefuse_plugins.camera",
    "kinefuse_plugins.mediapipe_pose",
    "kinefuse_plugins.ble_imu",
    "kinefuse.builtin.orientation",
    "kinefuse.builtin.sqlite_sink",
    "kinefuse.builtin.status",
    "kinefuse.builtin.bench_pipeline",
    "kinefuse.builtin.bench_accuracy",
    "kinefuse.builtin.bench_kalman",
    "kinefuse.builtin.bench_ahrs",
    "kinefuse.builtin.bench_pose",
    "kinefuse.builtin.bench_ble",
    "kinefuse.builtin.simulate_command",
    "kinefuse.builtin.models_command",
    "kinefuse.builtin.devices_command",
)
# hook name -> (registry attribute, the spec type each returned item must be)
_REGISTRATIONS = {
    "register_sources": ("sources", SourceSpec),
    "register_processors": ("processors", ProcessorSpec),
    "register_pose_estimators": ("pose_estimators", PoseEstimatorSpec),
    "register_sinks": ("sinks", SinkSpec),
    "register_services": ("services", ServiceSpec),
    "register_config_sections": ("config_sections", ConfigSection),
    "register_commands": ("commands", CommandSpec),
    "register_benches": ("benches", BenchSpec),
}


@dataclasses.dataclass
class PluginRecord:
    name: str
    version: str
    origin: str  # "built-in", "entry point" or "registered"
    hooks: list[str]
    status: str = "loaded"  # or "quarantined"
    reason: str = ""


@dataclasses.dataclass
class Registry:
    """Everything the loaded plugins registered, by name, and a record of every plugin."""

    sources: dict[str, SourceSpec] = dataclasses.field(default_factory=dict)
    processors: dict[str, ProcessorSpec] = dataclasses.field(default_factory=dict)
    pose_estimators: dict[str, PoseEstimatorSpec] = dataclasses.field(default_factory=dict)
    sinks: dict[str, SinkSpec] = dataclasses.field(default_factory=dict)
    services: dict[str, ServiceSpec] = dataclasses.field(default_factory=dict)
    config_sections: dict[str, ConfigSection] = dataclasses.field(default_factory=dict)
    commands: dict[str, CommandSpec] = dataclasses.field(default_factory=dict)
    benches: dict[str, BenchSpec] = dataclasses.field(default_factory=dict)
    plugins: list[PluginRecord] = dataclasses.field(default_factory=list)

    def quarantine_hint(self) -> str:
        bad = [p for p in self.plugins if p.status == "quarantined"]
        if not bad:
            return ""
        return "; quarantined plugins: " + "; ".join(f"{p.name} ({p.reason})" for p in bad)


class PluginLoader:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("kinefuse")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()

    def load_builtins(self) -> None:
        for module_name in BUILTIN_MODULES:
            self.add(importlib.import_module(module_name), module_name, "built-in", _own_version())

    def load_entry_points(self) -> None:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            version = ep.dist.version if ep.dist else "?"
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not stop the daemon
                self._quarantine(PluginRecord(ep.name, version, "entry point", []), exc)
                continue
            self.add(plugin, ep.name, "entry point", version)

    def add(self, plugin: ModuleType | object, name: str, origin: str, version: str) -> PluginRecord:
        """Register one plugin and collect what it registers; quarantine it on any failure."""
        record = PluginRecord(name, version, origin, [])
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            return self._quarantine(record, exc)
        record.hooks = sorted(
            impl_name for impl_name in _REGISTRATIONS if _implements(self.pm, name, impl_name)
        )
        try:
            self.pm.check_pending()
            _check_unmarked_hooks(plugin, record.hooks)
            collected = self._collect(name)
        except Exception as exc:
            self.pm.unregister(name=name)
            return self._quarantine(record, exc)
        for attribute, specs in collected.items():
            getattr(self.registry, attribute).update(specs)
        self.registry.plugins.append(record)
        return record

    def _collect(self, plugin_name: str) -> dict[str, dict]:
        collected: dict[str, dict] = {}
        for hook_name, (attribute, spec_type) in _REGISTRATIONS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name != plugin_name:
                    continue
                specs = impl.function()
                if specs is None:
                    continue
                if not isinstance(specs, list | tuple):
                    raise TypeError(f"{hook_name} must return a list of {spec_type.__name__}, got {specs!r}")
                for spec in specs:
                    if not isinstance(spec, spec_type):
                        raise TypeError(f"{hook_name} returned {spec!r}, expected {spec_type.__name__} items")
                    existing = getattr(self.registry, attribute)
                    if spec.name in existing or spec.name in collected.get(attribute, {}):
                        raise ValueError(
                            f"{hook_name}: {spec_type.__name__} {spec.name!r} is already registered"
                        )
                    collected.setdefault(attribute, {})[spec.name] = spec
        return collected

    def _quarantine(self, record: PluginRecord, exc: BaseException) -> PluginRecord:
        record.status = "quarantined"
        record.reason = f"{type(exc).__name__}: {exc}"
        log.error("plugin %s quarantined: %s", record.name, record.reason)
        self.registry.plugins.append(record)
        return record


def _check_unmarked_hooks(plugin: object, hooks: list[str]) -> None:
    """pluggy ignores functions without @hookimpl; one named like a hook is almost surely a forgotten marker."""
    for attribute in dir(plugin):
        if (
            attribute.startswith("register_")
            and callable(getattr(plugin, attribute))
            and attribute not in hooks
        ):
            raise TypeError(f"{attribute} looks like a hook but is not marked with @kinefuse.hookimpl")


def _implements(pm: pluggy.PluginManager, plugin_name: str, hook_name: str) -> bool:
    return any(i.plugin_name == plugin_name for i in getattr(pm.hook, hook_name).get_hookimpls())


def _own_version() -> str:
    from kinefuse import __version__

    return __version__


def load_plugins(extra: tuple[tuple[str, object], ...] = (), entry_points: bool = True) -> Registry:
    """Load built-ins, then entry-point plugins, then ``extra`` (name, plugin) pairs."""
    loader = PluginLoader()
    loader.load_builtins()
    if entry_points:
        loader.load_entry_points()
    for name, plugin in extra:
        loader.add(plugin, name, "registered", getattr(plugin, "__version__", "?"))
    estimators.publish(loader.registry.pose_estimators)
    return loader.registry
