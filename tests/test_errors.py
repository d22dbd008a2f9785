"""Client errors in the OpenAI error shape, and unusual input that must never cause a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from tests.support.harness import Gateway, ScriptedUpstream, sse_payloads

ERROR_FIELDS = {"message", "type", "param", "code"}


def assert_error_shape(body: dict) -> dict:
    """Check the OpenAI error envelope and return its inner object."""
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == ERROR_FIELDS
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


@pytest.fixture
def gw(gateway, local_upstream: ScriptedUpstream) -> Gateway:
    return gateway(local_upstream, max_body_bytes=4096)


def test_invalid_json_400(gw: Gateway) -> None:
    response = gw.post("/v1/chat/completions", content=b'{"model": "coder", "messages": [', headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    error = assert_error_shape(response.json())
    assert error["type"] == "invalid_request_error"
    assert "not valid JSON" in error["message"]


def test_empty_body_400(gw: Gateway) -> None:
    response = gw.post("/v1/chat/completions", content=b"", headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert_error_shape(response.json())


def test_json_array_body_400(gw: Gateway) -> None:
    response = gw.post("/v1/chat/completions", json=[{"model": "coder"}])

    assert response.status_code == 400
    assert "JSON object" in assert_error_shape(response.json())["message"]


USER = [{"role": "user", "content": "Explain recursion."}]

WRONG_TYPES = {
    "messages_not_list": ({"model": "coder", "messages": "Explain recursion."}, "messages"),
    "messages_empty": ({"model": "coder", "messages": []}, "messages"),
    "temperature_string": ({"model": "coder", "messages": USER, "temperature": "hot"}, "temperature"),
    "temperature_range": ({"model": "coder", "messages": USER, "temperature": 3}, "temperature"),
    "model_missing": ({"messages": USER}, "model"),
    "model_number": ({"model": 7, "messages": USER}, "model"),
    "role_unknown": ({"model": "coder", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    "max_tokens_float": ({"model": "coder", "messages": USER, "max_tokens": 1.5}, "max_tokens"),
    "stream_string": ({"model": "coder", "messages": USER, "stream": "yes"}, "stream"),
    "cache_string": ({"model": "coder", "messages": USER, "cache": "off"}, "cache"),
    "cache_ttl_negative": ({"model": "coder", "messages": USER, "cache": {"ttl": -5}}, "cache.ttl"),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_wrong_type_names_param(gw: Gateway, local_upstream: ScriptedUpstream, case: str) -> None:
    body, param = WRONG_TYPES[case]

    response = gw.post("/v1/chat/completions", json=body)

    assert response.status_code == 400
    error = assert_error_shape(response.json())
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert local_upstream.requests == 0


def test_legacy_prompt_missing_400(gw: Gateway) -> None:
    response = gw.post("/v1/completions", json={"model": "coder"})

    assert response.status_code == 400
    assert assert_error_shape(response.json())["param"] == "prompt"


def test_body_over_limit_413(gw: Gateway, local_upstream: ScriptedUpstream) -> None:
    body = json.dumps({"model": "coder", "messages": [{"role": "user", "content": "x" * 8000}]}).encode()

    response = gw.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    error = assert_error_shape(response.json())
    assert error["code"] == "request_too_large"
    assert local_upstream.requests == 0


def test_chunked_body_over_limit_413(gw: Gateway) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "coder", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}]}'

    response = gw.post("/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})

    assert response.status_code == 413
    assert assert_error_shape(response.json())["code"] == "request_too_large"


def test_unknown_model_404(gw: Gateway, local_upstream: ScriptedUpstream) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().chat.completions.create(model="no-such-model", messages=USER)

    assert caught.value.status_code == 404
    assert caught.value.body["code"] == "model_not_found"
    assert caught.value.body["param"] == "model"
    assert local_upstream.requests == 0


def test_unknown_path_404(gw: Gateway) -> None:
    response = gw.post("/v1/no-such-endpoint", json={})

    assert response.status_code == 404
    assert assert_error_shape(response.json())["code"] == "not_found"


def test_list_content_accepted(gw: Gateway, local_upstream: ScriptedUpstream) -> None:
    content = [
        {"type": "text", "text": "Explain what this screenshot of a stack trace shows."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="}},
        {"type": "text", "text": "Focus on the first frame."},
    ]

    response = gw.client().chat.completions.with_raw_response.create(model="coder", messages=[{"role": "user", "content": content}])

    assert response.http_response.status_code == 200
    assert response.parse().choices[0].message.content.startswith("Answer from local")
    assert response.headers["x-task"] == "explain"
    assert local_upstream.stats()["last_body"]["messages"][0]["content"] == content


def test_list_content_image_changes_key(gw: Gateway, local_upstream: ScriptedUpstream) -> None:
    def content(url: str) -> list[dict]:
        return [{"type": "text", "text": "Explain this diagram."}, {"type": "image_url", "image_url": {"url": url}}]

    client = gw.client().chat.completions.with_raw_response
    client.create(model="coder", messages=[{"role": "user", "content": content("https://example.invalid/a.png")}])
    other = client.create(model="coder", messages=[{"role": "user", "content": content("https://example.invalid/b.png")}])

    assert other.headers["x-cache"] == "miss"
    assert local_upstream.requests == 2


SURROGATE_CONTENT = {
    "prose": b"Explain this string: bad \\ud800 half",
    "code": b"Explain this code:\\n```python\\ns = '\\ud800'\\n```",
}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("where", sorted(SURROGATE_CONTENT))
def test_lone_surrogate_no_500(gw: Gateway, where: str, stream: bool) -> None:
    stream_field = b',"stream":true' if stream else b""
    body = b'{"model":"coder"' + stream_field + b',"messages":[{"role":"user","content":"' + SURROGATE_CONTENT[where] + b'"}]}'

    first = gw.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    second = gw.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})

    assert first.status_code == 200 or 400 <= first.status_code < 500, first.text[:500]
    assert second.status_code == first.status_code
    if first.status_code == 200 and stream:
        assert sse_payloads(first.text)[-1] == "[DONE]"
        assert sse_payloads(second.text)[-1] == "[DONE]"


def test_lone_surrogate_legacy_no_500(gw: Gateway) -> None:
    body = b'{"model":"coder","prompt":"def f():\\n    return \\"\\udfff\\"\\n","max_tokens":200}'

    response = gw.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text[:500]


def test_invalid_utf8_400(gw: Gateway) -> None:
    body = b'{"model":"coder","messages":[{"role":"user","content":"caf\xe9"}]}'

    response = gw.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert_error_shape(response.json())


def test_emoji_prompt_served(gw: Gateway) -> None:
    messages = [{"role": "user", "content": "Explain why this test 🧪 fails: assert '🐍'.upper() == '🐍 '"}]

    first = gw.client().chat.completions.with_raw_response.create(model="coder", messages=messages)
    second = gw.client().chat.completions.with_raw_response.create(model="coder", messages=messages)

    assert first.http_response.status_code == 200
    assert "😀" in first.parse().choices[0].message.content
    assert second.headers["x-cache"] == "hit-exact"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
