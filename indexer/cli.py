"""The ``copilot-bridge index`` and ``copilot-bridge search`` subcommands."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

logger = logging.getLogger("copilot_bridge.indexer")

PREVIEW_LINES = 6


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``index`` and ``search`` subparsers."""
    index = commands.add_parser(
        "index", parents=[common], help="index a repository for code search",
        description="Walk a repository and store its code chunks for search. Runs are incremental: "
        "unchanged files are skipped, and a stopped run resumes where it stopped.",
    )
    index.add_argument("path", help="folder of the repository")
    index.add_argument("--name", help="index name (default: the folder's name); letters, digits, '.', '_', '-'")
    index.add_argument("--rebuild", action="store_true", help="delete the index's chunks first and embed everything again")
    _add_shared(index)
    index.set_defaults(handler=_index)

    search = commands.add_parser(
        "search", parents=[common], help="search indexed repositories",
        description="Search the chunks of one or every indexed repository.",
    )
    search.add_argument("query", help="what to look for: a question in words or identifiers")
    search.add_argument("--repo", help="index name to search (default: every indexed repository)")
    search.add_argument("-k", type=int, default=10, help="number of results, 1 to 100 (default 10)")
    search.add_argument(
        "--mode", choices=("auto", "dense", "lexical", "fused"), default="auto",
        help="dense vectors, lexical BM25, both fused with RRF, or auto: fused for identifiers, else dense (default)",
    )
    _add_shared(search)
    search.set_defaults(handler=_search)


def _add_shared(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="data folder of the indexes (default: the gateway's data_dir)")
    parser.add_argument("--threads", type=int, help="CPU threads for the embedding model (default: cache.embedding_threads)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def _setup(args: argparse.Namespace) -> tuple[Any, Any]:
    from cache.embedder import Embedder
    from gateway.config import load_config

    config = load_config(args.config)
    if args.data_dir:
        config.data_dir = args.data_dir
    logging.basicConfig(
        level=getattr(logging, config.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "sentence_transformers", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    threads = args.threads if args.threads is not None else config.cache.embedding_threads
    embedder = Embedder(config.cache.embedding_model, device=config.cache.embedding_device, threads=threads)
    return config, embedder


def _fail(message: str) -> int:
    print(f"copilot-bridge: {message}", file=sys.stderr)
    return 1


def _index(args: argparse.Namespace) -> int:
    from indexer.layout import InvalidRepoName, default_repo_name, validate_repo_name
    from indexer.run import IndexConflict, index_repository
    from indexer.store import IndexBusy

    root = Path(args.path).expanduser()
    if not root.is_dir():
        return _fail(f"{root} is not a folder: pass the repository's folder")
    try:
        name = validate_repo_name(args.name) if args.name else default_repo_name(root)
    except InvalidRepoName as exc:
        return _fail(str(exc))
    config, embedder = _setup(args)
    try:
        embedder.load()
    except Exception as exc:  # the model's own errors, e.g. a missing model folder
        return _fail(f"the embedding model failed to load: {exc}")
    try:
        summary = index_repository(root, name, config, embedder, rebuild=args.rebuild)
    except (IndexBusy, IndexConflict, NotADirectoryError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume indexing {name}", file=sys.stderr)
        return 130
    finally:
        embedder.close()
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print("\n".join(summary.lines()))
    return 0


def _search(args: argparse.Namespace) -> int:
    from indexer.layout import InvalidRepoName
    from indexer.search import IndexMismatch, RepoNotFound, search_code
    from indexer.store import IndexBusy

    if not args.query.strip():
        return _fail("the query is empty: pass words or identifiers to search for")
    config, embedder = _setup(args)
    try:
        embedder.load()
    except Exception as exc:  # the model's own errors, e.g. a missing model folder
        return _fail(f"the embedding model failed to load: {exc}")
    try:
        hits = search_code(config, embedder, args.query, repo=args.repo, k=args.k, mode=args.mode)
    except (RepoNotFound, IndexMismatch, IndexBusy, InvalidRepoName, ValueError) as exc:
        return _fail(str(exc))
    finally:
        embedder.close()
    if args.json:
        print(json.dumps({"results": [hit.to_dict() for hit in hits]}, indent=2))
        return 0
    if not hits:
        print("no results")
    for rank, hit in enumerate(hits, start=1):
        symbol = f"  {hit.symbol}" if hit.symbol else ""
        print(f"{rank}. [{hit.repo}] {hit.path}:{hit.start_line}-{hit.end_line}{symbol}  (score {hit.score:.4f})")
        preview = hit.text.splitlines()[:PREVIEW_LINES]
        for line in preview:
            print(f"    {line}")
        print()
    return 0
