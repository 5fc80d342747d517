"""``kinefuse devices assign / list / forget``: assignments by address in a real kinefuse database."""

import subprocess
import sys

import sqlite_utils

from kinefuse.storage.schema import SCHEMA_VERSION


def kinefuse(*args):
    return subprocess.run([sys.executable, "-m", "kinefuse", "devices", *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_an_assignment_is_stored_listed_replaced_and_forgotten(tmp_path):
    db = str(tmp_path / "gym.db")
    made = kinefuse("assign", "c4:be:84:01:02:03", "--athlete", "Ana", "--segment", "left_shank", "--db", db)
    assert made.returncode == 0, made.stderr
    assert "C4:BE:84:01:02:03: Ana, left_shank" in made.stdout
    moved = kinefuse(
        "assign", "C4-BE-84-01-02-03", "--athlete", "Ana", "--segment", "right_shank", "--db", db
    )
    assert moved.returncode == 0, moved.stderr  # the same strap under another spelling: replaced, not added
    listed = kinefuse("list", "--db", db)
    assert listed.stdout.count("C4:BE:84:01:02:03") == 1 and "right_shank" in listed.stdout
    stored = sqlite_utils.Database(db)
    assert stored.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert [r["segment"] for r in stored["device_assignments"].rows] == ["right_shank"]
    forgotten = kinefuse("forget", "c4:be:84:01:02:03", "--db", db)
    assert forgotten.returncode == 0 and stored["device_assignments"].count == 0
    again = kinefuse("forget", "c4:be:84:01:02:03", "--db", db)
    assert again.returncode == 1 and "has no assignment" in again.stderr


def test_an_unknown_segment_is_refused_naming_the_known_ones(tmp_path):
    made = kinefuse("assign", "C4:BE:84:01:02:03", "--athlete", "Ana", "--segment", "left_shin",
                    "--db", str(tmp_path / "gym.db"))  # fmt: skip
    assert made.returncode == 1
    assert "unknown segment 'left_shin'" in made.stderr and "left_shank" in made.stderr


def test_scan_lists_straps_with_their_protocol_and_wearer(tmp_path):
    """A real scan through bleak and the bumble backend, in its own process, of emulated straps."""
    from kinefuse_plugins.ble_imu.emulation.peripherals import (
        EmulatedOpenStrap,
        EmulatedPolar,
        EmulatedWitMotion,
    )
    from kinefuse_plugins.ble_imu.emulation.radio import VirtualRadio

    db = str(tmp_path / "gym.db")
    kinefuse("assign", "F1:00:00:00:00:21", "--athlete", "Ana", "--segment", "pelvis", "--db", db)
    straps = [EmulatedWitMotion("WT901-21", "F1:00:00:00:00:21"), EmulatedPolar("Polar Sense 22", "F1:00:00:00:00:22"),
              EmulatedOpenStrap("KF-23", "F1:00:00:00:00:23")]  # fmt: skip
    with VirtualRadio(straps) as radio:
        scan = kinefuse(
            "scan", "--backend", "bumble", "--transport", radio.transport, "--timeout", "2", "--db", db
        )
    assert scan.returncode == 0, scan.stderr
    lines = {line.split()[0]: line for line in scan.stdout.splitlines()}
    assert "witmotion" in lines["F1:00:00:00:00:21"] and "Ana, pelvis" in lines["F1:00:00:00:00:21"]
    assert "polar" in lines["F1:00:00:00:00:22"] and "unassigned" in lines["F1:00:00:00:00:22"]
    assert "open" in lines["F1:00:00:00:00:23"] and "KF-23" in lines["F1:00:00:00:00:23"]
    assert " dBm" in lines["F1:00:00:00:00:23"]


def test_scan_without_an_adapter_says_so(tmp_path):
    scan = kinefuse("scan", "--backend", "bumble", "--transport", "tcp-client:127.0.0.1:9", "--timeout", "1",
                    "--db", str(tmp_path / "gym.db"))  # fmt: skip
    assert scan.returncode == 1
    assert "tcp-client:127.0.0.1:9" in scan.stderr and "Traceback" not in scan.stderr
