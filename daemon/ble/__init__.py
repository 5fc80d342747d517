"""Bluetooth LE IMU straps: protocols, the bumble-backed bleak backend, emulated peripherals."""
