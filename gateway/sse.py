"""Server-sent events in the OpenAI streaming format: parse, accumulate, format and replay."""

from __future__ import annotations

import json
import time
from typing import Any

from cache.entry import CachedResponse

__all__ = ["DONE", "StreamAccumulator", "encode_event", "parse_data_line", "replay_events"]

DONE = b"data: [DONE]\n\n"
REPLAY_PIECE_CHARS = 24
"""Cache hits are replayed in pieces of about this many characters, cut at spaces."""


def encode_event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n\n"


def parse_data_line(line: str) -> str | None:
    """Return the payload of a ``data:`` line, or None for comments, blank and other fields."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip()


class StreamAccumulator:
    """Rebuilds the full response from streamed chunks, so a finished stream can be cached."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, int] | None = None
        self.model = ""
        self.response_id = ""
        self.system_fingerprint: str | None = None
        self.done = False
        self.error: Any = None

    def feed(self, chunk: dict[str, Any]) -> None:
        if "error" in chunk:
            self.error = chunk["error"]
            return
        self.model = chunk.get("model") or self.model
        self.response_id = chunk.get("id") or self.response_id
        self.system_fingerprint = chunk.get("system_fingerprint") or self.system_fingerprint
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            if self.kind == "chat":
                self._feed_chat(index, choice)
            else:
                state = self.choices.setdefault(index, {"index": index, "text": "", "finish_reason": None})
                state["text"] += choice.get("text") or ""
                state["finish_reason"] = choice.get("finish_reason") or state["finish_reason"]

    def _feed_chat(self, index: int, choice: dict[str, Any]) -> None:
        state = self.choices.setdefault(
            index, {"index": index, "message": {"role": "assistant", "content": None}, "finish_reason": None}
        )
        message = state["message"]
        delta = choice.get("delta") or {}
        if delta.get("role"):
            message["role"] = delta["role"]
        if delta.get("content"):
            message["content"] = (message["content"] or "") + delta["content"]
        for call in delta.get("tool_calls") or []:
            calls = message.setdefault("tool_calls", [])
            position = call.get("index", len(calls))
            while len(calls) <= position:
                calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
            target = calls[position]
            if call.get("id"):
                target["id"] = call["id"]
            if call.get("type"):
                target["type"] = call["type"]
            function = call.get("function") or {}
            if function.get("name"):
                target["function"]["name"] += function["name"]
            if function.get("arguments"):
                target["function"]["arguments"] += function["arguments"]
        state["finish_reason"] = choice.get("finish_reason") or state["finish_reason"]

    @property
    def complete(self) -> bool:
        """True once ``[DONE]`` arrived after every choice finished, with no error."""
        return self.done and self.error is None and bool(self.choices) and all(
            c["finish_reason"] for c in self.choices.values()
        )

    def text(self) -> str:
        if self.kind == "chat":
            return "".join((c["message"].get("content") or "") for c in self.choices.values())
        return "".join(c["text"] for c in self.choices.values())

    def to_entry(self, usage: dict[str, int], *, estimated: bool, namespace: str) -> CachedResponse:
        return CachedResponse(
            kind=self.kind,
            model=self.model,
            choices=[self.choices[i] for i in sorted(self.choices)],
            usage=usage,
            usage_estimated=estimated,
            namespace=namespace,
            system_fingerprint=self.system_fingerprint,
        )


def _pieces(text: str) -> list[str]:
    pieces, start = [], 0
    while start < len(text):
        end = start + REPLAY_PIECE_CHARS
        if end < len(text):
            space = text.find(" ", end)
            end = len(text) if space == -1 else space + 1
        pieces.append(text[start:end])
        start = end
    return pieces or [""]


def replay_events(entry: CachedResponse, *, response_id: str, model: str, include_usage: bool) -> list[bytes]:
    """Return the SSE events that replay a cached response, ``[DONE]`` included."""
    created = int(time.time())
    object_name = "chat.completion.chunk" if entry.kind == "chat" else "text_completion"
    base = {"id": response_id, "object": object_name, "created": created, "model": model}
    if entry.system_fingerprint:
        base["system_fingerprint"] = entry.system_fingerprint
    events: list[bytes] = []

    for choice in entry.choices:
        index = choice["index"]
        if entry.kind == "chat":
            message = choice["message"]
            events.append(encode_event({**base, "choices": [{"index": index, "delta": {"role": message.get("role", "assistant"), "content": ""}, "finish_reason": None}]}))
            if message.get("content"):
                for piece in _pieces(message["content"]):
                    events.append(encode_event({**base, "choices": [{"index": index, "delta": {"content": piece}, "finish_reason": None}]}))
            if message.get("tool_calls"):
                calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
                events.append(encode_event({**base, "choices": [{"index": index, "delta": {"tool_calls": calls}, "finish_reason": None}]}))
            events.append(encode_event({**base, "choices": [{"index": index, "delta": {}, "finish_reason": choice["finish_reason"]}]}))
        else:
            pieces = _pieces(choice.get("text", ""))
            for number, piece in enumerate(pieces):
                finish = choice["finish_reason"] if number == len(pieces) - 1 else None
                events.append(encode_event({**base, "choices": [{"index": index, "text": piece, "logprobs": None, "finish_reason": finish}]}))

    if include_usage:
        events.append(encode_event({**base, "choices": [], "usage": entry.usage}))
    events.append(DONE)
    return events
