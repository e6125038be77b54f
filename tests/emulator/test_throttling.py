"""The rate limit (``controls.max_requests_per_second``): a token bucket driven by a fake clock."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from awsiot_credentialhelper.emulator import Controls, Emulator
from awsiot_credentialhelper.emulator._throttle import TokenBucket, check_rate

from ._client import fetch


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def admitted(bucket: TokenBucket, requests: int) -> list[bool]:
    return [bucket.admit() for _ in range(requests)]


# --- the token bucket on its own ------------------------------------------------------------


def test_a_full_bucket_admits_a_burst_of_n_then_refuses() -> None:
    bucket = TokenBucket(3, FakeClock())
    assert admitted(bucket, 5) == [True, True, True, False, False]


def test_tokens_flow_back_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(4, clock)
    assert admitted(bucket, 4) == [True] * 4
    clock.advance(0.25)  # one token's worth at 4/s
    assert admitted(bucket, 2) == [True, False]
    clock.advance(1.0)
    assert admitted(bucket, 5) == [True] * 4 + [False]


def test_an_idle_bucket_holds_no_more_than_n() -> None:
    clock = FakeClock()
    bucket = TokenBucket(3, clock)
    clock.advance(3600)
    assert admitted(bucket, 4) == [True, True, True, False]


def test_refused_requests_take_no_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, clock)
    assert admitted(bucket, 102) == [True, True] + [False] * 100
    clock.advance(0.5)
    assert bucket.admit()


@pytest.mark.parametrize(
    ("rate", "step", "expected"),
    [
        # Over 10 s: the initial burst of N, then N per second.
        pytest.param(5, 1 / 64, 5 + 50, id="5rps-sampled-64-per-second"),
        pytest.param(100, 1 / 1024, 100 + 1000, id="100rps-sampled-1024-per-second"),
        # 0.01 s steps are not exact in binary: the bucket must still count 10 per second.
        pytest.param(10, 0.01, 10 + 100, id="10rps-sampled-every-0.01s"),
        # A client that keeps to the rate (101 requests, 0.1 s apart) is never refused.
        pytest.param(10, 0.1, 101, id="10rps-asked-at-10rps"),
        pytest.param(0.5, 1 / 8, 1 + 5, id="half-a-request-per-second"),
    ],
)
def test_counts_in_a_ten_second_window(rate: float, step: float, expected: int) -> None:
    """A client asking more often than allowed gets exactly burst + rate x window."""
    clock = FakeClock()
    bucket = TokenBucket(rate, clock)
    start, count = clock.now, 0
    while clock.now - start <= 10 + 1e-9:
        count += bucket.admit()
        clock.advance(step)
    assert count == expected


def test_a_rate_below_one_admits_one_request_every_one_over_rate_seconds() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0.5, clock)
    assert admitted(bucket, 2) == [True, False]
    clock.advance(1.0)
    assert not bucket.admit()
    clock.advance(1.0)
    assert bucket.admit()


def test_a_clock_stepping_back_refills_nothing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, clock)
    assert bucket.admit()
    clock.advance(-100)
    assert not bucket.admit()
    clock.advance(1.0)  # one second after the step back
    assert bucket.admit()


@pytest.mark.parametrize(
    ("rate", "error"),
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-1, ValueError, id="negative"),
        pytest.param(math.nan, ValueError, id="nan"),
        pytest.param(math.inf, ValueError, id="infinite"),
        pytest.param("5", TypeError, id="text"),
        pytest.param(True, TypeError, id="bool"),
    ],
)
def test_rates_that_are_not_positive_numbers_are_refused(rate: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_requests_per_second"):
        check_rate(rate)
    with pytest.raises(error, match="max_requests_per_second"):
        Controls().max_requests_per_second = rate


# --- the control ----------------------------------------------------------------------------


def test_no_limit_by_default() -> None:
    controls = Controls(clock=FakeClock())
    assert controls.max_requests_per_second is None
    assert all(controls.admit() for _ in range(10_000))


def test_setting_the_limit_starts_a_full_bucket_and_none_lifts_it() -> None:
    controls = Controls(clock=FakeClock())
    controls.max_requests_per_second = 2
    assert controls.max_requests_per_second == 2.0
    assert [controls.admit() for _ in range(3)] == [True, True, False]
    controls.max_requests_per_second = 2  # set again: a fresh, full bucket
    assert [controls.admit() for _ in range(3)] == [True, True, False]
    controls.max_requests_per_second = None
    assert controls.admit()


def test_reset_lifts_the_limit() -> None:
    controls = Controls(clock=FakeClock())
    controls.max_requests_per_second = 1
    assert [controls.admit(), controls.admit()] == [True, False]
    controls.reset()
    assert all(controls.admit() for _ in range(100))


# --- through the real server ----------------------------------------------------------------


def minted_credential_count(emulator: Emulator) -> int:
    """How many credentials moto's STS has minted (moto internals, as in test_registry.py)."""
    from moto.sts.models import sts_backends  # noqa: PLC0415

    return len(sts_backends[emulator.account_id]["aws"].assumed_roles)


def test_throttling_through_the_server(tmp_path: Path) -> None:
    """Beyond N requests the answer is the 429 of the fault controls, journaled, minting nothing.

    This emulator's controls run on a fake clock, so the counts do not depend on timing.
    """
    clock = FakeClock()
    emulator = Emulator(directory=tmp_path)
    emulator.controls = Controls(clock=clock)  # before start(): the server reads this one
    with emulator:
        device = emulator.provision_device("throttled-device")
        emulator.controls.max_requests_per_second = 3
        minted_before = minted_credential_count(emulator)

        answers = [fetch(emulator, device) for _ in range(5)]
        assert [a.status for a in answers] == [200, 200, 200, 429, 429]
        for throttled in answers[3:]:
            assert throttled.json() == {"message": "Rate exceeded"}
            assert throttled.headers["x-amzn-errortype"] == "ThrottlingException"
            assert throttled.headers["x-amzn-requestid"]
        assert minted_credential_count(emulator) == minted_before + 3

        # A queued fault waits behind the rate limit: throttled requests do not use it up.
        emulator.controls.fail_next(status=503)
        assert fetch(emulator, device).status == 429
        assert emulator.controls.pending_faults() == 1
        clock.advance(1.0)  # three tokens back
        assert [fetch(emulator, device).status for _ in range(4)] == [503, 200, 200, 429]

        stats = emulator.stats()
        assert stats.by_outcome == {"SUCCESS": 5, "THROTTLED": 4, "FAULT_RESPOND": 1}
        assert stats.by_status == {200: 5, 429: 4, 503: 1}
        assert stats.by_thing == {device.thing_name: 10}
        throttled_records = [r for r in emulator.requests() if r.outcome == "THROTTLED"]
        assert [r.status for r in throttled_records] == [429] * 4
        assert {r.certificate_id for r in throttled_records} == {None}  # no decision ran
        assert throttled_records[0].request_id == answers[3].headers["x-amzn-requestid"]
        assert minted_credential_count(emulator) == minted_before + 5
