"""``kinefuse models``: models live in the data directory, arrive only by an explicit, hash-checked add."""

import os
import subprocess
import sys

import pytest

from kinefuse.bench.datasets import paths
from kinefuse_plugins.camera import cpu_features, pose_models

MOVENET = paths.shared_dir() / "models" / "movenet_singlepose_lightning_int8.onnx"
needs_shared = pytest.mark.skipif(not MOVENET.is_file(), reason=f"{MOVENET} is absent")


def kinefuse(tmp_path, *args, env=None):
    env = {**os.environ, pose_models.MODELS_ENV: str(tmp_path / "models"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "kinefuse", "models", *args], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@needs_shared
def test_add_checks_the_hash_and_check_times_each_stage(tmp_path):
    listed = kinefuse(tmp_path, "list")
    assert listed.returncode == 0 and "not installed" in listed.stdout
    wrong = kinefuse(tmp_path, "add", str(MOVENET), "--sha256", "00" * 32)
    assert wrong.returncode == 1 and "sha256 is" in wrong.stderr and "not installed" in wrong.stderr
    assert not any((tmp_path / "models").iterdir())  # nothing left behind
    right = pose_models.spec("movenet_singlepose_lightning_int8").sha256
    added = kinefuse(tmp_path, "add", str(MOVENET), "--sha256", right)
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "models" / MOVENET.name).is_file()
    checked = kinefuse(tmp_path, "check", "movenet_singlepose_lightning_int8")
    assert checked.returncode == 0, checked.stderr
    for stage in ("preprocess", "inference", "postprocess"):
        assert f"{stage} " in checked.stdout and " ms" in checked.stdout
    # the CPU's int8 features and the path chosen for them (cpu_features), then a forced path and a wrong one
    features = cpu_features.detect()
    assert f"cpu: {features.describe()}\n" in checked.stdout
    assert f"int8 path: {cpu_features.choose(features, 'auto')[0]}" in checked.stdout
    forced = kinefuse(tmp_path, "check", "movenet_singlepose_lightning_int8", env={cpu_features.ENV: "float"})
    assert "int8 path: float (session.disable_quant_qdq=1): KINEFUSE_INT8_PATH=float" in forced.stdout
    wrong = kinefuse(tmp_path, "check", "movenet_singlepose_lightning_int8", env={cpu_features.ENV: "fast"})
    assert wrong.returncode == 1 and "KINEFUSE_INT8_PATH='fast': expected one of" in wrong.stderr


def test_missing_files_and_unknown_models_are_clear_errors(tmp_path):
    missing = kinefuse(tmp_path, "add", str(tmp_path / "nope.onnx"), "--sha256", "00" * 32)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    unknown = kinefuse(tmp_path, "check", "posenet")
    assert unknown.returncode == 1 and "unknown model 'posenet'" in unknown.stderr
    absent = kinefuse(tmp_path, "check", "rtmdet_nano_person")
    assert absent.returncode == 1 and "is not installed" in absent.stderr and "--sha256" in absent.stderr
