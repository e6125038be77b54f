"""Test controls: make the emulator slow, wrong, rude, throttled or out of time, on purpose.

Tests change these from their own thread while server threads read them, so every access
goes through one lock. Each credential request first passes the rate limit, if one is set,
then takes the next queued fault, if any, before the service logic runs, so neither a
throttled nor a faulted request ever mints credentials.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import enum
import threading
import time
from typing import Callable, Optional, Union

from ._throttle import TokenBucket, check_rate

__all__ = [
    "DEFAULT_ERROR_TYPES",
    "MAX_CREDENTIAL_LIFETIME",
    "MIN_CREDENTIAL_LIFETIME",
    "THROTTLED",
    "Controls",
    "Fault",
    "FaultKind",
    "check_credential_lifetime",
]


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
#: The answer beyond ``max_requests_per_second``: the same 429 as ``fail_next(status=429)``.
THROTTLED = Fault(FaultKind.RESPOND, 429, _DEFAULT_BODIES[429], DEFAULT_ERROR_TYPES[429])
#: ``credential_lifetime`` bounds. The real service allows 900-43200 s; the test aid goes
#: down to 1 s so that tests of refresh across expiry run in seconds or minutes.
MIN_CREDENTIAL_LIFETIME = 1
MAX_CREDENTIAL_LIFETIME = 43200


def check_credential_lifetime(seconds: Optional[int]) -> Optional[int]:
    """Return ``seconds`` if it is a valid ``credential_lifetime`` (None included).

    Raises:
        TypeError: ``seconds`` is not an int (the answer's expiration has whole seconds).
        ValueError: ``seconds`` is outside 1-43200.
    """
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise TypeError(
            f"credential_lifetime must be whole seconds or None, not {type(seconds).__name__}"
        )
    if not MIN_CREDENTIAL_LIFETIME <= seconds <= MAX_CREDENTIAL_LIFETIME:
        raise ValueError(
            f"credential_lifetime must be from {MIN_CREDENTIAL_LIFETIME} to "
            f"{MAX_CREDENTIAL_LIFETIME} seconds (or None for the role alias's duration), "
            f"not {seconds!r}"
        )
    return seconds


class Controls:
    """The knobs a test turns on one emulator. Thread-safe.

    Example::

        emu.controls.fail_next(2, status=503)     # two 503s, then normal service
        emu.controls.latency = 0.2                 # every answer waits 200 ms
        emu.controls.clock_skew = datetime.timedelta(minutes=-10)
        emu.controls.max_requests_per_second = 50  # beyond that, 429 ThrottlingException
        emu.controls.credential_lifetime = 60      # a test aid: credentials live 60 s

    Args:
        clock: Monotonic seconds for the rate limit; tests inject one to move time by hand.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._faults: collections.deque[Fault] = collections.deque()
        self._latency = 0.0
        self._clock_skew = datetime.timedelta(0)
        self._bucket: Optional[TokenBucket] = None
        self._credential_lifetime: Optional[int] = None

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

    # --- throttling and credential lifetime -------------------------------------------------

    @property
    def max_requests_per_second(self) -> Optional[float]:
        """Credential requests per second beyond which the answer is 429 (None: no limit).

        A token bucket (see ``_throttle.py``) of ``max(N, 1)`` tokens refilled at N per
        second, shared by every device, like the per-account "AssumeRoleWithCertificate API
        TPS" quota. Setting it (again) starts with a full bucket.
        """
        with self._lock:
            return self._bucket.rate if self._bucket is not None else None

    @max_requests_per_second.setter
    def max_requests_per_second(self, rate: Optional[float]) -> None:
        checked = check_rate(rate)
        with self._lock:
            self._bucket = None if checked is None else TokenBucket(checked, self._clock)

    def admit(self) -> bool:
        """Whether the rate limit lets one more credential request in (called once per request)."""
        with self._lock:
            return self._bucket is None or self._bucket.admit()

    @property
    def credential_lifetime(self) -> Optional[int]:
        """A test aid: seconds the credentials live, whatever the role alias says (None: its
        ``credentialDurationSeconds``). 1-43200, where the real service allows 900-43200."""
        with self._lock:
            return self._credential_lifetime

    @credential_lifetime.setter
    def credential_lifetime(self, seconds: Optional[int]) -> None:
        checked = check_credential_lifetime(seconds)
        with self._lock:
            self._credential_lifetime = checked

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
        """Back to normal service: no faults, latency, skew, rate limit or lifetime override."""
        with self._lock:
            self._faults.clear()
            self._latency = 0.0
            self._clock_skew = datetime.timedelta(0)
            self._bucket = None
            self._credential_lifetime = None
