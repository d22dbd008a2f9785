"""``copilot-bridge report``: savings from the ledger as a table, CSV, Markdown or JSON."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

from gateway.config import Config, load_config
from gateway.stats import DayStats, read_ledger, record_day

__all__ = ["build_report", "register", "render"]

GROUPINGS = ("day", "week", "month", "developer", "project", "team")
FORMATS = ("table", "csv", "markdown", "json")
COLUMNS = ("group", "requests", "errors", "hit_rate", "local", "cloud", "cache", "tokens_saved", "cost_saved_usd", "cost_usd")


def _group_of(record: dict[str, Any], day: date, by: str) -> str:
    if by == "day":
        return day.isoformat()
    if by == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if by == "month":
        return day.strftime("%Y-%m")
    return str(record.get(by) or "(none)")


def build_report(config: Config, *, since: date | None, by: str) -> dict[str, Any]:
    """Aggregate the ledger from ``since`` (inclusive) into groups and a projection."""
    groups: dict[str, DayStats] = defaultdict(DayStats)
    total = DayStats()
    days: set[date] = set()
    developers: set[str] = set()
    for record in read_ledger(config.data_path / "ledger.jsonl"):
        day = record_day(record)
        if day is None or (since is not None and day < since):
            continue
        groups[_group_of(record, day, by)].add(record)
        total.add(record)
        days.add(day)
        developers.add(str(record.get("developer") or "(anonymous)"))

    rows = []
    for name in sorted(groups):
        summary = groups[name].summary()
        rows.append({
            "group": name,
            "requests": summary["requests"],
            "errors": summary["errors"],
            "hit_rate": summary["hit_rate"],
            **summary["routes"],
            "tokens_saved": summary["tokens_saved"],
            "cost_saved_usd": summary["cost_saved_usd"],
            "cost_usd": summary["cost_usd"],
        })

    active_days = max(1, len(days))
    per_developer_day = total.cost_saved_usd / active_days / max(1, len(developers))
    monthly_per_developer = per_developer_day * config.pricing.workdays_per_month
    monthly_team = monthly_per_developer * max(1, len(developers))
    breakeven_months = config.pricing.hardware_usd / monthly_team if monthly_team > 0 else None
    return {
        "since": since.isoformat() if since else None,
        "by": by,
        "rows": rows,
        "total": {**total.summary(), "active_days": len(days), "developers": len(developers)},
        "projection": {
            "monthly_savings_per_developer_usd": round(monthly_per_developer, 4),
            "monthly_savings_team_usd": round(monthly_team, 4),
            "hardware_usd": config.pricing.hardware_usd,
            "breakeven_months": round(breakeven_months, 1) if breakeven_months is not None else None,
        },
    }


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 1 else f"{value:.2f}"
    return str(value)


def _table(report: dict[str, Any]) -> str:
    rows = [[_cell(row[c]) for c in COLUMNS] for row in report["rows"]]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return "\n".join(lines) + "\n\n" + _projection_text(report) + "\n"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _projection_text(report: dict[str, Any]) -> str:
    total, projection = report["total"], report["projection"]
    breakeven = projection["breakeven_months"]
    roi = (
        f"At this rate the ${projection['hardware_usd']:,.0f} of local hardware pays for itself in {breakeven} months."
        if breakeven is not None else "No savings yet, so no breakeven date."
    )
    return (
        f"{_plural(total['requests'], 'request')} over {_plural(total['active_days'], 'active day')} by "
        f"{_plural(total['developers'], 'developer')}: {total['tokens_saved']:,} tokens and {_usd(total['cost_saved_usd'])} saved, "
        f"hit rate {100 * total['hit_rate']:.1f}%. Projected savings: {_usd(projection['monthly_savings_per_developer_usd'])} "
        f"per developer per month ({_usd(projection['monthly_savings_team_usd'])} for the team). {roi}"
    )


def _markdown(report: dict[str, Any]) -> str:
    total = report["total"]
    since = report["since"] or "the start of the ledger"
    lines = [
        "# AI coding assistant savings",
        "",
        f"Period: since {since}. Requests from IDEs went through copilot-bridge, which answers repeats from its "
        "cache and routine tasks on local hardware instead of the cloud API.",
        "",
        f"- **USD saved:** {_usd(total['cost_saved_usd'])} (spent: {_usd(total['cost_usd'])})",
        f"- **Tokens kept off the cloud:** {total['tokens_saved']:,}",
        f"- **Requests:** {total['requests']:,} ({total['errors']:,} failed), cache hit rate {100 * total['hit_rate']:.1f}% of those served, "
        f"local {total['routes']['local']:,}, cloud {total['routes']['cloud']:,}, cache {total['routes']['cache']:,}",
        "",
        _projection_text(report),
        "",
        f"| {' | '.join(COLUMNS)} |",
        f"|{'|'.join('---' for _ in COLUMNS)}|",
    ]
    lines += [f"| {' | '.join(_cell(row[c]) for c in COLUMNS)} |" for row in report["rows"]]
    return "\n".join(lines) + "\n"


def _csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS))
    writer.writeheader()
    for row in report["rows"]:
        writer.writerow(row)
    return out.getvalue()


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    if fmt == "csv":
        return _csv(report)
    if fmt == "markdown":
        return _markdown(report)
    return _table(report)


def _parse_since(text: str | None) -> date | None:
    if not text:
        return None
    if text.endswith("d") and text[:-1].isdigit():
        return datetime.now(timezone.utc).date() - timedelta(days=int(text[:-1]) - 1)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--since {text!r} is invalid: use YYYY-MM-DD or a day count such as 7d") from exc


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.data_dir:
        config.data_dir = args.data_dir
    try:
        since = _parse_since(args.since)
    except argparse.ArgumentTypeError as exc:
        print(f"copilot-bridge report: {exc}", file=sys.stderr)
        return 2
    ledger = config.data_path / "ledger.jsonl"
    if not ledger.exists():
        print(f"copilot-bridge report: no ledger at {ledger}; serve some requests first or pass --data-dir", file=sys.stderr)
        return 1
    sys.stdout.write(render(build_report(config, since=since, by=args.by), args.format))
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("report", parents=[common], help="savings report from the ledger")
    parser.add_argument("--since", help="first day, YYYY-MM-DD or a day count such as 7d (default: all)")
    parser.add_argument("--by", choices=GROUPINGS, default="day", help="grouping of the rows (default day)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    parser.add_argument("--data-dir", help="folder holding ledger.jsonl (default: the config's data_dir)")
    parser.set_defaults(handler=_run)
