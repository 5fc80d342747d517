"""Runs the real daemon as a subprocess, the way a user or systemd does."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def daemon_env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["KINEFUSE_SOCKET"] = str(tmp_path / "run" / "kinefuse.sock")
    env.pop("NOTIFY_SOCKET", None)
    return env


def start_daemon(tmp_path: Path, *args: str, config: Path | None = None) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "kinefuse",
        "run",
        "--config",
        str(config or REPO / "config.toml"),
        "--db",
        str(tmp_path / "k.db"),
        *args,
    ]
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=daemon_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_rows(db: Path, table: str, minimum: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    if conn.execute(f"select count(*) from {table}").fetchone()[0] >= minimum:
                        return
            except sqlite3.OperationalError:
                pass  # schema not created yet
        time.sleep(0.1)
    raise AssertionError(f"{db} did not reach {minimum} rows in {table} within {timeout_s} s")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> tuple[int, str]:
    process.send_signal(sig)
    output, _ = process.communicate(timeout=timeout_s)
    return process.returncode, output
