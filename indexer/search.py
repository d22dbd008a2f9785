"""Search indexed repositories: dense, lexical (BM25) or both fused with reciprocal rank fusion.

The default mode ``auto`` picks per query. On the httpx retrieval sets (bench/README.md, measured
with bench/search_eval.py) dense search alone ranked best for questions in words, and fusion beat
dense for queries that name identifiers. So ``auto`` fuses when the query contains a snake_case,
camelCase or dotted name, or is at most two words, and searches dense vectors otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cache.embedder import Embedder
from gateway.config import Config
from indexer.layout import indexed_repos, manifest_path, open_store, validate_repo_name
from indexer.lexical import LEXICAL_VERSION, LexicalEncoder
from indexer.manifest import Manifest
from indexer.readers import StorePool
from indexer.store import IndexStore, ScoredChunk

__all__ = [
    "DEFAULT_MODE",
    "MODES",
    "IndexMismatch",
    "RepoNotFound",
    "SearchHit",
    "SearchPlan",
    "plan_search",
    "resolve_mode",
    "run_search",
    "search_code",
]

MODES = ("auto", "dense", "lexical", "fused")
DEFAULT_MODE = "auto"
_IDENTIFIER = re.compile(r"\w_\w|_\w|[a-z][A-Z]|\w\.\w|\(\)")
MAX_K = 100
MIN_CANDIDATES = 50
"""Each side of a fused search retrieves at least this many chunks before RRF."""


class RepoNotFound(LookupError):
    """The requested repository has no index, or none has."""


class IndexMismatch(RuntimeError):
    """The index was built with another embedding model or lexical encoder than the one searching."""


@dataclass(frozen=True)
class SearchHit:
    repo: str
    path: str
    start_line: int
    end_line: int
    symbol: str
    language: str
    score: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "path": self.path,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "symbol": self.symbol,
            "language": self.language,
            "score": round(self.score, 6),
            "text": self.text,
        }


def resolve_mode(query: str, mode: str) -> str:
    """Return the mode ``auto`` stands for with this query: ``fused`` for identifiers, else ``dense``."""
    if mode != "auto":
        return mode
    if _IDENTIFIER.search(query) or len(query.split()) <= 2:
        return "fused"
    return "dense"


_lexical: LexicalEncoder | None = None


def _lexical_encoder() -> LexicalEncoder:
    global _lexical
    if _lexical is None:
        _lexical = LexicalEncoder()
    return _lexical


def _check_settings(config: Config, repo: str, embedder: Embedder) -> None:
    manifest = Manifest(manifest_path(config, repo))
    try:
        settings = manifest.settings()
    finally:
        manifest.close()
    model, dimension = settings.get("model"), settings.get("dimension")
    if model and (model != embedder.model_name or dimension != str(embedder.dimension)):
        raise IndexMismatch(
            f"the index {repo!r} was built with the embedding model {model} ({dimension} dimensions), but "
            f"{embedder.model_name} is loaded: run copilot-bridge index again to rebuild it"
        )
    lexical = settings.get("lexical")
    if lexical and lexical != LEXICAL_VERSION:
        raise IndexMismatch(f"the index {repo!r} uses the lexical encoder {lexical}, not {LEXICAL_VERSION}: run copilot-bridge index again")


@dataclass(frozen=True)
class SearchPlan:
    """A validated search: the repositories to query and the mode ``auto`` resolved to."""

    query: str
    repos: list[str]
    k: int
    mode: str

    @property
    def needs_dense(self) -> bool:
        return self.mode != "lexical"


def plan_search(
    config: Config, embedder: Embedder, query: str, *, repo: str | None = None, k: int = 10, mode: str = DEFAULT_MODE
) -> SearchPlan:
    """Validate a search and pick its repositories; ``embedder`` must be loaded.

    Raises RepoNotFound, IndexMismatch, InvalidRepoName and ValueError for an empty query, a bad
    ``mode`` or ``k``.
    """
    if not query.strip():
        raise ValueError("the query is empty: send words or identifiers to search for")
    if mode not in MODES:
        raise ValueError(f"invalid search mode {mode!r}: use one of {', '.join(MODES)}")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, not {k}")
    available = indexed_repos(config)
    if repo is not None:
        validate_repo_name(repo)
        if repo not in available:
            known = ", ".join(available) or "none"
            raise RepoNotFound(f"repository {repo!r} is not indexed (indexed: {known}); run copilot-bridge index PATH --name {repo}")
        repos = [repo]
    else:
        repos = available
        if not repos:
            raise RepoNotFound("no repository is indexed yet: run copilot-bridge index PATH")
    for name in repos:
        _check_settings(config, name, embedder)
    return SearchPlan(query=query, repos=repos, k=k, mode=resolve_mode(query, mode))


def run_search(config: Config, plan: SearchPlan, dense: list[float] | None, dimension: int, pool: StorePool | None = None) -> list[SearchHit]:
    """Query every repository of ``plan`` and merge the hits by score.

    ``dense`` is the query's embedding, needed unless the mode is ``lexical``. Stores come from
    ``pool`` when given, else each is opened and closed here. Raises IndexBusy while an indexing
    run has a repository's index locked.
    """
    lexical = _lexical_encoder().query(plan.query) if plan.mode != "dense" else None
    vector = dense if plan.needs_dense else None
    candidates = max(MIN_CANDIDATES, 4 * plan.k)

    def run_query(store: IndexStore) -> list[ScoredChunk]:
        return store.query(vector, lexical, plan.k, candidates)

    hits: list[SearchHit] = []
    for name in plan.repos:
        try:
            if pool is not None:
                scored = pool.use(name, dimension, run_query)
            else:
                store = open_store(config, name, dimension, create=False)
                try:
                    scored = run_query(store)
                finally:
                    store.close()
        except FileNotFoundError:
            continue  # a manifest without a store: the first run stopped before writing anything
        hits.extend(_hit(name, item.score, item.payload) for item in scored)
    hits.sort(key=lambda hit: hit.score, reverse=True)
    return hits[: plan.k]


def search_code(
    config: Config,
    embedder: Embedder,
    query: str,
    *,
    repo: str | None = None,
    k: int = 10,
    mode: str = DEFAULT_MODE,
    pool: StorePool | None = None,
) -> list[SearchHit]:
    """Plan and run a search, embedding the query on the calling thread.

    Raises what plan_search and run_search raise.
    """
    plan = plan_search(config, embedder, query, repo=repo, k=k, mode=mode)
    dense = embedder.encode([query])[0].tolist() if plan.needs_dense else None
    return run_search(config, plan, dense, embedder.dimension or 0, pool)


def _hit(repo: str, score: float, payload: dict[str, Any]) -> SearchHit:
    return SearchHit(
        repo=repo,
        path=str(payload.get("path", "")),
        start_line=int(payload.get("start_line", 0)),
        end_line=int(payload.get("end_line", 0)),
        symbol=str(payload.get("symbol", "")),
        language=str(payload.get("language", "")),
        score=score,
        text=str(payload.get("text", "")),
    )
