"""Calibrations of other tools: the demo's QTM export reads as Pose2Sim converted it; bad files are refused
naming the file, the camera and the attribute; ``kinefuse calibrate import`` writes a Pose2Sim TOML; anipose
files round-trip in their own translation unit, which the commands ask for."""

import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from kinefuse.bench.datasets.paths import shared_dir
from kinefuse.camera_calibration import read_calibration
from kinefuse_plugins.multiview.calibration_formats import read_anipose, read_qca, write_anipose

CALIBRATION = shared_dir() / "data" / "pose2sim_demo" / "calibration"
QCA = CALIBRATION / "Calib.qca.txt"


def test_the_demos_qtm_export_reads_as_pose2sim_converted_it():
    ours, pose2sim = read_qca(QCA), read_calibration(CALIBRATION / "Calib_qualisys.toml")
    assert [c.name for c in ours] == ["cam01", "cam02", "cam03", "cam04"]
    for a, b in zip(ours, pose2sim, strict=True):
        assert a.size == b.size == (1088.0, 1920.0)
        for field in ("matrix", "distortions", "rotation", "translation"):
            np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=0, atol=1e-12)


def _broken(tmp_path, old, new):
    path = tmp_path / "broken.qca.txt"
    text = QCA.read_text(encoding="ascii")
    assert old in text
    path.write_text(text.replace(old, new), encoding="ascii")
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('focalLengthU="107599.671875"', "", r"camera 'cam01': <intrinsic> has no 'focalLengthU' attribute"),
        ('x="1460.2323709212087"', 'x="left"', r"camera 'cam01': <transform> x='left' is not a number"),
        (
            'serial="cam01" viewrotation="0"',
            'serial="cam01" viewrotation="90"',
            r"viewrotation 90 is not supported",
        ),
        ("cameras>", "rigs>", "no <cameras><camera> elements"),
        ("</calibration>", "", "not a QTM calibration \\(XML\\)"),
    ],
)
def test_a_broken_file_is_refused_naming_what_is_wrong(tmp_path, old, new, message):
    path = _broken(tmp_path, old, new)
    with pytest.raises(ValueError, match=f"{re.escape(str(path))}: .*{message}"):
        read_qca(path)


def _kinefuse(*args):
    return subprocess.run([sys.executable, "-m", "kinefuse", "calibrate", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_the_command_imports_and_writes_a_pose2sim_toml(tmp_path):
    out = tmp_path / "calib.toml"
    result = _kinefuse("import", str(QCA), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (
        f"{QCA}: 4 cameras" in result.stdout
        and "cam01: 1088x1920 px, focal 1681.2/1681.1 px" in result.stdout
    )
    assert read_calibration(out) == read_qca(QCA)
    unknown = tmp_path / "calib.yaml"
    unknown.write_text("cameras: []\n")
    result = _kinefuse("import", str(unknown))
    assert result.returncode == 1 and f"{unknown}: unknown calibration format" in result.stderr


def test_anipose_files_round_trip_in_their_own_unit(tmp_path):
    cameras = read_qca(QCA)
    path = tmp_path / "anipose.toml"
    write_anipose(path, cameras, "mm")
    doc = tomllib.loads(path.read_text())
    assert list(doc) == ["cam_0", "cam_1", "cam_2", "cam_3", "metadata"]
    assert doc["cam_0"]["name"] == "cam01" and len(doc["cam_0"]["distortions"]) == 5
    np.testing.assert_allclose(doc["cam_0"]["translation"], cameras[0].translation * 1000.0, rtol=1e-15)
    back = read_anipose(path, "mm")
    for a, b in zip(back, cameras, strict=True):
        np.testing.assert_allclose(a.translation, b.translation, rtol=1e-15)
        np.testing.assert_array_equal(a.distortions[:4], b.distortions)
        assert a.distortions[4] == 0.0 and a.name == b.name


def test_the_command_exports_for_anipose_and_asks_its_unit(tmp_path):
    out = tmp_path / "anipose.toml"
    result = _kinefuse("export", str(QCA), "--to", "anipose", "--out", str(out))
    assert result.returncode == 1 and "give --unit" in result.stderr
    result = _kinefuse("export", str(QCA), "--to", "anipose", "--unit", "mm", "--out", str(out))
    assert result.returncode == 0, result.stderr
    result = _kinefuse("import", str(out))  # read as Pose2Sim (metres), the cameras are 1000 times too far
    assert "at (1460.232, " in result.stdout
    result = _kinefuse("import", str(out), "--format", "anipose")
    assert result.returncode == 1 and "does not say its translation unit" in result.stderr
    result = _kinefuse("import", str(out), "--format", "anipose", "--unit", "mm")
    assert result.returncode == 0 and "cam01: 1088x1920 px, focal 1681.2/1681.1 px" in result.stdout
    assert "at (1.460, " in result.stdout
