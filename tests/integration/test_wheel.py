"""`python -m build` makes a wheel holding both import packages, the compiled kernel and its stub."""

import subprocess
import sys
import zipfile

import pytest

from .daemon_process import REPO

pytestmark = pytest.mark.slow


def test_wheel_contains_packages_kernels_stubs_and_entry_points(tmp_path):
    # --no-isolation: build with the venv's setuptools/Cython/numpy instead of downloading them again
    result = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = tmp_path.glob("kinefuse-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.startswith("kinefuse/_ext/clock_map.") and n.endswith(".so") for n in names)
    assert "kinefuse/_ext/clock_map.pyi" in names
    assert "kinefuse/_pure/clock_map.py" in names and "kinefuse/hookspecs.py" in names
    assert "kinefuse_plugins/__init__.py" in names
    for feature in ("camera/plugin.py", "camera/models.toml", "ble_imu/protocols/witmotion.py",
                    "ble_imu/emulation/radio.py", "mediapipe_pose/plugin.py"):  # fmt: skip
        assert f"kinefuse_plugins/{feature}" in names
    assert not any("/tests/" in n for n in names), "a plugin's tests are not shipped"
    assert not any(n.startswith(("daemon/", "ext/", "plugins/", "tests/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[pytest11]" in text and "kinefuse = kinefuse.testing" in text
    assert "kinefuse = kinefuse.cli:main" in text
    assert "[kinefuse.plugins]" in text and "camera = kinefuse_plugins.camera.plugin" in text
