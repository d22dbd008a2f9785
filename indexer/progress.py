"""Progress of an indexing run: a redrawn bar on a TTY, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from typing import TextIO

__all__ = ["Progress"]

logger = logging.getLogger(__name__)

REDRAW_INTERVAL_S = 0.2
LOG_INTERVAL_S = 10.0


def _duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Counts files, bytes and chunks of the files a run reads; ETA comes from the byte rate."""

    def __init__(self, total_files: int, total_bytes: int, *, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.total_files = total_files
        self.total_bytes = max(1, total_bytes)
        self.files = 0
        self.bytes = 0
        self.chunks = 0
        self.embedded = 0
        self.started = time.perf_counter()
        # A TTY gets the bar at once; a log gets its first line after one interval.
        self._last_output = 0.0 if self.tty else self.started
        self._drawn = False

    def advance(self, *, files: int = 0, size: int = 0, chunks: int = 0, embedded: int = 0) -> None:
        self.files += files
        self.bytes += size
        self.chunks += chunks
        self.embedded += embedded
        now = time.perf_counter()
        interval = REDRAW_INTERVAL_S if self.tty else LOG_INTERVAL_S
        if now - self._last_output >= interval:
            self._last_output = now
            self._output(now)

    def _line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-6)
        rate = self.embedded / elapsed
        share = min(1.0, self.bytes / self.total_bytes)
        eta = (elapsed / share - elapsed) if share > 0 else 0.0
        return (
            f"{self.files}/{self.total_files} files  {self.chunks} chunks  {rate:.1f} chunks/s embedded  "
            f"{_duration(elapsed)} elapsed  ETA {_duration(eta) if share > 0 else '?'}"
        )

    def _output(self, now: float) -> None:
        line = self._line(now)
        if not self.tty:
            logger.info("indexing: %s", line)
            return
        width = shutil.get_terminal_size((100, 20)).columns
        share = min(1.0, self.bytes / self.total_bytes)
        bar_width = max(10, min(30, width - len(line) - 10))
        filled = int(bar_width * share)
        text = f"[{'#' * filled}{'.' * (bar_width - filled)}] {share * 100:3.0f}%  {line}"
        self.stream.write("\r" + text[: width - 1].ljust(width - 1))
        self.stream.flush()
        self._drawn = True

    def finish(self) -> None:
        """Draw the final state and end the bar's line."""
        self._output(time.perf_counter())
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
