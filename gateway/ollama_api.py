"""Ollama's native API on the gateway, so IDE plugins configured for Ollama can use it unchanged.

    POST /api/chat, /api/generate    -> OpenAI chat or completion request -> CompletionPipeline
    POST /api/embed, /api/embeddings -> the embedding model of /v1/embeddings
    GET  /api/tags, /api/ps, /api/version, POST /api/show, GET and HEAD /

Chat and generate requests become the OpenAI body that an OpenAI client would send for the same
thing, so the caches, routing, metrics and ledger apply unchanged and both protocols share cache
entries. ``/api/generate`` maps by its fields:

- with ``suffix`` (fill in the middle): a ``/v1/completions`` request with ``prompt`` and ``suffix``;
- with ``raw: true``: a ``/v1/completions`` request with the prompt as is;
- otherwise: a chat request of ``system`` and ``prompt``, because Ollama applies the model's chat
  template to such a prompt.

Ollama streams by default: a request without ``"stream": false`` gets NDJSON, one JSON object per
line, ending with a ``"done": true`` object that carries the token counts and durations (ns).
Errors come back as ``{"error": "..."}`` with the HTTP status of the failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from litestar import Request, Response, get, head, post
from litestar.response import Stream

from gateway.app import gateway_state, json_response, pipeline_of, read_body
from gateway.config import Config, ModelConfig
from gateway.embeddings_api import local_embedder
from gateway.errors import APIError, InvalidRequest
from gateway.fim import AUTO, guess_family, templates
from gateway.ollama_wire import (
    done_reason_of,
    format_to_response_format,
    messages_to_openai,
    options_to_openai,
    parse_duration_s,
    rfc3339,
    timing_stats,
    tool_calls_to_ollama,
)
from gateway.parsing import CHAT, COMPLETION, parse_body, parse_completion_request
from gateway.pipeline import Reply, RequestRecord, new_request_id
from gateway.sse import parse_data_line
from gateway.state import GatewayState

__all__ = ["HANDLERS", "OLLAMA_API_VERSION"]

logger = logging.getLogger(__name__)

OLLAMA_API_VERSION = "0.9.0"
"""Version reported by ``/api/version``: the Ollama release whose ``/api`` fields this module
follows. Clients gate on it; VS Code Copilot Chat's Ollama provider requires at least 0.6.4."""

NDJSON = "application/x-ndjson"
LOADED_MODELS_KEY = "ollama_loaded_models"
"""``GatewayState.extras`` key: model name -> expiry time of its keep-alive, for ``/api/ps``."""

DEFAULT_KEEP_ALIVE_S = 300.0
"""Ollama's default keep-alive of 5 minutes, used for a ``keep_alive`` value that does not parse."""
KEEP_LOADED_S = 100 * 365 * 86400.0
"""Stand-in for a negative ``keep_alive``, which keeps a model loaded until it is unloaded."""

_STARTED_AT = rfc3339()
_warned: set[tuple[str, str]] = set()


def ollama_error(message: str, status: int, headers: dict[str, str] | None = None) -> Response[bytes]:
    """Return an error the way Ollama does: ``{"error": "<message>"}`` with the status code."""
    return json_response({"error": message}, status, headers)


def _warn_ignored(field: str, model: str, detail: str) -> None:
    # Once per field and model, because an IDE repeats the same request shape for every keystroke.
    if (field, model) in _warned:
        logger.debug("model %s: %s", model, detail)
        return
    _warned.add((field, model))
    logger.warning("model %s: %s (logged once per model)", model, detail)


def resolve_model(config: Config, name: str) -> ModelConfig | None:
    """Return the configured model, treating ``name`` and ``name:latest`` as one, as Ollama does."""
    model = config.model(name)
    if model is None and name.endswith(":latest"):
        model = config.model(name[: -len(":latest")])
    if model is None and ":" not in name:
        model = config.model(name + ":latest")
    return model


# -- requests ---------------------------------------------------------------------------------


@dataclass
class OllamaCall:
    """An Ollama chat or generate request and the OpenAI request it became."""

    shape: str
    """``chat`` or ``generate``: the Ollama response shape the client reads."""
    kind: str
    """``CHAT`` or ``COMPLETION``: the OpenAI request sent to the pipeline."""
    model: str
    """The model name as the client sent it, echoed in every response."""
    stream: bool
    body: dict[str, Any] | None
    """The OpenAI body; None for a request without input, which only loads or unloads the model."""
    keep_alive: Any = None


def _common_fields(raw: dict[str, Any]) -> tuple[str, bool]:
    model = raw.get("model")
    if model is None or model == "":
        raise InvalidRequest("model is required", param="model")
    if not isinstance(model, str):
        raise InvalidRequest("model must be a string", param="model")
    stream = raw.get("stream")
    if stream is None:
        stream = True
    if not isinstance(stream, bool):
        raise InvalidRequest("stream must be true or false", param="stream")
    return model, stream


def _finish_body(raw: dict[str, Any], body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """Add the options, ``format`` and gateway fields shared by chat and generate."""
    dropped = options_to_openai(raw.get("options"), body)
    if dropped:
        logger.debug("model %s: options without an OpenAI field are not sent upstream: %s", model, ", ".join(sorted(dropped)))
    response_format = format_to_response_format(raw.get("format"))
    if response_format is not None:
        body["response_format"] = response_format
    if "cache" in raw:
        body["cache"] = raw["cache"]
    if stream:
        # The final NDJSON object reports token counts, so ask for the usage chunk.
        body["stream_options"] = {"include_usage": True}
    return body


def translate_chat(raw: dict[str, Any], config: Config) -> OllamaCall:
    """Turn an ``/api/chat`` body into an OpenAI chat request.

    Raises:
        InvalidRequest: a field has the wrong type.
    """
    name, stream = _common_fields(raw)
    configured = resolve_model(config, name)
    target_name = configured.name if configured is not None else name
    messages = raw.get("messages")
    if not messages:
        return OllamaCall("chat", CHAT, name, stream, None, raw.get("keep_alive"))
    body: dict[str, Any] = {"model": target_name, "messages": messages_to_openai(messages), "stream": stream}
    if raw.get("tools"):
        body["tools"] = raw["tools"]
    if raw.get("think"):
        _warn_ignored("think", name, "'think' is ignored: the gateway returns the answer without a separate thinking part")
    return OllamaCall("chat", CHAT, name, stream, _finish_body(raw, body, name, stream), raw.get("keep_alive"))


def translate_generate(raw: dict[str, Any], config: Config) -> OllamaCall:
    """Turn an ``/api/generate`` body into an OpenAI completion (FIM or raw) or chat request.

    Raises:
        InvalidRequest: a field has the wrong type.
    """
    name, stream = _common_fields(raw)
    configured = resolve_model(config, name)
    target_name = configured.name if configured is not None else name
    prompt = raw.get("prompt") or ""
    suffix = raw.get("suffix")
    system = raw.get("system")
    for field_name, value in (("prompt", prompt), ("suffix", suffix), ("system", system)):
        if value is not None and not isinstance(value, str):
            raise InvalidRequest(f"{field_name} must be a string", param=field_name)
    if raw.get("images"):
        _warn_ignored("images", name, "'images' on /api/generate are ignored; send images through /api/chat")
    for ignored in ("template", "context"):
        if raw.get(ignored):
            _warn_ignored(ignored, name, f"'{ignored}' on /api/generate is ignored by the gateway")
    if not prompt and not suffix:
        return OllamaCall("generate", COMPLETION, name, stream, None, raw.get("keep_alive"))

    body: dict[str, Any]
    if suffix is not None:
        body = {"model": target_name, "prompt": prompt, "suffix": suffix, "stream": stream}
        kind = COMPLETION
    elif raw.get("raw"):
        body = {"model": target_name, "prompt": prompt, "stream": stream}
        kind = COMPLETION
    else:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        body = {"model": target_name, "messages": messages, "stream": stream}
        kind = CHAT
    return OllamaCall("generate", kind, name, stream, _finish_body(raw, body, name, stream), raw.get("keep_alive"))


# -- responses ----------------------------------------------------------------------------------


def _answer_line(call: OllamaCall, text: str, tool_calls: list[dict[str, Any]] | None = None, thinking: str = "") -> dict[str, Any]:
    line: dict[str, Any] = {"model": call.model, "created_at": rfc3339()}
    if call.shape == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if thinking:
            message["thinking"] = thinking
        if tool_calls:
            message["tool_calls"] = tool_calls
        line["message"] = message
    else:
        line["response"] = text
    return line


def answer_to_ollama(call: OllamaCall, data: dict[str, Any], started_ns: int) -> dict[str, Any]:
    """Return the Ollama response for a complete OpenAI response; only the first choice is kept."""
    choices = data.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    if call.kind == CHAT:
        message = choice.get("message") or {}
        text = message.get("content") or ""
        thinking = message.get("reasoning_content") or message.get("reasoning") or ""
        calls = tool_calls_to_ollama(message.get("tool_calls"))
    else:
        text, thinking, calls = choice.get("text") or "", "", []
    answer = _answer_line(call, text, calls, thinking if isinstance(thinking, str) else "")
    answer["done"] = True
    answer["done_reason"] = done_reason_of(choice.get("finish_reason"))
    answer.update(timing_stats(data.get("usage"), started_ns, None, time.perf_counter_ns()))
    return answer


def _ndjson(value: dict[str, Any]) -> bytes:
    # ASCII escapes keep a lone surrogate from the client valid JSON instead of invalid UTF-8.
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


class _StreamState:
    """Progress of the relay through the OpenAI stream: usage, finish reason, tool calls."""

    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.first_token_ns: int | None = None
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.done = False

    def add_tool_call_deltas(self, deltas: list[dict[str, Any]]) -> None:
        for delta in deltas:
            position = delta.get("index", len(self.tool_calls))
            call = self.tool_calls.setdefault(position, {"function": {"name": "", "arguments": ""}})
            function = delta.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""


async def relay_ndjson(call: OllamaCall, events: AsyncIterator[bytes], started_ns: int) -> AsyncIterator[bytes]:
    """Turn the pipeline's OpenAI SSE events into Ollama's NDJSON lines.

    Tool calls arrive as one line once complete, as Ollama sends them. A stream that fails yields
    ``{"error": ...}`` as its last line.
    """
    state = _StreamState()
    buffer = b""
    try:
        async for piece in events:
            buffer += piece
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for raw_line in event.split(b"\n"):
                    payload = parse_data_line(raw_line.decode("utf-8", "surrogatepass"))
                    if not payload:
                        continue
                    if payload == "[DONE]":
                        state.done = True
                        continue
                    chunk = json.loads(payload)
                    if "error" in chunk:
                        yield _ndjson({"error": _error_text(chunk["error"])})
                        return
                    line = _stream_chunk_line(call, chunk, state)
                    if line is not None:
                        yield _ndjson(line)
        if not state.done:
            yield _ndjson({"error": "the answer stream ended before it finished"})
            return
        if state.tool_calls:
            calls = [state.tool_calls[i] for i in sorted(state.tool_calls)]
            yield _ndjson({**_answer_line(call, "", tool_calls_to_ollama(calls)), "done": False})
        final = _answer_line(call, "")
        final["done"] = True
        final["done_reason"] = done_reason_of(state.finish_reason)
        final.update(timing_stats(state.usage, started_ns, state.first_token_ns, time.perf_counter_ns()))
        yield _ndjson(final)
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            # Closing the pipeline's stream writes its ledger line, also when the client left early.
            await close()


def _stream_chunk_line(call: OllamaCall, chunk: dict[str, Any], state: _StreamState) -> dict[str, Any] | None:
    if chunk.get("usage"):
        state.usage = chunk["usage"]
    choices = [c for c in chunk.get("choices") or [] if isinstance(c, dict) and c.get("index", 0) == 0]
    if not choices:
        return None
    choice = choices[0]
    state.finish_reason = choice.get("finish_reason") or state.finish_reason
    if call.kind == CHAT:
        delta = choice.get("delta") or {}
        if delta.get("tool_calls"):
            state.add_tool_call_deltas(delta["tool_calls"])
        text = delta.get("content") or ""
        thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
    else:
        text, thinking = choice.get("text") or "", ""
    if not text and not thinking:
        return None
    if state.first_token_ns is None:
        state.first_token_ns = time.perf_counter_ns()
    return {**_answer_line(call, text, None, thinking if isinstance(thinking, str) else ""), "done": False}


# -- chat and generate ------------------------------------------------------------------------


def _mark_loaded(state: GatewayState, call: OllamaCall) -> None:
    """Remember the model for ``/api/ps`` until its keep-alive runs out; 0 unloads it."""
    loaded: dict[str, float] = state.extras.setdefault(LOADED_MODELS_KEY, {})
    model = resolve_model(state.config, call.model)
    if model is None:
        return
    keep_alive = call.keep_alive
    if keep_alive is None:
        keep_alive = state.config.upstreams[model.upstream].keep_alive
    try:
        seconds = parse_duration_s(keep_alive)
    except ValueError:
        seconds = DEFAULT_KEEP_ALIVE_S
    if seconds == 0:
        loaded.pop(model.name, None)
    else:
        loaded[model.name] = time.time() + (seconds if seconds is not None else KEEP_LOADED_S)


def _load_answer(call: OllamaCall) -> dict[str, Any]:
    try:
        unload = parse_duration_s(call.keep_alive) == 0 if call.keep_alive is not None else False
    except ValueError:
        unload = False
    return {**_answer_line(call, ""), "done": True, "done_reason": "unload" if unload else "load"}


async def _serve(request: Request[Any, Any, Any], shape: str) -> Response[Any]:
    pipeline = pipeline_of(request)
    state = gateway_state(request)
    record = RequestRecord(request_id=request.headers.get("x-request-id") or new_request_id(), endpoint=f"ollama.{shape}")
    record.attribute(request.scope.get("state", {}).get("identity"))
    started_ns = time.perf_counter_ns()
    try:
        raw = parse_body(await read_body(request))
        call = translate_chat(raw, state.config) if shape == "chat" else translate_generate(raw, state.config)
        if call.body is None:
            if resolve_model(state.config, call.model) is None:
                return ollama_error(f"model {call.model!r} not found; configured models: {_model_names(state.config)}", 404)
            _mark_loaded(state, call)
            return json_response(_load_answer(call))
        completion = parse_completion_request(call.body, call.kind)
        reply = await pipeline.handle(completion, request.headers, record)
    except APIError as error:
        record.status, record.error = error.status_code, error.message
        pipeline.finish(record)
        return ollama_error(error.message, error.status_code, {"x-request-id": record.request_id})

    if reply.status == 200:
        _mark_loaded(state, call)
    return _reply_response(call, reply, started_ns)


def _reply_response(call: OllamaCall, reply: Reply, started_ns: int) -> Response[Any]:
    if reply.stream is not None:
        headers = {**reply.headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return Stream(relay_ndjson(call, reply.stream, started_ns), status_code=reply.status, media_type=NDJSON, headers=headers)
    body = reply.body or {}
    if reply.status != 200:
        return ollama_error(_error_text(body.get("error", body)), reply.status, reply.headers)
    return json_response(answer_to_ollama(call, body, started_ns), 200, reply.headers)


@post("/api/chat", status_code=200)
async def api_chat(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(request, "chat")


@post("/api/generate", status_code=200)
async def api_generate(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _serve(request, "generate")


# -- models -----------------------------------------------------------------------------------


def _model_names(config: Config) -> str:
    return ", ".join(m.name for m in config.models) or "none"


def _architecture(model: ModelConfig) -> str:
    """Guess the architecture name from the upstream model name: ``qwen2.5-coder:7b`` -> ``qwen2``."""
    base = model.upstream_model.rsplit("/", 1)[-1].lower()
    match = re.match(r"[a-z]+\d*", base)
    return match.group(0) if match else "unknown"


def _parameter_size(model: ModelConfig) -> str:
    match = re.search(r"(\d+(?:\.\d+)?)([bm])\b", model.upstream_model.lower())
    return f"{match.group(1)}{match.group(2).upper()}" if match else ""


def _details(model: ModelConfig) -> dict[str, Any]:
    # Derived from the names only: the gateway does not see the upstream's weights.
    family = _architecture(model)
    return {
        "parent_model": "",
        "format": "gguf",
        "family": family,
        "families": [family],
        "parameter_size": _parameter_size(model),
        "quantization_level": "",
    }


def _digest(model: ModelConfig) -> str:
    return hashlib.sha256(f"{model.name}\0{model.upstream}\0{model.upstream_model}".encode()).hexdigest()


def _fim_family(config: Config, model: ModelConfig) -> str | None:
    upstream = config.upstreams[model.upstream]
    if model.fim_template:
        return model.fim_template
    if upstream.fim_template and upstream.fim_template != AUTO:
        return upstream.fim_template
    return guess_family(model.upstream_model) or guess_family(model.name)


def _prompt_template(config: Config, family: str | None) -> str:
    """Return a Go template like Ollama's; clients such as Continue look for ``.Suffix`` in it."""
    if family is None:
        return "{{ .Prompt }}"
    fim = templates(config).get(family)
    if fim is None:
        return "{{ .Prompt }}"
    insert = fim.template.replace("{prefix}", "{{ .Prompt }}").replace("{suffix}", "{{ .Suffix }}")
    return "{{- if .Suffix }}" + insert + "{{- else }}{{ .Prompt }}{{- end }}"


@get("/api/tags")
async def api_tags(request: Request[Any, Any, Any]) -> Response[bytes]:
    config = gateway_state(request).config
    models = [
        {"name": m.name, "model": m.name, "modified_at": _STARTED_AT, "size": 0, "digest": _digest(m), "details": _details(m)}
        for m in config.models
    ]
    return json_response({"models": models})


@post("/api/show", status_code=200)
async def api_show(request: Request[Any, Any, Any]) -> Response[bytes]:
    config = gateway_state(request).config
    try:
        raw = parse_body(await read_body(request))
    except APIError as error:
        return ollama_error(error.message, error.status_code)
    # Older clients, such as Continue, send the name as "name".
    name = raw.get("model") or raw.get("name")
    if not isinstance(name, str) or not name:
        return ollama_error("model is required", 400)
    model = resolve_model(config, name)
    if model is None:
        return ollama_error(f"model {name!r} not found; configured models: {_model_names(config)}", 404)

    upstream = config.upstreams[model.upstream]
    details = _details(model)
    architecture = details["family"]
    family = _fim_family(config, model)
    capabilities = ["completion", "tools"] + (["insert"] if family else [])
    answer = {
        "modelfile": f"# Served by copilot-bridge: upstream {model.upstream}, model {model.upstream_model}\nFROM {model.upstream_model}\n",
        # One "key value" per line and no blank line: Continue parses every line of it.
        "parameters": f"num_ctx {upstream.context_window}",
        "template": _prompt_template(config, family),
        "details": details,
        "model_info": {
            "general.architecture": architecture,
            "general.basename": model.name,
            f"{architecture}.context_length": upstream.context_window,
        },
        "capabilities": capabilities,
        "modified_at": _STARTED_AT,
    }
    return json_response(answer)


@get("/api/ps")
async def api_ps(request: Request[Any, Any, Any]) -> Response[bytes]:
    """List the models that served an ``/api`` request within their keep-alive."""
    state = gateway_state(request)
    loaded: dict[str, float] = state.extras.get(LOADED_MODELS_KEY, {})
    now = time.time()
    models = []
    for name, expires in sorted(loaded.items()):
        model = state.config.model(name)
        if model is None or expires <= now:
            continue
        models.append({
            "name": model.name,
            "model": model.name,
            "size": 0,
            "digest": _digest(model),
            "details": _details(model),
            "expires_at": rfc3339(min(expires, 253402300799.0)),
            "size_vram": 0,
            "context_length": state.config.upstreams[model.upstream].context_window,
        })
    return json_response({"models": models})


@get("/api/version")
async def api_version() -> Response[bytes]:
    return json_response({"version": OLLAMA_API_VERSION})


@get("/")
async def root() -> Response[str]:
    # Ollama returns this text at its root, and some clients probe it to detect a server.
    return Response(content="Ollama is running", media_type="text/plain")


@head("/")
async def root_head() -> Response[None]:
    return Response(content=None, media_type="text/plain")


# -- embeddings -------------------------------------------------------------------------------


def _texts_of(value: Any, field_name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidRequest(f"{field_name} must be a string or an array of strings", param=field_name)


async def _embed(request: Request[Any, Any, Any], raw: dict[str, Any], texts: list[str], endpoint: str) -> tuple[np.ndarray, int]:
    """Embed ``texts`` with the gateway's model and write the ledger line; returns vectors and tokens.

    The model and the ledger line are those of ``POST /v1/embeddings`` (gateway/embeddings_api.py).

    Raises:
        InvalidRequest: ``truncate`` is false and an input is longer than the model's sequence length.
        EmbedderUnavailable: the embedding model failed to load or is still loading.
    """
    state = gateway_state(request)
    embedder = await local_embedder(state)
    if not texts:
        # Clients send an empty input to load the model; there is nothing to embed or account.
        return np.zeros((0, embedder.dimension or 0), dtype=np.float32), 0

    counts = await asyncio.to_thread(embedder.count_tokens_batch, texts)
    limit = embedder.max_seq_length
    if raw.get("truncate") is False and limit and any(count > limit for count in counts):
        raise InvalidRequest(f"input length exceeds the embedding model's context length of {limit} tokens; send truncate: true or shorter input")
    vectors = await embedder.embed_many(texts)

    tokens = sum(counts)
    record = RequestRecord(request_id=request.headers.get("x-request-id") or new_request_id(), endpoint=endpoint)
    record.attribute(request.scope.get("state", {}).get("identity"))
    record.model, record.task, record.route = str(raw.get("model")), "embeddings", "local"
    record.upstream, record.upstream_model = "embedder", embedder.model_name
    record.tokens_in = record.tokens_saved = tokens
    record.cost_saved_usd = tokens * state.config.pricing.embedding_cloud_per_1k / 1000
    pipeline_of(request).finish(record)
    return vectors, tokens


def _embedding_error(request: Request[Any, Any, Any], endpoint: str, error: APIError) -> Response[bytes]:
    """Write the ledger line of a failed embedding request and return the error the Ollama way."""
    record = RequestRecord(request_id=request.headers.get("x-request-id") or new_request_id(), endpoint=endpoint)
    record.attribute(request.scope.get("state", {}).get("identity"))
    record.status, record.error = error.status_code, error.message
    pipeline_of(request).finish(record)
    return ollama_error(error.message, error.status_code, {"x-request-id": record.request_id})


def _truncate_dimensions(vectors: np.ndarray, dimensions: Any) -> np.ndarray:
    if dimensions is None:
        return vectors
    width = vectors.shape[1] if vectors.ndim == 2 else 0
    if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= max(width, 1):
        raise InvalidRequest(f"dimensions must be an integer between 1 and {width}, not {dimensions!r}", param="dimensions")
    cut = vectors[:, :dimensions]
    norms = np.linalg.norm(cut, axis=1, keepdims=True)
    return cut / np.where(norms == 0, 1, norms)


@post("/api/embed", status_code=200)
async def api_embed(request: Request[Any, Any, Any]) -> Response[bytes]:
    started_ns = time.perf_counter_ns()
    try:
        raw = parse_body(await read_body(request))
        if not isinstance(raw.get("model"), str) or not raw["model"]:
            raise InvalidRequest("model is required", param="model")
        texts = _texts_of(raw.get("input", []), "input")
        vectors, tokens = await _embed(request, raw, texts, "ollama.embed")
        vectors = _truncate_dimensions(vectors, raw.get("dimensions"))
    except APIError as error:
        return _embedding_error(request, "ollama.embed", error)
    answer = {
        "model": raw["model"],
        "embeddings": vectors.tolist(),
        "total_duration": time.perf_counter_ns() - started_ns,
        "load_duration": 0,
        "prompt_eval_count": tokens,
    }
    return json_response(answer)


@post("/api/embeddings", status_code=200)
async def api_embeddings(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Embed one prompt: the older endpoint, ``{"model", "prompt"}`` -> ``{"embedding": [...]}``."""
    try:
        raw = parse_body(await read_body(request))
        if not isinstance(raw.get("model"), str) or not raw["model"]:
            raise InvalidRequest("model is required", param="model")
        prompt = raw.get("prompt") or ""
        if not isinstance(prompt, str):
            raise InvalidRequest("prompt must be a string", param="prompt")
        if not prompt:
            return json_response({"embedding": []})
        vectors, _ = await _embed(request, raw, [prompt], "ollama.embeddings")
    except APIError as error:
        return _embedding_error(request, "ollama.embeddings", error)
    return json_response({"embedding": vectors[0].tolist()})


HANDLERS: list[Any] = [
    api_chat, api_generate, api_tags, api_show, api_ps, api_version, api_embed, api_embeddings, root, root_head,
]
