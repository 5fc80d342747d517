"""``kinefuse bench ble`` measures through the real source: every notification offered is decoded, and each
latency is a real send-to-channel interval (positive, far below a second)."""

from kinefuse_plugins.ble_imu.bench_ble import STRAPS, run


def test_bench_ble_decodes_everything_offered_and_reports_latency_percentiles():
    rows = {row["metric"]: row for row in run({"duration_s": 2.0, "rate_hz": 100.0})}
    decoded = rows["notifications decoded"]["value"]
    assert 0.95 * STRAPS * 100 <= decoded <= 1.05 * STRAPS * 100
    p50, p99 = rows["latency p50, send to channel"]["value"], rows["latency p99, send to channel"]["value"]
    assert 0 < p50 <= p99 < 1000
    assert "dropped or undecodable: 0" in rows["notifications decoded"]["note"]
