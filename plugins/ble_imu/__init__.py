"""The ``ble_imu`` plugin: Bluetooth LE IMU straps through bleak. Protocol codecs (protocols/, pure functions
that import nothing else of kinefuse), discovery, strap drivers, assignments, a bleak backend over bumble,
emulated straps on a virtual radio (emulation/), the ``devices`` command and ``kinefuse bench ble``.
Hooks: plugin.py. Guide: docs/ble.md; the open GATT profile: docs/ble-profile.md.

This file imports nothing, so a codec can be imported without the rest of kinefuse or its compiled build."""
