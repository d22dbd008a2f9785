"""Streaming: relay, replay of cached responses, and no caching of streams that did not finish."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.support.harness import CLIENT_API_KEY, Gateway, ScriptedUpstream, sse_payloads, sse_text

QUESTION = "Explain what this function does:\n\n```python\ndef is_even(n):\n    return n % 2 == 0\n```"
MESSAGES = [{"role": "user", "content": QUESTION}]
BODY = {"model": "coder", "messages": MESSAGES}


def stream_with_sdk(gw: Gateway, **request) -> tuple[dict[str, str], str]:
    """Stream a chat completion with the SDK, and return the response headers and the joined text."""
    raw = gw.client().chat.completions.with_raw_response.create(model="coder", messages=MESSAGES, stream=True, **request)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)
    return dict(raw.headers), text


def test_stream_miss_then_hit(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    first_headers, first_text = stream_with_sdk(gw)
    replay = gw.post("/v1/chat/completions", json={**BODY, "stream": True})

    assert first_headers["x-cache"] == "miss"
    assert first_headers["x-route"] == "local"
    assert first_text.startswith("Answer from local")
    assert replay.status_code == 200
    assert replay.headers["x-cache"] == "hit-exact"
    assert replay.headers["content-type"].startswith("text/event-stream")
    assert sse_text(replay.text) == first_text
    assert sse_payloads(replay.text)[-1] == "[DONE]"
    assert replay.text.endswith("data: [DONE]\n\n")
    assert local_upstream.requests == 1


def test_stream_hit_with_sdk(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    _, first_text = stream_with_sdk(gw)
    second_headers, second_text = stream_with_sdk(gw)

    assert second_headers["x-cache"] == "hit-exact"
    assert second_text == first_text


def test_plain_request_from_stream_entry(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    _, streamed_text = stream_with_sdk(gw)
    plain = gw.client().chat.completions.with_raw_response.create(model="coder", messages=MESSAGES)

    assert plain.headers["x-cache"] == "hit-exact"
    assert plain.parse().choices[0].message.content == streamed_text
    assert plain.parse().choices[0].finish_reason == "stop"
    assert local_upstream.requests == 1


def test_stream_from_plain_entry(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    plain = gw.client().chat.completions.create(model="coder", messages=MESSAGES)
    headers, streamed_text = stream_with_sdk(gw)

    assert headers["x-cache"] == "hit-exact"
    assert streamed_text == plain.choices[0].message.content


def test_replay_usage_chunk(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    options = {"stream": True, "stream_options": {"include_usage": True}}

    first = gw.post("/v1/chat/completions", json={**BODY, **options})
    replay = gw.post("/v1/chat/completions", json={**BODY, **options})

    first_usage = json.loads(sse_payloads(first.text)[-2])["usage"]
    replay_usage = json.loads(sse_payloads(replay.text)[-2])["usage"]
    assert replay.headers["x-cache"] == "hit-exact"
    assert replay_usage == first_usage


def test_usage_chunk_hidden_unless_asked(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    response = gw.post("/v1/chat/completions", json={**BODY, "stream": True})

    chunks = [json.loads(p) for p in sse_payloads(response.text) if p != "[DONE]"]
    assert all("usage" not in chunk or chunk["usage"] is None for chunk in chunks)
    assert local_upstream.stats()["last_body"]["stream_options"] == {"include_usage": True}


def test_legacy_completion_stream_hit(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    body = {"model": "coder", "prompt": "# sort a list of numbers\ndef sort_numbers(values):\n", "max_tokens": 200, "stream": True}

    first = gw.post("/v1/completions", json=body)
    second = gw.post("/v1/completions", json=body)

    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit-exact"
    assert sse_text(second.text) == sse_text(first.text)
    assert second.text.endswith("data: [DONE]\n\n")


def test_async_client_stream_hit(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    async def stream_twice() -> list[tuple[str, str]]:
        client = gw.async_client()
        results = []
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(model="coder", messages=MESSAGES, stream=True)
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in raw.parse() if chunk.choices])
            results.append((raw.headers["x-cache"], text))
        await client.close()
        return results

    (first_cache, first_text), (second_cache, second_text) = asyncio.run(stream_twice())

    assert first_cache == "miss"
    assert second_cache == "hit-exact"
    assert second_text == first_text


def test_client_disconnect_not_cached(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    local_upstream.control(chunk_delay_s=0.15)
    request_id = "test-disconnect-0001"

    with httpx.Client(timeout=20) as client:
        with client.stream(
            "POST",
            gw.base_url + "/v1/chat/completions",
            json={**BODY, "stream": True},
            headers={"Authorization": f"Bearer {CLIENT_API_KEY}", "x-request-id": request_id},
        ) as response:
            first_line = next(line for line in response.iter_lines() if line.startswith("data:"))
    # The gateway finishes the request when it notices the disconnect, or when the upstream
    # stream ends (about 2.5 s at this chunk delay) if it never notices.
    line = gw.ledger_line(request_id)

    local_upstream.control(chunk_delay_s=0.0)
    again = gw.post("/v1/chat/completions", json={**BODY, "stream": True})

    assert first_line.startswith("data: {")
    assert line["status"] == 499
    assert line["route"] == "local"
    assert line["tokens_in"] > 0
    assert again.headers["x-cache"] == "miss"
    assert gw.metric("copilot_bridge_cache_writes_total", layer="exact") == 1


def test_cut_stream_not_cached(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    local_upstream.control(mode="cut")

    cut = gw.post("/v1/chat/completions", json={**BODY, "stream": True})
    local_upstream.control(mode="ok")
    again = gw.post("/v1/chat/completions", json={**BODY, "stream": True})

    payloads = sse_payloads(cut.text)
    assert "[DONE]" not in payloads
    error = json.loads(payloads[-1])["error"]
    assert error["type"] == "upstream_error"
    assert error["code"] == "upstream_failed"
    assert again.headers["x-cache"] == "miss"
    assert again.text.endswith("data: [DONE]\n\n")
    assert local_upstream.requests == 2


def test_usage_estimated_when_upstream_sends_none(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    local_upstream.control(mode="no_usage")

    response = gw.post("/v1/chat/completions", json={**BODY, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 5})

    chunks = [json.loads(p) for p in sse_payloads(response.text) if p != "[DONE]"]
    usage = [c["usage"] for c in chunks if c.get("usage")]
    line = gw.ledger_line(response.headers["x-request-id"])
    assert len(usage) == 1
    assert usage[0]["completion_tokens"] == 5
    assert line["usage_estimated"] is True
    assert line["tokens_out"] == 5
