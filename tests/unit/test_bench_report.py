import json

import pytest

from kinefuse import bench
from kinefuse.cli import main


def test_report_renders_every_row_and_marks_unmeasured_values(tmp_path, capsys):
    rows = [
        bench.make_row("walk", "knee angle RMSE", "deg", None, "lower", note="not available yet"),
        bench.make_row("x", "speed", "samples/s", 200.0, "higher", peer="twin", peer_value=100.0),
    ]
    path = tmp_path / "b.json"
    bench.write_json(path, "accuracy", rows)
    out = tmp_path / "b.md"
    assert main(["report", str(path), "--out", str(out)]) == 0
    text = out.read_text()
    assert "# Bench: accuracy" in text and "do not edit by hand" in text
    assert f"Measured on: {bench.machine()}." in text
    assert "| walk | knee angle RMSE | n/a | deg | lower | - | - | - | not available yet |" in text
    assert "| 2x |" in text


def test_report_refuses_a_file_that_is_not_a_bench(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"rows": []}))
    assert main(["report", str(path)]) == 2
    assert "expected" in capsys.readouterr().err
    with pytest.raises(bench.BenchError):
        bench.read_json(path)
