"""Pure codecs for the IMU strap protocols: bytes in, ``Decoded`` out (or ``DecodeError``), and encoders
for the emulated peripherals.  No I/O here: the BLE backend feeds notifications in."""
