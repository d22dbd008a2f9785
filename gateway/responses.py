"""Build cache entries from upstream responses, and client responses from cache entries."""

from __future__ import annotations

import time
from typing import Any

from cache.entry import CachedResponse
from gateway.routing import estimate_tokens

__all__ = ["entry_from_response", "response_from_entry", "usage_of"]


def usage_of(
    data: dict[str, Any] | None, prompt_text: str, completion_text: str, *, max_tokens: int | None = None, choices: int = 1
) -> tuple[dict[str, int], bool]:
    """Return the usage an upstream reported, or an estimate from the text when it sent none.

    The estimate of completion tokens never exceeds what the request allowed (``max_tokens``
    per choice), since the 4-characters-per-token rule overcounts short code tokens.
    """
    usage = (data or {}).get("usage") if isinstance(data, dict) else None
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        prompt = usage["prompt_tokens"]
        completion = int(usage.get("completion_tokens") or 0)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": int(usage.get("total_tokens") or prompt + completion)}, False
    prompt = estimate_tokens(prompt_text)
    completion = estimate_tokens(completion_text) if completion_text else 0
    if max_tokens is not None:
        completion = min(completion, max_tokens * max(1, choices))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}, True


def completion_text(kind: str, data: dict[str, Any]) -> str:
    parts = []
    for choice in data.get("choices") or []:
        if kind == "chat":
            message = choice.get("message") or {}
            parts.append(message.get("content") or "")
            for call in message.get("tool_calls") or []:
                parts.append((call.get("function") or {}).get("arguments", ""))
        else:
            parts.append(choice.get("text") or "")
    return "".join(parts)


def entry_from_response(kind: str, data: dict[str, Any], usage: dict[str, int], *, estimated: bool, namespace: str) -> CachedResponse | None:
    """Return the cache entry of a complete upstream response, or None when it is not cacheable."""
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        return None
    kept = []
    for index, choice in enumerate(choices):
        if not isinstance(choice, dict) or not choice.get("finish_reason"):
            return None
        if kind == "chat":
            message = choice.get("message")
            if not isinstance(message, dict):
                return None
            kept.append({"index": choice.get("index", index), "message": message, "finish_reason": choice["finish_reason"]})
        else:
            kept.append({"index": choice.get("index", index), "text": choice.get("text") or "", "finish_reason": choice["finish_reason"]})
    return CachedResponse(
        kind=kind,
        model=str(data.get("model") or ""),
        choices=kept,
        usage=usage,
        usage_estimated=estimated,
        namespace=namespace,
        system_fingerprint=data.get("system_fingerprint"),
    )


def response_from_entry(entry: CachedResponse, *, response_id: str, model: str) -> dict[str, Any]:
    """Return the OpenAI response body of a cached entry."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion" if entry.kind == "chat" else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {**choice, "logprobs": None} for choice in entry.choices
        ],
        "usage": entry.usage,
    }
    if entry.system_fingerprint:
        body["system_fingerprint"] = entry.system_fingerprint
    return body
