"""Open index stores kept for repeated searches in a long-running process (the gateway).

Opening and closing a Qdrant Edge shard takes about 0.1 s each, so the gateway keeps a shard
open between searches and closes it after ``IDLE_CLOSE_S`` without use. Qdrant Edge allows one
process per shard, and ``copilot-bridge index`` runs in another process: it takes the index's
``run.lock`` first and then waits for the shard. Before each search the pool checks that lock,
and while an indexing run holds it the pool closes the shard and raises IndexBusy, so that the
run gets the shard after at most one search or one idle period.
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gateway.config import Config
from indexer.layout import index_dir, open_store
from indexer.store import IndexBusy, IndexStore

__all__ = ["IDLE_CLOSE_S", "StorePool", "run_in_progress"]

logger = logging.getLogger(__name__)

IDLE_CLOSE_S = 5.0
T = TypeVar("T")


def run_in_progress(directory: Path) -> bool:
    """Return True while an indexing run has locked ``run.lock`` in the index folder."""
    path = directory / "run.lock"
    if not path.exists():
        return False
    try:
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


class StorePool:
    """Index stores by repository name, opened on first use and closed when idle."""

    def __init__(self, config: Config, idle_close_s: float = IDLE_CLOSE_S) -> None:
        self.config = config
        self.idle_close_s = idle_close_s
        self._lock = threading.Lock()
        self._stores: dict[str, IndexStore] = {}
        self._timers: dict[str, threading.Timer] = {}

    def use(self, name: str, dimension: int, action: Callable[[IndexStore], T]) -> T:
        """Run ``action`` on the open store of ``name``.

        Raises IndexBusy while an indexing run has the index locked, and FileNotFoundError when
        the index has no store yet.
        """
        with self._lock:
            if run_in_progress(index_dir(self.config, name)):
                self._close(name)
                raise IndexBusy(f"the index {name!r} is being updated by copilot-bridge index; retry when it finished")
            store = self._stores.get(name)
            if store is None:
                store = open_store(self.config, name, dimension, create=False)
                self._stores[name] = store
            timer = self._timers.pop(name, None)
            if timer is not None:
                timer.cancel()
            try:
                return action(store)
            finally:
                self._schedule_close(name)

    def _schedule_close(self, name: str) -> None:
        timer = threading.Timer(self.idle_close_s, self._close_idle, args=(name,))
        timer.daemon = True
        self._timers[name] = timer
        timer.start()

    def _close_idle(self, name: str) -> None:
        with self._lock:
            if self._timers.get(name) is threading.current_thread():
                self._timers.pop(name, None)
                self._close(name)

    def _close(self, name: str) -> None:
        store = self._stores.pop(name, None)
        if store is None:
            return
        try:
            store.close()
        except Exception as exc:  # a failed close must not fail the search that triggered it
            logger.warning("closing the index store of %s failed: %s", name, exc)

    def close(self) -> None:
        with self._lock:
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            for name in list(self._stores):
                self._close(name)
