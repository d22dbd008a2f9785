"""Retrieval quality of code search on the httpx source: recall@1, recall@5 and MRR@10 per mode.

    python bench/search_eval.py [--data-dir DIR] [--repo-path PATH] [--threads 1] [--show-misses]

Indexes the installed httpx package (incremental when ``--data-dir`` already contains the index),
then runs the queries of two sets in every search mode:

* bench/data/retrieval_httpx.jsonl: questions in words that describe behaviour;
* bench/data/retrieval_httpx_identifiers.jsonl: queries that name identifiers.

A result counts as a hit when its path equals the expected path and its lines overlap the
expected range. The line numbers belong to httpx 0.28.1; the script stops on another version.
Searches reuse one open store, as the gateway does, so the latency excludes opening the shard.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATASETS = {
    "behaviour": ROOT / "bench" / "data" / "retrieval_httpx.jsonl",
    "identifiers": ROOT / "bench" / "data" / "retrieval_httpx_identifiers.jsonl",
}
MODES = ("auto", "dense", "lexical", "fused")
HTTPX_VERSION = "0.28.1"
REPO = "httpx"


def load_queries(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def first_hit_rank(hits: list, expected: dict) -> int | None:
    """Return the 1-based rank of the first result that overlaps the expected lines, or None."""
    for rank, hit in enumerate(hits, start=1):
        if hit.path == expected["path"] and hit.start_line <= expected["end_line"] and hit.end_line >= expected["start_line"]:
            return rank
    return None


def evaluate(config, embedder, pool, queries: list[dict], mode: str) -> dict:
    from indexer.search import search_code

    ranks = []
    latencies = []
    misses = []
    for item in queries:
        started = time.perf_counter()
        hits = search_code(config, embedder, item["query"], repo=REPO, k=10, mode=mode, pool=pool)
        latencies.append(time.perf_counter() - started)
        rank = first_hit_rank(hits, item)
        ranks.append(rank)
        if rank is None or rank > 5:
            misses.append(item["symbol"])
    count = len(queries)
    latencies.sort()
    return {
        "mode": mode,
        "recall@1": sum(1 for r in ranks if r == 1) / count,
        "recall@5": sum(1 for r in ranks if r is not None and r <= 5) / count,
        "mrr@10": sum(1 / r for r in ranks if r is not None) / count,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "not_in_top5": misses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="data directory for the index (default: a temporary folder)")
    parser.add_argument("--repo-path", help="httpx source folder (default: the installed package)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--show-misses", action="store_true", help="list the queries whose expected chunk is not in the top 5")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import httpx
    import torch

    torch.set_num_threads(args.threads)
    if httpx.__version__ != HTTPX_VERSION and not args.repo_path:
        print(f"httpx {httpx.__version__} is installed, but the line numbers of the query sets belong to {HTTPX_VERSION}", file=sys.stderr)
        return 2
    repo_path = Path(args.repo_path) if args.repo_path else Path(httpx.__file__).parent

    from cache.embedder import Embedder
    from gateway.config import Config
    from indexer.readers import StorePool
    from indexer.run import index_repository

    with tempfile.TemporaryDirectory(prefix="search-eval-") as scratch:
        config = Config(data_dir=args.data_dir or scratch)
        embedder = Embedder(threads=args.threads)
        embedder.load()
        summary = index_repository(repo_path, REPO, config, embedder, tty=False)
        print(f"index: {summary.chunks_total} chunks of {summary.files_seen} files, built or updated in {summary.seconds:.1f} s")
        pool = StorePool(config)
        try:
            for set_name, path in DATASETS.items():
                queries = load_queries(path)
                print(f"\n{set_name}: {len(queries)} queries from {path.relative_to(ROOT)}\n")
                print("| mode | recall@1 | recall@5 | MRR@10 | search p50 (ms) |")
                print("|---|---|---|---|---|")
                results = [evaluate(config, embedder, pool, queries, mode) for mode in MODES]
                for result in results:
                    print(
                        f"| {result['mode']} | {result['recall@1']:.3f} | {result['recall@5']:.3f} | "
                        f"{result['mrr@10']:.3f} | {result['p50_ms']:.1f} |"
                    )
                if args.show_misses:
                    for result in results:
                        print(f"{result['mode']}: not in the top 5: {', '.join(result['not_in_top5']) or 'none'}")
        finally:
            pool.close()
            embedder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
