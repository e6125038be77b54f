"""The wall clock: the one place the package reads it, and the type tests inject instead."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

__all__ = ["Clock", "utcnow"]

#: Returns the current time, timezone-aware.
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
