"""tests/bluez runs only inside the `make test-bluez` guest (tools/bluez/guest.sh sets KINEFUSE_BLUEZ_GUEST=1
after loading hci_vhci and starting dbus-daemon and bluetoothd). Anywhere else, e.g. in `make test`, every
test here is skipped with the reason: the tests add a virtual controller to the system's Bluetooth, which
must not happen on a developer's machine."""

import os
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _why_not_here() -> str | None:
    if os.environ.get("KINEFUSE_BLUEZ_GUEST") != "1":
        return "BlueZ tier: runs only inside the `make test-bluez` guest (KINEFUSE_BLUEZ_GUEST is not 1)"
    if not Path("/dev/vhci").exists():
        return "BlueZ tier: no /dev/vhci (hci_vhci is not loaded)"
    if shutil.which("bluetoothd") is None and not Path("/usr/libexec/bluetooth/bluetoothd").exists():
        return "BlueZ tier: bluetoothd is not installed"
    if not Path("/run/dbus/system_bus_socket").exists():
        return "BlueZ tier: no system D-Bus (/run/dbus/system_bus_socket)"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _why_not_here()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)
