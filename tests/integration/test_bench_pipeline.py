"""`kinefuse bench pipeline` runs the real pipeline and writes the bench JSON (figures are not judged here)."""

import json
import subprocess
import sys

import pytest

from .daemon_process import REPO

pytestmark = pytest.mark.slow


def test_bench_pipeline_writes_rows_with_the_ratio_to_the_default_load(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "kinefuse", "bench", "pipeline", "--duration", "1.5", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["bench"] == "pipeline"
    rows = {(r["case"], r["metric"]): r for r in report["rows"]}
    flat = rows[("flat out", "committed samples/s")]
    assert flat["peer_value"] == 430 and flat["value"] > 0
    assert rows[("20x default load", "offered samples/s")]["value"] > 0
    assert "ratio" in result.stdout and "x" in result.stdout
