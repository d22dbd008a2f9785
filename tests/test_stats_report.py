"""Savings statistics from the ledger: /v1/stats, restarts, and the report command."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway.report import build_report, render


def send_twice(served, question: str) -> None:
    client = served.client()
    for _ in range(2):
        client.chat.completions.create(model="coder", messages=[{"role": "user", "content": question}])


def test_stats_count_hits_and_savings(gateway, local_upstream):
    served = gateway(local_upstream)
    send_twice(served, "Explain what `zip(*rows)` does.")
    stats = served.get("/v1/stats?window=today").json()
    ledger = served.ledger()
    assert stats["requests"] == 2
    assert stats["routes"] == {"local": 1, "cloud": 0, "cache": 1}
    assert stats["hit_rate_by_layer"]["exact"] == 0.5
    assert stats["tokens_saved"] == sum(line["tokens_saved"] for line in ledger)
    assert abs(stats["saved_usd"]["today"] - sum(line["cost_saved_usd"] for line in ledger)) < 1e-6
    assert stats["trend"][-1]["tokens_saved"] == stats["tokens_saved"]
    assert len(stats["trend"]) == 7


def test_stats_survive_restart(gateway, local_upstream):
    first = gateway(local_upstream)
    send_twice(first, "Explain what `dict.setdefault` does.")
    before = first.get("/v1/stats?window=week").json()
    first.stop()
    second = gateway(local_upstream, data_dir=str(first.data_dir))
    after = second.get("/v1/stats?window=week").json()
    assert after["requests"] == before["requests"]
    assert after["tokens_saved"] == before["tokens_saved"]


def test_stats_reject_unknown_window(gateway, local_upstream):
    served = gateway(local_upstream)
    response = served.get("/v1/stats?window=fortnight")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "window"


def test_report_markdown_and_json(gateway, local_upstream):
    served = gateway(local_upstream)
    send_twice(served, "Explain what `itertools.chain` does.")
    report = build_report(served.config, since=None, by="day")
    markdown = render(report, "markdown")
    parsed = json.loads(render(report, "json"))
    assert report["total"]["requests"] == 2
    assert report["rows"][0]["cache"] == 1
    assert "# AI coding assistant savings" in markdown
    assert "pays for itself" in markdown
    assert parsed["projection"]["hardware_usd"] == 1200.0


def test_report_command_csv(gateway, local_upstream, tmp_path):
    served = gateway(local_upstream)
    send_twice(served, "Explain what `functools.reduce` does.")
    config_file = tmp_path / "report.toml"
    config_file.write_text(f'data_dir = "{served.data_dir}"\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "report", "--config", str(config_file), "--by", "developer", "--format", "csv"],
        capture_output=True, text=True, timeout=60,
    )
    lines = result.stdout.strip().splitlines()
    assert result.returncode == 0, result.stderr
    assert lines[0].startswith("group,requests,errors,hit_rate")
    assert lines[1].startswith("(none),2,0,0.5")


def test_report_rejects_bad_since(tmp_path):
    config_file = tmp_path / "report.toml"
    config_file.write_text(f'data_dir = "{tmp_path}"\n', encoding="utf-8")
    (tmp_path / "ledger.jsonl").write_text("", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "report", "--config", str(config_file), "--since", "yesterday"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "YYYY-MM-DD" in result.stderr
