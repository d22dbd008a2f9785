"""Finer intents inside the ``chat`` task, so the semantic cache never serves a bug fix for a
request to optimise, annotate or review the same code.

The routing tasks (docstring, refactor, tests, explain, ...) already separate most requests;
free-form chat about code still mixes requests that an embedding of the instruction alone scores
as close. Each intent below is a group of synonyms, so paraphrases within one intent still match.
"""

from __future__ import annotations

import re

__all__ = ["INTENTS", "intent_of"]

INTENTS: dict[str, re.Pattern[str]] = {
    "fix": re.compile(r"\b(fix\w*|bugs?|debug\w*|broken|crash\w*|errors?|exceptions?|fails?|failing|wrong|traceback)\b"),
    "optimize": re.compile(r"\b(optimi[sz]\w*|faster|speed\w*|performance|performant|efficien\w*|slow\w*)\b"),
    "types": re.compile(r"\b(type hints?|annotat\w*|typing|type-?check\w*|mypy|typescript types)\b"),
    "review": re.compile(r"\b(review\w*|critique|code smells?|feedback|improvements?|best practices?)\b"),
    "convert": re.compile(r"\b(convert\w*|translat\w*|port(?:ing)? (?:it |this )?to|rewrite (?:it |this )?in)\b"),
    "security": re.compile(r"\b(secur\w*|vulnerab\w*|injection|sanitiz\w*|exploit\w*)\b"),
}


def intent_of(instruction: str) -> str | None:
    """Return the intent whose words appear first in the instruction, or None for none."""
    text = instruction.lower()
    best: tuple[int, str] | None = None
    for name, pattern in INTENTS.items():
        match = pattern.search(text)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), name)
    return None if best is None else best[1]
