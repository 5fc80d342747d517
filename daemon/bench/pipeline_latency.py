"""The pipeline bench's live case: arrival to the live stream, as a client of the Unix socket sees it.

The real agent runs in this process; the subscriber is another process (as ``kinefuse tail`` is), so its
reading never competes with the agent for this interpreter's GIL. Run as
``python -m kinefuse.bench.pipeline_latency SOCKET OUT`` it is that subscriber: it sends
``{"cmd": "subscribe"}``, stamps each line with ``time.monotonic_ns()`` as it reads it, and on end of
stream writes the latency of every record that carries an arrival stamp (``host_ns``) to OUT as JSON.
CLOCK_MONOTONIC is one clock for every process of the machine, so the two stamps compare.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kinefuse.config import load_config
from kinefuse.control import socket_path
from kinefuse.inprocess import run_in_process
from kinefuse.plugin_loader import load_plugins

_SEGMENTS = (
    "pelvis", "trunk", "left_thigh", "right_thigh", "left_shank", "right_shank", "left_foot", "right_foot"
)  # fmt: skip
# 8 straps at 200 Hz, one sample per notification, and 2 cameras at 30 fps whose keypoints come from the
# simulated detector (no pose inference); perfect sensors and links, so every sample is delivered
LIVE_SCENARIO = {
    "scenario": {"name": "live_8imu_2cam", "duration_s": 60.0},
    "motion": {"kind": "walk", "treadmill": True},
    "imus": [{"name": f"imu_{s}", "segment": s, "rate_hz": 200.0, "link": {"batch": 1}} for s in _SEGMENTS],
    "cameras": [
        {"name": "cam0", "position": [0.0, -4.0, 1.0], "target": [0.0, 0.0, 0.9], "fps": 30.0},
        {"name": "cam1", "position": [4.0, 0.0, 1.0], "target": [0.0, 0.0, 0.9], "fps": 30.0},
    ],
}
_SIMULATED_AHEAD_S = 600.0  # the synthetic source's largest chunk


def live_source(duration_s: float) -> dict:
    """The synthetic source of a live case that runs ``duration_s``: LIVE_SCENARIO in real time, simulated
    whole before its clock starts (up to the source's largest chunk). Simulating the next chunk meanwhile, as
    the source otherwise does, took the GIL from the agent for a second every chunk: work a real strap or
    camera never asks of the daemon."""
    length = duration_s + 5.0
    scenario = {**LIVE_SCENARIO, "scenario": {**LIVE_SCENARIO["scenario"], "duration_s": length}}
    return {"scenario": scenario, "realtime": True, "loop": False, "chunk_s": min(length, _SIMULATED_AHEAD_S)}


_CONNECT_TIMEOUT_S = 30.0  # the subscriber waits this long for the agent's socket to appear
_SUBSCRIBER_EXIT_S = 30.0  # after the agent stops, the subscriber must have written its figures


async def run_with_subscriber(config_path: Path, duration_s: float, module: str) -> tuple[object, dict]:
    """Run the agent on ``config_path`` for ``duration_s`` with ``python -m module SOCKET OUT`` as a subscriber
    process on its socket; the agent and what the subscriber wrote to OUT (JSON)."""
    registry = load_plugins(entry_points=False)
    config = load_config(config_path, registry)
    with tempfile.TemporaryDirectory(prefix="kinefuse-subscriber-") as tmp:
        out = Path(tmp) / "subscriber.json"
        subscriber = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, str(socket_path(config)), str(out), stdout=asyncio.subprocess.PIPE
        )
        try:
            # the agent starts once the subscriber has imported and waits for the socket, so that it reads
            # the stream from the first item
            if not await asyncio.wait_for(subscriber.stdout.readline(), _CONNECT_TIMEOUT_S):
                raise RuntimeError("the subscriber process ended before it was ready; no figures")
            agent, exit_code = await run_in_process(config, registry, duration_s)
            returncode = await asyncio.wait_for(subscriber.wait(), _SUBSCRIBER_EXIT_S)
        finally:
            if subscriber.returncode is None:
                subscriber.kill()
                await subscriber.wait()
        if exit_code != 0 or returncode != 0:
            raise RuntimeError(
                f"the live case failed (agent exit {exit_code}, subscriber exit {returncode}); no figures"
            )
        return agent, json.loads(out.read_text(encoding="utf-8"))


async def measure(config_path: Path, duration_s: float) -> dict:
    """Run the agent on ``config_path`` for ``duration_s`` with a subscriber process on its socket.

    Returns the latencies in ms (one per received sample record), the count of records the server
    skipped for this subscriber, and the agent's own counters.
    """
    agent, received = await run_with_subscriber(config_path, duration_s, __name__)
    stats = agent.status()["sources"]["synth"]
    return {
        "latency_ms": np.asarray(received["latency_ns"], dtype=np.float64) / 1e6,
        "skipped": received["skipped"],
        "offered": stats["received"],
        "dropped": stats["dropped"],
        "cores": len(os.sched_getaffinity(0)),
    }


# --- the subscriber process -------------------------------------------------------------------------
def connect(path: str, timeout_s: float = _CONNECT_TIMEOUT_S) -> socket.socket:
    """A connection to the daemon's socket at ``path``, waiting up to ``timeout_s`` for it to appear."""
    deadline = time.monotonic() + timeout_s
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def stream_records(path: str, request: dict) -> Iterator[tuple[int, dict]]:
    """Subscribe with ``request`` on the daemon's socket at ``path``; each record as (its reading stamp,
    the record) until the daemon ends the stream. A refusal raises."""
    with connect(path) as sock, sock.makefile("rb") as stream:
        sock.sendall(json.dumps(request).encode() + b"\n")
        for line in stream:
            now_ns = time.monotonic_ns()  # stamped before parsing: the line has been received
            record = json.loads(line)
            if "error" in record:
                raise RuntimeError(f"the daemon refused the subscription: {record['error']}")
            yield now_ns, record


def subscribe(path: str) -> dict:
    """Read the live stream from the socket at ``path`` until the daemon ends it; the latency of each record."""
    latency_ns: list[int] = []
    skipped = 0
    for now_ns, record in stream_records(path, {"cmd": "subscribe"}):
        if "host_ns" in record:
            latency_ns.append(now_ns - record["host_ns"])
        elif record.get("type") == "skipped":
            skipped += record["count"]
    return {"latency_ns": latency_ns, "skipped": skipped}


if __name__ == "__main__":
    print("ready", flush=True)  # imported: the bench may start the agent now
    Path(sys.argv[2]).write_text(json.dumps(subscribe(sys.argv[1])), encoding="utf-8")
