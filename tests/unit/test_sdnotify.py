"""sd_notify against a real AF_UNIX datagram socket standing in for systemd's notification socket."""

import asyncio
import os
import socket
import time
import uuid

import pytest

from kinefuse import sdnotify
from kinefuse.builtin.services.status import SystemdNotify, register_services


class FakeAgent:
    """Just enough of kinefuse.interfaces.AgentView for the notify service."""

    def __init__(self):
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()

    def status(self) -> dict:
        source = {"state": "running", "rate_hz": 500.0, "dropped": 2, "latency_ms": 1.25}
        return {"state": "running", "sources": {"synth": source}}


@pytest.fixture
def manager_socket(tmp_path, monkeypatch):
    """A bound datagram socket in NOTIFY_SOCKET, as systemd provides for Type=notify services."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    yield sock
    sock.close()


async def _receive(sock: socket.socket) -> tuple[float, list[str]]:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), 2.0)
    return time.monotonic(), data.decode().split("\n")


def test_ready_then_watchdog_pings_at_half_the_interval_then_stopping(manager_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # WatchdogSec=0.2s: a ping is due every 0.1 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    async def scenario():
        agent = FakeAgent()
        service = asyncio.create_task(SystemdNotify(interval_s=5.0).run(agent))
        await asyncio.sleep(0.05)
        with pytest.raises(BlockingIOError):
            manager_socket.recv(4096)  # nothing may be said before the agent is ready
        agent.ready.set()
        ready_at, ready = await _receive(manager_socket)
        assert ready[0] == "READY=1"
        assert ready[1] == "STATUS=running: synth running 500/s dropped 2 latency 1.2 ms"
        times = [ready_at]
        for _ in range(3):
            at, ping = await _receive(manager_socket)
            assert ping[0] == "WATCHDOG=1"
            times.append(at)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert all(0.07 < gap < 0.3 for gap in gaps), gaps
        agent.stopping.set()
        _, stopping = await _receive(manager_socket)
        assert stopping[0] == "STOPPING=1"
        await asyncio.wait_for(service, 1.0)  # the service ends by itself once stopping was sent

    asyncio.run(scenario())


def test_without_watchdog_only_status_updates_are_sent(manager_socket):
    async def scenario():
        agent = FakeAgent()
        agent.ready.set()
        service = asyncio.create_task(SystemdNotify(interval_s=0.05).run(agent))
        (_, ready), (_, update) = await _receive(manager_socket), await _receive(manager_socket)
        assert ready[0] == "READY=1"
        assert update == ["STATUS=running: synth running 500/s dropped 2 latency 1.2 ms"]
        agent.stopping.set()
        await asyncio.wait_for(service, 1.0)

    asyncio.run(scenario())


def test_abstract_namespace_address(monkeypatch):
    name = f"kinefuse-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("READY=1", "STATUS=up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"


def test_notify_outside_systemd_or_with_systemd_gone(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("READY=1") is False  # logged, not raised


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        (None, None, None),
        ("30000000", None, 15.0),
        ("30000000", "self", 15.0),
        ("30000000", "1", None),  # the watchdog is meant for another process
        ("0", None, None),
        ("soon", None, None),
    ],
)
def test_watchdog_interval(monkeypatch, usec, pid, expected):
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
    assert sdnotify.watchdog_interval_s() == expected


def test_service_is_enabled_only_under_systemd(manager_socket, monkeypatch):
    (spec,) = [s for s in register_services() if s.name == "systemd_notify"]
    config = {"status": {"interval_s": 5.0}}
    assert isinstance(spec.factory(config), SystemdNotify)
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert spec.factory(config) is None
