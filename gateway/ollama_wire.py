"""Conversions between Ollama's native API shapes and the OpenAI shapes the gateway works in.

gateway/ollama_api.py turns Ollama requests from IDEs into OpenAI bodies, and OpenAI responses
back into Ollama ones. gateway/upstream_ollama.py does the reverse for an upstream that speaks
Ollama's API. Field names follow the request and response types of the ``ollama`` Python client
0.6.3 and Ollama's usage documentation (docs.ollama.com/api/usage) for the final statistics.

Differences that the two APIs force:

- Ollama tool calls carry ``arguments`` as a JSON object and no id; OpenAI carries a JSON string
  and an id that tool results refer to. Ids made here are deterministic (``call_<message>_<call>``)
  so that the same conversation always gets the same cache key.
- Ollama options without an OpenAI field (``top_k``, ``num_ctx``, ``repeat_penalty`` and others)
  are dropped on the way to OpenAI, because a strict OpenAI upstream rejects unknown fields.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from gateway.errors import InvalidRequest

__all__ = [
    "done_reason_of",
    "finish_reason_of",
    "format_to_response_format",
    "image_data_url",
    "images_of_content",
    "messages_to_ollama",
    "messages_to_openai",
    "options_to_openai",
    "parse_duration_s",
    "rfc3339",
    "response_format_to_format",
    "sampling_to_options",
    "timing_stats",
    "tool_calls_to_ollama",
    "tool_calls_to_openai",
]

# Ollama option -> OpenAI body field, for the options that mean the same on both sides.
_SAME_OPTIONS = ("temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty")

# OpenAI body fields that vLLM and llama.cpp also accept and Ollama has as options.
_EXTRA_SAMPLING = ("top_k", "min_p", "repeat_penalty", "typical_p")

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def rfc3339(timestamp: float | None = None) -> str:
    """Return a UTC RFC 3339 time with microseconds, as Ollama writes ``created_at``."""
    moment = datetime.fromtimestamp(time.time() if timestamp is None else timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_duration_s(value: Any) -> float | None:
    """Return a keep-alive in seconds: a number is seconds, a string a Go duration such as ``1h30m``.

    Returns None for a negative duration, which Ollama reads as "keep loaded forever".

    Raises:
        ValueError: the value is neither a number nor a duration string.
    """
    if isinstance(value, bool):
        raise ValueError(f"keep_alive must be a duration such as '10m' or a number of seconds, not {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        if re.fullmatch(r"\d+(?:\.\d+)?", body):
            seconds = float(body)
        else:
            parts = _DURATION_PART.findall(body)
            if not parts or "".join(number + unit for number, unit in parts) != body:
                raise ValueError(f"keep_alive {value!r} is not a duration such as '10m', '1h30m' or '300s'")
            seconds = sum(float(number) * _DURATION_UNITS_S[unit] for number, unit in parts)
        seconds *= sign
    else:
        raise ValueError(f"keep_alive must be a duration such as '10m' or a number of seconds, not {value!r}")
    return None if seconds < 0 else seconds


# -- requests: Ollama -> OpenAI ---------------------------------------------------------------


def options_to_openai(options: Any, body: dict[str, Any]) -> list[str]:
    """Copy the Ollama ``options`` that have an OpenAI field into ``body``.

    ``num_predict`` becomes ``max_tokens``; a value of 0 or less (Ollama's "no limit") is left out.
    Returns the names of the options that were dropped.

    Raises:
        InvalidRequest: ``options`` is not an object.
    """
    if options is None:
        return []
    if not isinstance(options, Mapping):
        raise InvalidRequest("options must be an object such as {\"temperature\": 0}", param="options")
    dropped = []
    for name, value in options.items():
        if value is None:
            continue
        if name in _SAME_OPTIONS:
            body[name] = value
        elif name == "num_predict":
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                body["max_tokens"] = value
            elif not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRequest(f"options.num_predict must be an integer, not {value!r}", param="options.num_predict")
        else:
            dropped.append(name)
    return dropped


def format_to_response_format(value: Any) -> dict[str, Any] | None:
    """Return the OpenAI ``response_format`` of Ollama's ``format``: ``json`` or a JSON schema.

    Raises:
        InvalidRequest: ``format`` is neither empty, ``json`` nor a JSON schema object.
    """
    if value is None or value == "":
        return None
    if value == "json":
        return {"type": "json_object"}
    if isinstance(value, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": value}}
    raise InvalidRequest(f"format must be \"json\" or a JSON schema object, not {value!r}", param="format")


def image_data_url(image: str) -> str:
    """Return a ``data:`` URL for a base64 image, with the media type read from its first bytes.

    Raises:
        InvalidRequest: the image is not valid base64.
    """
    try:
        head = base64.b64decode(image[:64] + "=" * (-len(image[:64]) % 4), validate=False)
        base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("images must be base64-encoded image data", param="images") from exc
    media_type = "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        media_type = "image/jpeg"
    elif head.startswith((b"GIF87a", b"GIF89a")):
        media_type = "image/gif"
    elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        media_type = "image/webp"
    return f"data:{media_type};base64,{image}"


def tool_calls_to_openai(calls: Any, message_index: int) -> list[dict[str, Any]]:
    """Convert an Ollama message's ``tool_calls`` to OpenAI's, with ids ``call_<message>_<call>``.

    Raises:
        InvalidRequest: a call is not an object with a ``function`` that has a ``name``.
    """
    if not isinstance(calls, list):
        raise InvalidRequest(f"messages[{message_index}].tool_calls must be an array", param=f"messages[{message_index}].tool_calls")
    converted = []
    for call_index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            where = f"messages[{message_index}].tool_calls[{call_index}]"
            raise InvalidRequest(f"{where} must be an object with function.name", param=where)
        arguments = function.get("arguments", {})
        converted.append({
            "id": f"call_{message_index}_{call_index}",
            "type": "function",
            "function": {
                "name": function["name"],
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False),
            },
        })
    return converted


def _tool_call_id(pending: list[dict[str, Any]], tool_name: Any) -> str | None:
    """Pop the id of the earliest unanswered call, preferring one to the function ``tool_name``."""
    for position, call in enumerate(pending):
        if tool_name and call["function"]["name"] == tool_name:
            return pending.pop(position)["id"]
    return pending.pop(0)["id"] if pending else None


def messages_to_openai(messages: Any) -> list[dict[str, Any]]:
    """Convert Ollama chat messages to OpenAI ones: images become ``image_url`` parts, tool calls
    get ids, and each tool result refers to the call it belongs to.

    Raises:
        InvalidRequest: the messages are not an array of objects with a string ``role``.
    """
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be an array of message objects", param="messages")
    converted: list[dict[str, Any]] = []
    pending_calls: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(f"{where} must be an object with a string role", param=where)
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise InvalidRequest(f"{where}.content must be a string", param=f"{where}.content")
        item: dict[str, Any] = {"role": message["role"], "content": content or ""}
        images = message.get("images")
        if images:
            if not isinstance(images, list) or not all(isinstance(image, str) for image in images):
                raise InvalidRequest(f"{where}.images must be an array of base64 strings", param=f"{where}.images")
            parts: list[dict[str, Any]] = [{"type": "text", "text": content or ""}]
            parts.extend({"type": "image_url", "image_url": {"url": image_data_url(image)}} for image in images)
            item["content"] = parts
        if message.get("tool_calls"):
            calls = tool_calls_to_openai(message["tool_calls"], index)
            item["tool_calls"] = calls
            pending_calls = list(calls)
        if message["role"] == "tool":
            call_id = _tool_call_id(pending_calls, message.get("tool_name") or message.get("name"))
            item["tool_call_id"] = call_id or f"call_{index}"
        converted.append(item)
    return converted


# -- requests: OpenAI -> Ollama ---------------------------------------------------------------


def sampling_to_options(body: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Return Ollama ``options``: ``defaults`` overridden by the request's sampling fields."""
    options = dict(defaults)
    for name in _SAME_OPTIONS + _EXTRA_SAMPLING:
        if body.get(name) is not None:
            value = body[name]
            options[name] = [value] if name == "stop" and isinstance(value, str) else value
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(max_tokens, int):
        options["num_predict"] = max_tokens
    return options


def response_format_to_format(response_format: Any) -> str | dict[str, Any] | None:
    """Return Ollama's ``format`` for an OpenAI ``response_format``; None for plain text."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else "json"
    return None


def images_of_content(content: Any) -> tuple[str, list[str]]:
    """Split OpenAI content into its text and the base64 data of its ``data:`` image URLs.

    Images given by http(s) URL are skipped, because Ollama takes image bytes only.
    """
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        return "", []
    texts, images = [], []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if url.startswith("data:") and "," in url:
                images.append(url.split(",", 1)[1])
    return "\n".join(texts), images


def _arguments_object(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def tool_calls_to_ollama(calls: Any) -> list[dict[str, Any]]:
    """Convert OpenAI tool calls to Ollama's; arguments that are not a JSON object become ``{}``."""
    converted = []
    for call in calls or []:
        function = (call or {}).get("function") or {}
        converted.append({"function": {"name": function.get("name", ""), "arguments": _arguments_object(function.get("arguments"))}})
    return converted


def messages_to_ollama(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Convert OpenAI chat messages to Ollama ones.

    ``developer`` becomes ``system``, and a tool result carries the function name of its call as
    ``tool_name``.
    """
    names_by_id: dict[str, str] = {}
    converted = []
    for message in messages:
        role = message.get("role", "user")
        role = {"developer": "system", "function": "tool"}.get(role, role)
        text, images = images_of_content(message.get("content"))
        item: dict[str, Any] = {"role": role, "content": text}
        if images:
            item["images"] = images
        if message.get("tool_calls"):
            item["tool_calls"] = tool_calls_to_ollama(message["tool_calls"])
            for call in message["tool_calls"]:
                if isinstance(call, dict) and call.get("id"):
                    names_by_id[call["id"]] = (call.get("function") or {}).get("name", "")
        if role == "tool":
            name = names_by_id.get(str(message.get("tool_call_id", ""))) or message.get("name")
            if name:
                item["tool_name"] = name
        converted.append(item)
    return converted


# -- responses ----------------------------------------------------------------------------------


def done_reason_of(finish_reason: Any) -> str:
    """Return Ollama's ``done_reason`` for an OpenAI ``finish_reason``; tool calls end with ``stop``."""
    return "length" if finish_reason == "length" else "stop"


def finish_reason_of(done_reason: Any, has_tool_calls: bool) -> str:
    """Return the OpenAI ``finish_reason`` for Ollama's ``done_reason``."""
    if has_tool_calls:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


def timing_stats(usage: Mapping[str, Any] | None, started_ns: int, first_token_ns: int | None, ended_ns: int) -> dict[str, int]:
    """Return the final-chunk statistics, durations in nanoseconds.

    ``load_duration`` is 0 because the gateway loads no model. Without a first-token time, as for
    responses that were not streamed, the whole time counts as ``eval_duration``.
    """
    usage = usage or {}
    first = first_token_ns if first_token_ns is not None else started_ns
    return {
        "total_duration": max(1, ended_ns - started_ns),
        "load_duration": 0,
        "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
        "prompt_eval_duration": max(0, first - started_ns),
        "eval_count": int(usage.get("completion_tokens") or 0),
        "eval_duration": max(1, ended_ns - first),
    }
