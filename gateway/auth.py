"""Gateway API keys: who sent a request, or 401 when keys are configured and none matches."""

from __future__ import annotations

import hashlib
import json
import hmac
from dataclasses import dataclass
from typing import Any, Mapping

from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.config import Config, KeyConfig
from gateway.errors import Unauthorized

__all__ = ["Identity", "KeyRing", "auth_middleware_factory"]

# Paths anyone may read: probes, metrics and the dashboard page (its data endpoint is protected).
OPEN_PATHS = ("/healthz", "/readyz", "/metrics", "/dashboard")


@dataclass(frozen=True)
class Identity:
    developer: str
    team: str
    project: str
    cache_scope: str
    admin: bool = False



class KeyRing:
    """Looks up keys by their SHA-256, so plain keys are never compared byte by byte in Python."""

    def __init__(self, keys: list[KeyConfig]) -> None:
        self._by_digest: dict[str, Identity] = {}
        for key in keys:
            digest = key.key_sha256.lower() or hashlib.sha256(key.key.encode("utf-8")).hexdigest()
            self._by_digest[digest] = Identity(key.developer, key.team, key.project, key.cache_scope, key.admin)

    @property
    def enabled(self) -> bool:
        return bool(self._by_digest)

    @property
    def teams(self) -> set[str]:
        return {identity.team for identity in self._by_digest.values()}

    def identify(self, headers: Mapping[str, str]) -> Identity | None:
        """Return the key's identity; None when no keys are configured.

        Raises:
            Unauthorized: keys are configured and the request carries none or an unknown one.
        """
        if not self._by_digest:
            return None
        authorization = headers.get("authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else headers.get("x-api-key", "").strip()
        if not token:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' with a key from the gateway's config")
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        for known, identity in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return identity
        raise Unauthorized("invalid API key: it matches no key in the gateway's config")


def auth_middleware_factory(config: Config) -> Any:
    """Return Litestar middleware that rejects unauthenticated requests and stores the identity
    in ``scope["state"]["identity"]``."""
    ring = KeyRing(config.keys)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not ring.enabled or scope["path"].startswith(OPEN_PATHS):
                await app(scope, receive, send)
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            try:
                identity = ring.identify(headers)
            except Unauthorized as error:
                body = json.dumps(error.body()).encode("ascii")
                await send({"type": "http.response.start", "status": 401, "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
            scope.setdefault("state", {})["identity"] = identity
            await app(scope, receive, send)

        return handle

    return middleware
