"""Built-in command ``kinefuse simulate SCENARIO --out DIR [--seed N]``: writes a scenario's recording
(IMU CSV, keypoint CSV, calibration, optional video) and its exact truth; see kinefuse.sim.export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kinefuse import hookimpl
from kinefuse.interfaces import CommandSpec


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", type=Path, help="scenario file (see docs/simulation.md)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write (created if missing)")
    parser.add_argument("--seed", type=int, help="random seed (default: the scenario's own)")


def run(args: argparse.Namespace) -> int:
    from kinefuse.configschema import ConfigInvalid
    from kinefuse.sim.export import export
    from kinefuse.sim.scenario import load_scenario
    from kinefuse.sim.simulate import Simulation

    try:
        scenario = load_scenario(args.scenario)
    except ConfigInvalid as exc:
        print(f"{len(exc.errors)} scenario error(s):", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 2
    simulation = Simulation(scenario, args.seed)
    written = export(simulation, args.out, args.scenario.read_text(encoding="utf-8"))
    summary = f"{scenario.name}: {simulation.duration_s:g} s, seed {simulation.seed}"
    print(f"{summary}: wrote {len(written)} files to {args.out}")
    return 0


@hookimpl
def register_commands():
    return [
        CommandSpec("simulate", "write a scenario's recording and exact truth to a folder", configure, run)
    ]
