"""Emulated BLE peripherals on bumble's in-process virtual radio, for testing real BLE code without Bluetooth.

Each `EmulatedPeripheral` is a complete bumble host stack (`bumble.device.Device`) on its own emulated
`bumble.controller.Controller`; `VirtualRadio` joins them on one `bumble.link.LocalLink` and adds one more
controller, the central's "adapter", served over an HCI-over-TCP socket on 127.0.0.1 (bumble's tcp-server
transport), so a central opens it with the bumble transport spec `radio.transport`
(``tcp-client:127.0.0.1:PORT``), as it would open ``usb:0`` on real hardware. The radio runs on its own event
loop in a background thread; `VirtualRadio.call` runs peripheral actions there.

Emulation limits worth knowing (bumble's controller, not this module): every advertisement reports RSSI
-50 dBm, scan responses are never transmitted (so all advertised fields travel in the advertising PDU; when they
exceed 31 bytes the peripheral uses extended advertising), and link-layer timing is instantaneous.

References: bumble's source (``bumble/controller.py``, ``bumble/link.py``, ``bumble/transport/tcp_server.py``,
``bumble/device.py``, ``bumble/gatt.py``) and https://google.github.io/bumble/ (API and transports pages).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bumble import data_types, hci, ll
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import (
    AdvertisingEventProperties,
    AdvertisingParameters,
    AdvertisingSet,
    Connection,
    Device,
)
from bumble.gatt import Characteristic, Service
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink, Transport
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

logger = logging.getLogger(__name__)

LEGACY_ADVERTISING_DATA_LIMIT = 31
CALL_TIMEOUT_S = 10.0

WriteCallback = Callable[[bytes], Any]
SampleProducer = Callable[[int], bytes]


class _UnresponsiveController(Controller):
    """A controller that advertises but drops every link-layer PDU addressed to it: a device that never answers.

    The central's controller reports the link created once it sends CONNECT_IND, as real controllers do; a
    real one would then end it after six silent connection intervals, bumble's emulated one never does, so the
    central sees its first GATT exchange stall until its connect timeout.
    """

    def on_le_connect_ind(self, packet: ll.ConnectInd) -> None:
        logger.debug("%s ignores a connection request", self.name)

    def on_ll_control_pdu(self, sender_address: hci.Address, packet: ll.ControlPdu) -> None:
        logger.debug("%s ignores a link-layer control PDU", self.name)

    def on_link_acl_data(self, sender_address: hci.Address, transport: Any, data: bytes) -> None:
        logger.debug("%s ignores ACL data", self.name)


class NotificationStream:
    """Notifies one characteristic at a fixed rate; `produce(tick)` makes each notification's bytes.

    Runs on the radio's loop. Ticks are scheduled from the start time, so the rate does not drift; a tick
    that finds no subscriber is still counted (the sensor keeps sampling while nobody listens).
    """

    def __init__(
        self,
        peripheral: EmulatedPeripheral,
        characteristic_uuid: str,
        rate_hz: float,
        produce: SampleProducer,
        count: int | None,
    ) -> None:
        self.sent = 0
        self.start_ns: int | None = None  # host monotonic ns of tick 0's scheduled time
        self._peripheral = peripheral
        self._characteristic_uuid = characteristic_uuid
        self._period_s = 1.0 / rate_hz
        self._produce = produce
        self._count = count
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.start_ns = round(start * 1e9)  # the loop's clock is time.monotonic()
        while self._count is None or self.sent < self._count:
            await self._peripheral.notify(self._characteristic_uuid, self._produce(self.sent))
            self.sent += 1
            await asyncio.sleep(max(0.0, start + self.sent * self._period_s - loop.time()))

    def stop(self) -> None:
        self.task.cancel()


class EmulatedPeripheral:
    """A BLE peripheral on the virtual radio: GATT services, advertising, and the ways a real strap misbehaves.

    Subclasses (or callers) build the bumble `Service`/`Characteristic` objects. Methods other than
    `on_write` and `characteristic` must run on the radio's loop, i.e. through `VirtualRadio.call`
    (`on_write` too, once the radio is running).

    Args:
        name: advertised complete local name (and GAP device name).
        address: random static address, e.g. ``"F1:00:00:00:00:01"`` (top two bits set).
        services: the GATT services to serve.
        advertised_service_uuids: service UUIDs put in the advertisement; default: all of `services`.
        manufacturer_data: company identifier -> bytes, advertised.
        accepts_connections: False makes a device that advertises but never answers a connection.
        advertising_interval_ms: advertising interval.
    """

    def __init__(
        self,
        name: str,
        address: str,
        services: Sequence[Service],
        *,
        advertised_service_uuids: Sequence[str] | None = None,
        manufacturer_data: dict[int, bytes] | None = None,
        accepts_connections: bool = True,
        advertising_interval_ms: float = 50.0,
    ) -> None:
        self.name = name
        self.address = address
        self.services = list(services)
        self.advertised_service_uuids = list(
            advertised_service_uuids
            if advertised_service_uuids is not None
            else [str(service.uuid) for service in self.services]
        )
        self.manufacturer_data = dict(manufacturer_data or {})
        self.accepts_connections = accepts_connections
        self.advertising_interval_ms = advertising_interval_ms
        self.powered = False
        self.streams: list[NotificationStream] = []
        self._device: Device | None = None
        self._controller: Controller | None = None
        self._advertising_set: AdvertisingSet | None = None
        self._readvertising: set[asyncio.Task[None]] = set()

    # --- radio lifecycle (called by VirtualRadio) ---

    async def attach(self, link: LocalLink) -> None:
        """Create this peripheral's controller and host on `link`, then power on and advertise."""
        controller_class = Controller if self.accepts_connections else _UnresponsiveController
        self._controller = controller_class(f"{self.name}-controller", link=link)
        host = Host(self._controller, AsyncPipeSink(self._controller))
        self._device = Device(name=self.name, address=hci.Address(self.address), host=host)
        self._device.add_services(self.services)
        self._device.on(Device.EVENT_CONNECTION, self._on_connection)
        await self._device.power_on()
        self._advertising_set = await self._device.create_advertising_set(
            advertising_parameters=self._advertising_parameters(),
            advertising_data=self.advertising_data(),
            auto_start=False,
        )
        await self.power_on()

    async def detach(self, link: LocalLink) -> None:
        """Power off and leave the link."""
        for stream in self.streams:
            stream.stop()
        await self.power_off()
        if self._controller is not None:
            link.remove_controller(self._controller)

    # --- what tests do to the peripheral ---

    @property
    def device(self) -> Device:
        if self._device is None:
            raise RuntimeError(f"{self.name} is not on a radio yet")
        return self._device

    @property
    def connections(self) -> list[Connection]:
        return list(self.device.connections.values())

    def characteristic(self, characteristic_uuid: str) -> Characteristic:
        wanted = UUID(characteristic_uuid)
        for service in self.services:
            for characteristic in service.characteristics:
                if characteristic.uuid == wanted:  # bumble compares UUIDs in their 128-bit form
                    return characteristic
        raise KeyError(f"{self.name} has no characteristic {characteristic_uuid}")

    def on_write(self, characteristic_uuid: str, callback: WriteCallback) -> None:
        """Call `callback(value)` on the radio's loop whenever a central writes the characteristic."""
        self.characteristic(characteristic_uuid).on(
            Characteristic.EVENT_WRITE, lambda _connection, value: callback(bytes(value))
        )

    async def notify(self, characteristic_uuid: str, data: bytes) -> None:
        """Send `data` as a notification to every central subscribed to the characteristic."""
        if self.powered:
            await self.device.notify_subscribers(self.characteristic(characteristic_uuid), bytes(data))

    def start_stream(
        self, characteristic_uuid: str, rate_hz: float, produce: SampleProducer, count: int | None = None
    ) -> NotificationStream:
        """Notify `produce(tick)` at `rate_hz` (forever, or `count` times); stop it with `.stop()`."""
        stream = NotificationStream(self, characteristic_uuid, rate_hz, produce, count)
        self.streams.append(stream)
        return stream

    async def disconnect(self, reason: int = hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR) -> None:
        """Drop every link from the peripheral's side; it advertises again afterwards."""
        for connection in self.connections:
            await connection.disconnect(reason)

    async def power_off(self) -> None:
        """Stop advertising and drop every link, as a strap switched off does."""
        self.powered = False
        await self.disconnect(hci.HCI_REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR)
        if self._advertising_set is not None and self._advertising_set.enabled:
            await self._advertising_set.stop()

    async def power_on(self) -> None:
        """Resume advertising."""
        self.powered = True
        await self._advertise()

    # --- internals ---

    def advertising_data(self) -> bytes:
        structures: list[Any] = [data_types.Flags(AdvertisingData.Flags.LE_GENERAL_DISCOVERABLE_MODE)]
        structures.append(data_types.CompleteLocalName(self.name))
        uuids = [UUID(value) for value in self.advertised_service_uuids]
        for size, list_type in (
            (2, data_types.CompleteListOf16BitServiceUUIDs),
            (4, data_types.CompleteListOf32BitServiceUUIDs),
            (16, data_types.CompleteListOf128BitServiceUUIDs),
        ):
            if sized := [value for value in uuids if len(value.uuid_bytes) == size]:
                structures.append(list_type(sized))
        for company, payload in self.manufacturer_data.items():
            structures.append(data_types.ManufacturerSpecificData(company, payload))
        return bytes(AdvertisingData(structures))

    def _advertising_parameters(self) -> AdvertisingParameters:
        fits_legacy = len(self.advertising_data()) <= LEGACY_ADVERTISING_DATA_LIMIT
        return AdvertisingParameters(
            advertising_event_properties=AdvertisingEventProperties(
                is_connectable=True, is_scannable=fits_legacy, is_legacy=fits_legacy
            ),
            primary_advertising_interval_min=self.advertising_interval_ms,
            primary_advertising_interval_max=self.advertising_interval_ms,
        )

    async def _advertise(self) -> None:
        if self._advertising_set is not None and self.powered and not self._advertising_set.enabled:
            await self._advertising_set.start()

    def _on_connection(self, connection: Connection) -> None:
        connection.on(Connection.EVENT_DISCONNECTION, lambda _reason: self._after_disconnection())

    def _after_disconnection(self) -> None:
        # A link just ended; a powered strap goes back to advertising so it can be found again.
        task = asyncio.get_running_loop().create_task(self._advertise())
        self._readvertising.add(task)
        task.add_done_callback(self._readvertising.discard)


class VirtualRadio:
    """Peripherals on one bumble `LocalLink` plus the central's adapter on an HCI TCP socket, in a thread.

    Use as ``with VirtualRadio(peripherals) as radio:`` and give the central ``radio.transport``.
    """

    def __init__(self, peripherals: Iterable[EmulatedPeripheral]) -> None:
        self.peripherals = list(peripherals)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="virtual-radio", daemon=True)
        self._link: LocalLink | None = None
        self._adapter: Controller | None = None
        self._adapter_transport: Transport | None = None

    @property
    def transport(self) -> str:
        """The bumble transport spec the central opens to reach its adapter."""
        return f"tcp-client:127.0.0.1:{self.port}"

    def __enter__(self) -> VirtualRadio:
        self.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def start(self) -> None:
        self._thread.start()
        self.call(self._open)

    def close(self) -> None:
        if self._thread.is_alive():
            self.call(self._shut_down)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=CALL_TIMEOUT_S)
        self._loop.close()

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
        """Run `fn(*args)` on the radio's loop (awaiting it if it returns an awaitable) and return its result."""

        async def invoke() -> Any:
            result = fn(*args)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(timeout)

    def tap_adapter(self, callback: Callable[[bytes], Any]) -> None:
        """Call `callback(packet)` with every HCI packet (type byte first) the central's adapter sends to its
        host, just before it is written to the TCP socket: where ``kinefuse bench ble`` stamps each
        notification leaving the radio. Applies to the adapter plugged in now."""
        self.call(self._tap_adapter, callback)

    def adapter_links(self) -> dict[int, str]:
        """The central adapter's live links: connection handle -> the peripheral's address."""
        return self.call(self._adapter_links)

    def stop_adapter(self) -> None:
        """Unplug the central's adapter: its HCI socket closes and every link it held times out."""
        self.call(self._unplug_adapter)

    def start_adapter(self) -> None:
        """Plug a fresh adapter back in on the same port."""
        self.call(self._plug_adapter)

    async def _open(self) -> None:
        self._link = LocalLink()
        for peripheral in self.peripherals:
            await peripheral.attach(self._link)
        await self._plug_adapter()

    async def _shut_down(self) -> None:
        await self._unplug_adapter()
        assert self._link is not None
        for peripheral in self.peripherals:
            await peripheral.detach(self._link)
        leftovers = asyncio.all_tasks() - {asyncio.current_task()}
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    async def _plug_adapter(self) -> None:
        if self._adapter is not None:
            return
        listening_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listening_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening_socket.bind(("127.0.0.1", self.port))
        self.port = listening_socket.getsockname()[1]
        self._adapter_transport = await open_tcp_server_transport_with_socket(listening_socket)
        self._adapter = Controller(
            "central-adapter",
            host_source=self._adapter_transport.source,
            host_sink=self._adapter_transport.sink,
            link=self._link,
        )

    async def _unplug_adapter(self) -> None:
        if self._adapter is None or self._link is None or self._adapter_transport is None:
            return
        self._drop_adapter_from_link()
        # bumble's TCP server transport keeps its listening server in `.server` and the accepted
        # connection in its sink's `.transport`; both must close for the central to see the adapter vanish.
        self._adapter_transport.server.close()
        if (client := self._adapter_transport.sink.transport) is not None:
            client.close()
        self._adapter_transport = None

    def _tap_adapter(self, callback: Callable[[bytes], Any]) -> None:
        if self._adapter_transport is None:
            raise RuntimeError("no adapter is plugged in")
        sink = self._adapter_transport.sink
        forward = sink.on_packet  # bumble's TcpServerPacketSink: writes to the accepted connection

        def tapped(packet: bytes) -> None:
            callback(packet)
            forward(packet)

        sink.on_packet = tapped  # the controller looks it up per packet (Controller.send_hci_packet)

    def _adapter_links(self) -> dict[int, str]:
        if self._adapter is None:
            return {}
        return {connection.handle: peer.to_string(with_type_qualifier=False)
                for peer, connection in self._adapter.le_connections.items()}  # fmt: skip

    def _drop_adapter_from_link(self) -> None:
        """The adapter's controller leaves the virtual link; its HCI transport is the caller's to close."""
        assert self._adapter is not None and self._link is not None
        for connection in list(self._adapter.le_connections.values()):
            # The peripherals stop hearing the adapter: their supervision timeout ends each link.
            connection.send_ll_control_pdu(ll.TerminateInd(hci.HCI_CONNECTION_TIMEOUT_ERROR))
        self._link.remove_controller(self._adapter)
        self._adapter = None
