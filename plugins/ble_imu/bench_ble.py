"""Built-in bench ``kinefuse bench ble``: eight emulated open-profile straps (one sample per notification at
``rate_hz``, default 200 Hz) on the virtual radio, each read by the real ``ble_imu`` source through bleak and
the bumble backend: notifications per second decoded in all, and where each sample's time goes from the
moment it was due at the strap to the source handing it to the pipeline's channel, hop by hop, with the
daemon's own share (bleak callback stamp -> channel) apart from the emulator's and the radio's (strap send ->
bleak callback). The emulated radio and straps run in a process of their own, as a real radio is not in
the daemon's interpreter; the case is run on the machine as it is and again beside one busy loop per core.
The emulated strap's clock counts the host's monotonic microseconds, so a sample's device time is the moment
it was due.

Each hop is stamped with ``time.monotonic_ns()`` (one clock for both processes) by taps the bench alone
installs: the strap's send (``EmulatedOpenStrap.sent_times_ns``), the central adapter writing the HCI packet
that completes the notification to its TCP socket (``VirtualRadio.tap_adapter``), the central host's
transport reading it (its ``data_received``, wrapped), the bleak callback (the source's own stamp, the batch's
``host_ns``), the decode task taking it (the strap driver's ``samples``, wrapped) and the channel (the bench's
SourceContext). The daemon's code runs as it ships: no stamp is added to its normal path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np

from kinefuse.bench import make_row
from kinefuse.configschema import defaults
from kinefuse.interfaces import BenchSpec

STRAPS = 8
_WRAP = 2**32  # the strap's 32-bit microsecond counter
_HCI_ACL = 0x02  # HCI packet indicator of ACL data (Core Spec Vol 4 Part A, 2)
_ATT_CID, _ATT_NOTIFICATION = 0x0004, 0x1B  # L2CAP channel of ATT; ATT_HANDLE_VALUE_NTF
# the open-profile packet's first sample ticks: L2CAP header 4 + ATT opcode and handle 3 + packet offset 4
_TICKS_AT = 4 + 3 + 4

# the stamps of one sample, in order, and the hops between them
STAMPS = ("due", "sent", "written", "read", "callback", "decoding", "channel")
HOPS = (
    ("due", "sent", "sample due -> strap sends it (emulator's timer)"),
    ("sent", "written", "strap sends -> adapter writes it to TCP (emulated strap stack, link, controllers)"),
    ("written", "read", "adapter writes -> central host reads it (socket, wake-up of the source's loop)"),
    ("read", "callback", "host reads -> bleak callback stamps it (bumble host stack, bleak backend)"),
    ("callback", "decoding", "callback stamp -> decode task takes it (the source's event loop)"),
    ("decoding", "channel", "decode task takes it -> batch in the channel (decode, batch)"),
)
EMULATOR_SHARE = ("sent", "callback", "emulator + radio: strap send -> bleak notification callback")
DAEMON_SHARE = ("callback", "channel", "daemon: callback stamp -> batch in the pipeline channel")


class _Collector:
    """A SourceContext keeping, per sample the channel would receive: device time, callback stamp, emit time."""

    def __init__(self, source_id: str):
        self.source_id, self.log = source_id, logging.getLogger(f"kinefuse.bench.ble.{source_id}")
        self.device, self.samples, self.errors, self.dropped = None, 0, 0, 0
        self.database_path = None  # no daemon database: the straps go unlabelled
        self.emitted: list[tuple[np.ndarray, np.ndarray, int]] = []

    def add_device(self, device):
        self.device = device

    def emit(self, batch):
        self.emitted.append((batch.device_time, batch.host_ns, time.monotonic_ns()))
        self.samples += len(batch)

    def decode_error(self, message):
        self.errors += 1

    def note_dropped(self, samples):
        self.dropped += samples

    def restart(self) -> None:
        self.samples, self.errors, self.dropped, self.emitted = 0, 0, 0, []


class _SourceTaps:
    """The bench's stamps inside the source's process: each read of the central host's transport (enter, leave)
    and, per strap, when the decode task took each packet (keyed by its callback stamp)."""

    def __init__(self):
        self.reads: list[tuple[int, int]] = []
        self.taken: dict[str, dict[int, int]] = {}

    def tap_transport(self, packet_source) -> None:
        forward = packet_source.data_received  # bumble's StreamPacketSource: parses and runs the host stack

        def data_received(data: bytes) -> None:
            entered = time.monotonic_ns()
            forward(data)
            self.reads.append((entered, time.monotonic_ns()))

        packet_source.data_received = data_received  # asyncio's transport looks it up per read

    def tap_strap(self, source_id: str, strap) -> None:
        taken = self.taken.setdefault(source_id, {})
        decode = strap.samples  # what the decode task calls for each packet it takes

        def samples(packet: bytes, host_ns: int):
            taken[host_ns] = time.monotonic_ns()
            return decode(packet, host_ns)

        strap.samples = samples

    def read_at(self, callback_ns: np.ndarray) -> np.ndarray:
        """The start of the transport read during which each callback ran; -1 where none holds it."""
        if not self.reads:
            return np.full(len(callback_ns), -1, dtype=np.int64)
        entered, left = (np.array(column, dtype=np.int64) for column in zip(*self.reads, strict=True))
        index = np.searchsorted(entered, callback_ns, side="right") - 1
        inside = (index >= 0) & (callback_ns <= left[np.maximum(index, 0)])
        return np.where(inside, entered[np.maximum(index, 0)], -1)


class _AdapterTap:
    """Collects (ns, packet) for each HCI packet the central's adapter writes; parsed after the run."""

    def __init__(self):
        self.writes: list[tuple[int, bytes]] = []

    def __call__(self, packet: bytes) -> None:
        self.writes.append((time.monotonic_ns(), packet))


def notifications_written(writes: list[tuple[int, bytes]]) -> dict[tuple[int, int], int]:
    """(connection handle, first sample ticks) -> when the adapter wrote the ACL fragment completing that
    open-profile notification. HCI ACL header: handle (12 bits) and packet boundary flag (2 bits), length;
    a first fragment starts with the L2CAP header (length, channel), then ATT (opcode, handle, value)."""
    pending: dict[int, list] = {}  # handle -> [key or None, bytes of the L2CAP PDU still to come]
    written: dict[tuple[int, int], int] = {}
    for ns, packet in writes:
        if len(packet) < 5 or packet[0] != _HCI_ACL:
            continue
        handle_flags, length = struct.unpack_from("<HH", packet, 1)
        handle, boundary, payload = handle_flags & 0x0FFF, (handle_flags >> 12) & 0x3, packet[5 : 5 + length]
        if boundary in (0b00, 0b10):  # a first fragment
            l2cap_length, channel = struct.unpack_from("<HH", payload) if len(payload) >= 4 else (0, 0)
            notification = (
                channel == _ATT_CID and len(payload) >= _TICKS_AT + 4 and payload[4] == _ATT_NOTIFICATION
            )
            key = (handle, struct.unpack_from("<I", payload, _TICKS_AT)[0]) if notification else None
            pending[handle] = [key, l2cap_length + 4 - len(payload)]
        elif handle in pending:  # a continuing fragment
            pending[handle][1] -= len(payload)
        entry = pending.get(handle)
        if entry is not None and entry[1] <= 0:
            if entry[0] is not None:
                written[entry[0]] = ns
            del pending[handle]
    return written


def _radio_report(radio, straps, tap: _AdapterTap, links: dict[int, str]) -> dict:
    """What the radio side stamped, per strap name: sent {ticks: ns} and written {ticks: ns}; ``links``: the
    adapter's connection handles while the straps streamed (VirtualRadio.adapter_links)."""
    sent, writes = radio.call(lambda: ([(s.name, list(s.sent_ticks), list(s.sent_times_ns)) for s in straps],
                                       list(tap.writes)))  # fmt: skip
    names = {strap.address.upper(): strap.name for strap in straps}
    by_handle = {handle: names.get(address.upper()) for handle, address in links.items()}
    written: dict[str, dict[int, int]] = {}
    for (handle, ticks), ns in notifications_written(writes).items():
        if by_handle.get(handle) is not None:
            written.setdefault(by_handle[handle], {})[ticks] = ns
    return {
        "sent": {name: dict(zip(ticks, ns, strict=False)) for name, ticks, ns in sent},
        "written": written,
    }


def _straps() -> list[tuple[str, str]]:
    return [(f"KF-bench-{i}", f"F1:00:00:00:0B:{i:02X}") for i in range(STRAPS)]


def radio_process_main() -> None:
    """The emulated radio and straps in a process of their own (``python -c``, see `_Radio`): writes the
    transport spec as a line, then answers "mark" (the measured window starts: CPU time counts from here) and
    "report" (the stamps and the CPU time, pickled, then it closes), read as lines on its standard input."""
    from kinefuse_plugins.ble_imu.emulation.peripherals import EmulatedOpenStrap
    from kinefuse_plugins.ble_imu.emulation.radio import VirtualRadio

    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # anything else printed goes to standard error
    logging.basicConfig(level=logging.WARNING)
    peripherals = [EmulatedOpenStrap(name, address) for name, address in _straps()]
    tap = _AdapterTap()
    with VirtualRadio(peripherals) as radio:
        radio.tap_adapter(tap)
        answers.write(radio.transport.encode() + b"\n")
        answers.flush()
        marked, links = time.process_time(), {}
        for line in sys.stdin:
            if line.strip() == "mark":
                marked, links = time.process_time(), radio.adapter_links()
            elif line.strip() == "report":
                cpu_s = time.process_time() - marked
                pickle.dump({**_radio_report(radio, peripherals, tap, links), "cpu_s": cpu_s}, answers)
                answers.flush()
                break


class _Radio:
    """The radio under the bench: ``transport`` for the sources, ``mark()`` at the start of the measured window,
    ``report()`` at its end. ``mode`` "process" (default) runs it in a child process, "thread" in this one
    (a background thread, as the tests run it: the emulator then shares the source's interpreter)."""

    def __init__(self, mode: str):
        if mode not in ("process", "thread"):
            raise ValueError(f"radio must be 'process' or 'thread', got {mode!r}")
        self.mode = mode
        self._exit = contextlib.ExitStack()

    def __enter__(self) -> _Radio:
        if self.mode == "thread":
            from kinefuse_plugins.ble_imu.emulation.peripherals import EmulatedOpenStrap
            from kinefuse_plugins.ble_imu.emulation.radio import VirtualRadio

            self._straps = [EmulatedOpenStrap(name, address) for name, address in _straps()]
            self._radio = self._exit.enter_context(VirtualRadio(self._straps))
            self._tap = _AdapterTap()
            self._radio.tap_adapter(self._tap)
            self.transport = self._radio.transport
            return self
        code = "from kinefuse_plugins.ble_imu.bench_ble import radio_process_main; radio_process_main()"
        self._process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE)  # fmt: skip
        self._exit.callback(self._stop_process)
        self.transport = self._process.stdout.readline().decode().strip()
        if not self.transport:
            raise RuntimeError(f"the emulated radio's process ended (status {self._process.wait()})")
        return self

    def __exit__(self, *exc_info) -> None:
        self._exit.close()

    def _ask(self, line: str) -> None:
        self._process.stdin.write(line.encode() + b"\n")
        self._process.stdin.flush()

    def mark(self) -> None:
        """The measured window starts, every strap streaming."""
        if self.mode == "process":
            self._ask("mark")
        else:
            self._links = self._radio.adapter_links()

    def report(self) -> dict:
        if self.mode == "thread":
            return {**_radio_report(self._radio, self._straps, self._tap, self._links), "cpu_s": None}
        self._ask("report")
        return pickle.load(self._process.stdout)

    def _stop_process(self) -> None:
        self._process.stdin.close()  # it leaves its loop and closes the radio
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` processes spinning a pure-Python loop (a CPU-bound neighbour each), stopped on leaving."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)]  # fmt: skip
    try:
        yield loops
    finally:
        for loop in loops:
            loop.kill()
        for loop in loops:
            loop.wait()


async def _stream(radio: _Radio, rate_hz: float, duration_s: float):
    from kinefuse_plugins.ble_imu import bumble_backend
    from kinefuse_plugins.ble_imu.source import SCHEMA, BleImuSource

    straps = _straps()
    taps = _SourceTaps()
    taps.tap_transport((await bumble_backend.central_for(radio.transport)).transport.source)
    contexts = [_Collector(name) for name, _ in straps]
    sources = [BleImuSource({**defaults(SCHEMA), "protocol": "open", "address": address, "backend": "bumble",
                             "bumble_transport": radio.transport, "rate_hz": rate_hz}, name)
               for name, address in straps]  # fmt: skip
    for source in sources:
        taps.tap_strap(source.source_id, source.strap)
    tasks = [asyncio.ensure_future(s.run(c)) for s, c in zip(sources, contexts, strict=True)]
    try:
        async with asyncio.timeout(60):
            while not all(c.device and c.samples for c in contexts):  # every strap connected and streaming
                await asyncio.sleep(0.1)
        radio.mark()
        for c in contexts:
            c.restart()
        cpu_start = time.process_time()
        await asyncio.sleep(duration_s)
        cpu_s = time.process_time() - cpu_start
        return contexts, taps, cpu_s
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def trace(contexts: list[_Collector], taps: _SourceTaps, radio: dict) -> dict[str, np.ndarray]:
    """Every sample's stamps in ns (monotonic clock), one array per name in STAMPS; -1 where a stamp is missing."""
    columns: dict[str, list[np.ndarray]] = {stamp: [] for stamp in STAMPS}
    for c in contexts:
        if not c.emitted:
            continue
        device_us = np.concatenate([np.asarray(d, dtype=np.int64) for d, _, _ in c.emitted])
        callback = np.concatenate([np.asarray(h, dtype=np.int64) for _, h, _ in c.emitted])
        channel = np.concatenate([np.full(len(h), e, dtype=np.int64) for _, h, e in c.emitted])
        ticks = device_us % _WRAP
        callback_us = callback // 1000
        # the device time (32-bit microseconds) unwrapped to the last such time before the callback
        due = (callback_us - (callback_us - ticks) % _WRAP) * 1000
        sent, written = radio["sent"].get(c.source_id, {}), radio["written"].get(c.source_id, {})
        taken = taps.taken.get(c.source_id, {})
        columns["due"].append(due)
        columns["sent"].append(np.array([sent.get(int(t), -1) for t in ticks], dtype=np.int64))
        columns["written"].append(np.array([written.get(int(t), -1) for t in ticks], dtype=np.int64))
        columns["read"].append(taps.read_at(callback))
        columns["callback"].append(callback)
        columns["decoding"].append(np.array([taken.get(int(h), -1) for h in callback], dtype=np.int64))
        columns["channel"].append(channel)
    return {stamp: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for stamp, v in columns.items()}


def _case(busy: int, mode: str, rate_hz: float, duration_s: float) -> list[dict]:
    with busy_loops(busy), _Radio(mode) as radio:
        contexts, taps, cpu_s = asyncio.run(_stream(radio, rate_hz, duration_s))
        report = radio.report()
    stamps = trace(contexts, taps, report)
    traced = np.all([stamps[s] >= 0 for s in STAMPS], axis=0) if len(stamps["due"]) else np.zeros(0, bool)
    received = sum(c.samples for c in contexts)
    lost = sum(c.dropped + c.errors for c in contexts)
    case = f"{STRAPS} straps" + (f", {busy} busy loops beside" if busy else "")
    where = "a process of their own" if mode == "process" else "the bench's process (a thread)"
    cpu = f"CPU: source process {cpu_s / duration_s:.0%} of a core"
    if report["cpu_s"] is not None:
        cpu += f", radio process {report['cpu_s'] / duration_s:.0%}"
    note = (f"{STRAPS} emulated open-profile straps at {rate_hz:g} Hz, one sample per notification, "
            f"{duration_s:g} s; radio and straps in {where}, real bleak + bumble backend + ble_imu source; "
            f"{busy} busy loops beside; offered {STRAPS * rate_hz:g}/s; dropped or undecodable: {lost}; "
            f"traced through every hop: {int(traced.sum())} of {received}; {cpu}")  # fmt: skip
    rows = [make_row(case, "notifications decoded", "1/s", received / duration_s, "higher", note=note)]

    def interval_ms(start: str, end: str, where: np.ndarray) -> np.ndarray:
        return (stamps[end][where] - stamps[start][where]) / 1e6

    def percentile_rows(metric: str, values: np.ndarray, labels=(50, 99)) -> list[dict]:
        out = []
        for label in labels:
            value = float(np.percentile(values, label)) if len(values) else None
            out.append(make_row(case, metric.format(p=label), "ms", value, "lower",
                                note=note if len(values) else f"no sample measured; {note}"))  # fmt: skip
        return out

    whole = stamps["channel"] >= 0
    rows += percentile_rows(
        "latency p{p}, send to channel", interval_ms("due", "channel", whole), (50, 90, 99)
    )
    for start, end, label in (EMULATOR_SHARE, DAEMON_SHARE):
        known = (stamps[start] >= 0) & (stamps[end] >= 0)
        rows += percentile_rows(label + ", p{p}", interval_ms(start, end, known))
        if label == DAEMON_SHARE[2]:
            rows[-1]["note"] += "; goal: p99 <= 10 ms on any 2-core machine (issue 13)"
    for number, (start, end, label) in enumerate(HOPS, 1):
        rows += percentile_rows(f"hop {number}, {label}, p{{p}}", interval_ms(start, end, traced))
    return rows


def run(options: dict) -> list[dict]:
    """Options: ``duration_s`` (10), ``rate_hz`` (200), ``radio`` ("process" or "thread"), ``busy_loops``
    (the cases: busy loops beside the run; default none, then one per core this process may use)."""
    duration_s = options.get("duration_s") or 10.0
    rate_hz = float(options.get("rate_hz") or 200.0)
    mode = options.get("radio") or "process"
    cases = options.get("busy_loops") or (0, len(os.sched_getaffinity(0)))
    rows = []
    for busy in cases:
        rows += _case(busy, mode, rate_hz, duration_s)
    return rows


SPEC = BenchSpec("ble", __doc__.strip(), run)
