"""The interface of semantic cache vector stores.

Methods are synchronous and are called from a worker thread, so that neither Qdrant Edge (which
holds the GIL while it searches) nor a network round trip to a Qdrant server blocks the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

__all__ = ["INDEXED_FIELDS", "VectorMatch", "VectorStore"]

# Payload fields with a keyword index: the search filters on scope, purges on namespace and model.
INDEXED_FIELDS = ("scope", "namespace", "model")


@dataclass
class VectorMatch:
    """A stored point close to the query vector."""

    point_id: str
    score: float
    payload: dict[str, Any]


class VectorStore(ABC):
    """Points carry a ``scope`` (hash of what two requests must share), ``expires_at`` (Unix
    seconds), ``namespace``, ``model`` and the cached response."""

    name: str = "vectors"
    in_process: bool = False
    """True when searches run in this process and take well under a millisecond to a few ms, so
    they may run on the embedding thread right after the embedding."""

    @abstractmethod
    def search(self, vector: list[float], scope: str, now: float, limit: int = 3) -> list[VectorMatch]:
        """Return the nearest unexpired points of ``scope``, best first."""

    @abstractmethod
    def upsert(self, point_id: str, vector: list[float], payload: dict[str, Any]) -> None:
        """Insert or replace one point."""

    @abstractmethod
    def purge(self, namespace: str | None = None, model: str | None = None) -> int:
        """Delete the points of a namespace and/or model, or all points; return the count."""

    @abstractmethod
    def delete_expired(self, now: float) -> int:
        """Delete points whose ``expires_at`` has passed; return the count."""

    @abstractmethod
    def count(self) -> int:
        """Return the number of stored points."""

    def close(self) -> None:
        """Flush and release the store."""
