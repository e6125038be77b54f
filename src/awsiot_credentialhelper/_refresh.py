"""When to refresh, and who does it: windows scaled to the credential lifetime, one fetch at a time.

botocore refreshes 15 minutes (advisory) and 10 minutes (mandatory) before expiry, whatever the
lifetime: with a 900-second role alias that means a fetch on every API call and, after five
minutes, every call blocking on it. Here the windows scale with the lifetime, and a background
thread refreshes at the advisory point so that, in steady state, no API call waits for a fetch.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import weakref
from datetime import timedelta
from typing import Callable, Optional

from ._clock import Clock
from ._credentials import Credentials
from .exceptions import CredentialHelperError

__all__ = ["DEFAULT_REFRESH_POLICY", "CredentialCache", "RefreshPolicy"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RefreshPolicy:
    """How early to refresh, as fractions of the credential lifetime with absolute bounds.

    Attributes:
        advisory_fraction: Refresh (in the background, or by one caller without blocking the
            others) once this fraction of the lifetime is left. At 0.5, a 900 s alias is
            fetched every 450 s: 8 fetches an hour instead of one per API call.
        advisory_cap: Never refresh earlier than this before expiry (12-hour credentials are
            refreshed an hour before they expire, not six).
        mandatory_fraction: Below this fraction left, every caller waits for fresh credentials,
            and a failed refresh fails the API call.
        mandatory_floor: ...but never less than this before expiry: a request signed now must
            still be valid when the service receives it.
        mandatory_cap: ...and never more than this.
        retry_delay: First wait after a failed advisory refresh; doubles, with jitter.
    """

    advisory_fraction: float = 0.5
    advisory_cap: timedelta = timedelta(minutes=60)
    mandatory_fraction: float = 0.1
    mandatory_floor: timedelta = timedelta(seconds=60)
    mandatory_cap: timedelta = timedelta(minutes=5)
    retry_delay: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if not 0 < self.mandatory_fraction < self.advisory_fraction < 1:
            raise ValueError("need 0 < mandatory_fraction < advisory_fraction < 1")

    def advisory_margin(self, lifetime: timedelta) -> timedelta:
        return min(lifetime * self.advisory_fraction, self.advisory_cap)

    def mandatory_margin(self, lifetime: timedelta) -> timedelta:
        margin = min(
            max(lifetime * self.mandatory_fraction, self.mandatory_floor), self.mandatory_cap
        )
        # A lifetime so short that the floor would exceed the advisory margin: keep the order.
        return min(margin, self.advisory_margin(lifetime) / 2)


DEFAULT_REFRESH_POLICY = RefreshPolicy()

Fetch = Callable[[], Credentials]


class CredentialCache:
    """Holds the current credentials and refreshes them by :class:`RefreshPolicy`.

    Thread-safe: however many threads call :meth:`get` while credentials expire, one fetch is
    made. With ``background=True`` a daemon thread refreshes at the advisory point; call
    :meth:`stop` (or let the process exit) to end it.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        clock: Clock,
        policy: RefreshPolicy = DEFAULT_REFRESH_POLICY,
        background: bool = True,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._policy = policy
        self._background = background
        self._credentials: Optional[Credentials] = None
        self._fetch_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._thread_lock = threading.Lock()
        self._rng = random.Random()  # noqa: S311 - retry jitter
        weakref.finalize(self, self._wake.set)  # a dropped cache wakes its thread to end it
        self.fetch_count = 0

    def get(self) -> Credentials:
        """Credentials valid beyond the mandatory margin, fetching only when the policy says so.

        Raises:
            CredentialHelperError: a refresh that had to succeed failed.
        """
        current = self._credentials
        if current is None or self._must_refresh(current):
            current = self._refresh_blocking()
        elif self._advisory_due(current) and not self._background_alive():
            current = self._refresh_if_free(current)
        self._ensure_background()
        return current

    @property
    def current(self) -> Optional[Credentials]:
        """The credentials held now, without refreshing."""
        return self._credentials

    def stop(self) -> None:
        """End the background thread; later calls to :meth:`get` still work, refreshing inline."""
        self._stop.set()
        self._wake.set()
        with self._thread_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    # --- policy ----------------------------------------------------------------------------

    def _remaining(self, credentials: Credentials) -> timedelta:
        return credentials.remaining(self._clock())

    def _must_refresh(self, credentials: Credentials) -> bool:
        margin = self._policy.mandatory_margin(credentials.lifetime)
        return self._remaining(credentials) <= margin

    def _advisory_due(self, credentials: Credentials) -> bool:
        margin = self._policy.advisory_margin(credentials.lifetime)
        return self._remaining(credentials) <= margin

    # --- fetching --------------------------------------------------------------------------

    def _refresh_blocking(self) -> Credentials:
        with self._fetch_lock:
            current = self._credentials
            if current is not None and not self._must_refresh(current):
                return current  # another thread refreshed while we waited
            return self._store(self._fetch())

    def _refresh_if_free(self, current: Credentials) -> Credentials:
        """One caller refreshes; the others go on with the still-valid credentials."""
        if not self._fetch_lock.acquire(blocking=False):
            return current
        try:
            if self._credentials is not current:
                return self._credentials or current
            try:
                return self._store(self._fetch())
            except CredentialHelperError as error:
                logger.warning(
                    "Advisory credential refresh failed; the current credentials stay in use "
                    "for %s more. Cause: %s",
                    _humanize(self._remaining(current)),
                    error,
                )
                return current
        finally:
            self._fetch_lock.release()

    def _store(self, credentials: Credentials) -> Credentials:
        self._credentials = credentials
        self.fetch_count += 1
        self._wake.set()
        return credentials

    # --- the background thread -------------------------------------------------------------

    def _background_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _ensure_background(self) -> None:
        if not self._background or self._stop.is_set() or self._background_alive():
            return
        with self._thread_lock:
            if self._background_alive() or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=_run_background,
                args=(weakref.ref(self), self._stop, self._wake),
                name="awsiot-credential-refresh",
                daemon=True,
            )
            self._thread.start()

    def background_step(self, failures: int) -> tuple[int, float]:
        """One pass of the background loop: refresh if it is time.

        Returns:
            The count of refreshes failed in a row, and the seconds to sleep before the next pass.
        """
        current = self._credentials
        if current is None:
            return failures, _IDLE_WAIT
        due_in = self._remaining(current) - self._policy.advisory_margin(current.lifetime)
        if failures:
            due_in = max(due_in, self._retry_delay(failures, current))
        if due_in > timedelta(0):
            return failures, due_in.total_seconds()
        return self._background_refresh(current, failures), 0.0

    def _background_refresh(self, current: Credentials, failures: int) -> int:
        with self._fetch_lock:
            if self._credentials is not current:
                return 0
            try:
                self._store(self._fetch())
            except CredentialHelperError as error:
                logger.warning(
                    "Background credential refresh failed (%d in a row); the current "
                    "credentials stay in use for %s more. Cause: %s",
                    failures + 1,
                    _humanize(self._remaining(current)),
                    error,
                )
                return failures + 1
            except Exception:
                logger.exception("Background credential refresh crashed; it will be retried.")
                return failures + 1
        return 0

    def _retry_delay(self, failures: int, current: Credentials) -> timedelta:
        """Exponential backoff with jitter, but always retry before the mandatory margin."""
        base = self._policy.retry_delay * (2 ** min(failures - 1, 10))
        jittered: timedelta = base * self._rng.uniform(0.5, 1.0)
        until_mandatory = self._remaining(current) - self._policy.mandatory_margin(current.lifetime)
        return max(min(jittered, until_mandatory / 2), timedelta(seconds=1))


#: How long an idle background thread sleeps before checking whether its cache still exists.
_IDLE_WAIT = 60.0


def _run_background(
    cache_ref: weakref.ref[CredentialCache], stop: threading.Event, wake: threading.Event
) -> None:
    """The refresh loop. It holds its cache only weakly, between waits: a cache that its owner
    dropped without calling ``stop()`` is collected, and the thread then ends by itself."""
    failures = 0
    while not stop.is_set():
        wake.clear()
        cache = cache_ref()
        if cache is None:
            return
        failures, wait = cache.background_step(failures)
        del cache
        if wait:
            wake.wait(min(wait, _IDLE_WAIT))


def _humanize(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"
