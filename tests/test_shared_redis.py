"""Two gateway processes sharing one Redis: an exact hit made on one is served by the other."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.support.harness import free_port, wait_for

REPLICA_READY_S = 90


def start_replica(tmp_path, name: str, redis_url: str, upstream_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'port = {port}\ndata_dir = "{tmp_path / name}"\nledger_stderr = false\n'
        f'[cache]\nredis_url = "{redis_url}"\nsemantic_enabled = false\n'
        f'[upstreams.local]\nbase_url = "{upstream_url}"\n'
        f'[[models]]\nname = "coder"\nupstream = "local"\n',
        encoding="utf-8",
    )
    log = (tmp_path / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return process, f"http://127.0.0.1:{port}"


def ready(base_url: str) -> bool:
    try:
        return httpx.get(base_url + "/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def replicas(tmp_path, redis_url, local_upstream):
    started = [start_replica(tmp_path, f"replica-{n}", redis_url, local_upstream.base_url) for n in (1, 2)]
    try:
        for _, base_url in started:
            wait_for(lambda: ready(base_url) or None, REPLICA_READY_S, f"gateway replica {base_url}")
        yield [base_url for _, base_url in started]
    finally:
        for process, _ in started:
            process.terminate()
            process.wait(timeout=20)


def test_hit_made_on_one_replica_served_by_other(replicas, local_upstream):
    body = {"model": "coder", "messages": [{"role": "user", "content": "Explain what `collections.Counter` does."}]}
    first = httpx.post(replicas[0] + "/v1/chat/completions", json=body, timeout=20)
    second = httpx.post(replicas[1] + "/v1/chat/completions", json=body, timeout=20)
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit-exact"
    assert second.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    assert local_upstream.requests == 1
