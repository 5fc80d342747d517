"""Third-party plugins installed for real: the example plugin and two broken ones, pip-installed into a
folder that the subprocesses get as PYTHONPATH, so kinefuse finds them through importlib.metadata."""

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "kinefuse-example-plugin"
PLUGIN_PACKAGES = (
    EXAMPLE,
    REPO / "tests" / "plugin_fixtures" / "broken_import",
    REPO / "tests" / "plugin_fixtures" / "misspelled_hook",
)
# variables that would redirect a daemon's database, socket or config away from what a test passes
_REDIRECTING_ENV = ("KINEFUSE_DB", "KINEFUSE_SOCKET", "KINEFUSE_CONFIG", "NOTIFY_SOCKET")
# offline, and built with the venv's own setuptools: the packages need nothing else
_PIP_OPTIONS = ("--quiet", "--disable-pip-version-check", "--no-index", "--no-deps", "--no-build-isolation")


@dataclasses.dataclass(frozen=True)
class InstalledPlugins:
    root: Path  # a short path of the session's own, for configs, databases and sockets
    env: dict[str, str]

    def run(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        """``python *args`` with the plugins on PYTHONPATH, from the repository root."""
        return subprocess.run(
            [sys.executable, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout_s
        )

    def kinefuse(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        return self.run("-m", "kinefuse", *args, timeout_s=timeout_s)


@pytest.fixture(scope="session")
def installed_plugins(tmp_path_factory) -> InstalledPlugins:
    root = tmp_path_factory.mktemp("ep")
    target = root / "site"
    copies = []
    for package in PLUGIN_PACKAGES:
        # pip builds a local folder in place: build from a copy so the repository gets no build/ or egg-info
        copy = root / "src" / package.name
        shutil.copytree(package, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        copies.append(str(copy))
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", *_PIP_OPTIONS, "--target", str(target), *copies],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if pip.returncode != 0:
        pytest.fail(f"pip install of the test plugins failed:\n{pip.stdout}{pip.stderr}", pytrace=False)
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    return InstalledPlugins(root, env)
