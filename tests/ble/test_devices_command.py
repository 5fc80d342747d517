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
