"""Indexing and search cost: index the httpx source, re-run it unchanged, and search 100k chunks.

    python bench/index_bench.py [--threads 1] [--points 100000] [--queries 50] [--optimize]

1. Index the installed httpx package into a fresh data directory: wall time, chunks per second,
   the share of the time spent inside the embedding model, and peak RSS of this process.
2. Run the same index again with no file changed.
3. Fill a Qdrant Edge shard with ``--points`` synthetic chunks: random unit vectors, random BM25
   terms over a 20k-word vocabulary and a 600-character payload text. Then time ``--queries``
   dense, lexical and fused searches through the indexer's store, and the shard's open and close,
   which each CLI search pays. ``--optimize`` runs the shard's optimizer (segment merge and HNSW
   build) first and times it.

Peak RSS is sampled every 50 ms with psutil, so it can miss short spikes; it includes the model.
"""

from __future__ import annotations

import argparse
import io
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIMENSION = 384
VOCABULARY = 20_000
TERMS_PER_CHUNK = 40
UPSERT_BATCH = 1000


class PeakRss:
    """Samples this process's RSS in a background thread; ``peak`` is in MiB."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss / 2**20)
            self._stop.wait(self._interval_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def bench_indexing(data_dir: str, threads: int) -> None:
    import httpx

    from cache.embedder import Embedder
    from gateway.config import Config
    from indexer.run import index_repository

    config = Config(data_dir=data_dir)
    repo = Path(httpx.__file__).parent
    embedder = Embedder(threads=threads)
    started = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - started
    rss_loaded = psutil.Process().memory_info().rss / 2**20

    with PeakRss() as rss:
        first = index_repository(repo, "httpx", config, embedder, progress_stream=io.StringIO(), tty=False)
    second = index_repository(repo, "httpx", config, embedder, progress_stream=io.StringIO(), tty=False)
    embedder.close()

    print(f"httpx {httpx.__version__}: {first.files_seen} files, {first.chunks_total} chunks; model load {load_s:.1f} s (not counted below)\n")
    print("| run | wall (s) | chunks embedded | chunks/s | time in model | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| first | {first.seconds:.1f} | {first.chunks_embedded} | {first.chunks_embedded / first.seconds:.1f} | "
        f"{first.embedding_seconds / first.seconds * 100:.0f}% | {rss.peak:.0f} (after model load: {rss_loaded:.0f}) |"
    )
    print(f"| unchanged | {second.seconds:.2f} | {second.chunks_embedded} | - | - | - |")


def synthetic_points(start: int, count: int) -> list:
    """Return points ``start`` to ``start + count - 1``, the same for the same numbers."""
    from indexer.store import IndexPoint

    rng = np.random.default_rng(start)
    vectors = rng.standard_normal((count, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    text = "x = 1\n" * 100
    points = []
    for i in range(start, start + count):
        terms = rng.choice(VOCABULARY, size=TERMS_PER_CHUNK, replace=False)
        weights = rng.uniform(0.5, 2.0, size=TERMS_PER_CHUNK)
        payload = {
            "path": f"pkg/module_{i // 50}.py", "language": "python", "symbol": f"function_{i}",
            "start_line": 1 + (i % 50) * 20, "end_line": 20 + (i % 50) * 20, "hash": f"{i:064x}",
            "embedding_hash": f"{i:064x}", "text": text,
        }
        vector = vectors[i - start].tolist()
        points.append(IndexPoint(f"00000000-0000-4000-8000-{i:012x}", vector, (terms.tolist(), weights.tolist()), payload))
    return points


def bench_search(data_dir: str, count: int, queries: int, optimize: bool) -> None:
    from indexer.store import EdgeIndexStore

    path = Path(data_dir) / "synthetic-shard"
    store = EdgeIndexStore(path, DIMENSION)
    started = time.perf_counter()
    for offset in range(0, count, UPSERT_BATCH):
        store.upsert(synthetic_points(offset, min(UPSERT_BATCH, count - offset)))
    fill_s = time.perf_counter() - started
    optimize_s = None
    if optimize:
        started = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - started
    store.close()

    started = time.perf_counter()
    store = EdgeIndexStore(path, DIMENSION, create=False)
    open_s = time.perf_counter() - started
    rng = np.random.default_rng(7)
    random.seed(7)
    timings: dict[str, list[float]] = {"dense": [], "lexical": [], "fused": []}
    for _ in range(queries):
        dense = rng.standard_normal(DIMENSION).astype(np.float32)
        dense = (dense / np.linalg.norm(dense)).tolist()
        terms = random.sample(range(VOCABULARY), 4)
        lexical = (terms, [1.0] * len(terms))
        for mode, (d, s) in {"dense": (dense, None), "lexical": (None, lexical), "fused": (dense, lexical)}.items():
            started = time.perf_counter()
            store.query(d, s, 10, 50)
            timings[mode].append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    points = store.count()
    store.close()
    close_s = time.perf_counter() - started

    optimized = f"optimized in {optimize_s:.1f} s" if optimize_s is not None else "not optimized (plain segments)"
    print(f"\nQdrant Edge, {points} synthetic chunks: filled in {fill_s:.1f} s, {optimized}; open {open_s * 1000:.0f} ms, close {close_s * 1000:.0f} ms\n")
    print("| mode | p50 (ms) | p95 (ms) | mean (ms) |")
    print("|---|---|---|---|")
    for mode, values in timings.items():
        print(f"| {mode} | {statistics.median(values):.1f} | {percentile(values, 0.95):.1f} | {statistics.mean(values):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for embedding (default 1)")
    parser.add_argument("--points", type=int, default=100_000, help="synthetic chunks in the search benchmark (default 100000)")
    parser.add_argument("--queries", type=int, default=50, help="searches per mode (default 50)")
    parser.add_argument("--optimize", action="store_true", help="run the shard optimizer before searching, and time it")
    parser.add_argument("--skip-indexing", action="store_true", help="run only the search benchmark")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    print(f"CPU: {psutil.cpu_count()} logical cores, torch threads {args.threads}\n")
    with tempfile.TemporaryDirectory(prefix="index-bench-") as data_dir:
        if not args.skip_indexing:
            bench_indexing(data_dir, args.threads)
        with PeakRss() as rss:
            bench_search(data_dir, args.points, args.queries, args.optimize)
        print(f"\npeak RSS during the search benchmark: {rss.peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
