"""A token bucket: the emulator's model of the "AssumeRoleWithCertificate API TPS" quota.

Why a token bucket rather than a sliding one-second window: it costs O(1) time and memory per
request whatever the rate (a window keeps one timestamp per admitted request), and it is the
algorithm AWS documents for its own API throttling (EC2, API Gateway): a burst up to the
bucket's size, then a steady refill. A fleet that keeps to the rate on average is never
throttled; one that bursts beyond the bucket is, at once.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Optional

__all__ = ["TokenBucket", "check_rate"]

#: Forgives float rounding: refills of 0.1 s at 10/s must add up to a whole token.
_EPSILON = 1e-9


def check_rate(rate: Optional[float]) -> Optional[float]:
    """Return ``rate`` as a float (None stays None, meaning no limit), or say what is wrong.

    Raises:
        TypeError: ``rate`` is not a number (a bool counts as not a number).
        ValueError: ``rate`` is not a finite positive number.
    """
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(
            f"max_requests_per_second must be a number or None, not {type(rate).__name__}"
        )
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(
            "max_requests_per_second must be a positive number of requests per second "
            f"(or None for no limit), not {rate!r}"
        )
    return float(rate)


class TokenBucket:
    """Admit ``rate`` requests per second on average, in bursts of up to ``rate``.

    The bucket holds ``max(rate, 1)`` tokens and starts full; each admitted request takes
    one, and tokens flow back at ``rate`` per second. A refused request takes nothing, so
    clients that keep retrying do not lock each other out for ever. A rate below 1 admits
    one request every ``1 / rate`` seconds.

    Not thread-safe: :class:`~._faults.Controls` calls it under its lock.

    Args:
        rate: Tokens per second; a positive number (see :func:`check_rate`).
        clock: Monotonic seconds; tests inject one to move time by hand.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        checked = check_rate(rate)
        assert checked is not None  # noqa: S101 - None is not a rate here
        self.rate = checked
        self.capacity = max(checked, 1.0)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def admit(self) -> bool:
        """Take a token if one is there; return whether the request may proceed."""
        now = self._clock()
        elapsed = max(0.0, now - self._updated)  # a clock that steps back refills nothing
        self._updated = now
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        if self._tokens + _EPSILON < 1.0:
            return False
        self._tokens -= 1.0
        return True
