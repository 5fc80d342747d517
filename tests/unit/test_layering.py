"""The layering the import contracts cannot see: the Cython kernels (ext/*.pyx, which grimp does not parse)
import nothing from kinefuse, and the contracts in pyproject.toml hold (the same check `make test` runs
first, here so that a plain pytest run fails too)."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_IMPORT = re.compile(r"^\s*(?:from\s+(\S+)\s+c?import|c?import\s+(\S+))", re.MULTILINE)


def test_the_compiled_kernels_import_nothing_from_kinefuse():
    kernels = sorted((REPO / "ext").glob("*.pyx"))
    assert kernels, "no .pyx files found in ext/"
    for kernel in kernels:
        imported = {a or b for a, b in _IMPORT.findall(kernel.read_text(encoding="utf-8"))}
        assert not {m for m in imported if m.startswith("kinefuse")}, f"{kernel.name} imports {imported}"


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
