"""kinefuse's pytest plugin, for plugin authors: run the real daemon around your plugin in a test.

pytest loads it in every run through kinefuse's ``pytest11`` entry point, so nothing to configure.

Fixtures
--------
``kinefuse_pipeline``
    A callable that runs the real ``kinefuse.agent.Agent`` for a while and returns what it stored::

        def test_my_metric(kinefuse_pipeline):
            result = kinefuse_pipeline(
                sources=[{"id": "synth", "type": "synthetic", "scenario": "my_scenario.toml"}],
                processors=[{"id": "peak", "type": "acc_magnitude_peak"}],
                plugins=[("example", kinefuse_example.plugin)],
                duration_s=2.0,
            )
            assert result.exit_code == 0
            assert result.metrics("acc_magnitude_peak")

    ``run(sources=None, processors=(), plugins=(), duration_s=2.0, config_overrides=None,
    entry_points=False) -> PipelineResult``

    - ``sources`` / ``processors``: dicts written as ``[[sources]]`` / ``[[processors]]`` tables;
      ``sources=None`` runs the built-in realtime ``synthetic`` source with its defaults.
    - ``plugins``: ``(name, module_or_object)`` pairs registered after the built-ins, as
      ``kinefuse.plugin_loader.load_plugins(extra=plugins)`` does.  A plugin that gets quarantined fails the
      test with the reason.
    - ``entry_points``: also load the installed ``kinefuse.plugins`` entry points.  Off by default, so a
      test sees the built-ins and the plugins it names, whatever else is installed.
    - ``config_overrides``: ``{table: {key: value}}`` merged over the config the fixture writes, e.g.
      ``{"daemon": {"log_level": "debug"}, "storage": {"flush_interval_s": 0.05}}``.

    The config is a real TOML file in ``tmp_path`` (database and status socket there too) validated
    by ``kinefuse.config.load_config``; config errors fail the test, listing every error and the file.
    Environment variables that would override a key the file sets (``KINEFUSE_DB``,
    ``KINEFUSE_SOCKET``, ...) are unset for the run, so a test never writes outside ``tmp_path``.

``walking_scenario(path, cameras, duration_s=20.0, seed=1, people=())``
    Writes a scenario file for the ``synthetic`` source: the walker on a treadmill, filmed by ``cameras``
    (each a ``[[cameras]]`` table as a dict: ``name``, ``position``, ``target``, and any other camera key or
    sub-table, e.g. ``{"link": {"latency_min_s": 0.13}}``; docs/simulation.md lists them), no straps;
    ``people``: others in view, each a ``[[people]]`` table as a dict (``kind``, ``origin_xy``, ...).
    Returns ``path``; pass ``{"type": "synthetic", "scenario": str(path), "realtime": False, "loop": False}``
    as a source to replay it as fast as the pipeline goes.

``PipelineResult``
    ``exit_code``, ``config_path``, ``db_path``, ``db`` (a read-only ``sqlite_utils.Database``),
    ``status`` (the agent's final ``status()``), and helpers:
    ``imu_samples(device_id=None)`` and ``keypoint_frames(device_id=None)`` (dicts of numpy arrays, see
    ``kinefuse.storage.reader``), ``metrics(name=None)`` and ``events(kind=None)`` (lists of dicts with
    the row's columns and ``device_id``), ``source_stats(source_id)`` (the stored counters of a source).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# kinefuse itself is imported inside the fixture: this module loads in every pytest run of every
# project that has kinefuse installed, and must cost nothing there.
if TYPE_CHECKING:
    import sqlite_utils

    from kinefuse.plugin_loader import Registry

_DEFAULT_SOURCE = {"id": "synth", "type": "synthetic", "realtime": True}


@dataclasses.dataclass
class PipelineResult:
    """What one ``kinefuse_pipeline`` run left behind."""

    exit_code: int
    config_path: Path
    db_path: Path
    db: sqlite_utils.Database
    status: dict

    def imu_samples(self, device_id: str | None = None) -> dict:
        from kinefuse.storage import reader

        return reader.imu_samples(self.db, device_id=device_id)

    def keypoint_frames(self, device_id: str | None = None) -> dict:
        from kinefuse.storage import reader

        return reader.keypoint_frames(self.db, device_id=device_id)

    def metrics(self, name: str | None = None) -> list[dict]:
        return self._derived("metrics", "name", name)

    def events(self, kind: str | None = None) -> list[dict]:
        rows = self._derived("events", "kind", kind)
        for row in rows:
            row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
        return rows

    def source_stats(self, source_id: str) -> dict:
        rows = list(self.db["source_stats"].rows_where("source_id = ?", [source_id]))
        if not rows:
            stored = [r["source_id"] for r in self.db["source_stats"].rows]
            raise KeyError(f"no stored stats for source {source_id!r} (stored: {stored})")
        return rows[0]

    def _derived(self, table: str, column: str, wanted: str | None) -> list[dict]:
        sql = f"SELECT t.*, d.device_id FROM {table} t LEFT JOIN devices d ON d.id = t.device_ref"
        params: list[Any] = []
        if wanted is not None:
            sql += f" WHERE t.{column} = ?"
            params.append(wanted)
        return list(self.db.query(sql + " ORDER BY t.time_ns, t.rowid", params))


class _Pipeline:
    """The callable behind the fixture; one subfolder of ``tmp_path`` per run."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.tmp_path, self.monkeypatch = tmp_path, monkeypatch
        self.runs = 0  # counts failed runs too, so that each run gets a fresh folder
        self.results: list[PipelineResult] = []

    def __call__(
        self,
        sources: Sequence[dict] | None = None,
        processors: Sequence[dict] = (),
        plugins: Sequence[tuple[str, object]] = (),
        duration_s: float = 2.0,
        config_overrides: dict | None = None,
        entry_points: bool = False,
    ) -> PipelineResult:
        from kinefuse.plugin_loader import load_plugins

        self.runs += 1
        folder = self.tmp_path / f"run{self.runs}"  # short: a Unix socket path has ~100 bytes
        folder.mkdir()
        registry = load_plugins(extra=tuple(plugins), entry_points=entry_points)
        _fail_on_quarantine(registry, {name for name, _ in plugins})
        tables = _config_tables(folder, sources, processors, config_overrides or {})
        self._unset_env_overrides(registry, tables)
        from kinefuse.inprocess import write_config

        config_path = write_config(folder / "config.toml", tables)
        config = _load(config_path, registry)
        exit_code, status = _run_agent(config, registry, duration_s)
        result = self._result(exit_code, config_path, Path(config["storage"]["path"]), status)
        self.results.append(result)
        return result

    def _unset_env_overrides(self, registry: Registry, tables: dict) -> None:
        """The file the test wrote is the whole truth: drop env vars that would override its keys."""
        from kinefuse.config import CORE_SECTIONS

        schemas = {**CORE_SECTIONS, **{s.name: s.schema for s in registry.config_sections.values()}}
        for section, values in tables.items():
            for key in values if isinstance(values, dict) else ():
                field = schemas.get(section, {}).get(key)
                if field is not None and field.env:
                    self.monkeypatch.delenv(field.env, raising=False)

    def _result(self, exit_code: int, config_path: Path, db_path: Path, status: dict) -> PipelineResult:
        from kinefuse.storage import reader

        if not db_path.exists():
            pytest.fail(f"kinefuse run (exit code {exit_code}) left no database at {db_path}", pytrace=False)
        return PipelineResult(exit_code, config_path, db_path, reader.open_for_reading(db_path), status)

    def close(self) -> None:
        for result in self.results:
            result.db.close()


def _fail_on_quarantine(registry: Registry, names: set[str]) -> None:
    bad = [p for p in registry.plugins if p.name in names and p.status == "quarantined"]
    if bad:
        pytest.fail("plugin quarantined: " + "; ".join(f"{p.name}: {p.reason}" for p in bad), pytrace=False)


def _config_tables(folder: Path, sources, processors, overrides: dict) -> dict:
    tables: dict[str, Any] = {
        "daemon": {"athlete": "pytest"},
        "storage": {"path": str(folder / "kinefuse.db")},
        "status": {"socket_path": str(folder / "kinefuse.sock")},
        "sources": [dict(s) for s in ([_DEFAULT_SOURCE] if sources is None else sources)],
        "processors": [dict(p) for p in processors],
    }
    for table, values in overrides.items():
        if isinstance(values, dict) and isinstance(tables.get(table), dict):
            tables[table] = {**tables[table], **values}
        else:
            tables[table] = values
    return tables


def _load(config_path: Path, registry: Registry):
    from kinefuse.config import load_config
    from kinefuse.configschema import ConfigInvalid

    try:
        return load_config(config_path, registry)
    except ConfigInvalid as exc:
        errors = "\n".join(f"  {error}" for error in exc.errors)
        text = config_path.read_text(encoding="utf-8")
        pytest.fail(
            f"{len(exc.errors)} kinefuse config error(s):\n{errors}\n\n{config_path}:\n{text}", pytrace=False
        )


def _run_agent(config, registry: Registry, duration_s: float) -> tuple[int, dict]:
    import asyncio

    from kinefuse.inprocess import run_in_process

    async def run() -> tuple[int, dict]:
        agent, exit_code = await run_in_process(config, registry, duration_s)
        return exit_code, agent.status()

    return asyncio.run(run())


def walking_scenario(path: Path, cameras: Sequence[dict], duration_s: float = 20.0, seed: int = 1,
                     people: Sequence[dict] = ()) -> Path:  # fmt: skip
    """Write the walker-on-a-treadmill scenario seen by ``cameras`` (and ``people``, everyone else in view:
    [[people]] tables) to ``path`` (see the module docstring)."""
    from kinefuse.inprocess import write_config

    tables = {"scenario": {"name": Path(path).stem, "duration_s": duration_s, "seed": seed},
              "motion": {"kind": "walk", "treadmill": True}, "cameras": list(cameras)}  # fmt: skip
    if people:
        tables["people"] = list(people)
    return write_config(Path(path), tables)


@pytest.fixture
def kinefuse_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Run the real kinefuse daemon in-process with your plugins; see this module's docstring."""
    pipeline = _Pipeline(tmp_path, monkeypatch)
    yield pipeline
    pipeline.close()
