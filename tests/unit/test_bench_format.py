import asyncio
import io
import json

import pytest

from kinefuse.bench import ROW_KEYS, BenchError, check_row, make_row, print_table, run_bench, write_json
from kinefuse.interfaces import BenchSpec
from kinefuse.plugin_loader import Registry


def _rows():
    return [
        make_row("clock_map batch", "throughput", "samples/s", 9e7, "higher", peer="pure", peer_value=9e5),
        make_row("end-to-end", "latency p99", "ms", 1.25, "lower"),
        make_row("gpu decode", "throughput", "frames/s", None, "higher", note="no GPU on this machine"),
    ]


def test_make_row_has_every_key():
    row = make_row("c", "m", "s", 1, "lower")
    assert tuple(row) == ROW_KEYS
    assert row == {
        "case": "c",
        "metric": "m",
        "unit": "s",
        "value": 1,
        "better": "lower",
        "peer": None,
        "peer_value": None,
        "note": "",
    }


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"better": "faster"}, "better must be 'lower' or 'higher'"),
        ({"value": None}, "needs a note"),
        ({"value": float("nan")}, "finite number"),
        ({"value": True}, "finite number"),
        ({"value": "1.0"}, "finite number"),
        ({"peer_value": 2.0}, "needs a peer"),
        ({"case": ""}, "must not be empty"),
    ],
)
def test_make_row_rejects_bad_rows(kwargs, message):
    args = {"case": "c", "metric": "m", "unit": "s", "value": 1.0, "better": "lower"} | kwargs
    with pytest.raises(BenchError, match=message):
        make_row(**args)


def test_check_row_names_missing_and_unknown_keys():
    row = make_row("c", "m", "s", 1.0, "lower")
    del row["note"]
    row["colour"] = "red"
    with pytest.raises(BenchError, match=r"missing keys \['note'\], unknown keys \['colour'\]"):
        check_row(row)


def test_print_table_aligns_columns_and_shows_ratio():
    out = io.StringIO()
    print_table("demo", _rows(), out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "bench: demo"
    header, first, second, third = lines[1:]
    columns = ["case", "metric", "value", "unit", "better", "peer", "peer_value", "ratio", "note"]
    assert header.split() == columns
    # each column starts at the same offset on every line
    for word, line in [("throughput", first), ("latency", second), ("throughput", third)]:
        assert line.index(word) == header.index("metric")
    assert "90,000,000" in first and "900,000" in first and "100x" in first
    assert "n/a" in third and third.endswith("no GPU on this machine")
    assert first.index("100x") + len("100x") == header.index("ratio") + len("ratio")  # numbers right-aligned


def test_write_json_round_trips(tmp_path):
    path = tmp_path / "bench-demo.json"
    write_json(path, "demo", _rows())
    document = json.loads(path.read_text())
    assert document == {"bench": "demo", "machine": document["machine"], "rows": _rows()}
    # what the speed was measured on
    assert "cores" in document["machine"] and "Python" in document["machine"]


def _registry(**benches):
    registry = Registry()
    registry.benches.update({name: BenchSpec(name, f"{name} bench", run) for name, run in benches.items()})
    return registry


def test_run_bench_runs_plain_and_async_benches():
    async def slow(options):
        await asyncio.sleep(0)
        return [make_row("async", "n", "", options["n"], "higher")]

    registry = _registry(sync=lambda options: [make_row("sync", "n", "", options["n"], "higher")], slow=slow)
    assert run_bench(registry, "sync", {"n": 3})[0]["value"] == 3
    assert run_bench(registry, "slow", {"n": 4})[0]["case"] == "async"


def test_unknown_bench_lists_the_available_ones():
    with pytest.raises(BenchError, match=r"unknown bench 'nope'; available benches: alpha, beta"):
        run_bench(_registry(beta=list, alpha=list), "nope", {})
    with pytest.raises(BenchError, match="none are registered"):
        run_bench(_registry(), "nope", {})


def test_a_bench_returning_bad_rows_is_named():
    with pytest.raises(BenchError, match=r"bench 'broken': .*better"):
        run_bench(_registry(broken=lambda options: [{k: "x" for k in ROW_KEYS}]), "broken", {})
    with pytest.raises(BenchError, match="expected a list of rows"):
        run_bench(_registry(broken=lambda options: None), "broken", {})
