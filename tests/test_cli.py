"""The ``copilot-bridge serve`` command as a real process, configured by a TOML file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from tests.support.harness import CLIENT_API_KEY, REPO_ROOT, ScriptedUpstream, free_port, wait_for

READY_TIMEOUT_S = 120
"""The embedding model takes about 10 s to load on a laptop CPU; this leaves room for slow CI."""


def copilot_bridge() -> str:
    path = shutil.which("copilot-bridge")
    if path is None:
        pytest.fail("the copilot-bridge command is not on PATH: install the package with 'pip install -e .'")
    return path


def write_config(path: Path, upstream: ScriptedUpstream) -> None:
    path.write_text(
        f"""
ledger_stderr = false
breaker_failures = 3

[upstreams.local]
base_url = "{upstream.base_url}"
kind = "local"
read_timeout_s = 10.0

[[models]]
name = "coder"
upstream = "local"

[cache]
similarity_threshold = 0.9
""",
        encoding="utf-8",
    )


@dataclass
class Served:
    base_url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    """stdout and stderr of the process."""

    def get(self, path: str) -> httpx.Response:
        if self.process.poll() is not None:
            raise AssertionError(f"copilot-bridge serve exited with code {self.process.returncode}: {self.log()[-2000:]}")
        return httpx.get(self.base_url + path, timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def served(tmp_path: Path, local_upstream: ScriptedUpstream) -> Iterator[Served]:
    """Run ``copilot-bridge serve`` on a free port and stop it after the test."""
    config_path = tmp_path / "copilot-bridge.toml"
    write_config(config_path, local_upstream)
    port = free_port()
    data_dir = tmp_path / "data"
    log_path = tmp_path / "serve.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COPILOT_BRIDGE_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [copilot_bridge(), "serve", "--config", str(config_path), "--port", str(port), "--data-dir", str(data_dir)],
            cwd=tmp_path,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Served(f"http://127.0.0.1:{port}", process, data_dir, log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_serve_handles_request(served: Served, local_upstream: ScriptedUpstream) -> None:
    health = wait_for(lambda: served.get("/healthz"), 30, "/healthz to answer")
    ready = wait_for(lambda: (r := served.get("/readyz")).status_code == 200 and r, READY_TIMEOUT_S, "/readyz to report ready")
    client = OpenAI(base_url=served.base_url + "/v1", api_key=CLIENT_API_KEY, max_retries=0, timeout=20)
    answer = client.chat.completions.with_raw_response.create(
        model="coder", messages=[{"role": "user", "content": "Explain what a Python dataclass is."}]
    )
    models = client.models.list()

    assert health.json() == {"status": "ok"}
    assert ready.json()["status"] == "ready"
    assert ready.json()["embedder"]["status"] == "ready"
    assert answer.headers["x-route"] == "local"
    assert answer.parse().choices[0].message.content.startswith("Answer from local")
    assert [model.id for model in models.data] == ["coder"]
    assert (served.data_dir / "ledger.jsonl").is_file()
    assert local_upstream.requests == 1


def test_serve_stops_on_sigterm(served: Served) -> None:
    wait_for(lambda: served.get("/healthz").status_code == 200, 30, "/healthz to answer")

    served.process.send_signal(signal.SIGTERM)
    code = served.process.wait(timeout=20)

    # uvicorn shuts down gracefully, then raises the signal again, so the status is -SIGTERM.
    assert code in (0, -signal.SIGTERM)
    assert "gateway stopped" in served.log()


def test_missing_config_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [copilot_bridge(), "serve", "--config", str(tmp_path / "missing.toml")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert "not found" in result.stderr


def test_unknown_key_exits_2(tmp_path: Path) -> None:
    config_path = tmp_path / "bad.toml"
    config_path.write_text('prot = 8080\n', encoding="utf-8")

    result = subprocess.run(
        [copilot_bridge(), "serve", "--config", str(config_path)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert "unknown key(s) in the top level: prot" in result.stderr


def test_second_serve_same_data_dir_exits_2(served: Served, tmp_path: Path) -> None:
    wait_for(lambda: served.get("/healthz").status_code == 200, 30, "/healthz to answer")

    second = subprocess.run(
        [copilot_bridge(), "serve", "--config", str(tmp_path / "copilot-bridge.toml"), "--port", str(free_port()), "--data-dir", str(served.data_dir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("COPILOT_BRIDGE_")},
    )

    assert second.returncode == 2
    assert f"pid {served.process.pid}" in second.stderr
    assert "--data-dir" in second.stderr
    assert served.get("/healthz").status_code == 200
