"""What the emulator has answered: per-request records and counters, without any secrets.

Tests assert on these instead of parsing logs: how many requests a client made, for which
thing and alias, and with which outcome (e.g. "one 503, then one success").
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import threading
from typing import Optional

__all__ = ["Journal", "RequestRecord", "Stats"]

#: Enough for any test; old records are dropped first so a long CLI run stays bounded.
_MAX_RECORDS = 10_000


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request and its answer. Holds no key, secret or session token.

    Attributes:
        request_id: The ``x-amzn-RequestId`` sent back.
        received_at: When the request head was complete (server's true clock, UTC).
        method: The HTTP method.
        path: The request path.
        role_alias: The alias from the path, if the path was a credentials path.
        thing_name: The ``x-amzn-iot-thingname`` header, if sent.
        certificate_id: The client certificate's id, if the registry knew it.
        status: The HTTP status sent (or announced, for truncated answers); 0 if none was.
        outcome: A short label: an ``Outcome`` name (``SUCCESS``, ``ACCESS_DENIED`` ...),
            ``FAULT_RESPOND``/``FAULT_TRUNCATE``/``FAULT_DISCONNECT``, ``THROTTLED`` (beyond
            ``Controls.max_requests_per_second``, answered 429), ``NOT_FOUND``,
            ``METHOD_NOT_ALLOWED``, ``BAD_REQUEST`` or ``INTERNAL_FAILURE`` (an error
            inside the emulator or moto, answered 500 and logged with its traceback).
        handling_seconds: Time from the complete request head to the answer being ready to
            write (decision, credentials and any injected latency; writing takes microseconds).
    """

    request_id: str
    received_at: datetime.datetime
    method: str
    path: str
    role_alias: Optional[str]
    thing_name: Optional[str]
    certificate_id: Optional[str]
    status: int
    outcome: str
    handling_seconds: float


@dataclasses.dataclass(frozen=True)
class Stats:
    """Request counters, as plain dicts (copies; they do not change under you)."""

    total: int
    by_outcome: dict[str, int]
    by_thing: dict[str, int]
    by_role_alias: dict[str, int]
    by_status: dict[int, int]


class Journal:
    """A thread-safe request log with counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: collections.deque[RequestRecord] = collections.deque(maxlen=_MAX_RECORDS)
        self._clear_counters()

    def _clear_counters(self) -> None:
        self._total = 0
        self._by_outcome: collections.Counter[str] = collections.Counter()
        self._by_thing: collections.Counter[str] = collections.Counter()
        self._by_alias: collections.Counter[str] = collections.Counter()
        self._by_status: collections.Counter[int] = collections.Counter()

    def add(self, record: RequestRecord) -> None:
        """Record one answered request."""
        with self._lock:
            self._records.append(record)
            self._total += 1
            self._by_outcome[record.outcome] += 1
            self._by_status[record.status] += 1
            if record.thing_name is not None:
                self._by_thing[record.thing_name] += 1
            if record.role_alias is not None:
                self._by_alias[record.role_alias] += 1

    def records(self) -> list[RequestRecord]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._records)

    def stats(self) -> Stats:
        """A snapshot of the counters."""
        with self._lock:
            return Stats(
                total=self._total,
                by_outcome=dict(self._by_outcome),
                by_thing=dict(self._by_thing),
                by_role_alias=dict(self._by_alias),
                by_status=dict(self._by_status),
            )

    def clear(self) -> None:
        """Forget every record and counter."""
        with self._lock:
            self._records.clear()
            self._clear_counters()
