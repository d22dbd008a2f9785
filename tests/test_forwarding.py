"""What reaches the upstream: the upstream's own key, never the client's, and no gateway fields."""

from __future__ import annotations

import pytest

from tests.support.harness import CLIENT_API_KEY, ScriptedUpstream

UPSTREAM_KEY_ENV = "COPILOT_BRIDGE_TEST_UPSTREAM_KEY"
UPSTREAM_KEY = "sk-upstream-own-key-9876543210"
MESSAGES = [{"role": "user", "content": "Explain Python's walrus operator."}]


def header(headers: dict[str, str], name: str) -> str | None:
    """Return a header value by case-insensitive name."""
    return next((value for key, value in headers.items() if key.lower() == name.lower()), None)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_client_key_not_forwarded(gateway, local_upstream: ScriptedUpstream, stream: bool) -> None:
    gw = gateway(local_upstream)

    gw.post("/v1/chat/completions", json={"model": "coder", "messages": MESSAGES, "stream": stream}).raise_for_status()

    headers = local_upstream.stats()["last_headers"]
    assert headers is not None
    assert header(headers, "authorization") is None
    assert not any(CLIENT_API_KEY in value for value in headers.values())


def test_other_client_headers_not_forwarded(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    gw.client().chat.completions.create(
        model="coder", messages=MESSAGES, extra_headers={"x-api-key": CLIENT_API_KEY, "Cookie": "session=secret-cookie"}
    )

    headers = local_upstream.stats()["last_headers"]
    assert header(headers, "x-api-key") is None
    assert header(headers, "cookie") is None


def test_upstream_sends_own_key(gateway, local_upstream: ScriptedUpstream, cloud_upstream: ScriptedUpstream, dead_url: str, monkeypatch) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    gw = gateway(dead_url, cloud_upstream, cloud_options={"api_key_env": UPSTREAM_KEY_ENV})

    response = gw.client().chat.completions.with_raw_response.create(model="coder", messages=MESSAGES)

    headers = cloud_upstream.stats()["last_headers"]
    assert response.headers["x-route"] == "cloud"
    assert header(headers, "authorization") == f"Bearer {UPSTREAM_KEY}"
    assert not any(CLIENT_API_KEY in value for value in headers.values())


def test_cache_field_stripped(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    gw.client().chat.completions.create(
        model="coder", messages=MESSAGES, extra_body={"cache": {"ttl": 600, "namespace": "team-a", "no-cache": True}}
    )

    body = local_upstream.stats()["last_body"]
    assert "cache" not in body
    assert body["messages"] == MESSAGES


def test_unknown_fields_pass_through(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    gw.client().chat.completions.create(model="coder", messages=MESSAGES, extra_body={"keep_alive": "5m", "num_ctx": 8192})

    body = local_upstream.stats()["last_body"]
    assert body["keep_alive"] == "5m"
    assert body["num_ctx"] == 8192


def test_route_model_sent_upstream(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream)

    answer = gw.client().chat.completions.create(model="coder-large", messages=MESSAGES)

    assert local_upstream.stats()["last_body"]["model"] == "coder-large"
    assert answer.model == "coder-large"
