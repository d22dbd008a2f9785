"""Prometheus metrics of the gateway, in a registry of their own.

Counters follow the Prometheus convention: the family ``copilot_bridge_cost_saved_usd`` is exposed
as the sample ``copilot_bridge_cost_saved_usd_total``. Labels stay bounded because they
name only routes, tasks, configured models and upstreams, cache layers and the teams of configured
API keys (``none`` without keys). No label carries prompt text or a developer id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

__all__ = ["Metrics"]

disable_created_metrics()

LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000)
EMBEDDING_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 5000)


class Metrics:
    """All gateway metrics; one instance per app so that tests get a fresh registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tokens_saved = Counter(
            "copilot_bridge_tokens_saved", "Tokens not sent to the cloud: cache hits and local answers.", ["route", "task", "team"], registry=r
        )
        self.cost_saved_usd = Counter(
            "copilot_bridge_cost_saved_usd", "USD saved against the cloud baseline price.", ["route", "task", "team"], registry=r
        )
        self.cost_usd = Counter("copilot_bridge_cost_usd", "USD spent: cloud tokens and local electricity.", ["route"], registry=r)
        self.tokens = Counter("copilot_bridge_tokens", "Tokens processed by upstreams.", ["route", "direction"], registry=r)

        self.local_latency_ms = Histogram(
            "copilot_bridge_local_latency_ms", "Latency of requests answered by a local upstream, in ms.", ["task"],
            buckets=LATENCY_BUCKETS_MS, registry=r,
        )
        self.request_latency_ms = Histogram(
            "copilot_bridge_request_latency_ms", "Latency of every completion request, in ms.", ["route"],
            buckets=LATENCY_BUCKETS_MS, registry=r,
        )

        self.requests_by_route = Counter(
            "copilot_bridge_requests_by_route", "Completion requests by route (local, cloud, cache) and API key team.", ["route", "team"], registry=r
        )
        self.requests_by_model = Counter("copilot_bridge_requests_by_model", "Completion requests by requested model.", ["model"], registry=r)
        self.requests_by_task = Counter("copilot_bridge_requests_by_task", "Completion requests by task.", ["task"], registry=r)
        self.responses = Counter("copilot_bridge_responses", "HTTP responses by status code.", ["status"], registry=r)

        self.cache_hits = Counter("copilot_bridge_cache_hits", "Cache hits by layer (exact, semantic).", ["layer"], registry=r)
        self.cache_misses = Counter("copilot_bridge_cache_misses", "Cache misses by layer (exact, semantic).", ["layer"], registry=r)
        self.cache_bypass = Counter("copilot_bridge_cache_bypass", "Requests that skipped a cache layer, by reason.", ["reason"], registry=r)
        self.cache_errors = Counter(
            "copilot_bridge_cache_errors", "Cache store errors and time-outs.", ["layer", "store", "operation"], registry=r
        )
        self.cache_writes = Counter("copilot_bridge_cache_writes", "Responses stored, by layer.", ["layer"], registry=r)

        self.upstream_errors = Counter(
            "copilot_bridge_upstream_errors", "Failed upstream calls by upstream and reason.", ["upstream", "reason"], registry=r
        )
        self.fallbacks = Counter(
            "copilot_bridge_fallbacks", "Requests that fell back to another upstream.", ["from_upstream", "to_upstream"], registry=r
        )
        self.upstream_up = Gauge("copilot_bridge_upstream_up", "1 when the upstream's circuit is closed.", ["upstream"], registry=r)

        self.embedding_latency_ms = Histogram(
            "copilot_bridge_embedding_latency_ms", "Time to embed one prompt, in ms; with Qdrant Edge it includes the search.", buckets=EMBEDDING_BUCKETS_MS, registry=r
        )
        self.semantic_similarity = Histogram(
            "copilot_bridge_semantic_similarity", "Similarity of semantic hits served.",
            buckets=(0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.98, 0.99, 1.0), registry=r,
        )

    def record_cache_error(self, layer: str, store: str, operation: str) -> None:
        self.cache_errors.labels(layer, store, operation).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
