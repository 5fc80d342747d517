"""The control socket's server: the ``status_socket`` service answers status requests and streams the live
data to subscribers (protocol: kinefuse.control)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import stat
from pathlib import Path

from kinefuse import streamjson
from kinefuse.control import SUBSCRIBER_CAPACITY, ControlError, socket_path

log = logging.getLogger(__name__)
_TAKE = 256  # stream items written per chunk
_REQUEST_TIMEOUT_S = 5.0  # a client that connects and says nothing is let go
_USAGE = 'expected one JSON line: {"cmd": "status"} or {"cmd": "subscribe", "kinds": [...]}'
_KINDS = tuple(streamjson.KINDS.values())


class _BadRequest(ValueError):
    """A request the server cannot act on; the message says what was expected."""


class ControlServer:
    """The ``status_socket`` service: answers status requests and streams the live data to subscribers."""

    def __init__(self, path: Path, mode: int = 0o600, capacity: int = SUBSCRIBER_CAPACITY):
        self.path, self.mode, self.capacity = Path(path), mode, capacity
        self._connections: set[asyncio.Task] = set()

    @classmethod
    def from_config(cls, config) -> ControlServer:
        return cls(socket_path(config), int(config["status"]["socket_mode"], 8))

    async def run(self, agent) -> None:
        # on failure the daemon goes on recording without a socket: losing the session would be worse
        try:
            server = await self._listen(agent)
        except ControlError as exc:
            log.error("status socket disabled: %s", exc)
            return
        except OSError as exc:
            log.error("status socket disabled: cannot listen on %s: %s", self.path, exc.strerror or exc)
            return
        inode = self.path.stat().st_ino
        log.info("status socket listening on %s", self.path)
        try:
            # not serve_forever(): from Python 3.12 its cancellation waits for every client to hang up
            await asyncio.get_running_loop().create_future()
        finally:
            server.close()
            await self._close_connections()
            self._remove_socket(inode)

    async def _listen(self, agent) -> asyncio.Server:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        await self._clear_stale_socket()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            # connections are refused until listen(), which start_unix_server calls: the mode is set first,
            # so no client ever connects through the umask's looser default
            os.chmod(self.path, self.mode)
            return await asyncio.start_unix_server(functools.partial(self._serve, agent), sock=sock)
        except BaseException:
            sock.close()
            raise

    async def _clear_stale_socket(self) -> None:
        try:
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ControlError(f"{self.path} exists and is not a socket; not replacing it")
        try:
            _, writer = await asyncio.open_unix_connection(str(self.path))
        except ConnectionRefusedError:
            self.path.unlink()  # left behind by a daemon that did not exit cleanly
            return
        writer.close()
        raise ControlError(f"another kinefuse daemon is already listening on {self.path}")

    def _remove_socket(self, inode: int) -> None:
        # only our own socket: a daemon started after us may have taken the path over
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == inode:
                self.path.unlink()

    async def _close_connections(self) -> None:
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, agent, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            await self._answer(agent, reader, writer)
        except asyncio.CancelledError:
            # only _close_connections cancels a handler (the daemon is stopping): end normally, because on
            # Python 3.11 the stream machinery logs a spurious error for a handler task that ends cancelled
            pass
        finally:
            self._connections.discard(task)
            # a client that stopped reading would hold a graceful close open forever
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()
            else:
                writer.close()

    async def _answer(self, agent, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is None:
                return  # connected and left without asking, as a daemon probing for a live socket does
            if request["cmd"] == "status":
                writer.write(streamjson.encode([agent.status()]))
                await writer.drain()
            else:
                await self._stream(agent, _requested_kinds(request), reader, writer)
        except _BadRequest as exc:
            writer.write(streamjson.encode([{"error": str(exc)}]))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client went away or never asked anything: nobody to tell

    async def _stream(self, agent, kinds, reader, writer) -> None:
        subscription = agent.subscribe(self.capacity)
        hangup = asyncio.create_task(_until_eof(reader))
        try:
            await _pump(subscription, kinds, hangup, writer)
        finally:
            hangup.cancel()
            agent.unsubscribe(subscription)


async def _read_request(reader: asyncio.StreamReader) -> dict | None:
    try:
        line = await asyncio.wait_for(reader.readline(), _REQUEST_TIMEOUT_S)
    except ValueError as exc:  # readline's way of saying the line outgrew the stream's buffer limit
        raise _BadRequest(f"request line too long: {_USAGE}") from exc
    if not line:
        return None
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise _BadRequest(f"not JSON ({exc}): {_USAGE}") from exc
    if not isinstance(request, dict) or request.get("cmd") not in ("status", "subscribe"):
        command = request.get("cmd") if isinstance(request, dict) else request
        raise _BadRequest(f"unknown command {command!r}: {_USAGE}")
    return request


def _requested_kinds(request: dict) -> frozenset[str] | None:
    kinds = request.get("kinds")
    if kinds is None:
        return None
    if not isinstance(kinds, list) or not all(k in _KINDS for k in kinds):
        raise _BadRequest(f"bad kinds {kinds!r}: expected a list drawn from {', '.join(_KINDS)}")
    return frozenset(kinds)


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Return when the client hangs up; a subscriber has nothing more to say, so its input is discarded."""
    while await reader.read(4096):
        pass


async def _pump(subscription, kinds, hangup: asyncio.Task, writer: asyncio.StreamWriter) -> None:
    """Copy the subscription to the client, chunk by chunk, until the client hangs up."""
    reported = 0
    while True:
        taking = asyncio.ensure_future(subscription.get_many(_TAKE))
        try:
            await asyncio.wait((taking, hangup), return_when=asyncio.FIRST_COMPLETED)
        finally:
            taking.cancel()
        if hangup.done():
            return
        rows = []
        if subscription.skipped > reported:
            rows.append({"type": "skipped", "count": subscription.skipped - reported})
            reported = subscription.skipped
        rows.extend(_rows(taking.result(), kinds))
        if rows:
            writer.write(streamjson.encode(rows))
            await writer.drain()  # a slow client holds up only this loop; its subscription drops oldest


def _rows(items: list, kinds: frozenset[str] | None) -> list[dict]:
    rows = []
    for item in items:
        kind = streamjson.KINDS.get(type(item))
        # None: something a plugin passed along that is not a stream item; it has no JSON form
        if kind is not None and (kinds is None or kind in kinds):
            rows.extend(streamjson.records(item))
    return rows
