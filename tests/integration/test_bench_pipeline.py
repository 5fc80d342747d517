"""`kinefuse bench pipeline` runs the real pipeline and writes the bench JSON (figures are not judged here)."""

import asyncio
import json
import math
import os
import re
import sqlite3
import subprocess
import sys

import pytest

from kinefuse.bench import pipeline
from kinefuse.bench.pipeline_sqlite import SAMPLE_TABLES, bare_write_rate
from kinefuse.storage.writer import COLUMNS

from .daemon_process import REPO

pytestmark = pytest.mark.slow

ROWS = {
    ("live stream", "arrival to subscriber p50"),
    ("live stream", "arrival to subscriber p99"),
    ("live stream", "sample records received"),
    ("flat out", "committed samples/s"),
    ("20x default load", "committed samples/s"),
    ("20x default load", "offered samples/s"),
    ("20x default load", "samples dropped"),
    ("20x default load", "arrival to commit p50"),
    ("20x default load", "arrival to commit p99"),
}


def run_bench(tmp_path) -> tuple[dict, str]:
    out = tmp_path / "bench.json"
    # a user's daemon database and socket: the bench's agents must keep to their own
    env = {
        **os.environ,
        "KINEFUSE_DB": str(tmp_path / "user.db"),
        "KINEFUSE_SOCKET": str(tmp_path / "user.sock"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "kinefuse", "bench", "pipeline", "--duration", "1.5", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "user.db").exists()
    report = json.loads(out.read_text())
    assert report["bench"] == "pipeline"
    return {(r["case"], r["metric"]): r for r in report["rows"]}, result.stdout


def test_bench_pipeline_measures_every_row_and_its_peer_in_the_same_run(tmp_path):
    rows, stdout = run_bench(tmp_path)
    assert set(rows) == ROWS
    assert all(isinstance(r["value"], int | float) and math.isfinite(r["value"]) for r in rows.values())
    # the one peer is bare sqlite3 writing the rows of this run; the default load is no peer any more
    with_peer = [r for r in rows.values() if r["peer"] is not None]
    assert [(r["case"], r["metric"]) for r in with_peer] == [("flat out", "committed samples/s")]
    assert (
        with_peer[0]["peer"] == pipeline.PEER and with_peer[0]["peer_value"] > 0 and with_peer[0]["value"] > 0
    )
    flat_line = next(line for line in stdout.splitlines() if line.startswith("flat out"))
    assert re.search(r"\s[\d.,]+x\s", flat_line)  # the table prints its ratio to the peer
    # the live latencies come from records a subscriber received, stamped after they arrived
    received = rows[("live stream", "sample records received")]["value"]
    p50 = rows[("live stream", "arrival to subscriber p50")]["value"]
    p99 = rows[("live stream", "arrival to subscriber p99")]["value"]
    assert received > 0 and 0 < p50 <= p99
    assert rows[("20x default load", "offered samples/s")]["value"] > 0


def test_the_bare_writer_writes_exactly_the_rows_the_daemon_committed(tmp_path):
    asyncio.run(pipeline._run_case(tmp_path, pipeline.FLAT_OUT, 0.5))
    source, target = tmp_path / "bench.db", tmp_path / "bare.db"
    bare = bare_write_rate(source, target, transaction_rows=1000)

    def rows(path, table):
        with sqlite3.connect(path) as db:
            return db.execute(f"SELECT {', '.join(COLUMNS[table])} FROM {table} ORDER BY rowid").fetchall()

    total = 0
    for table in SAMPLE_TABLES:
        committed = rows(source, table)
        assert committed and rows(target, table) == committed
        total += len(committed)
    assert bare["rows"] == total and bare["transactions"] == math.ceil(total / 1000) and bare["per_s"] > 0
    assert bare["pragmas"] == {"journal_mode": "wal", "synchronous": 1, "foreign_keys": 1}  # the writer's


def test_the_throughput_cases_give_back_every_core_they_pinned():
    before = os.sched_getaffinity(0)
    with pipeline._pinned_to_one_core():
        assert len(os.sched_getaffinity(0)) == 1
    assert os.sched_getaffinity(0) == before
