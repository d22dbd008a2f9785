"""A circuit breaker that stops trying a dead upstream for a cool-down."""

from __future__ import annotations

import logging
import time

__all__ = ["CircuitBreaker"]

logger = logging.getLogger(__name__)


class CircuitBreaker:
    """Opens after ``failures`` consecutive failures; after ``cooldown_s`` one trial request is let
    through (half-open), and its success closes the breaker again."""

    def __init__(self, name: str, *, failures: int = 3, cooldown_s: float = 30.0) -> None:
        self.name = name
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.last_failure = ""

    @property
    def retry_after_s(self) -> float:
        """Seconds until an open circuit lets a trial request through (0 when not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.cooldown_s - (time.monotonic() - self._opened_at))

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if time.monotonic() - self._opened_at >= self.cooldown_s:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Return True when a request may be sent now."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        if self._opened_at is not None:
            logger.info("upstream %s recovered; circuit closed", self.name)
        self._consecutive = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self, reason: str = "") -> None:
        if reason:
            self.last_failure = reason
        self._consecutive += 1
        self._trial_in_flight = False
        if self._opened_at is not None or self._consecutive >= self.failures:
            self._opened_at = time.monotonic()
            logger.warning(
                "upstream %s failed %d times in a row; circuit open for %.0f s",
                self.name, self._consecutive, self.cooldown_s,
            )
