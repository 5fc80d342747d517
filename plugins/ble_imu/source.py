"""Built-in source ``ble_imu``: one BLE IMU strap (WitMotion, Polar PMD, or kinefuse's open profile) over
bleak — on the system's Bluetooth, or on a bumble transport through kinefuse's own bleak backend.

The strap is found by address, advertised name or service UUID, connected with a NEW BleakClient each time
(bleak's advice: a client is not reusable after a disconnect), configured (output rate, measurement start)
and subscribed. The notification callback only stamps ``time.monotonic_ns()`` and puts the raw bytes on a
bounded queue (oldest dropped and counted when full); a decode task turns packets into samples, so a slow
decode never stalls the Bluetooth stack. A packet that does not decode (DecodeError) is counted as a decode
error naming the strap and showing the bytes in hex, and the stream goes on. Any other exception while
decoding is a bug in kinefuse: it ends the stream at once and the source fails with a DecoderBug naming the
strap and the packet, for the supervisor to restart it within its restart budget. Device timestamps go to
the pipeline's clock aligner (offset + skew, robust to batched notifications); sequence numbers make lost
packets visible to ``sequence_gaps``.

A strap that is out of range, switched off, never answers, refuses an unpaired central, or an adapter that is
off or absent is not a failure of the daemon: the source logs the reason and retries forever with jittered
exponential backoff up to ``reconnect_max_s`` (the supervisor's restart budget is for crashes, not for straps
walking away). Only those errors are retried (``radio_errors``); anything else propagates. Battery level
(standard Battery Service) and RSSI are recorded in the device's metadata at connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from pathlib import Path

import numpy as np

from kinefuse.channels import ChannelClosed, DropOldestChannel
from kinefuse.configschema import Field
from kinefuse.interfaces import SourceContext, SourceSpec
from kinefuse.types import DeviceInfo, DeviceKind, imu_batch

_bumble_users: collections.Counter[str] = collections.Counter()  # running sources per bumble transport
BATTERY_LEVEL_UUID = "00002a19-0000-1000-8000-00805f9b34fb"  # Bluetooth SIG Battery Service, Battery Level
SCHEMA = {
    "protocol": Field(str, "open", "what the strap speaks", choices=("witmotion", "polar", "open")),
    "address": Field(str, "", "the strap's Bluetooth address (macOS: its UUID)"),
    "name": Field(str, "", "the strap's advertised name"),
    "service_uuid": Field(str, "", "find a strap advertising this service (default: the protocol's)"),
    "device_id": Field(str, "", "device id in storage (default: the source id)"),
    "backend": Field(
        str, "bluez", "bluez: the system's Bluetooth; bumble: a bumble transport", choices=("bluez", "bumble")
    ),  # fmt: skip
    "bumble_transport": Field(str, "", "for backend = bumble: e.g. usb:0, tcp-client:127.0.0.1:6402"),
    "rate_hz": Field(float, 100.0, "output rate asked of the strap", min=1.0, max=1000.0),
    "scan_timeout_s": Field(
        float, 10.0, "seconds to look for the strap before trying again", min=0.1, max=600.0
    ),
    "connect_timeout_s": Field(float, 10.0, "seconds to connect and set up", min=0.1, max=600.0),
    "reconnect_initial_s": Field(float, 0.5, "first wait before retrying", min=0.01, max=600.0),
    "reconnect_max_s": Field(float, 30.0, "longest wait between retries (the cap)", min=0.01, max=3600.0),
    "queue_capacity": Field(int, 4096, "notifications waiting to be decoded; beyond: oldest dropped", min=1),
    "assignments_db": Field(
        str,
        "",
        "database holding `kinefuse devices assign`'s labels (empty: the daemon's own, [storage] path)",
        is_path=True,
    ),  # fmt: skip
}


class DecoderBug(RuntimeError):
    """A strap driver or codec raised something other than DecodeError: a bug, not bad input."""


def radio_errors(backend: str) -> tuple[type[BaseException], ...]:
    """What the connect loop retries: the radio, the link and the strap's own answers, never our code.

    bleak raises BleakError and its subclasses (D-Bus errors, GATT protocol errors such as Insufficient
    Authentication, no adapter, device not found); TimeoutError when a strap never answers; OSError covers
    the source's own ConnectionError (not seen, disconnected, a measurement refused) and a transport's socket
    errors, EOFError a transport closed under a read; DecodeError a set-up answer the protocol does not
    allow. The bumble backend turns bumble's errors into bleak's, but one raised outside its requests (a lost
    transport, an HCI, ATT or connection error) is the radio too.
    """
    from bleak.exc import BleakError

    from kinefuse_plugins.ble_imu.protocols.common import DecodeError

    errors: tuple[type[BaseException], ...] = (BleakError, TimeoutError, OSError, EOFError, DecodeError)
    if backend == "bumble":  # bumble is installed only where it is used
        from bumble import core
        from bumble.transport.common import TransportLostError

        errors += (TransportLostError, core.ProtocolError, core.ConnectionError, core.TimeoutError)
    return errors


class BleImuSource:
    def __init__(self, options: dict, source_id: str):
        from kinefuse_plugins.ble_imu.discovery import Radio
        from kinefuse_plugins.ble_imu.straps import make_strap

        self.options, self.source_id = options, source_id
        self.device_id = options["device_id"] or source_id
        self.radio = Radio(options["backend"], options["bumble_transport"])
        self.strap = make_strap(options["protocol"], options["rate_hz"])
        self.service_uuid = options["service_uuid"] or self.strap.service_uuid
        self._failures = self._unpaired = 0
        self._streamed = False  # this connection delivered samples: the backoff starts over after it
        self._rng = random.Random()

    async def run(self, ctx: SourceContext) -> None:
        _bumble_users[self.radio.transport] += self.radio.backend == "bumble"
        try:
            await self._keep_connected(ctx)
        finally:
            if self.radio.backend == "bumble":
                _bumble_users[self.radio.transport] -= 1
                if not _bumble_users[self.radio.transport]:  # the last strap on it has stopped: release it
                    from kinefuse_plugins.ble_imu.bumble_backend import close_centrals

                    await close_centrals()

    async def _keep_connected(self, ctx: SourceContext) -> None:
        retried = radio_errors(self.radio.backend)
        while True:
            self._streamed = False
            try:
                await self._connect_and_stream(ctx)
            except retried as exc:  # out of range, adapter off, pairing refused, a vanished transport...
                ctx.log.warning("strap %s via %s: %s: %s%s; retrying", self._wanted(), self.radio.describe(),
                                type(exc).__name__, exc, _hint(exc))  # fmt: skip
            except Exception as exc:  # a bug: the supervisor restarts the source, within its restart budget
                ctx.log.error("strap %s via %s: %s: %s; not a radio problem, so not retried: the source fails",
                              self._wanted(), self.radio.describe(), type(exc).__name__, exc, exc_info=exc)  # fmt: skip
                raise
            self._failures = 0 if self._streamed else self._failures + 1
            await asyncio.sleep(self._backoff_s())

    def _backoff_s(self) -> float:
        """Exponential in the failures since the last good stream, capped, with full jitter."""
        ceiling = min(
            self.options["reconnect_max_s"], self.options["reconnect_initial_s"] * 2**self._failures
        )
        return self._rng.uniform(ceiling / 2, ceiling)

    def _wanted(self) -> str:
        o = self.options
        parts = [f"address {o['address']}" if o["address"] else "", f"name {o['name']!r}" if o["name"] else "",
                 f"service {self.service_uuid}"]  # fmt: skip
        return f"{self.source_id} ({', '.join(p for p in parts if p)})"

    async def _connect_and_stream(self, ctx: SourceContext) -> None:
        from bleak import BleakClient

        from kinefuse_plugins.ble_imu import discovery

        o = self.options
        found = await discovery.find(
            self.radio, o["scan_timeout_s"], o["address"], o["name"], self.service_uuid
        )
        if found is None:
            raise ConnectionError(f"not seen in {o['scan_timeout_s']:g} s of scanning (out of range or off?)")
        device, advertisement = found
        disconnected = asyncio.Event()
        client = BleakClient(device, disconnected_callback=lambda _: disconnected.set(),
                             timeout=o["connect_timeout_s"], **self.radio.client_kwargs())  # fmt: skip
        try:
            async with client:
                await self._stream(ctx, client, device, advertisement.rssi, disconnected)
        except TimeoutError as exc:  # bleak's and wait_for's carry no message of their own
            raise TimeoutError(f"no answer within connect_timeout_s = {o['connect_timeout_s']:g} s while "
                               "connecting, discovering its services or starting its stream") from exc  # fmt: skip

    async def _stream(
        self, ctx: SourceContext, client, device, rssi: int, disconnected: asyncio.Event
    ) -> None:
        packets: DropOldestChannel[tuple[int, bytes]] = DropOldestChannel(
            self.options["queue_capacity"],
            f"{self.source_id} notifications",
            on_drop=lambda _: self._lost(ctx),
        )

        def on_notification(_characteristic, data: bytearray) -> None:
            """Only stamp and enqueue: decoding happens elsewhere. Late ones, after the stream ended, go."""
            if not packets.closed:
                packets.put((time.monotonic_ns(), bytes(data)))

        await asyncio.wait_for(self.strap.start(client, on_notification), self.options["connect_timeout_s"])
        meta = {"address": device.address, "name": device.name, "protocol": self.strap.protocol, "rssi_dbm": rssi,
                "battery_percent": await _battery(client), **self._assignment(ctx, device.address)}  # fmt: skip
        ctx.add_device(DeviceInfo(self.device_id, DeviceKind.IMU, self.strap.clock_hz, meta=meta))
        ctx.log.info("strap %s connected: %s", self._wanted(), meta)
        decoding = asyncio.ensure_future(self._decode(ctx, packets, device.address))
        link_lost = asyncio.ensure_future(disconnected.wait())
        try:  # a decoder bug ends the stream now, rather than leaving packets to pile up until the link drops
            await asyncio.wait((decoding, link_lost), return_when=asyncio.FIRST_COMPLETED)
        finally:
            link_lost.cancel()
            packets.close()
            try:  # what arrived before the link went is decoded and kept; a DecoderBug is raised here
                await decoding
            finally:
                if client.is_connected:  # stopping, or a bug: tell the strap, briefly, then let the link go
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self.strap.stop(client), 1.0)
        raise ConnectionError(f"disconnected after {self.strap.packets} notifications")

    def _lost(self, ctx: SourceContext) -> None:
        ctx.note_dropped(1)
        self.strap.packet_lost()

    def _samples(self, ctx: SourceContext, packet: bytes, host_ns: int, address: str):
        """The packet's samples; None for one that does not decode (counted); DecoderBug for anything else."""
        from kinefuse_plugins.ble_imu.protocols.common import DecodeError, hexdump

        try:
            return self.strap.samples(packet, host_ns)
        except DecodeError as exc:
            ctx.decode_error(f"strap {self.source_id} ({address}): {exc}; packet {hexdump(packet)}")
            return None
        except Exception as exc:
            raise DecoderBug(f"strap {self.source_id} ({address}): {type(exc).__name__}: {exc} while decoding "
                             f"packet {hexdump(packet)}") from exc  # fmt: skip

    async def _decode(self, ctx: SourceContext, packets: DropOldestChannel, address: str) -> None:
        while True:
            try:
                arrived = await packets.get_many(256)
            except ChannelClosed:
                return
            decoded = []
            try:
                for host_ns, packet in arrived:
                    samples = self._samples(ctx, packet, host_ns, address)
                    # Polar: a frame may wait for its partner measurement's, giving no samples yet
                    if samples is not None and len(samples[0]):
                        decoded.append(samples)
            finally:  # what decoded before a decoder bug is kept
                self._emit(ctx, decoded)
            if self.strap.dropped > self._unpaired:  # samples no partner will come for (Polar)
                ctx.note_dropped(self.strap.dropped - self._unpaired)
                self._unpaired = self.strap.dropped

    def _emit(self, ctx: SourceContext, decoded: list) -> None:
        """One batch per decode round: seq, device time, host ns, acc, gyr, mag."""
        if not decoded:
            return
        *columns, mags = zip(*decoded, strict=True)
        mag = None if any(m is None for m in mags) else np.concatenate(mags)
        ctx.emit(imu_batch(self.source_id, self.device_id, *map(np.concatenate, columns), mag))
        self._streamed = True

    def _assignment(self, ctx: SourceContext, address: str) -> dict:
        """Who wears the strap on which segment; a label, so an unreadable database only loses the label."""
        import sqlite3

        from kinefuse_plugins.ble_imu import assignments

        path = Path(self.options["assignments_db"]) if self.options["assignments_db"] else ctx.database_path
        try:
            wearer = (
                assignments.assignments(path).get(assignments.normalise_address(address)) if path else None
            )
        except (sqlite3.Error, OSError) as exc:
            ctx.log.warning("strap %s: cannot read its assignment from %s (%s); streaming it unlabelled",
                            self.source_id, path, exc)  # fmt: skip
            return {}
        return {"athlete": wearer.athlete, "segment": wearer.segment} if wearer else {}


async def _battery(client) -> int | None:
    """The Battery Level characteristic, where the strap has one."""
    characteristic = client.services.get_characteristic(BATTERY_LEVEL_UUID) if client.services else None
    if characteristic is None:
        return None
    value = await client.read_gatt_char(characteristic)
    return int(value[0]) if value else None


SPEC = SourceSpec("ble_imu", BleImuSource, SCHEMA, __doc__.strip())


def _hint(exc: Exception) -> str:
    """What to do about errors a user can fix, appended to the retry warning."""
    from bleak.exc import BleakGATTProtocolError
    from bleak.exc import BleakGATTProtocolErrorCode as Code

    wants_bond = {
        Code.INSUFFICIENT_AUTHENTICATION,
        Code.INSUFFICIENT_ENCRYPTION,
        Code.INSUFFICIENT_ENCRYPTION_KEY_SIZE,
    }
    if isinstance(exc, BleakGATTProtocolError) and exc.code in wants_bond:
        return " (the strap wants a paired link: pair it once, e.g. `bluetoothctl pair ADDRESS`, see docs/ble.md)"
    return ""
