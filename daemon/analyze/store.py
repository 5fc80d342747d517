"""Writing an analysis beside the live stream: an ``analyses`` row and the motion rows that carry its id,
through the SQLite sink's own row code (kinefuse.storage.writer), into the session it analyses."""

from __future__ import annotations

import datetime
import json

from kinefuse.storage.schema import open_database
from kinefuse.storage.writer import SqliteSink


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class AnalysisSink(SqliteSink):
    """The SQLite sink attached to an existing session: ``start`` adds a running ``analyses`` row (its id is
    written into every motion row) instead of a session; ``stop`` commits and marks the analysis done, or
    failed with ``failure`` when that is set."""

    def __init__(self, path, session_id: int, mode: str, settings: dict):
        super().__init__(path, batch_max_rows=20_000)
        self.session_id, self.mode, self.settings = session_id, mode, settings
        self.failure: str | None = None

    def _start(self, session) -> None:
        self._db = open_database(self.path)
        self._session_id = self.session_id
        devices = self._db.query(
            "SELECT id, source_id, device_id FROM devices WHERE session_id = ?", [self.session_id]
        )
        self._device_refs = {(row["source_id"], row["device_id"]): row["id"] for row in devices}
        row = {"session_id": self.session_id, "mode": self.mode, "settings": json.dumps(self.settings, sort_keys=True),
               "started_wall": _now(), "status": "running"}  # fmt: skip
        with self._db.atomic():
            self.analysis_id = self._db["analyses"].insert(row).last_pk

    def _stop(self, source_stats) -> None:
        try:
            if self._pending_rows and self.failure is None:
                self._commit()
            status = "done" if self.failure is None else f"failed: {self.failure}"
            with self._db.atomic():
                self._db["analyses"].update(self.analysis_id, {"finished_wall": _now(), "status": status})
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._db.close()
