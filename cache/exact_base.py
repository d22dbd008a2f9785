"""The interface of exact cache stores: bytes by key, with a time to live."""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["ExactStore"]


class ExactStore(ABC):
    """A key-value store for cached responses.

    Keys are ``(namespace, model, sha256)`` so that entries can be purged by namespace or model.
    """

    name: str = "exact"

    @abstractmethod
    async def get(self, namespace: str, model: str, key: str) -> bytes | None:
        """Return the stored value, or None when absent or expired."""

    @abstractmethod
    async def set(self, namespace: str, model: str, key: str, value: bytes, ttl_s: int) -> None:
        """Store ``value`` for ``ttl_s`` seconds."""

    @abstractmethod
    async def purge(self, namespace: str | None = None, model: str | None = None) -> int:
        """Delete entries of a namespace and/or model (all entries when both are None); return the count."""

    @abstractmethod
    async def ttl(self, namespace: str, model: str, key: str) -> float | None:
        """Return the seconds an entry has left, or None when absent."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise when the store cannot be reached."""

    async def close(self) -> None:
        """Release connections and files."""
