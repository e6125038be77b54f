"""The refresh policy, driven by an injected clock against a real server."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Callable

import pytest
from botocore.credentials import Credentials as BotocoreCredentials

from awsiot_credentialhelper import RefreshPolicy
from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper.boto3_session import Boto3SessionProvider

from ..servers import DeviceFiles, FakeClock, Reply, TlsServer, error_body, issuing, wait_until

SessionProviderFactory = Callable[..., Boto3SessionProvider]


def credentials_of(provider: Boto3SessionProvider) -> BotocoreCredentials:
    credentials = provider.get_session(region="us-east-1").get_credentials()
    assert credentials is not None
    return credentials


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_session_provider(
    server: TlsServer, device: DeviceFiles, ca_file: str, clock: FakeClock
) -> Iterator[SessionProviderFactory]:
    made: list[Boto3SessionProvider] = []

    def factory(**options: object) -> Boto3SessionProvider:
        settings: dict[str, object] = {"clock": clock, "trust_env": False, "ca": ca_file}
        settings.update(options)
        provider = Boto3SessionProvider(
            server.endpoint,
            "alias",
            "thing",
            device.certificate_file,
            device.private_key_file,
            **settings,  # type: ignore[arg-type]
        )
        made.append(provider)
        return provider

    yield factory
    for provider in made:
        provider.close()


def test_900_second_alias_at_10_calls_per_second_fetches_8_times_an_hour(
    server: TlsServer, clock: FakeClock, make_session_provider: SessionProviderFactory
) -> None:
    server.set_default(issuing(clock, timedelta(seconds=900)))
    unjittered = RefreshPolicy(jitter=0, first_jitter=0)
    provider = make_session_provider(refresh_in_background=False, refresh_policy=unjittered)
    credentials = credentials_of(provider)
    for _ in range(36_000):  # one hour of API calls, ten a second
        credentials.get_frozen_credentials()
        clock.advance(0.1)
    assert server.request_count == 8  # botocore's fixed windows would fetch 36,000 times


@pytest.mark.parametrize(
    ("lifetime", "advisory", "mandatory"),
    [
        pytest.param(900, 450, 90, id="15min"),
        pytest.param(3600, 1800, 300, id="1h"),
        pytest.param(43200, 3600, 300, id="12h"),
        pytest.param(120, 60, 30, id="tiny"),
    ],
)
def test_windows_scale_with_lifetime(lifetime: int, advisory: int, mandatory: int) -> None:
    policy = RefreshPolicy()
    span = timedelta(seconds=lifetime)
    assert policy.advisory_margin(span) == timedelta(seconds=advisory)
    assert policy.mandatory_margin(span) == timedelta(seconds=mandatory)


def test_64_threads_at_expiry_cause_exactly_one_fetch(
    server: TlsServer, clock: FakeClock, make_session_provider: SessionProviderFactory
) -> None:
    server.set_default(issuing(clock, timedelta(seconds=900), delay=0.2))
    provider = make_session_provider(refresh_in_background=False)
    credentials = credentials_of(provider)
    first = credentials.get_frozen_credentials().access_key
    clock.advance(900 - 30)  # inside the mandatory window: every caller must wait
    barrier = threading.Barrier(64)
    seen: list[str] = []

    def call() -> None:
        barrier.wait()
        seen.append(str(credentials.get_frozen_credentials().access_key))

    threads = [threading.Thread(target=call) for _ in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert server.request_count == 2
    assert len(seen) == 64
    assert set(seen) == {"ASIA000002"} != {first}


def test_failed_advisory_refresh_keeps_last_good_credentials(
    server: TlsServer,
    clock: FakeClock,
    make_session_provider: SessionProviderFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.set_default(issuing(clock, timedelta(seconds=900)))
    provider = make_session_provider(refresh_in_background=False, max_attempts=1)
    credentials = credentials_of(provider)
    assert credentials.get_frozen_credentials().access_key == "ASIA000001"
    server.set_default(Reply(status=503, body=error_body("down")))
    # 120 s left: past any refresh point drawn (162-450 s left), not yet mandatory (90 s).
    clock.advance(780)  # the refresh fails, the old credentials serve on
    with caplog.at_level(logging.WARNING):
        assert credentials.get_frozen_credentials().access_key == "ASIA000001"
    assert "Advisory credential refresh failed" in caplog.text
    clock.advance(70)  # mandatory window: now the failure reaches the caller
    with pytest.raises(errors.ServiceUnavailableError):
        credentials.get_frozen_credentials()


def test_device_clock_behind_refreshes_by_server_time(
    server: TlsServer,
    clock: FakeClock,
    make_session_provider: SessionProviderFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A device booted without RTC thinks it is two days earlier than it is."""
    server.set_default(issuing(clock, timedelta(seconds=900), skew=timedelta(days=2)))
    provider = make_session_provider(refresh_in_background=False)
    credentials = credentials_of(provider)
    with caplog.at_level(logging.WARNING):
        credentials.get_frozen_credentials()
    assert "-172800 s off the server's" in caplog.text
    clock.advance(750)  # by the server's clock past any refresh point drawn (162-450 s left)
    credentials.get_frozen_credentials()
    assert server.request_count == 2


def test_background_refresh_happens_without_api_calls(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> None:
    """Real time: 3-second credentials refresh themselves at 1.5 s left, unasked."""
    server.set_default(issuing(lambda: datetime.now(timezone.utc), timedelta(seconds=3)))
    policy = RefreshPolicy(mandatory_floor=timedelta(0), retry_delay=timedelta(seconds=0.2))
    with Boto3SessionProvider(
        server.endpoint,
        "alias",
        "thing",
        device.certificate_file,
        device.private_key_file,
        ca=ca_file,
        refresh_policy=policy,
        trust_env=False,
    ) as provider:
        credentials = credentials_of(provider)
        assert credentials.get_frozen_credentials().access_key == "ASIA000001"
        wait_until(lambda: provider.fetch_count >= 2, what="the background refresh stored")
        assert server.request_count == 2
        assert credentials.get_frozen_credentials().access_key == "ASIA000002"
        assert server.request_count == 2  # the API call did not fetch


def test_a_dropped_provider_ends_its_background_thread(
    server: TlsServer, device: DeviceFiles, ca_file: str
) -> None:
    def threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "awsiot-credential-refresh"]

    before = set(threads())
    provider = Boto3SessionProvider(
        server.endpoint,
        "alias",
        "thing",
        device.certificate_file,
        device.private_key_file,
        ca=ca_file,
        trust_env=False,
    )
    credentials_of(provider).get_frozen_credentials()
    (started,) = set(threads()) - before
    del provider  # never closed
    gc.collect()
    started.join(5)
    assert not started.is_alive()
