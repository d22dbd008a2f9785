"""The ``copilot-bridge`` command line."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import sys
from typing import Any

from gateway.config import Config, ConfigError, load_config

__all__ = ["main"]

logger = logging.getLogger("copilot_bridge")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("httpx", "httpcore", "sentence_transformers", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.host:
        config.host = args.host
    if args.port is not None:
        config.port = args.port
    if args.data_dir:
        config.data_dir = args.data_dir
    _configure_logging(config.log_level)

    import uvicorn

    from gateway.app import create_app

    lock = _lock_data_dir(config)
    if lock is None:
        return 2

    if config.host not in ("127.0.0.1", "::1", "localhost"):
        logger.warning("listening on %s: the gateway is reachable from other machines", config.host)
    logger.info("copilot-bridge serving on http://%s:%d (OpenAI API under /v1)", config.host, config.port)
    app = create_app(config)
    uvicorn.run(
        app, host=config.host, port=config.port, log_level="warning", access_log=False, lifespan="on",
        loop=_fastest("uvloop", "auto"), http=_fastest("httptools", "auto"),
    )
    return 0


def _fastest(module: str, fallback: str) -> str:
    """Return ``module`` when it is importable (uvloop, httptools), else uvicorn's ``fallback``."""
    try:
        __import__(module)
    except ImportError:
        return fallback
    return module


def _lock_data_dir(config: Config) -> Any:
    """Hold an exclusive lock on the data directory while the embedded stores use it.

    Returns the open lock file, or None (after printing why) when another process holds it.
    """
    cache = config.cache
    if cache.enabled and cache.redis_url and (cache.qdrant_url or not cache.semantic_enabled):
        return True
    config.data_path.mkdir(parents=True, exist_ok=True)
    path = config.data_path / "gateway.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        print(
            f"copilot-bridge: data directory {config.data_path} is in use by another gateway (pid {owner}). "
            "Qdrant Edge and the embedded cache allow one process per data directory: pass another "
            "--data-dir, or share Redis and a Qdrant server (cache.redis_url, cache.qdrant_url) between replicas.",
            file=sys.stderr,
        )
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="copilot-bridge",
        description="Caching, routing gateway for AI coding traffic (OpenAI-compatible).",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="TOML config file (default: $COPILOT_BRIDGE_CONFIG or ./copilot-bridge.toml)")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="run the gateway")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8080)")
    serve.add_argument("--data-dir", help="folder for the ledger and embedded caches (default ~/.local/share/copilot-bridge)")
    serve.set_defaults(handler=_serve)

    # Other commands register themselves here: register(commands, common) adds one subparser
    # whose defaults set handler=callable(args) -> exit code.
    for register in _command_registrars():
        register(commands, common)
    return parser


def _command_registrars() -> list:
    from gateway import purge_cli, report
    from indexer.cli import register as register_indexer

    registrars = [report.register, purge_cli.register]
    registrars.append(register_indexer)
    return registrars


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"copilot-bridge: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
