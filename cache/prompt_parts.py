"""Temporary placeholder: the whole text is the instruction, overflow folds into the fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["PromptParts", "split_prompt"]


@dataclass(frozen=True)
class PromptParts:
    instruction: str
    literal_fingerprint: str


def split_prompt(text: str, *, max_instruction_chars: int = 1000) -> PromptParts:
    return PromptParts(text[:max_instruction_chars], hashlib.sha256(text[max_instruction_chars:].encode("utf-8", "replace")).hexdigest())
