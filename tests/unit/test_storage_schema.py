"""Migrations bring old files up to date keeping their rows; files the code cannot use are refused by name."""

import sqlite3

import pytest
import sqlite_utils

from kinefuse.storage import reader
from kinefuse.storage.schema import SCHEMA_VERSION, SchemaError, apply_migration, open_database, user_version


def make_version_1_file(path):
    """A file as the first release of kinefuse left it, with one session and one device."""
    db = sqlite_utils.Database(path)
    apply_migration(db, 1)
    athlete = db["athletes"].insert({"name": "ana", "created_wall": "2024-05-01T10:00:00+00:00"}).last_pk
    session = (
        db["sessions"]
        .insert(
            {
                "uuid": "u-1",
                "athlete_id": athlete,
                "started_wall": "2024-05-01T10:00:00+00:00",
                "started_ns": 1_000,
                "ended_ns": 5_000_001_000,
                "status": "stopped",
            }
        )
        .last_pk
    )
    db["devices"].insert(
        {"session_id": session, "source_id": "strap", "device_id": "imu0", "kind": "imu", "clock_hz": 1e6}
    )
    db.close()


def test_version_1_file_is_migrated_to_latest_keeping_rows(tmp_path):
    path = tmp_path / "old.db"
    make_version_1_file(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1

    db = open_database(path)
    try:
        assert user_version(db) == SCHEMA_VERSION
        device = next(db["devices"].rows)
        assert device["device_id"] == "imu0"
        assert device["clock_offset_ns"] is None and device["clock_skew_ppm"] is None
        assert "idx_events_session_id_kind" in {index.name for index in db["events"].indexes}
        assert db.journal_mode == "wal"
    finally:
        db.close()
    assert reader.summary(path)["sessions"][0]["athlete"] == "ana"


def test_opening_again_applies_nothing(tmp_path):
    open_database(tmp_path / "k.db").close()
    db = open_database(tmp_path / "k.db")  # a second migration run would fail on existing tables
    assert user_version(db) == SCHEMA_VERSION
    db.close()


def test_newer_file_is_refused_by_writer_and_reader(tmp_path):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for open_it in (open_database, reader.summary):
        with pytest.raises(SchemaError, match="made by a newer kinefuse") as info:
            open_it(path)
        assert str(path) in str(info.value)


def test_other_programs_database_is_not_touched(tmp_path):
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE notes (text TEXT)")
    with pytest.raises(SchemaError, match="not a kinefuse database"):
        open_database(path)
    with pytest.raises(SchemaError, match="not a kinefuse database"):
        reader.summary(path)
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT name FROM sqlite_master").fetchall() == [("notes",)]


def test_reader_names_missing_and_garbage_files(tmp_path):
    with pytest.raises(SchemaError, match="no such database file") as info:
        reader.summary(tmp_path / "absent.db")
    assert "absent.db" in str(info.value)
    assert not (tmp_path / "absent.db").exists()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(SchemaError, match="garbage.db: not a kinefuse database"):
        reader.imu_samples(garbage)
    with pytest.raises(SchemaError, match="garbage.db: not a kinefuse database"):
        open_database(garbage)


def test_a_missing_session_id_never_matches_a_uuid_that_starts_with_its_digits(tmp_path):
    path = tmp_path / "k.db"
    db = open_database(path)
    athlete = db["athletes"].insert({"name": "ana", "created_wall": "2024-05-01T10:00:00+00:00"}).last_pk
    for uuid in ("7f3a2b1c-0000-4000-8000-000000000000", "12345678-0000-4000-8000-000000000000"):
        db["sessions"].insert({"uuid": uuid, "athlete_id": athlete, "started_wall": "2024-05-01T10:00:00+00:00",
                               "started_ns": 0, "status": "stopped"})  # fmt: skip
    db.close()
    with pytest.raises(
        LookupError, match=r"session '7': no such session \(sessions: 1 \(7f3a2b1c\), 2 \(12345678\)"
    ):
        reader.find_session(path, "7")
    assert reader.find_session(path, "7f3")["id"] == 1
    assert reader.find_session(path, "12345678")["id"] == 2  # the printed prefix, digits or not
    assert reader.find_session(path, 2)["uuid"].startswith("1234")
