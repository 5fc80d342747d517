"""Which athlete wears which strap on which segment, by Bluetooth address, in the kinefuse database
(table ``device_assignments``, schema 4). ``kinefuse devices assign/forget`` write it; the BLE source
reads it to label its device."""

from __future__ import annotations

import dataclasses
import datetime
import sqlite3
from pathlib import Path

import sqlite_utils

from kinefuse.storage.schema import open_database
from kinefuse.types import SEGMENTS


@dataclasses.dataclass(frozen=True)
class Assignment:
    address: str
    athlete: str
    segment: str
    assigned_wall: str


def normalise_address(address: str) -> str:
    """``aa:bb:cc:dd:ee:ff`` and ``AA-BB-...`` name the same strap; macOS gives UUIDs, kept as they are."""
    return address.strip().upper().replace("-", ":")


def assign(db_path: Path, address: str, athlete: str, segment: str) -> Assignment:
    if segment not in SEGMENTS:
        raise ValueError(f"unknown segment {segment!r}; known: {', '.join(SEGMENTS)}")
    if not athlete.strip():
        raise ValueError("the athlete's name is empty")
    now = datetime.datetime.now(datetime.UTC).isoformat()
    db = open_database(db_path)
    try:
        with db.conn:
            athlete_id = db["athletes"].lookup({"name": athlete}, {"created_wall": now})
            row = {"address": normalise_address(address), "athlete_id": athlete_id, "segment": segment,
                   "assigned_wall": now}  # fmt: skip
            db["device_assignments"].upsert(row, pk="address")
    finally:
        db.close()
    return Assignment(row["address"], athlete, segment, now)


def forget(db_path: Path, address: str) -> bool:
    """Remove the strap's assignment; False when it had none."""
    db = open_database(db_path)
    try:
        with db.conn:
            cursor = db.execute(
                "DELETE FROM device_assignments WHERE address = ?", [normalise_address(address)]
            )
        return cursor.rowcount > 0
    finally:
        db.close()


def assignments(db_path: Path) -> dict[str, Assignment]:
    """Every assignment by address, read without changing the file; none when it has no assignments yet."""
    if not Path(db_path).exists():
        return {}
    db = sqlite_utils.Database(sqlite3.connect(f"file:{Path(db_path).resolve()}?mode=ro", uri=True))
    try:
        if "device_assignments" not in db.table_names():
            return {}
        rows = db.query("SELECT d.address, a.name, d.segment, d.assigned_wall FROM device_assignments d "
                        "JOIN athletes a ON a.id = d.athlete_id ORDER BY d.address")  # fmt: skip
        return {
            r["address"]: Assignment(r["address"], r["name"], r["segment"], r["assigned_wall"]) for r in rows
        }
    finally:
        db.close()
