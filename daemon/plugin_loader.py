"""Plugin loading: the core's built-ins and this distribution's feature plugins first, then every other
``kinefuse.plugins`` entry point, one at a time; then ``plugins_loaded`` with the finished registry.

A plugin that fails to import, misnames a hook, or raises or returns nonsense from a registration
hook is quarantined with the reason; the rest load and the daemon runs on.
"""

from __future__ import annotations

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
    PluginRecord,
    PoseEstimatorSpec,
    ProcessorSpec,
    Registry,
    ServiceSpec,
    SinkSpec,
    SourceSpec,
)

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "kinefuse.plugins"
# The runtime's own defaults. The feature plugins (camera, BLE straps, ...) are found as
# every third-party plugin is, through this distribution's entry points, so the core never imports them.
CORE_MODULES = (
    "kinefuse.builtin.sources.synthetic",
    "kinefuse.builtin.processors.sequence_gaps",
    "kinefuse.builtin.processors.strap_orientation",
    "kinefuse.builtin.processors.motion_stream",
    "kinefuse.builtin.sinks.sqlite",
    "kinefuse.builtin.services.status",
    "kinefuse.builtin.commands.simulate",
    "kinefuse.builtin.commands.analyze",
    "kinefuse.bench.command",
    "kinefuse.bench.pipeline",
    "kinefuse.bench.stream_latency",
    "kinefuse.bench.accuracy",
    "kinefuse.bench.kalman",
    "kinefuse.bench.ahrs",
    "kinefuse.bench.analyze",
)
DISTRIBUTION = "kinefuse"  # entry points of this distribution are the built-in feature plugins
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
# hooks that register nothing: called once everything is registered
_NOTIFICATIONS = ("plugins_loaded",)
_HOOKS = (*_REGISTRATIONS, *_NOTIFICATIONS)


class PluginLoader:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("kinefuse")
        self.pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        self._owned: dict[
            str, dict[str, list[str]]
        ] = {}  # plugin -> registry attribute -> names it registered

    def load_builtins(self) -> None:
        """The core's modules, then the feature plugins this distribution declares as entry points."""
        for module_name in CORE_MODULES:
            self.add(importlib.import_module(module_name), module_name, "built-in", _own_version())
        for ep in _entry_points(builtin=True):
            self._load_entry_point(ep, "built-in")

    def load_entry_points(self) -> None:
        """Third-party plugins: every other distribution's ``kinefuse.plugins`` entry points."""
        for ep in _entry_points(builtin=False):
            self._load_entry_point(ep, "entry point")

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint, origin: str) -> None:
        version = ep.dist.version if ep.dist else "?"
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not stop the daemon
            self._quarantine(PluginRecord(ep.name, version, origin, []), exc)
            return
        self.add(plugin, ep.name, origin, version)

    def announce(self) -> None:
        """Call ``plugins_loaded`` on every plugin with the finished registry; one that raises is quarantined
        and what it registered is withdrawn."""
        for impl in self.pm.hook.plugins_loaded.get_hookimpls():
            try:
                impl.function(registry=self.registry)
            except Exception as exc:
                self._withdraw(impl.plugin_name)
                record = next(r for r in self.registry.plugins if r.name == impl.plugin_name)
                self.registry.plugins.remove(record)
                self._quarantine(record, exc)

    def _withdraw(self, plugin_name: str) -> None:
        for attribute, names in self._owned.pop(plugin_name, {}).items():
            for name in names:
                getattr(self.registry, attribute).pop(name, None)
        self.pm.unregister(name=plugin_name)

    def add(self, plugin: ModuleType | object, name: str, origin: str, version: str) -> PluginRecord:
        """Register one plugin and collect what it registers; quarantine it on any failure."""
        record = PluginRecord(name, version, origin, [])
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            return self._quarantine(record, exc)
        record.hooks = sorted(impl_name for impl_name in _HOOKS if _implements(self.pm, name, impl_name))
        try:
            self.pm.check_pending()
            _check_unmarked_hooks(plugin, record.hooks)
            collected = self._collect(name)
        except Exception as exc:
            self.pm.unregister(name=name)
            return self._quarantine(record, exc)
        for attribute, specs in collected.items():
            getattr(self.registry, attribute).update(specs)
        self._owned[name] = {attribute: list(specs) for attribute, specs in collected.items()}
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


def _entry_points(builtin: bool) -> list[importlib.metadata.EntryPoint]:
    """This distribution's entry points (builtin) or everyone else's, in name order."""
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    ours = [ep for ep in found if ep.dist is not None and ep.dist.name == DISTRIBUTION]
    return sorted(ours if builtin else [ep for ep in found if ep not in ours], key=lambda e: e.name)


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
    loader.announce()
    return loader.registry
