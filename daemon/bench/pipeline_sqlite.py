"""The pipeline bench's ceiling: the sample rows a daemon run committed, written again by bare sqlite3.

The rows are read back from the daemon's own file, so the peer writes the same rows, columns and values,
into a fresh file made by kinefuse.storage.schema.open_database: the same schema, indexes and PRAGMAs
(WAL, synchronous=NORMAL, foreign keys) as the writer's. Each transaction holds the writer's
``batch_max_rows`` rows, split between the tables in proportion, as the writer's buffer is. Only the
``executemany`` calls and the commits are timed: reading the rows back is the bench's work, not the peer's.
"""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path

from kinefuse.storage.schema import open_database
from kinefuse.storage.writer import COLUMNS

SAMPLE_TABLES = ("imu_samples", "keypoint_frames")
_PARENT_TABLES = ("athletes", "sessions", "devices")  # in foreign-key order: sample rows reference them
_PRAGMAS = ("journal_mode", "synchronous", "foreign_keys")


def count_rows(path: Path) -> dict[str, int]:
    """Rows of each sample table in the database at ``path``."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in SAMPLE_TABLES}


def arrival_span_s(path: Path) -> float:
    """Seconds from the first to the last arrival stamp (host_ns) of the sample rows at ``path``."""
    spans = " UNION ALL ".join(f"SELECT min(host_ns) AS a, max(host_ns) AS b FROM {t}" for t in SAMPLE_TABLES)
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        first, last = db.execute(f"SELECT min(a), max(b) FROM ({spans})").fetchone()
    if first is None or last <= first:
        raise RuntimeError(f"{path}: too few sample rows to span any time; no figure")
    return (last - first) / 1e9


def bare_write_rate(source: Path, target: Path, transaction_rows: int) -> dict:
    """Copy the sample rows of ``source`` into a new database at ``target`` with executemany; time it.

    Returns rows written, rows per second over the timed writes, transactions and the PRAGMAs in force.
    """
    counts = count_rows(source)
    db = open_database(target)
    try:
        conn = db.conn
        _copy_parents(conn, source)
        transactions = max(1, math.ceil(sum(counts.values()) / transaction_rows))
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader:
            elapsed = _timed_copy(conn, reader, counts, transactions)
        written = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in SAMPLE_TABLES}
        pragmas = {name: conn.execute(f"PRAGMA {name}").fetchone()[0] for name in _PRAGMAS}
    finally:
        db.close()
    if written != counts:
        raise RuntimeError(f"the bare writer wrote {written} rows, expected {counts}; no figure")
    rows = sum(counts.values())
    return {"rows": rows, "per_s": rows / elapsed, "transactions": transactions, "pragmas": pragmas}


def _copy_parents(conn: sqlite3.Connection, source: Path) -> None:
    """The athlete, session and device rows the samples reference, with their ids; untimed."""
    conn.execute("ATTACH DATABASE ? AS daemon", (f"file:{source}?mode=ro",))
    with conn:
        for table in _PARENT_TABLES:
            conn.execute(f"INSERT INTO main.{table} SELECT * FROM daemon.{table}")
    conn.execute("DETACH DATABASE daemon")


def _timed_copy(
    conn: sqlite3.Connection, reader: sqlite3.Connection, counts: dict[str, int], transactions: int
) -> float:
    """Seconds spent in executemany and commit, over ``transactions`` transactions."""
    cursors = {
        table: reader.execute(f"SELECT {', '.join(COLUMNS[table])} FROM {table} ORDER BY rowid")
        for table in SAMPLE_TABLES
    }
    inserts = {
        table: f"INSERT INTO {table} ({', '.join(COLUMNS[table])}) VALUES ({', '.join('?' * len(COLUMNS[table]))})"
        for table in SAMPLE_TABLES
    }
    elapsed = 0.0
    for index in range(transactions):
        # each table's share of this transaction, so every transaction mixes them as the writer's do
        batch = {t: _take(cursors[t], _share(counts[t], index, transactions)) for t in SAMPLE_TABLES}
        started = time.perf_counter()
        with conn:  # one transaction: sqlite3 begins it at the first INSERT and commits on leaving
            for table, rows in batch.items():
                conn.executemany(inserts[table], rows)
        elapsed += time.perf_counter() - started
    return elapsed


def _take(cursor: sqlite3.Cursor, count: int) -> list[tuple]:
    return cursor.fetchmany(count) if count else []  # fetchmany(0) would return every remaining row


def _share(total: int, index: int, parts: int) -> int:
    """How many of ``total`` rows fall in part ``index`` of ``parts`` nearly equal parts."""
    return (total * (index + 1)) // parts - (total * index) // parts
