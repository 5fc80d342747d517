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


def _public_api() -> set[str]:
    """The modules docs/plugins.md's "The public plugin API" table declares."""
    guide = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = guide.split("## The public plugin API", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    return {name for cell in rows for name in re.findall(r"`(kinefuse[\w.]*)`", cell)}


def _is_public(module: str, public: set[str]) -> bool:
    # the package kinefuse itself is public (hookimpl), not everything below it
    return module in public or any(module.startswith(p + ".") for p in public - {"kinefuse"})


def test_the_feature_plugins_import_only_the_documented_public_api():
    import grimp

    public = _public_api()
    assert {"kinefuse", "kinefuse.interfaces", "kinefuse.types"} <= public
    graph = grimp.build_graph("kinefuse_plugins", "kinefuse", cache_dir=None)
    outside = set()
    for module in graph.find_children("kinefuse_plugins") | graph.find_descendants("kinefuse_plugins"):
        if ".tests" in module:
            continue  # tests drive the real daemon
        for imported in graph.find_modules_directly_imported_by(module):
            of_kinefuse = imported == "kinefuse" or imported.startswith("kinefuse.")
            if of_kinefuse and not _is_public(imported, public):
                outside.add(f"{module} -> {imported}")
    assert not outside, "not in docs/plugins.md's public plugin API: " + ", ".join(sorted(outside))
