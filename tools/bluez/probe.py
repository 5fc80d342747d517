"""Diagnostics for the make test-bluez guest: how long the pieces take under emulation, and whether bleak's BlueZ
backend finds the emulated straps, one scanner at a time and several at once (as several ble_imu sources do).

Run it in the guest: ``tools/bluez/guest.sh --run .venv/bin/python tools/bluez/probe.py``."""

import asyncio
import sys
import time

T0 = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.2f} s] {message}", flush=True)


def main() -> int:
    say("importing")
    from kinefuse_plugins.ble_imu import discovery
    from kinefuse_plugins.ble_imu.emulation.peripherals import (
        EmulatedOpenStrap,
        EmulatedPolar,
        EmulatedWitMotion,
    )

    sys.path.insert(0, ".")
    from tests.bluez.vhci_radio import VhciRadio

    say("imported kinefuse_plugins.ble_imu and bumble")
    from kinefuse.plugin_loader import load_plugins

    load_plugins(entry_points=False)
    say("loaded kinefuse's built-in plugins")
    straps = [EmulatedWitMotion("WT901-A", "F1:00:00:00:00:01"), EmulatedPolar("Polar Sense B", "F1:00:00:00:00:02"),
              EmulatedOpenStrap("KF-C", "F1:00:00:00:00:03", per_notification=4)]  # fmt: skip
    radio = discovery.Radio("bluez")
    with VhciRadio(straps):
        say("adapter powered")

        async def find(strap, timeout_s=10.0):
            start = time.monotonic()
            try:
                found = await discovery.find(radio, timeout_s, strap.address)
            except Exception as exc:  # noqa: BLE001 - a probe reports everything
                return f"{strap.name}: {type(exc).__name__}: {exc} after {time.monotonic() - start:.2f} s"
            return f"{strap.name}: {'found' if found else 'NOT found'} after {time.monotonic() - start:.2f} s"

        async def everything_seen(seconds=8.0):
            from collections import Counter

            from bleak import BleakScanner

            seen = Counter()
            async with BleakScanner(lambda device, adv: seen.update([device.address])):
                await asyncio.sleep(seconds)
            return f"callbacks per address in {seconds:g} s: {dict(seen)}"

        say(asyncio.run(everything_seen()))

        async def one_by_one():
            return [await find(strap) for strap in straps]

        async def together():
            return await asyncio.gather(*(find(strap) for strap in straps))

        for line in asyncio.run(one_by_one()):
            say(f"alone: {line}")
        for line in asyncio.run(together()):
            say(f"together: {line}")
    say("radio closed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
