"""A minimal sd_notify client, written from sd_notify(3) and systemd.service(5).

The service manager passes the address of its notification socket in ``$NOTIFY_SOCKET``: a file-system
path of an AF_UNIX datagram socket, or, when it starts with ``@``, a name in Linux's abstract namespace.
A message is one datagram of newline-separated ``VARIABLE=value`` assignments (READY=1, STOPPING=1,
WATCHDOG=1, STATUS=...).  With ``WatchdogSec=`` set, the manager passes ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``, the process it expects the pings from) and kills the service when no WATCHDOG=1
arrives within that time; sd_watchdog_enabled(3) advises pinging at half of it.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def _address(value: str) -> str:
    # sd_notify(3): a leading '@' names an abstract-namespace socket, whose address starts with a NUL byte
    return "\0" + value[1:] if value.startswith("@") else value


def notify_socket() -> str | None:
    """The service manager's notification socket, or None when not started by one with Type=notify."""
    return os.environ.get("NOTIFY_SOCKET") or None


def notify(*assignments: str) -> bool:
    """Send ``assignments`` (e.g. "READY=1", "STATUS=...") as one datagram. False when not under systemd
    or when sending failed (logged, never raised: the daemon must not die because its manager went away)."""
    target = notify_socket()
    if target is None:
        return False
    message = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(target))
            sock.sendall(message)
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", target, exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is asked of
    this process: the variable is unset or invalid, or ``$WATCHDOG_PID`` names another process."""
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None
