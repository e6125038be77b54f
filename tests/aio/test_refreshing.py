"""The asyncio driver: single flight, cancellation, and the event loops it may be used from."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper.emulator import Emulator

from ..servers import FakeClock
from .conftest import AioProviderFactory


def own_sockets() -> set[str]:
    """This process's open sockets, by inode (client and emulator side alike)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


async def poll(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


def test_1000_callers_while_credentials_expire_cause_one_fetch(
    make_aio_provider: AioProviderFactory, iot_emulator: Emulator
) -> None:
    clock = FakeClock()
    provider = make_aio_provider(clock=clock, refresh_in_background=False)

    async def scenario() -> tuple[str, set[str]]:
        async with provider:
            first = (await provider.credentials.get()).access_key_id
            clock.advance(3600)  # expired by the wall clock: every caller must wait
            iot_emulator.controls.latency = 0.2
            got = await asyncio.gather(*(provider.credentials.get() for _ in range(1000)))
            return first, {credentials.access_key_id for credentials in got}

    first, keys = asyncio.run(scenario())
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 2}
    assert provider.fetch_count == 2
    assert len(keys) == 1
    assert keys != {first}


def test_1000_callers_share_one_failure(
    make_aio_provider: AioProviderFactory, iot_emulator: Emulator
) -> None:
    iot_emulator.controls.fail_next(1, status=403)

    async def scenario() -> list[BaseException]:
        async with make_aio_provider(refresh_in_background=False) as provider:
            outcomes = await asyncio.gather(
                *(provider.credentials.get() for _ in range(1000)), return_exceptions=True
            )
        return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]

    failures = asyncio.run(scenario())
    assert len(failures) == 1000
    assert len({id(failure) for failure in failures}) == 1  # one attempt, its error shared
    assert isinstance(failures[0], errors.ProviderError)
    assert failures[0].status_code == 403
    assert iot_emulator.stats().total == 1


def test_cancelling_the_only_caller_mid_fetch_closes_the_connection(
    make_aio_provider: AioProviderFactory, iot_emulator: Emulator
) -> None:
    provider = make_aio_provider()
    iot_emulator.controls.latency = 4.0  # the emulator holds its end open this long

    async def scenario() -> set[asyncio.Task[object]]:
        before = own_sockets()
        caller = asyncio.ensure_future(provider.credentials.get())
        await poll(lambda: len(own_sockets() - before) >= 2)  # connected: both ends open
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        # The client's end closes at once; only the emulator's, still waiting, is left.
        await poll(lambda: len(own_sockets() - before) <= 1, timeout=3.0)
        await provider.aclose()
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(scenario()) == set()
    assert provider.fetch_count == 0


def test_a_cancelled_caller_leaves_the_fetch_to_the_others(
    make_aio_provider: AioProviderFactory, iot_emulator: Emulator
) -> None:
    iot_emulator.controls.latency = 0.3

    async def scenario() -> str:
        async with make_aio_provider() as provider:
            impatient = asyncio.ensure_future(provider.credentials.get())
            patient = asyncio.ensure_future(provider.credentials.get())
            await asyncio.sleep(0.1)
            impatient.cancel()
            return (await patient).access_key_id

    assert asyncio.run(scenario())
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}


def test_aclose_cancels_the_refresh_task(make_aio_provider: AioProviderFactory) -> None:
    async def scenario() -> set[asyncio.Task[object]]:
        async with make_aio_provider() as provider:
            await provider.credentials.get()
            assert len(asyncio.all_tasks()) == 2  # this one and the refresh task
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert asyncio.run(scenario()) == set()


def test_a_new_event_loop_takes_over_once_the_old_one_closed(
    make_aio_provider: AioProviderFactory, iot_emulator: Emulator
) -> None:
    provider = make_aio_provider()

    async def use() -> str:
        return (await provider.credentials.get()).access_key_id

    first = asyncio.run(use())  # asyncio.run closes its loop, and the refresh task with it
    second = asyncio.run(use())
    assert first == second
    asyncio.run(provider.aclose())
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 1}


def test_another_open_event_loop_gets_a_clear_error(
    make_aio_provider: AioProviderFactory,
) -> None:
    provider = make_aio_provider()
    first_loop = asyncio.new_event_loop()
    try:
        first_loop.run_until_complete(provider.credentials.get())
        with pytest.raises(errors.WrongEventLoopError, match="bound to the event loop"):
            asyncio.run(provider.credentials.get())
        first_loop.run_until_complete(provider.aclose())
    finally:
        first_loop.close()
    assert isinstance(errors.WrongEventLoopError("x"), RuntimeError)


def test_1000_callers_in_the_advisory_window_get_the_current_credentials_and_one_fetch(
    make_aio_provider: AioProviderFactory, iot_emulator: Emulator
) -> None:
    clock = FakeClock()
    provider = make_aio_provider(clock=clock, refresh_in_background=False)

    async def scenario() -> tuple[str, set[str], str]:
        async with provider:
            first = (await provider.credentials.get()).access_key_id
            # 400 s left of 3600: past any refresh point drawn (600-1800 s left), outside the
            # mandatory margin (300 s), so callers need not wait.
            clock.advance(3200)
            iot_emulator.controls.latency = 0.2
            got = await asyncio.gather(*(provider.credentials.get() for _ in range(1000)))
            await poll(lambda: not provider.credentials.refreshing)
            return first, {c.access_key_id for c in got}, provider.credentials.current.access_key_id  # type: ignore[union-attr]

    first, during, after = asyncio.run(scenario())
    assert during == {first}  # nobody waited
    assert after != first
    assert iot_emulator.stats().by_outcome == {"SUCCESS": 2}
