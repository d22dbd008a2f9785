"""Routing failures: cloud fallback, 502 and 504 responses, and the circuit breaker."""

from __future__ import annotations

import time

import openai
import pytest

from tests.support.harness import Gateway, ScriptedUpstream, sse_text


def ask(gw: Gateway, text: str = "Explain what a Python generator is.", **request):
    request.setdefault("model", "coder")
    return gw.client().chat.completions.with_raw_response.create(messages=[{"role": "user", "content": text}], **request)


def test_local_down_uses_cloud(gateway, dead_url: str, cloud_upstream: ScriptedUpstream) -> None:
    gw = gateway(dead_url, cloud_upstream)

    response = ask(gw)

    assert response.headers["x-route"] == "cloud"
    assert response.headers["x-fallback"] == "true"
    assert response.parse().choices[0].message.content.startswith("Answer from cloud")
    assert cloud_upstream.requests == 1


def test_local_error_uses_cloud(gateway, local_upstream: ScriptedUpstream, cloud_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cloud_upstream)
    local_upstream.control(mode="error")

    response = ask(gw)

    assert response.headers["x-route"] == "cloud"
    assert response.parse().choices[0].message.content.startswith("Answer from cloud")
    assert local_upstream.requests == 1
    assert cloud_upstream.requests == 1
    assert gw.metric("copilot_bridge_fallbacks_total", from_upstream="local", to_upstream="cloud") == 1


def test_stream_fallback_to_cloud(gateway, dead_url: str, cloud_upstream: ScriptedUpstream) -> None:
    gw = gateway(dead_url, cloud_upstream)

    response = gw.post(
        "/v1/chat/completions",
        json={"model": "coder", "stream": True, "messages": [{"role": "user", "content": "Explain list comprehensions."}]},
    )

    assert response.status_code == 200
    assert response.headers["x-route"] == "cloud"
    assert sse_text(response.text).startswith("Answer from cloud")
    assert response.text.endswith("data: [DONE]\n\n")


def test_fallback_model_name(gateway, dead_url: str, cloud_upstream: ScriptedUpstream) -> None:
    gw = gateway(dead_url, cloud_upstream, cloud_options={"fallback_model": "gpt-4o-mini"})

    ask(gw)

    assert cloud_upstream.stats()["last_body"]["model"] == "gpt-4o-mini"


def test_both_down_fails_fast(gateway, dead_url: str) -> None:
    other_dead_url = dead_url.replace("/v1", "/other/v1")
    gw = gateway(dead_url, other_dead_url, local_options={"read_timeout_s": 30}, cloud_options={"read_timeout_s": 30})

    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gw)
    elapsed = time.monotonic() - started

    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_failed"
    assert elapsed < 2.0


def test_hanging_upstream_times_out(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, local_options={"read_timeout_s": 1.0})
    local_upstream.control(mode="hang")

    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        ask(gw)
    elapsed = time.monotonic() - started

    assert caught.value.status_code == 504
    assert caught.value.body["code"] == "upstream_timeout"
    assert 0.9 <= elapsed < 3.0


def test_hanging_stream_times_out(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, local_options={"read_timeout_s": 1.0})
    local_upstream.control(mode="hang")

    started = time.monotonic()
    response = gw.post(
        "/v1/chat/completions",
        json={"model": "coder", "stream": True, "messages": [{"role": "user", "content": "Explain decorators."}]},
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert elapsed < 3.0


def test_breaker_skips_failing_local(gateway, local_upstream: ScriptedUpstream, cloud_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cloud_upstream, breaker_failures=2, breaker_cooldown_s=60)
    local_upstream.control(mode="error")

    routes = [ask(gw, f"Explain what closure number {n} captures.").headers["x-route"] for n in range(5)]

    assert routes == ["cloud"] * 5
    assert local_upstream.requests == 2
    assert cloud_upstream.requests == 5
    assert gw.metric("copilot_bridge_upstream_up", upstream="local") == 0


def test_breaker_without_cloud_fails(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, breaker_failures=1, breaker_cooldown_s=60)
    local_upstream.control(mode="error")

    with pytest.raises(openai.APIStatusError) as first:
        ask(gw, "Explain the first thing.")
    local_upstream.control(mode="ok")
    with pytest.raises(openai.APIStatusError) as second:
        ask(gw, "Explain the second thing.")

    assert first.value.status_code == 502
    assert second.value.status_code == 502
    assert "circuit open" in second.value.body["message"]
    assert "last failure: answered HTTP 500" in second.value.body["message"]
    assert 1 <= int(second.value.response.headers["retry-after"]) <= 60
    assert local_upstream.requests == 1


def test_upstream_rejection_passes_through(gateway, local_upstream: ScriptedUpstream, cloud_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cloud_upstream)
    local_upstream.control(mode="reject")

    with pytest.raises(openai.BadRequestError) as caught:
        ask(gw)

    assert caught.value.body["message"] == "scripted rejection"
    assert cloud_upstream.requests == 0


def test_long_prompt_goes_to_cloud(gateway, local_upstream: ScriptedUpstream, cloud_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cloud_upstream, local_options={"context_window": 100})

    response = ask(gw, "Explain this module:\n" + "x = 1\n" * 200)

    assert response.headers["x-route"] == "cloud"
    assert "x-fallback" not in response.headers
    assert local_upstream.requests == 0


def test_open_circuit_makes_readyz_degraded(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, breaker_failures=1, breaker_cooldown_s=60)
    local_upstream.control(mode="error")
    with pytest.raises(openai.APIStatusError):
        ask(gw, "Explain the first thing.")
    local_upstream.control(mode="ok")

    ready = gw.get("/readyz").json()

    assert ready["status"] == "degraded"
    assert ready["upstreams"]["local"]["circuit"] == "open"
