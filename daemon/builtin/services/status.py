"""Built-in services that tell the outside world how the daemon is doing: the control socket behind
``kinefuse status`` and ``kinefuse tail``, readiness and watchdog pings to systemd, and a status line
(redrawn in place on a terminal, logged every ``interval_s`` otherwise)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
from typing import TextIO

from kinefuse import hookimpl, sdnotify
from kinefuse.configschema import Field
from kinefuse.control.server import ControlServer
from kinefuse.interfaces import AgentView, ConfigSection, ServiceSpec

log = logging.getLogger(__name__)
_REDRAW_S = 1.0  # terminal status line refresh
_CLEAR_LINE = "\r\x1b[K"  # carriage return, then erase to the end of the line (ECMA-48 EL)

SCHEMA = {
    "socket_path": Field(
        str,
        "",
        "Unix socket for `kinefuse status` and `kinefuse tail` (empty: the user runtime dir)",
        env="KINEFUSE_SOCKET",
        is_path=True,
    ),
    "socket_mode": Field(
        str, "0600", "permissions of the socket file, in octal: who may connect", pattern="0?[0-7]{3}"
    ),
    "interval_s": Field(float, 5.0, "seconds between status lines when not on a terminal", min=0.5),
}


def summary(status: dict) -> str:
    """One line: the daemon's state, then each source's state, rate, drops and latency."""
    sources = [
        f"{sid} {s['state']} {s['rate_hz']:.0f}/s dropped {s['dropped']} latency {s['latency_ms']:.1f} ms"
        for sid, s in status["sources"].items()
    ]
    return f"{status['state']}: " + ("; ".join(sources) or "no sources")


async def _set_within(event: asyncio.Event, timeout_s: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), timeout_s)
    except TimeoutError:
        return False
    return True


class SystemdNotify:
    """Tells systemd (Type=notify) when the daemon is ready and stopping, pings its watchdog and keeps the
    STATUS= line that ``systemctl status`` shows current."""

    def __init__(self, interval_s: float):
        self.interval_s = interval_s

    async def run(self, agent: AgentView) -> None:
        await agent.ready.wait()
        sdnotify.notify("READY=1", f"STATUS={summary(agent.status())}")
        watchdog_s = sdnotify.watchdog_interval_s()
        period = self.interval_s if watchdog_s is None else min(watchdog_s, self.interval_s)
        # the pings come from the event loop itself, so a blocked loop stops them and systemd restarts us
        ping = () if watchdog_s is None else ("WATCHDOG=1",)
        while not await _set_within(agent.stopping, period):
            sdnotify.notify(*ping, f"STATUS={summary(agent.status())}")
        sdnotify.notify("STOPPING=1", "STATUS=stopping: draining channels and flushing storage")


class StatusLine:
    """A live status line on a terminal; a periodic log line when stderr is a file or the journal."""

    def __init__(self, interval_s: float, stream: TextIO = sys.stderr):
        self.interval_s, self.stream = interval_s, stream

    async def run(self, agent: AgentView) -> None:
        await agent.ready.wait()
        if self.stream.isatty():
            await self._redraw(agent)
        else:
            while True:
                await asyncio.sleep(self.interval_s)
                log.info("%s", summary(agent.status()))

    async def _redraw(self, agent: AgentView) -> None:
        # log records go to the same terminal: wipe the status line before each; the next redraw restores it
        handlers = [h for h in logging.getLogger().handlers if getattr(h, "stream", None) is self.stream]
        for handler in handlers:
            handler.addFilter(self._clear)
        try:
            while True:
                width = shutil.get_terminal_size().columns
                # cut to the width: a wrapped line could not be redrawn in place with a carriage return
                self.stream.write(_CLEAR_LINE + summary(agent.status())[: width - 1])
                self.stream.flush()
                await asyncio.sleep(_REDRAW_S)
        finally:
            for handler in handlers:
                handler.removeFilter(self._clear)
            self._clear(None)

    def _clear(self, _record: logging.LogRecord | None) -> bool:
        self.stream.write(_CLEAR_LINE)
        return True  # as a logging filter: let every record through


def _systemd_notify(config) -> SystemdNotify | None:
    return SystemdNotify(config["status"]["interval_s"]) if sdnotify.notify_socket() else None


def _status_line(config) -> StatusLine:
    return StatusLine(config["status"]["interval_s"])


@hookimpl
def register_config_sections():
    return [ConfigSection("status", SCHEMA, "the control socket, systemd notifications and the status line")]


@hookimpl
def register_services():
    return [
        ServiceSpec(
            "status_socket",
            ControlServer.from_config,
            "answers `kinefuse status` and streams `kinefuse tail` on a Unix socket",
        ),
        ServiceSpec(
            "systemd_notify",
            _systemd_notify,
            "READY=1, WATCHDOG=1 and STOPPING=1 to systemd; only when $NOTIFY_SOCKET is set",
        ),
        ServiceSpec("status_line", _status_line, "a live status line on a terminal, else a periodic log"),
    ]
