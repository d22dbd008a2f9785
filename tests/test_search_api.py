"""``POST /v1/search`` and ``POST /v1/embeddings`` over real HTTP against a served gateway."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

from cache.embedder import Embedder
from indexer.layout import manifest_path
from indexer.manifest import Manifest
from indexer.run import index_repository
from tests.support.harness import Gateway

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

SLUG = '''import re


def slugify(title):
    """Turn an article title into a lowercase URL slug with hyphens between words."""
    text = re.sub(r"[^a-zA-Z0-9]+", "-", title).strip("-")
    return text.lower()
'''

RETRY = '''import time


def retry_with_backoff(operation, attempts=5, base_delay_s=0.5):
    """Call operation until it succeeds, sleeping twice as long after each failure."""
    for attempt in range(attempts):
        try:
            return operation()
        except ConnectionError:
            if attempt == attempts - 1:
                raise
            time.sleep(base_delay_s * 2**attempt)
'''


def write(root: Path, relative: str, content: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")


def index(root: Path, served: Gateway, embedder: Embedder) -> None:
    index_repository(root, "demo", served.config, embedder, progress_stream=io.StringIO(), tty=False)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, "src/geo.py", GEO)
    write(root, "src/slug.py", SLUG)
    write(root, ".env", "API_KEY=sk-fake-never-indexed\n")
    return root


@pytest.fixture
def served(gateway, dead_url: str, repo: Path, embedder: Embedder) -> Gateway:
    """A gateway whose data directory contains the index ``demo`` of ``repo``."""
    started = gateway(dead_url)
    index(repo, started, embedder)
    return started


def assert_error(response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


# -- /v1/search ---------------------------------------------------------------------------------


def test_search_returns_planted_function(served: Gateway) -> None:
    response = served.post("/v1/search", json={"query": "great circle distance between two coordinates", "repo": "demo", "k": 2})

    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert body["mode"] == "dense"
    assert len(results) == 2
    top = results[0]
    assert set(top) == {"repo", "path", "start_line", "end_line", "symbol", "language", "score", "text"}
    assert top["path"] == "src/geo.py"
    assert top["symbol"] == "haversine_distance_km"
    assert (top["start_line"], top["end_line"]) == (1, 11)
    assert top["language"] == "python"
    assert "def haversine_distance_km" in top["text"]
    assert results[0]["score"] >= results[1]["score"]


def test_search_identifier_across_repos(served: Gateway) -> None:
    response = served.post("/v1/search", json={"query": "slugify"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "fused"
    assert body["results"][0]["path"] == "src/slug.py"
    assert body["results"][0]["repo"] == "demo"
    assert not any(".env" in hit["path"] for hit in body["results"])


def test_search_errors(served: Gateway) -> None:
    assert_error(served.post("/v1/search", json={"repo": "demo"}), 400, param="query")
    assert_error(served.post("/v1/search", json={"query": "   "}), 400, param="query")
    assert_error(served.post("/v1/search", json={"query": "x", "repo": "missing"}), 404, code="repo_not_found", param="repo")
    assert_error(served.post("/v1/search", json={"query": "x", "repo": "../etc"}), 400, param="repo")
    assert_error(served.post("/v1/search", json={"query": "x", "k": 0}), 400, param="k")
    assert_error(served.post("/v1/search", json={"query": "x", "k": "5"}), 400, param="k")
    assert_error(served.post("/v1/search", json={"query": "x", "mode": "magic"}), 400, param="mode")
    assert_error(served.post("/v1/search", content=b"{not json", headers={"content-type": "application/json"}), 400)


def test_search_without_index(gateway, dead_url: str) -> None:
    served = gateway(dead_url)

    error = assert_error(served.post("/v1/search", json={"query": "anything"}), 404, code="repo_not_found")

    assert "copilot-bridge index" in error["message"]


def test_search_index_of_other_model(served: Gateway) -> None:
    manifest = Manifest(manifest_path(served.config, "demo"))
    manifest.set("model", "old-model")
    manifest.close()

    error = assert_error(served.post("/v1/search", json={"query": "x", "repo": "demo"}), 409, code="index_mismatch")

    assert "old-model" in error["message"]


def test_index_update_while_serving(served: Gateway, repo: Path, embedder: Embedder) -> None:
    first = served.post("/v1/search", json={"query": "slugify", "repo": "demo"})
    assert first.status_code == 200, first.text

    # The gateway keeps the shard open after the search; the run waits until it is released.
    write(repo, "src/retry.py", RETRY)
    index(repo, served, embedder)
    second = served.post("/v1/search", json={"query": "retry_with_backoff", "repo": "demo", "k": 1})

    assert second.status_code == 200, second.text
    assert second.json()["results"][0]["path"] == "src/retry.py"


# -- /v1/embeddings -----------------------------------------------------------------------------


def test_embeddings_match_embedder(served: Gateway, embedder: Embedder) -> None:
    texts = ["def add(a, b): return a + b", "how do I sort a list in place"]

    # The OpenAI SDK requests base64 and decodes it.
    answer = served.client().embeddings.create(model="text-embedding-3-small", input=texts)

    expected = embedder.encode(texts)
    assert [item.index for item in answer.data] == [0, 1]
    for item, vector in zip(answer.data, expected):
        assert len(item.embedding) == embedder.dimension
        assert np.allclose(item.embedding, vector, atol=1e-5)
    tokens = sum(embedder.count_tokens_batch(texts))
    assert answer.usage.prompt_tokens == tokens
    assert answer.usage.total_tokens == tokens
    assert answer.model == embedder.model_name


def test_embeddings_float_and_base64(served: Gateway, embedder: Embedder) -> None:
    text = "parse a URL into scheme, host and path"

    as_floats = served.post("/v1/embeddings", json={"model": "m", "input": text})
    as_base64 = served.post("/v1/embeddings", json={"model": "m", "input": [text], "encoding_format": "base64"})

    assert as_floats.status_code == 200, as_floats.text
    assert as_base64.status_code == 200, as_base64.text
    floats = as_floats.json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(as_base64.json()["data"][0]["embedding"]), dtype="<f4")
    assert as_floats.json()["object"] == "list"
    assert as_floats.json()["data"][0]["object"] == "embedding"
    assert np.allclose(floats, embedder.encode([text])[0], atol=1e-5)
    assert np.allclose(decoded, floats, atol=1e-7)


def test_embeddings_accounting(served: Gateway) -> None:
    price = served.config.pricing.embedding_cloud_per_1k
    before = served.metric("copilot_bridge_tokens_saved_total", route="local", task="embeddings")

    response = served.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": ["alpha beta", "gamma"]})

    assert response.status_code == 200, response.text
    tokens = response.json()["usage"]["prompt_tokens"]
    assert tokens > 0
    after = served.metric("copilot_bridge_tokens_saved_total", route="local", task="embeddings")
    assert after - before == tokens
    line = served.ledger_line(response.headers["x-request-id"])
    assert line["endpoint"] == "embeddings"
    assert line["route"] == "local"
    assert line["task"] == "embeddings"
    assert line["model"] == "text-embedding-3-small"
    assert line["status"] == 200
    assert line["tokens_in"] == tokens
    assert line["tokens_saved"] == tokens
    assert line["cost_saved_usd"] == pytest.approx(tokens * price / 1000, abs=1e-8)


def test_embeddings_errors(served: Gateway, embedder: Embedder) -> None:
    assert_error(served.post("/v1/embeddings", json={"model": "m"}), 400, param="input")
    assert_error(served.post("/v1/embeddings", json={"input": "x"}), 400, param="model")
    assert_error(served.post("/v1/embeddings", json={"model": "m", "input": []}), 400, param="input")
    assert_error(served.post("/v1/embeddings", json={"model": "m", "input": ["ok", ""]}), 400, param="input")
    assert_error(served.post("/v1/embeddings", json={"model": "m", "input": [1, 2, 3]}), 400, param="input")
    assert_error(served.post("/v1/embeddings", json={"model": "m", "input": "x", "encoding_format": "int8"}), 400, param="encoding_format")
    assert_error(served.post("/v1/embeddings", json={"model": "m", "input": "x", "dimensions": 64}), 400, param="dimensions")
    ok = served.post("/v1/embeddings", json={"model": "m", "input": "x", "dimensions": embedder.dimension})
    assert ok.status_code == 200, ok.text
    failed = served.post("/v1/embeddings", json={"input": "x"})
    line = served.ledger_line(failed.headers["x-request-id"])
    assert line["status"] == 400
    assert line["error"]


def test_embeddings_without_semantic_cache(gateway, dead_url: str, embedder: Embedder) -> None:
    # Without the semantic cache the gateway loads a model of its own on the first request.
    served = gateway(dead_url, cache={"semantic_enabled": False})

    response = served.post("/v1/embeddings", json={"model": "m", "input": "hello world"}, timeout=120)

    assert response.status_code == 200, response.text
    assert np.allclose(response.json()["data"][0]["embedding"], embedder.encode(["hello world"])[0], atol=1e-5)
