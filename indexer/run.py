"""One indexing run of a repository: walk, chunk changed files, embed in batches, store.

    walk -> drop files that disappeared -> for each file whose size or mtime changed:
        read -> same SHA-256 as recorded? keep -> decode -> chunk -> batch
    batch full -> reuse stored vectors by embedding hash -> embed the rest -> replace the files'
    points -> record the files in the manifest

Files whose size and mtime match the manifest are not read at all. A file whose hash matches is
read but never reaches the model, and neither does any chunk whose embedded text already has a
vector in the store, such as the untouched functions of an edited file.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

from cache.embedder import Embedder
from gateway.config import Config
from indexer.chunking import CHUNKER_VERSION, Chunk, chunk_file
from indexer.languages import language_of
from indexer.layout import index_dir, manifest_path, open_store, shard_path, store_location, validate_repo_name
from indexer.lexical import LEXICAL_VERSION, LexicalEncoder
from indexer.manifest import FileRecord, Manifest
from indexer.progress import Progress
from indexer.store import IndexBusy, IndexPoint, IndexStore, point_id, remove_edge_shard
from indexer.walk import UNREADABLE, Candidate, SkipFile, decode_source, walk_repository

__all__ = ["IndexConflict", "IndexSummary", "index_repository", "index_settings"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_CHUNKS = 64
"""Chunks embedded and stored per batch, across files; a stopped run loses at most one batch of work."""
ENCODE_BATCH_CPU = 1
"""Chunks per forward pass on the CPU. Padding a batch to its longest chunk costs more than the
per-call overhead saves: bench/batch_size_bench.py measured 14.2 chunks/s at size 1 against 11.7
at 32 on one thread, and 22.8 against 21.3 on two (2-core AMD EPYC)."""
ENCODE_BATCH_GPU = 256
"""Chunks per forward pass on a GPU, where larger batches keep the device busy."""


def encode_batch_size(device: str | None) -> int:
    """Return the forward-pass batch size for the embedder's device."""
    return ENCODE_BATCH_GPU if (device or "").startswith("cuda") else ENCODE_BATCH_CPU

SHARD_WAIT_S = 15.0
"""How long a run waits for the Qdrant Edge shard; a gateway releases it within its idle period (5 s)."""
OPTIMIZE_SHARE = 0.2
OPTIMIZE_MIN_CHANGED = 1000
"""A run optimizes the store (merges segments, drops deleted points, builds the HNSW graph) once
the chunks written and deleted since the last optimization reach OPTIMIZE_SHARE of the index and
at least OPTIMIZE_MIN_CHANGED. Optimizing 100k chunks took 336 s on 2 busy cores
(bench/index_bench.py), and a search of plain segments took about 12 ms there, so small runs skip it."""
MAX_WARNINGS = 20
"""Warnings about unreadable or undecodable files logged per run; the summary counts the rest."""


class IndexConflict(RuntimeError):
    """The index name is in use by another repository folder."""


@dataclass
class IndexSummary:
    repo: str
    root: str
    files_seen: int = 0
    """Files that passed the path rules."""
    files_indexed: int = 0
    """Files whose chunks were (re)written in this run."""
    files_unchanged: int = 0
    files_deleted: int = 0
    """Files removed from the index: deleted, newly ignored or no longer readable as text."""
    skipped_files: Counter[str] = field(default_factory=Counter)
    skipped_dirs: Counter[str] = field(default_factory=Counter)
    chunks_written: int = 0
    chunks_deleted: int = 0
    """Chunks of replaced and removed files deleted from the store."""
    chunks_embedded: int = 0
    """Chunks that went through the embedding model; the rest of ``chunks_written`` reused stored vectors."""
    chunks_total: int = 0
    """Points in the index after the run."""
    seconds: float = 0.0
    embedding_seconds: float = 0.0
    optimize_seconds: float | None = None
    """Time spent optimizing the store, None when the run skipped it."""
    rebuilt: str | None = None
    """Reason the index was emptied before the run, or None."""
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "root": self.root,
            "files_seen": self.files_seen,
            "files_indexed": self.files_indexed,
            "files_unchanged": self.files_unchanged,
            "files_deleted": self.files_deleted,
            "skipped_files": dict(sorted(self.skipped_files.items())),
            "skipped_dirs": dict(sorted(self.skipped_dirs.items())),
            "chunks_written": self.chunks_written,
            "chunks_deleted": self.chunks_deleted,
            "chunks_embedded": self.chunks_embedded,
            "chunks_total": self.chunks_total,
            "seconds": round(self.seconds, 2),
            "embedding_seconds": round(self.embedding_seconds, 2),
            "optimize_seconds": None if self.optimize_seconds is None else round(self.optimize_seconds, 2),
            "rebuilt": self.rebuilt,
            "resumed": self.resumed,
        }

    def lines(self) -> list[str]:
        """Return the human-readable summary."""

        def reasons(counter: Counter[str]) -> str:
            return ", ".join(f"{count} {reason}" for reason, count in counter.most_common()) or "none"

        optimized = "" if self.optimize_seconds is None else f", store optimized in {self.optimize_seconds:.1f} s"
        return [
            f"indexed {self.repo} ({self.root}) in {self.seconds:.1f} s{optimized}",
            f"  files: {self.files_indexed} indexed, {self.files_unchanged} unchanged, {self.files_deleted} removed",
            f"  skipped files: {sum(self.skipped_files.values())} ({reasons(self.skipped_files)})",
            f"  skipped folders: {sum(self.skipped_dirs.values())} ({reasons(self.skipped_dirs)})",
            f"  chunks: {self.chunks_written} written, {self.chunks_embedded} embedded "
            f"({self.embedding_seconds:.1f} s in the model), {self.chunks_total} in the index",
        ]


def index_settings(config: Config, name: str, embedder: Embedder, root: Path) -> dict[str, str]:
    """Return the settings that the stored vectors depend on; a change means a rebuild."""
    return {
        "root": str(root),
        "model": embedder.model_name,
        "dimension": str(embedder.dimension),
        "chunker": CHUNKER_VERSION,
        "lexical": LEXICAL_VERSION,
        "store": store_location(config, name),
    }


def _embedding_hash(chunk: Chunk) -> str:
    return hashlib.sha256(chunk.embedding_text().encode("utf-8", "surrogatepass")).hexdigest()


@contextmanager
def _run_lock(directory: Path, name: str) -> Iterator[None]:
    """Hold ``run.lock`` so that two runs never write one index, with a Qdrant server too."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "run.lock").open("a") as handle:
        # A gateway's check of the lock holds it shared for an instant, so retry for a moment.
        for attempt in range(10):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if attempt == 9:
                    raise IndexBusy(f"another indexing run of {name!r} is in progress; wait for it to finish") from exc
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _WarningLimiter:
    def __init__(self) -> None:
        self.count = 0

    def warn(self, message: str, *args: Any) -> None:
        self.count += 1
        if self.count <= MAX_WARNINGS:
            logger.warning(message, *args)
        elif self.count == MAX_WARNINGS + 1:
            logger.warning("more files skipped; further warnings are only counted in the summary")


class _Batcher:
    """Collects chunks across files and writes them one batch at a time."""

    def __init__(
        self, store: IndexStore, manifest: Manifest, embedder: Embedder, lexical: LexicalEncoder,
        summary: IndexSummary, progress: Progress, batch_chunks: int,
    ) -> None:
        self.store = store
        self.manifest = manifest
        self.embedder = embedder
        self.lexical = lexical
        self.summary = summary
        self.progress = progress
        self.batch_chunks = batch_chunks
        self.files: list[tuple[FileRecord, list[Chunk]]] = []
        self.removals: list[str] = []
        self.replaced_chunks = 0
        self.touched: list[FileRecord] = []
        self.pending = 0

    def add(self, record: FileRecord, chunks: list[Chunk], old_chunks: int = 0) -> None:
        """Queue a file's chunks; ``old_chunks`` is how many its previous version had in the store."""
        self.files.append((record, chunks))
        self.replaced_chunks += old_chunks
        self.pending += len(chunks)
        if self.pending >= self.batch_chunks:
            self.flush()

    def remove(self, path: str, old_chunks: int) -> None:
        self.removals.append(path)
        self.replaced_chunks += old_chunks

    def touch(self, record: FileRecord) -> None:
        """Record a new size or mtime of a file whose content did not change."""
        self.touched.append(record)

    def flush(self) -> None:
        chunks = [chunk for _, file_chunks in self.files for chunk in file_chunks]
        keys = [_embedding_hash(chunk) for chunk in chunks]
        vectors = self.store.vectors_for(keys) if keys else {}
        missing: dict[str, str] = {}
        for chunk, key in zip(chunks, keys):
            if key not in vectors and key not in missing:
                missing[key] = chunk.embedding_text()
        if missing:
            started = time.perf_counter()
            encoded = self.embedder.encode(list(missing.values()), batch_size=encode_batch_size(self.embedder.device))
            self.summary.embedding_seconds += time.perf_counter() - started
            vectors.update(zip(missing, encoded.tolist()))

        points = []
        keys_in_order = iter(keys)
        for _, file_chunks in self.files:
            for ordinal, chunk in enumerate(file_chunks):
                key = next(keys_in_order)
                payload = {
                    "path": chunk.path, "language": chunk.language, "symbol": chunk.symbol,
                    "start_line": chunk.start_line, "end_line": chunk.end_line, "hash": chunk.hash,
                    "embedding_hash": key, "text": chunk.text,
                }
                lexical = self.lexical.document(chunk.embedding_text())
                points.append(IndexPoint(point_id(chunk.path, ordinal, chunk.hash), vectors[key], lexical, payload))

        replaced = [record.path for record, _ in self.files] + self.removals
        if replaced:
            self.store.delete_paths(replaced)
        self.store.upsert(points)
        self.manifest.record([record for record, _ in self.files] + self.touched)
        self.manifest.remove(self.removals)

        self.summary.files_indexed += len(self.files)
        self.summary.files_deleted += len(self.removals)
        self.summary.chunks_written += len(points)
        self.summary.chunks_deleted += self.replaced_chunks
        self.summary.chunks_embedded += len(missing)
        self.progress.advance(
            files=len(self.files), size=sum(record.size for record, _ in self.files), chunks=len(points), embedded=len(missing)
        )
        self.files, self.removals, self.touched, self.pending, self.replaced_chunks = [], [], [], 0, 0


def index_repository(
    root: Path,
    name: str,
    config: Config,
    embedder: Embedder,
    *,
    rebuild: bool = False,
    batch_chunks: int = BATCH_CHUNKS,
    progress_stream: TextIO | None = None,
    tty: bool | None = None,
) -> IndexSummary:
    """Bring the index ``name`` up to date with the files under ``root``.

    ``embedder`` must be loaded. Raises IndexBusy when another run or process has the index open,
    IndexConflict when ``name`` contains another folder's index (unless ``rebuild``), and
    NotADirectoryError.
    """
    started = time.perf_counter()
    if embedder.state != "ready" or not embedder.dimension:
        raise RuntimeError(f"the embedding model is {embedder.state}, not ready: load it before indexing")
    root = root.resolve()
    validate_repo_name(name)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder")
    summary = IndexSummary(repo=name, root=str(root))
    with _run_lock(index_dir(config, name), name):
        manifest = Manifest(manifest_path(config, name))
        try:
            _check_root(manifest, root, name, rebuild)
            settings = index_settings(config, name, embedder, root)
            summary.rebuilt = _rebuild_reason(manifest.settings(), settings, rebuild)
            if summary.rebuilt and not config.cache.qdrant_url:
                # A shard of another vector size cannot be opened with the new one, so remove it.
                _wait_for_shard(lambda: remove_edge_shard(shard_path(config, name)))
            store = _wait_for_shard(lambda: open_store(config, name, embedder.dimension))
            try:
                _run(root, name, embedder, manifest, store, settings, summary, batch_chunks, progress_stream, tty)
            finally:
                store.close()
        finally:
            manifest.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _wait_for_shard(action: Callable[[], T]) -> T:
    """Run ``action``, retrying for up to SHARD_WAIT_S while a gateway still has the shard open."""
    deadline = time.monotonic() + SHARD_WAIT_S
    while True:
        try:
            return action()
        except IndexBusy:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _rebuild_reason(previous: dict[str, str], settings: dict[str, str], rebuild: bool) -> str | None:
    if rebuild:
        return "requested"
    changed = sorted(k for k, v in settings.items() if previous.get(k) not in (None, v))
    if not changed:
        return None
    return "changed " + ", ".join(f"{k}: {previous[k]} -> {settings[k]}" for k in changed)


def _check_root(manifest: Manifest, root: Path, name: str, rebuild: bool) -> None:
    recorded = manifest.get("root")
    if recorded and recorded != str(root) and not rebuild and manifest.totals()[0]:
        raise IndexConflict(
            f"the index {name!r} contains {recorded}, not {root}: pass --name to index this folder under "
            f"another name, or --rebuild to replace the index"
        )


def _run(
    root: Path, name: str, embedder: Embedder, manifest: Manifest, store: IndexStore, settings: dict[str, str],
    summary: IndexSummary, batch_chunks: int, progress_stream: TextIO | None, tty: bool | None,
) -> None:
    if summary.rebuilt:
        logger.info("rebuilding the index %s from scratch (%s)", name, summary.rebuilt)
        store.clear()
        manifest.clear()
    elif manifest.get("run_state") == "running":
        summary.resumed = True
        logger.info("resuming the interrupted indexing run of %s", name)
    for key, value in settings.items():
        manifest.set(key, value)
    manifest.mark_run("running")

    walk = walk_repository(root)
    summary.files_seen = len(walk.files)
    summary.skipped_files.update(walk.skipped_files)
    summary.skipped_dirs.update(walk.skipped_dirs)
    known = manifest.files()
    deleted_paths = sorted(set(known) - {c.path for c in walk.files})
    if deleted_paths:
        store.delete_paths(deleted_paths)
        manifest.remove(deleted_paths)
        summary.files_deleted += len(deleted_paths)
        summary.chunks_deleted += sum(known[path].chunks for path in deleted_paths)

    todo = [c for c in walk.files if not _same_stat(known.get(c.path), c)]
    summary.files_unchanged = len(walk.files) - len(todo)
    progress = Progress(len(todo), sum(c.size for c in todo), stream=progress_stream, tty=tty)
    batcher = _Batcher(store, manifest, embedder, LexicalEncoder(), summary, progress, batch_chunks)
    warnings = _WarningLimiter()
    for candidate in todo:
        _index_file(candidate, known.get(candidate.path), batcher, summary, progress, warnings)
    batcher.flush()
    progress.finish()
    summary.chunks_total = store.count()
    _optimize_when_due(store, manifest, summary)
    manifest.mark_run("complete")


def _optimize_when_due(store: IndexStore, manifest: Manifest, summary: IndexSummary) -> None:
    changed = int(manifest.get("changed_since_optimize") or 0) + summary.chunks_written + summary.chunks_deleted
    if changed and changed >= max(OPTIMIZE_MIN_CHANGED, OPTIMIZE_SHARE * summary.chunks_total):
        logger.info("optimizing the store of %s after %d changed chunks", summary.repo, changed)
        started = time.perf_counter()
        store.optimize()
        summary.optimize_seconds = time.perf_counter() - started
        changed = 0
    manifest.set("changed_since_optimize", str(changed))


def _same_stat(record: FileRecord | None, candidate: Candidate) -> bool:
    return record is not None and record.size == candidate.size and record.mtime_ns == candidate.mtime_ns


def _index_file(
    candidate: Candidate, known: FileRecord | None, batcher: _Batcher, summary: IndexSummary,
    progress: Progress, warnings: _WarningLimiter,
) -> None:
    try:
        data = candidate.absolute.read_bytes()
    except OSError as exc:
        warnings.warn("skipping %s: cannot read it: %s", candidate.path, exc)
        _skip(candidate, known, UNREADABLE, batcher, summary, progress)
        return
    sha = hashlib.sha256(data).hexdigest()
    if known is not None and known.sha256 == sha:
        batcher.touch(replace(known, size=candidate.size, mtime_ns=candidate.mtime_ns))
        summary.files_unchanged += 1
        progress.advance(files=1, size=candidate.size)
        return
    try:
        text = decode_source(data)
    except SkipFile as skip:
        if skip.reason == "undecodable":
            warnings.warn("skipping %s: %s", candidate.path, skip.detail)
        else:
            logger.debug("skipping %s: %s", candidate.path, skip)
        _skip(candidate, known, skip.reason, batcher, summary, progress)
        return
    language = language_of(candidate.path)
    chunks = chunk_file(candidate.path, text, language)
    record = FileRecord(candidate.path, sha, candidate.size, candidate.mtime_ns, len(chunks), language)
    batcher.add(record, chunks, known.chunks if known is not None else 0)


def _skip(candidate: Candidate, known: FileRecord | None, reason: str, batcher: _Batcher, summary: IndexSummary, progress: Progress) -> None:
    summary.skipped_files[reason] += 1
    if known is not None:
        batcher.remove(candidate.path, known.chunks)
    progress.advance(files=1, size=candidate.size)
