"""Finding straps: which radio to use (the system's Bluetooth through bleak, or a bumble transport through
kinefuse's own bleak backend), scanning, and picking one strap by address, name or service UUID."""

from __future__ import annotations

import asyncio
import dataclasses
import weakref

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

_SCAN_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # event loop -> {Radio: asyncio.Lock}


@dataclasses.dataclass(frozen=True)
class Radio:
    """``bluez``: bleak's platform backend (BlueZ on Linux); ``bumble``: this plugin's bumble_backend over the
    bumble ``transport`` (a USB dongle ``usb:0``, an HCI socket, or the test emulator's TCP link)."""

    backend: str = "bluez"
    transport: str = ""

    def __post_init__(self) -> None:
        if self.backend not in ("bluez", "bumble"):
            raise ValueError(f"unknown BLE backend {self.backend!r}; known: bluez, bumble")
        if self.backend == "bumble" and not self.transport:
            raise ValueError("the bumble backend needs a transport (e.g. usb:0, tcp-client:127.0.0.1:6402)")

    def describe(self) -> str:
        if self.backend == "bumble":
            return f"bumble transport {self.transport}"
        return "the system's Bluetooth (BlueZ over D-Bus: is bluetoothd running, with an adapter?)"

    def scanner_kwargs(self) -> dict:
        if self.backend == "bluez":
            return {}
        from kinefuse_plugins.ble_imu.bumble_backend import BumbleScanner

        return {"backend": BumbleScanner, "bumble_transport": self.transport}

    def client_kwargs(self) -> dict:
        if self.backend == "bluez":
            return {}
        from kinefuse_plugins.ble_imu.bumble_backend import BumbleClient

        return {"backend": BumbleClient, "bumble_transport": self.transport}


@dataclasses.dataclass(frozen=True)
class Found:
    address: str
    name: str | None
    rssi: int
    service_uuids: tuple[str, ...]
    protocol: str | None  # the strap protocol its advertised services name, if any


async def scan(timeout_s: float, radio: Radio) -> list[Found]:
    """Every device advertising within ``timeout_s``, strongest first."""
    seen = await BleakScanner.discover(timeout_s, return_adv=True, **radio.scanner_kwargs())
    found = [_found(device, adv) for device, adv in seen.values()]
    return sorted(found, key=lambda f: -f.rssi)


async def find(radio: Radio, timeout_s: float, address: str = "", name: str = "",
               service_uuid: str = "") -> tuple[BLEDevice, AdvertisementData] | None:  # fmt: skip
    """The first strap matching every criterion given (address, advertised name, advertised service)."""

    def matches(device: BLEDevice, adv: AdvertisementData) -> bool:
        return ((not address or device.address.upper() == address.upper())
                and (not name or (adv.local_name or device.name) == name)
                and (not service_uuid or service_uuid.lower() in [u.lower() for u in adv.service_uuids]))  # fmt: skip

    hits: list[tuple[BLEDevice, AdvertisementData]] = []

    def keep(device: BLEDevice, adv: AdvertisementData) -> bool:
        if matches(device, adv):
            hits.append((device, adv))
            return True
        return False

    async with _scan_lock(radio):
        device = await BleakScanner.find_device_by_filter(keep, timeout_s, **radio.scanner_kwargs())
    return None if device is None else hits[-1]


def _scan_lock(radio: Radio) -> asyncio.Lock:
    """One scan at a time per radio: BlueZ allows one discovery per D-Bus client (bleak shares one per
    process), so straps looking at once would fail each other with InProgress, and one stopping its scan
    would stop the others'. Each scan ends as soon as its strap is seen, so waiting is short."""
    locks = _SCAN_LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(radio, asyncio.Lock())


def _found(device: BLEDevice, adv: AdvertisementData) -> Found:
    from kinefuse_plugins.ble_imu.straps import protocol_of

    uuids = tuple(u.lower() for u in adv.service_uuids)
    return Found(device.address, adv.local_name or device.name, adv.rssi, uuids, protocol_of(uuids))
