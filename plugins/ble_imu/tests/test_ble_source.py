"""The ``ble_imu`` source in the real pipeline, through real bleak and kinefuse's bumble backend, against
emulated WitMotion, Polar and open-profile straps on a virtual radio: what reached storage, what was counted,
and that nothing else stopped."""

import itertools
import json
import threading

import numpy as np
import pytest
from bleak.exc import BleakDBusError, BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import core, hci
from bumble.att import ATT_Error, ErrorCode
from bumble.gatt import Characteristic, CharacteristicValue
from bumble.transport.common import TransportLostError

from kinefuse_plugins.ble_imu import assignments
from kinefuse_plugins.ble_imu.emulation.peripherals import (
    EmulatedOpenStrap,
    EmulatedPolar,
    EmulatedWitMotion,
    motion,
)
from kinefuse_plugins.ble_imu.emulation.radio import VirtualRadio
from kinefuse_plugins.ble_imu.protocols import open_profile
from kinefuse_plugins.ble_imu.protocols.common import STANDARD_GRAVITY, DecodeError, hexdump
from kinefuse_plugins.ble_imu.source import DecoderBug, radio_errors

FAST_RETRY = {
    "scan_timeout_s": 2.0,
    "connect_timeout_s": 2.0,
    "reconnect_initial_s": 0.2,
    "reconnect_max_s": 1.0,
}
SYNTHETIC = {"id": "synth", "type": "synthetic", "realtime": True}
GAPS = [{"id": "gaps", "type": "sequence_gaps"}]


def strap_source(radio, strap, **options):
    return {"id": strap.name, "type": "ble_imu", "protocol": options.pop("protocol"), "address": strap.address,
            "backend": "bumble", "bumble_transport": radio.transport, **FAST_RETRY, **options}  # fmt: skip


def later(seconds, radio, action, *args):
    timer = threading.Timer(seconds, lambda: radio.call(action, *args))
    timer.start()
    return timer


def device_meta(result, device_id):
    row = next(result.db["devices"].rows_where("device_id = ?", [device_id]))
    return json.loads(row["meta"])


def outage_of(result, device_id) -> tuple[int, int, float]:
    """Samples before and after the longest silence in arrivals, and that silence in seconds."""
    host_s = np.sort(result.imu_samples(device_id)["host_ns"]) / 1e9
    longest = int(np.argmax(np.diff(host_s)))
    return longest + 1, len(host_s) - longest - 1, float(np.diff(host_s)[longest])


def gaps_of(result, device_id):
    return [e for e in result.events("sample_gap") if e["device_id"] == device_id]


def assert_streamed_the_emulated_motion(result, straps, rates) -> None:
    """Each strap streamed seconds of its motion into storage with nothing dropped, malformed or missing, and
    its battery and RSSI recorded; the open strap's samples are exactly the motion it sent."""
    for strap, rate in zip(straps, rates, strict=True):
        stats = result.source_stats(strap.name)
        samples = result.imu_samples(strap.name)
        assert stats["decode_errors"] == 0 and stats["dropped"] == 0, stats
        assert len(samples["seq"]) > 2 * rate, (strap.name, len(samples["seq"]))  # seconds of streaming
        np.testing.assert_allclose(np.linalg.norm(samples["acc"], axis=1), STANDARD_GRAVITY, rtol=0.01)
        assert np.ptp(samples["gyr"][:, 0]) > 5.0  # the 1 Hz swing: about +-3.3 rad/s about x
        # mapped times never run backwards; the first notification's samples may share its arrival time
        # until the clock fit has seen a second one (ClockMapper clamps to arrival)
        assert np.all(np.diff(samples["time_ns"]) >= 0) and np.all(np.diff(samples["time_ns"][rate:]) > 0)
        assert not gaps_of(result, strap.name)
        meta = device_meta(result, strap.name)
        assert meta["battery_percent"] == 87 and meta["rssi_dbm"] < 0 and meta["address"] == strap.address
    # the samples are the motion the straps sent: an open strap's clock is the host's, in microseconds
    for strap in (strap for strap in straps if isinstance(strap, EmulatedOpenStrap)):
        samples = result.imu_samples(strap.name)
        acc_g, gyr_dps = motion(samples["device_time"] / EmulatedOpenStrap.CLOCK_HZ)
        np.testing.assert_allclose(samples["acc"] / STANDARD_GRAVITY, acc_g, atol=1e-3)
        np.testing.assert_allclose(np.rad2deg(samples["gyr"]), gyr_dps, atol=0.1)


def test_three_protocols_stream_the_emulated_motion_into_storage(kinefuse_pipeline):
    straps = [EmulatedWitMotion("WT901-A", "F1:00:00:00:00:01"), EmulatedPolar("Polar Sense B", "F1:00:00:00:00:02"),
              EmulatedOpenStrap("KF-C", "F1:00:00:00:00:03", per_notification=4)]  # fmt: skip
    with VirtualRadio(straps) as radio:
        sources = [strap_source(radio, straps[0], protocol="witmotion", rate_hz=100.0),
                   strap_source(radio, straps[1], protocol="polar", rate_hz=52.0),
                   strap_source(radio, straps[2], protocol="open", rate_hz=200.0)]  # fmt: skip
        result = kinefuse_pipeline(sources=sources, processors=GAPS, duration_s=5.0)
    assert_streamed_the_emulated_motion(result, straps, rates=(100, 52, 200))


def test_the_strap_is_labelled_from_the_daemons_database_and_an_unreadable_one_only_loses_the_label(
    kinefuse_pipeline, tmp_path, caplog
):
    labelled = EmulatedOpenStrap("KF-N", "F1:00:00:00:00:0C")
    unlabelled = EmulatedOpenStrap("KF-O", "F1:00:00:00:00:0D")
    daemon_db, damaged = tmp_path / "daemon.db", tmp_path / "damaged.db"
    assignments.assign(
        daemon_db, "f1-00-00-00-00-0c", "Ana", "left_shank"
    )  # as `kinefuse devices assign` does
    damaged.write_bytes(b"not a database" * 100)
    with VirtualRadio([labelled, unlabelled]) as radio:
        sources = [strap_source(radio, labelled, protocol="open"),
                   strap_source(radio, unlabelled, protocol="open", assignments_db=str(damaged))]  # fmt: skip
        storage = {"storage": {"path": str(daemon_db)}}  # the daemon writes the file the assignment is in
        result = kinefuse_pipeline(sources=sources, duration_s=3.0, config_overrides=storage)
    meta = device_meta(result, "KF-N")
    assert meta["athlete"] == "Ana" and meta["segment"] == "left_shank", meta
    assert "athlete" not in device_meta(result, "KF-O")
    assert len(result.imu_samples("KF-O")["seq"]) > 100  # streamed all the same
    said = [
        r.getMessage() for r in caplog.records if "KF-O" in r.getMessage() and "assignment" in r.getMessage()
    ]
    assert said and str(damaged) in said[0] and "unlabelled" in said[0], said


def test_a_strap_that_drops_the_link_is_reconnected_and_the_gap_counted(kinefuse_pipeline):
    strap = EmulatedOpenStrap("KF-D", "F1:00:00:00:00:04")
    with VirtualRadio([strap]) as radio:
        timers = [later(3.0, radio, strap.power_off), later(4.0, radio, strap.power_on)]
        result = kinefuse_pipeline(sources=[strap_source(radio, strap, protocol="open", rate_hz=100.0), SYNTHETIC],
                                   processors=GAPS, duration_s=7.0)  # fmt: skip
        for timer in timers:
            timer.cancel()
    before, after, _ = outage_of(result, "KF-D")
    assert before > 50 and after > 50  # samples before the drop and after the reconnection
    gaps = gaps_of(result, "KF-D")
    assert len(gaps) == 1 and 70 <= gaps[0]["detail"]["missing"] <= 200, gaps  # about 1 s at 100 Hz
    assert result.source_stats("synth")["received"] > 0  # the other source ran on


def test_malformed_packets_are_counted_naming_the_strap_and_the_rest_kept(kinefuse_pipeline, caplog):
    strap = EmulatedWitMotion("WT901-E", "F1:00:00:00:00:05", corrupt_every=10)
    with VirtualRadio([strap]) as radio:
        result = kinefuse_pipeline(sources=[strap_source(radio, strap, protocol="witmotion", rate_hz=50.0)],
                                   duration_s=4.0)  # fmt: skip
    assert_one_in_ten_counted_and_named(result, caplog, strap)


def assert_one_in_ten_counted_and_named(result, caplog, strap) -> None:
    """A WitMotion strap corrupting every tenth notification: each counted, logged with the strap, its
    address and the packet in hex, and the other nine kept."""
    stats = result.source_stats(strap.name)
    kept = len(result.imu_samples(strap.name)["seq"])
    assert stats["decode_errors"] > 5 and kept > 8 * stats["decode_errors"]
    assert abs(kept / stats["decode_errors"] - 9) < 1.5  # one in ten notifications was corrupt
    logged = [r.getMessage() for r in caplog.records if "decode error" in r.getMessage()]
    named = f"{strap.name} ({strap.address})"
    assert any(named in m and "packet 55 61" in m and "de ad" in m for m in logged), logged[:3]


def test_bursty_notifications_still_give_evenly_spaced_sample_times(kinefuse_pipeline):
    strap = EmulatedOpenStrap("KF-F", "F1:00:00:00:00:06", per_notification=10)  # 20 bursts/s of 10 samples
    with VirtualRadio([strap]) as radio:
        result = kinefuse_pipeline(sources=[strap_source(radio, strap, protocol="open", rate_hz=200.0)],
                                   duration_s=5.0)  # fmt: skip
    assert_bursts_get_evenly_spaced_times(result, "KF-F")


def assert_bursts_get_evenly_spaced_times(result, device_id) -> None:
    """A 200 Hz strap sending ten samples per notification."""
    samples = result.imu_samples(device_id)
    spacing_ms = np.diff(np.asarray(samples["time_ns"][-400:])) / 1e6  # after the clock fit has settled
    host_spacing_ms = np.diff(np.asarray(samples["host_ns"][-400:])) / 1e6
    assert np.median(host_spacing_ms) == 0  # arrivals come ten at a time...
    # ...the mapped times are 5 ms apart: the median exactly (fitted skew within 0.1 % after 5 s), each one
    # within half a period; the offset steps as the arrival envelope settles (measured: 0.3-0.7 ms at most)
    assert abs(np.median(spacing_ms) - 5.0) < 0.005 and np.all(np.abs(spacing_ms - 5.0) < 2.5)


def test_a_strap_that_never_answers_is_retried_while_the_others_stream(kinefuse_pipeline, caplog):
    silent = EmulatedOpenStrap("KF-G", "F1:00:00:00:00:07", accepts_connections=False)
    working = EmulatedPolar("Polar Sense H", "F1:00:00:00:00:08")
    with VirtualRadio([silent, working]) as radio:
        sources = [
            strap_source(radio, silent, protocol="open"),
            strap_source(radio, working, protocol="polar"),
        ]
        result = kinefuse_pipeline(sources=sources, duration_s=6.0)
    assert len(result.imu_samples("Polar Sense H")["seq"]) > 100
    assert working.started == set()  # the stopping daemon stopped both measurements
    assert_retried_without_an_answer(result, caplog, "KF-G")


def assert_retried_without_an_answer(result, caplog, device_id) -> None:
    stats = result.source_stats(device_id)
    assert stats["received"] == 0 and stats["state"] == "stopped"  # still retrying at the stop
    assert (
        stats["restarts"] == 0
    )  # retried by the source itself: the supervisor's restart budget is untouched
    said = [r.getMessage() for r in caplog.records if device_id in r.getMessage()]
    assert any("no answer within connect_timeout_s" in m and "retrying" in m for m in said), said


def test_a_strap_that_refuses_an_unpaired_central_is_retried_with_the_reason(kinefuse_pipeline, caplog):
    # a strap wanting a bonded link answers the first GATT read with Insufficient Authentication, as one does
    # when the pairing it asks for is refused or was never made
    locked = EmulatedOpenStrap("KF-L", "F1:00:00:00:00:0A")
    locked.characteristic(open_profile.INFO_UUID).permissions = (
        Characteristic.READABLE | Characteristic.READ_REQUIRES_AUTHENTICATION
    )
    working = EmulatedOpenStrap("KF-M", "F1:00:00:00:00:0B")
    with VirtualRadio([locked, working]) as radio:
        sources = [
            strap_source(radio, locked, protocol="open"),
            strap_source(radio, working, protocol="open"),
        ]
        result = kinefuse_pipeline(sources=sources, duration_s=4.0)
    refusals = [r.getMessage() for r in caplog.records if "KF-L" in r.getMessage()]
    assert len(refusals) >= 2 and all("retrying" in m for m in refusals), refusals  # logged, and tried again
    assert "F1:00:00:00:00:0A" in refusals[0] and "Insufficient Authentication" in refusals[0], refusals[0]
    assert "bluetoothctl pair" in refusals[0]  # and what to do about it
    stats = result.source_stats("KF-L")
    assert stats["received"] == 0 and stats["state"] == "stopped" and stats["restarts"] == 0, stats
    assert len(result.imu_samples("KF-M")["seq"]) > 100


def failing_first_set_up(strap: EmulatedOpenStrap) -> EmulatedOpenStrap:
    """The strap answers its first info read with an ATT error (as a busy strap may), so the central drops
    the link it has just made; later reads work."""
    info = strap.characteristic(open_profile.INFO_UUID)
    answer, refused = info.value.read, []

    def read_once_refused(connection):
        if not refused:
            refused.append(connection)
            raise ATT_Error(ErrorCode.UNLIKELY_ERROR)
        return answer(connection)

    info.value = CharacteristicValue(read=read_once_refused)
    return strap


def assert_found_again_after_a_failed_set_up(result, caplog, strap, rate) -> None:
    said = [
        r.getMessage()
        for r in caplog.records
        if strap.name in r.getMessage() and "retrying" in r.getMessage()
    ]
    assert said and "Unlikely Error" in said[0], said  # the first set-up failed, and said why
    assert len(result.imu_samples(strap.name)["seq"]) > 2 * rate  # then it was found again and streamed


def test_a_strap_whose_set_up_fails_is_found_again_and_streams(kinefuse_pipeline, caplog):
    strap = failing_first_set_up(EmulatedOpenStrap("KF-P", "F1:00:00:00:00:0E"))
    with VirtualRadio([strap]) as radio:
        result = kinefuse_pipeline(sources=[strap_source(radio, strap, protocol="open", rate_hz=100.0)],
                                   duration_s=5.0)  # fmt: skip
    assert_found_again_after_a_failed_set_up(result, caplog, strap, 100)


def test_the_adapter_disappearing_and_returning_resumes_the_stream(kinefuse_pipeline, caplog):
    strap = EmulatedOpenStrap("KF-I", "F1:00:00:00:00:09")
    with VirtualRadio([strap]) as radio:
        timers = [threading.Timer(3.0, radio.stop_adapter), threading.Timer(5.0, radio.start_adapter)]
        for timer in timers:
            timer.start()
        result = kinefuse_pipeline(sources=[strap_source(radio, strap, protocol="open", rate_hz=100.0), SYNTHETIC],
                                   processors=GAPS, duration_s=9.0)  # fmt: skip
        for timer in timers:
            timer.cancel()
    before, after, silence_s = outage_of(result, "KF-I")
    assert silence_s > 1.5 and before > 30 and after > 100  # away for 2 s; samples before and after
    assert gaps_of(result, "KF-I")  # the outage shows as a gap
    assert any("transport" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)
    assert result.source_stats("KF-I")["restarts"] == 0  # the source retried by itself, without crashing
    assert result.source_stats("synth")["received"] > 0


def test_a_decoder_bug_fails_the_source_at_once_naming_the_strap_and_the_packet(
    kinefuse_pipeline, caplog, monkeypatch
):
    strap = EmulatedOpenStrap("KF-Q", "F1:00:00:00:00:0F")
    real_decode, calls, bad_packets = open_profile.decode, itertools.count(1), []

    def decode_with_a_bug(packet, *args, **kwargs):  # every 30th packet hits a bug in our own code
        if next(calls) % 30 == 0:
            bad_packets.append(bytes(packet))
            raise KeyError("calibration")
        return real_decode(packet, *args, **kwargs)

    monkeypatch.setattr(open_profile, "decode", decode_with_a_bug)
    one_restart = {"supervisor": {"restart_budget": 1, "backoff_initial_s": 0.1, "backoff_max_s": 0.2}}
    with VirtualRadio([strap]) as radio:
        result = kinefuse_pipeline(sources=[strap_source(radio, strap, protocol="open", rate_hz=100.0), SYNTHETIC],
                                   duration_s=6.0, config_overrides=one_restart)  # fmt: skip
    stats = result.source_stats("KF-Q")
    # the bug reached the supervisor: restarted once, then failed when it struck again, with the reason
    assert stats["state"] == "failed" and stats["restarts"] == 1 and len(bad_packets) == 2, stats
    named = f"DecoderBug: strap KF-Q ({strap.address}): KeyError: 'calibration' while decoding packet"
    assert named in stats["reason"] and hexdump(bad_packets[-1]) in stats["reason"], stats["reason"]
    # it ended the stream there and then: nothing piled up, and the strap was stopped instead of streaming
    # the whole run on (about 550 samples in 6 s at 100 Hz)
    assert stats["dropped"] == 0 and strap.sent_samples < 300, (stats, strap.sent_samples)
    logged = [
        r for r in caplog.records if "KF-Q" in r.getMessage() and "not a radio problem" in r.getMessage()
    ]
    assert len(logged) == 2 and all(r.exc_info for r in logged), logged  # with the traceback
    assert hexdump(bad_packets[0]) in logged[0].getMessage()
    assert result.source_stats("synth")["received"] > 0  # the rest of the daemon ran on


@pytest.mark.parametrize(
    "error",
    [
        BleakError("No Bluetooth adapters found."),
        BleakDBusError("org.bluez.Error.InProgress", []),
        BleakGATTProtocolError(ErrorCode.INSUFFICIENT_AUTHENTICATION),
        BleakDeviceNotFoundError("F1:00:00:00:00:10"),
        TimeoutError(),
        ConnectionError("not seen in 2 s of scanning"),
        ConnectionRefusedError(111, "Connect call failed"),
        EOFError(),
        DecodeError("open profile: the strap's clock changed"),
        TransportLostError("transport lost"),
        hci.HCI_Error(hci.HCI_CONNECTION_TIMEOUT_ERROR),
        ATT_Error(ErrorCode.UNLIKELY_ERROR),
        core.ConnectionError(
            core.ConnectionError.CONNECTION_REFUSED,
            core.PhysicalTransport.LE,
            hci.Address("F1:00:00:00:00:10"),
        ),
        core.TimeoutError(),
    ],
    ids=type,
)
def test_radio_and_link_errors_are_retried(error):
    assert isinstance(error, radio_errors("bumble"))


@pytest.mark.parametrize(
    "error",
    [
        TypeError("bad operand"),
        KeyError("x"),
        AttributeError("no attribute"),
        ValueError("bug"),
        RuntimeError("bug"),
        DecoderBug("strap KF: KeyError"),
    ],  # fmt: skip
    ids=type,
)
def test_errors_of_our_own_code_are_not_retried(error):
    assert not isinstance(error, radio_errors("bumble")) and not isinstance(error, radio_errors("bluez"))


@pytest.mark.soak
def test_eight_straps_for_a_minute(kinefuse_pipeline):
    straps, protocols, rates = eight_straps()
    with VirtualRadio(straps) as radio:
        sources = [strap_source(radio, s, protocol=p, rate_hz=r) for s, p, r in zip(straps, protocols, rates,
                                                                                    strict=True)]  # fmt: skip
        result = kinefuse_pipeline(sources=sources, processors=GAPS, duration_s=60.0)
    assert_each_streamed(result, straps, rates, seconds=55.0)  # a minute, less connection set-up


def eight_straps(**strap_options) -> tuple[list, list[str], list[float]]:
    """4 open-profile straps at 200 Hz, 2 WitMotion at 100 Hz and 2 Polar at 104 Hz: straps, protocols, rates."""
    open_straps = [EmulatedOpenStrap(f"KF-{i}", f"F1:00:00:00:01:{i:02X}", per_notification=4, **strap_options)
                   for i in range(4)]  # fmt: skip
    witmotions = [EmulatedWitMotion(f"WT-{i}", f"F1:00:00:00:02:{i:02X}", **strap_options) for i in range(2)]
    polars = [EmulatedPolar(f"Polar-{i}", f"F1:00:00:00:03:{i:02X}", per_notification=8, **strap_options)
              for i in range(2)]  # fmt: skip
    protocols = ["open"] * 4 + ["witmotion"] * 2 + ["polar"] * 2
    rates = [200.0] * 4 + [100.0] * 2 + [104.0] * 2
    return open_straps + witmotions + polars, protocols, rates


def assert_each_streamed(result, straps, rates, seconds, rate_fraction=0.9) -> None:
    """Every strap streamed for at least `seconds`, at `rate_fraction` of its rate or more, with nothing
    dropped, malformed or missing."""
    for strap, rate in zip(straps, rates, strict=True):
        stats = result.source_stats(strap.name)
        host_ns = result.imu_samples(strap.name)["host_ns"]
        assert stats["decode_errors"] == 0 and stats["dropped"] == 0, stats
        assert np.ptp(host_ns) / 1e9 > seconds and len(host_ns) > rate_fraction * rate * seconds, (
            strap.name, np.ptp(host_ns) / 1e9, len(host_ns))  # fmt: skip
        assert not gaps_of(result, strap.name), strap.name


def test_the_reconnect_backoff_starts_over_after_a_connection_that_streamed(monkeypatch):
    """Failures since the last connection that delivered samples set the backoff; one that streamed resets
    it, so a strap that drops its link now and then is not left waiting reconnect_max_s each time."""
    import asyncio
    import logging

    from kinefuse.configschema import defaults
    from kinefuse_plugins.ble_imu import source as ble_source

    source = ble_source.BleImuSource(defaults(ble_source.SCHEMA) | {"protocol": "open"}, "strap")
    one_sample = tuple(np.zeros((1, 3)) if i >= 3 else np.zeros(1, dtype=np.int64) for i in range(5)) + (
        None,
    )
    streams = iter([False, False, False, True, False, False])  # does each connection deliver samples?
    emitted, failures = [], []

    async def connect_and_stream(ctx):
        if next(streams):
            source._emit(ctx, [one_sample])
        raise ConnectionError("disconnected")

    async def backoff(seconds):
        failures.append(source._failures)
        if len(failures) == 6:
            raise asyncio.CancelledError

    ctx = type("Ctx", (), {"emit": staticmethod(emitted.append), "log": logging.getLogger("test")})()
    monkeypatch.setattr(source, "_connect_and_stream", connect_and_stream)
    monkeypatch.setattr(ble_source.asyncio, "sleep", backoff)
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(source._keep_connected(ctx))
    assert failures == [1, 2, 3, 0, 1, 2] and len(emitted) == 1
