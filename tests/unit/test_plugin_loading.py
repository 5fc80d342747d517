"""In-process plugin loading: each way a plugin can be broken quarantines that plugin alone."""

from types import SimpleNamespace

import pytest

from kinefuse import hookimpl
from kinefuse.builtin.sources.synthetic import SyntheticSource
from kinefuse.interfaces import ProcessorSpec, SourceSpec
from kinefuse.plugin_loader import CORE_MODULES, load_plugins

FEATURE_PLUGINS = ("camera", "ble_imu", "mediapipe_pose", "multiview")  # this distribution's entry points


def plugin(**hooks):
    """A plugin object whose attributes are the given functions, marked as hook implementations."""
    return SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def source_spec(name):
    return SourceSpec(name, SyntheticSource, {}, "a test source")


def good_plugin():
    return plugin(register_sources=lambda: [source_spec("good_source")])


def raise_runtime_error():
    raise RuntimeError("no hardware here")


def load(*extra):
    registry = load_plugins(extra=extra, entry_points=False)
    return registry, {p.name: p for p in registry.plugins}


def assert_builtins_loaded(records):
    for name in (*CORE_MODULES, *FEATURE_PLUGINS):
        assert records[name].status == "loaded", records[name].reason
        assert records[name].origin == "built-in"


def test_a_raising_hook_quarantines_its_plugin_and_nothing_it_registered_leaks():
    bad = plugin(register_sources=lambda: [source_spec("leaky")], register_processors=raise_runtime_error)
    registry, records = load(("raises", bad), ("good", good_plugin()))
    assert records["raises"].status == "quarantined"
    assert records["raises"].reason == "RuntimeError: no hardware here"
    assert records["raises"].hooks == ["register_processors", "register_sources"]
    assert "leaky" not in registry.sources
    assert records["good"].status == "loaded" and "good_source" in registry.sources
    assert_builtins_loaded(records)


def test_a_hook_returning_the_wrong_spec_type_is_quarantined():
    wrong = ProcessorSpec("not_a_source", lambda options, pid: None, {}, "a processor")
    registry, records = load(("wrong_type", plugin(register_sources=lambda: [wrong])))
    assert records["wrong_type"].status == "quarantined"
    assert "register_sources returned" in records["wrong_type"].reason
    assert "expected SourceSpec items" in records["wrong_type"].reason
    assert "not_a_source" not in registry.sources and "not_a_source" not in registry.processors
    assert_builtins_loaded(records)


def test_a_duplicate_source_name_is_quarantined_and_the_builtin_kept():
    registry, records = load(("duplicate", plugin(register_sources=lambda: [source_spec("synthetic")])))
    assert records["duplicate"].status == "quarantined"
    assert "'synthetic' is already registered" in records["duplicate"].reason
    assert registry.sources["synthetic"].factory is SyntheticSource
    assert records["kinefuse.builtin.sources.synthetic"].status == "loaded"


def test_a_misspelled_hook_is_quarantined_naming_it_and_later_plugins_still_load():
    registry, records = load(("misspelled", plugin(register_sorces=lambda: [])), ("good", good_plugin()))
    assert records["misspelled"].status == "quarantined"
    assert "register_sorces" in records["misspelled"].reason
    assert records["good"].status == "loaded" and "good_source" in registry.sources
    assert_builtins_loaded(records)


def test_the_config_names_the_quarantined_plugin(tmp_path):
    from kinefuse.config import load_config
    from kinefuse.configschema import ConfigInvalid

    registry, _ = load(("raises", plugin(register_sources=raise_runtime_error)))
    config = tmp_path / "config.toml"
    config.write_text('[[sources]]\ntype = "from_the_broken_plugin"\n')
    with pytest.raises(ConfigInvalid) as failure:
        load_config(config, registry)
    message = str(failure.value)
    assert "unknown type 'from_the_broken_plugin'" in message
    assert "quarantined plugins: raises (RuntimeError: no hardware here)" in message


def test_plugins_loaded_sees_every_registration_and_a_raising_one_is_withdrawn():
    seen = {}

    def remember(registry):
        seen.update(registry.sources)

    def fail(registry):
        raise ValueError("cannot use what was registered")

    watcher = plugin(plugins_loaded=remember)
    broken = plugin(register_sources=lambda: [source_spec("withdrawn")], plugins_loaded=fail)
    registry, records = load(("watcher", watcher), ("broken", broken), ("good", good_plugin()))
    assert {"synthetic", "camera", "ble_imu", "good_source"} <= seen.keys()
    assert records["watcher"].hooks == ["plugins_loaded"]
    assert records["broken"].status == "quarantined"
    assert records["broken"].reason == "ValueError: cannot use what was registered"
    assert "withdrawn" not in registry.sources and "good_source" in registry.sources
    assert_builtins_loaded(records)
