"""bench stream's scoring: which input an item waited for, and what it counts apart."""

import numpy as np

from kinefuse.bench.stream_latency import latencies

S = 1_000_000_000


def test_an_items_latency_runs_from_the_last_input_it_needed():
    # a strap every 10 ms arriving 5 ms late; a camera every 33 ms arriving 40 ms late, out of order once
    strap_t = np.arange(0, 8 * S, 10_000_000)
    cam_t = np.arange(0, 8 * S, 33_000_000)
    cam_arrival = cam_t + 40_000_000
    cam_arrival[100], cam_arrival[101] = cam_arrival[101], cam_arrival[100]
    inputs = {"strap": (strap_t.tolist(), (strap_t + 5_000_000).tolist()),
              "cam": (cam_t.tolist(), cam_arrival.tolist())}  # fmt: skip
    item_t = 6 * S
    # the camera's first frame at or after 6 s; the earliest-arriving of those frames is the one that counted
    i = int(np.searchsorted(cam_t, item_t))
    needed = int(cam_arrival[i:].min())
    items = [(item_t, 0, needed + 3_000_000), (item_t, 1, item_t + 200_000_000), (7 * S, 0, 7 * S + 1)]
    found = latencies({"inputs": inputs, "items": items, "skipped": 0})
    np.testing.assert_allclose(found["latency_ms"], [3.0])
    assert found["short"] == 1  # the item at 7 s was read before the camera's frame for it arrived
    np.testing.assert_allclose(found["revision_age_ms"], [200.0])


def test_items_in_the_first_seconds_are_not_scored():
    t = np.arange(0, 3 * S, 10_000_000)
    found = latencies({"inputs": {"strap": (t.tolist(), t.tolist())}, "items": [(S, 0, S + 5)], "skipped": 0})
    assert len(found["latency_ms"]) == 0 and found["short"] == 0
