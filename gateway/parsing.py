"""Parse and validate OpenAI completion request bodies.

Validation covers what the gateway relies on (types of the fields that shape the output, the
message structure) and leaves the rest to the upstream, so that new OpenAI fields pass through.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from gateway.errors import InvalidRequest

__all__ = ["CHAT", "COMPLETION", "CompletionRequest", "parse_body", "parse_completion_request"]

CHAT = "chat"
COMPLETION = "completion"

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# Fields that only the gateway reads; they are removed before the request goes upstream.
GATEWAY_FIELDS = ("cache", "retrieval")


@dataclass
class CompletionRequest:
    """A validated ``/v1/chat/completions`` or ``/v1/completions`` request."""

    kind: str
    body: dict[str, Any]
    """The request as it goes upstream, gateway-only fields removed."""
    cache_options: dict[str, Any] = field(default_factory=dict)
    """The LiteLLM-style ``cache`` body field, if the client sent one."""
    retrieval_options: dict[str, Any] | None = None
    """The ``retrieval`` body field: ``{"repo": NAME, "k": N}`` adds that repository's code."""

    @property
    def model(self) -> str:
        return self.body["model"]

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream", False))

    @cached_property
    def prompt_text(self) -> str:
        """Return the text of every message (or the prompt and suffix), for token estimates.

        Computed once per request, after any repository code was added to the messages.
        """
        if self.kind == CHAT:
            from gateway.tasks import message_text

            return "\n".join(message_text(m.get("content")) for m in self.body["messages"])
        prompt = self.body["prompt"]
        text = prompt if isinstance(prompt, str) else "\n".join(prompt)
        return text + (self.body.get("suffix") or "")

    @property
    def max_tokens(self) -> int | None:
        value = self.body.get("max_completion_tokens", self.body.get("max_tokens"))
        return value if isinstance(value, int) else None


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body.

    Raises:
        InvalidRequest: the body is empty, not UTF-8, not JSON, or not a JSON object.
    """
    if not raw.strip():
        raise InvalidRequest("request body is empty: send a JSON object")
    try:
        value = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"request body is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise InvalidRequest("request body is nested too deeply") from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"request body must be a JSON object, not {type(value).__name__}")
    return value


def _type_name(value: Any) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _check_number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"'{name}' must be a number, not {_type_name(value)}", param=name)
    if not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be between {low} and {high}, not {value}", param=name)


def _check_int(body: dict[str, Any], name: str, low: int, high: int | None = None) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{name}' must be an integer, not {_type_name(value)}", param=name)
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise InvalidRequest(f"'{name}' must be {bound}, not {value}", param=name)


def _check_type(body: dict[str, Any], name: str, types: tuple[type, ...], label: str) -> None:
    value = body.get(name)
    if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
        raise InvalidRequest(f"'{name}' must be {label}, not {_type_name(value)}", param=name)


def _check_stop(body: dict[str, Any]) -> None:
    stop = body.get("stop")
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
        raise InvalidRequest("'stop' must be a string or an array of strings", param="stop")


def _check_content(content: Any, where: str) -> None:
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InvalidRequest(f"'{where}.content' must be a string or an array of content parts, not {_type_name(content)}", param=f"{where}.content")
    for index, part in enumerate(content):
        part_where = f"{where}.content[{index}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise InvalidRequest(f"'{part_where}' must be an object with a string 'type'", param=part_where)
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise InvalidRequest(f"'{part_where}.text' must be a string", param=f"{part_where}.text")


def _check_messages(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("'messages' is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array of message objects", param="messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"'{where}' must be an object, not {_type_name(message)}", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequest(
                f"'{where}.role' must be one of {', '.join(sorted(ROLES))}, not {role!r}", param=f"{where}.role"
            )
        if "content" not in message and not message.get("tool_calls") and not message.get("function_call"):
            raise InvalidRequest(f"'{where}.content' is required", param=f"{where}.content")
        _check_content(message.get("content"), where)


def _check_prompt(body: dict[str, Any]) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise InvalidRequest("'prompt' is required", param="prompt")
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt and all(isinstance(item, str) for item in prompt):
        return
    raise InvalidRequest("'prompt' must be a string or a non-empty array of strings", param="prompt")


def parse_completion_request(body: dict[str, Any], kind: str) -> CompletionRequest:
    """Validate a decoded body as a chat (``CHAT``) or legacy (``COMPLETION``) request.

    Raises:
        InvalidRequest: a required field is missing or a field has the wrong type or range.
    """
    model = body.get("model")
    if model is None:
        raise InvalidRequest("'model' is required", param="model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("'model' must be a non-empty string", param="model")

    if kind == CHAT:
        _check_messages(body)
    else:
        _check_prompt(body)
        _check_type(body, "suffix", (str,), "a string")

    _check_number(body, "temperature", 0, 2)
    _check_number(body, "top_p", 0, 1)
    _check_number(body, "presence_penalty", -2, 2)
    _check_number(body, "frequency_penalty", -2, 2)
    _check_int(body, "max_tokens", 1)
    _check_int(body, "max_completion_tokens", 1)
    _check_int(body, "n", 1, 128)
    _check_int(body, "seed", -(2**63), 2**63 - 1)
    _check_type(body, "stream", (bool,), "a boolean")
    _check_stop(body)
    _check_type(body, "tools", (list,), "an array")
    _check_type(body, "tool_choice", (str, dict), "a string or an object")
    _check_type(body, "response_format", (dict,), "an object")
    _check_type(body, "stream_options", (dict,), "an object")
    if kind == CHAT:
        _check_type(body, "logprobs", (bool,), "a boolean")
    else:
        _check_int(body, "logprobs", 0, 20)

    cache_options = body.get("cache")
    if cache_options is not None and not isinstance(cache_options, dict):
        raise InvalidRequest("'cache' must be an object such as {\"no-cache\": true}", param="cache")
    retrieval = body.get("retrieval")
    if retrieval is not None and (not isinstance(retrieval, dict) or not isinstance(retrieval.get("repo"), str)):
        raise InvalidRequest("'retrieval' must be an object such as {\"repo\": \"my-repo\", \"k\": 4}", param="retrieval")
    upstream_body = {key: value for key, value in body.items() if key not in GATEWAY_FIELDS}
    return CompletionRequest(kind=kind, body=upstream_body, cache_options=cache_options or {}, retrieval_options=retrieval)
