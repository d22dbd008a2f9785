"""Measure embedding throughput by forward-pass batch size, on real code chunks.

    python bench/batch_size_bench.py [--chunks 96] [--threads 1]

Chunks come from the installed httpx package, cut by the indexer's own chunker, so their lengths
are those an indexing run embeds. Each batch size encodes the same chunks; the table prints
chunks per second, and the fastest size is the one to use on this device.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BATCH_SIZES = (1, 8, 16, 32, 64, 128)


def code_chunks(limit: int) -> list[str]:
    import httpx

    from indexer.chunking import chunk_file

    texts: list[str] = []
    for path in sorted(Path(httpx.__file__).parent.rglob("*.py")):
        for chunk in chunk_file(path.name, path.read_text(encoding="utf-8"), "python"):
            texts.append(chunk.embedding_text())
            if len(texts) >= limit:
                return texts
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=96, help="chunks embedded per batch size")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()

    from cache.embedder import Embedder

    embedder = Embedder(threads=args.threads)
    embedder.load()
    texts = code_chunks(args.chunks)
    embedder.encode(texts[:8], batch_size=8)

    print(f"# Embedding throughput by batch size: {len(texts)} httpx chunks, device {embedder.device}, {args.threads} thread(s)\n")
    print("| batch size | seconds | chunks/s |")
    print("|---:|---:|---:|")
    for size in BATCH_SIZES:
        started = time.perf_counter()
        embedder.encode(texts, batch_size=size)
        elapsed = time.perf_counter() - started
        print(f"| {size} | {elapsed:.2f} | {len(texts) / elapsed:.1f} |")


if __name__ == "__main__":
    main()
