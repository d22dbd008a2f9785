"""``POST /admin/cache/purge``: delete cache entries of a namespace and/or model from both layers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, Response, post

from gateway.errors import APIError, InvalidRequest, Unauthorized
from gateway.parsing import parse_body

__all__ = ["HANDLERS", "purge_caches"]

logger = logging.getLogger(__name__)


async def purge_caches(state: Any, namespace: str | None, model: str | None) -> dict[str, Any]:
    """Purge both cache layers; return the counts deleted per layer."""
    result: dict[str, Any] = {"namespace": namespace, "model": model, "exact": 0, "semantic": 0}
    if state.exact is not None:
        result["exact"] = await state.exact.purge(namespace, model)
    if state.semantic is not None:
        result["semantic"] = await asyncio.to_thread(state.semantic.store.purge, namespace, model)
    logger.info("purged cache namespace=%s model=%s: %d exact, %d semantic", namespace, model, result["exact"], result["semantic"])
    return result


@post("/admin/cache/purge", status_code=200)
async def purge(request: Request[Any, Any, Any]) -> Response[bytes]:
    from gateway.app import error_response, gateway_state, json_response, read_body

    state = gateway_state(request)
    try:
        identity = request.scope.get("state", {}).get("identity")
        if state.config.keys and (identity is None or not identity.admin):
            raise Unauthorized("purging needs an API key with admin = true")
        raw = await read_body(request)
        body = parse_body(raw) if raw.strip() else {}
        namespace, model = body.get("namespace"), body.get("model")
        for name, value in (("namespace", namespace), ("model", model)):
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidRequest(f"'{name}' must be a non-empty string", param=name)
        if not body.get("all") and namespace is None and model is None:
            raise InvalidRequest("name a 'namespace' or a 'model' to purge, or send {\"all\": true}", param="namespace")
        result = await purge_caches(state, namespace, model)
    except APIError as error:
        return error_response(error)
    return json_response(result)


HANDLERS = [purge]
