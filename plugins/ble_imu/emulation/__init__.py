"""Emulated BLE straps for tests and benches: a virtual radio (radio.py) whose peripherals (peripherals.py)
speak the real protocols, so the plugin's own code runs unchanged against them."""
