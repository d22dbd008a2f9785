"""One JSON line per request: on stderr and appended to the ledger file in the data directory.

Lines never contain the prompt or the answer.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any, Callable

__all__ = ["Ledger"]

logger = logging.getLogger(__name__)


class Ledger:
    """Appends request records to ``path`` (JSON Lines), flushed after each line."""

    def __init__(self, path: Path, *, echo_stderr: bool = True, on_write: Callable[[dict[str, Any]], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._echo = echo_stderr
        self._on_write = on_write
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8", buffering=1)

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=True, separators=(",", ":"))
        with self._lock:
            try:
                self._file.write(line + "\n")
            except (OSError, ValueError) as exc:
                logger.error("ledger write to %s failed for request %s: %s", self.path, record.get("request_id"), exc)
        if self._echo:
            sys.stderr.write(line + "\n")
        if self._on_write is not None:
            self._on_write(record)

    def close(self) -> None:
        with self._lock:
            self._file.close()
