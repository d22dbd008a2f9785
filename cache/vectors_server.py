"""Semantic cache vectors in a Qdrant server, shared by gateway replicas, through qdrant-client."""

from __future__ import annotations

import logging
from typing import Any

from qdrant_client import QdrantClient, models

from cache.vectors_base import INDEXED_FIELDS, VectorMatch, VectorStore

__all__ = ["ServerVectorStore"]

logger = logging.getLogger(__name__)


class ServerVectorStore(VectorStore):
    """A Qdrant collection; ``url=":memory:"`` runs qdrant-client's local mode, for tests only
    (it searches by brute force with Python filters)."""

    name = "qdrant-server"

    def __init__(self, url: str, collection: str, dimension: int, *, api_key: str | None = None, timeout_s: float = 2.0) -> None:
        if url == ":memory:":
            self._client = QdrantClient(location=":memory:")
        else:
            self._client = QdrantClient(url=url, api_key=api_key or None, timeout=max(1, int(timeout_s)))
        self._collection = collection
        self._dimension = dimension
        self._url = url
        self._ready = False

    def _ensure_collection(self) -> None:
        # Created on first use, so the gateway starts while the server is still down.
        if self._ready:
            return
        collection = self._collection
        if not self._client.collection_exists(collection):
            self._client.create_collection(
                collection, vectors_config=models.VectorParams(size=self._dimension, distance=models.Distance.COSINE)
            )
            for field_name in INDEXED_FIELDS:
                self._client.create_payload_index(collection, field_name, models.PayloadSchemaType.KEYWORD)
            self._client.create_payload_index(collection, "expires_at", models.PayloadSchemaType.FLOAT)
            logger.info("Qdrant collection %s created at %s", collection, self._url)
        self._ready = True

    def search(self, vector: list[float], scope: str, now: float, limit: int = 3) -> list[VectorMatch]:
        self._ensure_collection()
        response = self._client.query_points(
            self._collection,
            query=vector,
            limit=limit,
            with_payload=True,
            query_filter=models.Filter(
                must=[
                    models.FieldCondition(key="scope", match=models.MatchValue(value=scope)),
                    models.FieldCondition(key="expires_at", range=models.Range(gt=now)),
                ]
            ),
        )
        return [VectorMatch(point_id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in response.points]

    def upsert(self, point_id: str, vector: list[float], payload: dict[str, Any]) -> None:
        self._ensure_collection()
        self._client.upsert(self._collection, points=[models.PointStruct(id=point_id, vector=vector, payload=payload)])

    def _delete(self, flt: models.Filter) -> int:
        self._ensure_collection()
        before = self.count()
        self._client.delete(self._collection, points_selector=models.FilterSelector(filter=flt))
        return before - self.count()

    def purge(self, namespace: str | None = None, model: str | None = None) -> int:
        must: list[Any] = []
        if namespace:
            must.append(models.FieldCondition(key="namespace", match=models.MatchValue(value=namespace)))
        if model:
            must.append(models.FieldCondition(key="model", match=models.MatchValue(value=model)))
        return self._delete(models.Filter(must=must))

    def delete_expired(self, now: float) -> int:
        return self._delete(models.Filter(must=[models.FieldCondition(key="expires_at", range=models.Range(lte=now))]))

    def count(self) -> int:
        self._ensure_collection()
        return int(self._client.count(self._collection, exact=True).count)

    def close(self) -> None:
        self._client.close()
