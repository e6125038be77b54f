"""The asyncio driver of the refresh policy: one owned task refreshes, one fetch in flight.

The decisions (windows, jitter, monotonic accounting, backoff) are ``_refresh.RefreshSchedule``'s,
the same object the thread driver uses; this module only decides who awaits what.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable
from typing import Callable, Optional

from .._clock import Clock, Monotonic, monotonic, utcnow
from .._credentials import Credentials
from .._refresh import DEFAULT_REFRESH_POLICY, RefreshPolicy, RefreshSchedule, _Held
from ..exceptions import WrongEventLoopError

__all__ = ["AioRefreshingCredentials", "AsyncFetch"]

logger = logging.getLogger(__name__)

AsyncFetch = Callable[[], Awaitable[Credentials]]

#: The longest the refresh task sleeps before looking again (a wall clock stepped forward is
#: noticed within this), as the thread driver's.
_IDLE_WAIT = 60.0


class AioRefreshingCredentials:
    """Holds the current credentials and refreshes them by :class:`RefreshPolicy`, in asyncio.

    However many coroutines await :meth:`get` while credentials expire, one fetch is made and
    all of them get its outcome. A caller that is cancelled leaves the fetch to the others; when
    the last one waiting is cancelled, the fetch is cancelled too (closing its connection).
    With ``background=True`` an owned task refreshes inside the advisory window, started by
    the first :meth:`get`; :meth:`aclose` cancels it and any fetch in flight.

    Bound to the event loop that first uses it; once that loop is closed, the next one to call
    :meth:`get` takes it over (tests, notebooks). From another open loop it raises
    :class:`WrongEventLoopError`.
    """

    def __init__(
        self,
        fetch: AsyncFetch,
        *,
        clock: Clock = utcnow,
        policy: RefreshPolicy = DEFAULT_REFRESH_POLICY,
        background: bool = True,
        monotonic: Monotonic = monotonic,
        rng: Optional[random.Random] = None,
    ) -> None:
        self._fetch = fetch
        self._schedule = RefreshSchedule(policy, clock=clock, monotonic=monotonic, rng=rng)
        self._background = background
        self._held: Optional[_Held] = None
        self._failures = 0
        self._last_error: Optional[BaseException] = None
        self._next_attempt = float("-inf")
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._inflight: Optional[asyncio.Task[_Held]] = None
        self._waiting = 0
        self._refresher: Optional[asyncio.Task[None]] = None
        self._closed = False
        self.fetch_count = 0

    # --- what callers use ------------------------------------------------------------------

    async def get(self) -> Credentials:
        """Credentials valid beyond the mandatory margin, fetching only when the policy says so.

        Raises:
            CredentialHelperError: a refresh that had to succeed failed.
            WrongEventLoopError: awaited from another event loop than the provider's.
            RuntimeError: after :meth:`aclose`, when a fetch is needed.
        """
        self.bind()
        held = self._held
        if held is None or self._schedule.must_wait(held):
            held = await self._refresh(held)
        elif self._schedule.may_refresh(held) and not self._refresher_alive():
            self._refresh_early(held)
        self._ensure_refresher()
        return held.credentials

    @property
    def current(self) -> Optional[Credentials]:
        """The credentials held now, without refreshing (they may be used up)."""
        held = self._held
        return held.credentials if held is not None else None

    def usable(self) -> Optional[Credentials]:
        """The credentials held now if callers need not wait for a refresh, else ``None``."""
        held = self._held
        if held is None or self._schedule.must_wait(held):
            return None
        return held.credentials

    @property
    def refreshing(self) -> bool:
        """Whether a fetch is in flight now."""
        return self._inflight is not None and not self._inflight.done()

    @property
    def loop(self) -> Optional[asyncio.AbstractEventLoop]:
        """The event loop these credentials are bound to (``None`` until first used)."""
        return self._loop

    @property
    def last_error(self) -> Optional[BaseException]:
        """Why the latest attempt failed; ``None`` once one succeeds."""
        return self._last_error

    @property
    def failures(self) -> int:
        """Attempts failed in a row."""
        return self._failures

    async def aclose(self) -> None:
        """Cancel the refresh task and any fetch in flight, and wait until they have ended."""
        self._closed = True
        tasks = [task for task in (self._refresher, self._inflight) if task is not None]
        self._refresher = self._inflight = None
        if self._loop is None or self._loop.is_closed() or not tasks:
            return
        self.bind()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> AioRefreshingCredentials:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- the event loop ----------------------------------------------------------------------

    def bind(self) -> asyncio.AbstractEventLoop:
        """The running loop, which must be this object's (or take over from a closed one)."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return loop
        if self._loop is not None and not self._loop.is_closed():
            raise WrongEventLoopError(
                "This async credentials provider is bound to the event loop that first used it, "
                "which is still open; it cannot be awaited from another. Create one provider "
                "per event loop, or close the first loop before using the provider from a new one."
            )
        # First use, or the old loop is closed: its tasks went with it.
        self._loop = loop
        self._inflight = self._refresher = None
        self._waiting = 0
        return loop

    # --- fetching: one attempt at a time, its outcome shared -------------------------------

    async def _refresh(self, expected: Optional[_Held]) -> _Held:
        """Join the fetch in flight, or start one; a cancelled last waiter cancels it."""
        if self._closed:
            raise RuntimeError("These credentials are closed (aclose was called).")
        task = self._inflight or self._start_attempt(expected, early=False)
        self._waiting += 1
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if self._waiting == 1 and not task.done():
                task.cancel()
            raise
        finally:
            self._waiting -= 1

    def _refresh_early(self, held: _Held) -> None:
        """One fetch, if none is in flight; callers go on with the still-valid credentials."""
        if not self._closed and not self.refreshing:
            self._start_attempt(held, early=True)

    def _start_attempt(self, previous: Optional[_Held], *, early: bool) -> asyncio.Task[_Held]:
        task = self.bind().create_task(self._attempt(previous))
        self._inflight = task
        task.add_done_callback(lambda done: self._attempt_ended(done, previous, early=early))
        return task

    async def _attempt(self, previous: Optional[_Held]) -> _Held:
        """Fetch once; on failure schedule the next attempt and re-raise."""
        try:
            credentials = await self._fetch()
        except Exception as error:
            self._failures += 1
            self._last_error = error
            delay = self._schedule.retry_delay(previous, self._failures)
            self._next_attempt = self._schedule.monotonic() + delay
            raise
        held = self._schedule.hold(credentials, first=previous is None)
        if self._failures:
            logger.warning(
                "Credential refresh recovered after %d failed attempt(s).", self._failures
            )
        self._held = held
        self._failures = 0
        self._last_error = None
        self._next_attempt = float("-inf")
        self.fetch_count += 1
        return held

    def _attempt_ended(
        self, task: asyncio.Task[_Held], previous: Optional[_Held], *, early: bool
    ) -> None:
        if self._inflight is task:
            self._inflight = None
        if task.cancelled():
            return
        error = task.exception()  # retrieved here, so asyncio never reports it as lost
        if error is not None and early and previous is not None:
            logger.warning(
                "Advisory credential refresh failed; the current credentials stay in use. "
                "Cause: %s",
                error,
            )

    # --- the background task -----------------------------------------------------------------

    def _refresher_alive(self) -> bool:
        return self._refresher is not None and not self._refresher.done()

    def _ensure_refresher(self) -> None:
        if self._background and not self._closed and not self._refresher_alive():
            self._refresher = self.bind().create_task(self._run())

    async def _run(self) -> None:
        """Refresh at each refresh point, and retry with backoff after failures, until
        cancelled."""
        while True:
            held = self._held
            now = self._schedule.monotonic()
            wait = self._schedule.due_in(held, self._next_attempt, now)
            if wait > 0:
                await asyncio.sleep(min(wait, _IDLE_WAIT))
                continue
            try:
                await self._refresh(held)
            except Exception as error:
                retry_in = max(self._next_attempt - self._schedule.monotonic(), 0.0)
                self._schedule.log_failure(held, error, failures=self._failures, retry_in=retry_in)
