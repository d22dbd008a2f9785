"""Repository indexing and code search with the real embedding model and real Qdrant Edge shards.

Each test builds a small repository under tmp_path and indexes it into its own data directory.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
import qdrant_edge as edge

from cache.embedder import Embedder
from gateway.config import Config
from indexer.chunking import MAX_CHUNK_CHARS, chunk_file
from indexer.layout import index_dir, manifest_path, shard_path
from indexer.manifest import Manifest
from indexer.readers import StorePool
from indexer.run import IndexConflict, index_repository
from indexer.search import resolve_mode, search_code
from indexer.store import IndexBusy, IndexPoint, ServerIndexStore, point_id
from indexer.walk import SkipFile, decode_source, walk_repository

FAKE_SECRET = "sk-live-fake-0000-do-not-index-7f3a9c"

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
import unicodedata


def slugify(title):
    """Turn an article title into a lowercase URL slug with hyphens between words."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-")
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


def write(root: Path, relative: str, content: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small repository with code, docs, ignored folders, a secret, a binary and a Latin-1 file."""
    root = tmp_path / "repo"
    write(root, "src/geo.py", GEO)
    write(root, "src/text/slug.py", SLUG)
    write(root, "docs/guide.md", "# Guide\n\nHow to compute distances between cities.\n")
    write(root, ".env", f"OPENAI_API_KEY={FAKE_SECRET}\n")
    write(root, "config/.env.production", f"TOKEN={FAKE_SECRET}\n")
    write(root, "node_modules/left-pad/index.js", "module.exports = function leftPad() {}\n")
    write(root, "build/out.py", "def built(): pass\n")
    write(root, "logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(root, "src/blob.py", b"header\x00\x01\x02binary payload")
    write(root, "src/legacy.py", "caf\xe9 = 'latin-1'\n".encode("latin-1"))
    write(root, ".gitignore", "*.log\nsecret_notes/\n")
    write(root, "debug.log", "log line\n")
    write(root, "secret_notes/plan.py", "def plan(): pass\n")
    return root


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config(data_dir=str(tmp_path / "data"))


def indexed_payloads(config: Config, name: str) -> list[dict[str, Any]]:
    """Return the payloads of every point in the Qdrant Edge shard of ``name``."""
    shard = edge.EdgeShard.load(str(shard_path(config, name)))
    try:
        payloads: list[dict[str, Any]] = []
        offset = None
        while True:
            records, offset = shard.scroll(edge.ScrollRequest(offset=offset, limit=256, with_payload=True))
            payloads.extend(dict(r.payload or {}) for r in records)
            if offset is None:
                return payloads
    finally:
        shard.close()


def index(root: Path, config: Config, embedder: Embedder, **options: Any):
    return index_repository(root, "repo", config, embedder, progress_stream=io.StringIO(), tty=False, **options)


# -- walking and ignore rules ----------------------------------------------------------------


def test_walk_default_rules(repo: Path) -> None:
    write(repo, ".venv/lib/site.py", "x = 1\n")
    write(repo, "tools/env/pyvenv.cfg", "home = /usr/bin\n")
    write(repo, "tools/env/lib/mod.py", "x = 1\n")
    write(repo, "poetry.lock", "[[package]]\n")
    write(repo, "package-lock.json", "{}\n")
    write(repo, "static/app.min.js", "var a=1;\n")
    write(repo, "keys/server.pem", "-----BEGIN PRIVATE KEY-----\n")
    write(repo, "home/.ssh/id_ed25519", "key\n")
    write(repo, "dist.tar.gz", b"\x1f\x8b")

    result = walk_repository(repo)
    paths = {c.path for c in result.files}

    assert paths == {".gitignore", "docs/guide.md", "src/blob.py", "src/geo.py", "src/legacy.py", "src/text/slug.py"}
    assert result.skipped_files["secret"] == 3  # .env, config/.env.production, keys/server.pem
    assert result.skipped_dirs["secret"] == 1  # home/.ssh
    assert result.skipped_files["lock file"] == 2
    assert result.skipped_files["binary"] == 2  # logo.png, dist.tar.gz
    assert result.skipped_files["generated"] == 1
    assert result.skipped_files["ignored"] == 1  # debug.log
    assert result.skipped_dirs["ignored"] == 1  # secret_notes/
    assert result.skipped_dirs["default"] == 4  # node_modules, build, .venv, tools/env (pyvenv.cfg)


def test_walk_nested_gitignore_and_negation(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    write(root, ".gitignore", "*.gen.py\n/top_only.py\n")
    write(root, "a.gen.py", "x = 1\n")
    write(root, "top_only.py", "x = 1\n")
    write(root, "pkg/top_only.py", "x = 1\n")
    write(root, "pkg/.gitignore", "!keep.gen.py\nlocal/\n")
    write(root, "pkg/keep.gen.py", "x = 1\n")
    write(root, "pkg/drop.gen.py", "x = 1\n")
    write(root, "pkg/local/x.py", "x = 1\n")
    write(root, "other/local/y.py", "x = 1\n")
    # The project ignore file overrides .gitignore and may re-include a default-ignored folder.
    write(root, ".copilot-bridge-ignore", "other/\n!vendor/\n")
    write(root, "vendor/lib.py", "x = 1\n")
    # A negation never re-includes a secret.
    write(root, "deploy/.gitignore", "!.env\n")
    write(root, "deploy/.env", f"KEY={FAKE_SECRET}\n")

    paths = {c.path for c in walk_repository(root).files}

    assert "pkg/keep.gen.py" in paths
    assert "pkg/top_only.py" in paths
    assert "vendor/lib.py" in paths
    assert "a.gen.py" not in paths
    assert "top_only.py" not in paths
    assert "pkg/drop.gen.py" not in paths
    assert "pkg/local/x.py" not in paths
    assert "other/local/y.py" not in paths
    assert "deploy/.env" not in paths


def test_decode_source_content_checks() -> None:
    assert decode_source("def f():\n    return 1\n".encode()) == "def f():\n    return 1\n"
    assert decode_source("\ufeffx = 1\n".encode("utf-8")) == "x = 1\n"
    cases = {
        b"abc\x00def": "binary",
        "caf\xe9\n".encode("latin-1"): "undecodable",
        ("var a=" + "1," * 3000 + "\n").encode(): "generated",
        b"// Code generated by protoc-gen-go. DO NOT EDIT.\npackage x\n": "generated",
    }
    for data, reason in cases.items():
        with pytest.raises(SkipFile) as raised:
            decode_source(data)
        assert raised.value.reason == reason, data[:40]


# -- chunking -------------------------------------------------------------------------------


def test_chunks_follow_definitions() -> None:
    methods = "\n".join(
        f"    def method_{i}(self, value):\n        \"\"\"Method number {i}.\"\"\"\n" + "".join(
            f"        value = value * {j} + {i}  # step {j} of the computation in method {i}\n" for j in range(8)
        ) + "        return value\n"
        for i in range(4)
    )
    source = f"import os\n\n\nclass Calculator:\n    \"\"\"Does arithmetic.\"\"\"\n\n{methods}\n\ndef helper():\n    return 1\n"

    chunks = chunk_file("pkg/calc.py", source)

    assert all(len(c.text) <= MAX_CHUNK_CHARS for c in chunks)
    symbols = [c.symbol for c in chunks]
    for i in range(4):
        assert any(f"Calculator.method_{i}" in s for s in symbols), symbols
    # The class header travels with its first method, and the small import merges into them.
    assert chunks[0].text.startswith("import os")
    assert "class Calculator:" in chunks[0].text
    assert "def method_0" in chunks[0].text
    lines = source.splitlines()
    for chunk in chunks:
        assert chunk.text.splitlines() == lines[chunk.start_line - 1 : chunk.end_line]
        assert chunk.language == "python"
        assert len(chunk.hash) == 64
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    assert {i + 1 for i, line in enumerate(lines) if line.strip()} <= covered


def test_small_functions_merged() -> None:
    source = "".join(f"def tiny_{i}():\n    return {i}\n\n\n" for i in range(5))

    chunks = chunk_file("tiny.py", source)

    assert len(chunks) == 1
    assert chunks[0].symbol.startswith("tiny_0, tiny_1, tiny_2")


def test_chunks_of_other_languages() -> None:
    javascript = "export function parseQuery(text) {\n  return text.split('&');\n}\n\nconst joinPath = (a, b) => {\n  return a + '/' + b;\n};\n"
    go = "package geo\n\ntype Point struct {\n\tX float64\n}\n\nfunc (p *Point) Norm() float64 {\n\treturn p.X\n}\n"
    markdown = "# Title\n\nIntro.\n\n## Install\n\n```\n# not a heading\n```\n" + "Text. " * 250 + "\n\n## Usage\n\nRun it.\n"

    js_symbols = chunk_file("web/query.js", javascript)[0].symbol
    go_symbols = chunk_file("geo/point.go", go)[0].symbol
    md_chunks = chunk_file("README.md", markdown)
    text_chunks = chunk_file("notes.txt", "line\n" * 600)

    assert "parseQuery" in js_symbols
    assert "joinPath" in js_symbols
    assert "Point" in go_symbols
    assert "Norm" in go_symbols
    assert [c.symbol for c in md_chunks][0].startswith("Title")
    assert any("Usage" in c.symbol for c in md_chunks)
    assert all(c.language == "markdown" for c in md_chunks)
    assert len(text_chunks) >= 2
    assert text_chunks[0].start_line == 1
    assert text_chunks[-1].end_line == 600


# -- indexing runs --------------------------------------------------------------------------


def test_secret_never_indexed(repo: Path, config: Config, embedder: Embedder) -> None:
    index(repo, config, embedder)

    payloads = indexed_payloads(config, "repo")
    hits = search_code(config, embedder, FAKE_SECRET, repo="repo", k=10, mode="lexical")

    assert payloads
    assert not any(".env" in p["path"] for p in payloads)
    assert not any(FAKE_SECRET in p["text"] for p in payloads)
    assert not any(FAKE_SECRET in hit.text for hit in hits)


def test_first_run_summary(repo: Path, config: Config, embedder: Embedder, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="indexer.run"):
        summary = index(repo, config, embedder)

    assert summary.files_indexed == 4
    assert {p["path"] for p in indexed_payloads(config, "repo")} == {".gitignore", "docs/guide.md", "src/geo.py", "src/text/slug.py"}
    assert summary.skipped_files["binary"] == 2  # logo.png by name, src/blob.py by content
    assert summary.skipped_files["undecodable"] == 1
    assert summary.skipped_files["secret"] == 2
    assert any("src/legacy.py" in r.getMessage() for r in caplog.records)
    assert summary.chunks_total == summary.chunks_written == summary.chunks_embedded
    assert summary.embedding_seconds > 0
    assert any(line.startswith("  skipped files: ") for line in summary.lines())


def test_incremental_add_change_delete(repo: Path, config: Config, embedder: Embedder) -> None:
    first = index(repo, config, embedder)

    unchanged = index(repo, config, embedder)
    assert unchanged.files_indexed == 0
    assert unchanged.chunks_embedded == 0
    assert unchanged.files_unchanged == first.files_indexed

    # Touching a file without changing it reads it once but never embeds it.
    os.utime(repo / "src/geo.py", ns=(1, 1))
    touched = index(repo, config, embedder)
    assert touched.files_indexed == 0
    assert touched.chunks_embedded == 0

    write(repo, "src/retry.py", RETRY)
    added = index(repo, config, embedder)
    assert added.files_indexed == 1
    assert added.chunks_embedded == 1
    assert added.chunks_total == first.chunks_total + 1

    write(repo, "src/text/slug.py", SLUG.replace("lowercase URL slug", "lowercase web address slug"))
    changed = index(repo, config, embedder)
    assert changed.files_indexed == 1
    assert changed.chunks_embedded == 1
    assert changed.chunks_deleted == 1
    slug_texts = [p["text"] for p in indexed_payloads(config, "repo") if p["path"] == "src/text/slug.py"]
    assert len(slug_texts) == 1
    assert "web address slug" in slug_texts[0]

    (repo / "src/geo.py").unlink()
    deleted = index(repo, config, embedder)
    assert deleted.files_deleted == 1
    assert deleted.chunks_deleted == 1
    assert deleted.chunks_embedded == 0
    assert not any(p["path"] == "src/geo.py" for p in indexed_payloads(config, "repo"))
    assert "src/geo.py" not in Manifest(manifest_path(config, "repo")).files()


def test_store_optimized_when_due(repo: Path, config: Config, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    import indexer.run

    monkeypatch.setattr(indexer.run, "OPTIMIZE_MIN_CHANGED", 1)
    first = index(repo, config, embedder)
    unchanged = index(repo, config, embedder)
    write(repo, "src/retry.py", RETRY)
    small_change = index(repo, config, embedder)

    assert first.optimize_seconds is not None
    assert unchanged.optimize_seconds is None
    # One new chunk in five reaches the 20% share.
    assert small_change.optimize_seconds is not None
    assert "store optimized" in small_change.lines()[0]


def test_edited_file_reuses_vectors(tmp_path: Path, config: Config, embedder: Embedder) -> None:
    root = tmp_path / "repo"
    write(root, "lib.py", GEO + "\n\n" + SLUG + "\n\n" + RETRY)
    first = index(root, config, embedder)
    assert first.chunks_written >= 2

    write(root, "lib.py", GEO + "\n\n" + SLUG + "\n\n" + RETRY.replace("twice as long", "three times as long").replace("2**attempt", "3**attempt"))
    edited = index(root, config, embedder)

    assert edited.files_indexed == 1
    assert edited.chunks_written == first.chunks_written
    assert 1 <= edited.chunks_embedded < edited.chunks_written


def test_interrupted_run_resumes(tmp_path: Path, config: Config, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    for i in range(6):
        write(root, f"mod_{i}.py", f"def function_{i}(value):\n    \"\"\"Return value plus {i}.\"\"\"\n    return value + {i}\n")
    calls = {"count": 0}
    real_encode = embedder.encode

    def encode_then_stop(texts: list[str], batch_size: int = 32):
        calls["count"] += 1
        if calls["count"] == 3:
            raise KeyboardInterrupt
        return real_encode(texts, batch_size=batch_size)

    monkeypatch.setattr(embedder, "encode", encode_then_stop)
    with pytest.raises(KeyboardInterrupt):
        index(root, config, embedder, batch_chunks=2)
    monkeypatch.undo()

    manifest = Manifest(manifest_path(config, "repo"))
    assert manifest.get("run_state") == "running"
    assert len(manifest.files()) == 4
    manifest.close()

    resumed = index(root, config, embedder, batch_chunks=2)

    assert resumed.resumed
    assert resumed.files_indexed == 2
    assert resumed.files_unchanged == 4
    assert resumed.chunks_total == 6
    assert sorted(p["path"] for p in indexed_payloads(config, "repo")) == [f"mod_{i}.py" for i in range(6)]


def test_model_change_rebuilds_index(repo: Path, config: Config, embedder: Embedder) -> None:
    from indexer.store import EdgeIndexStore

    # An index left by another embedding model with 8-dimensional vectors.
    EdgeIndexStore(shard_path(config, "repo"), 8).close()
    manifest = Manifest(manifest_path(config, "repo"))
    manifest.set("model", "old-model")
    manifest.set("dimension", "8")
    manifest.close()

    summary = index(repo, config, embedder)

    assert summary.rebuilt is not None
    assert "model: old-model" in summary.rebuilt
    assert "dimension: 8" in summary.rebuilt
    assert summary.chunks_total == summary.chunks_written
    assert search_code(config, embedder, "slugify", repo="repo", k=1)[0].path == "src/text/slug.py"


def test_index_name_taken_by_other_folder(tmp_path: Path, repo: Path, config: Config, embedder: Embedder) -> None:
    other = tmp_path / "other"
    write(other, "retry.py", RETRY)
    index(repo, config, embedder)

    with pytest.raises(IndexConflict):
        index(other, config, embedder)
    rebuilt = index(other, config, embedder, rebuild=True)

    assert rebuilt.rebuilt == "requested"
    assert {p["path"] for p in indexed_payloads(config, "repo")} == {"retry.py"}


# -- search -------------------------------------------------------------------------------------


def test_search_finds_planted_function(repo: Path, config: Config, embedder: Embedder) -> None:
    write(repo, "src/retry.py", RETRY)
    index(repo, config, embedder)

    by_words = search_code(config, embedder, "great circle distance between two coordinates", repo="repo", k=3)
    by_name = search_code(config, embedder, "retry_with_backoff", k=3)

    assert by_words[0].path == "src/geo.py"
    assert by_words[0].symbol == "haversine_distance_km"
    assert by_words[0].start_line == 1
    assert by_words[0].end_line == 11
    assert by_name[0].path == "src/retry.py"
    assert by_name[0].repo == "repo"
    for mode in ("dense", "lexical", "fused"):
        assert search_code(config, embedder, "slug from an article title", repo="repo", k=3, mode=mode)[0].path == "src/text/slug.py", mode


def test_auto_mode_picks_fusion_for_identifiers() -> None:
    assert resolve_mode("retry_with_backoff", "auto") == "fused"
    assert resolve_mode("HttpClient send", "auto") == "fused"
    assert resolve_mode("Client.send()", "auto") == "fused"
    assert resolve_mode("where are redirects followed", "auto") == "dense"
    assert resolve_mode("where are redirects followed", "lexical") == "lexical"


def test_pool_yields_to_indexing_run(repo: Path, config: Config, embedder: Embedder) -> None:
    index(repo, config, embedder)
    pool = StorePool(config, idle_close_s=60)
    try:
        assert search_code(config, embedder, "slugify", repo="repo", k=1, pool=pool)[0].path == "src/text/slug.py"
        # The pool keeps the shard open now, so a run in another process would wait for it. The
        # run's lock makes the pool close the shard and report the index as busy.
        lock = (index_dir(config, "repo") / "run.lock").open("a")
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(IndexBusy):
            search_code(config, embedder, "slugify", repo="repo", k=1, pool=pool)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        write(repo, "src/retry.py", RETRY)
        assert index(repo, config, embedder).files_indexed == 1
        assert search_code(config, embedder, "retry_with_backoff", repo="repo", k=1, pool=pool)[0].path == "src/retry.py"
    finally:
        pool.close()


def test_vectors_for_spans_filter_batches(tmp_path: Path) -> None:
    from indexer.store import FILTER_BATCH, EdgeIndexStore

    store = EdgeIndexStore(tmp_path / "shard", 4)
    count = FILTER_BATCH + 100
    store.upsert([
        IndexPoint(point_id(f"f{i}.py", 0, str(i)), [1.0, float(i), 0.0, 0.0], ([1], [1.0]), {"path": f"f{i}.py", "embedding_hash": f"h{i}"})
        for i in range(count)
    ])

    found = store.vectors_for([f"h{i}" for i in range(count)] + ["missing"])
    store.close()

    assert len(found) == count
    # Cosine collections store unit vectors.
    last = [1.0, float(count - 1), 0.0, 0.0]
    norm = sum(x * x for x in last) ** 0.5
    assert found[f"h{count - 1}"] == pytest.approx([x / norm for x in last], abs=1e-6)


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")
def test_server_store_with_qdrant_client(embedder: Embedder) -> None:
    from qdrant_client import QdrantClient

    from indexer.lexical import LexicalEncoder

    lexical = LexicalEncoder()
    texts = {"geo.py": GEO, "slug.py": SLUG, "retry.py": RETRY}
    vectors = embedder.encode(list(texts.values())).tolist()
    store = ServerIndexStore("", "test_index", embedder.dimension or 0, client=QdrantClient(":memory:"))
    points = [
        IndexPoint(point_id(path, 0, path), vector, lexical.document(text), {"path": path, "embedding_hash": path, "text": text})
        for (path, text), vector in zip(texts.items(), vectors)
    ]
    store.upsert(points)
    query = embedder.encode(["exponential backoff when a connection fails"])[0].tolist()

    fused = store.query(query, lexical.query("retry backoff"), 2, 10)
    reused = store.vectors_for(["slug.py", "missing"])
    store.delete_paths(["retry.py"])

    assert fused[0].payload["path"] == "retry.py"
    assert list(reused) == ["slug.py"]
    assert reused["slug.py"] == pytest.approx(vectors[1], abs=1e-6)
    assert store.count() == 2
    store.close()


def test_cli_index_and_search(repo: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import cache.embedder as embedder_module
    from gateway.cli import main

    class LoadedEmbedder:
        """The session's loaded model, so that the CLI does not load a second one."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __getattr__(self, name: str) -> Any:
            return getattr(embedder, name)

        def load(self) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(embedder_module, "Embedder", LoadedEmbedder)
    monkeypatch.delenv("COPILOT_BRIDGE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    data_dir = str(tmp_path / "cli-data")

    assert main(["index", str(repo), "--name", "demo", "--data-dir", data_dir, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert main(["search", "great circle distance", "--repo", "demo", "-k", "2", "--data-dir", data_dir, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert main(["search", "anything", "--repo", "missing", "--data-dir", data_dir]) == 1
    error = capsys.readouterr().err

    assert summary["repo"] == "demo"
    assert summary["skipped_files"]["secret"] == 2
    assert results[0]["path"] == "src/geo.py"
    assert "'missing' is not indexed" in error
