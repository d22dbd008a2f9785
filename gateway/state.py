"""The gateway's long-lived parts, built at start-up from the configuration."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from cache.embedder import Embedder
from cache.exact_base import ExactStore
from cache.guard import StoreGuard
from cache.semantic import SemanticCache
from gateway.breaker import CircuitBreaker
from gateway.config import Config
from gateway.ledger import Ledger
from gateway.metrics import Metrics
from gateway.stats import LedgerStats, read_ledger
from gateway.upstream import Upstream
from gateway.upstream_ollama import OllamaUpstream

__all__ = ["GatewayState", "build_state"]

logger = logging.getLogger(__name__)

EMBEDDING_DIMENSION_DEFAULT = 384


@dataclass
class GatewayState:
    config: Config
    metrics: Metrics
    ledger: Ledger
    upstreams: dict[str, Upstream]
    exact: ExactStore | None = None
    exact_guard: StoreGuard | None = None
    embedder: Embedder | None = None
    semantic: SemanticCache | None = None
    stats: LedgerStats = field(default_factory=LedgerStats)
    owns_embedder: bool = False
    """True when build_state created the embedder; a caller's embedder stays open at close."""
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        for upstream in self.upstreams.values():
            await upstream.close()
        if self.exact is not None:
            await self.exact.close()
        if self.semantic is not None:
            self.semantic.store.close()
        if self.embedder is not None and self.owns_embedder:
            self.embedder.close()
        self.ledger.close()


def _build_exact(config: Config, metrics: Metrics) -> tuple[ExactStore, StoreGuard]:
    cache = config.cache
    store: ExactStore
    if cache.redis_url:
        from cache.exact_redis import RedisExactStore

        store = RedisExactStore(cache.redis_url, timeout_s=cache.store_timeout_s)
    else:
        from cache.exact_embedded import EmbeddedExactStore

        store = EmbeddedExactStore(config.data_path / "exact-cache.sqlite3", max_entries=cache.embedded_max_entries)
    guard = StoreGuard(
        "exact", store.name, timeout_s=cache.store_timeout_s, cooldown_s=cache.outage_cooldown_s, on_error=metrics.record_cache_error
    )
    return store, guard


def _build_vector_store(config: Config, dimension: int):
    cache = config.cache
    if cache.qdrant_url:
        from cache.vectors_server import ServerVectorStore

        api_key = os.environ.get(cache.qdrant_api_key_env, "") if cache.qdrant_api_key_env else ""
        return ServerVectorStore(cache.qdrant_url, cache.collection, dimension, api_key=api_key, timeout_s=max(1.0, cache.store_timeout_s))
    from cache.vectors_edge import EdgeVectorStore

    return EdgeVectorStore(config.data_path / "qdrant-edge" / cache.collection, dimension)


def build_state(config: Config, *, embedder: Embedder | None = None) -> GatewayState:
    """Open stores and clients. The embedding model loads in the background unless one is passed.

    Raises:
        StoreLocked: Qdrant Edge's directory is held by another gateway process.
    """
    metrics = Metrics()
    config.data_path.mkdir(parents=True, exist_ok=True)
    ledger_path = config.data_path / "ledger.jsonl"
    stats = LedgerStats()
    loaded = stats.add_all(read_ledger(ledger_path))
    logger.info("ledger %s: %d earlier requests loaded into the statistics", ledger_path, loaded)
    ledger = Ledger(ledger_path, echo_stderr=config.ledger_stderr, on_write=stats.add)
    upstreams = {
        name: (OllamaUpstream if upstream.api == "ollama" else Upstream)(
            upstream,
            transport=config.http_transport,
            breaker=CircuitBreaker(name, failures=config.breaker_failures, cooldown_s=config.breaker_cooldown_s),
        )
        for name, upstream in config.upstreams.items()
    }
    state = GatewayState(config=config, metrics=metrics, ledger=ledger, upstreams=upstreams, stats=stats)
    if not config.cache.enabled:
        logger.info("caching is disabled")
        return state

    state.exact, state.exact_guard = _build_exact(config, metrics)
    if not config.cache.semantic_enabled:
        return state

    if embedder is None:
        embedder = Embedder(config.cache.embedding_model, device=config.cache.embedding_device, threads=config.cache.embedding_threads)
        embedder.start()
        state.owns_embedder = True
    state.embedder = embedder
    # NOTE: the vector size is known only once the model loaded; the default model has 384.
    dimension = embedder.dimension or (EMBEDDING_DIMENSION_DEFAULT if not config.cache.embedding_model else None)
    if dimension is None:
        embedder.wait_ready()
        dimension = embedder.dimension or EMBEDDING_DIMENSION_DEFAULT
    vector_store = _build_vector_store(config, dimension)
    guard = StoreGuard(
        "semantic", vector_store.name, timeout_s=config.cache.store_timeout_s,
        cooldown_s=config.cache.outage_cooldown_s, on_error=metrics.record_cache_error,
    )
    second_check = None
    try:
        from cache.lexical_check import instructions_compatible

        second_check = instructions_compatible
    except ImportError:
        pass
    state.semantic = SemanticCache(
        embedder, vector_store, guard,
        threshold=config.cache.similarity_threshold,
        code_threshold=config.cache.code_similarity_threshold,
        second_check=second_check,
    )
    return state
