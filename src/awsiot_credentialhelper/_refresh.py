"""When to refresh, and who does it: windows scaled to the credential lifetime, one fetch at a time.

botocore refreshes 15 minutes (advisory) and 10 minutes (mandatory) before expiry, whatever the
lifetime: with a 900-second role alias that means a fetch on every API call and, after five
minutes, every call blocking on it. Here the windows scale with the lifetime, and a background
thread refreshes inside the advisory window so that, in steady state, no API call waits.

Three rules keep this working on devices that run for months:

- **Time held is measured on the monotonic clock.** The time left is the smaller of what the
  monotonic clock says (lifetime by the server's clock, minus the time since the fetch) and what
  the wall clock says (expiration minus now, corrected by the server's ``Date``): a wall clock
  stepped back by NTP cannot keep expired credentials, and one stepped forward costs one fetch.
- **Every failure schedules the next attempt** (capped exponential backoff with full jitter),
  until one succeeds or :meth:`CredentialCache.stop` is called; the current credentials stay in
  use while they are usable, and callers get the last error once they are not.
- **The refresh point is drawn at random** within a band of the advisory window, widely for the
  first refresh after start and narrowly after that: a fleet that boots in the same minute (a
  power cut) spreads its fetches out within a cycle or two, instead of refreshing in lockstep.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import weakref
from datetime import timedelta
from typing import Callable, NamedTuple, Optional

from ._clock import Clock, Monotonic, monotonic, utcnow
from ._credentials import Credentials
from ._lifetime import MAX_LIFETIME_SECONDS
from ._retry import Backoff
from .exceptions import CredentialHelperError

__all__ = [
    "DEFAULT_REFRESH_POLICY",
    "CredentialCache",
    "RefreshPolicy",
    "RefreshSchedule",
    "RefreshingCredentials",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class RefreshPolicy:
    """How early to refresh, as fractions of the credential lifetime with absolute bounds.

    Attributes:
        advisory_fraction: Refresh (in the background, or by one caller without blocking the
            others) at the latest once this fraction of the lifetime is left. At 0.5, a 900 s
            alias is fetched every 450 s or a little sooner: 8 fetches an hour instead of one
            per API call.
        advisory_cap: Never refresh earlier than this before expiry (12-hour credentials are
            refreshed an hour before they expire, not six).
        mandatory_fraction: Below this fraction left, every caller waits for fresh credentials,
            and a failed refresh fails the API call.
        mandatory_floor: ...but never less than this before expiry: a request signed now must
            still be valid when the service receives it.
        mandatory_cap: ...and never more than this.
        retry_delay: The longest wait after the first failed refresh; it doubles with each
            failure in a row, and each wait is drawn at random below it (full jitter).
        max_retry_delay: The longest wait between attempts, however many failed.
        jitter: The refresh point is drawn between the advisory margin and this fraction of
            the way from it to the mandatory margin, anew for each credentials.
        first_jitter: The same for the first refresh after start, wider, to spread a fleet
            that started together.
    """

    advisory_fraction: float = 0.5
    advisory_cap: timedelta = timedelta(minutes=60)
    mandatory_fraction: float = 0.1
    mandatory_floor: timedelta = timedelta(seconds=60)
    mandatory_cap: timedelta = timedelta(minutes=5)
    retry_delay: timedelta = timedelta(seconds=10)
    max_retry_delay: timedelta = timedelta(minutes=2)
    jitter: float = 0.2
    first_jitter: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.mandatory_fraction < self.advisory_fraction < 1:
            raise ValueError("need 0 < mandatory_fraction < advisory_fraction < 1")
        if not (0 <= self.jitter < 1 and 0 <= self.first_jitter < 1):
            raise ValueError("need 0 <= jitter < 1 and 0 <= first_jitter < 1")
        if not timedelta(0) < self.retry_delay <= self.max_retry_delay:
            raise ValueError("need 0 < retry_delay <= max_retry_delay")

    def advisory_margin(self, lifetime: timedelta) -> timedelta:
        """The latest refresh point, as time left before expiry."""
        return min(lifetime * self.advisory_fraction, self.advisory_cap)

    def mandatory_margin(self, lifetime: timedelta) -> timedelta:
        margin = min(
            max(lifetime * self.mandatory_fraction, self.mandatory_floor), self.mandatory_cap
        )
        # A lifetime so short that the floor would exceed the advisory margin: keep the order.
        return min(margin, self.advisory_margin(lifetime) / 2)

    def refresh_margin(self, lifetime: timedelta, draw: float, *, first: bool = False) -> timedelta:
        """The refresh point for credentials of ``lifetime``, for a uniform ``draw`` in [0, 1).

        Always inside the advisory window and outside the mandatory one, whatever the draw.
        """
        advisory = self.advisory_margin(lifetime)
        mandatory = self.mandatory_margin(lifetime)
        spread = self.first_jitter if first else self.jitter
        return advisory - (advisory - mandatory) * spread * draw

    def backoff(self) -> Backoff:
        """The waits between failed refreshes."""
        base = self.retry_delay.total_seconds()
        return Backoff(base, self.max_retry_delay.total_seconds(), floor=min(1.0, base))


DEFAULT_REFRESH_POLICY = RefreshPolicy()

Fetch = Callable[[], Credentials]


class _Held(NamedTuple):
    """Credentials and what the schedule needs to know about them."""

    credentials: Credentials
    #: Monotonic seconds when they arrived.
    fetched_at: float
    #: Seconds they were issued for by the server's clock, at most the service's maximum.
    lifetime: float
    #: Refresh once this many seconds or fewer are left (drawn once for these credentials).
    refresh_margin: float
    #: Below this many seconds left, callers wait for a refresh.
    mandatory_margin: float


class RefreshSchedule:
    """The refresh policy's decisions as pure functions of clocks and draws: no I/O, no locks.

    Shared by the thread driver (:class:`RefreshingCredentials`) and the asyncio driver
    (``aio.AioRefreshingCredentials``), so both keep the same windows, jitter, monotonic
    accounting, plausibility cap and backoff.
    """

    def __init__(
        self,
        policy: RefreshPolicy = DEFAULT_REFRESH_POLICY,
        *,
        clock: Clock = utcnow,
        monotonic: Monotonic = monotonic,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.backoff = policy.backoff()

    def remaining(self, held: _Held, now: Optional[float] = None) -> float:
        """Seconds left: the smaller of the monotonic and the wall clock's view."""
        if now is None:
            now = self.monotonic()
        by_monotonic = held.fetched_at + held.lifetime - now
        by_wall_clock = held.credentials.remaining(self.clock()).total_seconds()
        return min(by_monotonic, by_wall_clock)

    def hold(self, credentials: Credentials, *, first: bool) -> _Held:
        """``credentials`` as just fetched, with their refresh point drawn."""
        lifetime = credentials.lifetime
        capped = min(lifetime.total_seconds(), MAX_LIFETIME_SECONDS)
        margin = self.policy.refresh_margin(lifetime, self.rng.random(), first=first)
        return _Held(
            credentials,
            fetched_at=self.monotonic(),
            lifetime=capped,
            refresh_margin=min(margin.total_seconds(), capped),
            mandatory_margin=self.policy.mandatory_margin(lifetime).total_seconds(),
        )

    def must_wait(self, held: Optional[_Held]) -> bool:
        """Whether callers must wait for a refresh: nothing held, or inside the mandatory margin."""
        return held is None or self.remaining(held) <= held.mandatory_margin

    def may_refresh(self, held: _Held) -> bool:
        """Whether the refresh point of ``held`` has passed (a refresh is welcome, not needed)."""
        return self.remaining(held) <= held.refresh_margin

    def due_in(self, held: Optional[_Held], next_attempt: float, now: float) -> float:
        """Seconds until the next attempt is due: after a backoff, else at the refresh point."""
        if now < next_attempt:  # backing off after a failure
            return next_attempt - now
        if held is not None:
            return max(self.remaining(held, now) - held.refresh_margin, 0.0)
        return 0.0

    def retry_delay(self, previous: Optional[_Held], failures: int) -> float:
        """Seconds until the next attempt after ``failures`` failures in a row."""
        delay = self.backoff.delay(failures, self.rng)
        if previous is not None:
            # While the credentials are still good, retry before callers would have to wait.
            until_mandatory = self.remaining(previous) - previous.mandatory_margin
            if until_mandatory > 0:
                delay = min(delay, max(until_mandatory / 2, self.backoff.floor))
        return delay

    def log_failure(
        self, held: Optional[_Held], error: BaseException, *, failures: int, retry_in: float
    ) -> None:
        """Log a failed background refresh: once per episode of failures at warning level (with
        a traceback if unexpected), then at debug level."""
        if failures > 1:
            logger.debug(
                "Background credential refresh failed again (%d in a row); next attempt in "
                "%.0f s. Cause: %s",
                failures,
                retry_in,
                error,
            )
            return
        if held is None:
            still = "there are no credentials yet"
        else:
            left = self.remaining(held)
            still = (
                f"the current credentials stay in use for {_humanize(left)} more"
                if left > 0
                else "the current credentials have run out"
            )
        logger.warning(
            "Background credential refresh failed; %s. Retrying with backoff (next attempt in "
            "%.0f s) until it works. Cause: %s",
            still,
            retry_in,
            error,
            exc_info=not isinstance(error, CredentialHelperError),
        )


class RefreshingCredentials:
    """Holds the current credentials and refreshes them by :class:`RefreshPolicy`.

    The refresher under every boto3 session, ``serve`` and ``update``, public for code that
    needs device credentials elsewhere (as google-auth's credentials refresh themselves)::

        with IotCredentialProvider(...) as provider, RefreshingCredentials(provider.fetch) as creds:
            install_botocore_credentials(botocore_session, creds)   # or: creds.get() when needed

    Thread-safe: however many threads call :meth:`get` while credentials expire, one fetch is
    made, and every caller waiting for it gets its outcome. With ``background=True`` a daemon
    thread refreshes inside the advisory window and retries after failures; :meth:`start`
    starts it at once (it then also makes the first fetch), else the first :meth:`get` does.
    Call :meth:`stop` (or let the process exit) to end it. ``on_refresh`` is called with each
    new set of credentials, in the thread that fetched them.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        clock: Clock = utcnow,
        policy: RefreshPolicy = DEFAULT_REFRESH_POLICY,
        background: bool = True,
        monotonic: Monotonic = monotonic,
        rng: Optional[random.Random] = None,
        on_refresh: Optional[Callable[[Credentials], None]] = None,
    ) -> None:
        self._fetch = fetch
        self._on_refresh = on_refresh
        self._clock = clock
        self._monotonic = monotonic
        self._policy = policy
        self._background = background
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._schedule = RefreshSchedule(policy, clock=clock, monotonic=monotonic, rng=self._rng)
        self._held: Optional[_Held] = None
        # Outcome of the attempts so far; written under _fetch_lock.
        self._attempts = 0
        self._failures = 0
        self._last_error: Optional[BaseException] = None
        self._next_attempt = float("-inf")
        self._forced = False  # refresh_now() was called: the next step fetches at once
        self._fetch_lock = threading.Lock()
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._thread_lock = threading.Lock()
        weakref.finalize(self, self._wake.set)  # a dropped cache wakes its thread to end it
        self.fetch_count = 0

    # --- what callers use ------------------------------------------------------------------

    def get(self) -> Credentials:
        """Credentials valid beyond the mandatory margin, fetching only when the policy says so.

        Raises:
            CredentialHelperError: a refresh that had to succeed failed.
        """
        held = self._held
        if held is None or self._schedule.must_wait(held):
            held = self._refresh_blocking(held)
        elif self._schedule.may_refresh(held) and not self._background_alive():
            held = self._refresh_if_free(held)
        self._ensure_background()
        return held.credentials

    @property
    def current(self) -> Optional[Credentials]:
        """The credentials held now, without refreshing (they may be used up)."""
        held = self._held
        return held.credentials if held is not None else None

    def remaining(self) -> Optional[timedelta]:
        """Time left on the current credentials (see the module docstring), or ``None``."""
        held = self._held
        return timedelta(seconds=self._remaining(held)) if held is not None else None

    def usable(self, minimum: timedelta) -> Optional[Credentials]:
        """The current credentials if more than ``minimum`` is left on them, else ``None``."""
        held = self._held
        if held is None or self._remaining(held) <= minimum.total_seconds():
            return None
        return held.credentials

    @property
    def last_error(self) -> Optional[BaseException]:
        """Why the latest attempt failed; ``None`` once one succeeds."""
        return self._last_error

    @property
    def failures(self) -> int:
        """Attempts failed in a row."""
        return self._failures

    def wait_for_change(self, than: Optional[Credentials], timeout: float) -> Optional[Credentials]:
        """Wait until the credentials are not ``than``, an attempt fails, or ``timeout`` passes.

        Returns:
            The credentials held then.
        """
        with self._changed:
            if self.current is than and not self._stop.is_set():
                self._changed.wait(timeout)
        return self.current

    def refresh_now(self) -> None:
        """Have the background thread fetch at once, whatever the schedule or backoff says.

        For a reload (``serve`` and ``update`` on SIGHUP, after a certificate rotation): the
        current credentials stay in use until the new ones arrive, as with any refresh.
        """
        self._forced = True
        self._wake.set()

    def start(self) -> None:
        """Start refreshing in the background now; the first fetch happens there."""
        self._background = True
        self._ensure_background()

    def stop(self) -> None:
        """End the background thread; later calls to :meth:`get` still work, refreshing inline."""
        self._stop.set()
        self._wake.set()
        with self._changed:
            self._changed.notify_all()
        with self._thread_lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def __enter__(self) -> RefreshingCredentials:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def step(self) -> float:
        """One pass of the background loop: fetch if it is time.

        Returns:
            Seconds until the next pass is due.
        """
        held = self._held
        now = self._monotonic()
        if self._forced:
            self._forced = False
        elif now < self._next_attempt:  # backing off after a failure
            return self._next_attempt - now
        elif held is not None:
            due_in = self._remaining(held, now) - held.refresh_margin
            if due_in > 0:
                return due_in
        try:
            self._attempt(held)
        except Exception as error:
            self._log_background_failure(held, error)
        return 0.0

    # --- the schedule ----------------------------------------------------------------------

    def _remaining(self, held: _Held, now: Optional[float] = None) -> float:
        return self._schedule.remaining(held, now)

    def _hold(self, credentials: Credentials, *, first: bool) -> _Held:
        return self._schedule.hold(credentials, first=first)

    # --- fetching: one attempt at a time, its outcome shared -------------------------------

    def _refresh_blocking(self, expected: Optional[_Held]) -> _Held:
        attempts_seen = self._attempts
        with self._fetch_lock:
            if self._held is not expected:
                return self._checked_held()  # another thread refreshed while we waited
            if self._attempts != attempts_seen and self._last_error is not None:
                raise self._last_error  # the attempt we waited for failed: share its outcome
            return self._attempt_locked(expected)

    def _checked_held(self) -> _Held:
        held = self._held
        assert held is not None  # noqa: S101 - only called after a successful attempt
        return held

    def _refresh_if_free(self, current: _Held) -> _Held:
        """One caller refreshes early; the others go on with the still-valid credentials."""
        if not self._fetch_lock.acquire(blocking=False):
            return current
        try:
            if self._held is not current:
                return self._held or current
            try:
                return self._attempt_locked(current)
            except Exception as error:
                logger.warning(
                    "Advisory credential refresh failed; the current credentials stay in use "
                    "for %s more. Cause: %s",
                    _humanize(self._remaining(current)),
                    error,
                )
                return current
        finally:
            self._fetch_lock.release()

    def _attempt(self, expected: Optional[_Held]) -> _Held:
        with self._fetch_lock:
            if self._held is not expected:
                return self._checked_held()
            return self._attempt_locked(expected)

    def _attempt_locked(self, previous: Optional[_Held]) -> _Held:
        """Fetch once; on failure schedule the next attempt and re-raise."""
        try:
            credentials = self._fetch()
        except BaseException as error:
            self._record_failure(previous, error)
            raise
        held = self._hold(credentials, first=previous is None)
        if self._failures:
            logger.warning(
                "Credential refresh recovered after %d failed attempt(s).", self._failures
            )
        self._held = held
        self._attempts += 1
        self._failures = 0
        self._last_error = None
        self._next_attempt = float("-inf")
        self.fetch_count += 1
        self._notify()
        if self._on_refresh is not None:
            try:
                self._on_refresh(credentials)
            except Exception:
                logger.exception("The on_refresh callback failed; refreshing goes on.")
        return held

    def _record_failure(self, previous: Optional[_Held], error: BaseException) -> None:
        self._attempts += 1
        self._failures += 1
        self._last_error = error
        delay = self._schedule.retry_delay(previous, self._failures)
        self._next_attempt = self._monotonic() + delay
        self._notify()

    def _notify(self) -> None:
        self._wake.set()
        with self._changed:
            self._changed.notify_all()

    def _log_background_failure(self, held: Optional[_Held], error: Exception) -> None:
        retry_in = max(self._next_attempt - self._monotonic(), 0.0)
        self._schedule.log_failure(held, error, failures=self._failures, retry_in=retry_in)

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


#: The name this package's own modules and benchmarks use.
CredentialCache = RefreshingCredentials

#: The longest a background thread sleeps before looking again: it notices a dropped cache, and
#: a wall clock stepped forward, within this.
_IDLE_WAIT = 60.0


def _run_background(
    cache_ref: weakref.ref[RefreshingCredentials], stop: threading.Event, wake: threading.Event
) -> None:
    """The refresh loop. It holds its cache only weakly, between waits: a cache that its owner
    dropped without calling ``stop()`` is collected, and the thread then ends by itself."""
    while not stop.is_set():
        wake.clear()
        cache = cache_ref()
        if cache is None:
            return
        try:
            wait = cache.step()
        except Exception:  # step() catches fetch failures; this is a last resort
            logger.exception("The credential refresh loop failed; it goes on.")
            wait = _IDLE_WAIT
        del cache
        if wait > 0:
            wake.wait(min(wait, _IDLE_WAIT))


def _humanize(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{whole} s"
