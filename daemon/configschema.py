"""Strict, declarative validation of TOML tables, with every error tied to its file and line.

tomllib parses but forgets where each key stood, so ``KeyLines`` re-reads the text for the line of
every table header and key; nothing else here parses TOML.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REQUIRED = object()
KeyPath = tuple[str | int, ...]


@dataclasses.dataclass(frozen=True)
class Field:
    """One config key: its type, default (REQUIRED when it has none), bounds and meaning."""

    type: type
    default: Any = REQUIRED
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    item_type: type | None = None  # for lists
    env: str | None = None  # environment variable that overrides the file
    is_path: bool = False  # relative paths resolve against the config file's folder
    pattern: str | None = None  # strings must match this regular expression in full

    def expectation(self) -> str:
        text = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}[
            self.type
        ]
        if self.item_type is not None:
            text += f" of {_TYPE_NAMES[self.item_type]}s"
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        if self.pattern is not None:
            text += f" matching {self.pattern}"
        if self.min is not None and self.max is not None:
            text += f" from {self.min} to {self.max}"
        elif self.min is not None:
            text += f" of at least {self.min}"
        elif self.max is not None:
            text += f" of at most {self.max}"
        return text


Schema = Mapping[str, Field]


def defaults(schema: Schema) -> dict[str, Any]:
    """The options a table of this schema has when it sets nothing (keys without a default are left out)."""
    return {key: field.default for key, field in schema.items() if field.default is not REQUIRED}


_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean"}


@dataclasses.dataclass(frozen=True)
class ConfigError:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}"


class ConfigInvalid(Exception):
    """Raised with every error found, not just the first."""

    def __init__(self, errors: list[ConfigError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def format_key(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


def _split_dotted(text: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return [p.strip("\"'") for p in parts]


def _bracket_depth(value: str) -> int:
    """Net count of open [ and { outside strings, to skip the continuation lines of multi-line values."""
    depth, quote = 0, ""
    for ch in value:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "#":
            break
    return depth


def _resolve_arrays(parts: list[str], array_counts: dict[KeyPath, int]) -> KeyPath:
    """A header's key path, with the index of the latest element of each array of tables it passes through
    (in TOML, ``[a.b]`` after ``[[a]]`` belongs to the last ``a``)."""
    path: KeyPath = ()
    for part in parts[:-1]:
        path = (*path, part)
        if path in array_counts:
            path = (*path, array_counts[path] - 1)
    return (*path, parts[-1])


class KeyLines:
    """The line number of each table and key in a TOML text, addressed by key path."""

    def __init__(self, text: str):
        self.lines: dict[KeyPath, int] = {}
        table: KeyPath = ()
        array_counts: dict[KeyPath, int] = {}
        depth = 0
        in_multiline_string = False
        for number, line in enumerate(text.splitlines(), start=1):
            if in_multiline_string:
                in_multiline_string = line.count('"""') % 2 == 0 and line.count("'''") % 2 == 0
                continue
            if depth > 0:
                depth += _bracket_depth(line)
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                path = _resolve_arrays(_split_dotted(header.group(2)), array_counts)
                if header.group(1) == "[[":
                    index = array_counts.get(path, 0)
                    array_counts[path] = index + 1
                    path = (*path, index)
                table = path
                self.lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                self.lines.setdefault((*table, *_split_dotted(key.group(1))), number)
                value = line[key.end() :]
                in_multiline_string = value.count('"""') % 2 == 1 or value.count("'''") % 2 == 1
                depth = _bracket_depth(value)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path`` or, when it is not written in the file, of its nearest written parent."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


class Validator:
    """Collects every error while checking tables against schemas."""

    def __init__(self, file: str, text: str, base_dir: Path):
        self.file = file
        self.key_lines = KeyLines(text)
        self.base_dir = base_dir
        self.errors: list[ConfigError] = []

    def error(self, path: KeyPath, message: str) -> None:
        self.errors.append(ConfigError(self.file, self.key_lines.line_of(path), format_key(path), message))

    def check_table(self, table: Any, schema: Schema, path: KeyPath, ignore: tuple[str, ...] = ()) -> dict:
        """Return the table with defaults filled in; record an error for every unknown, missing or bad key."""
        if not isinstance(table, dict):
            self.error(path, f"expected a table, got {type(table).__name__}")
            return {}
        out = {}
        for key in table:
            if key not in schema and key not in ignore:
                known = ", ".join(sorted(schema)) or "none"
                self.error((*path, key), f"unknown key (known keys here: {known})")
        for key, field in schema.items():
            value = self._from_env(field, (*path, key)) if field.env and field.env in os.environ else None
            if value is None:
                if key in table:
                    value = self.check_value(table[key], field, (*path, key))
                elif field.default is REQUIRED:
                    self.error((*path, key), f"missing required key: expected {field.expectation()}")
                    continue
                else:
                    value = field.default
            if field.is_path and isinstance(value, str) and value:
                value = str((self.base_dir / Path(value).expanduser()).resolve())
            out[key] = value
        return out

    def _from_env(self, field: Field, path: KeyPath) -> Any:
        raw = os.environ[field.env]
        if field.type is str:
            return raw
        try:
            parsed = field.type(raw)
        except ValueError:
            self.error(path, f"environment variable {field.env}={raw!r}: expected {field.expectation()}")
            return None
        return self.check_value(parsed, field, path)

    def check_value(self, value: Any, field: Field, path: KeyPath) -> Any:
        if field.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, field.type) or (field.type is int and isinstance(value, bool)):
            self.error(path, f"expected {field.expectation()}, got {type(value).__name__} {value!r}")
            return None
        if field.item_type is not None and not all(isinstance(v, field.item_type) for v in value):
            self.error(path, f"expected {field.expectation()}, got {value!r}")
            return None
        if field.choices is not None and value not in field.choices:
            self.error(path, f"expected {field.expectation()}, got {value!r}")
            return None
        if field.pattern is not None and not re.fullmatch(field.pattern, value):
            self.error(path, f"expected {field.expectation()}, got {value!r}")
            return None
        if (field.min is not None and value < field.min) or (field.max is not None and value > field.max):
            self.error(path, f"expected {field.expectation()}, got {value!r}")
            return None
        return value
