"""The path of one completion request: exact cache, semantic cache, upstreams, accounting.

    request -> exact lookup -> semantic lookup -> route (local, then cloud fallback)
            -> response (JSON or SSE) -> store in both caches once complete -> ledger and metrics
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cache.entry import CachedResponse
from cache.keys import exact_key
from cache.semantic import SemanticHit, SemanticQuery, semantic_query
from gateway.cache_control import CachePolicy, cache_policy
from gateway.config import ModelConfig
from gateway.errors import APIError, ModelNotFound, UpstreamFailed, UpstreamTimeout, error_body
from gateway.fim import apply_fim_template
from gateway.parsing import CHAT, CompletionRequest
from gateway.retrieval import add_repository_context
from gateway.responses import completion_text, entry_from_response, response_from_entry, usage_of
from gateway.routing import Target, estimate_tokens, plan_targets
from gateway.savings import account
from gateway.sse import DONE, StreamAccumulator, encode_event, parse_data_line, replay_events
from gateway.state import GatewayState
from gateway.tasks import classify
from gateway.upstream import UpstreamError

__all__ = ["CompletionPipeline", "Reply", "RequestRecord"]

logger = logging.getLogger(__name__)

PATHS = {CHAT: "/chat/completions", "completion": "/completions"}


@dataclass
class Reply:
    """The HTTP layer's output: a JSON body or an SSE stream, with headers."""

    status: int
    headers: dict[str, str]
    body: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None


@dataclass
class RequestRecord:
    """The ledger line of one request. It never contains prompt or response text."""

    request_id: str
    started: float = field(default_factory=time.perf_counter)
    ts: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    endpoint: str = ""
    route: str | None = None
    cache: str = "miss"
    task: str | None = None
    model: str | None = None
    upstream: str | None = None
    upstream_model: str | None = None
    namespace: str | None = None
    stream: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_saved: int = 0
    cost_usd: float = 0.0
    cost_saved_usd: float = 0.0
    status: int = 200
    error: str | None = None
    fallback: bool = False
    similarity: float | None = None
    entry_id: str | None = None
    usage_estimated: bool = False
    nearest_similarity: float | None = None
    """On a semantic miss, the similarity of the nearest entry in the same scope."""
    developer: str | None = None
    team: str | None = None
    project: str | None = None
    cache_scope: str | None = None
    """The tenant of the API key; None when the gateway runs without keys."""

    def attribute(self, identity: Any) -> None:
        """Attribute the request to an API key's identity (None leaves it anonymous)."""
        if identity is not None:
            self.developer, self.team, self.project = identity.developer, identity.team, identity.project or None
            self.cache_scope = identity.cache_scope

    def to_json_dict(self) -> dict[str, Any]:
        record = {
            "ts": self.ts,
            "request_id": self.request_id,
            "endpoint": self.endpoint,
            "route": self.route,
            "cache": self.cache,
            "task": self.task,
            "model": self.model,
            "upstream": self.upstream,
            "upstream_model": self.upstream_model,
            "namespace": self.namespace,
            "stream": self.stream,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "tokens_saved": self.tokens_saved,
            "cost_usd": round(self.cost_usd, 8),
            "cost_saved_usd": round(self.cost_saved_usd, 8),
            "ms": round((time.perf_counter() - self.started) * 1000, 2),
            "status": self.status,
        }
        for name in ("error", "similarity", "nearest_similarity", "entry_id", "developer", "team", "project"):
            value = getattr(self, name)
            if value is not None:
                record[name] = value
        if self.fallback:
            record["fallback"] = True
        if self.usage_estimated:
            record["usage_estimated"] = True
        return record


def new_request_id() -> str:
    return "cb-" + uuid.uuid4().hex[:24]


class CompletionPipeline:
    """Serves completion requests against the state's caches and upstreams."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.config = state.config
        self.metrics = state.metrics
        self._pending_semantic_writes: set[asyncio.Task[None]] = set()
        self._pending_exact_writes: dict[str, asyncio.Task[None]] = {}

    # -- accounting -------------------------------------------------------------------------

    def finish(self, record: RequestRecord) -> None:
        """Count a finished request in the metrics and write its ledger line."""
        metrics = self.metrics
        team = record.team or "none"
        metrics.responses.labels(str(record.status)).inc()
        if record.route is not None:
            metrics.requests_by_route.labels(record.route, team).inc()
            metrics.requests_by_model.labels(record.model or "").inc()
            metrics.requests_by_task.labels(record.task or "").inc()
            elapsed_ms = (time.perf_counter() - record.started) * 1000
            metrics.request_latency_ms.labels(record.route).observe(elapsed_ms)
            if record.route == "local" and record.status == 200:
                metrics.local_latency_ms.labels(record.task or "").observe(elapsed_ms)
            # 499: the client closed a stream; the tokens the upstream produced still count.
            if record.status in (200, 499):
                metrics.tokens_saved.labels(record.route, record.task or "", team).inc(record.tokens_saved)
                metrics.cost_saved_usd.labels(record.route, record.task or "", team).inc(record.cost_saved_usd)
                metrics.cost_usd.labels(record.route).inc(record.cost_usd)
                metrics.tokens.labels(record.route, "in").inc(record.tokens_in)
                metrics.tokens.labels(record.route, "out").inc(record.tokens_out)
        self.state.ledger.write(record.to_json_dict())

    def _account(self, record: RequestRecord, route: str, model: ModelConfig, usage: dict[str, int], upstream: Any = None) -> None:
        result = account(
            self.config, route, model=model, tokens_in=usage.get("prompt_tokens", 0),
            tokens_out=usage.get("completion_tokens", 0), upstream=upstream,
        )
        record.route = route
        record.tokens_in, record.tokens_out = result.tokens_in, result.tokens_out
        record.tokens_saved = result.tokens_saved
        record.cost_usd, record.cost_saved_usd = result.cost_usd, result.cost_saved_usd

    # -- the request -------------------------------------------------------------------------

    async def handle(self, request: CompletionRequest, headers: Mapping[str, str], record: RequestRecord) -> Reply:
        """Serve one completion request; raises APIError for client and upstream failures."""
        model = self.config.model(request.model)
        if model is None:
            known = ", ".join(m.name for m in self.config.models) or "none"
            raise ModelNotFound(f"model {request.model!r} is not configured; configured models: {known}", param="model")
        task = classify(request)
        added = await add_repository_context(self.state, request, task, record.request_id)
        cache_config = self.config.cache
        policy = cache_policy(
            headers, request.cache_options, default_ttl_s=cache_config.ttl_s,
            default_namespace=cache_config.default_namespace, enabled=cache_config.enabled,
        )
        if record.cache_scope:
            # Tenants: a key's cache scope (its team by default) prefixes the namespace.
            policy.namespace = f"{record.cache_scope}:{policy.namespace}"
        record.model, record.task, record.namespace, record.stream = request.model, task, policy.namespace, request.stream
        reply_headers = {"x-request-id": record.request_id, "x-task": task}
        if added:
            reply_headers["x-retrieved-chunks"] = str(added)

        # Exact cache.
        key = exact_key(request.kind, request.body, policy.namespace)
        state = self.state
        if policy.lookup and state.exact is not None and state.exact_guard is not None:
            pending = self._pending_exact_writes.get(key)
            if pending is not None:
                # Read your own writes: the same request right after a miss must hit.
                await asyncio.wait([pending], timeout=cache_config.store_timeout_s)
            raw = await state.exact_guard.call(
                "get", lambda: state.exact.get(policy.namespace, request.model, key), None, request_id=record.request_id
            )
            entry = self._decode(raw, record.request_id)
            if entry is not None:
                self.metrics.cache_hits.labels("exact").inc()
                return self._hit(request, model, entry, "exact", record, reply_headers)
            self.metrics.cache_misses.labels("exact").inc()

        # Semantic cache; autocomplete is latency-critical and skips it.
        try:
            query, vector = await self._semantic_lookup(request, task, policy, record)
        except Exception as exc:  # the semantic layer must never fail a request
            logger.error(
                "request %s: semantic cache skipped after %s: %s", record.request_id, type(exc).__name__, exc, exc_info=exc
            )
            self.metrics.record_cache_error("semantic", "embedder", "lookup")
            query, vector = None, None
        if isinstance(query, SemanticHit):
            hit = query
            self.metrics.cache_hits.labels("semantic").inc()
            self.metrics.semantic_similarity.observe(hit.score)
            record.similarity, record.entry_id = round(hit.score, 4), hit.entry.entry_id
            reply_headers["x-cache-similarity"] = f"{hit.score:.4f}"
            reply_headers["x-cache-entry"] = hit.entry.entry_id
            return self._hit(request, model, hit.entry, "semantic", record, reply_headers)

        record.cache = "miss" if policy.lookup else "bypass"
        reply_headers["x-cache"] = record.cache
        if record.nearest_similarity is not None:
            reply_headers["x-cache-nearest"] = f"{record.nearest_similarity:.4f}"
        prompt_tokens = estimate_tokens(request.prompt_text)
        targets = plan_targets(self.config, state.upstreams, model, task, prompt_tokens, request.max_tokens)
        store = _StorePlan(policy, key, query, vector) if policy.store else None
        if request.stream:
            return await self._stream_from_upstreams(request, model, targets, record, reply_headers, store)
        return await self._complete_from_upstreams(request, model, targets, record, reply_headers, store)

    def _decode(self, raw: bytes | None, request_id: str) -> CachedResponse | None:
        if raw is None:
            return None
        try:
            return CachedResponse.from_json(raw)
        except (TypeError, ValueError) as exc:
            logger.warning("exact cache entry for request %s is unreadable, treating as a miss: %s", request_id, exc)
            return None

    async def _semantic_lookup(
        self, request: CompletionRequest, task: str, policy: CachePolicy, record: RequestRecord
    ) -> tuple[SemanticQuery | SemanticHit | None, list[float] | None]:
        semantic = self.state.semantic
        if semantic is None or not self.config.cache.semantic_enabled or not (policy.lookup or policy.store):
            return None, None
        if task == "autocomplete":
            self.metrics.cache_bypass.labels("autocomplete").inc()
            return None, None
        counter = semantic.embedder.count_tokens if semantic.ready else None
        query = semantic_query(
            request.kind, request.body, policy.namespace, task,
            count_tokens=counter, ignore_fields=self.config.cache.semantic_scope_ignore,
        )
        if query is None:
            return None, None

        if policy.lookup and self._pending_semantic_writes:
            # Read your own writes: a repeat right after a miss must see the stored point.
            await asyncio.wait(list(self._pending_semantic_writes), timeout=self.config.cache.store_timeout_s)
        started = time.perf_counter()
        result = await semantic.embed_and_lookup(query, lookup=policy.lookup, request_id=record.request_id)
        if result is None:
            self.metrics.cache_bypass.labels("embedder_" + ("busy" if semantic.ready else semantic.embedder.state)).inc()
            return None, None
        vector, hit, nearest = result
        self.metrics.embedding_latency_ms.observe((time.perf_counter() - started) * 1000)
        if not policy.lookup:
            return query, vector
        if hit is not None:
            return hit, vector
        self.metrics.cache_misses.labels("semantic").inc()
        record.nearest_similarity = None if nearest is None else round(nearest, 4)
        return query, vector

    def _hit(
        self, request: CompletionRequest, model: ModelConfig, entry: CachedResponse, layer: str,
        record: RequestRecord, reply_headers: dict[str, str],
    ) -> Reply:
        record.cache = layer
        record.entry_id = entry.entry_id
        reply_headers.update({"x-cache": f"hit-{layer}", "x-route": "cache"})
        self._account(record, "cache", model, entry.usage)
        response_id = ("chatcmpl-" if entry.kind == CHAT else "cmpl-") + record.request_id[3:]
        answer_model = entry.model or request.model
        if request.stream:
            include_usage = bool((request.body.get("stream_options") or {}).get("include_usage"))
            events = replay_events(entry, response_id=response_id, model=answer_model, include_usage=include_usage)
            return Reply(200, reply_headers, stream=self._replay(events, record))
        self.finish(record)
        return Reply(200, reply_headers, body=response_from_entry(entry, response_id=response_id, model=answer_model))

    async def _replay(self, events: list[bytes], record: RequestRecord) -> AsyncIterator[bytes]:
        try:
            for event in events:
                yield event
        except BaseException:
            record.status, record.error = 499, "client closed the stream"
            raise
        finally:
            self.finish(record)

    # -- upstream calls ---------------------------------------------------------------------

    def _note_failure(self, target: Target, error: UpstreamError, record: RequestRecord) -> None:
        target.upstream.breaker.record_failure(error.detail)
        self.metrics.upstream_errors.labels(target.upstream.name, error.reason).inc()
        logger.warning("request %s: %s", record.request_id, error)

    def _note_answer(self, targets: list[Target], target: Target, record: RequestRecord, reply_headers: dict[str, str]) -> str:
        route = "local" if target.upstream.config.kind == "local" else "cloud"
        record.upstream, record.upstream_model = target.upstream.name, target.model
        if target is not targets[0] and target.fallback:
            record.fallback = True
            self.metrics.fallbacks.labels(targets[0].upstream.name, target.upstream.name).inc()
            reply_headers["x-fallback"] = "true"
        reply_headers["x-route"] = route
        return route

    def _failure(self, errors: list[UpstreamError], skipped: list[str]) -> APIError:
        details = [str(e) for e in errors]
        for name in skipped:
            breaker = self.state.upstreams[name].breaker
            last = f"; last failure: {breaker.last_failure}" if breaker.last_failure else ""
            details.append(
                f"upstream {name}: circuit open for {breaker.retry_after_s:.0f} s more after "
                f"{breaker.failures} failed requests in a row{last}"
            )
        message = "no upstream could answer: " + "; ".join(details)
        error: APIError = UpstreamTimeout(message) if errors and errors[-1].reason == "timeout" else UpstreamFailed(message)
        if skipped:
            error.retry_after_s = max(self.state.upstreams[name].breaker.retry_after_s for name in skipped)
        return error

    @staticmethod
    def _client_error(error: UpstreamError, reply_headers: dict[str, str]) -> Reply:
        # A 4xx from the upstream is about the request itself: pass it through unchanged in shape.
        body = error.body if isinstance(error.body, dict) and isinstance(error.body.get("error"), dict) else error_body(
            str(error), "invalid_request_error", None, "upstream_rejected"
        )
        return Reply(error.status or 400, reply_headers, body=body)

    async def _complete_from_upstreams(
        self, request: CompletionRequest, model: ModelConfig, targets: list[Target], record: RequestRecord,
        reply_headers: dict[str, str], store: _StorePlan | None,
    ) -> Reply:
        errors: list[UpstreamError] = []
        skipped: list[str] = []
        for target in targets:
            if not target.upstream.breaker.allow():
                skipped.append(target.upstream.name)
                continue
            body = dict(request.body, model=target.model)
            body = apply_fim_template(self.config, model, target, body)
            try:
                data = await target.upstream.post_json(PATHS[request.kind], body)
            except UpstreamError as error:
                if not error.retryable:
                    target.upstream.breaker.record_success()
                    record.upstream, record.status, record.error = target.upstream.name, error.status or 400, str(error)
                    reply = self._client_error(error, reply_headers)
                    self.finish(record)
                    return reply
                self._note_failure(target, error, record)
                errors.append(error)
                continue

            target.upstream.breaker.record_success()
            route = self._note_answer(targets, target, record, reply_headers)
            usage, estimated = usage_of(
                data, request.prompt_text, completion_text(request.kind, data),
                max_tokens=request.max_tokens, choices=request.body.get("n") or 1,
            )
            record.usage_estimated = estimated
            self._account(record, route, model, usage, target.upstream.config)
            if store is not None:
                entry = entry_from_response(request.kind, data, usage, estimated=estimated, namespace=store.policy.namespace)
                if entry is not None:
                    record.entry_id = entry.entry_id
                    await self._store(request, entry, store, record.request_id)
            self.finish(record)
            return Reply(200, reply_headers, body=data)

        error = self._failure(errors, skipped)
        record.status, record.error = error.status_code, error.message
        raise error

    async def _stream_from_upstreams(
        self, request: CompletionRequest, model: ModelConfig, targets: list[Target], record: RequestRecord,
        reply_headers: dict[str, str], store: _StorePlan | None,
    ) -> Reply:
        errors: list[UpstreamError] = []
        skipped: list[str] = []
        client_wants_usage = bool((request.body.get("stream_options") or {}).get("include_usage"))
        for target in targets:
            if not target.upstream.breaker.allow():
                skipped.append(target.upstream.name)
                continue
            body = dict(request.body, model=target.model)
            body = apply_fim_template(self.config, model, target, body)
            body["stream_options"] = {**(request.body.get("stream_options") or {}), "include_usage": True}
            stack = AsyncExitStack()
            try:
                lines = await stack.enter_async_context(target.upstream.stream_lines(PATHS[request.kind], body))
            except UpstreamError as error:
                await stack.aclose()
                if not error.retryable:
                    target.upstream.breaker.record_success()
                    record.upstream, record.status, record.error = target.upstream.name, error.status or 400, str(error)
                    reply = self._client_error(error, reply_headers)
                    self.finish(record)
                    return reply
                self._note_failure(target, error, record)
                errors.append(error)
                continue

            route = self._note_answer(targets, target, record, reply_headers)
            record.route = route
            relay = self._relay(request, model, target, route, lines, stack, record, store, client_wants_usage)
            return Reply(200, reply_headers, stream=relay)

        error = self._failure(errors, skipped)
        record.status, record.error = error.status_code, error.message
        raise error

    async def _relay(
        self, request: CompletionRequest, model: ModelConfig, target: Target, route: str, lines: AsyncIterator[str],
        stack: AsyncExitStack, record: RequestRecord, store: _StorePlan | None, client_wants_usage: bool,
    ) -> AsyncIterator[bytes]:
        """Forward upstream events as they arrive, and store the response only after ``[DONE]``."""
        accumulator = StreamAccumulator(request.kind)
        try:
            async for line in lines:
                data = parse_data_line(line)
                if data is None or not data:
                    continue
                if data == "[DONE]":
                    accumulator.done = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    logger.warning("request %s: upstream %s sent a chunk that is not JSON", record.request_id, target.upstream.name)
                    continue
                accumulator.feed(chunk)
                if not chunk.get("choices") and chunk.get("usage") and not client_wants_usage:
                    continue
                yield b"data: " + data.encode("utf-8", "surrogatepass") + b"\n\n"

            if not accumulator.complete:
                raise UpstreamError(target.upstream.name, "protocol", "stream ended before it finished")
            target.upstream.breaker.record_success()
            usage, estimated = usage_of(
                {"usage": accumulator.usage}, request.prompt_text, accumulator.text(),
                max_tokens=request.max_tokens, choices=request.body.get("n") or 1,
            )
            record.usage_estimated = estimated
            if estimated and client_wants_usage:
                # The upstream sent no usage chunk (llama.cpp server does not): send the estimate.
                yield encode_event({
                    "id": accumulator.response_id, "object": "chat.completion.chunk" if request.kind == CHAT else "text_completion",
                    "created": int(time.time()), "model": accumulator.model, "choices": [], "usage": usage,
                })
            self._account(record, route, model, usage, target.upstream.config)
            if store is not None:
                entry = accumulator.to_entry(usage, estimated=estimated, namespace=store.policy.namespace)
                record.entry_id = entry.entry_id
                await self._store(request, entry, store, record.request_id)
            yield DONE
        except UpstreamError as error:
            self._note_failure(target, error, record)
            record.status = 504 if error.reason == "timeout" else 502
            record.error = str(error)
            code = "upstream_timeout" if error.reason == "timeout" else "upstream_failed"
            yield encode_event(error_body(f"stream interrupted: {error}", "upstream_error", None, code))
        except BaseException:
            record.status, record.error = 499, "client closed the stream"
            usage, _ = usage_of(None, request.prompt_text, accumulator.text(), max_tokens=request.max_tokens)
            record.usage_estimated = True
            self._account(record, route, model, usage, target.upstream.config)
            raise
        finally:
            await stack.aclose()
            self.finish(record)

    # -- cache writes -----------------------------------------------------------------------

    async def _store(self, request: CompletionRequest, entry: CachedResponse, plan: _StorePlan, request_id: str) -> None:
        """Store a completed answer: exact now, semantic in the background."""
        state = self.state
        if state.exact is not None and state.exact_guard is not None:
            value = entry.to_json().encode("ascii")
            # Written after the response goes out; a lookup of the same key waits for it.
            write = asyncio.create_task(
                state.exact_guard.call(
                    "set",
                    lambda: state.exact.set(plan.policy.namespace, request.model, plan.key, value, plan.policy.ttl_s),
                    None,
                    request_id=request_id,
                )
            )
            self._pending_exact_writes[plan.key] = write
            write.add_done_callback(lambda task, key=plan.key: self._forget_exact_write(key, task))
            self.metrics.cache_writes.labels("exact").inc()
        if state.semantic is not None and isinstance(plan.query, SemanticQuery) and plan.vector is not None:
            task = asyncio.create_task(
                state.semantic.store_entry(
                    plan.query, plan.vector, entry, model=request.model, ttl_s=plan.policy.ttl_s, request_id=request_id
                )
            )
            self._pending_semantic_writes.add(task)
            task.add_done_callback(self._pending_semantic_writes.discard)
            self.metrics.cache_writes.labels("semantic").inc()

    def _forget_exact_write(self, key: str, task: asyncio.Task[None]) -> None:
        if self._pending_exact_writes.get(key) is task:
            del self._pending_exact_writes[key]

    async def drain(self) -> None:
        """Wait for background cache writes, for a clean shutdown."""
        pending = [*self._pending_semantic_writes, *self._pending_exact_writes.values()]
        if pending:
            await asyncio.wait(pending, timeout=5)


@dataclass
class _StorePlan:
    policy: CachePolicy
    key: str
    query: SemanticQuery | SemanticHit | None
    vector: list[float] | None
