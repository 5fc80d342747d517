"""bleak's real BleakScanner/BleakClient over the bumble backend, against emulated straps on a virtual radio."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bumble.gatt import GATT_CHARACTERISTIC_USER_DESCRIPTION_DESCRIPTOR, Characteristic, Descriptor, Service

from kinefuse_plugins.ble_imu.bumble_backend import BumbleClient, BumbleScanner, close_centrals
from kinefuse_plugins.ble_imu.emulation.radio import EmulatedPeripheral, VirtualRadio

STRAP_SERVICE = "a3c10001-6b8e-4f2a-9d3e-2f6c1b7e0a11"
SAMPLES = "a3c10002-6b8e-4f2a-9d3e-2f6c1b7e0a11"
COMMAND = "a3c10003-6b8e-4f2a-9d3e-2f6c1b7e0a11"
FIRMWARE = "a3c10004-6b8e-4f2a-9d3e-2f6c1b7e0a11"
CCCD = "00002902-0000-1000-8000-00805f9b34fb"
USER_DESCRIPTION = "00002901-0000-1000-8000-00805f9b34fb"
HEART_RATE_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
COMPANY_ID = 0xFFFF  # reserved for testing by the Bluetooth SIG
SCENARIO_TIMEOUT_S = 30.0


class TestStrap(EmulatedPeripheral):
    """A strap with a notify (samples), a write (commands, with a writable description) and a read (firmware)."""

    __test__ = False  # not a pytest class

    def __init__(
        self, index: int, *, service_uuid: str = STRAP_SERVICE, accepts_connections: bool = True
    ) -> None:
        service = Service(
            service_uuid,
            [
                Characteristic(SAMPLES, Characteristic.Properties.NOTIFY, Characteristic.READABLE, b""),
                Characteristic(
                    COMMAND,
                    Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
                    Characteristic.WRITEABLE,
                    b"",
                    descriptors=[
                        Descriptor(
                            GATT_CHARACTERISTIC_USER_DESCRIPTION_DESCRIPTOR,
                            Descriptor.READABLE | Descriptor.WRITEABLE,
                            b"commands",
                        )
                    ],
                ),
                Characteristic(
                    FIRMWARE, Characteristic.Properties.READ, Characteristic.READABLE, b"fw-1.2.3"
                ),
            ],
        )
        super().__init__(
            f"STRAP-{index}",
            f"F1:00:00:00:00:{index:02X}",
            [service],
            manufacturer_data={COMPANY_ID: bytes([index])},
            accepts_connections=accepts_connections,
        )


def counter_bytes(tick: int) -> bytes:
    return tick.to_bytes(4, "little")


def run(radio: VirtualRadio, scenario: Callable[[VirtualRadio], Awaitable[None]]) -> None:
    """Run a scenario on a fresh loop, as the daemon would, and release the adapter afterwards."""

    async def main() -> None:
        try:
            async with asyncio.timeout(SCENARIO_TIMEOUT_S):
                await scenario(radio)
        finally:
            await close_centrals()

    asyncio.run(main())


def client(target, radio: VirtualRadio, **kwargs) -> BleakClient:
    return BleakClient(target, backend=BumbleClient, bumble_transport=radio.transport, **kwargs)


def watched_client(target, radio: VirtualRadio) -> tuple[BleakClient, asyncio.Event]:
    """A client and the event its disconnected callback sets."""
    dropped = asyncio.Event()
    return client(target, radio, timeout=5.0, disconnected_callback=lambda _client: dropped.set()), dropped


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


def test_scan_finds_straps_by_name_and_service_uuid_with_rssi():
    straps = [TestStrap(index) for index in (1, 2, 3)]
    other = TestStrap(9, service_uuid=HEART_RATE_SERVICE)

    async def scenario(radio: VirtualRadio) -> None:
        found = await BleakScanner.discover(
            timeout=0.5,
            return_adv=True,
            service_uuids=[STRAP_SERVICE],
            backend=BumbleScanner,
            bumble_transport=radio.transport,
        )
        assert sorted(device.name for device, _ in found.values()) == ["STRAP-1", "STRAP-2", "STRAP-3"]
        for device, advertisement in found.values():
            assert advertisement.service_uuids == [STRAP_SERVICE]
            assert advertisement.manufacturer_data == {COMPANY_ID: bytes([int(device.name[-1])])}
            assert -127 <= advertisement.rssi < 0

        strap = await BleakScanner.find_device_by_name(
            "STRAP-2", timeout=2.0, backend=BumbleScanner, bumble_transport=radio.transport
        )
        assert strap is not None and strap.address == "F1:00:00:00:00:02"
        legacy_advertiser = await BleakScanner.find_device_by_name(
            "STRAP-9", timeout=2.0, backend=BumbleScanner, bumble_transport=radio.transport
        )
        assert (
            legacy_advertiser is not None
        )  # its advertisement fits 31 bytes; the others' need extended PDUs
        async with client(strap, radio, timeout=5.0) as central:
            assert central.name == "STRAP-2"
            assert await central.read_gatt_char(FIRMWARE) == bytearray(b"fw-1.2.3")

    with VirtualRadio([*straps, other]) as radio:
        run(radio, scenario)


def test_connect_read_write_and_every_notification_in_order():
    strap = TestStrap(1)
    commands: list[bytes] = []
    strap.on_write(COMMAND, commands.append)

    async def scenario(radio: VirtualRadio) -> None:
        async with client("F1:00:00:00:00:01", radio, timeout=5.0) as central:
            assert central.is_connected and central.mtu_size == 247
            assert central.services.get_service(STRAP_SERVICE) is not None
            assert await central.read_gatt_char(FIRMWARE) == bytearray(b"fw-1.2.3")

            await central.write_gatt_char(COMMAND, b"start", response=True)
            await central.write_gatt_char(COMMAND, b"rate=200", response=False)
            await wait_until(lambda: len(commands) == 2, timeout=2.0)
            assert commands == [b"start", b"rate=200"]

            description = central.services.get_characteristic(COMMAND).get_descriptor(USER_DESCRIPTION)
            assert await central.read_gatt_descriptor(description.handle) == bytearray(b"commands")
            await central.write_gatt_descriptor(description.handle, b"cmds")
            assert await central.read_gatt_descriptor(description.handle) == bytearray(b"cmds")

            received: list[bytearray] = []
            await central.start_notify(SAMPLES, lambda _characteristic, data: received.append(data))
            cccd = central.services.get_characteristic(SAMPLES).get_descriptor(CCCD)
            assert await central.read_gatt_descriptor(cccd.handle) == bytearray(b"\x01\x00")

            radio.call(strap.start_stream, SAMPLES, 200.0, counter_bytes, 500)
            await wait_until(lambda: len(received) == 500, timeout=10.0)
            assert all(isinstance(data, bytearray) for data in received)
            assert [int.from_bytes(data, "little") for data in received] == list(range(500))

            await central.stop_notify(SAMPLES)
            radio.call(strap.notify, SAMPLES, b"late")
            await asyncio.sleep(0.1)
            assert len(received) == 500

    with VirtualRadio([strap]) as radio:
        run(radio, scenario)


def test_eight_straps_stream_to_eight_concurrent_clients():
    straps = [TestStrap(index) for index in range(1, 9)]
    samples_each = 500  # 5 s at 100 Hz

    async def scenario(radio: VirtualRadio) -> None:
        centrals = [client(strap.address, radio, timeout=10.0) for strap in straps]
        received: list[list[int]] = [[] for _ in straps]
        await asyncio.gather(*(central.connect() for central in centrals))
        try:
            for central, log in zip(centrals, received, strict=True):
                await central.start_notify(
                    SAMPLES, lambda _characteristic, data, log=log: log.append(int.from_bytes(data, "little"))
                )
            for strap in straps:
                radio.call(strap.start_stream, SAMPLES, 100.0, counter_bytes, samples_each)
            await wait_until(lambda: all(len(log) == samples_each for log in received), timeout=15.0)
        finally:
            await asyncio.gather(*(central.disconnect() for central in centrals))
        assert all(log == list(range(samples_each)) for log in received)

    with VirtualRadio(straps) as radio:
        started = time.monotonic()
        run(radio, scenario)
        assert time.monotonic() - started < 15.0


def test_peripheral_drop_fires_disconnected_callback_and_a_new_client_reconnects():
    strap = TestStrap(1)

    async def scenario(radio: VirtualRadio) -> None:
        first, dropped = watched_client("F1:00:00:00:00:01", radio)
        await first.connect()
        radio.call(strap.disconnect)
        async with asyncio.timeout(2.0):
            await dropped.wait()
        assert not first.is_connected
        with pytest.raises(BleakError, match="Not connected"):
            await first.read_gatt_char(FIRMWARE)

        async with client("F1:00:00:00:00:01", radio, timeout=5.0) as second:
            assert await second.read_gatt_char(FIRMWARE) == bytearray(b"fw-1.2.3")

    with VirtualRadio([strap]) as radio:
        run(radio, scenario)


def test_powered_off_strap_drops_the_link_and_stops_advertising():
    strap = TestStrap(1)

    async def scenario(radio: VirtualRadio) -> None:
        central, dropped = watched_client("F1:00:00:00:00:01", radio)
        async with central:
            radio.call(strap.power_off)
            async with asyncio.timeout(2.0):
                await dropped.wait()
        scan = {"timeout": 0.3, "backend": BumbleScanner, "bumble_transport": radio.transport}
        assert await BleakScanner.find_device_by_name("STRAP-1", **scan) is None
        radio.call(strap.power_on)
        assert await BleakScanner.find_device_by_name("STRAP-1", **scan) is not None

    with VirtualRadio([strap]) as radio:
        run(radio, scenario)


def test_connect_to_a_device_that_never_answers_times_out():
    silent = TestStrap(1, accepts_connections=False)

    async def scenario(radio: VirtualRadio) -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client("F1:00:00:00:00:01", radio, timeout=1.0).connect()
        assert time.monotonic() - started < 1.0 + 2.5  # the timeout, plus a bounded link teardown

    with VirtualRadio([silent]) as radio:
        run(radio, scenario)


def test_connect_to_an_address_nobody_advertises_reports_not_found():
    async def scenario(radio: VirtualRadio) -> None:
        with pytest.raises(BleakDeviceNotFoundError):
            await client("F1:00:00:00:00:7E", radio, timeout=0.5).connect()

    with VirtualRadio([TestStrap(1)]) as radio:
        run(radio, scenario)


def test_adapter_loss_raises_a_clear_error_and_a_new_adapter_works():
    strap = TestStrap(1)

    async def scenario(radio: VirtualRadio) -> None:
        central, dropped = watched_client("F1:00:00:00:00:01", radio)
        await central.connect()
        await central.start_notify(SAMPLES, lambda _characteristic, _data: None)

        radio.stop_adapter()
        async with asyncio.timeout(2.0):
            await dropped.wait()
        transport_named = f"transport '{radio.transport}'"
        with pytest.raises(BleakError, match=transport_named):
            await central.read_gatt_char(FIRMWARE)
        with pytest.raises(BleakError, match=transport_named):
            await client("F1:00:00:00:00:01", radio, timeout=5.0).connect()
        with pytest.raises(BleakError, match=transport_named):
            await BleakScanner.discover(timeout=0.2, backend=BumbleScanner, bumble_transport=radio.transport)
        await central.disconnect()  # harmless once the link is gone

        radio.start_adapter()
        async with client("F1:00:00:00:00:01", radio, timeout=5.0) as again:
            assert await again.read_gatt_char(FIRMWARE) == bytearray(b"fw-1.2.3")

    with VirtualRadio([strap]) as radio:
        run(radio, scenario)
