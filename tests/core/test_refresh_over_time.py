"""The refresh schedule over time: random sequences of outages, garbage, clock jumps and lifetimes.

A hypothesis state machine drives a real :class:`CredentialCache` on virtual clocks: the true
time (which the server's ``Date`` tells), this device's wall clock (which may jump by decades),
and the monotonic clock (which never jumps). The background loop is played by calling
``step()`` whenever it would wake, and answers go through the real ``parse_response``.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Callable, Optional

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from awsiot_credentialhelper import Credentials, RefreshPolicy
from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper._protocol import Response, parse_response
from awsiot_credentialhelper._refresh import CredentialCache

START = datetime(2026, 6, 1, tzinfo=timezone.utc)
POLICY = RefreshPolicy()
MAX_BACKOFF = POLICY.max_retry_delay.total_seconds()
#: How long the simulated background thread sleeps at most between passes.
IDLE_WAIT = 60.0

FAULTS: dict[str, Callable[[], Exception]] = {
    "refused": lambda: errors.ConnectError("refused", endpoint="ep"),
    "timeout": lambda: errors.ConnectTimeoutError("timed out", endpoint="ep"),
    "throttled": lambda: errors.ThrottledError(
        status_code=429, message="Rate exceeded", endpoint="ep", role_alias="a"
    ),
    "unavailable": lambda: errors.ServiceUnavailableError(
        status_code=503, message="down", endpoint="ep", role_alias="a"
    ),
    "untranslated": lambda: RuntimeError("an awscrt error nobody mapped"),
}
#: Faults that arrive as a 200 answer and are refused by the protocol's checks.
BAD_ANSWERS = ("garbage", "year-9999", "date-1970", "already-expired")


class Device:
    """The clocks, the provider and the background loop, all virtual."""

    def __init__(self) -> None:
        self.elapsed = 0.0  # true seconds since START; the monotonic clock reads this too
        self.wall_offset = timedelta(0)  # how far the device's wall clock is off
        self.lifetime = 3600
        self.fault: Optional[str] = None
        self.issued = 0
        self.cache = CredentialCache(
            self.fetch,
            clock=self.wall,
            monotonic=lambda: self.elapsed,
            policy=POLICY,
            background=False,
            rng=random.Random(7),  # noqa: S311 - reproducible jitter
        )
        self.loop_due = 0.0  # when the simulated background loop wakes next

    def true_now(self) -> datetime:
        return START + timedelta(seconds=self.elapsed)

    def wall(self) -> datetime:
        return self.true_now() + self.wall_offset

    def fetch(self) -> Credentials:
        if self.fault in FAULTS:
            raise FAULTS[self.fault]()
        server_now = self.true_now()
        expiration = server_now + timedelta(seconds=self.lifetime)
        date = server_now
        if self.fault == "year-9999":
            expiration = datetime(9999, 12, 31, tzinfo=timezone.utc)
        elif self.fault == "date-1970":
            date = datetime(1970, 1, 1, tzinfo=timezone.utc)  # a lifetime of 56 years
        elif self.fault == "already-expired":
            expiration = server_now - timedelta(seconds=1)
        self.issued += 1
        body = {
            "credentials": {
                "accessKeyId": f"ASIA{self.issued:06d}",
                "secretAccessKey": "secret",
                "sessionToken": "token",
                "expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        }
        payload = b"\x00garbage" if self.fault == "garbage" else json.dumps(body).encode()
        response = Response(200, {"date": format_datetime(date, usegmt=True)}, payload)
        return parse_response(response, local_now=self.wall(), endpoint="ep", role_alias="a")

    def run_until(self, target: float) -> None:
        """Advance time to ``target``, waking the background loop whenever it would."""
        passes_now = 0
        while self.loop_due <= target:
            if self.loop_due > self.elapsed:
                self.elapsed, passes_now = self.loop_due, 0
            passes_now += 1
            assert passes_now < 10, "the background loop spins without time passing"
            wait = self.cache.step()
            # The wall clock has microsecond resolution; a real thread's wait takes at least that.
            self.loop_due = self.elapsed + (max(min(wait, IDLE_WAIT), 1e-3) if wait else 0.0)
        self.elapsed = max(self.elapsed, target)

    def true_remaining(self, expiration: datetime) -> float:
        return (expiration - self.true_now()).total_seconds()


class RefreshOverTime(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.device = Device()
        self.up_since: Optional[float] = 0.0  # true time since when the provider is healthy
        self.quiet_since = 0.0  # no fault, jump or lifetime change since then
        self.fetches_at_quiet = 0

    def _disturbed(self) -> None:
        self.quiet_since = self.device.elapsed
        self.fetches_at_quiet = self.device.cache.fetch_count

    @rule(seconds=st.floats(min_value=0.5, max_value=4 * 3600))
    def time_passes(self, seconds: float) -> None:
        self.device.run_until(self.device.elapsed + seconds)

    @rule(fault=st.sampled_from(sorted(FAULTS) + list(BAD_ANSWERS)))
    def provider_fails(self, fault: str) -> None:
        self.device.fault = fault
        self.up_since = None
        self._disturbed()

    @precondition(lambda self: self.device.fault is not None)
    @rule()
    def provider_recovers(self) -> None:
        self.device.fault = None
        self.up_since = self.device.elapsed
        self._disturbed()

    @rule(years=st.integers(min_value=-30, max_value=30), seconds=st.integers(-86400, 86400))
    def wall_clock_jumps(self, years: int, seconds: int) -> None:
        self.device.wall_offset = timedelta(days=365 * years, seconds=seconds)
        if self.up_since is not None:  # the loop notices a jump when it next wakes
            self.up_since = self.device.elapsed
        self._disturbed()

    @rule(lifetime=st.integers(min_value=900, max_value=43200))
    def role_alias_lifetime_changes(self, lifetime: int) -> None:
        self.device.lifetime = lifetime
        self._disturbed()

    @rule()
    def caller_gets_credentials(self) -> None:
        device = self.device
        try:
            credentials = device.cache.get()
        except (errors.CredentialHelperError, RuntimeError):
            failed_while_up = device.fault is None
            assert not failed_while_up, repr(device.cache.last_error)
            assert device.cache.last_error is not None
            return
        left = device.true_remaining(credentials.expiration)
        mandatory = POLICY.mandatory_margin(credentials.lifetime).total_seconds()
        assert left > mandatory - 1, f"handed out with {left:.0f} s left"

    @rule(minimum=st.integers(min_value=0, max_value=600))
    def server_asks_for_usable_credentials(self, minimum: int) -> None:
        credentials = self.device.cache.usable(timedelta(seconds=minimum))
        if credentials is not None:
            left = self.device.true_remaining(credentials.expiration)
            assert left > minimum - 1, f"served with {left:.0f} s left, {minimum} s asked"

    @invariant()
    def recovers_within_one_maximum_backoff(self) -> None:
        device = self.device
        settle = max(MAX_BACKOFF, IDLE_WAIT) + 1
        if self.up_since is None or device.elapsed - self.up_since <= settle:
            return
        credentials = device.cache.usable(timedelta(0))
        assert credentials is not None, "the provider is back, but no credentials arrived"
        left = device.true_remaining(credentials.expiration)
        mandatory = POLICY.mandatory_margin(credentials.lifetime).total_seconds()
        assert left > mandatory - 1

    @invariant()
    def steady_state_fetches_are_bounded(self) -> None:
        device = self.device
        quiet_for = device.elapsed - self.quiet_since
        fetches = device.cache.fetch_count - self.fetches_at_quiet
        # Each cycle lasts at least lifetime minus the advisory margin (the latest point).
        lifetime = timedelta(seconds=device.lifetime)
        cycle = (lifetime - POLICY.advisory_margin(lifetime)).total_seconds()
        assert fetches <= 2 + quiet_for / cycle, (fetches, quiet_for)


RefreshOverTime.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_refresh_over_time = RefreshOverTime.TestCase


@pytest.mark.parametrize("fault", sorted(FAULTS) + list(BAD_ANSWERS))
def test_two_failed_refreshes_in_a_row_then_recovery(fault: str) -> None:
    """The defect that shipped: after one failed background refresh, none ran again."""
    device = Device()
    device.lifetime = 150
    device.run_until(0)
    assert device.cache.fetch_count == 1
    device.run_until(70)
    device.fault = fault
    device.run_until(110)  # past every refresh point drawn (45-75 s left): attempts fail
    assert device.cache.failures >= 2
    assert device.cache.usable(timedelta(seconds=30)) is not None  # the old ones serve on
    device.run_until(145)
    assert device.cache.usable(timedelta(seconds=30)) is None  # never stale ones
    device.fault = None
    device.run_until(145 + MAX_BACKOFF)
    assert device.cache.failures == 0
    fresh = device.cache.usable(timedelta(seconds=60))
    assert fresh is not None
    assert device.true_remaining(fresh.expiration) > 60


def test_a_wall_clock_stepped_back_does_not_keep_expired_credentials() -> None:
    device = Device()
    device.run_until(0)
    device.wall_offset = -timedelta(days=365 * 20)  # NTP sets the clock back 20 years
    device.fault = "refused"
    device.run_until(3600 + 1)
    assert device.cache.usable(timedelta(0)) is None
    with pytest.raises(errors.ConnectError):
        device.cache.get()


def test_a_wall_clock_stepped_forward_costs_one_fetch_not_a_storm() -> None:
    device = Device()
    device.run_until(0)
    device.wall_offset = timedelta(days=365 * 56)  # a board that booted in 1970, then NTP
    device.run_until(600)
    assert device.cache.fetch_count == 2
    device.run_until(1200)
    assert device.cache.fetch_count == 2
