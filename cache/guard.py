"""Bound every cache store call in time and skip a failing store for a cool-down.

A cache outage must never fail or stall a request: a call that errors or takes longer than the
timeout returns the fallback value, counts an error, and the store is skipped until the cool-down
ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["StoreGuard"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class StoreGuard:
    """Wraps the calls to one store (``layer`` is ``exact`` or ``semantic``)."""

    def __init__(
        self,
        layer: str,
        store: str,
        *,
        timeout_s: float,
        cooldown_s: float,
        on_error: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.layer = layer
        self.store = store
        self.timeout_s = timeout_s
        self.cooldown_s = cooldown_s
        self._on_error = on_error
        self._skip_until = 0.0
        self.last_error: str | None = None

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._skip_until

    async def call(self, operation: str, make_call: Callable[[], Awaitable[T]], fallback: T, *, request_id: str = "-") -> T:
        """Run ``make_call()`` within the timeout; on error or time-out return ``fallback``."""
        if not self.available:
            return fallback
        try:
            # asyncio.timeout cancels the call in place; wait_for would wrap it in a new task.
            async with asyncio.timeout(self.timeout_s):
                return await make_call()
        except Exception as exc:  # any store failure degrades to "no cache" for this request
            self.record_failure(operation, exc, request_id=request_id)
            return fallback

    def record_failure(self, operation: str, exc: BaseException, *, request_id: str = "-") -> None:
        """Count and log a failed call, and skip the store for the cool-down."""
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        self.last_error = reason
        self._skip_until = time.monotonic() + self.cooldown_s
        logger.warning(
            "%s cache %s %s failed for request %s (%s); skipping it for %.0f s",
            self.layer, self.store, operation, request_id, reason, self.cooldown_s,
        )
        if self._on_error is not None:
            self._on_error(self.layer, self.store, operation)

    def reset(self) -> None:
        self._skip_until = 0.0
