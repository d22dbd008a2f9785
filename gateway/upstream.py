"""HTTP client for one OpenAI-compatible upstream (Ollama, llama.cpp server, vLLM, a cloud API)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway.aiohttp_client import AiohttpClient
from gateway.breaker import CircuitBreaker
from gateway.config import UpstreamConfig

__all__ = ["Upstream", "UpstreamError"]

logger = logging.getLogger(__name__)


class UpstreamError(Exception):
    """An upstream request failed: ``reason`` is ``connect``, ``timeout``, ``status`` or ``protocol``."""

    def __init__(self, upstream: str, reason: str, message: str, *, status: int | None = None, body: Any = None) -> None:
        super().__init__(f"upstream {upstream}: {message}")
        self.detail = message
        self.upstream = upstream
        self.reason = reason
        self.status = status
        self.body = body

    @property
    def retryable(self) -> bool:
        """True for failures another upstream may not have: unreachable, timed out, or 5xx."""
        return self.reason in ("connect", "timeout", "protocol") or (self.status is not None and self.status >= 500)


def _build_client(config: UpstreamConfig, transport: str) -> httpx.AsyncClient | AiohttpClient:
    timeout = httpx.Timeout(connect=config.connect_timeout_s, read=config.read_timeout_s, write=config.read_timeout_s, pool=config.connect_timeout_s)
    limits = httpx.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    if transport == "aiohttp":
        return AiohttpClient(config.base_url, timeout=timeout, headers=headers, max_connections=config.max_connections)
    return httpx.AsyncClient(base_url=config.base_url.rstrip("/"), timeout=timeout, limits=limits, headers=headers, trust_env=False)


def _encode(body: dict[str, Any]) -> bytes:
    # ensure_ascii keeps lone surrogates from the client as escapes instead of failing to encode.
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")


class Upstream:
    """A pooled client and a circuit breaker for one upstream.

    Only the upstream's own API key is sent: the client's Authorization header never leaves the
    gateway.
    """

    def __init__(self, config: UpstreamConfig, *, transport: str = "aiohttp", breaker: CircuitBreaker | None = None) -> None:
        self.config = config
        self.name = config.name
        self.breaker = breaker or CircuitBreaker(config.name)
        self._client = _build_client(config, transport)

    def _translate(self, exc: Exception) -> UpstreamError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return UpstreamError(self.name, "timeout", f"timed out after {self.config.read_timeout_s:g} s ({type(exc).__name__})")
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return UpstreamError(
                self.name, "connect",
                f"cannot connect to {self.config.base_url} ({exc}); is the model server running there? "
                f"Start it (for Ollama: 'ollama serve') or set upstreams.{self.name}.base_url",
            )
        return UpstreamError(self.name, "protocol", f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _error_from_response(name: str, status: int, raw: bytes) -> UpstreamError:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw[:500].decode("utf-8", "replace")
        message = body.get("error", {}).get("message") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
        return UpstreamError(name, "status", f"answered HTTP {status}: {message or str(body)[:200]}", status=status, body=body)

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a JSON body and return the JSON response.

        Raises:
            UpstreamError: connection failure, time-out, non-2xx status or a non-JSON response.
        """
        try:
            response = await self._client.post(path, content=_encode(body), headers={"Content-Type": "application/json"})
            raw = await response.aread()
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code >= 400:
            raise self._error_from_response(self.name, response.status_code, raw)
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise UpstreamError(self.name, "protocol", f"answered invalid JSON: {raw[:200]!r}") from exc
        if not isinstance(data, dict):
            raise UpstreamError(self.name, "protocol", "answered JSON that is not an object")
        return data

    @asynccontextmanager
    async def stream_lines(self, path: str, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[str]]:
        """Open a streaming POST and yield an iterator over its response lines.

        Raises:
            UpstreamError: on entering, for connection failures, time-outs and non-2xx statuses;
                while iterating, for time-outs and broken connections.
        """
        request = self._client.build_request("POST", path, content=_encode(body), headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        try:
            if response.status_code >= 400:
                raw = await response.aread()
                raise self._error_from_response(self.name, response.status_code, raw)

            async def lines() -> AsyncIterator[str]:
                try:
                    async for line in response.aiter_lines():
                        yield line
                except httpx.HTTPError as exc:
                    raise self._translate(exc) from exc

            yield lines()
        finally:
            await response.aclose()

    async def probe(self) -> dict[str, Any]:
        """GET /models and report whether the upstream responds, without raising."""
        try:
            response = await self._client.get("/models", timeout=min(2.0, self.config.read_timeout_s))
            return {"status": "ok" if response.status_code < 400 else "error", "http_status": response.status_code, "circuit": self.breaker.state}
        except httpx.HTTPError as exc:
            return {"status": "unreachable", "error": f"{type(exc).__name__}: {exc}", "circuit": self.breaker.state}

    async def close(self) -> None:
        await self._client.aclose()
