"""Per-request cache control, in the forms clients already send.

- ``Cache-Control: no-cache`` skips the lookup but stores the response; ``no-store`` does not store
  it; ``max-age=N`` stores it for N seconds.
- A ``cache`` body field as LiteLLM clients send it: ``{"no-cache": true, "no-store": true,
  "ttl": 600, "namespace": "team-a"}``. The gateway removes it before the request goes upstream.
- An ``x-cache-namespace`` header picks the tenant namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from gateway.errors import InvalidRequest

__all__ = ["CachePolicy", "cache_policy"]

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class CachePolicy:
    lookup: bool
    store: bool
    ttl_s: int
    namespace: str


def _flag(options: Mapping[str, Any], *names: str) -> bool:
    for name in names:
        value = options.get(name)
        if value is None:
            continue
        if not isinstance(value, bool):
            raise InvalidRequest(f"'cache.{name}' must be a boolean, not {value!r}", param=f"cache.{name}")
        if value:
            return True
    return False


def cache_policy(
    headers: Mapping[str, str], options: Mapping[str, Any], *, default_ttl_s: int, default_namespace: str, enabled: bool
) -> CachePolicy:
    """Combine the Cache-Control header, the ``cache`` body field and the namespace header.

    Raises:
        InvalidRequest: a TTL that is not a positive integer or a namespace with other characters
            than letters, digits, ``.``, ``_`` and ``-`` (at most 128).
    """
    directives = {d.strip().lower() for d in headers.get("cache-control", "").split(",") if d.strip()}
    lookup = enabled and "no-cache" not in directives and not _flag(options, "no-cache", "no_cache")
    store = enabled and "no-store" not in directives and not _flag(options, "no-store", "no_store")

    ttl_s = default_ttl_s
    for directive in directives:
        if directive.startswith(("max-age=", "s-maxage=")):
            value = directive.split("=", 1)[1]
            if not value.isdigit() or int(value) <= 0:
                raise InvalidRequest(f"Cache-Control {directive!r} needs a positive number of seconds", param="cache-control")
            ttl_s = int(value)
    ttl_option = options.get("ttl", options.get("s-maxage"))
    if ttl_option is not None:
        if isinstance(ttl_option, bool) or not isinstance(ttl_option, (int, float)) or ttl_option <= 0:
            raise InvalidRequest(f"'cache.ttl' must be a positive number of seconds, not {ttl_option!r}", param="cache.ttl")
        ttl_s = max(1, int(ttl_option))

    namespace = options.get("namespace") or headers.get("x-cache-namespace") or default_namespace
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace):
        raise InvalidRequest(
            f"cache namespace {namespace!r} is invalid: use 1-128 letters, digits, '.', '_' or '-'",
            param="cache.namespace",
        )
    return CachePolicy(lookup=lookup, store=store, ttl_s=ttl_s, namespace=namespace)
