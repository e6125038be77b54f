"""``serve``'s Prometheus metrics: fetch outcomes, the credentials' expiry, requests by status.

Only ``serve`` imports this module (and so ``prometheus_client``): the ``credential-process``
path stays light. Each server has a registry of its own, never the global one, so tests and
embedders can run several. Per-request work is one ``dict`` increment in the event loop;
everything else is read when ``/metrics`` is scraped. No label ever holds a secret: outcomes
are exception class names, statuses are numbers.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Callable, Optional, TypeVar

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..exceptions import CredentialHelperError

__all__ = ["CONTENT_TYPE", "PREFIX", "FetchState", "ServeMetrics"]

#: Every metric's name starts with this.
PREFIX = "awsiot_credentialhelper"
#: What ``/metrics`` answers with (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: The ``outcome`` of a fetch that failed with something other than our own errors.
UNEXPECTED = "unexpected"

_T = TypeVar("_T")

#: What the scrape reads from the credentials source: (expiry as a Unix time or None,
#: refresh failures in a row).
FetchState = Callable[[], "tuple[Optional[float], int]"]


class ServeMetrics(Collector):
    """Counters kept by ``serve``, rendered by ``prometheus_client`` on each scrape."""

    def __init__(self, state: Optional[FetchState] = None) -> None:
        #: Read on each scrape; set once the credentials source exists.
        self.state = state
        self._fetches: Counter[str] = Counter({"success": 0})
        self._fetch_lock = threading.Lock()  # fetches are counted in the refresh thread
        #: Answers by HTTP status; written by the event-loop thread only.
        self.requests: Counter[int] = Counter()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def count_fetches(self, fetch: Callable[[], _T]) -> Callable[[], _T]:
        """``fetch``, counting each call's outcome (``success`` or the error's class name)."""

        def counted() -> _T:
            try:
                result = fetch()
            except CredentialHelperError as error:
                self._count_fetch(type(error).__name__)
                raise
            except Exception:
                self._count_fetch(UNEXPECTED)
                raise
            self._count_fetch("success")
            return result

        return counted

    def _count_fetch(self, outcome: str) -> None:
        with self._fetch_lock:
            self._fetches[outcome] += 1

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return bytes(generate_latest(self.registry))

    def collect(self) -> Iterator[Metric]:
        """Called by ``prometheus_client`` on each scrape (from the event-loop thread)."""
        fetches = CounterMetricFamily(
            f"{PREFIX}_fetches",
            "Credential fetches from the IoT Credential Provider, by outcome "
            "(success, or the error's class).",
            labels=["outcome"],
        )
        with self._fetch_lock:
            counts = sorted(self._fetches.items())
        for outcome, count in counts:
            fetches.add_metric([outcome], count)
        yield fetches
        requests = CounterMetricFamily(
            f"{PREFIX}_requests", "HTTP requests answered, by status.", labels=["status"]
        )
        for status, count in sorted(self.requests.copy().items()):
            requests.add_metric([str(status)], count)
        yield requests
        expiry, failures = self.state() if self.state is not None else (None, 0)
        if expiry is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_credentials_expiry_timestamp_seconds",
                "When the credentials held expire (Unix time).",
                value=expiry,
            )
        yield GaugeMetricFamily(
            f"{PREFIX}_refresh_failures_in_a_row",
            "Credential refreshes that failed since the last success.",
            value=failures,
        )
