"""``POST /v1/embeddings`` in the OpenAI format, served by the gateway's local embedding model.

Every successful request is a cloud embedding call not made, so its tokens count as saved at
``pricing.embedding_cloud_per_1k`` in the metrics and the ledger (route ``local``, task
``embeddings``). The vectors come from the local model (all-MiniLM-L6-v2 by default, 384
dimensions), so they are not interchangeable with a cloud model's vectors. The response's
``model`` field names the local model.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import numpy as np
from litestar import Request, Response, post

from cache.embedder import Embedder
from gateway.app import error_response, gateway_state, json_response, pipeline_of, read_body
from gateway.errors import APIError, EmbedderUnavailable, InvalidRequest
from gateway.parsing import parse_body
from gateway.pipeline import RequestRecord, new_request_id
from gateway.state import GatewayState

__all__ = ["HANDLERS", "local_embedder"]

logger = logging.getLogger(__name__)

MAX_INPUTS = 2048
"""OpenAI's limit on inputs per request."""
EMBEDDER_WAIT_S = 60.0
"""How long a request waits for the model to finish loading (it takes seconds to load on CPU)."""
ENCODING_FORMATS = ("float", "base64")


async def local_embedder(state: GatewayState) -> Embedder:
    """Return the gateway's loaded embedding model, waiting up to EMBEDDER_WAIT_S while it loads.

    Without the semantic cache the gateway has no model, so the first call starts one of its own.

    Raises:
        EmbedderUnavailable: the model failed to load or is still loading after the wait.
    """
    embedder = state.embedder or state.extras.get("local_embedder")
    if embedder is None:
        cache = state.config.cache
        embedder = Embedder(cache.embedding_model, device=cache.embedding_device, threads=cache.embedding_threads)
        state.extras["local_embedder"] = embedder
        logger.info("loading the embedding model for /v1/embeddings and /v1/search (the semantic cache is off)")
        embedder.start()
    if embedder.state == "loading":
        await asyncio.to_thread(embedder.wait_ready, EMBEDDER_WAIT_S)
    if embedder.state != "ready":
        reason = f": {embedder.error}" if embedder.error else f" after {EMBEDDER_WAIT_S:g} s; retry shortly"
        raise EmbedderUnavailable(f"the embedding model is {embedder.state}{reason}")
    return embedder


def parse_embedding_request(body: dict[str, Any], dimension: int) -> tuple[list[str], str]:
    """Return the input texts and the encoding format of an embeddings request body.

    Raises:
        InvalidRequest: a missing model or input, token arrays, empty strings, too many inputs,
            an unknown encoding format, or ``dimensions`` other than the model's.
    """
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("model is required: send the name of an embedding model", param="model")
    raw = body.get("input")
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        texts = list(raw)
    elif isinstance(raw, list) and raw and all(isinstance(item, (int, list)) for item in raw):
        raise InvalidRequest("input as token arrays is not supported: send the text as a string or an array of strings", param="input")
    else:
        raise InvalidRequest("input is required: send a non-empty string or array of strings", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidRequest(f"input has {len(texts)} items, more than the limit of {MAX_INPUTS}", param="input")
    for index, text in enumerate(texts):
        if not text:
            raise InvalidRequest(f"input[{index}] is an empty string: every input must contain text", param="input")
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ENCODING_FORMATS:
        raise InvalidRequest(f"encoding_format must be 'float' or 'base64', not {encoding_format!r}", param="encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and dimensions != dimension:
        raise InvalidRequest(
            f"dimensions must be {dimension} (the local model's vector size) or absent, not {dimensions!r}", param="dimensions"
        )
    return texts, encoding_format


def _encode_vector(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


@post("/v1/embeddings", status_code=200)
async def create_embeddings(request: Request[Any, Any, Any]) -> Response[bytes]:
    state = gateway_state(request)
    pipeline = pipeline_of(request)
    record = RequestRecord(request_id=request.headers.get("x-request-id") or new_request_id(), endpoint="embeddings")
    record.attribute(request.scope.get("state", {}).get("identity"))
    headers = {"x-request-id": record.request_id}
    try:
        body = parse_body(await read_body(request))
        record.model = body.get("model") if isinstance(body.get("model"), str) else None
        embedder = await local_embedder(state)
        texts, encoding_format = parse_embedding_request(body, embedder.dimension or 0)
        counts = await asyncio.to_thread(embedder.count_tokens_batch, texts)
        vectors = await embedder.embed_many(texts)
    except APIError as error:
        if error.status_code >= 500:
            logger.warning("embeddings request %s failed with status %d: %s", record.request_id, error.status_code, error.message)
        record.status, record.error = error.status_code, error.message
        pipeline.finish(record)
        return error_response(error, headers)

    # NOTE: the model embeds the first max_seq_length word pieces (256 for the default model) of
    # each input and ignores the rest, while usage counts every token, as a cloud API would bill.
    tokens = sum(counts)
    record.route, record.task = "local", "embeddings"
    record.upstream, record.upstream_model = "embedder", embedder.model_name
    record.tokens_in = record.tokens_saved = tokens
    record.cost_saved_usd = tokens * state.config.pricing.embedding_cloud_per_1k / 1000
    pipeline.finish(record)
    data = [
        {"object": "embedding", "index": index, "embedding": _encode_vector(vector, encoding_format)}
        for index, vector in enumerate(vectors)
    ]
    answer = {"object": "list", "data": data, "model": embedder.model_name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return json_response(answer, headers=headers)


HANDLERS: list[Any] = [create_embeddings]
