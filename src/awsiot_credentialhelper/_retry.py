"""Bounded exponential backoff with full jitter, for failures that retrying can cure."""

from __future__ import annotations

import random

__all__ = ["DEFAULT_MAX_ATTEMPTS", "RetryPolicy"]

#: One try and two retries: enough for a dropped packet or a brief 503, short enough that a
#: real outage surfaces quickly to the caller (who may retry on its own schedule).
DEFAULT_MAX_ATTEMPTS = 3


class RetryPolicy:
    """How many attempts, and how long to wait between them ("full jitter", as AWS SDKs do)."""

    __slots__ = ("base_delay", "max_attempts", "max_delay")

    def __init__(
        self,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if base_delay < 0 or max_delay < 0:
            raise ValueError("retry delays must not be negative")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay

    def delay(self, failed_attempts: int, rng: random.Random) -> float:
        """Seconds to wait after ``failed_attempts`` failures: uniform in [0, base * 2^(n-1)]."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (failed_attempts - 1))
        return rng.uniform(0.0, ceiling)
