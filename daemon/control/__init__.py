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

The server (the ``status_socket`` service) is control.server; ``kinefuse status`` and ``tail`` use
control.client.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import platformdirs

SOCKET_NAME = "kinefuse.sock"
SUBSCRIBER_CAPACITY = 256  # stream items (mostly batches of a tenth of a second) a subscriber may lag


class ControlError(Exception):
    """Talking to the daemon failed; the message says why, in words for the command line."""


class DaemonNotRunning(ControlError):
    pass


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
