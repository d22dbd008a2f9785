"""``copilot-bridge purge``: delete cache entries by namespace and/or model.

It sends the request to the running gateway, which keeps Qdrant Edge open. When no gateway
accepts the connection, it opens the configured stores itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import httpx

from gateway.config import load_config

__all__ = ["register"]


def _purge_directly(args: argparse.Namespace) -> dict[str, Any]:
    from gateway.admin_api import purge_caches
    from gateway.state import build_state

    config = load_config(args.config)
    if args.data_dir:
        config.data_dir = args.data_dir
    config.ledger_stderr = False

    async def run() -> dict[str, Any]:
        from cache.embedder import Embedder

        # The vector store needs no model to delete points: give it an unloaded embedder.
        embedder = Embedder(config.cache.embedding_model)
        embedder.dimension = 384 if not config.cache.embedding_model else None
        state = build_state(config, embedder=embedder)
        try:
            return await purge_caches(state, args.namespace, args.model)
        finally:
            await state.close()

    return asyncio.run(run())


def _run(args: argparse.Namespace) -> int:
    if not (args.namespace or args.model or args.all):
        print("copilot-bridge purge: name --namespace, --model or --all", file=sys.stderr)
        return 2
    body: dict[str, Any] = {"namespace": args.namespace, "model": args.model, "all": args.all}
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        response = httpx.post(args.url.rstrip("/") + "/admin/cache/purge", json=body, headers=headers, timeout=30, trust_env=False)
    except httpx.ConnectError:
        print(f"no gateway is listening at {args.url}; purging the configured stores directly", file=sys.stderr)
        result = _purge_directly(args)
    else:
        if response.status_code != 200:
            print(f"copilot-bridge purge: the gateway returned HTTP {response.status_code}: {response.text}", file=sys.stderr)
            return 1
        result = response.json()
    print(json.dumps(result))
    return 0


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("purge", parents=[common], help="delete cache entries by namespace and/or model")
    parser.add_argument("--namespace", help="cache namespace (with API keys: '<team>:<namespace>')")
    parser.add_argument("--model", help="requested model name")
    parser.add_argument("--all", action="store_true", help="delete every entry")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the running gateway (default http://127.0.0.1:8080)")
    parser.add_argument("--api-key", default=os.environ.get("COPILOT_BRIDGE_API_KEY", ""), help="an admin API key (default $COPILOT_BRIDGE_API_KEY)")
    parser.add_argument("--data-dir", help="data directory, for purging without a running gateway")
    parser.set_defaults(handler=_run)
