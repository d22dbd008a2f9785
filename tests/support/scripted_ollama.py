"""A scripted server that speaks Ollama's native API, for tests, run as its own process.

    python -m tests.support.scripted_ollama --port 9002 --name native

It serves ``/api/chat``, ``/api/generate`` (NDJSON streams by default, as Ollama does),
``/api/embed``, ``/api/version`` and ``/api/tags``. Answers are deterministic functions of the
prompt and report ``prompt_eval_count`` and ``eval_count``. ``POST /control`` switches the mode;
``GET /stats`` returns how many requests arrived and the last one's path and body, so tests see
exactly what the gateway sent.

Modes: ``ok``, ``error`` (HTTP 500) and ``missing`` (HTTP 404, model not found). In mode ``cut``
a stream ends after two lines without ``done``. In mode ``stream_error`` an ``error`` line
follows the first two lines.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

STATE: dict[str, Any] = {"mode": "ok", "requests": 0, "last_path": None, "last_body": None, "name": "ollama"}


def _prompt(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "\n".join(str(m.get("content") or "") for m in body["messages"])
    return str(body.get("prompt") or "") + str(body.get("suffix") or "")


def _answer(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(_prompt(body).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"Native answer from {STATE['name']} for {digest}: the code looks fine."


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _stats(body: dict[str, Any], answer: str) -> dict[str, Any]:
    return {
        "done_reason": "stop",
        "total_duration": 2_000_000,
        "load_duration": 100_000,
        "prompt_eval_count": max(1, len(_prompt(body)) // 4),
        "prompt_eval_duration": 500_000,
        "eval_count": max(1, len(answer) // 4),
        "eval_duration": 1_400_000,
    }


async def _read(request: web.Request) -> dict[str, Any]:
    body = json.loads(await request.read())
    STATE["requests"] += 1
    STATE["last_path"] = request.path
    STATE["last_body"] = body
    return body


def _failure(body: dict[str, Any]) -> web.Response | None:
    if STATE["mode"] == "error":
        return web.json_response({"error": "scripted failure"}, status=500)
    if STATE["mode"] == "missing":
        return web.json_response({"error": f"model '{body.get('model')}' not found"}, status=404)
    return None


async def _answer_lines(request: web.Request, body: dict[str, Any], lines: list[dict[str, Any]], final: dict[str, Any]) -> web.StreamResponse:
    if body.get("stream") is False:
        merged = dict(final)
        key = "message" if "message" in final else "response"
        if key == "message":
            content = "".join(line["message"].get("content", "") for line in lines)
            merged["message"] = {**final["message"], "content": content}
            calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
            if calls:
                merged["message"]["tool_calls"] = calls
        else:
            merged["response"] = "".join(line["response"] for line in lines)
        return web.json_response(merged)

    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    for number, line in enumerate(lines):
        if number == 2 and STATE["mode"] == "cut":
            await response.write_eof()
            return response
        if number == 2 and STATE["mode"] == "stream_error":
            await response.write(json.dumps({"error": "scripted stream failure"}).encode() + b"\n")
            await response.write_eof()
            return response
        await response.write(json.dumps(line).encode() + b"\n")
    await response.write(json.dumps(final).encode() + b"\n")
    await response.write_eof()
    return response


async def chat(request: web.Request) -> web.StreamResponse:
    body = await _read(request)
    failure = _failure(body)
    if failure is not None:
        return failure
    model = body.get("model", "scripted")
    answer = _answer(body)
    words = answer.split(" ")
    pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    lines = [{"model": model, "created_at": _now(), "message": {"role": "assistant", "content": p}, "done": False} for p in pieces]
    if body.get("tools"):
        name = body["tools"][0]["function"]["name"]
        call = {"function": {"name": name, "arguments": {"city": "Paris"}}}
        lines = [{"model": model, "created_at": _now(), "message": {"role": "assistant", "content": "", "tool_calls": [call]}, "done": False}]
    final = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""}, "done": True, **_stats(body, answer)}
    return await _answer_lines(request, body, lines, final)


async def generate(request: web.Request) -> web.StreamResponse:
    body = await _read(request)
    failure = _failure(body)
    if failure is not None:
        return failure
    model = body.get("model", "scripted")
    answer = _answer(body)
    words = answer.split(" ")
    pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
    lines = [{"model": model, "created_at": _now(), "response": p, "done": False} for p in pieces]
    final = {"model": model, "created_at": _now(), "response": "", "done": True, **_stats(body, answer)}
    return await _answer_lines(request, body, lines, final)


async def embed(request: web.Request) -> web.Response:
    body = await _read(request)
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    return web.json_response({"model": body.get("model"), "embeddings": [[0.1, 0.2, 0.3] for _ in inputs], "prompt_eval_count": 3})


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": "0.9.0"})


async def tags(request: web.Request) -> web.Response:
    return web.json_response({"models": [{"name": "scripted:latest", "model": "scripted:latest", "size": 1, "digest": "0" * 64}]})


async def control(request: web.Request) -> web.Response:
    update = await request.json()
    if "mode" in update:
        STATE["mode"] = update["mode"]
    if update.get("reset_stats"):
        STATE["requests"] = 0
        STATE["last_path"] = STATE["last_body"] = None
    return web.json_response({"ok": True})


async def stats(request: web.Request) -> web.Response:
    return web.json_response({k: STATE[k] for k in ("mode", "requests", "last_path", "last_body", "name")})


def build_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/api/chat", chat)
    app.router.add_post("/api/generate", generate)
    app.router.add_post("/api/embed", embed)
    app.router.add_get("/api/version", version)
    app.router.add_get("/api/tags", tags)
    app.router.add_post("/control", control)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Scripted server with Ollama's native API, for tests.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="ollama")
    args = parser.parse_args()
    STATE["name"] = args.name
    web.run_app(build_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
