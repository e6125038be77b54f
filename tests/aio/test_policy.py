"""The asyncio driver follows the same refresh policy as the thread driver (one RefreshSchedule)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from awsiot_credentialhelper import RefreshPolicy
from awsiot_credentialhelper.aio import AioRefreshingCredentials
from awsiot_credentialhelper.emulator import Emulator

from ..conftest import ProviderFactory
from ..servers import FakeClock, TlsServer, issuing
from .conftest import AioProviderFactory
from .test_sessions import SHORT_LIVED


def test_900_second_alias_at_10_calls_per_second_fetches_8_times_an_hour(
    server: TlsServer, make_provider: ProviderFactory
) -> None:
    """The sync driver's figure (tests/core/test_refresh.py), from the async driver."""
    clock = FakeClock()
    server.set_default(issuing(clock, timedelta(seconds=900)))
    provider = make_provider(clock=clock)
    unjittered = RefreshPolicy(jitter=0, first_jitter=0)

    async def one_hour() -> None:
        async with AioRefreshingCredentials(
            provider.fetch_async, clock=clock, policy=unjittered, background=False
        ) as credentials:
            for _ in range(36_000):  # ten calls a second
                await credentials.get()
                while credentials.refreshing:  # an early refresh runs beside the callers;
                    await asyncio.sleep(0.001)  # simulated time stands still meanwhile
                clock.advance(0.1)

    asyncio.run(one_hour())
    assert server.request_count == 8


def test_background_task_retries_after_failures_and_recovers(
    make_aio_provider: AioProviderFactory,
    iot_emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    iot_emulator.controls.credential_lifetime = 4
    caplog.set_level(logging.WARNING)

    async def scenario() -> tuple[int, int]:
        async with make_aio_provider(refresh_policy=SHORT_LIVED, max_attempts=1) as provider:
            await provider.credentials.get()
            iot_emulator.controls.fail_next(2, status=503)
            deadline = asyncio.get_running_loop().time() + 15
            while provider.fetch_count < 2 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            return provider.fetch_count, provider.credentials.failures

    fetches, failures = asyncio.run(scenario())
    assert fetches == 2
    assert failures == 0
    assert iot_emulator.stats().by_status == {200: 2, 503: 2}
    messages = [record.getMessage() for record in caplog.records]
    assert sum("Background credential refresh failed;" in m for m in messages) == 1
    assert any("recovered after 2 failed attempt(s)" in m for m in messages)
