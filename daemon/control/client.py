"""The control socket's client: ``kinefuse status`` and ``kinefuse tail`` (protocol: kinefuse.control)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from kinefuse.control import ControlError, DaemonNotRunning

_CLIENT_TIMEOUT_S = 5.0


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
