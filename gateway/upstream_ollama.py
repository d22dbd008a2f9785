"""Client for an upstream that speaks Ollama's native API (``api = "ollama"`` in its config).

``OllamaUpstream`` offers the interface of ``Upstream``: the pipeline sends it OpenAI bodies for
``/chat/completions`` and ``/completions`` and reads OpenAI responses, JSON or SSE lines. Underneath
it calls ``/api/chat`` and ``/api/generate`` and converts Ollama's NDJSON stream to SSE lines. The
native API is what lets the gateway pass ``keep_alive`` and model ``options`` such as ``num_ctx``,
which Ollama's OpenAI endpoint ignores.

A completion without ``suffix`` goes out with ``raw: true``, because an OpenAI completion continues
the prompt as is. With ``suffix``, Ollama applies the model's own FIM template.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway.breaker import CircuitBreaker
from gateway.config import UpstreamConfig
from gateway.errors import error_body
from gateway.ollama_wire import (
    finish_reason_of,
    messages_to_ollama,
    response_format_to_format,
    sampling_to_options,
)
from gateway.upstream import Upstream, UpstreamError

__all__ = ["OllamaUpstream", "native_base_url"]

logger = logging.getLogger(__name__)

CHAT_PATH = "/chat/completions"
COMPLETION_PATH = "/completions"
EMBEDDING_PATH = "/embeddings"


def native_base_url(base_url: str) -> str:
    """Return the server root: a trailing ``/v1`` or ``/api`` is removed, as both APIs share it."""
    root = base_url.rstrip("/")
    for suffix in ("/v1", "/api"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def _keep_alive_value(value: Any) -> Any:
    # Ollama reads a JSON number as seconds but parses a string as a Go duration, which needs a unit.
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return value


def _usage(data: dict[str, Any]) -> dict[str, int] | None:
    # Without both counts the pipeline estimates usage from the text instead.
    if not isinstance(data.get("prompt_eval_count"), int) or not isinstance(data.get("eval_count"), int):
        return None
    prompt, completion = data["prompt_eval_count"], data["eval_count"]
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    converted = []
    for call in calls:
        function = call.get("function") or {}
        converted.append({
            "id": "call_" + uuid.uuid4().hex[:24],
            "type": "function",
            "function": {"name": function.get("name", ""), "arguments": json.dumps(function.get("arguments") or {}, ensure_ascii=False)},
        })
    return converted


class OllamaUpstream(Upstream):
    """A pooled client and a circuit breaker for one Ollama server, called through its native API."""

    def __init__(self, config: UpstreamConfig, *, transport: str = "aiohttp", breaker: CircuitBreaker | None = None) -> None:
        super().__init__(dataclasses.replace(config, base_url=native_base_url(config.base_url)), transport=transport, breaker=breaker)
        self.config = config

    # -- requests ---------------------------------------------------------------------------

    def _common(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        native: dict[str, Any] = {
            "model": body["model"],
            "stream": stream,
            "keep_alive": _keep_alive_value(self.config.keep_alive),
            "options": sampling_to_options(body, self.config.options),
        }
        response_format = response_format_to_format(body.get("response_format"))
        if response_format is not None:
            native["format"] = response_format
        if isinstance(body.get("n"), int) and body["n"] > 1:
            logger.debug("upstream %s: Ollama returns one choice; n=%d is ignored", self.name, body["n"])
        return native

    def _chat_body(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        native = self._common(body, stream)
        native["messages"] = messages_to_ollama(body.get("messages") or [])
        if body.get("tools"):
            native["tools"] = body["tools"]
        return native

    def _generate_body(self, body: dict[str, Any], stream: bool) -> dict[str, Any]:
        prompt = body.get("prompt", "")
        if isinstance(prompt, list):
            if len(prompt) != 1:
                message = "Ollama's /api/generate takes one prompt; send the prompts as separate requests"
                raise UpstreamError(self.name, "status", message, status=400, body=error_body(message, "invalid_request_error", "prompt"))
            prompt = prompt[0]
        native = self._common(body, stream)
        native["prompt"] = prompt
        suffix = body.get("suffix")
        if suffix is not None:
            native["suffix"] = suffix
        native["raw"] = suffix is None
        return native

    def _native_request(self, path: str, body: dict[str, Any], stream: bool) -> tuple[str, dict[str, Any]]:
        if path == CHAT_PATH:
            return "/api/chat", self._chat_body(body, stream)
        if path == COMPLETION_PATH:
            return "/api/generate", self._generate_body(body, stream)
        if path == EMBEDDING_PATH and not stream:
            return "/api/embed", {"model": body["model"], "input": body.get("input", []), "keep_alive": _keep_alive_value(self.config.keep_alive)}
        message = f"{path} has no equivalent in Ollama's native API"
        raise UpstreamError(self.name, "status", message, status=404, body=error_body(message, "invalid_request_error", None, "not_found"))

    @staticmethod
    def _error_from_response(name: str, status: int, raw: bytes) -> UpstreamError:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            message = body["error"]
        else:
            message = raw[:200].decode("utf-8", "replace")
        kind = "invalid_request_error" if status < 500 else "upstream_error"
        return UpstreamError(name, "status", f"answered HTTP {status}: {message}", status=status, body=error_body(message, kind, None, "upstream_rejected"))

    # -- responses ----------------------------------------------------------------------------

    def _openai_answer(self, path: str, data: dict[str, Any]) -> dict[str, Any]:
        created = int(time.time())
        model = data.get("model", "")
        if path == EMBEDDING_PATH:
            vectors = data.get("embeddings") or []
            count = int(data.get("prompt_eval_count") or 0)
            return {
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
                "model": model,
                "usage": {"prompt_tokens": count, "total_tokens": count},
            }
        if path == CHAT_PATH:
            message = data.get("message") or {}
            calls = message.get("tool_calls") or []
            reply: dict[str, Any] = {"role": "assistant", "content": message.get("content") or (None if calls else "")}
            if calls:
                reply["tool_calls"] = _openai_tool_calls(calls)
            choice = {"index": 0, "message": reply, "finish_reason": finish_reason_of(data.get("done_reason"), bool(calls))}
            answer = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion", "created": created, "model": model, "choices": [choice]}
        else:
            choice = {"index": 0, "text": data.get("response") or "", "finish_reason": finish_reason_of(data.get("done_reason"), False), "logprobs": None}
            answer = {"id": "cmpl-" + uuid.uuid4().hex[:24], "object": "text_completion", "created": created, "model": model, "choices": [choice]}
        usage = _usage(data)
        if usage is not None:
            answer["usage"] = usage
        return answer

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Send an OpenAI body to the matching native endpoint and return the response in OpenAI shape.

        Raises:
            UpstreamError: connection failure, time-out, non-2xx status, a non-JSON response, or a
                path without a native equivalent.
        """
        native_path, native_body = self._native_request(path, body, stream=False)
        data = await super().post_json(native_path, native_body)
        if isinstance(data.get("error"), str):
            raise UpstreamError(self.name, "protocol", f"returned an error: {data['error']}")
        return self._openai_answer(path, data)

    @asynccontextmanager
    async def stream_lines(self, path: str, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[str]]:
        """Open a streaming native request and yield OpenAI SSE lines converted from its NDJSON.

        Raises:
            UpstreamError: on entering, as ``Upstream.stream_lines``; while iterating, for broken
                connections, lines that are not JSON and ``{"error": ...}`` lines.
        """
        native_path, native_body = self._native_request(path, body, stream=True)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        async with super().stream_lines(native_path, native_body) as lines:
            yield self._sse_lines(lines, path == CHAT_PATH, str(body.get("model", "")), include_usage)

    async def _sse_lines(self, lines: AsyncIterator[str], chat: bool, model: str, include_usage: bool) -> AsyncIterator[str]:
        prefix, object_name = ("chatcmpl-", "chat.completion.chunk") if chat else ("cmpl-", "text_completion")
        base = {"id": prefix + uuid.uuid4().hex[:24], "object": object_name, "created": int(time.time()), "model": model}
        tool_calls_sent = 0

        def event(choices: list[dict[str, Any]], **extra: Any) -> str:
            return "data: " + json.dumps({**base, "choices": choices, **extra}, ensure_ascii=False)

        if chat:
            yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        async for line in lines:
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise UpstreamError(self.name, "protocol", f"sent a stream line that is not JSON: {line[:200]!r}") from exc
            if "error" in data:
                raise UpstreamError(self.name, "protocol", f"stream failed: {data['error']}")
            base["model"] = data.get("model") or base["model"]

            if chat:
                message = data.get("message") or {}
                if message.get("content"):
                    yield event([{"index": 0, "delta": {"content": message["content"]}, "finish_reason": None}])
                for call in _openai_tool_calls(message.get("tool_calls") or []):
                    yield event([{"index": 0, "delta": {"tool_calls": [{"index": tool_calls_sent, **call}]}, "finish_reason": None}])
                    tool_calls_sent += 1
            elif data.get("response"):
                yield event([{"index": 0, "text": data["response"], "finish_reason": None, "logprobs": None}])

            if data.get("done"):
                finish = finish_reason_of(data.get("done_reason"), tool_calls_sent > 0)
                if chat:
                    yield event([{"index": 0, "delta": {}, "finish_reason": finish}])
                else:
                    yield event([{"index": 0, "text": "", "finish_reason": finish, "logprobs": None}])
                usage = _usage(data)
                if include_usage and usage is not None:
                    yield event([], usage=usage)
                yield "data: [DONE]"
                return

    async def probe(self) -> dict[str, Any]:
        """GET /api/version and report whether the server responds, without raising."""
        try:
            response = await self._client.get("/api/version", timeout=min(2.0, self.config.read_timeout_s))
        except httpx.HTTPError as exc:
            return {"status": "unreachable", "error": f"{type(exc).__name__}: {exc}", "circuit": self.breaker.state}
        report: dict[str, Any] = {"status": "ok" if response.status_code < 400 else "error", "http_status": response.status_code, "circuit": self.breaker.state}
        try:
            report["version"] = response.json().get("version")
        except ValueError:
            pass
        return report
