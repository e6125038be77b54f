"""A fleet's load on the Credential Provider: do devices that booted together refresh together?

Usage: ``python bench/fleet.py [--devices 10000] [--hours 24] [--no-jitter]`` (``make bench``).

After a power cut, a whole fleet boots within a minute. With a fixed refresh point every device
would fetch in the same minute, cycle after cycle, forever. This drives the real
``CredentialCache`` schedule of each device on one virtual clock (no network: a fetch returns
credentials valid ``--lifetime`` seconds from that virtual moment), all devices booting within
the first minute, and counts fetches per minute after the first hour, when every device has
refreshed at least once. Each device's background loop is played by calling ``step()`` when it
would wake (the real thread also wakes idly every minute, which changes nothing here and is
skipped). The last line is ``fleet: devices=N lifetime=3600 hours=H jitter=on|off
peak_per_minute=P mean_per_minute=M peak/mean=R`` (on one line).
"""

from __future__ import annotations

import argparse
import collections
import heapq
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from awsiot_credentialhelper import Credentials, RefreshPolicy
from awsiot_credentialhelper._refresh import CredentialCache

START = datetime(2026, 6, 1, tzinfo=timezone.utc)
#: Fetches in the first hour are the boot itself and the fleet's first refreshes.
WARM_UP = 3600.0


class Fleet:
    """Every device's cache on one virtual clock, and a count of fetches per minute."""

    def __init__(self, devices: int, lifetime: int, policy: RefreshPolicy, seed: int) -> None:
        self.now = 0.0
        self.lifetime = timedelta(seconds=lifetime)
        self.per_minute: collections.Counter[int] = collections.Counter()
        rng = random.Random(seed)  # noqa: S311 - a reproducible simulation
        self.caches = [
            CredentialCache(
                self.fetch,
                clock=self.wall_clock,
                monotonic=self.monotonic,
                policy=policy,
                background=False,
                rng=random.Random(rng.random()),  # noqa: S311
            )
            for _ in range(devices)
        ]
        self.wakes = [(rng.uniform(0.0, 60.0), index) for index in range(devices)]
        heapq.heapify(self.wakes)

    def monotonic(self) -> float:
        return self.now

    def wall_clock(self) -> datetime:
        return START + timedelta(seconds=self.now)

    def fetch(self) -> Credentials:
        if self.now >= WARM_UP:
            self.per_minute[int(self.now // 60)] += 1
        issued = self.wall_clock()
        return Credentials("ASIAFLEET", "secret", "token", issued + self.lifetime, issued)

    def run(self, seconds: float) -> None:
        while self.wakes[0][0] < seconds:
            self.now, index = heapq.heappop(self.wakes)
            wait = self.caches[index].step()
            heapq.heappush(self.wakes, (self.now + wait, index))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--lifetime", type=int, default=3600)
    parser.add_argument("--no-jitter", action="store_true", help="a fixed refresh point")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    policy = RefreshPolicy(jitter=0, first_jitter=0) if args.no_jitter else RefreshPolicy()

    started = time.process_time()
    fleet = Fleet(args.devices, args.lifetime, policy, args.seed)
    fleet.run(args.hours * 3600)
    cpu = time.process_time() - started

    minutes = (args.hours * 3600 - WARM_UP) / 60
    total = sum(fleet.per_minute.values())
    peak = max(fleet.per_minute.values(), default=0)
    mean = total / minutes if minutes > 0 else 0.0
    ratio = peak / mean if mean else 0.0
    print(f"fetches after the first hour: {total} in {minutes:.0f} min; {cpu:.1f} s of CPU")
    print(
        f"fleet: devices={args.devices} lifetime={args.lifetime} hours={args.hours:g} "
        f"jitter={'off' if args.no_jitter else 'on'} peak_per_minute={peak} "
        f"mean_per_minute={mean:.1f} peak/mean={ratio:.2f}"
    )


if __name__ == "__main__":
    main()
