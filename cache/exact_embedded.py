"""Exact cache in an SQLite file in the data directory: persistent, bounded, no server needed."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from cache.errors import StoreUnavailable
from cache.exact_base import ExactStore

__all__ = ["EmbeddedExactStore"]

logger = logging.getLogger(__name__)

LAST_USED_RESOLUTION_S = 60.0
"""A hit refreshes an entry's recency at most this often."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    model TEXT NOT NULL,
    value BLOB NOT NULL,
    expires_at REAL NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_last_used ON entries (last_used);
CREATE INDEX IF NOT EXISTS entries_scope ON entries (namespace, model);
"""


class EmbeddedExactStore(ExactStore):
    """Entries in one SQLite table; past ``max_entries`` the least recently used tenth is evicted.

    Calls run on the event loop thread: each is a primary-key lookup or a single-row write in
    WAL mode without fsync, which takes tens of microseconds on a local disk.
    """

    name = "embedded"

    def __init__(self, path: Path, *, max_entries: int = 100_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=1.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._count = self._db.execute("SELECT count(*) FROM entries").fetchone()[0]
        logger.info("embedded exact cache opened at %s with %d entries", path, self._count)

    @staticmethod
    def _row_key(namespace: str, model: str, key: str) -> str:
        return f"{namespace}\x00{model}\x00{key}"

    async def get(self, namespace: str, model: str, key: str) -> bytes | None:
        now = time.time()
        try:
            with self._lock:
                row = self._db.execute(
                    "SELECT value, expires_at, last_used FROM entries WHERE key = ?", (self._row_key(namespace, model, key),)
                ).fetchone()
                if row is None:
                    return None
                if row[1] <= now:
                    self._db.execute("DELETE FROM entries WHERE key = ?", (self._row_key(namespace, model, key),))
                    self._count -= 1
                    return None
                if now - row[2] > LAST_USED_RESOLUTION_S:
                    # Recency only orders evictions, so one write a minute per hot entry is enough.
                    self._db.execute(
                        "UPDATE entries SET last_used = ? WHERE key = ?", (now, self._row_key(namespace, model, key))
                    )
                return bytes(row[0])
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"embedded exact cache read failed: {exc}") from exc

    async def set(self, namespace: str, model: str, key: str, value: bytes, ttl_s: int) -> None:
        now = time.time()
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO entries (key, namespace, model, value, expires_at, last_used) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, "
                    "last_used = excluded.last_used",
                    (self._row_key(namespace, model, key), namespace, model, value, now + ttl_s, now),
                )
                # NOTE: an overwrite also counts; the count is exact again after each eviction.
                self._count += 1
                if self._count > self._max_entries:
                    self._evict(now)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"embedded exact cache write failed: {exc}") from exc

    def _evict(self, now: float) -> None:
        self._db.execute("DELETE FROM entries WHERE expires_at <= ?", (now,))
        self._count = self._db.execute("SELECT count(*) FROM entries").fetchone()[0]
        excess = self._count - int(self._max_entries * 0.9)
        if excess > 0:
            self._db.execute(
                "DELETE FROM entries WHERE key IN (SELECT key FROM entries ORDER BY last_used LIMIT ?)", (excess,)
            )
            self._count -= excess
            logger.info("embedded exact cache evicted %d least recently used entries", excess)

    async def ttl(self, namespace: str, model: str, key: str) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT expires_at FROM entries WHERE key = ?", (self._row_key(namespace, model, key),)
            ).fetchone()
        if row is None or row[0] <= time.time():
            return None
        return row[0] - time.time()

    async def purge(self, namespace: str | None = None, model: str | None = None) -> int:
        clauses, params = [], []
        if namespace:
            clauses.append("namespace = ?")
            params.append(namespace)
        if model:
            clauses.append("model = ?")
            params.append(model)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        with self._lock:
            deleted = self._db.execute(f"DELETE FROM entries{where}", params).rowcount
            self._count = self._db.execute("SELECT count(*) FROM entries").fetchone()[0]
        return deleted

    async def ping(self) -> None:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"embedded exact cache is not readable: {exc}") from exc

    async def close(self) -> None:
        with self._lock:
            self._db.close()
