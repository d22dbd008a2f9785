"""Cache keys: the exact key of a request and the scope of its semantic lookups.

Both hash a canonical JSON (sorted keys, ASCII escapes, no spaces) of every field that shapes the
output. Omitted sampling fields take the OpenAI API defaults, so an omitted temperature equals an
explicit 1 and differs from 0.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["OUTPUT_FIELDS", "canonical_json", "exact_key", "output_fields", "scope_key"]

# Fields that shape the output, with the API default used when the client omits one.
OUTPUT_FIELDS: dict[str, Any] = {
    "model": None,
    "messages": None,
    "prompt": None,
    "suffix": None,
    "temperature": 1,
    "top_p": 1,
    "max_tokens": None,
    "max_completion_tokens": None,
    "stop": None,
    "n": 1,
    "seed": None,
    "tools": None,
    "tool_choice": None,
    "functions": None,
    "function_call": None,
    "response_format": None,
    "logprobs": None,
    "top_logprobs": None,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logit_bias": None,
    "echo": None,
    "best_of": None,
    "reasoning_effort": None,
    "parallel_tool_calls": None,
}


def canonical_json(value: Any) -> str:
    """Serialize ``value`` to one canonical string; lone surrogates survive as escapes."""
    return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _normalize_number(value: Any) -> Any:
    # 1 and 1.0 produce the same output, so they hash the same.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def output_fields(kind: str, body: dict[str, Any]) -> dict[str, Any]:
    """Return the output-shaping fields of a request, with defaults filled in."""
    fields: dict[str, Any] = {"kind": kind}
    for name, default in OUTPUT_FIELDS.items():
        value = body.get(name, default)
        if value is None:
            continue
        fields[name] = _normalize_number(value)
    if isinstance(fields.get("stop"), str):
        fields["stop"] = [fields["stop"]]
    return fields


def exact_key(kind: str, body: dict[str, Any], namespace: str) -> str:
    """Return the SHA-256 exact cache key of a request in a tenant namespace."""
    return _sha256(canonical_json({"namespace": namespace, "request": output_fields(kind, body)}))


def scope_key(fields: dict[str, Any]) -> str:
    """Return the SHA-256 of a semantic scope, the fields two requests must share to match."""
    return _sha256(canonical_json(fields))
