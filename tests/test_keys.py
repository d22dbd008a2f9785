"""API keys: 401 without a valid key, attribution in the ledger, team-scoped cache entries."""

from __future__ import annotations

import hashlib

import httpx
import openai
import pytest

from gateway.config import KeyConfig

KEYS = [
    KeyConfig(developer="ada", team="red", project="compiler", key="key-ada"),
    KeyConfig(developer="bob", team="red", key_sha256=hashlib.sha256(b"key-bob").hexdigest()),
    KeyConfig(developer="cy", team="blue", key="key-cy", admin=True),
    KeyConfig(developer="dee", team="green", key="key-dee", cache_scope="shared"),
    KeyConfig(developer="eve", team="yellow", key="key-eve", cache_scope="shared"),
]


def ask(gateway, key: str, question: str = "Explain what `sorted(x, key=len)` returns."):
    client = gateway.client(api_key=key)
    return client.chat.completions.with_raw_response.create(
        model="coder", messages=[{"role": "user", "content": question}]
    )


def test_missing_key_is_401(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    response = httpx.post(served.base_url + "/v1/chat/completions", json={"model": "coder", "messages": []})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_unknown_key_is_401(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    with pytest.raises(openai.AuthenticationError):
        ask(served, "not-a-key")
    assert local_upstream.requests == 0


def test_health_stays_open(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    assert httpx.get(served.base_url + "/healthz").status_code == 200
    assert httpx.get(served.base_url + "/metrics").status_code == 200


def test_ledger_names_developer(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    raw = ask(served, "key-ada")
    line = served.ledger_line(raw.headers["x-request-id"])
    assert line["developer"] == "ada"
    assert line["team"] == "red"
    assert line["project"] == "compiler"


def test_hashed_key_accepted(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    raw = ask(served, "key-bob")
    assert raw.http_response.status_code == 200


def test_same_team_shares_cache(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    ask(served, "key-ada")
    raw = ask(served, "key-bob")
    assert raw.headers["x-cache"] == "hit-exact"


def test_other_team_never_hits(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    ask(served, "key-ada")
    raw = ask(served, "key-cy")
    assert raw.headers["x-cache"] == "miss"
    assert local_upstream.requests == 2


def test_shared_scope_hits_across_teams(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    ask(served, "key-dee")
    raw = ask(served, "key-eve")
    assert raw.headers["x-cache"] == "hit-exact"


def test_metrics_label_team_not_developer(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    ask(served, "key-ada")
    exposition = served.metrics()
    assert 'team="red"' in exposition
    assert "ada" not in exposition


def test_purge_needs_admin_key(gateway, local_upstream):
    served = gateway(local_upstream, keys=KEYS)
    ask(served, "key-ada")
    denied = httpx.post(served.base_url + "/admin/cache/purge", json={"all": True}, headers={"Authorization": "Bearer key-ada"})
    allowed = httpx.post(served.base_url + "/admin/cache/purge", json={"all": True}, headers={"Authorization": "Bearer key-cy"})
    assert denied.status_code == 401
    assert allowed.status_code == 200
    assert allowed.json()["exact"] == 1
    assert ask(served, "key-ada").headers["x-cache"] == "miss"
