"""The semantic cache: nearest cached instruction within the same scope, above a threshold.

A request is split into its scope and its instruction. The scope hashes everything two requests
must share for one cached response to serve both: the output-shaping fields, the earlier turns, the task,
the tenant namespace and the literal material of the last message (code, identifiers, numbers).
Only the natural-language instruction of the last user message is embedded and compared.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from collections.abc import Iterable
from typing import Any, Callable

from cache.embedder import Embedder
from cache.entry import CachedResponse
from cache.guard import StoreGuard
from cache.keys import canonical_json, output_fields, scope_key
from cache.intents import intent_of
from cache.prompt_parts import split_prompt
from cache.vectors_base import VectorStore

__all__ = ["SemanticCache", "SemanticHit", "SemanticQuery", "semantic_query"]

logger = logging.getLogger(__name__)


@dataclass
class SemanticQuery:
    scope: str
    instruction: str
    has_code_block: bool = False


@dataclass
class SemanticHit:
    entry: CachedResponse
    score: float
    point_id: str


def _text_and_other_parts(content: Any) -> tuple[str, list[Any]]:
    if isinstance(content, str):
        return content, []
    if isinstance(content, list):
        texts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        others = [part for part in content if not (isinstance(part, dict) and part.get("type") == "text")]
        return "\n".join(texts), others
    return "", []


def semantic_query(
    kind: str,
    body: dict[str, Any],
    namespace: str,
    task: str,
    *,
    count_tokens: Callable[[str], int] | None = None,
    ignore_fields: Iterable[str] = (),
) -> SemanticQuery | None:
    """Return the scope and instruction of a request, or None when it has no user instruction.

    ``count_tokens`` is the embedder's word-piece counter; with it, instruction text beyond the
    embedder's window goes into the literal fingerprint instead of being truncated silently.
    ``ignore_fields`` names output fields left out of the scope (never messages or prompt).
    """
    fields = output_fields(kind, body)
    for name in ignore_fields:
        if name not in ("messages", "prompt", "model"):
            fields.pop(name, None)
    if kind == "chat":
        messages = fields.pop("messages")
        last = messages[-1]
        if last.get("role") != "user":
            return None
        text, other_parts = _text_and_other_parts(last.get("content"))
        fields["earlier_messages"] = messages[:-1]
        fields["last_message_extra"] = {k: v for k, v in last.items() if k not in ("content", "role")}
        # Images and other non-text parts change the response, so they join the scope by digest.
        fields["non_text_parts"] = hashlib.sha256(canonical_json(other_parts).encode("ascii")).hexdigest() if other_parts else None
    else:
        prompt = fields.pop("prompt")
        text = prompt if isinstance(prompt, str) else "\n".join(prompt)
    if not text.strip():
        return None

    parts = split_prompt(text, count_tokens=count_tokens)
    fields["literal"] = parts.literal_fingerprint
    if not parts.has_code_block and task in ("chat", "explain"):
        # Without code, "What is X?" and "Explain X" ask the same question.
        task = "question"
    fields["task"] = task
    fields["intent"] = intent_of(parts.instruction) if task in ("chat", "question") else None
    fields["namespace"] = namespace
    return SemanticQuery(scope=scope_key(fields), instruction=parts.instruction, has_code_block=parts.has_code_block)


class SemanticCache:
    """Embeds instructions, searches the vector store and stores completed responses."""

    def __init__(
        self,
        embedder: Embedder,
        store: VectorStore,
        guard: StoreGuard,
        *,
        threshold: float,
        code_threshold: float | None = None,
        second_check: Callable[[str, str], bool] | None = None,
        max_pending: int = 32,
    ) -> None:
        self.embedder = embedder
        self.store = store
        self.guard = guard
        self.threshold = threshold
        self.code_threshold = threshold if code_threshold is None else code_threshold
        self.second_check = second_check
        self.max_pending = max_pending
        self._pending = 0

    @property
    def ready(self) -> bool:
        return self.embedder.state == "ready"

    async def embed(self, query: SemanticQuery) -> list[float] | None:
        """Embed the instruction, or return None when the embedder is not ready or is saturated."""
        if not self.ready or self._pending >= self.max_pending:
            return None
        self._pending += 1
        try:
            return await self.embedder.embed(query.instruction)
        finally:
            self._pending -= 1

    async def embed_and_lookup(
        self, query: SemanticQuery, *, lookup: bool, request_id: str = "-"
    ) -> tuple[list[float], SemanticHit | None, float | None] | None:
        """Embed the instruction and, when ``lookup``, search its scope.

        Returns None when the embedder is not ready or saturated; otherwise the vector, the hit
        (if any) and the similarity of the nearest point in the scope. With an in-process store
        the search runs on the embedding thread right after the embedding, saving a thread hop.
        """
        if not self.ready or self._pending >= self.max_pending:
            return None
        if not (lookup and self.store.in_process and self.guard.available):
            vector = await self.embed(query)
            if vector is None or not lookup:
                return None if vector is None else (vector, None, None)
            hit, nearest = await self.lookup(query, vector, request_id=request_id)
            return vector, hit, nearest

        def embed_then_search() -> tuple[list[float], list[Any], BaseException | None]:
            vector = self.embedder.encode([query.instruction])[0].tolist()
            try:
                return vector, self.store.search(vector, query.scope, time.time()), None
            except Exception as exc:  # reported through the guard on the event loop
                return vector, [], exc

        self._pending += 1
        try:
            vector, matches, error = await self.embedder.run(embed_then_search)
        finally:
            self._pending -= 1
        if error is not None:
            self.guard.record_failure("search", error, request_id=request_id)
        nearest = matches[0].score if matches else None
        return vector, self._pick(matches, query, request_id), nearest

    async def lookup(self, query: SemanticQuery, vector: list[float], *, request_id: str = "-") -> tuple[SemanticHit | None, float | None]:
        """Return the best match above the threshold that passes the second check, if any, and
        the similarity of the nearest point in the scope (None when the scope is empty)."""
        now = time.time()
        matches = await self.guard.call(
            "search",
            lambda: asyncio.to_thread(self.store.search, vector, query.scope, now),
            [],
            request_id=request_id,
        )
        nearest = matches[0].score if matches else None
        return self._pick(matches, query, request_id), nearest

    def threshold_for(self, query: SemanticQuery) -> float:
        return self.code_threshold if query.has_code_block else self.threshold

    def _pick(self, matches: list, query: SemanticQuery, request_id: str) -> SemanticHit | None:
        threshold = self.threshold_for(query)
        for match in matches:
            if match.score < threshold:
                break
            cached_instruction = match.payload.get("instruction", "")
            if self.second_check is not None and not self.second_check(cached_instruction, query.instruction):
                continue
            try:
                entry = CachedResponse.from_json(match.payload["response"])
            except (KeyError, TypeError, ValueError) as exc:
                logger.warning(
                    "semantic cache point %s has an unreadable response (request %s): %s", match.point_id, request_id, exc
                )
                continue
            return SemanticHit(entry=entry, score=match.score, point_id=match.point_id)
        return None

    async def store_entry(
        self, query: SemanticQuery, vector: list[float], entry: CachedResponse, *, model: str, ttl_s: int, request_id: str = "-"
    ) -> None:
        """Store a completed response under the query's scope and instruction vector."""
        payload = {
            "scope": query.scope,
            "namespace": entry.namespace,
            "model": model,
            "instruction": query.instruction,
            "expires_at": time.time() + ttl_s,
            "entry_id": entry.entry_id,
            "response": entry.to_json(),
        }
        point_id = str(uuid.UUID(hex=entry.entry_id))
        await self.guard.call(
            "upsert",
            lambda: asyncio.to_thread(self.store.upsert, point_id, vector, payload),
            None,
            request_id=request_id,
        )
