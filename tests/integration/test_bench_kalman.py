"""``kinefuse bench kalman`` runs both sides in one go and reports rates and the ratio's inputs."""

from kinefuse.bench import kalman as bench_kalman


def test_the_bench_measures_ours_and_filterpy(monkeypatch):
    monkeypatch.setattr(bench_kalman, "FRAMES", 200)
    monkeypatch.setattr(bench_kalman, "PEER_FRAMES", 20)
    rows = bench_kalman.run({})
    assert [row["case"] for row in rows] == ["offline (filter + RTS)", "live (filter + 100 ms fixed-lag RTS)"]
    for row in rows:
        assert row["value"] > 0 and row["peer_value"] > 0 and row["peer"].startswith("filterpy")
