"""Loading and validating kinefuse's TOML config: the core tables, plugin-owned tables, sources and processors.

Unknown keys, wrong types, out-of-range values and missing required keys are all errors, reported
together with file and line.  docs/config.md describes every key; config.toml is the default.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from pathlib import Path

from kinefuse.configschema import ConfigError, ConfigInvalid, Field, Validator

CONFIG_ENV = "KINEFUSE_CONFIG"

CORE_SECTIONS: dict[str, dict[str, Field]] = {
    "daemon": {
        "athlete": Field(str, "demo", "athlete whose session this is; sessions are grouped by it"),
        "sinks": Field(list, ["sqlite"], "sink types the stream is written to", item_type=str),
        "stop_deadline_s": Field(
            float, 10.0, "seconds allowed for draining and flushing on stop", min=0.5, max=600
        ),
        "log_level": Field(str, "info", "log verbosity", choices=("debug", "info", "warning", "error")),
    },
    "channels": {
        "ingest_capacity": Field(
            int, 1024, "batches held between sources and processing", min=1, max=1_000_000
        ),
        "sink_capacity": Field(int, 1024, "item batches held for each sink", min=1, max=1_000_000),
    },
    "supervisor": {
        "restart_budget": Field(
            int, 5, "restarts allowed within restart_window_s before a source fails", min=0
        ),
        "restart_window_s": Field(float, 300.0, "window over which restarts are counted", min=1.0),
        "backoff_initial_s": Field(float, 0.5, "first restart delay (doubles each time, jittered)", min=0.0),
        "backoff_max_s": Field(float, 30.0, "longest restart delay", min=0.0),
    },
}
_ENTRY_KEYS = ("id", "type")


@dataclasses.dataclass(frozen=True)
class ComponentConfig:
    """One ``[[sources]]`` or ``[[processors]]`` entry: its id, type and validated options."""

    id: str
    type: str
    options: dict


@dataclasses.dataclass(frozen=True)
class Config:
    path: Path
    sections: dict[str, dict]
    sources: list[ComponentConfig]
    processors: list[ComponentConfig]

    def __getitem__(self, section: str) -> dict:
        return self.sections[section]


def default_config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV, "config.toml"))


def load_config(path: Path, registry) -> Config:
    """Parse and validate ``path`` against the core schema and the plugins in ``registry``.

    Raises ConfigInvalid carrying every error found.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigInvalid(
            [ConfigError(str(path), None, "-", f"cannot read config: {exc.strerror}")]
        ) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(exc)
        raise ConfigInvalid([ConfigError(str(path), line, "-", f"not valid TOML: {exc}")]) from exc
    check = Validator(str(path), text, path.resolve().parent)
    section_schemas = {**CORE_SECTIONS, **{s.name: s.schema for s in registry.config_sections.values()}}
    known = set(section_schemas) | {"sources", "processors"}
    for key in data:
        if key not in known:
            check.error((key,), f"unknown table (known tables: {', '.join(sorted(known))})")
    sections = {
        name: check.check_table(data.get(name, {}), schema, (name,))
        for name, schema in section_schemas.items()
    }
    for sink in sections["daemon"].get("sinks") or []:
        if sink not in registry.sinks:
            check.error(("daemon", "sinks"), f"unknown sink {sink!r} (available: {_names(registry.sinks)})")
    sources = _components(check, data.get("sources", []), "sources", registry.sources, registry)
    processors = _components(check, data.get("processors", []), "processors", registry.processors, registry)
    if check.errors:
        raise ConfigInvalid(check.errors)
    return Config(path, sections, sources, processors)


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    """The line tomllib complains about (Python < 3.14 gives it only in the message)."""
    if getattr(exc, "lineno", None):
        return exc.lineno
    found = re.search(r"at line (\d+)", str(exc))
    return int(found.group(1)) if found else None


def _names(specs: dict) -> str:
    return ", ".join(sorted(specs)) or "none"


def _components(check: Validator, entries, table: str, specs: dict, registry) -> list[ComponentConfig]:
    if not isinstance(entries, list):
        check.error((table,), f"expected an array of tables ([[{table}]]), got {type(entries).__name__}")
        return []
    out: list[ComponentConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        path = (table, index)
        if not isinstance(entry, dict):
            check.error(path, "expected a table")
            continue
        kind = entry.get("type")
        if not isinstance(kind, str):
            check.error((*path, "type"), f"expected a string naming a type (available: {_names(specs)})")
            continue
        if kind not in specs:
            check.error(
                (*path, "type"),
                f"unknown type {kind!r} (available: {_names(specs)})" + registry.quarantine_hint(),
            )
            continue
        ident = entry.get("id", kind)
        if not isinstance(ident, str) or not ident:
            check.error((*path, "id"), f"expected a non-empty string, got {ident!r}")
            continue
        if ident in seen:
            check.error((*path, "id"), f"duplicate id {ident!r}: each of [[{table}]] needs its own")
        seen.add(ident)
        errors_before = len(check.errors)
        options = check.check_table(entry, specs[kind].schema, path, ignore=_ENTRY_KEYS)
        if len(check.errors) == errors_before:  # each option is sound: can they run together?
            _check_combination(check, specs[kind], options, path)
        out.append(ComponentConfig(ident, kind, options))
    return out


def _check_combination(check: Validator, spec, options: dict, path: tuple) -> None:
    if spec.check is None:
        return
    try:
        problems = spec.check(options)
    except Exception as exc:  # a plugin's check is plugin code: its bug is a config error, not a crash
        check.error(path, f"the {spec.name!r} type's check failed: {type(exc).__name__}: {exc}")
        return
    for key, message in problems:
        check.error((*path, key) if key in options else path, message)
