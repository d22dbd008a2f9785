"""Exact cache in Redis, shared by every gateway replica that points at the same server."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cache.errors import StoreUnavailable
from cache.exact_base import ExactStore

__all__ = ["RedisExactStore"]

logger = logging.getLogger(__name__)

KEY_PREFIX = "copilot-bridge:exact"


def _escape_glob(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


class RedisExactStore(ExactStore):
    """Entries live under ``copilot-bridge:exact:<namespace>:<model>:<sha256>`` with a Redis TTL."""

    name = "redis"

    def __init__(self, url: str, *, timeout_s: float = 0.25) -> None:
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )

    @staticmethod
    def redis_key(namespace: str, model: str, key: str) -> str:
        return f"{KEY_PREFIX}:{namespace}:{model}:{key}"

    async def get(self, namespace: str, model: str, key: str) -> bytes | None:
        try:
            return await self._client.get(self.redis_key(namespace, model, key))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis GET failed: {exc}") from exc

    async def set(self, namespace: str, model: str, key: str, value: bytes, ttl_s: int) -> None:
        try:
            await self._client.set(self.redis_key(namespace, model, key), value, ex=max(1, int(ttl_s)))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis SET failed: {exc}") from exc

    async def ttl(self, namespace: str, model: str, key: str) -> float | None:
        try:
            value = await self._client.ttl(self.redis_key(namespace, model, key))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis TTL failed: {exc}") from exc
        return None if value < 0 else float(value)

    async def purge(self, namespace: str | None = None, model: str | None = None) -> int:
        pattern = f"{KEY_PREFIX}:{_escape_glob(namespace) if namespace else '*'}:{_escape_glob(model) if model else '*'}:*"
        deleted = 0
        try:
            batch: list[bytes] = []
            async for key in self._client.scan_iter(match=pattern, count=500):
                batch.append(key)
                if len(batch) >= 500:
                    deleted += await self._client.delete(*batch)
                    batch.clear()
            if batch:
                deleted += await self._client.delete(*batch)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis purge failed after {deleted} keys: {exc}") from exc
        return deleted

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis PING failed: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()
