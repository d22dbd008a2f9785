"""Measure the gateway's added latency, throughput and memory against a direct upstream.

    python bench/gateway_bench.py                        # full table, aiohttp upstream transport
    python bench/gateway_bench.py --transport httpx      # the same with the plain httpx transport
    python bench/gateway_bench.py --compare-transports   # plus the miss rows of the other transport

One run starts the scripted upstream (``tests.support.scripted_upstream``) and ``copilot-bridge
serve`` as subprocesses on free ports of 127.0.0.1, each gateway with its own temporary data
directory, and measures from this process with an aiohttp client:

* direct upstream: chat and autocomplete requests sent straight to the scripted upstream;
* gateway exact hit: one chat request repeated;
* gateway autocomplete miss: unique ``/v1/completions`` requests with ``suffix``, which skip the
  semantic layer;
* gateway chat miss: unique chat requests, which embed the instruction and search Qdrant Edge.

It also loads the same embedding model in this process and measures the semantic lookup alone
(``SemanticCache.embed`` and ``lookup`` on a Qdrant Edge shard) against a bare transformer forward
pass on the same, already tokenized instruction.

Rows at concurrency 1 are measured interleaved, one request of each row per round, so that the
rows being compared see the same background load. Rows at the high concurrency take turns in
four slices for the same reason.

The "server CPU" column divides the CPU time of the process that serves a row by the row's
requests. That process is the upstream for direct rows, the gateway for gateway rows and this
process for the in-process rows. On a shared machine this column varies less than latency.

The script prints a Markdown table and a PASS/FAIL line per target, and exits 0 once it has
measured, whether targets pass or not. Nothing is pinned to cores, so on a small machine the load
generator, the gateway and the upstream compete for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

MODEL = "bench-model"
HOST = "127.0.0.1"
READY_DEADLINE_S = 180.0
"""Maximum wait for ``/readyz`` to return 200, which includes loading the embedding model."""
STOP_GRACE_S = 10.0
WARMUP_REQUESTS = 20
"""Unmeasured requests per row before its measured ones."""
CONCURRENT_SLICES = 4
"""Turns over the rows at the high concurrency. Each turn sends a quarter of every row's requests."""
SEMANTIC_STORE_POINTS = 2000
"""Points in the query's scope in the Qdrant Edge shard of the semantic-lookup-alone rows."""

# Target thresholds.
MAX_ADDED_P50_MS = 1.5
MIN_THROUGHPUT_SHARE = 0.5
MAX_LOOKUP_TO_FORWARD = 1.3
MAX_RSS_BYTES = 1.5 * 1024**3

SYSTEM_PROMPT = "You are a coding assistant. Answer briefly and show code where it helps."
CHAT_INSTRUCTION = (
    "Explain what the retry loop in fetch_with_backoff does when the server answers 503, "
    "how long it waits between attempts, and what the caller sees after the last attempt fails."
)
"""The instruction of the exact-hit request. Chat misses prefix it with words that make it unique."""

# Chat misses spell their number in these words, because digits and number words would become
# literal material of the prompt and give each request a semantic scope of its own to search.
UNIQUE_WORDS = (
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "jasper", "kelp",
    "lagoon", "maple", "nectar", "orchid", "pebble", "quartz", "river", "saffron", "tundra", "umber",
    "violet", "willow", "yarrow", "zephyr", "acorn", "basalt", "coral", "dune", "fern", "glacier", "heron",
)

DIRECT_CHAT = "direct upstream, chat"
DIRECT_AUTOCOMPLETE = "direct upstream, autocomplete"
EXACT_HIT = "gateway exact hit"
SEMANTIC_LOOKUP = "semantic lookup alone (embed + Qdrant Edge search)"
BARE_FORWARD = "bare forward pass (pre-tokenized)"


def autocomplete_miss_label(transport: str) -> str:
    return f"gateway autocomplete miss ({transport})"


def chat_miss_label(transport: str) -> str:
    return f"gateway chat miss ({transport})"


# -- request bodies -----------------------------------------------------------------------------


def chat_body(instruction: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": instruction}],
        "temperature": 0,
        "max_tokens": 256,
    }


def unique_words(number: int) -> str:
    words = []
    for _ in range(3):
        number, digit = divmod(number, len(UNIQUE_WORDS))
        words.append(UNIQUE_WORDS[digit])
    return " ".join(words)


def chat_miss_body(number: int) -> dict[str, Any]:
    # The gateway runs with a similarity threshold of 1.0, so these near-duplicates miss while
    # each lookup still embeds its instruction and searches the points of one shared scope.
    return chat_body(f"Focus on the {unique_words(number)} case. {CHAT_INSTRUCTION}")


def autocomplete_body(number: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "prompt": f"import json\n\n\ndef load_settings_{number}(path):\n    with open(path) as handle:\n        ",
        "suffix": "\n    return settings\n",
        "max_tokens": 32,
        "temperature": 0,
    }


def encode_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


# -- measurements ----------------------------------------------------------------------------------


@dataclass
class Cell:
    """One row of the table: latencies of the requests that completed, and the server's CPU time."""

    label: str
    concurrency: int
    requested: int
    expected_cache: str | None = None
    """The ``x-cache`` header that every response of this row must carry, or None for rows without one."""
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    """Time the row took. For interleaved rows it is the sum of the row's own latencies."""
    server_cpu_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    cache_headers: Counter[str] = field(default_factory=Counter)
    capped: bool = False

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, fraction: float) -> float:
        """Return the nearest-rank percentile of the latencies in ms (NaN without any)."""
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(fraction * len(ordered)))
        return ordered[rank - 1]

    @property
    def p50(self) -> float:
        return self.percentile(0.50)

    @property
    def p95(self) -> float:
        return self.percentile(0.95)

    @property
    def throughput(self) -> float:
        return self.completed / self.wall_s if self.wall_s > 0 else math.nan

    @property
    def server_cpu_ms(self) -> float:
        return self.server_cpu_s * 1000 / self.completed if self.completed else math.nan


@dataclass
class Row:
    """How to send one request of a row: ``call(number)`` returns the ``x-cache`` header or None."""

    cell: Cell
    call: Callable[[int], Awaitable[str | None]]
    server_cpu: Callable[[], float]
    """CPU seconds used so far by the process that serves this row."""


def process_cpu(pid: int) -> Callable[[], float]:
    """Return a reader of the CPU seconds a process has used.

    Linux's per-thread ``schedstat`` counts nanoseconds. psutil's times count clock ticks of
    10 ms, which is too coarse for one request, so they serve only where ``schedstat`` is missing.
    """
    task_folder = Path(f"/proc/{pid}/task")
    process = psutil.Process(pid)

    def read_schedstat() -> float:
        total_ns = 0
        for task in task_folder.iterdir():
            try:
                total_ns += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass  # a thread that ended between listing and reading
        return total_ns / 1e9

    def read_ticks() -> float:
        times = process.cpu_times()
        return times.user + times.system

    return read_schedstat if (task_folder / str(pid) / "schedstat").exists() else read_ticks


def own_cpu() -> float:
    return time.process_time()


async def timed_call(row: Row, number: int, record: bool) -> None:
    started = time.perf_counter()
    try:
        cache_header = await row.call(number)
    except Exception as exc:  # every failed request is counted and the load goes on
        if record:
            row.cell.errors[type(exc).__name__] += 1
        return
    if record:
        row.cell.latencies_ms.append((time.perf_counter() - started) * 1000)
        if cache_header is not None:
            row.cell.cache_headers[cache_header] += 1


async def run_interleaved(rows: list[Row], requests: int, time_cap_s: float) -> None:
    """Send one request of each row per round, one at a time, until ``requests`` rounds ran.

    The rounds stop early once ``time_cap_s`` per row has passed. Each row's server CPU is the
    sum of the deltas around its own requests, so a row is not charged for the others.
    """
    number = 0
    for _ in range(WARMUP_REQUESTS):
        for row in rows:
            number += 1
            await timed_call(row, number, record=False)

    deadline = time.perf_counter() + time_cap_s * len(rows)
    rounds = 0
    while rounds < requests and time.perf_counter() < deadline:
        for row in rows:
            number += 1
            cpu_before = row.server_cpu()
            await timed_call(row, number, record=True)
            row.cell.server_cpu_s += row.server_cpu() - cpu_before
        rounds += 1
    for row in rows:
        row.cell.wall_s = sum(row.cell.latencies_ms) / 1000
        row.cell.capped = rounds < requests


async def run_burst(row: Row, requests: int, time_cap_s: float, *, record: bool) -> int:
    """Send ``requests`` requests with ``row.cell.concurrency`` workers and return how many started.

    Workers stop taking new requests once ``time_cap_s`` has passed. Recorded bursts add their
    latencies, wall time and server CPU to the row's cell.
    """
    cell = row.cell
    started_requests = 0

    async def worker(deadline: float) -> None:
        nonlocal started_requests
        while started_requests < requests and time.perf_counter() < deadline:
            started_requests += 1
            await timed_call(row, started_requests, record)

    cpu_before = row.server_cpu()
    started = time.perf_counter()
    await asyncio.gather(*(worker(started + time_cap_s) for _ in range(cell.concurrency)))
    if record:
        cell.wall_s += time.perf_counter() - started
        cell.server_cpu_s += row.server_cpu() - cpu_before
    return started_requests


async def run_concurrent(rows: list[Row], slices: int, time_cap_s: float) -> None:
    """Run each row's requests at its concurrency, in ``slices`` turns that rotate over the rows.

    Rotating spreads every row over the whole measuring time, so that rows compared with each
    other see the same background load. Each row first gets unmeasured warm-up requests, and
    ``time_cap_s`` bounds each row's total.
    """
    for row in rows:
        await run_burst(row, max(WARMUP_REQUESTS, row.cell.concurrency), time_cap_s, record=False)
    for turn in range(slices):
        for row in rows:
            cell = row.cell
            share = cell.requested // slices + (1 if turn < cell.requested % slices else 0)
            started = await run_burst(row, share, time_cap_s / slices, record=True)
            cell.capped = cell.capped or started < share


class HTTPStatusError(Exception):
    """The server returned a status other than 200."""


class LoadClient:
    """A factory of HTTP rows on one aiohttp session.

    Request bodies take their numbers from ``numbers``. All clients of a run share one iterator,
    so that no two miss requests are the same.
    """

    def __init__(self, session: aiohttp.ClientSession, numbers: Iterator[int]) -> None:
        self.session = session
        self._numbers = numbers

    def row(
        self, cell: Cell, url: str, make_body: Callable[[int], dict[str, Any]], server_pid: int
    ) -> Row:
        """Return a row that POSTs ``make_body(unique number)`` to ``url`` and reads the whole response."""

        async def call(_: int) -> str | None:
            payload = encode_json(make_body(next(self._numbers)))
            async with self.session.post(url, data=payload, headers={"Content-Type": "application/json"}) as response:
                await response.read()
                if response.status != 200:
                    raise HTTPStatusError(f"HTTP {response.status}")
                return response.headers.get("x-cache")

        return Row(cell, call, process_cpu(server_pid))


def client_session(concurrency: int) -> aiohttp.ClientSession:
    # One keep-alive connection per worker and server, so a cell's concurrency is exact.
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=concurrency)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))


# -- subprocesses --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """A subprocess with its output in a log file. ``stop`` ends it by its pid."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Send SIGINT, then SIGKILL after ``STOP_GRACE_S``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def server_env() -> dict[str, str]:
    """Return this environment without ``COPILOT_BRIDGE_*`` overrides, which would change the config."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("COPILOT_BRIDGE_")}
    env["PYTHONPATH"] = os.pathsep.join(part for part in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if part)
    return env


def gateway_command(config_path: Path) -> list[str]:
    script = Path(sys.executable).parent / "copilot-bridge"
    found = str(script) if script.exists() else shutil.which("copilot-bridge")
    if found:
        return [found, "serve", "--config", str(config_path)]
    return [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path)]


def write_gateway_config(folder: Path, port: int, upstream_port: int, transport: str) -> Path:
    config = f"""\
host = "{HOST}"
port = {port}
data_dir = "{folder / 'data'}"
http_transport = "{transport}"
ledger_stderr = false
log_level = "WARNING"

[upstreams.local]
base_url = "http://{HOST}:{upstream_port}/v1"
kind = "local"

[[models]]
name = "{MODEL}"
upstream = "local"

[cache]
enabled = true
semantic_enabled = true
# 1.0 turns every unique chat prompt into a semantic miss. The lookup still does the same work.
similarity_threshold = 1.0
"""
    path = folder / "gateway.toml"
    path.write_text(config, encoding="utf-8")
    return path


async def wait_for_status(server: Server, url: str, deadline_s: float) -> None:
    """Poll ``url`` until it returns 200.

    Raises:
        RuntimeError: the process exited or the deadline passed. The message contains the log's tail.
    """
    deadline = time.monotonic() + deadline_s
    last = "no answer yet"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"{server.name} exited with code {server.process.returncode} before {url} returned 200; "
                    f"last log lines:\n{server.log_tail()}"
                )
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}: {(await response.text())[:300]}"
            except aiohttp.ClientError as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.2)
    raise RuntimeError(
        f"{server.name}: {url} did not return 200 within {deadline_s:.0f} s ({last}); last log lines:\n{server.log_tail()}"
    )


def resident_bytes(pid: int) -> int:
    """Return the RSS of a process and its children, in bytes."""
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class BackgroundLoad:
    """A meter of the cores that processes outside this bench used between ``start`` and ``stop``."""

    def __init__(self) -> None:
        self._busy = 0.0
        self._own = 0.0
        self._wall = 0.0

    @staticmethod
    def _system_busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    @staticmethod
    def _own_cpu(pids: list[int]) -> float:
        total = 0.0
        for pid in [os.getpid(), *pids]:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def start(self, pids: list[int]) -> None:
        self._busy, self._own, self._wall = self._system_busy(), self._own_cpu(pids), time.monotonic()

    def stop(self, pids: list[int]) -> float:
        """Return the average number of cores that other processes kept busy."""
        busy = self._system_busy() - self._busy
        own = self._own_cpu(pids) - self._own
        return max(0.0, busy - own) / max(1e-9, time.monotonic() - self._wall)


# -- the HTTP rows ------------------------------------------------------------------------------------


@dataclass
class Plan:
    serial_requests: int
    concurrent_requests: int
    concurrency: int
    time_cap_s: float


@dataclass
class GatewayRun:
    transport: str
    server: Server
    base_url: str
    rss_ready: int = 0
    rss_after_load: int = 0
    bypass_reasons: dict[str, float] = field(default_factory=dict)


def start_gateway(folder: Path, upstream_port: int, transport: str, env: dict[str, str]) -> GatewayRun:
    """Start a gateway with ``transport``. The caller waits for ``/readyz`` and stops the server."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = write_gateway_config(folder, port, upstream_port, transport)
    server = Server(f"gateway ({transport})", gateway_command(config_path), folder / "gateway.log", env)
    return GatewayRun(transport, server, f"http://{HOST}:{port}")


async def fetch_bypass_reasons(base_url: str) -> dict[str, float]:
    """Return the gateway's ``cache_bypass`` counters by reason, from ``/metrics``."""
    reasons: dict[str, float] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        async with session.get(base_url + "/metrics") as response:
            text = await response.text()
    for line in text.splitlines():
        if line.startswith("copilot_bridge_cache_bypass_total{"):
            labels, value = line.rsplit(" ", 1)
            reason = labels.split('reason="', 1)[1].split('"', 1)[0]
            reasons[reason] = float(value)
    return reasons


def http_rows(client: LoadClient, upstream: Server, upstream_url: str, runs: list[GatewayRun], concurrency: int, requests: int) -> list[Row]:
    """Return the rows of one concurrency: the direct rows, then the exact hit and the miss rows of each gateway."""

    def cell(label: str, expected_cache: str | None = None) -> Cell:
        return Cell(label, concurrency, requests, expected_cache)

    rows = [
        client.row(cell(DIRECT_CHAT), upstream_url + "/v1/chat/completions", chat_miss_body, upstream.pid),
        client.row(cell(DIRECT_AUTOCOMPLETE), upstream_url + "/v1/completions", autocomplete_body, upstream.pid),
    ]
    for number, run in enumerate(runs):
        pid = run.server.pid
        if number == 0:
            hit = chat_body(CHAT_INSTRUCTION)
            rows.append(client.row(cell(EXACT_HIT, "hit-exact"), run.base_url + "/v1/chat/completions", lambda _: hit, pid))
        rows.append(client.row(cell(autocomplete_miss_label(run.transport), "miss"), run.base_url + "/v1/completions", autocomplete_body, pid))
        rows.append(client.row(cell(chat_miss_label(run.transport), "miss"), run.base_url + "/v1/chat/completions", chat_miss_body, pid))
    return rows


# -- the semantic lookup alone ---------------------------------------------------------------------


class SemanticBench:
    """The in-process rows: the gateway's semantic lookup and a bare forward pass of its model.

    The lookup is ``SemanticCache.embed`` (the Embedder's one worker thread: tokenize, forward,
    pool, normalize) plus ``SemanticCache.lookup`` (a Qdrant Edge search in a thread), as a chat
    miss runs them. The forward pass is the Hugging Face model inside the same SentenceTransformer
    on the instruction tokenized once beforehand, on a one-thread executor like the Embedder's.
    """

    def __init__(self, folder: Path) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import numpy as np
        import torch

        from cache.embedder import Embedder
        from cache.guard import StoreGuard
        from cache.semantic import SemanticCache, semantic_query
        from cache.vectors_edge import EdgeVectorStore

        self._torch = torch
        self.embedder = Embedder()
        self.embedder.load()
        query = semantic_query("chat", chat_miss_body(0), "default", "explain")
        if query is None:
            raise RuntimeError("the bench chat request has no semantic instruction")
        self.query = query
        dimension = self.embedder.dimension or 384

        self.store = EdgeVectorStore(folder / "qdrant-edge", dimension)
        rng = np.random.default_rng(0)
        for _ in range(SEMANTIC_STORE_POINTS):
            vector = rng.standard_normal(dimension)
            vector /= np.linalg.norm(vector)
            payload = {
                "scope": query.scope, "namespace": "default", "model": MODEL, "instruction": query.instruction,
                "expires_at": time.time() + 3600, "entry_id": uuid.uuid4().hex, "response": "x" * 600,
            }
            self.store.upsert(str(uuid.uuid4()), vector.tolist(), payload)

        self.store_errors: Counter[str] = Counter()
        guard = StoreGuard(
            "semantic", self.store.name, timeout_s=30.0, cooldown_s=0.0,
            on_error=lambda layer, name, operation: self.store_errors.update([operation]),
        )
        self.semantic = SemanticCache(self.embedder, self.store, guard, threshold=1.0)

        model = self.embedder._model  # the loaded SentenceTransformer
        self._transformer = model[0].auto_model
        features = model.preprocess([query.instruction])
        self._inputs = {name: value for name, value in features.items() if name in ("input_ids", "attention_mask", "token_type_ids")}
        self._forward_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")

    @property
    def tokens(self) -> int:
        return int(self._inputs["input_ids"].shape[1])

    @property
    def torch_threads(self) -> int:
        return int(self._torch.get_num_threads())

    def _forward(self) -> None:
        with self._torch.inference_mode():
            self._transformer(**self._inputs)

    async def _lookup_once(self, _: int) -> str | None:
        vector = await self.semantic.embed(self.query)
        if vector is None:
            raise RuntimeError("the embedder is busy or not ready")
        await self.semantic.lookup(self.query, vector)
        return None

    async def _forward_once(self, _: int) -> str | None:
        await asyncio.get_running_loop().run_in_executor(self._forward_executor, self._forward)
        return None

    def rows(self, concurrency: int, requests: int) -> list[Row]:
        return [
            Row(Cell(SEMANTIC_LOOKUP, concurrency, requests), self._lookup_once, own_cpu),
            Row(Cell(BARE_FORWARD, concurrency, requests), self._forward_once, own_cpu),
        ]

    def close(self) -> None:
        self._forward_executor.shutdown(wait=True)
        self.store.close()
        self.embedder.close()


# -- one run -----------------------------------------------------------------------------------------


@dataclass
class Measurements:
    cells: list[Cell]
    runs: list[GatewayRun]
    other_cores: float
    """Average cores that processes outside the bench kept busy while the rows ran."""
    semantic_tokens: int
    torch_threads: int
    store_errors: dict[str, int]


async def measure(plan: Plan, transports: list[str], folder: Path, env: dict[str, str]) -> Measurements:
    """Start the upstream and the gateways, measure every row, and stop the servers again.

    The in-process rows take turns with the HTTP rows, so that a chat miss and the semantic
    lookup alone are measured under the same background load.
    """
    servers: list[Server] = []
    runs: list[GatewayRun] = []
    semantic: SemanticBench | None = None
    background = BackgroundLoad()
    try:
        upstream_port = free_port()
        upstream = Server(
            "scripted upstream",
            [sys.executable, "-m", "tests.support.scripted_upstream", "--port", str(upstream_port), "--name", "local"],
            folder / "upstream.log",
            env,
        )
        servers.append(upstream)
        upstream_url = f"http://{HOST}:{upstream_port}"
        for transport in transports:
            run = start_gateway(folder / f"gateway-{transport}", upstream_port, transport, env)
            runs.append(run)
            servers.append(run.server)
        print("loading the embedding model in this process while the servers start ...", file=sys.stderr)
        semantic = await asyncio.to_thread(SemanticBench, folder / "semantic")
        await wait_for_status(upstream, upstream_url + "/v1/models", 30.0)
        for run in runs:
            await wait_for_status(run.server, run.base_url + "/readyz", READY_DEADLINE_S)
            run.rss_ready = resident_bytes(run.server.pid)

        pids = [server.pid for server in servers]
        numbers = itertools.count(1)
        background.start(pids)
        print("measuring every row at concurrency 1, interleaved ...", file=sys.stderr)
        async with client_session(1) as session:
            serial = http_rows(LoadClient(session, numbers), upstream, upstream_url, runs, 1, plan.serial_requests)
            serial += semantic.rows(1, plan.serial_requests)
            await run_interleaved(serial, plan.serial_requests, plan.time_cap_s)
        print(f"measuring every row at concurrency {plan.concurrency}, in {CONCURRENT_SLICES} turns ...", file=sys.stderr)
        async with client_session(plan.concurrency) as session:
            concurrent = http_rows(LoadClient(session, numbers), upstream, upstream_url, runs, plan.concurrency, plan.concurrent_requests)
            concurrent += semantic.rows(plan.concurrency, plan.concurrent_requests)
            await run_concurrent(concurrent, CONCURRENT_SLICES, plan.time_cap_s)
        other_cores = background.stop(pids)

        for run in runs:
            run.rss_after_load = resident_bytes(run.server.pid)
            run.bypass_reasons = await fetch_bypass_reasons(run.base_url)
    finally:
        for server in reversed(servers):
            server.stop()
        if semantic is not None:
            semantic.close()
    return Measurements(
        cells=[row.cell for row in serial + concurrent], runs=runs, other_cores=other_cores,
        semantic_tokens=semantic.tokens, torch_threads=semantic.torch_threads,
        store_errors=dict(semantic.store_errors),
    )


def chat_misses_share_scope() -> bool:
    """Return True when two chat misses of the bench fall into one semantic scope."""
    from cache.semantic import semantic_query

    first = semantic_query("chat", chat_miss_body(1), "default", "explain")
    second = semantic_query("chat", chat_miss_body(2), "default", "explain")
    return first is not None and second is not None and first.scope == second.scope and first.instruction != second.instruction


# -- the report ---------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def format_number(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def cell_notes(cell: Cell) -> str:
    notes = []
    if cell.capped:
        notes.append(f"time cap: {cell.completed} of {cell.requested} requests")
    if cell.errors:
        notes.append("errors: " + ", ".join(f"{name} x{count}" for name, count in sorted(cell.errors.items())))
    if cell.expected_cache is not None:
        unexpected = {value: count for value, count in cell.cache_headers.items() if value != cell.expected_cache}
        if unexpected:
            notes.append("unexpected x-cache: " + ", ".join(f"{value} x{count}" for value, count in sorted(unexpected.items())))
        without_header = cell.completed - sum(cell.cache_headers.values())
        if without_header:
            notes.append(f"no x-cache header x{without_header}")
    return "; ".join(notes)


def markdown_table(cells: list[Cell]) -> str:
    lines = [
        "| measurement | concurrency | requests | p50 ms | p95 ms | req/s | server CPU ms/req | notes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for cell in cells:
        lines.append(
            f"| {cell.label} | {cell.concurrency} | {cell.completed} | {format_number(cell.p50)} | {format_number(cell.p95)} "
            f"| {format_number(cell.throughput, 0)} | {format_number(cell.server_cpu_ms)} | {cell_notes(cell)} |"
        )
    return "\n".join(lines)


def order_cells(cells: list[Cell]) -> list[Cell]:
    """Return the cells in table order: direct, exact hit, misses by transport, then semantic rows."""
    groups = ("direct", "gateway exact hit", "gateway autocomplete", "gateway chat", "semantic", "bare")

    def rank(cell: Cell) -> tuple[int, str, int]:
        group = next((number for number, prefix in enumerate(groups) if cell.label.startswith(prefix)), len(groups))
        return group, cell.label, cell.concurrency

    return sorted(cells, key=rank)


def find(cells: list[Cell], label: str, concurrency: int) -> Cell:
    for cell in cells:
        if cell.label == label and cell.concurrency == concurrency:
            return cell
    raise KeyError(f"no measurement {label!r} at concurrency {concurrency}")


@dataclass
class Target:
    name: str
    passed: bool
    measured: str


def evaluate_targets(cells: list[Cell], run: GatewayRun, concurrency: int) -> list[Target]:
    high = concurrency
    direct_chat, direct_chat_high = find(cells, DIRECT_CHAT, 1), find(cells, DIRECT_CHAT, high)
    direct_auto, direct_auto_high = find(cells, DIRECT_AUTOCOMPLETE, 1), find(cells, DIRECT_AUTOCOMPLETE, high)
    hit, hit_high = find(cells, EXACT_HIT, 1), find(cells, EXACT_HIT, high)
    auto_miss = find(cells, autocomplete_miss_label(run.transport), 1)
    auto_miss_high = find(cells, autocomplete_miss_label(run.transport), high)
    chat_miss = find(cells, chat_miss_label(run.transport), 1)
    chat_miss_high = find(cells, chat_miss_label(run.transport), high)
    lookup, forward = find(cells, SEMANTIC_LOOKUP, 1), find(cells, BARE_FORWARD, 1)

    auto_added = auto_miss.p50 - direct_auto.p50
    chat_added = chat_miss.p50 - (direct_chat.p50 + lookup.p50)
    auto_share = auto_miss_high.throughput / direct_auto_high.throughput
    chat_share = chat_miss_high.throughput / direct_chat_high.throughput
    ratio = lookup.p50 / forward.p50
    rss = max(run.rss_ready, run.rss_after_load)
    return [
        Target(
            f"exact hit p50 < direct chat p50 at c=1 and c={high}",
            hit.p50 < direct_chat.p50 and hit_high.p50 < direct_chat_high.p50,
            f"c=1: {hit.p50:.2f} vs {direct_chat.p50:.2f} ms; c={high}: {hit_high.p50:.2f} vs {direct_chat_high.p50:.2f} ms",
        ),
        Target(
            f"autocomplete miss adds <= {MAX_ADDED_P50_MS} ms p50 over direct at c=1",
            auto_added <= MAX_ADDED_P50_MS,
            f"{auto_added:+.2f} ms ({auto_miss.p50:.2f} - {direct_auto.p50:.2f})",
        ),
        Target(
            f"chat miss adds <= {MAX_ADDED_P50_MS} ms p50 over direct + semantic lookup at c=1",
            chat_added <= MAX_ADDED_P50_MS,
            f"{chat_added:+.2f} ms ({chat_miss.p50:.2f} - {direct_chat.p50:.2f} - {lookup.p50:.2f})",
        ),
        Target(
            f"autocomplete miss throughput >= {MIN_THROUGHPUT_SHARE:.0%} of direct at c={high}",
            auto_share >= MIN_THROUGHPUT_SHARE,
            f"{auto_share:.0%} ({auto_miss_high.throughput:.0f} vs {direct_auto_high.throughput:.0f} req/s)",
        ),
        Target(
            f"chat miss throughput >= {MIN_THROUGHPUT_SHARE:.0%} of direct at c={high}",
            chat_share >= MIN_THROUGHPUT_SHARE,
            f"{chat_share:.0%} ({chat_miss_high.throughput:.0f} vs {direct_chat_high.throughput:.0f} req/s)",
        ),
        Target(
            f"semantic lookup p50 <= {MAX_LOOKUP_TO_FORWARD}x bare forward pass p50 at c=1",
            ratio <= MAX_LOOKUP_TO_FORWARD,
            f"{ratio:.2f}x ({lookup.p50:.2f} vs {forward.p50:.2f} ms)",
        ),
        Target(
            "gateway RSS < 1.5 GB after the model loaded and after the load",
            rss < MAX_RSS_BYTES,
            f"{run.rss_ready / 1024**2:.0f} MB ready, {run.rss_after_load / 1024**2:.0f} MB after the load",
        ),
    ]


def print_report(plan: Plan, measurements: Measurements, load_before: tuple[float, float, float], elapsed_s: float) -> None:
    import torch

    cells, runs = order_cells(measurements.cells), measurements.runs
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cores = os.cpu_count()
    scope = "share one semantic scope" if chat_misses_share_scope() else "each fall into a semantic scope of their own"
    print(f"# copilot-bridge gateway bench, {now}")
    print()
    print(
        f"Machine: {cores} cores, {cpu_model()}, {psutil.virtual_memory().total / 1024**3:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, torch {torch.__version__} "
        f"with {measurements.torch_threads} thread(s) for embedding. Load average before the run: "
        f"{load_before[0]:.2f}, {load_before[1]:.2f}, {load_before[2]:.2f}."
    )
    print(
        "Nothing is pinned: the load generator and the in-process rows (this process), the gateway and the scripted "
        f"upstream share the cores. Processes outside the bench kept {measurements.other_cores:.2f} of {cores} cores "
        "busy on average while the rows ran."
    )
    print(
        f"Rows: {plan.serial_requests} requests at c=1 (interleaved) and {plan.concurrent_requests} at c={plan.concurrency} "
        f"(in {CONCURRENT_SLICES} turns), after {WARMUP_REQUESTS} unmeasured warm-up requests, at most "
        f"{plan.time_cap_s:g} s per row. Gateway: embedded exact cache and Qdrant Edge, similarity threshold 1.0, and "
        f"chat misses {scope}. Semantic lookup alone: {measurements.semantic_tokens}-token instruction, "
        f"{SEMANTIC_STORE_POINTS} points in its scope."
    )
    print()
    print(markdown_table(cells))
    print()
    for run in runs:
        reasons = ", ".join(f"{name} x{count:.0f}" for name, count in sorted(run.bypass_reasons.items())) or "none"
        print(
            f"- Gateway with http_transport={run.transport}: RSS {run.rss_ready / 1024**2:.0f} MB after the model loaded, "
            f"{run.rss_after_load / 1024**2:.0f} MB after the load. Cache layers bypassed: {reasons}."
        )
    if measurements.store_errors:
        print(f"- Qdrant Edge errors in the semantic-lookup-alone rows: {measurements.store_errors}")
    print()
    print(f"## Targets (gateway with http_transport={runs[0].transport})")
    print()
    for target in evaluate_targets(cells, runs[0], plan.concurrency):
        print(f"- {'PASS' if target.passed else 'FAIL'}: {target.name}: {target.measured}")
    chat_miss = find(cells, chat_miss_label(runs[0].transport), plan.concurrency)
    lookup = find(cells, SEMANTIC_LOOKUP, plan.concurrency)
    print(
        f"- For reference, not a target: chat miss throughput at c={plan.concurrency} is "
        f"{chat_miss.throughput / lookup.throughput:.0%} of the semantic lookup alone "
        f"({chat_miss.throughput:.0f} vs {lookup.throughput:.0f} req/s), which bounds it."
    )
    print()
    print(f"Total run time: {elapsed_s:.0f} s.")


# -- main ------------------------------------------------------------------------------------------


async def run_bench(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    load_before = os.getloadavg()
    plan = Plan(args.serial_requests, args.requests, args.concurrency, args.time_cap)
    transports = [args.transport]
    if args.compare_transports:
        transports.append("httpx" if args.transport == "aiohttp" else "aiohttp")

    folder = Path(tempfile.mkdtemp(prefix="copilot-bridge-bench-"))
    try:
        measurements = await measure(plan, transports, folder, server_env())
    finally:
        if args.keep_data:
            print(f"logs and data kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print_report(plan, measurements, load_before, time.perf_counter() - started)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per row at the high concurrency (default 1000)")
    parser.add_argument("--serial-requests", type=int, default=300, help="measured requests per row at concurrency 1 (default 300)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent requests of the high-concurrency rows (default 32)")
    parser.add_argument("--time-cap", type=float, default=20.0, help="seconds per row after which no new request starts (default 20)")
    parser.add_argument("--transport", choices=("aiohttp", "httpx"), default="aiohttp", help="the gateway's http_transport for upstream calls (default aiohttp)")
    parser.add_argument("--compare-transports", action="store_true", help="also run a gateway with the other http_transport and measure its miss rows")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary folder with the server logs and data")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.requests, args.serial_requests, args.concurrency) < 1 or args.time_cap <= 0:
        raise SystemExit("--requests, --serial-requests and --concurrency must be at least 1, and --time-cap above 0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return asyncio.run(run_bench(args))


if __name__ == "__main__":
    sys.exit(main())
