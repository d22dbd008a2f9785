"""A scripted OpenAI-compatible upstream for tests and benchmarks, run as its own process.

    python -m tests.support.scripted_upstream --port 9001 --name local

Answers are deterministic functions of the prompt and report usage. ``POST /control`` switches
the behaviour at run time; ``GET /stats`` returns how many requests arrived and the last one's
body and headers, so tests can see exactly what the gateway sent.

Modes: ``ok``; ``error`` (HTTP 500); ``hang`` (never answers); ``slow`` (waits ``delay_s`` before
answering); ``cut`` (streams two chunks, then drops the connection); ``no_usage`` (omits usage).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
from typing import Any

from aiohttp import web

STATE: dict[str, Any] = {"mode": "ok", "delay_s": 0.0, "chunk_delay_s": 0.0, "requests": 0, "last_body": None, "last_headers": None, "name": "upstream"}


def _prompt(body: dict[str, Any]) -> str:
    if "messages" in body:
        parts = []
        for message in body["messages"]:
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            parts.append(str(content or ""))
        return "\n".join(parts)
    prompt = body.get("prompt", "")
    return (prompt if isinstance(prompt, str) else "\n".join(prompt)) + str(body.get("suffix") or "")


def _answer(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(_prompt(body).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"Answer from {STATE['name']} for {digest}: the code looks fine, here are some words to stream 😀."


def _usage(body: dict[str, Any], answer: str) -> dict[str, int]:
    prompt_tokens = max(1, len(_prompt(body)) // 4)
    completion_tokens = max(1, len(answer) // 4)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}


async def _before_answer(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    body = json.loads(raw)
    STATE["requests"] += 1
    STATE["last_body"] = body
    STATE["last_headers"] = dict(request.headers)
    if STATE["mode"] == "hang":
        await asyncio.sleep(3600)
    if STATE["mode"] == "slow":
        await asyncio.sleep(STATE["delay_s"])
    return body


async def completion(request: web.Request) -> web.StreamResponse:
    body = await _before_answer(request)
    chat = request.path.endswith("/chat/completions")
    if STATE["mode"] == "error":
        return web.json_response({"error": {"message": "scripted failure", "type": "server_error", "param": None, "code": None}}, status=500)
    if STATE["mode"] == "reject":
        return web.json_response({"error": {"message": "scripted rejection", "type": "invalid_request_error", "param": "model", "code": None}}, status=400)
    answer = _answer(body)
    usage = _usage(body, answer)
    model = body.get("model", "scripted")
    created = int(time.time())
    if not body.get("stream"):
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": answer}
            if body.get("tools"):
                message = {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": body["tools"][0]["function"]["name"], "arguments": "{\"city\": \"Paris\"}"}}]}
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if body.get("tools") else "stop"}
            data = {"id": "chatcmpl-scripted", "object": "chat.completion", "created": created, "model": model, "choices": [choice]}
        else:
            data = {"id": "cmpl-scripted", "object": "text_completion", "created": created, "model": model, "choices": [{"index": 0, "text": answer, "finish_reason": "stop", "logprobs": None}]}
        if STATE["mode"] != "no_usage":
            data["usage"] = usage
        return web.json_response(data)

    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    words = answer.split(" ")
    pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    object_name = "chat.completion.chunk" if chat else "text_completion"
    base = {"id": "chatcmpl-scripted", "object": object_name, "created": created, "model": model}

    async def send(payload: dict[str, Any]) -> None:
        await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")

    if chat:
        await send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
    for number, piece in enumerate(pieces):
        if STATE["mode"] == "cut" and number == 2:
            request.transport.close()
            return response
        if STATE["chunk_delay_s"]:
            await asyncio.sleep(STATE["chunk_delay_s"])
        if chat:
            await send({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
        else:
            await send({**base, "choices": [{"index": 0, "text": piece, "finish_reason": None, "logprobs": None}]})
    if chat:
        await send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    else:
        await send({**base, "choices": [{"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}]})
    include_usage = (body.get("stream_options") or {}).get("include_usage")
    if include_usage and STATE["mode"] != "no_usage":
        await send({**base, "choices": [], "usage": usage})
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def embeddings(request: web.Request) -> web.Response:
    body = await _before_answer(request)
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    data = [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]} for i, _ in enumerate(inputs)]
    return web.json_response({"object": "list", "data": data, "model": body.get("model"), "usage": {"prompt_tokens": 3, "total_tokens": 3}})


async def models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "scripted", "object": "model", "created": 0, "owned_by": STATE["name"]}]})


async def control(request: web.Request) -> web.Response:
    update = await request.json()
    for key in ("mode", "delay_s", "chunk_delay_s"):
        if key in update:
            STATE[key] = update[key]
    if update.get("reset_stats"):
        STATE["requests"] = 0
        STATE["last_body"] = STATE["last_headers"] = None
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    return web.json_response({k: STATE[k] for k in ("mode", "requests", "last_body", "last_headers", "name")})


def build_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", completion)
    app.router.add_post("/v1/completions", completion)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/control", control)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible upstream for tests.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="upstream")
    args = parser.parse_args()
    STATE["name"] = args.name
    web.run_app(build_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
