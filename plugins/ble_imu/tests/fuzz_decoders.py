"""Long fuzz of the BLE protocol decoders with atheris (coverage-guided libFuzzer), one process per target.

    .venv/bin/python -m pip install atheris   # once; not a project dependency
    .venv/bin/python -m plugins.ble_imu.tests.fuzz_decoders [--runs N] [TARGET ...]

Each target starts from the valid seeds of plugins/ble_imu/tests/fuzzing.py and runs N inputs (default 1,000,000); the
line per target gives inputs/s and how many inputs were DecodeErrors.  Any other exception is a crash:
libFuzzer prints it, the input is kept under --workdir (default build/fuzz-ble/run-*/), and this script
exits 1.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = "--child"


def _run_child(target: str, runs: int, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["kinefuse_plugins.ble_imu"]):
        from kinefuse_plugins.ble_imu.protocols.common import DecodeError
        from plugins.ble_imu.tests.fuzzing import TARGETS

    decode = TARGETS[target]
    counts = {"calls": 0, "errors": 0}
    started = time.perf_counter()

    def one_input(data: bytes) -> None:
        counts["calls"] += 1
        try:
            decode(data)
        except DecodeError:
            counts["errors"] += 1
        if counts["calls"] == runs:  # libFuzzer exits without running atexit handlers
            rate = runs / (time.perf_counter() - started)
            print(
                f"RESULT {target} inputs={runs} inputs_per_s={rate:.0f} decode_errors={counts['errors']}",
                flush=True,
            )

    atheris.Setup([sys.argv[0], f"-runs={runs}", *libfuzzer_args], one_input)
    atheris.Fuzz()


def _fuzz(target: str, runs: int, workdir: Path) -> tuple[bool, str]:
    from plugins.ble_imu.tests.fuzzing import SEEDS

    corpus = workdir / f"{target}-corpus"
    corpus.mkdir()
    for index, seed in enumerate(SEEDS[target]):
        (corpus / f"seed{index}").write_bytes(seed)
    artifacts = workdir / f"{target}-"
    command = [sys.executable, "-m", "plugins.ble_imu.tests.fuzz_decoders", _CHILD, target, str(runs)]
    command += [f"-artifact_prefix={artifacts}", "-max_len=512", str(corpus)]
    done = subprocess.run(command, capture_output=True, text=True)
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not results:
        return False, f"{target}: FAILED (exit {done.returncode})\n{done.stdout[-4000:]}{done.stderr[-4000:]}"
    return True, results[-1].removeprefix("RESULT ")


def main(argv: list[str]) -> int:
    if argv[:1] == [_CHILD]:
        _run_child(argv[1], int(argv[2]), argv[3:])
        return 0
    from plugins.ble_imu.tests.fuzzing import TARGETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"default all: {', '.join(TARGETS)}")
    parser.add_argument(
        "--workdir", type=Path, default=Path("build/fuzz-ble"), help="corpora and crash inputs"
    )
    args = parser.parse_args(argv)
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {', '.join(TARGETS)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="run-", dir=args.workdir))
    failed = False
    for target in args.targets or TARGETS:
        ok, line = _fuzz(target, args.runs, workdir)
        print(line, flush=True)
        failed |= not ok
    if not failed:
        shutil.rmtree(workdir)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
