"""Accounting: Prometheus metrics and the JSON Lines ledger after misses, hits and errors."""

from __future__ import annotations

import re

import openai
import pytest

from tests.support.harness import Gateway, ScriptedUpstream, metric_value

MARKER = "zebra-quokka-7731"
"""A word that appears only in the prompts, to prove the ledger never stores them."""
MESSAGES = [{"role": "user", "content": f"Explain what the {MARKER} function does:\n\n```python\ndef {MARKER.replace('-', '_')}(): return 42\n```"}]

LEDGER_FIELDS = {
    "ts", "request_id", "route", "cache", "task", "model", "upstream", "tokens_in", "tokens_out",
    "tokens_saved", "cost_usd", "cost_saved_usd", "ms", "status",
}


def ask(gw: Gateway, request_id: str, **request):
    request.setdefault("model", "coder")
    request.setdefault("messages", MESSAGES)
    return gw.client().chat.completions.with_raw_response.create(extra_headers={"x-request-id": request_id}, **request)


def test_hit_raises_savings_metrics(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    cloud_price = gw.config.pricing.cloud_per_1k

    usage = ask(gw, "metrics-miss").parse().usage
    after_miss = gw.metrics()
    ask(gw, "metrics-hit")
    after_hit = gw.metrics()

    tokens_delta = metric_value(after_hit, "copilot_bridge_tokens_saved_total") - metric_value(after_miss, "copilot_bridge_tokens_saved_total")
    cost_delta = metric_value(after_hit, "copilot_bridge_cost_saved_usd_total") - metric_value(after_miss, "copilot_bridge_cost_saved_usd_total")
    assert tokens_delta == usage.total_tokens
    assert cost_delta == pytest.approx(usage.total_tokens * cloud_price / 1000)
    assert metric_value(after_hit, "copilot_bridge_tokens_saved_total", route="cache") == usage.total_tokens
    assert metric_value(after_hit, "copilot_bridge_requests_by_route_total", route="cache") == 1
    assert metric_value(after_hit, "copilot_bridge_requests_by_route_total", route="local") == 1
    assert metric_value(after_hit, "copilot_bridge_cache_hits_total", layer="exact") == 1
    assert metric_value(after_hit, "copilot_bridge_cache_misses_total", layer="exact") == 1
    assert metric_value(after_hit, "copilot_bridge_responses_total", status="200") == 2


def test_local_route_savings(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    pricing = gw.config.pricing

    usage = ask(gw, "local-savings").parse().usage

    assert gw.metric("copilot_bridge_tokens_saved_total", route="local") == usage.total_tokens
    assert gw.metric("copilot_bridge_cost_saved_usd_total", route="local") == pytest.approx(
        usage.total_tokens * (pricing.cloud_per_1k - pricing.local_per_1k) / 1000
    )
    assert gw.metric("copilot_bridge_cost_usd_total", route="local") == pytest.approx(usage.total_tokens * pricing.local_per_1k / 1000)
    assert gw.metric("copilot_bridge_tokens_total", route="local", direction="in") == usage.prompt_tokens


def test_cloud_route_saves_nothing(gateway, dead_url: str, cloud_upstream: ScriptedUpstream) -> None:
    gw = gateway(dead_url, cloud_upstream)

    usage = ask(gw, "cloud-cost").parse().usage

    assert gw.metric("copilot_bridge_tokens_saved_total", route="cloud") == 0
    assert gw.metric("copilot_bridge_cost_usd_total", route="cloud") == pytest.approx(
        usage.total_tokens * gw.config.pricing.cloud_per_1k / 1000
    )
    assert gw.ledger_line("cloud-cost")["fallback"] is True


def test_ledger_line_per_request(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    usage = ask(gw, "ledger-miss").parse().usage
    ask(gw, "ledger-hit")
    with pytest.raises(openai.NotFoundError):
        ask(gw, "ledger-404", model="no-such-model")

    lines = gw.ledger()
    assert [line["request_id"] for line in lines] == ["ledger-miss", "ledger-hit", "ledger-404"]
    for line in lines:
        assert LEDGER_FIELDS <= set(line), f"missing {LEDGER_FIELDS - set(line)} in {line}"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["ts"])
        assert line["ms"] >= 0

    miss, hit, not_found = lines
    assert miss["route"] == "local"
    assert miss["cache"] == "miss"
    assert miss["upstream"] == "local"
    assert miss["task"] == "explain"
    assert miss["model"] == "coder"
    assert miss["tokens_in"] == usage.prompt_tokens
    assert miss["tokens_out"] == usage.completion_tokens
    assert miss["cost_usd"] > 0
    assert miss["status"] == 200

    assert hit["route"] == "cache"
    assert hit["cache"] == "exact"
    assert hit["upstream"] is None
    assert hit["cost_usd"] == 0
    assert hit["tokens_in"] == 0
    assert hit["tokens_out"] == 0
    assert hit["tokens_saved"] == usage.total_tokens
    assert hit["cost_saved_usd"] == pytest.approx(usage.total_tokens * gw.config.pricing.cloud_per_1k / 1000)
    assert hit["status"] == 200

    assert not_found["status"] == 404
    assert not_found["route"] is None


def test_ledger_has_no_text(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    answer = ask(gw, "text-miss").parse().choices[0].message.content
    ask(gw, "text-hit")
    gw.post("/v1/chat/completions", json={"model": "coder", "messages": MESSAGES, "stream": True, "temperature": 0})
    gw.ledger_line("text-hit")

    ledger_text = (gw.data_dir / "ledger.jsonl").read_text(encoding="utf-8")
    assert len(gw.ledger()) == 3
    assert MARKER not in ledger_text
    assert MARKER.replace("-", "_") not in ledger_text
    assert answer[:40] not in ledger_text


def test_stream_hit_ledger(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    body = {"model": "coder", "messages": MESSAGES, "stream": True}

    gw.post("/v1/chat/completions", json=body, headers={"x-request-id": "stream-miss"})
    gw.post("/v1/chat/completions", json=body, headers={"x-request-id": "stream-hit"})

    miss = gw.ledger_line("stream-miss")
    hit = gw.ledger_line("stream-hit")
    assert miss["stream"] is True
    assert miss["tokens_in"] > 0
    assert "usage_estimated" not in miss
    assert hit["cache"] == "exact"
    assert hit["tokens_saved"] == miss["tokens_in"] + miss["tokens_out"]


def test_semantic_hit_ledger(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    code = "```python\ndef total(items):\n    return sum(item.price for item in items)\n```"

    ask(gw, "semantic-miss", messages=[{"role": "user", "content": f"Explain what this function does:\n\n{code}"}])
    response = ask(gw, "semantic-hit", messages=[{"role": "user", "content": f"What does this function do?\n\n{code}"}])

    line = gw.ledger_line("semantic-hit")
    assert response.headers["x-cache"] == "hit-semantic"
    assert line["cache"] == "semantic"
    assert line["similarity"] == pytest.approx(float(response.headers["x-cache-similarity"]), abs=1e-4)
    assert line["entry_id"] == response.headers["x-cache-entry"]


def test_estimated_usage_flagged(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    local_upstream.control(mode="no_usage")

    ask(gw, "no-usage")

    line = gw.ledger_line("no-usage")
    assert line["usage_estimated"] is True
    assert line["tokens_in"] > 0
    assert line["tokens_out"] > 0


def test_upstream_failure_ledger(gateway, dead_url: str) -> None:
    gw = gateway(dead_url)

    with pytest.raises(openai.APIStatusError):
        ask(gw, "all-down")

    line = gw.ledger_line("all-down")
    assert line["status"] == 502
    assert "error" in line
    assert gw.metric("copilot_bridge_responses_total", status="502") == 1
    assert gw.metric("copilot_bridge_upstream_errors_total", upstream="local", reason="connect") == 1
