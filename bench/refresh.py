"""Fetches per hour for a boto3 session making 10 API calls a second with a 900 s role alias.

Usage: ``python bench/refresh.py [--lifetime 900] [--rate 10]`` (``make bench``).

Simulated time: one hour of calls to ``get_frozen_credentials()`` (what botocore's signer calls
for every request) under an injected clock. Our sessions fetch from a real mTLS server on
loopback; the 1.x baseline is botocore's ``DeferredRefreshableCredentials`` with its default
15/10-minute windows, as awsiot-credentialhelper 1.x wires it, counting its refresh calls.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import trustme
from botocore.credentials import DeferredRefreshableCredentials

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import FakeClock, TlsServer, issue_device, issuing

from awsiot_credentialhelper.boto3_session import Boto3SessionProvider


def ours(clock: FakeClock, lifetime: int, rate: int) -> int:
    ca = trustme.CA()
    server = TlsServer(ca, default=issuing(clock, timedelta(seconds=lifetime)))
    with tempfile.TemporaryDirectory() as directory, server:
        device = issue_device(ca, directory)
        with Boto3SessionProvider(
            server.endpoint,
            "bench",
            "bench",
            device.certificate_file,
            device.private_key_file,
            ca=ca.cert_pem.bytes(),
            clock=clock,
            refresh_in_background=False,  # deterministic under simulated time
            trust_env=False,
        ) as provider:
            credentials = provider.get_session(region="us-east-1").get_credentials()
            assert credentials is not None
            for _ in range(3600 * rate):
                credentials.get_frozen_credentials()
                clock.advance(1 / rate)
        return server.request_count


def botocore_default(clock: FakeClock, lifetime: int, rate: int) -> int:
    calls = 0

    def refresh() -> dict[str, str]:
        nonlocal calls
        calls += 1
        expiry = clock() + timedelta(seconds=lifetime)
        return {
            "access_key": "A",
            "secret_key": "s",
            "token": "t",
            "expiry_time": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    credentials = DeferredRefreshableCredentials(refresh, "iot", time_fetcher=clock)
    for _ in range(3600 * rate):
        credentials.get_frozen_credentials()
        clock.advance(1 / rate)
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifetime", type=int, default=900, help="role alias duration, s")
    parser.add_argument("--rate", type=int, default=10, help="API calls per second")
    arguments = parser.parse_args()
    ours_count = ours(FakeClock(), arguments.lifetime, arguments.rate)
    baseline = botocore_default(FakeClock(), arguments.lifetime, arguments.rate)
    target = 3600 // (arguments.lifetime // 2)
    print(f"Fetches in one hour, {arguments.rate} API calls/s, {arguments.lifetime} s credentials:")
    print(f"  awsiot-credentialhelper 2.x:    {ours_count:6d}  (target <= {target})")
    note = "  (one per API call)" if baseline == 3600 * arguments.rate else ""
    print(f"  botocore default windows (1.x): {baseline:6d}{note}")


if __name__ == "__main__":
    main()
