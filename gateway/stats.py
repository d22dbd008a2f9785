"""Savings statistics aggregated from ledger records, by UTC day.

The gateway reads its ledger once at start-up and then adds each request as it finishes, so the
numbers survive restarts. The report command uses the same aggregation on the ledger file alone.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

__all__ = ["DayStats", "LedgerStats", "read_ledger", "percentile"]

logger = logging.getLogger(__name__)

LATENCY_SAMPLES_PER_DAY = 5000
"""Local latencies kept per day for percentiles; a uniform reservoir sample beyond that."""


def percentile(values: list[float], q: float) -> float | None:
    """Return the q-th percentile (0-100) by linear interpolation, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class DayStats:
    """Totals of one group of requests (a day, or a day of one developer)."""

    requests: int = 0
    errors: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_saved: int = 0
    cost_usd: float = 0.0
    cost_saved_usd: float = 0.0
    by_route: Counter[str] = field(default_factory=Counter)
    by_cache: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    by_task: Counter[str] = field(default_factory=Counter)
    local_ms: list[float] = field(default_factory=list)
    local_seen: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.requests += 1
        if int(record.get("status") or 0) != 200:
            self.errors += 1
            return
        route = record.get("route") or "none"
        self.by_route[route] += 1
        self.by_cache[record.get("cache") or "miss"] += 1
        self.by_model[record.get("model") or "unknown"] += 1
        self.by_task[record.get("task") or "unknown"] += 1
        self.tokens_in += int(record.get("tokens_in") or 0)
        self.tokens_out += int(record.get("tokens_out") or 0)
        self.tokens_saved += int(record.get("tokens_saved") or 0)
        self.cost_usd += float(record.get("cost_usd") or 0.0)
        self.cost_saved_usd += float(record.get("cost_saved_usd") or 0.0)
        if route == "local" and record.get("ms") is not None:
            self.local_seen += 1
            if len(self.local_ms) < LATENCY_SAMPLES_PER_DAY:
                self.local_ms.append(float(record["ms"]))
            else:
                slot = random.randrange(self.local_seen)
                if slot < LATENCY_SAMPLES_PER_DAY:
                    self.local_ms[slot] = float(record["ms"])

    def merge(self, other: DayStats) -> None:
        for name in ("requests", "errors", "tokens_in", "tokens_out", "tokens_saved", "cost_usd", "cost_saved_usd", "local_seen"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("by_route", "by_cache", "by_model", "by_task"):
            getattr(self, name).update(getattr(other, name))
        self.local_ms.extend(other.local_ms)

    def summary(self) -> dict[str, Any]:
        served = self.requests - self.errors
        hits = self.by_cache.get("exact", 0) + self.by_cache.get("semantic", 0)
        return {
            "requests": self.requests,
            "errors": self.errors,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens_saved": self.tokens_saved,
            "cost_usd": round(self.cost_usd, 6),
            "cost_saved_usd": round(self.cost_saved_usd, 6),
            "hit_rate": round(hits / served, 4) if served else 0.0,
            "hit_rate_by_layer": {
                layer: round(self.by_cache.get(layer, 0) / served, 4) if served else 0.0 for layer in ("exact", "semantic")
            },
            "routes": {route: self.by_route.get(route, 0) for route in ("local", "cloud", "cache")},
            "models": dict(self.by_model.most_common()),
            "tasks": dict(self.by_task.most_common()),
            "local_latency_ms": {
                "p50": _round(percentile(self.local_ms, 50)),
                "p95": _round(percentile(self.local_ms, 95)),
                "p99": _round(percentile(self.local_ms, 99)),
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def read_ledger(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a ledger file, skipping lines that are not JSON objects."""
    if not path.exists():
        return
    with path.open("r", encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                logger.warning("ledger %s line %d is not JSON; skipped", path, number)
                continue
            if isinstance(record, dict):
                yield record


def record_day(record: dict[str, Any]) -> date | None:
    try:
        return datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00")).astimezone(timezone.utc).date()
    except (KeyError, ValueError):
        return None


class LedgerStats:
    """Per-day totals overall and per developer, project and team."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.days: dict[date, DayStats] = defaultdict(DayStats)
        self.groups: dict[tuple[str, str], dict[date, DayStats]] = defaultdict(lambda: defaultdict(DayStats))

    def add(self, record: dict[str, Any]) -> None:
        day = record_day(record)
        if day is None:
            return
        with self._lock:
            self.days[day].add(record)
            for dimension in ("developer", "project", "team"):
                self.groups[(dimension, record.get(dimension) or "(none)")][day].add(record)

    def add_all(self, records: Iterable[dict[str, Any]]) -> int:
        count = 0
        for record in records:
            self.add(record)
            count += 1
        return count

    def window(self, start: date, end: date) -> DayStats:
        """Return the totals of days in [start, end]."""
        total = DayStats()
        with self._lock:
            for day, stats in self.days.items():
                if start <= day <= end:
                    total.merge(stats)
        return total

    def group_window(self, dimension: str, start: date, end: date) -> dict[str, DayStats]:
        result: dict[str, DayStats] = {}
        with self._lock:
            for (name, value), days in self.groups.items():
                if name != dimension:
                    continue
                total = DayStats()
                for day, stats in days.items():
                    if start <= day <= end:
                        total.merge(stats)
                if total.requests:
                    result[value] = total
        return result

    def trend(self, end: date, days: int = 7) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "date": (end - timedelta(days=offset)).isoformat(),
                    "tokens_saved": self.days[end - timedelta(days=offset)].tokens_saved if (end - timedelta(days=offset)) in self.days else 0,
                    "cost_saved_usd": round(self.days[end - timedelta(days=offset)].cost_saved_usd, 6) if (end - timedelta(days=offset)) in self.days else 0.0,
                }
                for offset in range(days - 1, -1, -1)
            ]
