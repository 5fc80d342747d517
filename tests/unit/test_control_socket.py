"""The control socket over real Unix sockets: status, streaming, back-pressure, errors, the socket file."""

import asyncio
import contextlib
import json
import logging
import socket
import stat
import time
from pathlib import Path

import numpy as np
import pytest

from kinefuse import control
from kinefuse.agent import Subscription
from kinefuse.config import load_config
from kinefuse.configschema import ConfigInvalid
from kinefuse.control import client
from kinefuse.control.server import ControlServer
from kinefuse.plugin_loader import load_plugins
from kinefuse.types import DerivedValue, Event, Provenance, Quality, QualityLevel, imu_batch

STATUS = {
    "state": "running",
    "version": "0.1.0",
    "session": "s-1",
    "athlete": "demo",
    "uptime_s": 1.5,
    "sources": {
        "synth": {
            "type": "synthetic",
            "state": "running",
            "reason": "",
            "received": 120,
            "dropped": 3,
            "decode_errors": 1,
            "restarts": 0,
            "rate_hz": 400.0,
            "latency_ms": 0.8,
            "devices": ["pelvis"],
        }
    },
    "processors": {"gaps": {"errors": 0}},
    "channels": {"ingest": {"size": 0, "capacity": 1024, "dropped": 0}},
    "sinks": {"sqlite": {"errors": 2}},
    "subscribers": 0,
}


class FakeAgent:
    """The AgentView a service sees, with real Subscriptions and a way to publish items to them."""

    def __init__(self):
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        self.subscriptions: list[Subscription] = []

    def status(self) -> dict:
        return STATUS

    def subscribe(self, capacity: int) -> Subscription:
        self.subscriptions.append(Subscription(capacity))
        return self.subscriptions[-1]

    def unsubscribe(self, subscription: Subscription) -> None:
        self.subscriptions.remove(subscription)

    def publish(self, item) -> None:
        for subscription in self.subscriptions:
            subscription.channel.put(item)


def _imu(samples: int = 2, seq0: int = 0):
    seq = np.arange(seq0, seq0 + samples)
    return imu_batch(
        "synth", "pelvis", seq, seq * 10_000, seq + 1_000, np.ones((samples, 3)), np.zeros((samples, 3))
    )


def _gap_event() -> Event:
    return Event("sample_gap", 42, "synth", "pelvis", {"missing": 1, "after_seq": 5})


def _metric() -> DerivedValue:
    return DerivedValue(
        "cadence", 42, 110.0, "steps/min", Provenance.FUSED, Quality(QualityLevel.GOOD), "synth"
    )


async def _until(condition, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def serving(path, agent, capacity: int = 64):
    task = asyncio.create_task(ControlServer(path, 0o600, capacity).run(agent))
    # bind, chmod and listen happen without yielding, so once the file exists the server is listening
    await _until(lambda: path.exists() or task.done())
    yield task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _request(path, line: bytes) -> list[bytes]:
    """Send one request line and read every reply line until the server closes."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(line)
    lines = [line async for line in reader]
    writer.close()
    return lines


def test_status_reply_socket_mode_and_cleanup(tmp_path, capsys):
    path = tmp_path / "run" / "k.sock"

    async def scenario():
        async with serving(path, FakeAgent()):
            assert stat.S_ISSOCK(path.stat().st_mode)
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
            (reply,) = await _request(path, b'{"cmd": "status"}\n')
            assert json.loads(reply) == STATUS
            assert await asyncio.to_thread(client.query_status, path) == STATUS
            assert await asyncio.to_thread(client.print_status, path, False) == 0
        assert not path.exists()  # removed on exit

    asyncio.run(scenario())
    table = capsys.readouterr().out
    assert "running" in table and "session s-1" in table
    assert (
        "synth   synthetic  running   400.0       120        3              1         0         0.8" in table
    )
    assert "sqlite: 2 errors" in table


def test_subscriber_receives_the_kinds_it_asked_for(tmp_path):
    path = tmp_path / "k.sock"
    agent = FakeAgent()

    async def scenario():
        async with serving(path, agent):
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b'{"cmd": "subscribe", "kinds": ["imu", "event"]}\n')
            await _until(lambda: agent.subscriptions)
            for item in (_imu(samples=2), _metric(), _gap_event()):
                agent.publish(item)
            rows = [json.loads(await asyncio.wait_for(reader.readline(), 2.0)) for _ in range(3)]
            assert [(r["type"], r.get("seq")) for r in rows] == [("imu", 0), ("imu", 1), ("event", None)]
            assert rows[2]["kind"] == "sample_gap"
            writer.close()
            await _until(lambda: not agent.subscriptions)  # hanging up ends the subscription

    asyncio.run(scenario())


def test_stuck_client_does_not_hold_up_the_producer_and_later_sees_skipped(tmp_path):
    path = tmp_path / "k.sock"
    agent = FakeAgent()

    async def scenario():
        async with serving(path, agent, capacity=8):
            stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            stuck.connect(str(path))
            stuck.sendall(b'{"cmd": "subscribe"}\n')  # ...and reads nothing for now
            await _until(lambda: agent.subscriptions)
            started = time.monotonic()
            for i in range(400):  # ~9 MB of JSON: far more than the socket buffers hold
                agent.publish(_imu(samples=100, seq0=i * 100))
                await asyncio.sleep(0)
            assert time.monotonic() - started < 1.5
            (subscription,) = agent.subscriptions
            assert subscription.skipped > 0 and len(subscription.channel) <= 8
            # the server still answers others while this subscriber is stuck
            assert json.loads((await _request(path, b'{"cmd": "status"}\n'))[0]) == STATUS
            skipped = await _read_until_skipped(stuck)
            assert 0 < skipped["count"] <= subscription.skipped
            stuck.close()

    asyncio.run(scenario())


async def _read_until_skipped(sock: socket.socket) -> dict:
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    received = b""
    while b'"type":"skipped"' not in received:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), 2.0)
        assert chunk, "the server closed before reporting skipped items"
        received += chunk
    start = received.index(b'{"type":"skipped"')
    return json.loads(received[start : received.index(b"\n", start)])


@pytest.mark.parametrize(
    ("request_line", "expected"),
    [
        (b"status please\n", "not JSON"),
        (b'{"cmd": "reboot"}\n', "unknown command 'reboot'"),
        (b"[1, 2]\n", "unknown command [1, 2]"),
        (
            b'{"cmd": "subscribe", "kinds": ["video"]}\n',
            "bad kinds ['video']: expected a list drawn from imu",
        ),
    ],
)
def test_bad_requests_get_an_error_naming_what_was_expected(tmp_path, request_line, expected):
    path = tmp_path / "k.sock"

    async def scenario():
        async with serving(path, FakeAgent()):
            (reply,) = await _request(path, request_line)  # one error line, then the server closes
            return json.loads(reply)["error"]

    error = asyncio.run(scenario())
    assert expected in error
    assert '{"cmd": "status"}' in error or "imu, keypoints, metric, event, motion, device" in error


def test_stale_socket_is_replaced_but_a_live_daemon_is_not(tmp_path, caplog):
    path = tmp_path / "k.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as crashed:
        crashed.bind(str(path))  # a socket file whose daemon died without removing it

    async def scenario():
        async with serving(path, FakeAgent()):
            second = asyncio.create_task(ControlServer(path).run(FakeAgent()))
            await asyncio.wait_for(second, 2.0)  # gives up at once, leaving the first alone
            assert json.loads((await _request(path, b'{"cmd": "status"}\n'))[0]) == STATUS

    with caplog.at_level(logging.ERROR, logger="kinefuse.control"):
        asyncio.run(scenario())
    assert f"another kinefuse daemon is already listening on {path}" in caplog.text


def test_a_socket_path_that_cannot_be_bound_is_logged_at_once(tmp_path, caplog):
    path = tmp_path / ("x" * 120) / "k.sock"  # longer than an AF_UNIX address may be
    with caplog.at_level(logging.ERROR, logger="kinefuse.control"):
        asyncio.run(asyncio.wait_for(ControlServer(path).run(FakeAgent()), 2.0))
    assert f"status socket disabled: cannot listen on {path}" in caplog.text


def test_a_file_in_the_way_is_not_replaced(tmp_path, caplog):
    path = tmp_path / "k.sock"
    path.write_text("not a socket")
    with caplog.at_level(logging.ERROR, logger="kinefuse.control"):
        asyncio.run(asyncio.wait_for(ControlServer(path).run(FakeAgent()), 2.0))
    assert "exists and is not a socket" in caplog.text
    assert path.read_text() == "not a socket"


def test_tail_prints_records_until_its_limit_or_the_daemon_stops(tmp_path, capsys, caplog):
    path = tmp_path / "k.sock"
    agent = FakeAgent()

    async def scenario():
        async with serving(path, agent) as server:
            limited = asyncio.create_task(asyncio.to_thread(client.tail, path, ["event"], 2))
            endless = asyncio.create_task(asyncio.to_thread(client.tail, path, None, None))
            await _until(lambda: len(agent.subscriptions) == 2)
            for item in (_imu(samples=1), _gap_event(), _gap_event(), _gap_event()):
                agent.publish(item)
            assert await asyncio.wait_for(limited, 2.0) == 0
            await _until(lambda: len(agent.subscriptions) == 1)
            server.cancel()  # the daemon stops: the endless tail sees the end and exits cleanly
            assert await asyncio.wait_for(endless, 2.0) == 0

    with caplog.at_level(logging.ERROR):
        asyncio.run(scenario())
    types = [json.loads(line)["type"] for line in capsys.readouterr().out.splitlines()]
    assert types.count("event") == 2 + 3 and types.count("imu") == 1
    assert not caplog.records  # closing a live stream at stop is not an error


def test_no_daemon_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "nobody.sock"
    assert client.print_status(path) == 1
    assert client.tail(path) == 1
    assert f"no kinefuse daemon is listening on {path}" in capsys.readouterr().err


def _config(tmp_path, status_table: str):
    path = tmp_path / "config.toml"
    path.write_text(f"[status]\n{status_table}\n")
    return load_config(path, load_plugins(entry_points=False))


def test_socket_path_from_the_file_the_environment_or_the_runtime_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("KINEFUSE_SOCKET", raising=False)
    assert control.socket_path(_config(tmp_path, 'socket_path = "run/k.sock"')) == tmp_path / "run" / "k.sock"
    assert control.socket_path(_config(tmp_path, "")).name == "kinefuse.sock"
    monkeypatch.setenv("KINEFUSE_SOCKET", "/run/kinefuse/kinefuse.sock")
    config = _config(tmp_path, 'socket_path = "run/k.sock"\nsocket_mode = "0660"')
    assert control.socket_path(config) == Path("/run/kinefuse/kinefuse.sock")
    assert ControlServer.from_config(config).mode == 0o660


def test_socket_mode_must_be_octal(tmp_path):
    with pytest.raises(ConfigInvalid) as info:
        _config(tmp_path, 'socket_mode = "rw-------"')
    (error,) = info.value.errors
    assert (error.line, error.key) == (2, "status.socket_mode")
    assert "matching" in error.message and "'rw-------'" in error.message
