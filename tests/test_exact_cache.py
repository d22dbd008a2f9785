"""Exact cache: identical requests hit, requests that differ in an output-shaping field miss."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from tests.support.harness import Gateway, ScriptedUpstream

QUESTION = "Explain what this function does:\n\n```python\ndef clamp(x, low, high):\n    return max(low, min(x, high))\n```"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def ask(gw: Gateway, **request: Any):
    """Send a chat completion through the SDK and return the raw response (headers and body)."""
    request.setdefault("model", "coder")
    request.setdefault("messages", [{"role": "user", "content": QUESTION}])
    return gw.client().chat.completions.with_raw_response.create(**request)


@pytest.fixture(params=["embedded", "redis"])
def exact_store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Return the cache settings of each exact store. The redis case uses the session's Redis server."""
    if request.param == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {}


def test_identical_request_hits(gateway, local_upstream: ScriptedUpstream, exact_store: dict[str, Any]) -> None:
    gw = gateway(local_upstream, cache=exact_store)

    first = ask(gw)
    second = ask(gw)

    assert first.headers["x-cache"] == "miss"
    assert first.headers["x-route"] == "local"
    assert second.headers["x-cache"] == "hit-exact"
    assert second.headers["x-route"] == "cache"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert local_upstream.requests == 1


def test_redis_store_holds_entry(gateway, local_upstream: ScriptedUpstream, redis_url: str) -> None:
    gw = gateway(local_upstream, cache={"redis_url": redis_url})

    ask(gw)

    client = redis.Redis.from_url(redis_url)
    keys = client.keys("copilot-bridge:exact:*")
    client.close()
    assert len(keys) == 1
    assert keys[0].decode().startswith("copilot-bridge:exact:default:coder:")
    assert not (gw.data_dir / "exact-cache.sqlite3").exists()


def test_hit_returns_original_usage(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    first = ask(gw).parse()
    second = ask(gw).parse()

    assert second.usage is not None
    assert second.usage.total_tokens == first.usage.total_tokens
    assert second.choices[0].finish_reason == "stop"


SYSTEM = {"role": "system", "content": "You are a terse senior Python reviewer."}
OTHER_SYSTEM = {"role": "system", "content": "You are a patient teacher for beginners."}
USER = {"role": "user", "content": QUESTION}

MISS_CASES = {
    "model": ({"model": "coder"}, {"model": "coder-large"}),
    "system_prompt": ({"messages": [SYSTEM, USER]}, {"messages": [OTHER_SYSTEM, USER]}),
    "temperature": ({}, {"temperature": 0}),
    "tools": ({"tools": [WEATHER_TOOL]}, {"tools": [TIME_TOOL]}),
    "max_tokens": ({"max_tokens": 200}, {"max_tokens": 300}),
}


@pytest.mark.parametrize("case", sorted(MISS_CASES))
def test_changed_field_misses(gateway, local_upstream: ScriptedUpstream, case: str) -> None:
    base, changed = MISS_CASES[case]
    gw = gateway(local_upstream)

    first = ask(gw, **base)
    second = ask(gw, **changed)

    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "miss"
    assert local_upstream.requests == 2


def test_explicit_default_temperature_hits(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    ask(gw)
    second = ask(gw, temperature=1)

    assert second.headers["x-cache"] == "hit-exact"
    assert local_upstream.requests == 1


def test_namespace_header_separates(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    ask(gw, extra_headers={"x-cache-namespace": "team-a"})
    other_team = ask(gw, extra_headers={"x-cache-namespace": "team-b"})
    same_team = ask(gw, extra_headers={"x-cache-namespace": "team-a"})

    assert other_team.headers["x-cache"] == "miss"
    assert same_team.headers["x-cache"] == "hit-exact"
    assert local_upstream.requests == 2


def test_no_store_skips_write(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    ask(gw, extra_headers={"Cache-Control": "no-store"})
    second = ask(gw)

    assert second.headers["x-cache"] == "miss"
    assert local_upstream.requests == 2


def test_no_cache_skips_lookup(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    ask(gw)
    bypass = ask(gw, extra_body={"cache": {"no-cache": True}})
    third = ask(gw)

    assert bypass.headers["x-cache"] == "bypass"
    assert third.headers["x-cache"] == "hit-exact"
    assert local_upstream.requests == 2


def test_legacy_completion_hits(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    completions = gw.client().completions.with_raw_response

    first = completions.create(model="coder", prompt="def fibonacci(n):\n    ", max_tokens=200)
    second = completions.create(model="coder", prompt="def fibonacci(n):\n    ", max_tokens=200)

    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit-exact"
    assert second.parse().choices[0].text == first.parse().choices[0].text
    assert local_upstream.requests == 1


def test_tool_call_replays(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]

    first = ask(gw, messages=messages, tools=[WEATHER_TOOL]).parse()
    second = ask(gw, messages=messages, tools=[WEATHER_TOOL])

    assert second.headers["x-cache"] == "hit-exact"
    replayed = second.parse().choices[0].message.tool_calls
    assert replayed is not None
    assert replayed[0].function.name == "get_weather"
    assert replayed[0].function.arguments == first.choices[0].message.tool_calls[0].function.arguments
