"""Built-in command ``kinefuse devices``: ``scan`` for BLE straps (name, address, RSSI, the protocol they
speak, whom they are assigned to), ``assign ADDRESS --athlete NAME --segment SEGMENT``, ``forget ADDRESS``
and ``list``. Assignments live in the kinefuse database (``--db``, default $KINEFUSE_DB or kinefuse.db,
as the daemon's ``[storage] path``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from kinefuse.interfaces import CommandSpec


def configure(parser: argparse.ArgumentParser) -> None:
    database = argparse.ArgumentParser(add_help=False)
    default_db = Path(os.environ.get("KINEFUSE_DB", "kinefuse.db"))
    database.add_argument(
        "--db", type=Path, default=default_db, help="the kinefuse database (default %(default)s)"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    scan = actions.add_parser("scan", parents=[database], help="list the BLE straps in range")
    scan.add_argument("--timeout", type=float, default=5.0, help="seconds to listen (default 5)")
    scan.add_argument("--backend", choices=("bluez", "bumble"), default="bluez",
                      help="bluez: the system Bluetooth (bleak); bumble: a bumble transport")  # fmt: skip
    scan.add_argument(
        "--transport", default="", help="bumble transport, e.g. usb:0 or tcp-client:127.0.0.1:6402"
    )
    assign = actions.add_parser(
        "assign", parents=[database], help="record who wears a strap, on which segment"
    )
    assign.add_argument("address")
    assign.add_argument("--athlete", required=True)
    assign.add_argument("--segment", required=True, help="e.g. left_shank, right_thigh, pelvis")
    forget = actions.add_parser("forget", parents=[database], help="remove a strap's assignment")
    forget.add_argument("address")
    actions.add_parser("list", parents=[database], help="every assignment")


def run(args: argparse.Namespace) -> int:
    from kinefuse_plugins.ble_imu import assignments

    try:
        if args.action == "assign":
            made = assignments.assign(args.db, args.address, args.athlete, args.segment)
            print(f"{made.address}: {made.athlete}, {made.segment} (in {args.db})")
            return 0
        if args.action == "forget":
            if not assignments.forget(args.db, args.address):
                print(f"error: {args.address} has no assignment in {args.db}", file=sys.stderr)
                return 1
            print(f"{assignments.normalise_address(args.address)}: forgotten")
            return 0
        if args.action == "list":
            for a in assignments.assignments(args.db).values():
                print(f"{a.address}  {a.athlete}  {a.segment}  (since {a.assigned_wall})")
            return 0
        return _scan(args, assignments.assignments(args.db))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _scan(args: argparse.Namespace, assigned: dict) -> int:
    from bleak.exc import BleakError

    from kinefuse_plugins.ble_imu import discovery

    radio = discovery.Radio(args.backend, args.transport)
    try:
        found = asyncio.run(discovery.scan(args.timeout, radio))
    except (BleakError, OSError) as exc:  # no adapter, adapter off, BlueZ not running: say so, no traceback
        print(f"error: cannot scan with {radio.describe()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not found:
        print(f"no BLE devices seen in {args.timeout:g} s")
    for device in found:
        wearer = assigned.get(device.address)
        who = f"{wearer.athlete}, {wearer.segment}" if wearer else "unassigned"
        print(
            f"{device.address}  {device.rssi:>4} dBm  {device.protocol or '-':10s}  {device.name or '?':24s}  {who}"
        )
    return 0


SPEC = CommandSpec("devices", "scan for BLE straps; assign them to athletes and segments", configure, run)
