"""Classify a completion request into the coding task it serves.

Tasks: ``autocomplete``, ``docstring``, ``refactor``, ``tests``, ``explain``, ``embeddings``,
``agent`` and ``chat``. The class picks the route and is part of the semantic cache scope, so a
request for tests never reuses a cached docstring for the same code.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.parsing import COMPLETION, CompletionRequest

__all__ = ["AUTOCOMPLETE_MAX_TOKENS", "classify", "message_text"]

AUTOCOMPLETE_MAX_TOKENS = 64
"""A legacy completion asking for at most this many tokens is treated as autocomplete."""

# Fill-in-the-middle markers of the common code model families.
FIM_MARKERS = ("<|fim_prefix|>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "[PREFIX]", "<|fim_middle|>")

_FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE = re.compile(r"`[^`\n]*`")

# Keyword patterns on the natural-language part of the last user message. When several match,
# the one that appears first in the text wins ("explain, then write tests" is explain).
_PATTERNS: dict[str, re.Pattern[str]] = {
    "tests": re.compile(
        r"\b(unit[- ]?tests?|tests? (?:cases?|suite)|pytest|unittest|jest|mocha|junit|"
        r"(?:write|generate|add|create)\s+(?:\w+\s+){0,3}tests?|test coverage|tests? for)\b"
    ),
    "docstring": re.compile(
        r"\b(docstrings?|doc[- ]?comments?|jsdoc|javadoc|godoc|rustdoc|"
        r"document (?:this|the|it)|add (?:\w+\s+)?(?:documentation|comments)|comment (?:this|the)|"
        r"documentation (?:for|to))\b"
    ),
    "refactor": re.compile(
        r"\b(refactor\w*|rename|simplify|clean (?:it |this |the code )?up|restructure|extract (?:a |the )?"
        r"(?:method|function|class|variable)|rewrite|make (?:it|this) (?:more )?(?:readable|idiomatic|pythonic)|"
        r"improve (?:the )?(?:readability|structure))\b"
    ),
    "explain": re.compile(
        r"\b(explain\w*|what does|what do|how does|how do(?:es)? (?:this|the following)|walk me through|"
        r"describe what|tell me what|what is (?:this|the following)|meaning of)\b"
    ),
}


def message_text(content: Any) -> str:
    """Return the text of a message's content, joining the text parts of list-form content."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _natural_language(text: str) -> str:
    return _INLINE.sub(" ", _FENCED.sub(" ", text)).lower()


def _classify_text(text: str) -> str:
    prose = _natural_language(text)[:4000]
    best_task, best_position = "chat", len(prose) + 1
    for task, pattern in _PATTERNS.items():
        match = pattern.search(prose)
        if match and match.start() < best_position:
            best_task, best_position = task, match.start()
    return best_task


def classify(request: CompletionRequest) -> str:
    """Return the task of a completion request."""
    body = request.body
    if body.get("tools") or body.get("functions"):
        return "agent"

    if request.kind == COMPLETION:
        prompt = body.get("prompt")
        text = prompt if isinstance(prompt, str) else "\n".join(prompt or [])
        max_tokens = request.max_tokens
        if body.get("suffix") is not None or any(marker in text for marker in FIM_MARKERS):
            return "autocomplete"
        if max_tokens is not None and max_tokens <= AUTOCOMPLETE_MAX_TOKENS:
            return "autocomplete"
        return _classify_text(text)

    messages = body["messages"]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if last_user is None:
        return "chat"
    text = message_text(last_user.get("content"))
    if any(marker in text for marker in FIM_MARKERS):
        return "autocomplete"
    return _classify_text(text)
