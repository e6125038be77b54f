"""Test controls: make the emulator slow, wrong, rude or out of time, on purpose.

Tests change these from their own thread while server threads read them, so every access
goes through one lock. Faults are queued: each request takes the next fault, if any, before
the service logic runs, so a faulted request never mints credentials.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import threading
from typing import Optional, Union

__all__ = ["DEFAULT_ERROR_TYPES", "Controls", "Fault", "FaultKind"]


class FaultKind(enum.Enum):
    """What a queued fault does to one request."""

    #: Answer with the fault's status and body instead of the real answer.
    RESPOND = "respond"
    #: Announce a Content-Length larger than the body, send the body, then close.
    TRUNCATE = "truncate"
    #: Close the connection part-way through the status line (after ``HTTP/1.``).
    DISCONNECT = "disconnect"


@dataclasses.dataclass(frozen=True)
class Fault:
    """One queued misbehaviour.

    Attributes:
        kind: What to do.
        status: The HTTP status for RESPOND and TRUNCATE.
        body: The body to send for RESPOND (sent as is, JSON or not).
        error_type: The ``x-amzn-ErrorType`` header for RESPOND, if any.
    """

    kind: FaultKind
    status: int = 200
    body: bytes = b""
    error_type: Optional[str] = None


#: What the service's own 5xx/429 bodies probably look like; unverified against AWS.
_DEFAULT_BODIES = {
    429: b'{"message": "Rate exceeded"}',
    500: b'{"message": "Internal failure"}',
    503: b'{"message": "Service unavailable"}',
}
#: The ``x-amzn-ErrorType`` for those statuses, AWS's usual names; also unverified.
DEFAULT_ERROR_TYPES = {
    429: "ThrottlingException",
    500: "InternalFailureException",
    503: "ServiceUnavailableException",
}
#: Far beyond any believable skew; catches seconds passed where a timedelta was meant.
_MAX_SKEW = datetime.timedelta(days=3650)


class Controls:
    """The knobs a test turns on one emulator. Thread-safe.

    Example::

        emu.controls.fail_next(2, status=503)     # two 503s, then normal service
        emu.controls.latency = 0.2                 # every answer waits 200 ms
        emu.controls.clock_skew = datetime.timedelta(minutes=-10)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: collections.deque[Fault] = collections.deque()
        self._latency = 0.0
        self._clock_skew = datetime.timedelta(0)

    # --- latency and clock ------------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds to wait before answering each request (default 0)."""
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if not 0 <= seconds <= 60:
            raise ValueError(f"latency must be between 0 and 60 seconds, not {seconds!r}")
        with self._lock:
            self._latency = float(seconds)

    @property
    def clock_skew(self) -> datetime.timedelta:
        """How far the server's clock is off: shifts ``Date`` and ``expiration`` alike.

        A server whose clock runs 10 minutes fast reports a ``Date`` 10 minutes ahead and an
        ``expiration`` 10 minutes later than the true one; the certificate validity check and
        moto's STS keep using the true time.
        """
        with self._lock:
            return self._clock_skew

    @clock_skew.setter
    def clock_skew(self, skew: Union[datetime.timedelta, float]) -> None:
        if not isinstance(skew, datetime.timedelta):
            skew = datetime.timedelta(seconds=skew)
        if abs(skew) > _MAX_SKEW:
            raise ValueError(f"clock_skew {skew} is beyond ten years")
        with self._lock:
            self._clock_skew = skew

    # --- queued faults ----------------------------------------------------------------------

    def _queue(self, count: int, fault: Fault) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count!r}")
        with self._lock:
            self._faults.extend([fault] * count)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        body: Union[bytes, str, None] = None,
        error_type: Optional[str] = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` and ``body``.

        Args:
            count: How many requests to fail.
            status: The HTTP status, e.g. 429, 500 or 503.
            body: The body; default is a ``{"message": ...}`` JSON fitting the status.
            error_type: The ``x-amzn-ErrorType`` header; default fits 429/500/503.
        """
        if not 100 <= status <= 599:
            raise ValueError(f"status must be an HTTP status code, not {status!r}")
        if body is None:
            body = _DEFAULT_BODIES.get(status, b'{"message": "Injected failure"}')
        if isinstance(body, str):
            body = body.encode()
        if error_type is None:
            error_type = DEFAULT_ERROR_TYPES.get(status)
        self._queue(count, Fault(FaultKind.RESPOND, status, body, error_type))

    def garbage_next(self, count: int = 1, *, status: int = 200) -> None:
        """Answer the next ``count`` requests with a body that is not JSON."""
        self._queue(count, Fault(FaultKind.RESPOND, status, b"<html>\x00\xffnot json", None))

    def truncate_next(self, count: int = 1) -> None:
        """Announce a Content-Length larger than the body sent, then close the connection.

        The body is the start of a success answer with placeholder values (no real secrets).
        """
        self._queue(count, Fault(FaultKind.TRUNCATE, 200))

    def disconnect_next(self, count: int = 1) -> None:
        """Send the first bytes of the status line (``HTTP/1.``), then close the connection."""
        self._queue(count, Fault(FaultKind.DISCONNECT))

    def pending_faults(self) -> int:
        """How many queued faults have not been used yet."""
        with self._lock:
            return len(self._faults)

    def take_fault(self) -> Optional[Fault]:
        """Remove and return the next queued fault (called once per request)."""
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def reset(self) -> None:
        """Back to normal service: no faults, no latency, no skew."""
        with self._lock:
            self._faults.clear()
            self._latency = 0.0
            self._clock_skew = datetime.timedelta(0)
