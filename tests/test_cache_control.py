"""Per-request cache control: headers, the LiteLLM ``cache`` body field, TTLs, namespaces."""

from __future__ import annotations

import time

import redis

from cache.keys import exact_key
from cache.exact_redis import RedisExactStore

QUESTION = "Explain what `str.partition` returns."


def chat(served, content: str = QUESTION, **extra):
    client = served.client()
    return client.chat.completions.with_raw_response.create(
        model="coder", messages=[{"role": "user", "content": content}], **extra
    )


def test_no_cache_skips_lookup_but_stores(gateway, local_upstream):
    served = gateway(local_upstream)
    chat(served)
    skipped = chat(served, extra_headers={"Cache-Control": "no-cache"})
    again = chat(served)
    assert skipped.headers["x-cache"] == "bypass"
    assert again.headers["x-cache"] == "hit-exact"
    assert local_upstream.requests == 2


def test_no_store_header_stores_nothing(gateway, local_upstream):
    served = gateway(local_upstream)
    chat(served, extra_headers={"Cache-Control": "no-store"})
    again = chat(served)
    assert again.headers["x-cache"] == "miss"


def test_body_field_no_store(gateway, local_upstream):
    served = gateway(local_upstream)
    chat(served, extra_body={"cache": {"no-store": True}})
    again = chat(served)
    assert again.headers["x-cache"] == "miss"


def test_body_field_stripped_before_upstream(gateway, local_upstream):
    served = gateway(local_upstream)
    chat(served, extra_body={"cache": {"ttl": 60, "namespace": "team-a"}})
    sent = local_upstream.stats()["last_body"]
    assert "cache" not in sent
    assert sent["messages"][0]["content"] == QUESTION


def test_namespace_header_separates_entries(gateway, local_upstream):
    served = gateway(local_upstream)
    chat(served, extra_headers={"x-cache-namespace": "alpha"})
    other = chat(served, extra_headers={"x-cache-namespace": "beta"})
    same = chat(served, extra_headers={"x-cache-namespace": "alpha"})
    assert other.headers["x-cache"] == "miss"
    assert same.headers["x-cache"] == "hit-exact"


def test_invalid_namespace_is_400(gateway, local_upstream):
    served = gateway(local_upstream)
    response = served.post("/v1/chat/completions", json={"model": "coder", "messages": [{"role": "user", "content": "x"}]}, headers={"x-cache-namespace": "a b/c"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "cache.namespace"


def test_invalid_ttl_is_400(gateway, local_upstream):
    served = gateway(local_upstream)
    response = served.post("/v1/chat/completions", json={"model": "coder", "messages": [{"role": "user", "content": "x"}], "cache": {"ttl": -5}})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "cache.ttl"


def test_redis_ttl_in_range(gateway, local_upstream, redis_url):
    served = gateway(local_upstream, cache={"redis_url": redis_url})
    chat(served, extra_headers={"Cache-Control": "max-age=120"})
    body = {"model": "coder", "messages": [{"role": "user", "content": QUESTION}]}
    key = RedisExactStore.redis_key("default", "coder", exact_key("chat", body, "default"))
    client = redis.Redis.from_url(redis_url)
    ttl = client.ttl(key)
    client.close()
    assert 110 <= ttl <= 120


def test_entries_expire_in_both_layers(gateway, local_upstream, redis_url):
    served = gateway(local_upstream, cache={"redis_url": redis_url})
    chat(served, extra_body={"cache": {"ttl": 1}})
    paraphrase = "What does `str.partition` return? Explain."
    before_expiry = chat(served, paraphrase, extra_headers={"Cache-Control": "no-store"})
    assert before_expiry.headers["x-cache"] == "hit-semantic"
    time.sleep(1.6)
    # The paraphrase goes first: the exact repeat's miss stores a fresh entry it could hit.
    semantic_again = chat(served, paraphrase, extra_headers={"Cache-Control": "no-store"})
    exact_again = chat(served)
    assert semantic_again.headers["x-cache"] == "miss"
    assert exact_again.headers["x-cache"] == "miss"


def test_purge_by_namespace(gateway, local_upstream):
    served = gateway(local_upstream)
    chat(served, extra_headers={"x-cache-namespace": "alpha"})
    chat(served, extra_headers={"x-cache-namespace": "beta"})
    purged = served.post("/admin/cache/purge", json={"namespace": "alpha"}).json()
    alpha = chat(served, extra_headers={"x-cache-namespace": "alpha"})
    beta = chat(served, extra_headers={"x-cache-namespace": "beta"})
    assert purged["exact"] == 1
    assert purged["semantic"] == 1
    assert alpha.headers["x-cache"] == "miss"
    assert beta.headers["x-cache"] == "hit-exact"


def test_purge_needs_a_target(gateway, local_upstream):
    served = gateway(local_upstream)
    response = served.post("/admin/cache/purge", json={})
    assert response.status_code == 400
