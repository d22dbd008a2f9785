"""The SQLite manifest of one repository index: which file versions are stored, and how.

A file's row is written only after all of its chunks are in the vector store, in the same step
that commits a batch. A run that stops part-way leaves the rows of finished files, so the next run
skips those and redoes the rest. There, a file without a row or with an old hash gets its old
chunks deleted and its new ones stored.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FileRecord", "Manifest"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    language TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class FileRecord:
    path: str
    sha256: str
    size: int
    mtime_ns: int
    chunks: int
    language: str


class Manifest:
    """One SQLite database per index; used from one thread at a time."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.commit()

    # -- settings of the index --------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def settings(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    # -- files ------------------------------------------------------------------------------

    def files(self) -> dict[str, FileRecord]:
        rows = self._db.execute("SELECT path, sha256, size, mtime_ns, chunks, language FROM files").fetchall()
        return {row[0]: FileRecord(*row) for row in rows}

    def record(self, records: Iterable[FileRecord]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO files (path, sha256, size, mtime_ns, chunks, language) VALUES (?, ?, ?, ?, ?, ?)",
                [(r.path, r.sha256, r.size, r.mtime_ns, r.chunks, r.language) for r in records],
            )

    def remove(self, paths: Iterable[str]) -> None:
        with self._db:
            self._db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])

    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM files")
            self._db.execute("DELETE FROM meta")

    def totals(self) -> tuple[int, int]:
        """Return (files, chunks) recorded."""
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(chunks), 0) FROM files").fetchone()
        return int(row[0]), int(row[1])

    def mark_run(self, state: str) -> None:
        """Record ``running`` at the start of a run and ``complete`` at its end, with the time."""
        self.set("run_state", state)
        self.set(f"run_{state}_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def close(self) -> None:
        self._db.close()
