"""The Litestar application: OpenAI-compatible endpoints, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import json
import math
import logging
import time
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.response import Stream

from cache.embedder import Embedder
from gateway.auth import auth_middleware_factory
from gateway.config import Config
from gateway.errors import APIError, BodyTooLarge, error_body
from gateway.parsing import CHAT, COMPLETION, parse_body, parse_completion_request
from gateway.pipeline import CompletionPipeline, Reply, RequestRecord, new_request_id
from gateway.state import GatewayState, build_state

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

READY_PROBE_TIMEOUT_S = 2.0


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    content = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return Response(content=content, status_code=status, media_type="application/json", headers=headers or {})


def error_response(error: APIError, headers: dict[str, str] | None = None) -> Response[bytes]:
    headers = dict(headers or {})
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
    return json_response(error.body(), error.status_code, headers)


def reply_response(reply: Reply) -> Response[Any]:
    if reply.stream is not None:
        headers = {**reply.headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Stream(reply.stream, status_code=reply.status, media_type="text/event-stream", headers=headers)
    return json_response(reply.body, reply.status, reply.headers)


def gateway_state(request: Request[Any, Any, Any]) -> GatewayState:
    return request.app.state["gateway"]


def pipeline_of(request: Request[Any, Any, Any]) -> CompletionPipeline:
    return request.app.state["pipeline"]


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """Return the raw body; an oversized body raises BodyTooLarge instead of Litestar's 413."""
    try:
        return await request.body()
    except HTTPException as exc:
        if exc.status_code == 413:
            limit = gateway_state(request).config.max_body_bytes
            raise BodyTooLarge(f"request body is larger than the limit of {limit} bytes (max_body_bytes)") from exc
        raise


async def _completion(request: Request[Any, Any, Any], kind: str, endpoint: str) -> Response[Any]:
    pipeline = pipeline_of(request)
    record = RequestRecord(request_id=request.headers.get("x-request-id") or new_request_id(), endpoint=endpoint)
    record.attribute(request.scope.get("state", {}).get("identity"))
    try:
        body = parse_body(await read_body(request))
        completion = parse_completion_request(body, kind)
        reply = await pipeline.handle(completion, request.headers, record)
    except APIError as error:
        record.status, record.error = error.status_code, error.message
        pipeline.finish(record)
        return error_response(error, {"x-request-id": record.request_id})
    return reply_response(reply)


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _completion(request, CHAT, "chat.completions")


@post("/v1/completions", status_code=200)
async def completions(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _completion(request, COMPLETION, "completions")


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any]) -> Response[bytes]:
    config = gateway_state(request).config
    data = [{"id": m.name, "object": "model", "created": 0, "owned_by": m.upstream} for m in config.models]
    return json_response({"object": "list", "data": data})


@get("/v1/models/{model_id:path}")
async def get_model(request: Request[Any, Any, Any], model_id: str) -> Response[bytes]:
    config = gateway_state(request).config
    model = config.model(model_id.lstrip("/"))
    if model is None:
        return json_response(error_body(f"model {model_id.lstrip('/')!r} is not configured", "invalid_request_error", "model", "model_not_found"), 404)
    return json_response({"id": model.name, "object": "model", "created": 0, "owned_by": model.upstream})


@get("/healthz")
async def healthz() -> Response[bytes]:
    return json_response({"status": "ok"})


async def _probe_exact(state: GatewayState) -> dict[str, Any]:
    if state.exact is None:
        return {"status": "disabled"}
    try:
        await asyncio.wait_for(state.exact.ping(), READY_PROBE_TIMEOUT_S)
    except Exception as exc:  # readiness reports every failure instead of raising
        return {"status": "unreachable", "store": state.exact.name, "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "store": state.exact.name}


async def _probe_vectors(state: GatewayState) -> dict[str, Any]:
    if state.semantic is None:
        return {"status": "disabled"}
    store = state.semantic.store
    try:
        points = await asyncio.wait_for(asyncio.to_thread(store.count), READY_PROBE_TIMEOUT_S)
    except Exception as exc:  # readiness reports every failure instead of raising
        return {"status": "unreachable", "store": store.name, "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "ok", "store": store.name, "points": points}


@get("/readyz")
async def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Report each backend; 503 only while the embedding model is still loading or failed."""
    state = gateway_state(request)
    embedder = state.embedder
    exact, vectors, *probes = await asyncio.gather(
        _probe_exact(state), _probe_vectors(state), *(u.probe() for u in state.upstreams.values())
    )
    # Read the embedder's state once, after the probes, so report and status agree.
    embedder_state = embedder.state if embedder is not None else "disabled"
    embedder_report: dict[str, Any] = {"status": embedder_state}
    if embedder is not None:
        embedder_report.update(model=embedder.model_name, device=embedder.device or None)
        if embedder.error:
            embedder_report["error"] = embedder.error
    upstreams = dict(zip(state.upstreams, probes))
    for name, probe in upstreams.items():
        state.metrics.upstream_up.labels(name).set(1 if probe["status"] == "ok" else 0)
    parts = [exact, vectors, *upstreams.values()]
    loading = embedder_state not in ("ready", "disabled")
    healthy = all(p["status"] in ("ok", "disabled") for p in parts) and all(
        p.get("circuit", "closed") == "closed" for p in upstreams.values()
    )
    if loading:
        status = "starting"
    elif healthy:
        status = "ready"
    else:
        status = "degraded"
    report = {"status": status, "exact_cache": exact, "semantic_cache": vectors, "embedder": embedder_report, "upstreams": upstreams}
    return json_response(report, 503 if loading else 200)


@get("/metrics")
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    state = gateway_state(request)
    for name, upstream in state.upstreams.items():
        state.metrics.upstream_up.labels(name).set(0 if upstream.breaker.state == "open" else 1)
    return Response(content=state.metrics.exposition(), media_type="text/plain; version=0.0.4")


def _http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 413:
        return error_response(BodyTooLarge(f"request body is larger than the limit of {gateway_state(request).config.max_body_bytes} bytes"))
    code = {404: "not_found", 405: "method_not_allowed"}.get(status)
    return json_response(error_body(f"{exc.detail}: {request.method} {request.url.path}", "invalid_request_error", None, code), status)


def _internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_response(error_body(f"internal error: {type(exc).__name__}", "server_error", None, "internal_error"), 500)


def create_app(config: Config, *, embedder: Embedder | None = None, extra_handlers: list[Any] | None = None) -> Litestar:
    """Build the application; stores and clients open at start-up and close at shutdown."""

    async def startup(app: Litestar) -> None:
        started = time.perf_counter()
        state = build_state(config, embedder=embedder)
        app.state["gateway"] = state
        app.state["pipeline"] = CompletionPipeline(state)
        logger.info(
            "gateway started in %.2f s: exact cache %s, semantic cache %s, upstreams %s, data in %s",
            time.perf_counter() - started,
            state.exact.name if state.exact else "off",
            state.semantic.store.name if state.semantic else "off",
            ", ".join(f"{n}={u.config.base_url}" for n, u in state.upstreams.items()),
            config.data_path,
        )
        if not config.keys:
            logger.warning(
                "no API keys configured: the gateway is open to anyone who can reach %s:%d", config.host, config.port
            )

    async def shutdown(app: Litestar) -> None:
        pipeline: CompletionPipeline | None = app.state.get("pipeline")
        if pipeline is not None:
            await pipeline.drain()
        state: GatewayState | None = app.state.get("gateway")
        if state is not None:
            await state.close()
        logger.info("gateway stopped")

    from gateway import admin_api, dashboard, embeddings_api, ollama_api, search_api, stats_api

    handlers: list[Any] = [chat_completions, completions, list_models, get_model, healthz, readyz, metrics]
    handlers.extend(stats_api.HANDLERS + admin_api.HANDLERS + dashboard.HANDLERS)
    handlers.extend(ollama_api.HANDLERS)
    handlers.extend(search_api.HANDLERS + embeddings_api.HANDLERS)
    handlers.extend(extra_handlers or [])
    return Litestar(
        route_handlers=handlers,
        on_startup=[startup],
        on_shutdown=[shutdown],
        request_max_body_size=config.max_body_bytes,
        exception_handlers={HTTPException: _http_exception_handler, Exception: _internal_error_handler},
        middleware=[auth_middleware_factory(config)] if config.keys else [],
        logging_config=None,
        openapi_config=None,
    )
