"""The SQLite schema, as numbered migrations; the file's ``PRAGMA user_version`` is the last one applied.

Append a migration to change the schema, never edit one that has shipped: files in the field were
made by the old one.  Each migration runs in its own transaction together with its version bump, so
a crash mid-upgrade leaves the file at the previous version, not half-migrated.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

_BLOB = bytes  # sqlite-utils maps bytes to BLOB


def _migration_1(db: sqlite_utils.Database) -> None:
    """Sessions of athletes, their devices, samples (one row per sample or frame), derived data."""
    db["athletes"].create({"id": int, "name": str, "created_wall": str}, pk="id", not_null={"name"})
    db["athletes"].create_index(["name"], unique=True)
    db["sessions"].create(
        {
            "id": int,
            "uuid": str,
            "athlete_id": int,
            "started_wall": str,  # ISO 8601, UTC
            "started_ns": int,  # time.monotonic_ns(), the clock every time_ns is on
            "ended_ns": int,
            "config_path": str,
            "kinefuse_version": str,
            "status": str,  # 'running' until the daemon stops cleanly, then 'stopped'
        },
        pk="id",
        not_null={"uuid", "athlete_id", "started_wall", "started_ns", "status"},
        foreign_keys=[("athlete_id", "athletes", "id")],
    )
    db["sessions"].create_index(["uuid"], unique=True)
    db["devices"].create(
        {
            "id": int,
            "session_id": int,
            "source_id": str,
            "device_id": str,
            "kind": str,
            "clock_hz": float,
            "keypoint_set": str,
            "meta": str,  # JSON
        },
        pk="id",
        not_null={"session_id", "source_id", "device_id", "kind", "clock_hz"},
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["devices"].create_index(["session_id", "source_id", "device_id"], unique=True)
    _create_sample_table(
        db,
        "imu_samples",
        {"acc": _BLOB, "gyr": _BLOB, "mag": _BLOB},  # float32 x 3 each; mag may be NULL
        not_null={"acc", "gyr"},
    )
    _create_sample_table(
        db,
        "keypoint_frames",
        {"keypoint_set": str, "n_keypoints": int, "keypoints": _BLOB},  # float32 (n_keypoints, 3)
        not_null={"keypoint_set", "n_keypoints", "keypoints"},
    )
    derived = {
        "session_id": int,
        "device_ref": int,  # NULL for values not tied to one device
        "source_id": str,
        "time_ns": int,
    }
    quality = {"provenance": str, "quality": str, "reason": str, "processor": str}
    db["events"].create(
        {**derived, "kind": str, "detail": str, **quality},  # detail: JSON
        not_null={"session_id", "time_ns", "kind"},
        foreign_keys=[("session_id", "sessions", "id"), ("device_ref", "devices", "id")],
    )
    db["metrics"].create(
        {**derived, "name": str, "value": float, "unit": str, **quality},  # value NULL when insufficient
        not_null={"session_id", "time_ns", "name"},
        foreign_keys=[("session_id", "sessions", "id"), ("device_ref", "devices", "id")],
    )
    db["source_stats"].create(
        {
            "session_id": int,
            "source_id": str,
            "type": str,
            "state": str,
            "reason": str,
            "received": int,
            "dropped": int,
            "decode_errors": int,
            "restarts": int,
            "updated_ns": int,
        },
        pk=("session_id", "source_id"),  # the primary key is the unique (session_id, source_id)
        foreign_keys=[("session_id", "sessions", "id")],
    )


def _create_sample_table(db: sqlite_utils.Database, name: str, payload: dict, not_null: set[str]) -> None:
    db[name].create(
        {
            "session_id": int,
            "device_ref": int,
            "seq": int,
            "device_time": int,  # device clock ticks
            "host_ns": int,  # arrival, time.monotonic_ns()
            "time_ns": int,  # device time mapped onto host monotonic time; NULL when not aligned
            **payload,
        },
        not_null={"session_id", "device_ref", "seq", "device_time", "host_ns", *not_null},
        foreign_keys=[("session_id", "sessions", "id"), ("device_ref", "devices", "id")],
    )
    db[name].create_index(["device_ref", "time_ns"])


def _migration_2(db: sqlite_utils.Database) -> None:
    """The per-device clock fit found at session end, and events looked up by kind."""
    db["devices"].add_column("clock_offset_ns", int)
    db["devices"].add_column("clock_skew_ppm", float)
    db["events"].create_index(["session_id", "kind"])


def _migration_3(db: sqlite_utils.Database) -> None:
    """Keypoint frames whose left/right labels the source swapped back (1), so a reader can tell."""
    db["keypoint_frames"].add_column("swap_corrected", int, not_null_default=0)


def _migration_4(db: sqlite_utils.Database) -> None:
    """Which athlete and body segment each BLE strap (by address) is worn on (``kinefuse devices assign``)."""
    db["device_assignments"].create(
        {"address": str, "athlete_id": int, "segment": str, "assigned_wall": str},
        pk="address",
        not_null={"athlete_id", "segment", "assigned_wall"},
        foreign_keys=[("athlete_id", "athletes", "id")],
    )


def _migration_5(db: sqlite_utils.Database) -> None:
    """The motion stream: per item, each segment's orientation and each view's keypoints."""
    item = {"session_id": int, "device_ref": int, "time_ns": int}  # time_ns: the item's, on its timeline
    quality = {"provenance": str, "quality": str, "reason": str, "processor": str}
    db["motion_segments"].create(
        # quaternion: float32 w, x, y, z (segment to world); it and provenance NULL when insufficient
        {**item, "segment": str, "quaternion": _BLOB, **quality},
        not_null={"session_id", "device_ref", "time_ns", "segment", "quality"},
        foreign_keys=[("session_id", "sessions", "id"), ("device_ref", "devices", "id")],
    )
    db["motion_segments"].create_index(["session_id", "segment", "time_ns"])
    db["motion_keypoints"].create(
        # device_ref: the camera (NULL for a view no one device makes, such as "3d"); position float32
        # (n_keypoints, dims) and sigma float32 (n_keypoints,), NaN where missing; status uint8
        # (n_keypoints,) of kinefuse.types.KeypointStatus
        {
            **item,
            "view": str,
            "keypoint_set": str,
            "unit": str,
            "n_keypoints": int,
            "dims": int,
            "position": _BLOB,
            "sigma": _BLOB,
            "status": _BLOB,
            "processor": str,
        },
        not_null={"session_id", "time_ns", "view", "n_keypoints", "dims", "position", "sigma", "status"},
        foreign_keys=[("session_id", "sessions", "id"), ("device_ref", "devices", "id")],
    )
    db["motion_keypoints"].create_index(["session_id", "view", "time_ns"])


def _migration_6(db: sqlite_utils.Database) -> None:
    """Revisions and analyses of the motion stream: ``revision`` 0 is an item as first published (causal),
    1 its fixed-lag smoothed revision; ``analysis_id`` NULL is the daemon's live stream, else the offline
    analysis (``kinefuse analyze``) of the same session that wrote the row."""
    db["analyses"].create(
        # mode: "live" (the live processors' settings, causal) or "offline" (acausal smoothers); settings:
        # JSON of the options used; status: "running", "done" or "failed: reason"
        {
            "id": int,
            "session_id": int,
            "mode": str,
            "settings": str,
            "started_wall": str,
            "finished_wall": str,
            "status": str,
        },  # fmt: skip
        pk="id",
        not_null={"session_id", "mode", "settings", "started_wall", "status"},
        foreign_keys=[("session_id", "sessions", "id")],
    )
    for table in ("motion_segments", "motion_keypoints"):
        db[table].add_column("revision", int, not_null_default=0)
        db[table].add_column("analysis_id", int, fk="analyses", fk_col="id")


def _migration_7(db: sqlite_utils.Database) -> None:
    """The tolerance a value states: a segment orientation's (deg) and the world its quaternion is in
    (kinefuse.types.SegmentOrientation: tolerance_deg, NULL where it states none; world), and a keypoint
    view's per keypoint (kinefuse.types.KeypointView.tolerance)."""
    db["motion_segments"].add_column("tolerance_deg", float)
    db["motion_segments"].add_column("world", str)
    # a view's keypoint tolerances, float32 (n_keypoints,) in its unit, NaN where none; NULL: the view states none
    db["motion_keypoints"].add_column("tolerance", _BLOB)


def _migration_8(db: sqlite_utils.Database) -> None:
    """A triangulated view's checks per keypoint (kinefuse.types.Triangulated): the cameras it rests on
    (one byte each), their RMS reprojection error (float32, px, NaN where no point) and the checks' bits
    (one byte each, kinefuse.types.TriangulationCheck); NULL for a camera's view."""
    for column in ("views", "error_px", "checks"):
        db["motion_keypoints"].add_column(column, _BLOB)


def _migration_9(db: sqlite_utils.Database) -> None:
    """Several people in a camera's view (kinefuse.types.KeypointBatch): the source's track id of the frame's
    person (NULL: none), and everyone else it followed, ``others`` float32 (P, n_keypoints, 3) with their
    track ids ``other_ids`` int64 (P,) (NULL: nobody else)."""
    db["keypoint_frames"].add_column("track_id", int)
    db["keypoint_frames"].add_column("others", _BLOB)
    db["keypoint_frames"].add_column("other_ids", _BLOB)


def _migration_10(db: sqlite_utils.Database) -> None:
    """A metric's tolerance (kinefuse.types.DerivedValue.tolerance): how far from the truth it claims to be,
    in its unit; NULL where it claims nothing."""
    db["metrics"].add_column("tolerance", float)


def _migration_11(db: sqlite_utils.Database) -> None:
    """Metrics and events of an analysis (``kinefuse analyze``: the processors listed after the motion
    processor, run again): ``analysis_id`` NULL is the daemon's live stream, else the analysis that wrote the
    row, as for the motion rows."""
    for table in ("metrics", "events"):
        db[table].add_column("analysis_id", int, fk="analyses", fk_col="id")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
    _migration_7,
    _migration_8,
    _migration_9,
    _migration_10,
    _migration_11,
]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(Exception):
    """The file is not a kinefuse database this version can use."""


def user_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def apply_migration(db: sqlite_utils.Database, version: int) -> None:
    """Apply migration number ``version`` (1-based) and record it, in one transaction."""
    with db.atomic():
        MIGRATIONS[version - 1](db)
        db.execute(f"PRAGMA user_version = {version:d}")


def migrate(db: sqlite_utils.Database) -> None:
    """Bring ``db`` up to SCHEMA_VERSION, applying the missing migrations in order."""
    current = user_version(db)
    if current > SCHEMA_VERSION:
        raise SchemaError(newer_message(db_path(db), current))
    if current == 0 and db.table_names():
        # some other program's database: adding our tables to it would be vandalism
        raise SchemaError(f"{db_path(db)}: not a kinefuse database (tables, but no kinefuse schema version)")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        apply_migration(db, version)


def newer_message(path: str, version: int) -> str:
    return (
        f"{path}: schema version {version} was made by a newer kinefuse "
        f"(this one knows up to {SCHEMA_VERSION}); upgrade kinefuse to use it"
    )


def db_path(db: sqlite_utils.Database) -> str:
    """The file behind ``db``, for messages."""
    return db.execute("PRAGMA database_list").fetchone()[2] or ":memory:"


def open_database(path: str | Path) -> sqlite_utils.Database:
    """Open or create the database at ``path`` for writing, and migrate it to SCHEMA_VERSION.

    The connection may only be used by the thread that calls this (sqlite3's check_same_thread).
    """
    db = sqlite_utils.Database(sqlite3.connect(path, check_same_thread=True))
    try:
        _configure(db, path)
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _configure(db: sqlite_utils.Database, path: str | Path) -> None:
    try:
        # WAL: readers (kinefuse status, tail) never block the writer, and a commit is one append.
        db.enable_wal()
    except sqlite3.DatabaseError as exc:
        raise SchemaError(f"{path}: not a kinefuse database ({exc})") from exc
    # In WAL mode synchronous=NORMAL syncs only at checkpoints: a committed transaction survives an
    # application crash (SIGKILL included) and loses at most the last commits on power loss or OS crash.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
