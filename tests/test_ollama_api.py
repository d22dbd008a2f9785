"""The Ollama API on the gateway and the native Ollama upstream, through real clients.

The ``ollama`` Python client and the OpenAI SDK talk to a gateway served over HTTP. Responses
come from scripted upstream processes: ``tests.support.scripted_upstream`` (OpenAI API) and
``tests.support.scripted_ollama`` (Ollama's native API).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import ollama
import pytest

from gateway.config import Config, ModelConfig, UpstreamConfig
from gateway.ollama_wire import parse_duration_s
from tests.support.harness import CLIENT_API_KEY, REPO_ROOT, Gateway, ScriptedUpstream, free_port, serve_gateway, sse_text, wait_for

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def expected_answer(upstream: str, prompt_text: str) -> str:
    """The answer of ``tests.support.scripted_upstream`` named ``upstream`` for a prompt."""
    digest = hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()[:12]
    return f"Answer from {upstream} for {digest}: the code looks fine, here are some words to stream 😀."


def expected_native_answer(upstream: str, prompt_text: str) -> str:
    """The answer of ``tests.support.scripted_ollama`` named ``upstream`` for a prompt."""
    digest = hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()[:12]
    return f"Native answer from {upstream} for {digest}: the code looks fine."


def ollama_client(gateway: Gateway) -> ollama.Client:
    return ollama.Client(host=gateway.base_url, headers={"Authorization": f"Bearer {CLIENT_API_KEY}"}, timeout=20)


def ndjson(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def ledger_lines(gateway: Gateway, endpoint: str, count: int) -> list[dict[str, Any]]:
    """Wait until the ledger contains ``count`` lines of ``endpoint`` and return them."""

    def lines() -> list[dict[str, Any]] | None:
        found = [line for line in gateway.ledger() if line["endpoint"] == endpoint]
        return found if len(found) >= count else None

    return wait_for(lines, 10, f"{count} ledger lines of {endpoint}")


class ScriptedOllama(ScriptedUpstream):
    """A ``tests.support.scripted_ollama`` process on a free port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.scripted_ollama", "--port", str(self.port), "--name", name],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(self._answers, 20, f"scripted Ollama server {name} on port {self.port}")
        except TimeoutError:
            self.stop()
            raise


@pytest.fixture
def served(gateway, local_upstream: ScriptedUpstream) -> Gateway:
    """A gateway whose models ``coder`` and ``coder-large`` go to the scripted OpenAI upstream."""
    return gateway(local_upstream)


@pytest.fixture(scope="module")
def native_server() -> Iterator[ScriptedOllama]:
    server = ScriptedOllama("native")
    yield server
    server.stop()


@pytest.fixture
def native_gateway(tmp_path, embedder, native_server: ScriptedOllama) -> Iterator[Gateway]:
    """A gateway whose model ``coder`` goes to the scripted Ollama server over its native API."""
    native_server.reset()
    config = Config(
        data_dir=str(tmp_path / "native-gateway"),
        ledger_stderr=False,
        upstreams={
            "local": UpstreamConfig(
                name="local", base_url=native_server.root_url + "/v1", api="ollama", keep_alive="15m",
                options={"num_ctx": 8192, "temperature": 0.5}, read_timeout_s=10.0,
            )
        },
        models=[ModelConfig(name="coder", upstream="local", upstream_model="qwen2.5-coder:1.5b")],
    )
    config.validate()
    served_gateway = serve_gateway(config, embedder=embedder)
    yield served_gateway
    served_gateway.stop()


# -- chat -------------------------------------------------------------------------------------


def test_chat_not_streamed(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    messages = [{"role": "system", "content": "You review code."}, {"role": "user", "content": "Is x = 1 fine?"}]
    answer = ollama_client(served).chat(model="coder", messages=messages, stream=False)

    assert answer.message.content == expected_answer("local", "You review code.\nIs x = 1 fine?")
    assert answer.message.role == "assistant"
    assert answer.model == "coder"
    assert answer.done is True
    assert answer.done_reason == "stop"
    assert answer.prompt_eval_count > 0
    assert answer.eval_count > 0
    assert answer.total_duration > 0
    assert answer.load_duration == 0
    sent = local_upstream.stats()["last_body"]
    assert sent["messages"] == messages
    assert sent["model"] == "coder"


def test_chat_streamed(served: Gateway) -> None:
    parts = list(ollama_client(served).chat(model="coder", messages=[{"role": "user", "content": "Stream a review."}], stream=True))

    assert len(parts) > 2
    assert all(part.done is False for part in parts[:-1])
    final = parts[-1]
    assert final.done is True
    assert final.done_reason == "stop"
    assert final.eval_count > 0
    assert final.prompt_eval_count > 0
    assert final.eval_duration > 0
    assert "".join(part.message.content or "" for part in parts) == expected_answer("local", "Stream a review.")


def test_chat_streams_by_default(served: Gateway) -> None:
    response = served.post("/api/chat", json={"model": "coder", "messages": [{"role": "user", "content": "Default streaming?"}]})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = ndjson(response.text)
    assert len(lines) > 2
    assert lines[-1]["done"] is True
    assert "total_duration" in lines[-1]
    assert "".join(line["message"]["content"] for line in lines) == expected_answer("local", "Default streaming?")


def test_chat_options_and_format(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    options = {"temperature": 0.2, "top_p": 0.9, "seed": 7, "stop": ["\n\n"], "num_predict": 50, "top_k": 40, "num_ctx": 4096}
    ollama_client(served).chat(
        model="coder", messages=[{"role": "user", "content": "List three colours as JSON."}], stream=False, options=options, format="json"
    )

    sent = local_upstream.stats()["last_body"]
    assert sent["temperature"] == 0.2
    assert sent["top_p"] == 0.9
    assert sent["seed"] == 7
    assert sent["stop"] == ["\n\n"]
    assert sent["max_tokens"] == 50
    assert sent["response_format"] == {"type": "json_object"}
    assert "top_k" not in sent
    assert "num_ctx" not in sent
    assert "options" not in sent


def test_chat_images_become_image_parts(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    ollama_client(served).chat(model="coder", messages=[{"role": "user", "content": "What is this?", "images": [png]}], stream=False)

    content = local_upstream.stats()["last_body"]["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"] == "data:image/png;base64," + png


def test_chat_tool_calls(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    client = ollama_client(served)
    question = {"role": "user", "content": "Weather in Paris?"}
    answer = client.chat(model="coder", messages=[question], tools=[WEATHER_TOOL], stream=False)

    assert answer.message.tool_calls is not None
    assert answer.message.tool_calls[0].function.name == "get_weather"
    assert answer.message.tool_calls[0].function.arguments == {"city": "Paris"}

    history = [
        question,
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "18 degrees", "tool_name": "get_weather"},
    ]
    client.chat(model="coder", messages=history, stream=False)
    sent = local_upstream.stats()["last_body"]["messages"]
    call = sent[1]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert sent[2]["tool_call_id"] == call["id"]


def test_chat_tool_calls_streamed(native_gateway: Gateway) -> None:
    # The scripted Ollama server streams tool calls; they cross the gateway as OpenAI deltas.
    client = ollama_client(native_gateway)
    messages = [{"role": "user", "content": "Weather in Lyon?"}]
    for attempt in ("miss", "hit"):
        parts = list(client.chat(model="coder", messages=messages, tools=[WEATHER_TOOL], stream=True))

        calls = [call for part in parts for call in (part.message.tool_calls or [])]
        assert len(calls) == 1, attempt
        assert calls[0].function.name == "get_weather", attempt
        assert calls[0].function.arguments == {"city": "Paris"}, attempt
        assert parts[-1].done is True, attempt
    assert [line["cache"] for line in ledger_lines(native_gateway, "ollama.chat", 2)] == ["miss", "exact"]


# -- generate ---------------------------------------------------------------------------------


def test_generate_with_suffix(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    answer = ollama_client(served).generate(
        model="coder", prompt="def add(a, b):\n    return ", suffix="\n\nprint(add(1, 2))", options={"temperature": 0, "num_predict": 32}, stream=False
    )

    assert answer.response == expected_answer("local", "def add(a, b):\n    return \n\nprint(add(1, 2))")
    assert answer.done is True
    sent = local_upstream.stats()["last_body"]
    assert sent["prompt"] == "def add(a, b):\n    return "
    assert sent["suffix"] == "\n\nprint(add(1, 2))"
    assert sent["max_tokens"] == 32
    assert sent["temperature"] == 0
    assert "messages" not in sent
    assert ledger_lines(served, "ollama.generate", 1)[0]["task"] == "autocomplete"


def test_generate_with_suffix_streamed(served: Gateway) -> None:
    parts = list(ollama_client(served).generate(model="coder", prompt="x = ", suffix="\ny = x", stream=True))

    assert parts[-1].done is True
    assert parts[-1].eval_count > 0
    assert "".join(part.response for part in parts) == expected_answer("local", "x = \ny = x")


def test_generate_plain_becomes_chat(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    answer = ollama_client(served).generate(model="coder", prompt="Why use type hints?", system="Answer briefly.", stream=False)

    assert answer.response == expected_answer("local", "Answer briefly.\nWhy use type hints?")
    sent = local_upstream.stats()["last_body"]
    assert sent["messages"] == [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Why use type hints?"}]


def test_generate_raw_is_completion(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    answer = ollama_client(served).generate(model="coder", prompt="<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>", raw=True, stream=False)

    assert answer.response == expected_answer("local", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>")
    sent = local_upstream.stats()["last_body"]
    assert sent["prompt"] == "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>"
    assert "suffix" not in sent


def test_generate_without_prompt_loads(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    answer = ollama_client(served).generate(model="coder", stream=False)

    assert answer.done is True
    assert answer.done_reason == "load"
    assert local_upstream.requests == 0
    assert [m.model for m in ollama_client(served).ps().models] == ["coder"]


def test_generate_images_ignored(served: Gateway, local_upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture) -> None:
    answer = ollama_client(served).generate(model="coder", prompt="Describe it.", images=["iVBORw0KGgo="], stream=False)

    assert answer.response == expected_answer("local", "Describe it.")
    assert "images" in caplog.text
    assert "image_url" not in json.dumps(local_upstream.stats()["last_body"])


# -- caching across protocols -----------------------------------------------------------------


def test_repeat_is_cache_hit(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    body = {"model": "coder", "messages": [{"role": "user", "content": "Cache me, please."}], "stream": False}
    first = served.post("/api/chat", json=body)
    second = served.post("/api/chat", json=body)

    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit-exact"
    assert second.json()["message"] == first.json()["message"]
    assert local_upstream.requests == 1


def test_ollama_then_openai_share_entry(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    messages = [{"role": "user", "content": "Explain list comprehensions."}]
    ollama_answer = ollama_client(served).chat(model="coder", messages=messages, stream=False, options={"temperature": 0})
    raw = served.client().chat.completions.with_raw_response.create(model="coder", messages=messages, temperature=0)

    assert raw.headers["x-cache"] == "hit-exact"
    assert raw.parse().choices[0].message.content == ollama_answer.message.content
    assert local_upstream.requests == 1


def test_openai_then_ollama_share_fim_entry(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    served.client().completions.create(model="coder", prompt="for i in ", suffix=":\n    pass", max_tokens=16, temperature=0)
    answer = ollama_client(served).generate(
        model="coder", prompt="for i in ", suffix=":\n    pass", options={"num_predict": 16, "temperature": 0}, stream=False
    )

    assert answer.response == expected_answer("local", "for i in :\n    pass")
    assert local_upstream.requests == 1
    assert ledger_lines(served, "ollama.generate", 1)[0]["cache"] == "exact"


def test_streamed_hit_through_either_protocol(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    messages = [{"role": "user", "content": "Refactor this loop into a map call."}]
    stream = served.client().chat.completions.create(model="coder", messages=messages, stream=True)
    openai_text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    parts = list(ollama_client(served).chat(model="coder", messages=messages, stream=True))
    response = served.post("/v1/chat/completions", json={"model": "coder", "messages": messages, "stream": True})

    assert "".join(part.message.content or "" for part in parts) == openai_text
    assert parts[-1].eval_count > 0
    assert response.headers["x-cache"] == "hit-exact"
    assert sse_text(response.text) == openai_text
    assert local_upstream.requests == 1
    assert ledger_lines(served, "ollama.chat", 1)[0]["cache"] == "exact"


# -- models -----------------------------------------------------------------------------------


def test_list_and_show_models(served: Gateway) -> None:
    client = ollama_client(served)
    names = [model.model for model in client.list().models]
    shown = client.show("coder")

    assert names == ["coder", "coder-large"]
    assert "completion" in shown.capabilities
    assert "tools" in shown.capabilities
    architecture = shown.modelinfo["general.architecture"]
    assert shown.modelinfo[f"{architecture}.context_length"] == served.config.upstreams["local"].context_window
    assert shown.parameters == f"num_ctx {served.config.upstreams['local'].context_window}"


def test_show_coder_model_can_insert(native_gateway: Gateway) -> None:
    shown = ollama_client(native_gateway).show("coder")

    assert "insert" in shown.capabilities
    assert ".Suffix" in shown.template
    assert "<|fim_prefix|>" in shown.template


def test_show_accepts_name_field(served: Gateway) -> None:
    response = served.post("/api/show", json={"name": "coder:latest"})

    assert response.status_code == 200
    assert response.json()["model_info"]["general.basename"] == "coder"


def test_version_and_root(served: Gateway) -> None:
    version = served.get("/api/version").json()["version"]
    root = served.get("/")

    assert tuple(int(part) for part in version.split(".")) >= (0, 6, 4)
    assert root.status_code == 200
    assert root.text == "Ollama is running"
    assert httpx.head(served.base_url + "/", timeout=10).status_code == 200


def test_ps_lists_used_models(served: Gateway) -> None:
    client = ollama_client(served)
    assert client.ps().models == []

    client.chat(model="coder-large", messages=[{"role": "user", "content": "Hello there."}], stream=False)
    loaded = client.ps().models
    assert [model.model for model in loaded] == ["coder-large"]
    assert loaded[0].expires_at is not None

    client.generate(model="coder-large", keep_alive=0, stream=False)
    assert client.ps().models == []


# -- embeddings -------------------------------------------------------------------------------


def test_embed(served: Gateway) -> None:
    client = ollama_client(served)
    answer = client.embed(model="all-minilm", input=["def add(a, b): return a + b", "a function that adds numbers"])

    assert len(answer.embeddings) == 2
    assert len(answer.embeddings[0]) == 384
    assert abs(np.linalg.norm(answer.embeddings[0]) - 1.0) < 1e-3
    assert answer.prompt_eval_count > 0
    line = ledger_lines(served, "ollama.embed", 1)[0]
    assert line["task"] == "embeddings"
    assert line["tokens_in"] == answer.prompt_eval_count


def test_embed_dimensions(served: Gateway) -> None:
    answer = ollama_client(served).embed(model="all-minilm", input="short text", dimensions=64)

    assert len(answer.embeddings[0]) == 64
    assert abs(np.linalg.norm(answer.embeddings[0]) - 1.0) < 1e-3


def test_embed_truncate_and_empty_input(served: Gateway) -> None:
    long_text = "word " * 2000
    rejected = served.post("/api/embed", json={"model": "all-minilm", "input": long_text, "truncate": False})
    truncated = served.post("/api/embed", json={"model": "all-minilm", "input": long_text})
    empty = served.post("/api/embed", json={"model": "all-minilm", "input": []})

    assert rejected.status_code == 400
    assert "context length" in rejected.json()["error"]
    assert truncated.status_code == 200
    assert len(truncated.json()["embeddings"]) == 1
    assert empty.status_code == 200
    assert empty.json()["embeddings"] == []


def test_embeddings_legacy(served: Gateway) -> None:
    client = ollama_client(served)
    single = client.embeddings(model="all-minilm", prompt="def add(a, b): return a + b")
    batch = client.embed(model="all-minilm", input="def add(a, b): return a + b")

    assert len(single.embedding) == 384
    assert np.allclose(single.embedding, batch.embeddings[0], atol=1e-5)


# -- errors -----------------------------------------------------------------------------------


def test_unknown_model_is_404(served: Gateway) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        ollama_client(served).chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}], stream=False)

    assert raised.value.status_code == 404
    assert "no-such-model" in raised.value.error
    assert "not configured" in raised.value.error


def test_request_errors_are_ollama_shaped(served: Gateway) -> None:
    cases = [
        ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model is required"),
        ({"model": "coder", "messages": "hi"}, 400, "messages must be an array"),
        ({"model": "coder", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}, 400, "stream must be"),
        ({"model": "coder", "messages": [{"role": "user", "content": "hi"}], "options": {"temperature": 5}}, 400, "temperature"),
    ]
    for body, status, message in cases:
        response = served.post("/api/chat", json=body)
        assert response.status_code == status, body
        assert message in response.json()["error"], body

    invalid = served.post("/api/generate", content=b"{not json", headers={"Content-Type": "application/json"})
    assert invalid.status_code == 400
    assert "not valid JSON" in invalid.json()["error"]


def test_upstream_failure_is_502(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    local_upstream.control(mode="error")
    for stream in (False, True):
        response = served.post("/api/chat", json={"model": "coder", "messages": [{"role": "user", "content": "fail"}], "stream": stream})
        assert response.status_code == 502
        assert "no upstream could answer" in response.json()["error"]


def test_stream_cut_ends_with_error_line(served: Gateway, local_upstream: ScriptedUpstream) -> None:
    local_upstream.control(mode="cut")
    response = served.post("/api/generate", json={"model": "coder", "prompt": "x = ", "suffix": "\n"})

    lines = ndjson(response.text)
    assert "error" in lines[-1]
    assert all(line.get("done") is not True for line in lines)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("10m", 600.0), ("1h30m", 5400.0), ("300ms", 0.3), ("45", 45.0), (90, 90.0), ("-1m", None), (-1, None), ("0", 0.0)],
)
def test_parse_keep_alive(value: object, seconds: float | None) -> None:
    result = parse_duration_s(value)

    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["ten minutes", "10x", "", True])
def test_parse_keep_alive_invalid(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(value)


# -- native Ollama upstream -------------------------------------------------------------------


def test_native_chat_sends_keep_alive_and_options(native_gateway: Gateway, native_server: ScriptedOllama) -> None:
    answer = native_gateway.client().chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "Native hello."}], temperature=0, max_tokens=64
    )

    assert answer.choices[0].message.content == expected_native_answer("native", "Native hello.")
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.prompt_tokens > 0
    stats = native_server.stats()
    assert stats["last_path"] == "/api/chat"
    sent = stats["last_body"]
    assert sent["model"] == "qwen2.5-coder:1.5b"
    assert sent["keep_alive"] == "15m"
    assert sent["options"] == {"num_ctx": 8192, "temperature": 0, "num_predict": 64}
    assert sent["stream"] is False


def test_native_chat_streamed(native_gateway: Gateway) -> None:
    stream = native_gateway.client().chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "Native stream."}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == expected_native_answer("native", "Native stream.")
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert finishes == ["stop"]


def test_native_completion_raw_and_suffix(native_gateway: Gateway, native_server: ScriptedOllama) -> None:
    client = native_gateway.client()
    client.completions.create(model="coder", prompt="import os\n", max_tokens=200)
    plain = native_server.stats()["last_body"]
    answer = client.completions.create(model="coder", prompt="def f(", suffix="):\n    pass", max_tokens=200)
    fim = native_server.stats()["last_body"]

    assert native_server.stats()["last_path"] == "/api/generate"
    assert plain["raw"] is True
    assert "suffix" not in plain
    assert fim["raw"] is False
    assert fim["suffix"] == "):\n    pass"
    assert answer.choices[0].text == expected_native_answer("native", "def f():\n    pass")


def test_native_tool_calls(native_gateway: Gateway) -> None:
    answer = native_gateway.client().chat.completions.create(
        model="coder", messages=[{"role": "user", "content": "Weather in Nice?"}], tools=[WEATHER_TOOL]
    )

    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}


def test_native_upstream_through_ollama_api(native_gateway: Gateway) -> None:
    parts = list(ollama_client(native_gateway).chat(model="coder", messages=[{"role": "user", "content": "Full circle."}], stream=True))

    assert "".join(part.message.content or "" for part in parts) == expected_native_answer("native", "Full circle.")
    assert parts[-1].done is True
    assert parts[-1].eval_count > 0


def test_native_errors(native_gateway: Gateway, native_server: ScriptedOllama) -> None:
    native_server.control(mode="missing")
    missing = native_gateway.post("/v1/chat/completions", json={"model": "coder", "messages": [{"role": "user", "content": "a"}]})
    native_server.control(mode="stream_error")
    broken = native_gateway.post("/v1/chat/completions", json={"model": "coder", "messages": [{"role": "user", "content": "b"}], "stream": True})
    native_server.control(mode="ok")
    ready = native_gateway.get("/readyz").json()

    assert missing.status_code == 404
    assert "not found" in missing.json()["error"]["message"]
    assert "scripted stream failure" in broken.text
    assert "[DONE]" not in broken.text
    assert ready["upstreams"]["local"]["status"] == "ok"
    assert ready["upstreams"]["local"]["version"] == "0.9.0"


def test_native_probe_unreachable(tmp_path, embedder) -> None:
    config = Config(
        data_dir=str(tmp_path / "unreachable"),
        ledger_stderr=False,
        upstreams={"local": UpstreamConfig(name="local", base_url=f"http://127.0.0.1:{free_port()}", api="ollama", connect_timeout_s=0.5)},
        models=[ModelConfig(name="coder", upstream="local")],
    )
    served_gateway = serve_gateway(config, embedder=embedder)
    try:
        report = httpx.get(served_gateway.base_url + "/readyz", timeout=10).json()
    finally:
        served_gateway.stop()

    assert report["upstreams"]["local"]["status"] == "unreachable"
