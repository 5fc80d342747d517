"""Reading kinefuse databases: the per-session summary behind ``kinefuse status --db`` and the samples
as numpy arrays.  Readers open the file read-only; WAL lets them run beside a live writer.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import sqlite_utils

from kinefuse.storage.codec import CODES, unpack_people, unpack_rows
from kinefuse.storage.schema import SCHEMA_VERSION, SchemaError, db_path, newer_message, user_version

DbLike = sqlite_utils.Database | str | Path
_NS = 1e9


def open_for_reading(path: str | Path) -> sqlite_utils.Database:
    """Open an existing kinefuse database read-only; SchemaError names the file when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: no such database file")
    db = sqlite_utils.Database(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True))
    try:
        _check_version(db, path)
    except BaseException:
        db.close()
        raise
    return db


def _check_version(db: sqlite_utils.Database, path: Path) -> None:
    try:
        version = user_version(db)
    except sqlite3.DatabaseError as exc:
        raise SchemaError(f"{path}: not a kinefuse database ({exc})") from exc
    if version == 0:
        raise SchemaError(f"{path}: not a kinefuse database (no kinefuse schema version)")
    if version > SCHEMA_VERSION:
        raise SchemaError(newer_message(str(path), version))


@contextlib.contextmanager
def _reading(db: DbLike) -> Iterator[sqlite_utils.Database]:
    """Use an open Database as is; open (and afterwards close) a path."""
    if isinstance(db, sqlite_utils.Database):
        yield db
        return
    opened = open_for_reading(db)
    try:
        yield opened
    finally:
        opened.close()


# --- summary -------------------------------------------------------------------------------------
def summary(db_path: str | Path) -> dict:
    """Every session with its athlete, start, duration and status, and per source its counters and per
    device the stored sample (IMU) or frame (camera) count and the time span they cover."""
    with _reading(db_path) as db:
        sessions = db.query(
            "SELECT s.id, s.uuid, a.name AS athlete, s.started_wall, s.started_ns, s.ended_ns, s.status,"
            " s.kinefuse_version FROM sessions s JOIN athletes a ON a.id = s.athlete_id ORDER BY s.id"
        )
        return {
            "path": str(db_path),
            "schema_version": user_version(db),
            "sessions": [_session_summary(db, row) for row in sessions],
        }


def _session_summary(db: sqlite_utils.Database, row: dict) -> dict:
    ended = row.pop("ended_ns")
    started = row.pop("started_ns")
    # a session still 'running' has no duration yet, or its daemon died before stopping
    row["duration_s"] = (ended - started) / _NS if ended is not None else None
    sources: dict[str, dict] = {}
    for stats in db.query(
        "SELECT source_id, type, state, reason, received, dropped, decode_errors, restarts"
        " FROM source_stats WHERE session_id = ? ORDER BY source_id",
        [row["id"]],
    ):
        sources[stats["source_id"]] = {**stats, "devices": []}
    for device in db.query(
        "SELECT id, source_id, device_id, kind FROM devices WHERE session_id = ?"
        " ORDER BY source_id, device_id",
        [row["id"]],
    ):
        source = sources.setdefault(device["source_id"], _unreported_source(device["source_id"]))
        source["devices"].append(_device_summary(db, device))
    row["sources"] = sorted(sources.values(), key=lambda s: s["source_id"])
    return row


def _unreported_source(source_id: str) -> dict:
    """A source whose counters were never stored (the daemon died before its first stats update)."""
    counters = dict.fromkeys(("type", "state", "reason", "received", "dropped", "decode_errors", "restarts"))
    return {"source_id": source_id, **counters, "devices": []}


def _device_summary(db: sqlite_utils.Database, device: dict) -> dict:
    table = "keypoint_frames" if device["kind"] == "camera" else "imu_samples"
    # count and time_ns bounds come from the (device_ref, time_ns) index without touching the rows
    count, first, last = db.execute(
        f"SELECT count(*), min(time_ns), max(time_ns) FROM {table} WHERE device_ref = ?", [device["id"]]
    ).fetchone()
    if count and first is None:  # never clock-aligned: fall back to arrival times
        first, last = db.execute(
            f"SELECT min(host_ns), max(host_ns) FROM {table} WHERE device_ref = ?", [device["id"]]
        ).fetchone()
    return {
        "device_id": device["device_id"],
        "kind": device["kind"],
        "count": count,
        "span_s": (last - first) / _NS if count else None,
    }


# --- samples -------------------------------------------------------------------------------------
_SAMPLE_SELECT = (
    "SELECT s.session_id, d.source_id, d.device_id, s.seq, s.device_time, s.host_ns, s.time_ns, {payload}"
    " FROM {table} s JOIN devices d ON d.id = s.device_ref{where} ORDER BY s.rowid"
)


def _fetch(db: sqlite_utils.Database, table: str, payload: tuple[str, ...], session_id, device_id) -> dict:
    """Columns of the stored samples, in arrival order, each as a tuple."""
    clauses, params = [], []
    if session_id is not None:
        clauses.append("s.session_id = ?")
        params.append(session_id)
    if device_id is not None:
        clauses.append("d.device_id = ?")
        params.append(device_id)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    sql = _SAMPLE_SELECT.format(payload=", ".join(f"s.{c}" for c in payload), table=table, where=where)
    cursor = db.execute(sql, params)
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    return dict(zip(names, columns, strict=True))


def _common_arrays(columns: dict) -> dict:
    time_ns = columns["time_ns"]
    missing = np.array([t is None for t in time_ns], dtype=bool)
    return {
        "session_id": np.array(columns["session_id"], dtype=np.int64),
        "source_id": np.array(columns["source_id"], dtype=object),
        "device_id": np.array(columns["device_id"], dtype=object),
        "seq": np.array(columns["seq"], dtype=np.int64),
        "device_time": np.array(columns["device_time"], dtype=np.int64),
        "host_ns": np.array(columns["host_ns"], dtype=np.int64),
        # masked where the sample was stored before clock alignment filled it
        "time_ns": np.ma.masked_array(
            np.array([0 if t is None else t for t in time_ns], dtype=np.int64), mask=missing
        ),
    }


def imu_samples(db: DbLike, session_id: int | None = None, device_id: str | None = None) -> dict:
    """The stored IMU samples in arrival order, one array entry per sample.

    Keys: session_id, source_id, device_id, seq, device_time, host_ns, time_ns (a masked array) and
    acc, gyr, mag as float32 (n, 3); mag rows are NaN for samples stored without one.
    """
    with _reading(db) as conn:
        columns = _fetch(conn, "imu_samples", ("acc", "gyr", "mag"), session_id, device_id)
    out = _common_arrays(columns)
    out["acc"] = unpack_rows(columns["acc"], (3,))
    out["gyr"] = unpack_rows(columns["gyr"], (3,))
    nan_row = np.full(3, np.nan, dtype="<f4").tobytes()
    out["mag"] = unpack_rows([nan_row if m is None else m for m in columns["mag"]], (3,))
    return out


def keypoint_frames(db: DbLike, session_id: int | None = None, device_id: str | None = None) -> dict:
    """The stored camera frames in arrival order: the keys of ``imu_samples`` up to time_ns, then
    keypoint_set, keypoints, float32 (n, N, 3) of x, y, confidence, swap_corrected (bool: the source
    undid a left/right swap in that frame), track_id (int64, -1: none), and the other people the source
    followed, others (n, P, N, 3) NaN-padded and other_ids (n, P) -1-padded, both None where nobody else
    was (kinefuse.types.KeypointBatch).

    Frames of different keypoint counts cannot share one array: select a device_id then.
    """
    with _reading(db) as conn:
        columns = _fetch(
            conn,
            "keypoint_frames",
            ("keypoint_set", "n_keypoints", "keypoints", "swap_corrected", "track_id", "others", "other_ids"),
            session_id,
            device_id,
        )
    counts = sorted(set(columns["n_keypoints"]))
    if len(counts) > 1:
        raise ValueError(f"frames have different keypoint counts {counts}: select one device_id")
    out = _common_arrays(columns)
    out["keypoint_set"] = np.array(columns["keypoint_set"], dtype=object)
    out["keypoints"] = unpack_rows(columns["keypoints"], (counts[0] if counts else 0, 3))
    out["swap_corrected"] = np.array(columns["swap_corrected"], dtype=bool)
    out["track_id"] = _track_ids(columns["track_id"])
    out["others"], out["other_ids"] = unpack_people(
        columns["others"], columns["other_ids"], counts[0] if counts else 0
    )
    return out


# --- the motion stream ---------------------------------------------------------------------------
def _motion_rows(db: sqlite_utils.Database, table: str, payload: str, key: str, wanted, session_id,
                 analysis_id, revision) -> dict:  # fmt: skip
    """Columns of a motion table with each row's device, in stream order, each as a tuple: the live
    stream's rows (``analysis_id`` None) or one analysis's, every revision or one."""
    clauses = ["m.analysis_id IS NULL" if analysis_id is None else "m.analysis_id = ?"]
    params = [] if analysis_id is None else [analysis_id]
    for column, value in ((f"m.{key}", wanted), ("m.session_id", session_id), ("m.revision", revision)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    cursor = db.execute(
        f"SELECT m.session_id, d.source_id, d.device_id, m.time_ns, m.processor, m.revision, {payload}"
        f" FROM {table} m LEFT JOIN devices d ON d.id = m.device_ref WHERE {' AND '.join(clauses)}"
        " ORDER BY m.rowid",
        params,
    )
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return dict(zip(names, list(zip(*rows, strict=True)) if rows else [()] * len(names), strict=True))


def _motion_common(columns: dict) -> dict:
    return {
        "session_id": np.array(columns["session_id"], dtype=np.int64),
        "source_id": np.array(columns["source_id"], dtype=object),
        "device_id": np.array(columns["device_id"], dtype=object),
        "time_ns": np.array(columns["time_ns"], dtype=np.int64),
        "processor": np.array(columns["processor"], dtype=object),
        "revision": np.array(columns["revision"], dtype=np.int8),
    }


def motion_segments(db: DbLike, session_id: int | None = None, segment: str | None = None, *,
                    analysis_id: int | None = None, revision: int | None = None) -> dict:  # fmt: skip
    """The motion stream's segment orientations, one entry per item and segment, in stream order: the live
    stream's (``analysis_id`` None) or an analysis's, every revision (``revision`` None) or one.

    Keys: session_id, source_id, device_id (the strap), time_ns (the item's), processor, revision, segment, quaternion
    float32 (n, 4) w, x, y, z (segment to world; NaN where there is no value), provenance (None where there
    is no value), quality, reason, tolerance_deg (NaN where the value states none), world (kinefuse.types WORLD_*).
    """
    with _reading(db) as conn:
        payload = "m.segment, m.quaternion, m.provenance, m.quality, m.reason, m.tolerance_deg, m.world"
        columns = _motion_rows(
            conn, "motion_segments", payload, "segment", segment, session_id, analysis_id, revision
        )
    out = _motion_common(columns)
    nan_row = np.full(4, np.nan, dtype="<f4").tobytes()
    out["quaternion"] = unpack_rows([nan_row if q is None else q for q in columns["quaternion"]], (4,))
    for name in ("segment", "provenance", "quality", "reason", "world"):
        out[name] = np.array(columns[name], dtype=object)
    out["tolerance_deg"] = np.array(
        [np.nan if v is None else v for v in columns["tolerance_deg"]], dtype=float
    )
    return out


def motion_keypoints(db: DbLike, session_id: int | None = None, view: str | None = None, *,
                     analysis_id: int | None = None, revision: int | None = None) -> dict:  # fmt: skip
    """The motion stream's keypoints, one entry per item and view, in stream order: the live stream's
    (``analysis_id`` None) or an analysis's, every revision (``revision`` None) or one.

    Keys: session_id, source_id, device_id (the camera), time_ns (the item's), processor, revision, view,
    keypoint_set, unit, and as arrays position float32 (n, K, D), sigma float32 (n, K) (NaN where missing),
    status int8 (n, K) of kinefuse.types.KeypointStatus and tolerance float32 (n, K) (NaN where none is
    stated); for triangulated views (kinefuse.types.Triangulated) views int8 (n, K), error_px float32 (n, K)
    and checks uint8 (n, K) (kinefuse.types.TriangulationCheck bits), -1, NaN and 0 in a camera's rows.
    Views of different shapes cannot share one array: select a view then.
    """
    with _reading(db) as conn:
        columns = _motion_rows(conn, "motion_keypoints", "m.view, m.keypoint_set, m.unit, m.n_keypoints, m.dims,"
                               " m.position, m.sigma, m.status, m.tolerance, m.views, m.error_px, m.checks", "view",
                               view, session_id, analysis_id, revision)  # fmt: skip
    shapes = sorted(set(zip(columns["n_keypoints"], columns["dims"], strict=True)))
    if len(shapes) > 1:
        raise ValueError(f"views have different shapes {shapes}: select one view")
    k, d = shapes[0] if shapes else (0, 2)
    out = _motion_common(columns)
    for name in ("view", "keypoint_set", "unit"):
        out[name] = np.array(columns[name], dtype=object)
    out["position"] = unpack_rows(columns["position"], (k, d))
    out["sigma"] = unpack_rows(columns["sigma"], (k,))
    out["status"] = unpack_rows(columns["status"], (k,), CODES).astype(np.int8)
    nan_row = np.full(k, np.nan, dtype="<f4").tobytes()
    out["tolerance"] = unpack_rows([nan_row if t is None else t for t in columns["tolerance"]], (k,))
    none, zeros = np.full(k, 255, dtype=CODES).tobytes(), np.zeros(k, dtype=CODES).tobytes()
    out["views"] = unpack_rows([none if v is None else v for v in columns["views"]], (k,), CODES).astype(
        np.int8
    )
    out["error_px"] = unpack_rows([nan_row if e is None else e for e in columns["error_px"]], (k,))
    out["checks"] = unpack_rows([zeros if c is None else c for c in columns["checks"]], (k,), CODES)
    return out


# --- a session to replay (kinefuse analyze) ------------------------------------------------------
_UUID_PREFIX_CHARS = 8  # what `kinefuse status --db` prints


def find_session(db: DbLike, session: str | int) -> dict:
    """The sessions row named by its id or by its uuid or a unique prefix of it (``kinefuse status --db``
    prints the first 8 characters); LookupError naming the file and the session otherwise.

    Digits shorter than that printed prefix are an id only: a missing id "7" must not pick whichever session's
    uuid happens to start with 7."""
    with _reading(db) as conn:
        text = str(session).strip()
        rows = list(conn.query("SELECT * FROM sessions WHERE id = ?", [int(text)])) if text.isdigit() else []
        if not rows and text and not (text.isdigit() and len(text) < _UUID_PREFIX_CHARS):
            rows = list(conn.query("SELECT * FROM sessions WHERE uuid LIKE ? ORDER BY id", [f"{text}%"]))
        if len(rows) != 1:
            known = ", ".join(
                f"{r['id']} ({r['uuid'][:_UUID_PREFIX_CHARS]})"
                for r in conn.query("SELECT id, uuid FROM sessions ORDER BY id")
            )
            why = "matches several sessions" if rows else "no such session"
            raise LookupError(f"{db_path(conn)}: session {text!r}: {why} (sessions: {known or 'none'})")
        return rows[0]


def session_devices(db: DbLike, session_id: int) -> list[dict]:
    """The session's devices rows in declaration order, ``meta`` decoded from its JSON."""
    with _reading(db) as conn:
        rows = list(conn.query("SELECT * FROM devices WHERE session_id = ? ORDER BY id", [session_id]))
    return [{**row, "meta": json.loads(row["meta"]) if row["meta"] else {}} for row in rows]


def device_meta(db: DbLike, device_id: str) -> dict:
    """A device's declared meta (``DeviceInfo.meta``, decoded), from the latest session that has the device;
    LookupError naming the file and the device when none has."""
    with _reading(db) as conn:
        rows = list(conn.query("SELECT meta FROM devices WHERE device_id = ? ORDER BY session_id DESC, id DESC "
                               "LIMIT 1", [device_id]))  # fmt: skip
        if not rows:
            raise LookupError(f"{db_path(conn)}: no device {device_id!r}")
    return json.loads(rows[0]["meta"]) if rows[0]["meta"] else {}


def stored_batches(db: DbLike, session_id: int) -> list[dict]:
    """The session's stored IMU samples and camera frames regrouped into the batches they arrived in: runs of
    consecutive rows (in arrival order) of one device sharing one arrival stamp (``host_ns``), the two tables
    merged by arrival stamp (ties: the device declared first). Each entry: ``device_ref``, ``table``
    (imu_samples or keypoint_frames) and its columns as arrays: seq, device_time, host_ns, time_ns (int64,
    -1 where clock alignment never filled it) and acc, gyr, mag (float32 (n, 3), mag None when the batch has
    none) or keypoint_set, keypoints (float32 (n, K, 3)), swap_corrected (bool), track_id, others and
    other_ids (as ``keypoint_frames``).

    Within one table the stored order is the order the pipeline saw; across the tables only the arrival
    stamps say it, so two sources stamping their batches from unrelated clocks (a non-real-time
    replay) interleave by stamp, not by the order they were queued in."""
    with _reading(db) as conn:
        imu = _batches(conn, "imu_samples", "acc, gyr, mag", session_id)
        frames = _batches(
            conn, "keypoint_frames",
            "keypoint_set, n_keypoints, keypoints, swap_corrected, track_id, others, other_ids", session_id,
        )  # fmt: skip
    return list(heapq.merge(imu, frames, key=lambda b: (int(b["host_ns"][0]), b["device_ref"])))


def _batches(conn: sqlite_utils.Database, table: str, payload: str, session_id: int) -> list[dict]:
    rows = conn.execute(
        f"SELECT device_ref, seq, device_time, host_ns, time_ns, {payload} FROM {table}"
        " WHERE session_id = ? ORDER BY rowid",
        [session_id],
    ).fetchall()
    if not rows:
        return []
    refs = np.array([r[0] for r in rows], dtype=np.int64)
    host = np.array([r[3] for r in rows], dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], (np.diff(refs) != 0) | (np.diff(host) != 0)]))
    ends = np.append(starts[1:], len(rows))
    decode = _imu_batch if table == "imu_samples" else _frame_batch
    return [{"device_ref": int(refs[a]), "table": table, **_common_columns(rows[a:b]), **decode(rows[a:b])}
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]  # fmt: skip


def _common_columns(rows: list[tuple]) -> dict:
    return {name: np.array([r[i] if r[i] is not None else -1 for r in rows], dtype=np.int64)
            for i, name in ((1, "seq"), (2, "device_time"), (3, "host_ns"), (4, "time_ns"))}  # fmt: skip


def _imu_batch(rows: list[tuple]) -> dict:
    mags = [r[7] for r in rows]
    mag = None if any(m is None for m in mags) else unpack_rows(mags, (3,))
    return {
        "acc": unpack_rows([r[5] for r in rows], (3,)),
        "gyr": unpack_rows([r[6] for r in rows], (3,)),
        "mag": mag,
    }


def _frame_batch(rows: list[tuple]) -> dict:
    others, other_ids = unpack_people([r[10] for r in rows], [r[11] for r in rows], rows[0][6])
    return {"keypoint_set": rows[0][5], "keypoints": unpack_rows([r[7] for r in rows], (rows[0][6], 3)),
            "swap_corrected": np.array([bool(r[8]) for r in rows]),
            "track_id": _track_ids([r[9] for r in rows]),
            "others": others, "other_ids": other_ids}  # fmt: skip


def format_summary(report: dict) -> str:
    """The summary as text for a terminal: one block per session, one line per device."""
    lines = [f"{report['path']} (schema v{report['schema_version']}): {len(report['sessions'])} session(s)"]
    for session in report["sessions"]:
        duration = (
            "still running or killed" if session["duration_s"] is None else f"{session['duration_s']:.1f} s"
        )
        lines.append(
            f"session {session['id']} {session['uuid'][:_UUID_PREFIX_CHARS]}  athlete {session['athlete']}  "
            f"started {session['started_wall']}  {duration}  {session['status']}"
        )
        for source in session["sources"]:
            reason = f" ({source['reason']})" if source["reason"] else ""
            lines.append(
                f"  source {source['source_id']} [{source['type']}] {source['state']}{reason}: "
                f"received {source['received']}, dropped {source['dropped']}, "
                f"decode errors {source['decode_errors']}, restarts {source['restarts']}"
            )
            for device in source["devices"]:
                span = "-" if device["span_s"] is None else f"{device['span_s']:.1f} s"
                unit = "frames" if device["kind"] == "camera" else "samples"
                lines.append(f"    {device['device_id']:<18} {device['count']:>8} {unit:<7} over {span}")
    return "\n".join(lines)


def _track_ids(stored: list) -> np.ndarray:
    """Stored track ids as int64, NULL (no id) as -1 (kinefuse.types.KeypointBatch.track_id)."""
    return np.array([-1 if i is None else i for i in stored], dtype=np.int64)
