"""Errors the gateway returns, in the OpenAI error shape.

    APIError                 any error sent to the client as {"error": {...}}
    ├── InvalidRequest       400, the body is not valid JSON or breaks the schema
    ├── Unauthorized         401, a missing or unknown gateway API key
    ├── ModelNotFound        404, the requested model is not configured
    ├── RepoNotIndexed       404, no index of that repository exists
    ├── IndexOutdated        409, the index was built with another embedding model
    ├── BodyTooLarge         413, the body is over ``max_body_bytes``
    ├── UpstreamFailed       502, every upstream tried failed or was unreachable
    ├── EmbedderUnavailable  503, the embedding model failed to load or is still loading
    ├── IndexUpdating        503, an indexing run is writing the repository's index
    └── UpstreamTimeout      504, the last upstream tried timed out
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "BodyTooLarge",
    "EmbedderUnavailable",
    "IndexOutdated",
    "IndexUpdating",
    "InvalidRequest",
    "ModelNotFound",
    "RepoNotIndexed",
    "Unauthorized",
    "UpstreamFailed",
    "UpstreamTimeout",
    "error_body",
]


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class APIError(Exception):
    status_code = 500
    type_ = "server_error"
    code: str | None = None
    retry_after_s: float | None = None
    """When set, the response carries a Retry-After header with these seconds, rounded up."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type_, self.param, self.code)


class InvalidRequest(APIError):
    status_code = 400
    type_ = "invalid_request_error"


class Unauthorized(APIError):
    status_code = 401
    type_ = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotFound(APIError):
    status_code = 404
    type_ = "invalid_request_error"
    code = "model_not_found"


class BodyTooLarge(APIError):
    status_code = 413
    type_ = "invalid_request_error"
    code = "request_too_large"


class UpstreamFailed(APIError):
    status_code = 502
    type_ = "upstream_error"
    code = "upstream_failed"


class UpstreamTimeout(APIError):
    status_code = 504
    type_ = "upstream_error"
    code = "upstream_timeout"


class EmbedderUnavailable(APIError):
    status_code = 503
    type_ = "server_error"
    code = "embedder_unavailable"


class RepoNotIndexed(APIError):
    status_code = 404
    type_ = "invalid_request_error"
    code = "repo_not_found"


class IndexOutdated(APIError):
    status_code = 409
    type_ = "invalid_request_error"
    code = "index_mismatch"


class IndexUpdating(APIError):
    status_code = 503
    type_ = "server_error"
    code = "index_busy"
