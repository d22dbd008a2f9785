"""The cached form of a completed response, shared by every cache backend."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CachedResponse"]


@dataclass
class CachedResponse:
    """A completed chat or legacy completion, as stored in the exact and semantic caches."""

    kind: str
    """``chat`` or ``completion``."""
    model: str
    """The model name in the upstream's response."""
    choices: list[dict[str, Any]]
    """Chat: ``{"index", "message", "finish_reason"}``; completion: ``{"index", "text", "finish_reason"}``."""
    usage: dict[str, int]
    """The original response's token usage; a hit saves ``total_tokens``."""
    usage_estimated: bool = False
    """True when the upstream sent no usage and the gateway estimated it."""
    namespace: str = "default"
    entry_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))
    system_fingerprint: str | None = None

    @property
    def total_tokens(self) -> int:
        return int(self.usage.get("total_tokens") or self.usage.get("prompt_tokens", 0) + self.usage.get("completion_tokens", 0))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes) -> CachedResponse:
        return cls(**json.loads(data))
