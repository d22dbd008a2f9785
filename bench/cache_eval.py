"""Replay pairs of chat requests through a running gateway and score its cache hits.

Each row of the data set contains two requests, ``a`` and ``b``, and ``expect``: ``hit`` when ``b``
may be answered from ``a``'s cached response, ``miss`` when it may not. The script starts a
scripted upstream, a Redis server and the gateway (real embedder, Qdrant Edge on a temporary
directory), sends ``a`` then ``b`` for every pair in a namespace of its own, and reads the
``x-cache`` header of ``b``. It prints precision of the hits served and recall of the ``hit``
pairs per kind, and the similarity distribution of right and wrong candidates.

    python bench/cache_eval.py [--data PAIRS.jsonl] [--threshold 0.73] [--code-threshold 0.35]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "semantic_dev_pairs.jsonl"
READY_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} was not ready within {timeout_s} s")


def write_config(
    path: Path, *, port: int, data_dir: Path, upstream_url: str, redis_url: str, models: set[str],
    threshold: float | None, code_threshold: float | None,
) -> None:
    lines = [
        f"port = {port}",
        f'data_dir = "{data_dir}"',
        "ledger_stderr = false",
        'log_level = "WARNING"',
        "[cache]",
        f'redis_url = "{redis_url}"',
    ]
    if threshold is not None:
        lines.append(f"similarity_threshold = {threshold}")
    if code_threshold is not None:
        lines.append(f"code_similarity_threshold = {code_threshold}")
    lines += ["[upstreams.local]", f'base_url = "{upstream_url}"']
    for model in sorted(models):
        lines += ["[[models]]", f'name = "{model}"', 'upstream = "local"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def send(client: httpx.Client, request: dict[str, Any], namespace: str) -> httpx.Response:
    response = client.post("/v1/chat/completions", json=request, headers={"x-cache-namespace": namespace})
    if response.status_code != 200:
        raise RuntimeError(f"gateway returned HTTP {response.status_code}: {response.text[:300]}")
    return response


def replay(base_url: str, rows: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    results = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        for number, row in enumerate(rows):
            namespace = f"eval-{run_id}-{number}"
            send(client, row["a"], namespace)
            answer = send(client, row["b"], namespace)
            layer = answer.headers.get("x-cache", "")
            similarity = answer.headers.get("x-cache-similarity") or answer.headers.get("x-cache-nearest")
            results.append({
                "kind": row["kind"],
                "expect": row["expect"],
                "served": layer.startswith("hit-"),
                "layer": layer,
                "similarity": float(similarity) if similarity else None,
            })
            if (number + 1) % 50 == 0:
                print(f"  {number + 1}/{len(rows)} pairs", file=sys.stderr)
    return results


def summarize(results: list[dict[str, Any]]) -> str:
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_kind[result["kind"]].append(result)

    lines = [
        "| kind | expect | pairs | served | right | wrong | precision | recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    total_served = total_right = total_hit_pairs = total_hit_served = 0
    for kind in sorted(by_kind):
        group = by_kind[kind]
        expect = group[0]["expect"]
        served = [r for r in group if r["served"]]
        right = sum(1 for r in served if r["expect"] == "hit")
        wrong = len(served) - right
        precision = f"{right / len(served):.3f}" if served else "-"
        recall = f"{right / len(group):.3f}" if expect == "hit" else "-"
        lines.append(f"| {kind} | {expect} | {len(group)} | {len(served)} | {right} | {wrong} | {precision} | {recall} |")
        total_served += len(served)
        total_right += right
        if expect == "hit":
            total_hit_pairs += len(group)
            total_hit_served += right
    precision = total_right / total_served if total_served else 0.0
    recall = total_hit_served / total_hit_pairs if total_hit_pairs else 0.0
    lines.append(f"| **all** | | {len(results)} | {total_served} | {total_right} | {total_served - total_right} | {precision:.4f} | {recall:.4f} |")

    lines += ["", "Similarity of b to the nearest entry in its scope (candidates only; a different scope has none):", ""]
    lines += ["| candidates | count | min | median | max |", "|---|---|---|---|---|"]
    for label, expect in (("right (expect hit)", "hit"), ("wrong (expect miss)", "miss")):
        scores = [r["similarity"] for r in results if r["expect"] == expect and r["similarity"] is not None]
        if scores:
            lines.append(f"| {label} | {len(scores)} | {min(scores):.4f} | {statistics.median(scores):.4f} | {max(scores):.4f} |")
        else:
            lines.append(f"| {label} | 0 | - | - | - |")
    scoped_out = sum(1 for r in results if r["expect"] == "miss" and r["similarity"] is None)
    lines.append("")
    lines.append(f"Miss pairs kept apart by scope (model, system prompt, sampling, tools, task or literal code): {scoped_out}")
    lines.append(f"Layers of served hits: {dict(sorted(_count(r['layer'] for r in results if r['served']).items()))}")
    return "\n".join(lines)


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for value in values:
        counts[value] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description="Score the gateway's cache hits on pairs of requests.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"JSON Lines file of pairs (default {DEFAULT_DATA})")
    parser.add_argument("--threshold", type=float, help="override cache.similarity_threshold (plain questions)")
    parser.add_argument("--code-threshold", type=float, help="override cache.code_similarity_threshold (requests with code)")
    parser.add_argument("--limit", type=int, help="replay only the first N pairs")
    args = parser.parse_args()

    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[: args.limit] if args.limit else rows
    models = {row[side]["model"] for row in rows for side in ("a", "b")}
    workdir = Path(tempfile.mkdtemp(prefix="cache-eval-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        redis_port, upstream_port, gateway_port = free_port(), free_port(), free_port()
        processes.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "tests.support.scripted_upstream", "--port", str(upstream_port), "--name", "local"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))
        config = workdir / "gateway.toml"
        write_config(
            config, port=gateway_port, data_dir=workdir / "data", upstream_url=f"http://127.0.0.1:{upstream_port}/v1",
            redis_url=f"redis://127.0.0.1:{redis_port}/0", models=models, threshold=args.threshold,
            code_threshold=args.code_threshold,
        )
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(workdir / "gateway.log").open("wb"),
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        processes.append(gateway)
        base_url = f"http://127.0.0.1:{gateway_port}"
        wait_ready(base_url + "/readyz", READY_TIMEOUT_S, gateway)

        started = time.perf_counter()
        results = replay(base_url, rows, str(os.getpid()))
        elapsed = time.perf_counter() - started
        threshold = args.threshold if args.threshold is not None else "default"
        code_threshold = args.code_threshold if args.code_threshold is not None else "default"
        print(
            f"# Cache evaluation: {len(rows)} pairs from {args.data.name}, thresholds {threshold} (questions) and "
            f"{code_threshold} (with code), {elapsed:.1f} s\n"
        )
        print(summarize(results))
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
