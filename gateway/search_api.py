"""``POST /v1/search``: code search over the repositories indexed with ``copilot-bridge index``.

    request:  {"query": "...", "repo": "name" (optional, default all), "k": 10, "mode": "auto"}
    response: {"mode": "dense", "results": [{"repo", "path", "start_line", "end_line", "symbol",
               "language", "score", "text"}, ...]}

The query is embedded on the embedding model's worker thread, and the index is queried on a
thread of its own. Open Qdrant Edge shards are kept between searches and closed when idle, so
that ``copilot-bridge index`` can update an index while the gateway runs (see indexer/readers.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, Response, post

from gateway.app import error_response, gateway_state, json_response, read_body
from gateway.embeddings_api import local_embedder
from gateway.errors import APIError, IndexOutdated, IndexUpdating, InvalidRequest, RepoNotIndexed
from gateway.parsing import parse_body
from gateway.pipeline import new_request_id
from gateway.state import GatewayState
from indexer.layout import InvalidRepoName
from indexer.readers import StorePool
from indexer.search import DEFAULT_MODE, MAX_K, MODES, IndexMismatch, RepoNotFound, plan_search, run_search
from indexer.store import IndexBusy

__all__ = ["HANDLERS", "search_code"]

logger = logging.getLogger(__name__)

DEFAULT_K = 10
BUSY_RETRY_AFTER_S = 5


def parse_search_request(body: dict[str, Any]) -> tuple[str, str | None, int, str]:
    """Return query, repo, k and mode of a search body.

    Raises:
        InvalidRequest: a missing or empty query, or a repo, k or mode of the wrong type or range.
    """
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidRequest("query is required: send a non-empty string", param="query")
    repo = body.get("repo")
    if repo is not None and (not isinstance(repo, str) or not repo):
        raise InvalidRequest("repo must be a non-empty string (an index name) or absent to search every index", param="repo")
    k = body.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidRequest(f"k must be an integer between 1 and {MAX_K}, not {k!r}", param="k")
    mode = body.get("mode", DEFAULT_MODE)
    if mode not in MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(MODES)}, not {mode!r}", param="mode")
    return query, repo, k, mode


def _store_pool(state: GatewayState) -> StorePool:
    pool = state.extras.get("index_pool")
    if pool is None:
        pool = StorePool(state.config)
        state.extras["index_pool"] = pool
    return pool


async def search_code(state: GatewayState, query: str, repo: str | None, k: int, mode: str) -> tuple[str, list[Any]]:
    """Search the indexed repositories; returns the mode used and the hits, best first.

    Raises:
        InvalidRequest, RepoNotIndexed, IndexOutdated, IndexUpdating, EmbedderUnavailable.
    """
    embedder = await local_embedder(state)
    try:
        plan = await asyncio.to_thread(plan_search, state.config, embedder, query, repo=repo, k=k, mode=mode)
    except InvalidRepoName as exc:
        raise InvalidRequest(str(exc), param="repo") from exc
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
    except RepoNotFound as exc:
        raise RepoNotIndexed(str(exc), param="repo") from exc
    except IndexMismatch as exc:
        raise IndexOutdated(str(exc), param="repo") from exc
    dense = None
    if plan.needs_dense:
        dense = (await embedder.embed_many([query]))[0].tolist()
    try:
        hits = await asyncio.to_thread(run_search, state.config, plan, dense, embedder.dimension or 0, _store_pool(state))
    except IndexBusy as exc:
        raise IndexUpdating(str(exc)) from exc
    return plan.mode, hits


@post("/v1/search", status_code=200)
async def search(request: Request[Any, Any, Any]) -> Response[bytes]:
    state = gateway_state(request)
    request_id = request.headers.get("x-request-id") or new_request_id()
    headers = {"x-request-id": request_id}
    try:
        query, repo, k, mode = parse_search_request(parse_body(await read_body(request)))
        mode, hits = await search_code(state, query, repo, k, mode)
    except APIError as error:
        log = logger.warning if error.status_code >= 500 else logger.info
        log("search request %s failed with status %d: %s", request_id, error.status_code, error.message)
        if isinstance(error, IndexUpdating):
            headers["Retry-After"] = str(BUSY_RETRY_AFTER_S)
        return error_response(error, headers)
    return json_response({"mode": mode, "results": [hit.to_dict() for hit in hits]}, headers=headers)


HANDLERS: list[Any] = [search]
