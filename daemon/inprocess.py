"""Running the real agent inside this process on a config written from plain tables: the benches and the
pytest plugin (kinefuse.testing) use it, so they exercise exactly what `kinefuse run` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tomli_w

from kinefuse.config import Config
from kinefuse.plugin_loader import Registry


def write_config(path: Path, tables: dict) -> Path:
    """Write ``{table: {...}}`` and ``{table: [{...}, ...]}`` (arrays of tables) as a TOML config file."""
    path.write_text(tomli_w.dumps(_plain(tables)), encoding="utf-8")
    return path


def _plain(value):
    """Paths and numpy scalars as the str, int and float that TOML writes."""
    if isinstance(value, dict):
        return {key: _plain(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


async def run_in_process(config: Config, registry: Registry, duration_s: float | None = None):
    """Run an Agent to the end (``duration_s``, or until its sources end); return it with its exit code."""
    from kinefuse.agent import Agent  # here: importing plugins must not import the whole runtime

    # built inside the running loop: the agent's events and channels belong to it
    agent = Agent(config, registry)
    exit_code = await agent.run(duration_s)
    return agent, exit_code


async def replay_in_process(config: Config, registry: Registry, what: str):
    """Run an Agent over replaying sources to their end and return it; raise, naming ``what``, unless it
    stopped cleanly and dropped nothing (a scored replay must score every sample it was given)."""
    agent, exit_code = await run_in_process(config, registry)
    if exit_code != 0:
        raise RuntimeError(f"{what}: the pipeline did not finish cleanly (exit {exit_code})")
    status = agent.status()
    dropped = {f"channel {name}": ch["dropped"] for name, ch in status["channels"].items() if ch["dropped"]}
    dropped |= {f"source {sid}": s["dropped"] for sid, s in status["sources"].items() if s["dropped"]}
    if dropped:
        raise RuntimeError(f"{what}: the pipeline dropped data ({dropped})")
    return agent
