"""A bleak backend on bumble's Python Bluetooth host stack: BLE through any HCI transport bumble opens.

Pass ``backend=BumbleScanner`` / ``backend=BumbleClient`` and ``bumble_transport=SPEC`` to bleak's
`BleakScanner` / `BleakClient`; SPEC is a bumble transport spec (``usb:0``, ``hci-socket:0``,
``tcp-client:127.0.0.1:PORT`` for the emulation's `VirtualRadio`). All scanners and clients on one
event loop share one central `bumble.device.Device` per spec ("the adapter"), opened on first use with a fixed
random static address. When its transport dies every call raises `BleakError` naming the spec; the next
scan or connect opens it again.

Not supported: pairing and bonding (`pair`/`unpair` raise NotImplementedError; ``pair=True`` is logged and
ignored, as bleak's backend interface asks), indications preferred over notifications, cached service
discovery.

References: bleak's backend interface (``bleak/backends/client.py``, ``scanner.py``, ``service.py``,
``characteristic.py``, ``descriptor.py``, https://bleak.readthedocs.io/en/latest/backends/index.html) and
bumble's source (``bumble/device.py``, ``bumble/gatt_client.py``, ``bumble/transport/__init__.py``,
https://google.github.io/bumble/).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import att, core, hci, utils
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device
from bumble.gatt import Characteristic
from bumble.gatt_client import Client as GattClient
from bumble.transport import open_transport
from bumble.transport.common import Transport, TransportLostError

logger = logging.getLogger(__name__)

CENTRAL_ADDRESS = "C0:FF:EE:4B:1F:01"  # random static: the two top bits are set
CENTRAL_NAME = "kinefuse"
PREFERRED_MTU = 247
POWER_ON_TIMEOUT_S = 10.0
LINK_TEARDOWN_TIMEOUT_S = 2.0
REMEMBERED_ADVERTISERS = 1024  # phones nearby rotate private addresses; keep the most recent only

_SERVICE_UUID_LISTS = (
    AdvertisingData.Type.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.Type.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)
_SERVICE_DATA = (
    AdvertisingData.Type.SERVICE_DATA_16_BIT_UUID,
    AdvertisingData.Type.SERVICE_DATA_32_BIT_UUID,
    AdvertisingData.Type.SERVICE_DATA_128_BIT_UUID,
)
_PROPERTY_NAMES = {
    Characteristic.Properties.BROADCAST: "broadcast",
    Characteristic.Properties.READ: "read",
    Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    Characteristic.Properties.WRITE: "write",
    Characteristic.Properties.NOTIFY: "notify",
    Characteristic.Properties.INDICATE: "indicate",
    Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}


def bleak_uuid(value: UUID) -> str:
    """bumble UUID -> the lowercase 128-bit string bleak uses (``0000180d-0000-1000-8000-00805f9b34fb``)."""
    return str(uuid.UUID(bytes=value.uuid_128_bytes[::-1]))


def address_text(address: hci.Address) -> str:
    return address.to_string(with_type_qualifier=False)


@contextlib.contextmanager
def _bleak_errors(action: str, gone: Callable[[], str]) -> Iterator[None]:
    """Re-raise bumble's errors as bleak's; `gone()` explains a request cut short by a lost link."""
    try:
        yield
    except att.ATT_Error as error:
        raise BleakGATTProtocolError(error.error_code) from error
    except core.TimeoutError as error:
        raise TimeoutError(f"{action} timed out: {error}") from error
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        # bumble cancels a pending GATT request when its link drops; the caller was not cancelled.
        raise BleakError(f"{action} failed: {gone()}") from None
    except TransportLostError as error:
        raise BleakError(f"{action} failed: {gone()}") from error
    except core.BaseBumbleError as error:
        raise BleakError(f"{action} failed: {error}") from error


class _Central:
    """One bumble host stack on one HCI transport: the adapter shared by scanners and clients on a loop."""

    def __init__(self, spec: str, transport: Transport, device: Device) -> None:
        self.spec = spec
        self.transport = transport
        self.device = device
        self.lost = False
        self.connect_lock = asyncio.Lock()
        self.advertisers: dict[str, hci.Address] = {}
        self._scanning_users: set[object] = set()
        device.on(Device.EVENT_ADVERTISEMENT, self._remember_advertiser)
        if (terminated := getattr(transport.source, "terminated", None)) is not None:
            terminated.add_done_callback(lambda _future: self._on_transport_lost())

    @classmethod
    async def open(cls, spec: str) -> _Central:
        try:
            transport = await open_transport(spec)
        except (OSError, core.BaseBumbleError, ValueError) as error:
            raise BleakError(f"Bluetooth transport {spec!r} is unavailable: {error}") from error
        device = Device.with_hci(CENTRAL_NAME, hci.Address(CENTRAL_ADDRESS), transport.source, transport.sink)
        try:
            async with asyncio.timeout(POWER_ON_TIMEOUT_S):
                await device.power_on()
        except (TimeoutError, core.BaseBumbleError) as error:
            await transport.close()
            raise BleakError(f"Bluetooth adapter on {spec!r} did not power on: {error!r}") from error
        logger.info("opened Bluetooth adapter on %s", spec)
        return cls(spec, transport, device)

    @property
    def gone_reason(self) -> str:
        return f"Bluetooth transport {self.spec!r} is gone (adapter removed or its HCI link closed)"

    def ensure_available(self) -> None:
        if self.lost:
            raise BleakError(self.gone_reason)

    async def close(self) -> None:
        self.lost = True
        await self.transport.close()

    async def start_scanning(self, user: object, active: bool = True) -> None:
        self.ensure_available()
        self._scanning_users.add(user)
        if not self.device.is_scanning:
            with _bleak_errors("start scanning", lambda: self.gone_reason):
                await self.device.start_scanning(active=active, filter_duplicates=False)

    async def stop_scanning(self, user: object) -> None:
        self._scanning_users.discard(user)
        if not self._scanning_users and self.device.is_scanning and not self.lost:
            with _bleak_errors("stop scanning", lambda: self.gone_reason):
                await self.device.stop_scanning()

    async def find_advertiser(self, address: str) -> hci.Address:
        """The typed address of `address`, scanning until it advertises if it has not been heard yet."""
        if (known := self.advertisers.get(address.upper())) is not None:
            return known
        heard = asyncio.get_running_loop().create_future()

        def on_advertisement(advertisement: Advertisement) -> None:
            if address_text(advertisement.address) == address.upper() and not heard.done():
                heard.set_result(advertisement.address)

        self.device.on(Device.EVENT_ADVERTISEMENT, on_advertisement)
        try:
            await self.start_scanning(heard)
            return await utils.cancel_on_event(self.device, Device.EVENT_FLUSH, heard)
        finally:
            self.device.remove_listener(Device.EVENT_ADVERTISEMENT, on_advertisement)
            await self.stop_scanning(heard)

    async def connect(self, address: hci.Address) -> Connection:
        # bumble (like the HCI spec) allows one LE connection attempt at a time per adapter.
        async with self.connect_lock:
            self.ensure_available()
            try:
                return await self.device.connect(address, timeout=None)
            except asyncio.CancelledError:
                await self._cancel_connection_attempt()
                raise

    async def _cancel_connection_attempt(self) -> None:
        # The controller keeps initiating until told to stop; a later connect would be refused otherwise.
        if self.lost:
            return
        with contextlib.suppress(core.BaseBumbleError, TimeoutError):
            async with asyncio.timeout(LINK_TEARDOWN_TIMEOUT_S):
                await self.device.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())

    def _remember_advertiser(self, advertisement: Advertisement) -> None:
        address = address_text(advertisement.address)
        self.advertisers.pop(address, None)
        self.advertisers[address] = advertisement.address
        if len(self.advertisers) > REMEMBERED_ADVERTISERS:
            del self.advertisers[next(iter(self.advertisers))]

    def _on_transport_lost(self) -> None:
        if not self.lost:
            logger.warning("Bluetooth transport %s is gone", self.spec)
        self.lost = True


# Centrals by event loop, then by transport spec; a loop's entry disappears with the loop.
_centrals: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[_Central]]] = (
    weakref.WeakKeyDictionary()
)


async def central_for(spec: str) -> _Central:
    """The running loop's central on `spec`, opened now if it is not open (or its transport died)."""
    opened = _centrals.setdefault(asyncio.get_running_loop(), {})
    task = opened.get(spec)
    if task is None or _is_unusable(task):
        task = asyncio.get_running_loop().create_task(_Central.open(spec))
        opened[spec] = task
    return await asyncio.shield(task)


def _is_unusable(task: asyncio.Task[_Central]) -> bool:
    if not task.done():
        return False
    return task.cancelled() or task.exception() is not None or task.result().lost


async def close_centrals() -> None:
    """Close every adapter the running loop opened (at shutdown; the loop's end also releases them)."""
    for task in _centrals.pop(asyncio.get_running_loop(), {}).values():
        if task.done() and not _is_unusable(task):
            await task.result().close()
        else:
            task.cancel()


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's view of one bumble advertisement."""
    data = advertisement.data
    name = data.get(AdvertisingData.Type.COMPLETE_LOCAL_NAME) or data.get(
        AdvertisingData.Type.SHORTENED_LOCAL_NAME
    )
    # bumble merges a scan response into its advertisement, so a UUID may be listed twice.
    service_uuids = list(
        dict.fromkeys(
            bleak_uuid(value)
            for kind in _SERVICE_UUID_LISTS
            for values in data.get_all(kind)
            for value in values
        )
    )
    service_data = {
        bleak_uuid(service): bytes(payload)
        for kind in _SERVICE_DATA
        for service, payload in data.get_all(kind)
    }
    manufacturer_data = {
        company: bytes(payload)
        for company, payload in data.get_all(AdvertisingData.Type.MANUFACTURER_SPECIFIC_DATA)
    }
    return AdvertisementData(
        local_name=str(name) if name is not None else None,
        manufacturer_data=manufacturer_data,
        service_data=service_data,
        service_uuids=service_uuids,
        tx_power=data.get(AdvertisingData.Type.TX_POWER_LEVEL),
        rssi=advertisement.rssi,
        platform_data=(advertisement,),
    )


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend on bumble. Extra keyword argument: ``bumble_transport`` (a bumble transport spec)."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        bumble_transport: str,
        **_platform_kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._transport_spec = bumble_transport
        self._active = scanning_mode != "passive"
        self._central: _Central | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        central = await central_for(self._transport_spec)
        central.device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        try:
            await central.start_scanning(self, self._active)
        except BaseException:
            central.device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            raise
        self._central = central

    async def stop(self) -> None:
        central, self._central = self._central, None
        if central is not None:
            central.device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            await central.stop_scanning(self)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        advertised = advertisement_data(advertisement)
        if not self.is_allowed_uuid(advertised.service_uuids):
            return
        address = address_text(advertisement.address)
        device = self.create_or_update_device(
            address, address, advertised.local_name, advertisement.address, advertised
        )
        self.call_detection_callbacks(device, advertised)


class BumbleClient(BaseBleakClient):
    """bleak client backend on bumble. Extra keyword argument: ``bumble_transport`` (a bumble transport spec)."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        bumble_transport: str,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout, **kwargs
        )
        self._transport_spec = bumble_transport
        self._device_name: str | None = None
        self._peer_address: hci.Address | None = None
        if isinstance(address_or_ble_device, BLEDevice):
            self._device_name = address_or_ble_device.name
            if isinstance(address_or_ble_device.details, hci.Address):
                self._peer_address = address_or_ble_device.details
        self._central: _Central | None = None
        self._connection: Connection | None = None
        self._disconnecting = False
        self._notification_handlers: dict[int, Callable[[bytes], None]] = {}

    # --- connectivity ---

    @property
    def name(self) -> str:
        return self._device_name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._central is not None and not self._central.lost

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self.is_connected:
            return
        if pair:
            logger.warning(
                "bumble backend: pairing is not supported; connecting to %s without it", self.address
            )
        deadline = asyncio.get_running_loop().time() + kwargs.get("timeout", self._timeout)
        async with asyncio.timeout_at(deadline):
            self._central = await central_for(self._transport_spec)
        peer = await self._find_peer(deadline)
        async with asyncio.timeout_at(deadline):
            with self._bleak_errors("connect"):
                connection = await self._central.connect(peer)
            self._adopt(connection)
            try:
                with self._bleak_errors("service discovery"):
                    await connection.gatt_client.request_mtu(PREFERRED_MTU)
                    self.services = await self._discover_services(connection.gatt_client)
            except BaseException:
                await self._drop_link(connection)
                raise

    async def disconnect(self) -> None:
        if (connection := self._connection) is not None:
            await self._drop_link(connection)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "bumble backend: pairing is not supported (kinefuse's straps need no bonding)"
        )

    async def unpair(self) -> None:
        raise NotImplementedError("bumble backend: pairing is not supported, so there is nothing to unpair")

    # --- GATT I/O ---

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(characteristic.obj, use_cached, f"read {characteristic.uuid}")

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(descriptor.obj, use_cached, f"read descriptor {descriptor.handle}")

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        client = self._gatt_client()
        with self._bleak_errors(f"write {characteristic.uuid}"):
            await client.write_value(characteristic.obj, bytes(data), with_response=response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        client = self._gatt_client()
        with self._bleak_errors(f"write descriptor {descriptor.handle}"):
            await client.write_value(descriptor.obj, bytes(data), with_response=True)

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        client = self._gatt_client()

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        with self._bleak_errors(f"subscribe to {characteristic.uuid}"):
            await client.subscribe(characteristic.obj, deliver, prefer_notify=True)
        self._notification_handlers[characteristic.handle] = deliver

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        client = self._gatt_client()
        handler = self._notification_handlers.pop(characteristic.handle, None)
        with self._bleak_errors(f"unsubscribe from {characteristic.uuid}"):
            await client.unsubscribe(characteristic.obj, handler)

    # --- internals ---

    def _gone_reason(self) -> str:
        if self._central is not None and self._central.lost:
            return self._central.gone_reason
        return f"{self.address} disconnected"

    def _bleak_errors(self, action: str) -> contextlib.AbstractContextManager[None]:
        return _bleak_errors(f"{action} on {self.address}", self._gone_reason)

    def _gatt_client(self) -> GattClient:
        if self._central is not None:
            self._central.ensure_available()
        if self._connection is None:
            raise BleakError(f"Not connected to {self.address}")
        return self._connection.gatt_client

    async def _read(self, attribute: Any, use_cached: bool, action: str) -> bytearray:
        client = self._gatt_client()
        if use_cached and (cached := client.cached_values.get(attribute.handle)) is not None:
            return bytearray(cached[1])
        with self._bleak_errors(action):
            return bytearray(await client.read_value(attribute))

    async def _find_peer(self, deadline: float) -> hci.Address:
        assert self._central is not None
        if self._peer_address is not None:
            return self._peer_address
        try:
            async with asyncio.timeout_at(deadline):
                with self._bleak_errors("find"):
                    self._peer_address = await self._central.find_advertiser(self.address)
        except TimeoutError:
            raise BleakDeviceNotFoundError(
                self.address, f"Device with address {self.address} was not found"
            ) from None
        return self._peer_address

    def _adopt(self, connection: Connection) -> None:
        self._connection = connection
        self._disconnecting = False
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)

    async def _drop_link(self, connection: Connection) -> None:
        self._disconnecting = True
        link_up = self._connection is connection and self._central is not None and not self._central.lost
        if link_up:
            with contextlib.suppress(core.BaseBumbleError, TimeoutError):
                async with asyncio.timeout(LINK_TEARDOWN_TIMEOUT_S):
                    await connection.disconnect()
        self._connection = None

    def _on_disconnection(self, reason: int) -> None:
        self._connection = None
        self._notification_handlers.clear()
        if self._disconnecting:
            return
        logger.info("%s disconnected (reason 0x%02X)", self.address, reason)
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def _discover_services(self, client: GattClient) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service in await client.discover_services():
            bleak_service = BleakGATTService(service, service.handle, bleak_uuid(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in await client.discover_characteristics((), service):
                properties = [
                    name for flag, name in _PROPERTY_NAMES.items() if characteristic.properties & flag
                ]
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    bleak_uuid(characteristic.uuid),
                    properties,  # type: ignore[arg-type]  # names from bleak's CharacteristicPropertyName
                    lambda: self.mtu_size - 3,  # ATT write command header: opcode + handle
                    bleak_service,
                )
                collection.add_characteristic(bleak_characteristic)
                for descriptor in await client.discover_descriptors(characteristic):
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, bleak_uuid(descriptor.type), bleak_characteristic
                        )
                    )
        return collection
