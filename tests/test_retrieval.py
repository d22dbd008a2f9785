"""Repository code added to explain and agent prompts before caching and routing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cache.embedder import Embedder
from gateway.config import RetrievalConfig
from indexer.run import index_repository

GEO = '''import math


def haversine_distance_km(lat1, lon1, lat2, lon2):
    """Great-circle distance between two points on Earth in kilometres."""
    radius = 6371.0
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = math.radians(lat2 - lat1)
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * radius * math.asin(math.sqrt(a))
'''
QUESTION = "Explain how the great-circle distance between two coordinates is computed in this project."


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "geo.py").write_text(GEO, encoding="utf-8")
    return root


def indexed_gateway(gateway, upstream, repo: Path, embedder: Embedder, **options):
    served = gateway(upstream, **options)
    index_repository(repo, "demo", served.config, embedder, progress_stream=io.StringIO(), tty=False)
    return served


def system_messages(upstream) -> list[str]:
    return [m["content"] for m in upstream.stats()["last_body"]["messages"] if m["role"] == "system"]


def test_request_field_adds_code(gateway, local_upstream, repo, embedder):
    served = indexed_gateway(gateway, local_upstream, repo, embedder)
    raw = served.client().chat.completions.with_raw_response.create(
        model="coder", messages=[{"role": "user", "content": QUESTION}], extra_body={"retrieval": {"repo": "demo", "k": 1}}
    )
    added = system_messages(local_upstream)
    assert raw.headers["x-retrieved-chunks"] == "1"
    assert len(added) == 1
    assert "src/geo.py:" in added[0]
    assert "def haversine_distance_km" in added[0]
    assert "retrieval" not in local_upstream.stats()["last_body"]


def test_config_adds_code_for_explain_only(gateway, local_upstream, repo, embedder):
    served = indexed_gateway(gateway, local_upstream, repo, embedder, retrieval=RetrievalConfig(repo="demo", k=2))
    client = served.client()
    explain = client.chat.completions.with_raw_response.create(model="coder", messages=[{"role": "user", "content": QUESTION}])
    explain_system = system_messages(local_upstream)
    docstring = client.chat.completions.with_raw_response.create(
        model="coder", messages=[{"role": "user", "content": "Write a docstring for `def area(r): return 3.14 * r * r`"}]
    )
    assert explain.headers["x-task"] == "explain"
    assert "x-retrieved-chunks" in explain.headers
    assert any("haversine_distance_km" in text for text in explain_system)
    assert docstring.headers["x-task"] == "docstring"
    assert "x-retrieved-chunks" not in docstring.headers
    assert system_messages(local_upstream) == []


def test_unknown_repo_in_field_is_404(gateway, local_upstream, repo, embedder):
    served = indexed_gateway(gateway, local_upstream, repo, embedder)
    response = served.post(
        "/v1/chat/completions",
        json={"model": "coder", "messages": [{"role": "user", "content": QUESTION}], "retrieval": {"repo": "missing"}},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "repo_not_found"
    assert local_upstream.requests == 0


def test_unknown_default_repo_still_answers(gateway, local_upstream, embedder):
    served = gateway(local_upstream, retrieval=RetrievalConfig(repo="missing"))
    raw = served.client().chat.completions.with_raw_response.create(model="coder", messages=[{"role": "user", "content": QUESTION}])
    assert raw.http_response.status_code == 200
    assert "x-retrieved-chunks" not in raw.headers


def test_invalid_field_is_400(gateway, local_upstream):
    served = gateway(local_upstream)
    response = served.post(
        "/v1/chat/completions",
        json={"model": "coder", "messages": [{"role": "user", "content": QUESTION}], "retrieval": "demo"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "retrieval"
