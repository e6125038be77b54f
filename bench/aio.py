"""The event loop's worst lag while credentials are fetched, and the single-flight figure.

Usage: ``python bench/aio.py [--fetches N] [--callers N]`` (from the repository root;
``make bench``).

Loop lag: a ticker coroutine sleeps 1 ms at a time and records how late it wakes, while another
coroutine makes ``--fetches`` fetches one after another with ``IotCredentialProvider.fetch_async``
from an mTLS server in a child process (so the server's CPU is not this process's). The same
measurement with the blocking ``fetch()`` called on the loop shows what the async path avoids.
Target: worst lag under 5 ms on loopback.

Loop time: each step of ``fetch_async()`` (the code that runs between two of its awaits, which
holds the loop) is timed by a wrapper around the coroutine. Its longest step is the most that
fetching itself can delay the loop; lag above that is the machine's (scheduling, the collector,
other threads taking the GIL), which the idle loop's figure shows.

Single flight: ``--callers`` coroutines await ``AioRefreshingCredentials.get()`` at once while
the credentials are expired (an injected clock); the in-process server counts the fetches.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Coroutine, Generator
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import FakeClock, TlsServer, issue_device, issuing

from awsiot_credentialhelper import IotCredentialProvider
from awsiot_credentialhelper.aio import AioRefreshingCredentials
from bench._loopback import loopback_server

#: The ticker's period: lag is how much later than this it wakes.
_TICK = 0.001


class _CollectorPauses:
    """Records how long each run of Python's cyclic garbage collector takes, in milliseconds.

    The collector stops the loop's thread like any blocking call: a full collection of this
    process's heap (trustme, cryptography and the test servers are imported) takes 20-30 ms.
    The figures say which lag was the collector's and which was fetching's.
    """

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __enter__(self) -> _CollectorPauses:
        gc.callbacks.append(self._observe)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._observe)

    def _observe(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._started) * 1000)


async def lags_while(work: Callable[[], object]) -> tuple[list[float], list[float]]:
    """Milliseconds the loop was late for each tick while ``work`` (a coroutine function) ran,
    and the collector's pauses meanwhile."""
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(_TICK)
            lags.append((time.perf_counter() - start - _TICK) * 1000)

    async def run() -> None:
        try:
            result = work()
            if asyncio.iscoroutine(result):
                await result
        finally:
            done.set()

    with _CollectorPauses() as collector:
        await asyncio.gather(ticker(), run())
    return lags, collector.pauses


class _TimedSteps:
    """Awaits a coroutine and records, in milliseconds, how long each of its steps held the loop."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any], steps: list[float]) -> None:
        self._coroutine = coroutine
        self._steps = steps

    def __await__(self) -> Generator[Any, Any, Any]:
        value: Any = None
        error: Optional[BaseException] = None
        while True:
            start = time.perf_counter()
            try:
                if error is None:
                    yielded = self._coroutine.send(value)
                else:
                    yielded = self._coroutine.throw(error)
            except StopIteration as stop:
                self._steps.append((time.perf_counter() - start) * 1000)
                return stop.value
            self._steps.append((time.perf_counter() - start) * 1000)
            value, error = None, None
            try:
                value = yield yielded
            except BaseException as exc:
                error = exc


async def loop_steps(provider: IotCredentialProvider, fetches: int) -> list[float]:
    """Milliseconds each step of ``fetch_async()`` held the loop, over ``fetches`` fetches."""
    steps: list[float] = []
    for _ in range(fetches):
        await _TimedSteps(provider.fetch_async(), steps)
    return steps


async def measure_lag(
    provider: IotCredentialProvider, fetches: int
) -> dict[str, tuple[list[float], list[float]]]:
    await provider.fetch_async()  # warm-up: first connection, imports

    async def fetch_async() -> None:
        for _ in range(fetches):
            await provider.fetch_async()
            await asyncio.sleep(0.002)  # let the ticker see the gaps between fetches too

    async def fetch_blocking() -> None:
        for _ in range(fetches):
            provider.fetch()
            await asyncio.sleep(0.002)

    idle = await lags_while(lambda: asyncio.sleep(fetches * 0.005))
    return {
        "idle loop (no fetch)": idle,
        "fetch_async()": await lags_while(fetch_async),
        "fetch() on the loop": await lags_while(fetch_blocking),
    }


def single_flight(callers: int) -> tuple[int, int]:
    """(fetches for the first get, fetches for ``callers`` concurrent gets at expiry)."""
    import trustme  # noqa: PLC0415 - bench-only dependency

    clock = FakeClock()
    ca = trustme.CA()
    server = TlsServer(ca, default=issuing(clock, timedelta(hours=1)))
    with tempfile.TemporaryDirectory() as directory, server:
        device = issue_device(ca, directory)
        provider = IotCredentialProvider(
            endpoint=server.endpoint,
            role_alias="bench",
            certificate=device.certificate_file,
            private_key=device.private_key_file,
            ca=ca.cert_pem.bytes(),
            clock=clock,
            trust_env=False,
        )

        async def scenario() -> tuple[int, int]:
            credentials = AioRefreshingCredentials(
                provider.fetch_async, clock=clock, background=False
            )
            async with credentials:
                await credentials.get()
                first = server.request_count
                clock.advance(3600)
                await asyncio.gather(*(credentials.get() for _ in range(callers)))
                return first, server.request_count - first

        try:
            return asyncio.run(scenario())
        finally:
            provider.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetches", type=int, default=200, help="fetches per measurement")
    parser.add_argument("--callers", type=int, default=1000, help="concurrent callers at expiry")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, loopback_server(Path(directory)) as ready:
        provider = IotCredentialProvider(
            endpoint=ready["endpoint"],
            role_alias="bench",
            certificate=ready["certificate_file"],
            private_key=ready["private_key_file"],
            ca=ready["ca_file"],
            trust_env=False,
        )
        with provider:
            figures = asyncio.run(measure_lag(provider, arguments.fetches))
            steps = asyncio.run(loop_steps(provider, arguments.fetches))
    print(f"event loop lag, {arguments.fetches} fetches over loopback mTLS (1 ms ticker):")
    for name, (lags, pauses) in figures.items():
        ordered = sorted(lags)
        p99 = ordered[int(len(ordered) * 0.99) - 1] if ordered else float("nan")
        print(
            f"  {name:22} worst {max(lags):6.2f} ms   p99 {p99:6.2f} ms   "
            f"median {statistics.median(lags):5.2f} ms   ({len(lags)} ticks; "
            f"collector ran {len(pauses)} times, longest {max(pauses, default=0):.2f} ms)"
        )
    worst = max(figures["fetch_async()"][0])
    verdict = "met" if worst < 5 else "NOT met"
    print(f"loop lag while fetching: worst {worst:.2f} ms (target < 5 ms: {verdict})")
    ordered_steps = sorted(steps)
    per_fetch = sum(steps) / arguments.fetches
    print(
        f"fetch_async() holds the loop: longest step {ordered_steps[-1]:.2f} ms, "
        f"p99 {ordered_steps[int(len(ordered_steps) * 0.99) - 1]:.2f} ms, "
        f"{per_fetch:.2f} ms per fetch in {len(steps) / arguments.fetches:.0f} steps"
    )
    first, at_expiry = single_flight(arguments.callers)
    print(
        f"single flight: {arguments.callers} concurrent callers at expiry -> {at_expiry} "
        f"fetch(es) (first get: {first})"
    )


if __name__ == "__main__":
    main()
