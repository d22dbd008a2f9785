"""Add code from an indexed repository to a chat request before it is cached and routed.

For the tasks named in ``[retrieval]`` (explain and agent by default), or for any request with a
``retrieval`` body field, the last user message is searched in the repository's index and the best
chunks go into a system message just before it. The added code is part of the request from then
on, so the cache keys cover it and a changed index never serves an answer built on old code.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.errors import APIError, InvalidRequest
from gateway.parsing import CHAT, CompletionRequest
from gateway.tasks import message_text

__all__ = ["add_repository_context"]

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000
"""Characters of the user message used as the search query."""


def _plan(state: Any, request: CompletionRequest, task: str) -> tuple[str, int, bool] | None:
    """Return (repo, k, explicit) for this request, or None when no code is to be added."""
    options = request.retrieval_options
    if options is not None:
        k = options.get("k", state.config.retrieval.k)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 20:
            raise InvalidRequest(f"'retrieval.k' must be an integer between 1 and 20, not {k!r}", param="retrieval.k")
        return options["repo"], k, True
    settings = state.config.retrieval
    if settings.repo and task in settings.tasks:
        return settings.repo, settings.k, False
    return None


def _context_message(repo: str, hits: list[Any], max_chars: int) -> tuple[str, int]:
    blocks: list[str] = []
    used = 0
    for hit in hits:
        block = f"{hit.path}:{hit.start_line}-{hit.end_line}\n```{hit.language or ''}\n{hit.text}\n```"
        if used + len(block) > max_chars and blocks:
            break
        blocks.append(block)
        used += len(block)
    header = f"Code from the repository '{repo}' that may be relevant to the next message:\n\n"
    return header + "\n\n".join(blocks), len(blocks)


async def add_repository_context(state: Any, request: CompletionRequest, task: str, request_id: str) -> int:
    """Insert the repository's best-matching chunks; return how many were added.

    Raises:
        APIError: only for a request that named a repository itself (unknown repository, busy
            index); with the config's default repository, failures are logged and skipped.
    """
    if request.kind != CHAT:
        return 0
    plan = _plan(state, request, task)
    if plan is None:
        return 0
    repo, k, explicit = plan
    messages = request.body["messages"]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if last_user is None:
        return 0
    query = message_text(messages[last_user].get("content"))[:MAX_QUERY_CHARS]
    if not query.strip():
        return 0

    from gateway.search_api import search_code

    try:
        _, hits = await search_code(state, query, repo, k, "auto")
    except APIError as error:
        if explicit:
            raise
        logger.warning("request %s: no code from repository %s added: %s", request_id, repo, error.message)
        return 0
    if not hits:
        return 0
    content, added = _context_message(repo, hits, state.config.retrieval.max_chars)
    request.body["messages"] = [*messages[:last_user], {"role": "system", "content": content}, *messages[last_user:]]
    logger.info("request %s: added %d chunks from repository %s", request_id, added, repo)
    return added
