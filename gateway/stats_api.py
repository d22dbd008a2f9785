"""``GET /v1/stats``: savings from the ledger, for the dashboard and scripts."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

from litestar import Request, Response, get

from gateway.errors import InvalidRequest
from gateway.stats import LedgerStats

__all__ = ["HANDLERS", "stats_report", "window_bounds"]

WINDOWS = {"today": 1, "1d": 1, "week": 7, "7d": 7, "month": 30, "30d": 30, "90d": 90}


def window_bounds(window: str, today: date) -> tuple[date, date]:
    """Return the first and last day of a named window ending today.

    Raises:
        InvalidRequest: the window is not one of today, week, month, 1d, 7d, 30d, 90d.
    """
    days = WINDOWS.get(window)
    if days is None:
        raise InvalidRequest(f"window {window!r} is invalid: use one of {', '.join(WINDOWS)}", param="window")
    return today - timedelta(days=days - 1), today


def stats_report(stats: LedgerStats, window: str, today: date | None = None) -> dict[str, Any]:
    today = today or datetime.now(timezone.utc).date()
    start, end = window_bounds(window, today)
    summary = stats.window(start, end).summary()
    return {
        "window": window,
        "start": start.isoformat(),
        "end": end.isoformat(),
        **summary,
        "saved_usd": {
            "today": round(stats.window(today, today).cost_saved_usd, 6),
            "week": round(stats.window(today - timedelta(days=6), today).cost_saved_usd, 6),
            "month": round(stats.window(today - timedelta(days=29), today).cost_saved_usd, 6),
        },
        "tokens_saved_by_period": {
            "today": stats.window(today, today).tokens_saved,
            "week": stats.window(today - timedelta(days=6), today).tokens_saved,
            "month": stats.window(today - timedelta(days=29), today).tokens_saved,
        },
        "trend": stats.trend(today, 7),
        "developers": {
            name: {"requests": s.requests, "tokens_saved": s.tokens_saved, "cost_saved_usd": round(s.cost_saved_usd, 6)}
            for name, s in stats.group_window("developer", start, end).items()
        },
        "projects": {
            name: {"requests": s.requests, "tokens_saved": s.tokens_saved, "cost_saved_usd": round(s.cost_saved_usd, 6)}
            for name, s in stats.group_window("project", start, end).items()
        },
    }


@get("/v1/stats")
async def get_stats(request: Request[Any, Any, Any], window: str = "today") -> Response[bytes]:
    from gateway.app import error_response, gateway_state, json_response

    try:
        report = stats_report(gateway_state(request).stats, window)
    except InvalidRequest as error:
        return error_response(error)
    return json_response(report)


HANDLERS = [get_stats]
