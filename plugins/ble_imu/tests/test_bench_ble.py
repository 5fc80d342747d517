"""``kinefuse bench ble`` measures through the real source with the emulated radio in a process of its own:
every sample received is traced back through every hop to its strap's send, the stamps of each sample come
in causal order (one clock for both processes), the daemon's share is reported apart from the emulator's,
and the busy loops of the loaded case are stopped when it ends. No speed is asserted."""

import asyncio
import struct

import numpy as np

from kinefuse_plugins.ble_imu import bench_ble
from kinefuse_plugins.ble_imu.bench_ble import HOPS, STAMPS, STRAPS, run


def test_every_sample_is_traced_through_every_hop_in_causal_order():
    with bench_ble._Radio("process") as radio:
        contexts, taps, _ = asyncio.run(bench_ble._stream(radio, 100.0, 1.5))
        report = radio.report()
    stamps = bench_ble.trace(contexts, taps, report)
    received = sum(c.samples for c in contexts)
    assert received > 0 and len(stamps["channel"]) == received
    for stamp in STAMPS:  # a sample whose send, write, read or decode was not found would be -1
        assert (stamps[stamp] >= 0).all(), stamp
    # a stamp matched to the wrong notification (another strap's, or one sent later) would break the order
    in_order = np.diff(np.stack([stamps[stamp] for stamp in STAMPS]), axis=0) >= 0
    assert in_order.all(), {HOPS[i][2]: int((~in_order[i]).sum()) for i in range(len(HOPS))}


def test_the_bench_reports_the_daemon_share_apart_from_the_emulator_and_every_hop():
    rows = run({"duration_s": 2.0, "rate_hz": 100.0, "busy_loops": (0,)})
    by_metric = {row["metric"]: row for row in rows}
    assert {row["case"] for row in rows} == {f"{STRAPS} straps"}
    decoded = by_metric["notifications decoded"]
    assert 0 < decoded["value"] <= 1.05 * STRAPS * 100
    assert "dropped or undecodable: 0" in decoded["note"]
    received = round(decoded["value"] * 2.0)
    assert f"traced through every hop: {received} of {received}" in decoded["note"]
    metrics = [
        *(f"latency p{p}, send to channel" for p in (50, 90, 99)),
        *(
            f"{label}, p{p}"
            for _, _, label in (bench_ble.EMULATOR_SHARE, bench_ble.DAEMON_SHARE)
            for p in (50, 99)
        ),
        *(f"hop {n}, {label}, p{p}" for n, (_, _, label) in enumerate(HOPS, 1) for p in (50, 99)),
    ]
    for metric in metrics:
        assert by_metric[metric]["value"] is not None and by_metric[metric]["value"] >= 0, metric
    assert (
        by_metric["latency p50, send to channel"]["value"]
        <= by_metric["latency p99, send to channel"]["value"]
    )


def test_the_busy_loops_of_the_loaded_case_spin_and_are_stopped():
    with bench_ble.busy_loops(2) as loops:
        assert len(loops) == 2 and all(loop.poll() is None for loop in loops)
    assert all(loop.poll() is not None for loop in loops)


def _acl(handle: int, boundary: int, payload: bytes) -> bytes:
    return bytes([0x02]) + struct.pack("<HH", handle | boundary << 12, len(payload)) + payload


def test_a_notification_is_stamped_when_its_last_fragment_is_written():
    """The adapter may split an ATT notification over ACL fragments (27-byte LE data length): the write that
    completes it is the one stamped, keyed by connection handle and the packet's first sample ticks."""
    value = (
        bytes([1, 0]) + struct.pack("<HI", 7, 0xDEADBEEF) + bytes(16)
    )  # version, flags, sequence, ticks...
    pdu = struct.pack("<HH", 3 + len(value), 0x0004) + bytes([0x1B]) + struct.pack("<H", 0x10) + value
    other = struct.pack("<HH", 5, 0x0004) + bytes([0x0A, 1, 2, 3, 4])  # an ATT read request: no notification
    writes = [
        (100, _acl(0x41, 0b10, pdu[:27])),
        (150, _acl(0x42, 0b10, other)),
        (200, _acl(0x41, 0b01, pdu[27:])),
        (300, bytes([0x04, 0x13, 0x05, 0x01, 0x41, 0x00, 0x01, 0x00])),  # an HCI event
    ]
    assert bench_ble.notifications_written(writes) == {(0x41, 0xDEADBEEF): 200}
    assert bench_ble.notifications_written(writes[:2]) == {}  # never completed: not stamped
