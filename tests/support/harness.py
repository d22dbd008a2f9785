"""Test helpers: free ports, polling, scripted upstream processes and gateways served over HTTP.

Everything here runs real components on 127.0.0.1: the scripted upstream as a subprocess, the
gateway as the real Litestar app under uvicorn in a background thread of the test process.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from openai import AsyncOpenAI, OpenAI
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
CLIENT_API_KEY = "sk-ide-client-key-do-not-forward-0123456789"
"""The key the IDE sends to the gateway, which must never reach an upstream."""

T = TypeVar("T")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], T], timeout_s: float, description: str, interval_s: float = 0.05) -> T:
    """Poll ``condition`` until it returns a truthy value, and raise TimeoutError after ``timeout_s``.

    Exceptions raised by ``condition`` count as "not yet" until the deadline.
    """
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # a server that is still starting refuses connections
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {description}{detail}")
        time.sleep(interval_s)


def sse_payloads(raw: str) -> list[str]:
    """Return the ``data:`` payloads of a server-sent event stream, in order."""
    return [line[5:].strip() for line in raw.splitlines() if line.startswith("data:")]


def sse_text(raw: str) -> str:
    """Return the text a chat or legacy completion stream carries, joined over its chunks."""
    parts = []
    for payload in sse_payloads(raw):
        if payload == "[DONE]":
            continue
        chunk = json.loads(payload)
        for choice in chunk.get("choices") or []:
            if "delta" in choice:
                parts.append(choice["delta"].get("content") or "")
            else:
                parts.append(choice.get("text") or "")
    return "".join(parts)


def metric_value(exposition: str, sample: str, **labels: str) -> float:
    """Return the sum of the samples named ``sample`` whose labels include ``labels``."""
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for item in family.samples:
            if item.name == sample and all(item.labels.get(k) == v for k, v in labels.items()):
                total += item.value
    return total


class ScriptedUpstream:
    """A ``tests.support.scripted_upstream`` process on a free port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.scripted_upstream", "--port", str(self.port), "--name", name],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(self._answers, 20, f"scripted upstream {name} on port {self.port}")
        except TimeoutError:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            stderr = self.process.stderr.read().decode("utf-8", "replace") if self.process.stderr else ""
            raise RuntimeError(f"scripted upstream {self.name} exited with {self.process.returncode}: {stderr}")
        return httpx.get(self.root_url + "/stats", timeout=1).status_code == 200

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL that a gateway upstream config points at."""
        return self.root_url + "/v1"

    def control(self, **settings: Any) -> None:
        """Switch the behaviour: ``mode``, ``delay_s``, ``chunk_delay_s``, ``reset_stats``."""
        response = httpx.post(self.root_url + "/control", json=settings, timeout=5)
        response.raise_for_status()

    def reset(self) -> None:
        self.control(mode="ok", delay_s=0.0, chunk_delay_s=0.0, reset_stats=True)

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.root_url + "/stats", timeout=5)
        response.raise_for_status()
        return response.json()

    @property
    def requests(self) -> int:
        """Completion requests received since the last reset."""
        return int(self.stats()["requests"])

    def stop(self) -> None:
        if self.process.poll() is None:
            # aiohttp waits for open handlers at shutdown, and a request left in "hang" mode
            # never ends, so the process gets 3 s before it is killed.
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()


@dataclass
class Gateway:
    """A gateway app served by uvicorn in a background thread of the test process."""

    config: Config
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread
    _default_client: OpenAI | None = field(default=None, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.config.data_path

    def client(self, **options: Any) -> OpenAI:
        """Return an OpenAI SDK client of this gateway, without retries so failures show at once.

        Without options the same client is returned each time, so its connection pool is reused.
        """
        if not options:
            if self._default_client is None:
                self._default_client = self.client(api_key=CLIENT_API_KEY)
            return self._default_client
        options.setdefault("api_key", CLIENT_API_KEY)
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 20.0)
        return OpenAI(base_url=self.base_url + "/v1", **options)

    def async_client(self, **options: Any) -> AsyncOpenAI:
        options.setdefault("api_key", CLIENT_API_KEY)
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 20.0)
        return AsyncOpenAI(base_url=self.base_url + "/v1", **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        """POST with httpx, for raw bodies and headers the SDK cannot send."""
        options.setdefault("timeout", 20.0)
        headers = {"Authorization": f"Bearer {CLIENT_API_KEY}", **options.pop("headers", {})}
        return httpx.post(self.base_url + path, headers=headers, **options)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base_url + path, headers={"Authorization": f"Bearer {CLIENT_API_KEY}"}, timeout=20.0)

    def metrics(self) -> str:
        response = self.get("/metrics")
        response.raise_for_status()
        return response.text

    def metric(self, sample: str, **labels: str) -> float:
        return metric_value(self.metrics(), sample, **labels)

    def ledger(self) -> list[dict[str, Any]]:
        """Return the ledger lines written so far."""
        path = self.data_dir / "ledger.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def ledger_line(self, request_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
        """Wait for the ledger line of ``request_id`` and return it."""

        def find() -> dict[str, Any] | None:
            return next((line for line in self.ledger() if line.get("request_id") == request_id), None)

        return wait_for(find, timeout_s, f"the ledger line of request {request_id}")

    def stop(self) -> None:
        if self._default_client is not None:
            self._default_client.close()
        self.server.should_exit = True
        self.thread.join(timeout=20)
        if self.thread.is_alive():
            raise RuntimeError(f"gateway on {self.base_url} did not stop within 20 s")


def serve_gateway(config: Config, **app_options: Any) -> Gateway:
    """Serve ``create_app(config, **app_options)`` on a socket bound here, so no other process can
    take the port between choosing and binding it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config.port = port
    app = create_app(config, **app_options)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=3)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"gateway-{port}", daemon=True)
    thread.start()

    def started() -> bool:
        if not thread.is_alive():
            raise RuntimeError("the gateway thread ended during start-up; see the captured log for the error")
        return server.started

    # uvicorn's listener takes over the socket, and closes it at shutdown.
    try:
        wait_for(started, 30, f"the gateway on port {port} to start")
    except Exception:
        server.should_exit = True
        sock.close()
        raise
    return Gateway(config=config, base_url=f"http://127.0.0.1:{port}", server=server, thread=thread)


def redis_server_process(port: int) -> subprocess.Popen[bytes]:
    """Start a throwaway redis-server on 127.0.0.1 with persistence off."""
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=os.environ.get("TMPDIR", "/tmp"),
    )
