"""The vector store of one repository index: a Qdrant Edge shard, or a Qdrant server collection.

Each chunk is one point with a dense vector ``dense`` (cosine) and a sparse vector ``lexical``
(BM25 terms, IDF applied by the store). The payload contains the chunk's path, language,
symbol, lines, content hash, the hash of the embedded text (``embedding_hash``, for reusing
vectors) and the text itself. Qdrant Edge locks its folder: while an indexing run writes a shard, searches of
that repository fail with IndexBusy.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.lexical import SparseTerms

__all__ = [
    "EdgeIndexStore",
    "IndexBusy",
    "IndexPoint",
    "IndexStore",
    "ScoredChunk",
    "ServerIndexStore",
    "point_id",
    "remove_edge_shard",
]

logger = logging.getLogger(__name__)

DENSE = "dense"
LEXICAL = "lexical"
RRF_K = 60
"""The RRF constant from Cormack et al. (2009), also Qdrant's default."""
FILTER_BATCH = 512
"""Values per MatchAny filter when deleting by path or looking up vectors by hash."""
POINT_NAMESPACE = uuid.UUID("5b2f4c1e-8d0a-4c5e-9a57-3f1f0c7e2b11")


class IndexBusy(RuntimeError):
    """Another process has the index open or locked, usually an indexing run."""


def remove_edge_shard(path: Path) -> None:
    """Delete a Qdrant Edge shard folder once no other process has it open.

    Raises:
        IndexBusy: another process has the shard open.
    """
    import shutil

    import qdrant_edge as edge

    if not path.is_dir():
        return
    try:
        shard = edge.EdgeShard.load(str(path))
    except Exception as exc:  # qdrant_edge raises plain Exception for lock and format errors
        if _is_lock_error(exc):
            raise IndexBusy(f"the index at {path} is open in another process; retry when it is closed") from exc
        logger.warning("removing the unreadable Qdrant Edge shard at %s: %s", path, exc)
    else:
        shard.close()
    shutil.rmtree(path)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc)
    return "WouldBlock" in text or "lock" in text.lower() or "Resource temporarily unavailable" in text


def point_id(path: str, ordinal: int, content_hash: str) -> str:
    """Return a stable UUID for the ``ordinal``-th chunk of ``path`` with this content."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{path}\0{ordinal}\0{content_hash}"))


@dataclass
class IndexPoint:
    id: str
    dense: list[float]
    lexical: SparseTerms
    payload: dict[str, Any]


@dataclass
class ScoredChunk:
    score: float
    payload: dict[str, Any]


class IndexStore(ABC):
    name: str

    @abstractmethod
    def vectors_for(self, embedding_hashes: list[str]) -> dict[str, list[float]]:
        """Return stored dense vectors by ``embedding_hash``, for those hashes that have a point."""

    @abstractmethod
    def delete_paths(self, paths: list[str]) -> None: ...

    @abstractmethod
    def upsert(self, points: list[IndexPoint]) -> None: ...

    @abstractmethod
    def query(self, dense: list[float] | None, lexical: SparseTerms | None, limit: int, candidates: int) -> list[ScoredChunk]:
        """Return the best ``limit`` chunks. With both vectors, each retrieves ``candidates`` and RRF fuses them."""

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def clear(self) -> None:
        """Delete every point."""

    def optimize(self) -> None:
        """Merge segments and build indexes after a run; a no-op where the server does it."""

    @abstractmethod
    def close(self) -> None: ...


def _collect_vectors(records: list[Any], found: dict[str, list[float]]) -> None:
    """Add the dense vector of each scrolled record to ``found`` under its embedding hash."""
    for record in records:
        key = (record.payload or {}).get("embedding_hash")
        vector = record.vector.get(DENSE) if isinstance(record.vector, dict) else None
        if key and vector is not None:
            found.setdefault(key, list(vector))


def _batches(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class EdgeIndexStore(IndexStore):
    name = "qdrant-edge"

    def __init__(self, path: Path, dimension: int, *, create: bool = True) -> None:
        import qdrant_edge as edge

        self._edge = edge
        self.path = path
        config = edge.EdgeConfig(
            vectors={DENSE: edge.EdgeVectorParams(size=dimension, distance=edge.Distance.Cosine)},
            sparse_vectors={LEXICAL: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)},
        )
        exists = path.is_dir() and any(path.iterdir())
        if not exists and not create:
            raise FileNotFoundError(f"no Qdrant Edge shard at {path}")
        try:
            if exists:
                self._shard = edge.EdgeShard.load(str(path), config)
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._shard = edge.EdgeShard.create(str(path), config)
        except Exception as exc:  # qdrant_edge raises plain Exception for lock and format errors
            if _is_lock_error(exc):
                raise IndexBusy(
                    f"the index at {path} is open in another process, usually an indexing run; "
                    f"retry when it finished"
                ) from exc
            raise
        if not exists:
            for field_name in ("path", "embedding_hash"):
                self._shard.update(edge.UpdateOperation.create_field_index(field_name, edge.PayloadSchemaType.Keyword))

    def _match_any(self, field_name: str, values: list[str]) -> Any:
        edge = self._edge
        return edge.Filter(must=[edge.FieldCondition(field_name, match=edge.MatchAny(values))])

    def vectors_for(self, embedding_hashes: list[str]) -> dict[str, list[float]]:
        edge = self._edge
        found: dict[str, list[float]] = {}
        unique_hashes = list(dict.fromkeys(embedding_hashes))
        for batch in _batches(unique_hashes, FILTER_BATCH):
            offset = None
            while True:
                request = edge.ScrollRequest(
                    offset=offset, limit=len(batch), filter=self._match_any("embedding_hash", batch),
                    with_payload=["embedding_hash"], with_vector=[DENSE],
                )
                records, offset = self._shard.scroll(request)
                _collect_vectors(records, found)
                if offset is None or all(key in found for key in batch):
                    break
        return found

    def delete_paths(self, paths: list[str]) -> None:
        for batch in _batches(paths, FILTER_BATCH):
            self._shard.update(self._edge.UpdateOperation.delete_points_by_filter(self._match_any("path", batch)))

    def upsert(self, points: list[IndexPoint]) -> None:
        edge = self._edge
        converted = [
            edge.Point(p.id, {DENSE: p.dense, LEXICAL: edge.SparseVector(*p.lexical)}, p.payload) for p in points
        ]
        if converted:
            self._shard.update(edge.UpdateOperation.upsert_points(converted))

    def query(self, dense: list[float] | None, lexical: SparseTerms | None, limit: int, candidates: int) -> list[ScoredChunk]:
        edge = self._edge
        sparse = edge.SparseVector(*lexical) if lexical is not None and lexical[0] else None
        if dense is not None and sparse is not None:
            request = edge.QueryRequest(
                limit=limit,
                prefetches=[
                    edge.Prefetch(limit=candidates, query=edge.Query.Nearest(dense, using=DENSE)),
                    edge.Prefetch(limit=candidates, query=edge.Query.Nearest(sparse, using=LEXICAL)),
                ],
                query=edge.Fusion.Rrf(k=RRF_K),
                with_payload=True,
            )
        elif dense is not None:
            request = edge.QueryRequest(limit=limit, query=edge.Query.Nearest(dense, using=DENSE), with_payload=True)
        elif sparse is not None:
            request = edge.QueryRequest(limit=limit, query=edge.Query.Nearest(sparse, using=LEXICAL), with_payload=True)
        else:
            return []
        return [ScoredChunk(float(p.score), dict(p.payload or {})) for p in self._shard.query(request)]

    def count(self) -> int:
        return int(self._shard.count(self._edge.CountRequest()))

    def clear(self) -> None:
        edge = self._edge
        self._shard.update(edge.UpdateOperation.delete_points_by_filter(edge.Filter(must=[edge.FieldCondition("path", is_empty=False)])))

    def optimize(self) -> None:
        self._shard.optimize()

    def close(self) -> None:
        self._shard.flush()
        self._shard.close()


class ServerIndexStore(IndexStore):
    """One collection on a Qdrant server; ``client`` may be passed in (tests use qdrant-client's local mode)."""

    name = "qdrant-server"

    def __init__(self, url: str, collection: str, dimension: int, *, api_key: str = "", timeout_s: float = 30.0, client: Any = None, create: bool = True) -> None:
        from qdrant_client import QdrantClient, models

        self._models = models
        self.collection = collection
        self._dimension = dimension
        self._client = client or QdrantClient(url=url, api_key=api_key or None, timeout=int(timeout_s))
        if not self._client.collection_exists(collection):
            if not create:
                raise FileNotFoundError(f"no collection {collection!r} on the Qdrant server {url}")
            self._create()

    def _create(self) -> None:
        models = self._models
        self._client.create_collection(
            self.collection,
            vectors_config={DENSE: models.VectorParams(size=self._dimension, distance=models.Distance.COSINE)},
            sparse_vectors_config={LEXICAL: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        for field_name in ("path", "embedding_hash"):
            self._client.create_payload_index(self.collection, field_name, models.PayloadSchemaType.KEYWORD)

    def _match_any(self, field_name: str, values: list[str]) -> Any:
        models = self._models
        return models.Filter(must=[models.FieldCondition(key=field_name, match=models.MatchAny(any=values))])

    def vectors_for(self, embedding_hashes: list[str]) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {}
        for batch in _batches(list(dict.fromkeys(embedding_hashes)), FILTER_BATCH):
            offset = None
            while True:
                records, offset = self._client.scroll(
                    self.collection, scroll_filter=self._match_any("embedding_hash", batch), limit=len(batch),
                    offset=offset, with_payload=["embedding_hash"], with_vectors=[DENSE],
                )
                _collect_vectors(records, found)
                if offset is None or all(key in found for key in batch):
                    break
        return found

    def delete_paths(self, paths: list[str]) -> None:
        for batch in _batches(paths, FILTER_BATCH):
            self._client.delete(self.collection, points_selector=self._models.FilterSelector(filter=self._match_any("path", batch)), wait=True)

    def upsert(self, points: list[IndexPoint]) -> None:
        models = self._models
        converted = [
            models.PointStruct(
                id=p.id,
                vector={DENSE: p.dense, LEXICAL: models.SparseVector(indices=p.lexical[0], values=p.lexical[1])},
                payload=p.payload,
            )
            for p in points
        ]
        if converted:
            self._client.upsert(self.collection, converted, wait=True)

    def query(self, dense: list[float] | None, lexical: SparseTerms | None, limit: int, candidates: int) -> list[ScoredChunk]:
        models = self._models
        sparse = models.SparseVector(indices=lexical[0], values=lexical[1]) if lexical is not None and lexical[0] else None
        if dense is not None and sparse is not None:
            response = self._client.query_points(
                self.collection,
                prefetch=[
                    models.Prefetch(query=dense, using=DENSE, limit=candidates),
                    models.Prefetch(query=sparse, using=LEXICAL, limit=candidates),
                ],
                query=models.RrfQuery(rrf=models.Rrf(k=RRF_K)),
                limit=limit,
                with_payload=True,
            )
        elif dense is not None:
            response = self._client.query_points(self.collection, query=dense, using=DENSE, limit=limit, with_payload=True)
        elif sparse is not None:
            response = self._client.query_points(self.collection, query=sparse, using=LEXICAL, limit=limit, with_payload=True)
        else:
            return []
        return [ScoredChunk(float(p.score), dict(p.payload or {})) for p in response.points]

    def count(self) -> int:
        return int(self._client.count(self.collection, exact=True).count)

    def clear(self) -> None:
        self._client.delete_collection(self.collection)
        self._create()

    def close(self) -> None:
        self._client.close()
