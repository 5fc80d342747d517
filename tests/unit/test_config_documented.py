"""docs/config.md documents every key of every table and type the built-in plugins register."""

from pathlib import Path

from kinefuse.config import CORE_SECTIONS
from kinefuse.plugin_loader import load_plugins

DOC = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()


def documented_section(title: str) -> str:
    start = DOC.index(title)
    end = DOC.find("\n### ", start + 1)
    return DOC[start : end if end != -1 else None]


def test_every_key_is_documented_in_its_section():
    registry = load_plugins(entry_points=False)
    tables = {f"### `[{name}]`": schema for name, schema in CORE_SECTIONS.items()}
    tables |= {f"### `[{s.name}]`": s.schema for s in registry.config_sections.values()}
    for title, schema in tables.items():
        section = documented_section(title)
        for key in schema:
            assert f"| `{key}` |" in section, f"{title} {key} is not documented"
    for name, spec in {**registry.sources, **registry.processors}.items():
        section = documented_section(
            "### `[[sources]]`" if name in registry.sources else "### `[[processors]]`"
        )
        assert f'`type = "{name}"`' in section, f"type {name} is not documented"
        for key in spec.schema:
            assert f"| `{key}` |" in section, f"{name}.{key} is not documented"
