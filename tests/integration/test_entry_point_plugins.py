"""Plugins as users install them: found through the ``kinefuse.plugins`` entry points, broken ones
quarantined while the daemon runs on with the good one."""

import json
import re
import sqlite3

import pytest

from .conftest import EXAMPLE

pytestmark = pytest.mark.slow

BROKEN_IMPORT = "RuntimeError: this plugin is broken on purpose"
EXAMPLE_HOOKS = ["register_processors", "register_sources"]


def table_rows(stdout: str) -> dict[str, list[str]]:
    """``kinefuse plugins``' table by plugin name; its columns are separated by two or more spaces."""
    lines = [line for line in stdout.splitlines() if line and not line.startswith("quarantined ")]
    header, *rows = (re.split(r" {2,}", line) for line in lines)
    assert header == ["name", "version", "origin", "status", "hooks"]
    return {row[0]: row for row in rows}


def test_plugins_lists_the_example_and_quarantines_the_broken(installed_plugins):
    result = installed_plugins.kinefuse("plugins")
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert rows["example"] == ["example", "0.1.0", "entry point", "loaded", ", ".join(EXAMPLE_HOOKS)]
    assert rows["broken_import"][2:4] == ["entry point", "quarantined"]
    assert rows["misspelled_hook"][2:4] == ["entry point", "quarantined"]
    assert f"quarantined broken_import: {BROKEN_IMPORT}" in result.stdout.splitlines()
    (misspelled,) = [
        line for line in result.stdout.splitlines() if line.startswith("quarantined misspelled_hook:")
    ]
    assert "register_sorces" in misspelled
    assert rows["kinefuse.builtin.sources.synthetic"][2:4] == ["built-in", "loaded"]
    # kinefuse's own entry points are built-in
    for feature in ("camera", "ble_imu", "mediapipe_pose", "multiview"):
        assert rows[feature][2:4] == ["built-in", "loaded"]


def test_plugins_json(installed_plugins):
    result = installed_plugins.kinefuse("plugins", "--json")
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    example = records["example"]
    assert (example["version"], example["origin"], example["status"], example["hooks"]) == (
        "0.1.0",
        "entry point",
        "loaded",
        EXAMPLE_HOOKS,
    )
    assert records["broken_import"]["status"] == "quarantined"
    assert records["broken_import"]["reason"] == BROKEN_IMPORT
    assert records["misspelled_hook"]["status"] == "quarantined"
    assert "register_sorces" in records["misspelled_hook"]["reason"]
    assert all(r["status"] == "loaded" for r in records.values() if r["origin"] == "built-in")


def test_the_daemon_runs_the_example_plugin_beside_the_builtins(installed_plugins, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run", numbered=True)
    config = folder / "config.toml"
    config.write_text(f"""
[daemon]
athlete = "integration"
[status]
socket_path = "{folder / "k.sock"}"
[[sources]]
id = "synth"
type = "synthetic"
[[sources]]
id = "sine"
type = "sine_imu"
rate_hz = 50.0
[[processors]]
id = "peak"
type = "acc_magnitude_peak"
[[processors]]
id = "gaps"
type = "sequence_gaps"
""")
    db = folder / "k.db"
    result = installed_plugins.kinefuse("run", "--config", str(config), "--duration", "3", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert f"plugin broken_import quarantined: {BROKEN_IMPORT}" in result.stderr
    assert "plugin misspelled_hook quarantined" in result.stderr
    with sqlite3.connect(db) as conn:
        per_source = "SELECT d.source_id, count(*) FROM imu_samples s JOIN devices d ON d.id = s.device_ref"
        samples = dict(conn.execute(per_source + " GROUP BY d.source_id"))
        peaks = conn.execute(
            "SELECT d.source_id, d.device_id, m.value, m.unit, m.provenance, m.quality, m.reason"
            " FROM metrics m JOIN devices d ON d.id = m.device_ref WHERE m.name = 'acc_magnitude_peak'"
        ).fetchall()
        (status,) = conn.execute("SELECT status FROM sessions").fetchone()
    assert samples["sine"] >= 100 and samples["synth"] >= 400
    assert {(source, device) for source, device, *_ in peaks} == {
        ("synth", "imu_pelvis"),
        ("synth", "imu_left_shank"),
        ("synth", "imu_right_shank"),
        ("synth", "imu_trunk"),
        ("sine", "sine"),
    }
    assert {(unit, provenance) for *_, unit, provenance, _, _ in peaks} == {("m/s^2", "measured")}
    assert any(quality == "good" and value > 9.0 for _, _, value, _, _, quality, _ in peaks)
    assert status == "stopped"


def test_the_example_plugins_own_tests_pass(installed_plugins):
    basetemp = installed_plugins.root / "t"
    result = installed_plugins.run(
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--basetemp={basetemp}",
        str(EXAMPLE / "tests"),
        timeout_s=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b5 passed\b", result.stdout), result.stdout
