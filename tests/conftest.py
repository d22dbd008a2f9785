"""Fixtures: the embedding model, a Redis server, scripted upstreams and a gateway factory.

The embedding model loads once per session and every gateway shares it. Upstreams run as
subprocesses for the whole session and are reset before each test that uses them. Each gateway
gets its own data directory under the test's tmp_path and stops at the end of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from cache.embedder import Embedder
from gateway.config import CacheConfig, Config, ModelConfig, UpstreamConfig
from tests.support.harness import (
    Gateway,
    ScriptedUpstream,
    free_port,
    redis_server_process,
    serve_gateway,
    wait_for,
)

MODELS = ("coder", "coder-large")
"""Models every test gateway serves, both routed to the ``local`` upstream by default."""

GatewayFactory = Callable[..., Gateway]


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    model = Embedder()
    model.load()
    yield model
    model.close()


@pytest.fixture(scope="session")
def upstream_pool() -> Iterator[dict[str, ScriptedUpstream]]:
    pool: dict[str, ScriptedUpstream] = {}
    try:
        for name in ("local", "cloud"):
            pool[name] = ScriptedUpstream(name)
        yield pool
    finally:
        for upstream in pool.values():
            upstream.stop()


@pytest.fixture
def local_upstream(upstream_pool: dict[str, ScriptedUpstream]) -> ScriptedUpstream:
    """The scripted ``local`` upstream in ``ok`` mode with its request count at 0."""
    upstream = upstream_pool["local"]
    upstream.reset()
    return upstream


@pytest.fixture
def cloud_upstream(upstream_pool: dict[str, ScriptedUpstream]) -> ScriptedUpstream:
    """The scripted ``cloud`` upstream in ``ok`` mode with its request count at 0."""
    upstream = upstream_pool["cloud"]
    upstream.reset()
    return upstream


@pytest.fixture
def dead_url() -> str:
    """An OpenAI base URL on a port where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[int]:
    """Port of a redis-server started for this session, without persistence."""
    port = free_port()
    process = redis_server_process(port)
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        wait_for(client.ping, 15, f"redis-server on port {port}")
        yield port
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: int) -> str:
    """URL of the session's Redis, emptied for this test."""
    client = redis.Redis(host="127.0.0.1", port=redis_server, socket_timeout=1)
    client.flushall()
    client.close()
    return f"redis://127.0.0.1:{redis_server}/0"


def _upstream_config(name: str, target: ScriptedUpstream | str, kind: str, options: dict[str, Any]) -> UpstreamConfig:
    base_url = target.base_url if isinstance(target, ScriptedUpstream) else target
    settings: dict[str, Any] = {"connect_timeout_s": 2.0, "read_timeout_s": 10.0, **options}
    return UpstreamConfig(name=name, base_url=base_url, kind=kind, **settings)


@pytest.fixture
def gateway(tmp_path, embedder: Embedder) -> Iterator[GatewayFactory]:
    """Return ``make(local, cloud=None, *, local_options, cloud_options, cache, **config)``.

    ``local`` and ``cloud`` are scripted upstreams or base URLs; ``cloud=None`` configures no cloud
    upstream. ``cache`` contains CacheConfig fields, and the other keywords set Config fields. Every
    gateway stops when the test ends.
    """
    started: list[Gateway] = []

    def make(
        local: ScriptedUpstream | str,
        cloud: ScriptedUpstream | str | None = None,
        *,
        local_options: dict[str, Any] | None = None,
        cloud_options: dict[str, Any] | None = None,
        cache: dict[str, Any] | None = None,
        **options: Any,
    ) -> Gateway:
        upstreams = {"local": _upstream_config("local", local, "local", local_options or {})}
        if cloud is not None:
            upstreams["cloud"] = _upstream_config("cloud", cloud, "cloud", cloud_options or {})
        config = Config(
            data_dir=options.pop("data_dir", str(tmp_path / f"gateway-{len(started)}")),
            ledger_stderr=False,
            upstreams=upstreams,
            models=[ModelConfig(name=name, upstream="local") for name in MODELS],
            cache=CacheConfig(**(cache or {})),
            **options,
        )
        config.validate()
        served = serve_gateway(config, embedder=embedder)
        started.append(served)
        return served

    yield make
    for served in started:
        served.stop()
