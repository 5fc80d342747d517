"""The control socket through which ``kinefuse status`` and ``kinefuse tail`` talk to the running daemon.

Protocol, newline-delimited JSON over a Unix stream socket; the client sends one request line:

- ``{"cmd": "status"}``: one reply line holding the agent's status, then the server closes.
- ``{"cmd": "subscribe", "kinds": ["imu", "event"]}`` (kinds optional): the live stream as records
  (kinefuse.streamjson), one per line, until the client hangs up or the daemon stops.
- anything else: one ``{"error": "..."}`` line saying what was expected, then the server closes.

Each subscriber reads from its own bounded drop-oldest subscription and the server waits for the client
to take each chunk, so a slow client only loses its own records; before the next chunk it gets a
``{"type": "skipped", "count": n}`` line counting the stream items it missed.  There is no network
listener: who may connect is decided by the socket file's mode and its directory's (0700).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
import stat
import sys
import warnings
from pathlib import Path

import platformdirs

from kinefuse import streamjson

log = logging.getLogger(__name__)
SOCKET_NAME = "kinefuse.sock"
SUBSCRIBER_CAPACITY = 256  # stream items (mostly batches of a tenth of a second) a subscriber may lag
_TAKE = 256  # stream items written per chunk
_REQUEST_TIMEOUT_S = 5.0  # a client that connects and says nothing is let go
_CLIENT_TIMEOUT_S = 5.0
_USAGE = 'expected one JSON line: {"cmd": "status"} or {"cmd": "subscribe", "kinds": [...]}'
_KINDS = tuple(streamjson.KINDS.values())


class ControlError(Exception):
    """Talking to the daemon failed; the message says why, in words for the command line."""


class DaemonNotRunning(ControlError):
    pass


class _BadRequest(ValueError):
    """A request the server cannot act on; the message says what was expected."""


def socket_path(config) -> Path:
    """The configured ``[status] socket_path`` ($KINEFUSE_SOCKET), or kinefuse.sock in the runtime dir."""
    configured = config["status"]["socket_path"]
    if configured:
        return Path(configured)
    with warnings.catch_warnings():
        # without $XDG_RUNTIME_DIR platformdirs warns and falls back to /tmp/runtime-UID; daemon and client
        # pick the same fallback, so the warning would only be noise on every command
        warnings.simplefilter("ignore")
        return platformdirs.user_runtime_path("kinefuse") / SOCKET_NAME


# --- server ---------------------------------------------------------------------------------------


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


# --- client ---------------------------------------------------------------------------------------


def _connect(path: Path, request: dict) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(_CLIENT_TIMEOUT_S)
    try:
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise DaemonNotRunning(f"no kinefuse daemon is listening on {path}") from exc
    except PermissionError as exc:
        sock.close()
        raise ControlError(f"permission denied on {path}: run as the daemon's user") from exc
    except BaseException:
        sock.close()
        raise
    return sock


def query_status(path: Path) -> dict:
    """The running daemon's status; raises ControlError (DaemonNotRunning when none listens on ``path``)."""
    with _connect(path, {"cmd": "status"}) as sock, sock.makefile("rb") as stream:
        line = stream.readline()
    if not line:
        raise ControlError(f"the daemon on {path} closed the connection without answering")
    reply = json.loads(line)
    if "error" in reply:
        raise ControlError(f"the daemon on {path} refused: {reply['error']}")
    return reply


def _fail(command: str, exc: Exception) -> int:
    message = str(exc) if isinstance(exc, ControlError) else f"lost the daemon: {exc}"
    print(f"kinefuse {command}: {message}", file=sys.stderr)
    return 1


def print_status(path: Path, as_json: bool = False) -> int:
    """Print the running daemon's status (a table, or JSON); 1 when no daemon answers."""
    try:
        status = query_status(path)
    except (ControlError, OSError) as exc:
        return _fail("status", exc)
    print(json.dumps(status, indent=2) if as_json else format_status(status))
    return 0


_SOURCE_COLUMNS = {  # status key -> table heading
    "type": "type",
    "state": "state",
    "rate_hz": "rate/s",
    "received": "received",
    "dropped": "dropped",
    "decode_errors": "decode errors",
    "restarts": "restarts",
    "latency_ms": "latency ms",
}


def format_status(status: dict) -> str:
    """The status as a short report: a header line, a row per source, then anything that needs attention."""
    sources = status["sources"]
    lines = [
        f"kinefuse {status.get('version', '?')}  {status['state']}  up {status.get('uptime_s', 0)} s  "
        f"athlete {status.get('athlete', '?')}  session {status.get('session', '?')}  "
        f"subscribers {status.get('subscribers', 0)}",
        "",
    ]
    rows = [(sid, *(s[key] for key in _SOURCE_COLUMNS)) for sid, s in sources.items()]
    lines += _table(("source", *_SOURCE_COLUMNS.values()), rows, numeric_from=3) if rows else ["no sources"]
    lines += [f"  {sid}: {s['reason']}" for sid, s in sources.items() if s.get("reason")]
    channels = status.get("channels", {})
    if channels:
        usage = [f"{name} {c['size']}/{c['capacity']} dropped {c['dropped']}" for name, c in channels.items()]
        lines += ["", "channels: " + ", ".join(usage)]
    failing = {**status.get("processors", {}), **status.get("sinks", {})}
    lines += [f"{name}: {c['errors']} errors" for name, c in failing.items() if c.get("errors")]
    return "\n".join(lines)


def _table(headers: tuple, rows: list[tuple], numeric_from: int) -> list[str]:
    widths = [max(len(str(v)) for v in column) for column in zip(headers, *rows, strict=True)]

    def line(values) -> str:
        cells = [
            str(v).rjust(w) if i >= numeric_from else str(v).ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def tail(path: Path, kinds: list[str] | None = None, limit: int | None = None) -> int:
    """Print the live stream as JSON lines until the daemon stops or ``limit`` records were printed."""
    try:
        sock = _connect(path, {"cmd": "subscribe", "kinds": kinds})
    except (ControlError, OSError) as exc:
        return _fail("tail", exc)
    sock.settimeout(None)  # a filtered stream may rightly stay quiet for a long time
    try:
        with sock, sock.makefile("rb") as stream:
            return _print_stream(stream, limit)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader of our stdout left (`| head`): send the rest to /dev/null so exiting stays quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        return _fail("tail", exc)


def _print_stream(stream, limit: int | None) -> int:
    printed = 0
    while limit is None or printed < limit:
        line = stream.readline()
        if not line:
            return 0  # the daemon stopped
        record = json.loads(line)
        if "error" in record:
            print(f"kinefuse tail: the daemon refused: {record['error']}", file=sys.stderr)
            return 1
        sys.stdout.write(line.decode())
        sys.stdout.flush()  # the reader may be another program waiting on each line
        printed += record["type"] != "skipped"
    return 0
