"""Every hook is part of the documented contract: a docstring, its own section in docs/plugins.md with an
example, and a place in plugin_loader._HOOKS (a hook missing there would be called by nobody)."""

import inspect
import re
from pathlib import Path

import pluggy
import pytest

from kinefuse import hookspecs, plugin_loader

GUIDE = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text(encoding="utf-8")
HOOKS = sorted(
    name for name in dir(hookspecs) if pluggy.PluginManager("kinefuse").parse_hookspec_opts(hookspecs, name)
)


def guide_section(hook: str) -> str | None:
    """The text under ``## hook`` (backticks allowed) up to the next heading of that level, or None."""
    match = re.search(rf"^## `?{hook}`?[ \t]*$(.*?)(?=^## |\Z)", GUIDE, re.MULTILINE | re.DOTALL)
    return match.group(1) if match else None


def test_there_are_hooks():
    assert "register_sources" in HOOKS


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook):
    assert inspect.getdoc(getattr(hookspecs, hook)), f"kinefuse.hookspecs.{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_its_own_section_with_an_example(hook):
    section = guide_section(hook)
    assert section is not None, f"docs/plugins.md has no '## {hook}' heading"
    assert "```python" in section, f"docs/plugins.md '## {hook}' has no example"


def test_registrations_cover_exactly_the_hooks():
    assert sorted(plugin_loader._HOOKS) == HOOKS
