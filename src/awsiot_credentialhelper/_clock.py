"""The clocks: the one place the package reads them, and the types tests inject instead.

Two clocks, for two questions. The wall clock (:func:`utcnow`) says what time it is, which is
what expirations are written in, but devices set it after boot, sometimes by decades (boards
without a real-time clock), and NTP steps it. The monotonic clock (:func:`monotonic`) never
jumps, so it measures how long credentials have been held.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

__all__ = ["Clock", "Monotonic", "monotonic", "utcnow"]

#: Returns the current time, timezone-aware.
Clock = Callable[[], datetime]
#: Returns seconds from an arbitrary start, never going back.
Monotonic = Callable[[], float]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def monotonic() -> float:
    """Seconds since boot, counting time spent suspended.

    ``time.monotonic`` stops while a device sleeps (CLOCK_MONOTONIC on Linux), so credentials
    held across a suspend would look younger than they are; CLOCK_BOOTTIME keeps counting.
    """
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", None)
