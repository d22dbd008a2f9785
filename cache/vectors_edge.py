"""Semantic cache vectors in Qdrant Edge, in-process on a data directory.

Qdrant Edge locks its directory: one gateway process per data directory. Several workers or
replicas share a Qdrant server instead (``cache.qdrant_url``).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import qdrant_edge as edge

from cache.errors import StoreLocked
from cache.vectors_base import INDEXED_FIELDS, VectorMatch, VectorStore

__all__ = ["EdgeVectorStore"]

logger = logging.getLogger(__name__)


class EdgeVectorStore(VectorStore):
    """A Qdrant Edge shard with cosine vectors and keyword indexes on the filtered fields."""

    name = "qdrant-edge"
    in_process = True

    def __init__(self, path: Path, dimension: int) -> None:
        self._path = path
        self._lock = threading.Lock()
        config = edge.EdgeConfig(vectors=edge.EdgeVectorParams(size=dimension, distance=edge.Distance.Cosine))
        try:
            if (path / "edge_config.json").exists() or any(path.glob("*")):
                self._shard = edge.EdgeShard.load(str(path), config)
                logger.info("Qdrant Edge shard loaded from %s", path)
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._shard = edge.EdgeShard.create(str(path), config)
                logger.info("Qdrant Edge shard created at %s", path)
        except Exception as exc:  # qdrant_edge raises plain exceptions for lock and format errors
            text = str(exc)
            if "lock" in text.lower() or "in use" in text.lower() or "Resource temporarily unavailable" in text:
                raise StoreLocked(
                    f"cannot open Qdrant Edge at {path}: another process has it open. Run one gateway per data "
                    f"directory (--data-dir), or share a Qdrant server with cache.qdrant_url"
                ) from exc
            raise
        for field_name in INDEXED_FIELDS:
            self._shard.update(edge.UpdateOperation.create_field_index(field_name, edge.PayloadSchemaType.Keyword))
        self._shard.update(edge.UpdateOperation.create_field_index("expires_at", edge.PayloadSchemaType.Float))

    def search(self, vector: list[float], scope: str, now: float, limit: int = 3) -> list[VectorMatch]:
        request = edge.QueryRequest(
            limit=limit,
            query=edge.Query.Nearest(vector),
            filter=edge.Filter(
                must=[
                    edge.FieldCondition("scope", match=edge.MatchValue(scope)),
                    edge.FieldCondition("expires_at", range=edge.RangeFloat(gt=now)),
                ]
            ),
            with_payload=True,
        )
        points = self._shard.query(request)
        return [VectorMatch(point_id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in points]

    def upsert(self, point_id: str, vector: list[float], payload: dict[str, Any]) -> None:
        with self._lock:
            self._shard.update(edge.UpdateOperation.upsert_points([edge.Point(point_id, vector, payload)]))

    def _filter(self, namespace: str | None, model: str | None) -> edge.Filter | None:
        must = []
        if namespace:
            must.append(edge.FieldCondition("namespace", match=edge.MatchValue(namespace)))
        if model:
            must.append(edge.FieldCondition("model", match=edge.MatchValue(model)))
        return edge.Filter(must=must) if must else None

    def _delete(self, flt: edge.Filter | None) -> int:
        with self._lock:
            before = self._shard.count(edge.CountRequest())
            if flt is None:
                flt = edge.Filter(must=[edge.FieldCondition("scope", is_empty=False)])
            self._shard.update(edge.UpdateOperation.delete_points_by_filter(flt))
            return before - self._shard.count(edge.CountRequest())

    def purge(self, namespace: str | None = None, model: str | None = None) -> int:
        return self._delete(self._filter(namespace, model))

    def delete_expired(self, now: float) -> int:
        return self._delete(edge.Filter(must=[edge.FieldCondition("expires_at", range=edge.RangeFloat(lte=now))]))

    def count(self) -> int:
        return int(self._shard.count(edge.CountRequest()))

    def close(self) -> None:
        with self._lock:
            self._shard.flush()
            self._shard.close()
