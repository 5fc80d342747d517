"""`VirtualRadio` with the central's adapter on the Linux kernel's VHCI (``/dev/vhci``) instead of a TCP socket.

The emulated straps stay exactly as in plugins/ble_imu/tests (bumble controllers and hosts on one `LocalLink`); only the
adapter's HCI goes elsewhere: opening ``/dev/vhci`` makes the kernel register a new ``hciN`` whose controller
is bumble's emulated one, so the kernel's Bluetooth stack, bluetoothd and bleak's BlueZ D-Bus backend all run
for real above it. Closing the file unplugs the adapter (the kernel removes ``hciN``). Used only inside the
`make test-bluez` guest (tools/bluez/), where the kernel has ``hci_vhci`` and bluetoothd runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from bumble import hci
from bumble.controller import Controller
from bumble.transport.vhci import open_vhci_transport

from kinefuse_plugins.ble_imu.emulation.radio import VirtualRadio

VHCI_DEVICE = "/dev/vhci"
ADAPTER_ADDRESS = "00:1B:DC:F0:00:01"  # a public address: a controller reporting 00:00:... is unconfigured
_LE_ENHANCED_COMPLETE = 1 << 9  # its bit in HCI_LE_Set_Event_Mask (Core Specification Vol 4, Part E, 7.8.1)
ADAPTER_TIMEOUT_S = 60.0  # bluetoothd under software emulation is slow to set a new adapter up


class _LinuxAdapter(Controller):
    """bumble's controller, keeping one LE address: its public one.

    Linux connects with its public address but scans with a fresh non-resolvable random address (LE Set Random
    Address). bumble's `LocalLink` sends a controller's LE ACL data from its *random* address whatever address
    the connection was made with, so the straps would drop everything the central sends ("no connection for
    <random address>"). Ignoring the random address keeps the central's ATT traffic on its connections; the
    straps never see the scanning address anyway (bumble's controller sends no scan requests).

    It also sends *LE Enhanced Connection Complete* where bumble's controller sends the legacy *LE Connection
    Complete*, once the host has unmasked the enhanced event: the Core Specification (Vol 4, Part E, 7.7.65.10)
    has a controller do so, and Linux, seeing LL Privacy and extended advertising, waits for it. Without this
    the kernel timed out about 4 s into every connection, sent LE Create Connection Cancel (which bumble
    acknowledges without acting) and dropped the link on its side only, so the strap stayed connected in the
    emulation and never advertised again."""

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if (
            isinstance(packet, hci.HCI_LE_Connection_Complete_Event)
            and self.le_event_mask & _LE_ENHANCED_COMPLETE
        ):
            packet = hci.HCI_LE_Enhanced_Connection_Complete_Event(
                status=packet.status,
                connection_handle=packet.connection_handle,
                role=packet.role,
                peer_address_type=packet.peer_address_type,
                peer_address=packet.peer_address,
                local_resolvable_private_address=hci.Address.ANY,  # no address resolution here
                peer_resolvable_private_address=hci.Address.ANY,
                connection_interval=packet.connection_interval,
                peripheral_latency=packet.peripheral_latency,
                supervision_timeout=packet.supervision_timeout,
                central_clock_accuracy=packet.central_clock_accuracy,
            )
        super().send_hci_packet(packet)

    @property
    def random_address(self) -> hci.Address:
        return self.public_address

    @random_address.setter
    def random_address(self, address: hci.Address | str) -> None:
        pass


class VhciRadio(VirtualRadio):
    """Use as ``with VhciRadio(peripherals) as radio:``; the central uses BlueZ (``backend = "bluez"``)."""

    def __init__(self, peripherals, device: str = VHCI_DEVICE) -> None:
        super().__init__(peripherals)
        self.device = device
        self._vhci = None

    @property
    def transport(self) -> str:
        return f"vhci:{self.device}"

    def start(self) -> None:
        super().start()
        wait_for_powered_adapter(ADAPTER_ADDRESS, ADAPTER_TIMEOUT_S)

    def start_adapter(self) -> None:
        super().start_adapter()
        wait_for_powered_adapter(ADAPTER_ADDRESS, ADAPTER_TIMEOUT_S)

    async def _plug_adapter(self) -> None:
        if self._adapter is not None:
            return
        self._vhci = await open_vhci_transport(self.device)
        self._adapter = _LinuxAdapter(
            "central-adapter",
            host_source=self._vhci.source,
            host_sink=self._vhci.sink,
            link=self._link,
            public_address=ADAPTER_ADDRESS,
        )

    async def _unplug_adapter(self) -> None:
        if self._adapter is None or self._link is None or self._vhci is None:
            return
        self._drop_adapter_from_link()
        vhci, self._vhci = self._vhci, None
        await vhci.close()  # the kernel removes the hciN device
        await asyncio.sleep(0.5)  # let bluetoothd see the index go before a replug reuses it


def wait_for_powered_adapter(address: str, timeout_s: float) -> str:
    """Block until bluetoothd exports an adapter with `address` and Powered = true; return its object path."""
    deadline = time.monotonic() + timeout_s
    last = "no answer from org.bluez"
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            path, powered = asyncio.run(_adapter_state(address))
            if path and powered:
                return path
            last = f"adapter {path or address} present={bool(path)} powered={powered}"
        time.sleep(0.2)
    alive = any(_is_bluetoothd(pid) for pid in os.listdir("/proc") if pid.isdigit())
    raise TimeoutError(
        f"bluetoothd did not power the VHCI adapter {address} in {timeout_s:g} s ({last}; bluetoothd "
        f"{'is running' if alive else 'is NOT running'})"
    )


def _is_bluetoothd(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as comm:
            return comm.read().strip() == "bluetoothd"
    except OSError:
        return False


async def _adapter_state(address: str) -> tuple[str | None, bool]:
    from dbus_fast import BusType, Message, MessageType
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path="/",
                interface="org.freedesktop.DBus.ObjectManager",
                member="GetManagedObjects",
            )
        )
    finally:
        bus.disconnect()
    if reply.message_type != MessageType.METHOD_RETURN:
        raise RuntimeError(f"GetManagedObjects: {reply.body}")
    for path, interfaces in reply.body[0].items():
        adapter = interfaces.get("org.bluez.Adapter1")
        if adapter and adapter["Address"].value.upper() == address.upper():
            return path, bool(adapter["Powered"].value)
    return None, False
