"""Repository names and the place of each index under the data directory.

    <data_path>/index/<name>/manifest.sqlite3   which files are indexed, by content hash
    <data_path>/index/<name>/shard/             the Qdrant Edge shard (absent with a Qdrant server)
    <data_path>/index/<name>/run.lock           held while an indexing run writes
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from gateway.config import Config

__all__ = [
    "InvalidRepoName",
    "collection_name",
    "default_repo_name",
    "index_dir",
    "indexed_repos",
    "manifest_path",
    "open_store",
    "shard_path",
    "store_location",
    "validate_repo_name",
]

REPO_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MANIFEST_NAME = "manifest.sqlite3"


class InvalidRepoName(ValueError):
    """A repository name that cannot name a directory and a Qdrant collection."""


def validate_repo_name(name: str) -> str:
    """Return ``name`` unchanged; raise InvalidRepoName unless it is 1-100 of ``A-Za-z0-9._-``."""
    if not REPO_NAME_PATTERN.fullmatch(name):
        raise InvalidRepoName(
            f"invalid repository name {name!r}: use 1 to 100 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit"
        )
    return name


def default_repo_name(root: Path) -> str:
    """Return the directory name of ``root`` with characters outside ``A-Za-z0-9._-`` replaced by '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", root.resolve().name).strip("-._")[:100]
    return name or "repo"


def index_root(config: Config) -> Path:
    return config.data_path / "index"


def index_dir(config: Config, name: str) -> Path:
    return index_root(config) / validate_repo_name(name)


def manifest_path(config: Config, name: str) -> Path:
    return index_dir(config, name) / MANIFEST_NAME


def shard_path(config: Config, name: str) -> Path:
    return index_dir(config, name) / "shard"


def collection_name(config: Config, name: str) -> str:
    """Return the Qdrant server collection of repository ``name``."""
    return f"{config.cache.collection}_index_{validate_repo_name(name)}"


def indexed_repos(config: Config) -> list[str]:
    """Return the names of repositories that have a manifest, sorted."""
    root = index_root(config)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST_NAME).is_file() and REPO_NAME_PATTERN.fullmatch(p.name))


def open_store(config: Config, name: str, dimension: int, *, create: bool = True):
    """Open the vector store of repository ``name``: a Qdrant server collection when
    ``cache.qdrant_url`` is set, else the Qdrant Edge shard in the index folder.

    Raises:
        IndexBusy: another process has the Qdrant Edge shard open.
        FileNotFoundError: ``create`` is False and the store does not exist.
    """
    from indexer.store import EdgeIndexStore, ServerIndexStore

    cache = config.cache
    if cache.qdrant_url:
        api_key = os.environ.get(cache.qdrant_api_key_env, "") if cache.qdrant_api_key_env else ""
        return ServerIndexStore(cache.qdrant_url, collection_name(config, name), dimension, api_key=api_key, create=create)
    return EdgeIndexStore(shard_path(config, name), dimension, create=create)


def store_location(config: Config, name: str) -> str:
    """Return where the vectors of ``name`` live, as recorded in the manifest.

    The Qdrant Edge shard always sits next to the manifest, so its entry names no path and a
    moved data directory keeps its indexes.
    """
    if config.cache.qdrant_url:
        return f"{config.cache.qdrant_url} collection {collection_name(config, name)}"
    return "qdrant-edge"
