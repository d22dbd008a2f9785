"""Errors of the cache package.

    CacheError               a cache store or the embedder failed
    ├── StoreUnavailable     a store could not be reached or timed out
    └── StoreLocked          the embedded vector store's directory is used by another process
"""

from __future__ import annotations

__all__ = ["CacheError", "StoreLocked", "StoreUnavailable"]


class CacheError(Exception):
    """A cache store or the embedder failed."""


class StoreUnavailable(CacheError):
    """A store could not be reached or did not respond in time."""


class StoreLocked(CacheError):
    """The embedded vector store's directory is held by another process."""
