"""Cache outages: a missing or dying Redis, or an embedder still loading, never fails a request."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from cache.embedder import Embedder
from gateway.config import CacheConfig, Config, ModelConfig, UpstreamConfig
from tests.support.harness import Gateway, ScriptedUpstream, free_port, redis_server_process, serve_gateway, wait_for

FAST_S = 1.5
"""Max seconds for a request served while a cache store is down, with store_timeout_s at 0.25 s."""


def timed_ask(gw: Gateway, text: str):
    started = time.monotonic()
    response = gw.client().chat.completions.with_raw_response.create(
        model="coder", messages=[{"role": "user", "content": text}]
    )
    return response, time.monotonic() - started


def test_redis_down_at_start(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cache={"redis_url": f"redis://127.0.0.1:{free_port()}/0", "semantic_enabled": False})

    first, first_s = timed_ask(gw, "Explain Python's GIL.")
    second, second_s = timed_ask(gw, "Explain Python's GIL.")

    assert first.headers["x-cache"] == "miss"
    assert first.parse().choices[0].message.content.startswith("Answer from local")
    assert first_s < FAST_S
    assert second.headers["x-cache"] == "miss"
    assert second_s < FAST_S
    assert gw.metric("copilot_bridge_cache_errors_total", layer="exact", store="redis") >= 1


def test_redis_down_readiness(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cache={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})

    response = gw.get("/readyz")

    report = response.json()
    assert response.status_code == 200
    assert report["status"] == "degraded"
    assert report["exact_cache"]["status"] == "unreachable"
    assert report["semantic_cache"]["status"] == "ok"
    assert gw.get("/healthz").status_code == 200


def test_semantic_serves_during_redis_outage(gateway, local_upstream: ScriptedUpstream) -> None:
    gw = gateway(local_upstream, cache={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})

    timed_ask(gw, "Explain what a Python context manager is for.")
    second, second_s = timed_ask(gw, "Explain what a Python context manager is for.")

    assert second.headers["x-cache"] == "hit-semantic"
    assert second_s < FAST_S
    assert local_upstream.requests == 1


@pytest.fixture
def own_redis() -> Iterator[tuple[int, list]]:
    """Start a redis-server for this test alone and yield (port, [process]), so the test can kill and restart it."""
    port = free_port()
    processes = [redis_server_process(port)]
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    wait_for(client.ping, 15, f"redis-server on port {port}")
    client.close()
    yield port, processes
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)


def test_redis_dies_and_returns(gateway, local_upstream: ScriptedUpstream, own_redis: tuple[int, list]) -> None:
    port, processes = own_redis
    gw = gateway(
        local_upstream,
        cache={"redis_url": f"redis://127.0.0.1:{port}/0", "semantic_enabled": False, "outage_cooldown_s": 0.5},
    )
    timed_ask(gw, "Explain tuples.")
    before, _ = timed_ask(gw, "Explain tuples.")

    processes[0].kill()
    processes[0].wait(timeout=10)
    during, during_s = timed_ask(gw, "Explain tuples.")

    processes.append(redis_server_process(port))
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    wait_for(client.ping, 15, f"the restarted redis-server on port {port}")
    client.close()
    time.sleep(0.6)  # let the 0.5 s outage cool-down end
    refill, _ = timed_ask(gw, "Explain tuples.")
    after, _ = timed_ask(gw, "Explain tuples.")

    assert before.headers["x-cache"] == "hit-exact"
    assert during.headers["x-cache"] == "miss"
    assert during_s < FAST_S
    assert refill.headers["x-cache"] == "miss"
    assert after.headers["x-cache"] == "hit-exact"
    assert gw.metric("copilot_bridge_cache_errors_total", layer="exact") >= 1


def test_embedder_loading_still_serves(tmp_path, local_upstream: ScriptedUpstream) -> None:
    loading = Embedder()  # never started, so it stays in the "loading" state
    config = Config(
        data_dir=str(tmp_path / "gateway"),
        ledger_stderr=False,
        upstreams={"local": UpstreamConfig(name="local", base_url=local_upstream.base_url, kind="local")},
        models=[ModelConfig(name="coder", upstream="local")],
        cache=CacheConfig(),
    )
    gw = serve_gateway(config, embedder=loading)
    try:
        ready = gw.get("/readyz")
        first, first_s = timed_ask(gw, "Explain list slicing.")
        second, _ = timed_ask(gw, "Explain list slicing.")
        bypass = gw.metric("copilot_bridge_cache_bypass_total", reason="embedder_loading")
    finally:
        gw.stop()
        loading.close()

    assert ready.status_code == 503
    assert ready.json()["embedder"]["status"] == "loading"
    assert first.headers["x-cache"] == "miss"
    assert first_s < FAST_S
    assert second.headers["x-cache"] == "hit-exact"
    assert bypass == 1  # the exact hit never reaches the semantic layer
