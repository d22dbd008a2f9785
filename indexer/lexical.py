"""Sparse lexical vectors: BM25 term weights over code-aware tokens.

Qdrant Edge's ``Bm25`` encoder (qdrant-edge-py 0.9) with its ``Code`` tokenizer splits identifiers
at ``snake_case`` and ``camelCase`` boundaries and keeps the whole identifier too, so
``raise_for_status`` matches the words "raise", "status" and the exact name. Words are lowercased,
stemmed and English stop words dropped. Documents get BM25 term-frequency weights and queries
weight 1 per token. The store multiplies in each token's IDF (the sparse vector's ``Idf``
modifier), so the score is BM25. The same vectors work with a Qdrant server collection.
"""

from __future__ import annotations

import threading

import qdrant_edge as edge

__all__ = ["LEXICAL_VERSION", "LexicalEncoder", "SparseTerms"]

LEXICAL_VERSION = "bm25-code-1"
"""Stored in the manifest: documents and queries must be encoded alike."""

SparseTerms = tuple[list[int], list[float]]


class LexicalEncoder:
    """Encodes documents and queries as (indices, values) sparse vectors."""

    def __init__(self) -> None:
        self._model = edge.Bm25(edge.Bm25Config(tokenizer=edge.TokenizerType.Code))
        self._lock = threading.Lock()

    def document(self, text: str) -> SparseTerms:
        with self._lock:
            vector = self._model.embed_document(text)
        return list(vector.indices), list(vector.values)

    def query(self, text: str) -> SparseTerms:
        with self._lock:
            vector = self._model.embed_query(text)
        return list(vector.indices), list(vector.values)
