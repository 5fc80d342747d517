"""kinefuse must refuse to import without its compiled kernels, and say how to fix it."""

import os
import subprocess
import sys

# Makes kinefuse._ext.clock_map unimportable, as if it had never been built, then runs the given code.
_BLOCK_EXTENSION = """
import sys

class _NoExtension:
    def find_spec(self, name, path=None, target=None):
        if name == "kinefuse._ext.clock_map":
            raise ImportError("No module named 'kinefuse._ext.clock_map' (blocked by the test)")
        return None

sys.meta_path.insert(0, _NoExtension())
"""


def _python(code: str, pure: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KINEFUSE_PUREPYTHON"}
    if pure:
        env["KINEFUSE_PUREPYTHON"] = "1"
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_EXTENSION + code], env=env, capture_output=True, text=True, timeout=60
    )


def test_import_fails_loudly_without_the_extension():
    result = _python("import kinefuse", pure=False)
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "make build" in result.stderr
    assert "KINEFUSE_PUREPYTHON" in result.stderr


def test_pure_python_twins_load_when_asked():
    code = "import kinefuse._native as n; print(n.IMPLEMENTATION, n.clock_map.__name__)"
    result = _python(code, pure=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pure-python", "kinefuse._pure.clock_map"]


def test_the_fusion_wrappers_run_on_the_twins():
    code = """
import numpy as np
from kinefuse.fusion import keypoint_smoothing, orientation_filter
n = 200
gyr, acc = np.zeros((n, 3)), np.tile([0.0, 0.0, 9.81], (n, 1))
q = orientation_filter.estimate_orientation(gyr, acc, rate_hz=100.0)
k = np.concatenate([np.full((n, 2, 2), 100.0), np.ones((n, 2, 1))], axis=-1)
s = keypoint_smoothing.smooth_offline(np.arange(n) / 30.0, k)
print(type(orientation_filter.OrientationFilter(100.0)).__module__, q.shape, s.mean.shape)
"""
    result = _python(code, pure=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["kinefuse._pure.ahrs", "(200,", "4)", "(200,", "2,", "2)"]


def test_the_ble_protocol_codecs_import_without_the_build():
    # a firmware author's script or a fuzzer decodes packets without building kinefuse's kernels
    code = """
from kinefuse_plugins.ble_imu.protocols import open_profile, polar_pmd, witmotion
print(sorted(name for name in sys.modules if name == "kinefuse" or name.startswith("kinefuse.")))
"""
    result = _python(code, pure=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]"]
