"""Capped exponential backoff with full jitter: the one schedule every retrying loop uses."""

from __future__ import annotations

import random

from ._config import DEFAULT_MAX_ATTEMPTS  # the defaults live with the configuration

__all__ = ["DEFAULT_MAX_ATTEMPTS", "Backoff", "RetryPolicy"]


class Backoff:
    """How long to wait after the n-th failure in a row, counted from that failure.

    The wait is uniform in ``[floor, min(cap, base * 2**(n - 1))]`` ("full jitter", as AWS SDKs
    and AWS's IoT Lens advise): devices that failed together do not retry together.
    """

    __slots__ = ("base", "cap", "floor")

    def __init__(self, base: float, cap: float, floor: float = 0.0) -> None:
        if not 0 <= floor <= base <= cap:
            raise ValueError(f"need 0 <= floor <= base <= cap, got {floor}, {base}, {cap}")
        self.base = base
        self.cap = cap
        self.floor = floor

    def ceiling(self, failures: int) -> float:
        """The longest wait after ``failures`` failures in a row (at least one)."""
        return min(self.cap, self.base * 2.0 ** min(max(failures, 1) - 1, 62))

    def delay(self, failures: int, rng: random.Random) -> float:
        return rng.uniform(self.floor, max(self.floor, self.ceiling(failures)))

    def __repr__(self) -> str:
        return f"Backoff(base={self.base}, cap={self.cap}, floor={self.floor})"


class RetryPolicy:
    """Attempts within one fetch, and the backoff between them."""

    __slots__ = ("backoff", "max_attempts")

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
        self.backoff = Backoff(base_delay, max(base_delay, max_delay))

    def delay(self, failed_attempts: int, rng: random.Random) -> float:
        """Seconds to wait after ``failed_attempts`` failures: uniform in [0, base * 2^(n-1)]."""
        return self.backoff.delay(failed_attempts, rng)
