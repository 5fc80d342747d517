"""Strict config validation: every error reported at once, each with file, line and key."""

import textwrap

import pytest

from kinefuse.config import load_config
from kinefuse.configschema import ConfigInvalid, KeyLines
from kinefuse.plugin_loader import load_plugins


@pytest.fixture(scope="module")
def registry():
    return load_plugins(entry_points=False)


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def errors_of(path, registry):
    with pytest.raises(ConfigInvalid) as info:
        load_config(path, registry)
    return info.value.errors


def test_repo_config_is_valid(registry):
    config = load_config("config.toml", registry)
    assert [s.type for s in config.sources] == ["synthetic"]
    assert config["storage"]["path"].endswith("kinefuse.db")


def test_unknown_key_wrong_type_and_out_of_range_reported_together(tmp_path, registry):
    path = write(
        tmp_path,
        """
        [daemon]
        athlete = "ana"
        colour = "blue"

        [channels]
        ingest_capacity = "lots"

        [[sources]]
        id = "s"
        type = "synthetic"
        chunk_s = 0.1
    """,
    )
    errors = errors_of(path, registry)
    found = {(e.line, e.key) for e in errors}
    assert found == {(3, "daemon.colour"), (6, "channels.ingest_capacity"), (11, "sources[0].chunk_s")}
    messages = {e.key: e.message for e in errors}
    assert "unknown key" in messages["daemon.colour"]
    assert "expected an integer" in messages["channels.ingest_capacity"]
    assert "from 1.0 to 600.0" in messages["sources[0].chunk_s"] and "0.1" in messages["sources[0].chunk_s"]
    assert all(e.file == str(path) for e in errors)


def test_unknown_source_type_and_duplicate_ids(tmp_path, registry):
    path = write(
        tmp_path,
        """
        [[sources]]
        id = "a"
        type = "synthetic"

        [[sources]]
        id = "a"
        type = "synthetic"

        [[sources]]
        type = "webcam9000"
    """,
    )
    errors = {e.key: (e.line, e.message) for e in errors_of(path, registry)}
    assert errors["sources[1].id"][0] == 6 and "duplicate id" in errors["sources[1].id"][1]
    assert (
        errors["sources[2].type"][0] == 10
        and "available: ble_imu, camera, synthetic" in errors["sources[2].type"][1]
    )


def test_missing_required_and_unknown_table(tmp_path, registry):
    path = write(
        tmp_path,
        """
        [daemonn]
        athlete = "x"

        [[processors]]
        id = "g"
    """,
    )
    errors = {e.key: e for e in errors_of(path, registry)}
    assert errors["daemonn"].line == 1 and "unknown table" in errors["daemonn"].message
    assert errors["processors[0].type"].line == 4


def test_not_toml_names_the_line(tmp_path, registry):
    path = write(tmp_path, "[daemon]\nathlete = \n")
    (error,) = errors_of(path, registry)
    assert error.line == 2 and "not valid TOML" in error.message


def test_environment_overrides_a_path(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("KINEFUSE_DB", str(tmp_path / "other.db"))
    config = load_config(write(tmp_path, "[storage]\npath = 'x.db'\n"), registry)
    assert config["storage"]["path"] == str(tmp_path / "other.db")


def test_relative_paths_resolve_against_the_config_folder(tmp_path, registry):
    config = load_config(write(tmp_path, "[storage]\npath = 'data/k.db'\n"), registry)
    assert config["storage"]["path"] == str(tmp_path / "data" / "k.db")


def test_key_lines_skip_multiline_values():
    lines = KeyLines(
        'a = [\n  "x = 1",\n  2,\n]\nb = """\nc = 3\n"""\nd = 4\n[t.u]\ne = 1\n[[arr]]\n[[arr]]\nf = 2\n'
    )
    assert lines.line_of(("a",)) == 1
    assert ("x",) not in lines.lines and ("c",) not in lines.lines
    assert lines.line_of(("d",)) == 8
    assert lines.line_of(("t", "u", "e")) == 10
    assert lines.line_of(("arr", 1, "f")) == 13
    assert lines.line_of(("arr", 1, "missing")) == 12


def test_a_types_check_refuses_options_that_cannot_run_together_at_their_lines(tmp_path):
    from kinefuse import hookimpl
    from kinefuse.builtin.sources.synthetic import SyntheticSource
    from kinefuse.configschema import Field
    from kinefuse.interfaces import SourceSpec

    schema = {"low": Field(int, 0, "lower bound"), "high": Field(int, 10, "upper bound")}

    def ordered(options):
        return [("high", "high must exceed low")] if options["high"] <= options["low"] else []

    def broken(options):
        raise KeyError("missing")

    specs = [SourceSpec("ranged", SyntheticSource, schema, "d", check=ordered),
             SourceSpec("buggy", SyntheticSource, {}, "d", check=broken)]  # fmt: skip
    plugin = type("Plugin", (), {"register_sources": staticmethod(hookimpl(lambda: specs))})
    registry = load_plugins(extra=(("checks", plugin),), entry_points=False)
    path = write(
        tmp_path,
        """
        [[sources]]
        type = "ranged"
        low = 5
        high = 3

        [[sources]]
        type = "buggy"
        """,
    )
    messages = [str(e) for e in errors_of(path, registry)]
    assert messages == [
        f"{path}:4: sources[0].high: high must exceed low",
        f"{path}:6: sources[1]: the 'buggy' type's check failed: KeyError: 'missing'",
    ]
