"""How fast does the emulator answer? Server-side handling time at 1 and 16 concurrent clients.

Handling time runs from the moment the server starts work on a complete request (after the
TLS handshake and the request head) to the answer being ready to write: the decision, moto's
STS minting credentials and the JSON. The server works on one request at a time, as an event
loop would, so with 16 clients requests also wait their turn; that wait is queueing, shown in
the client-side round trip (``rtt``), not handling. Clients run in separate processes with
kept-alive connections. Run: ``.venv/bin/python bench/emulator.py``.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import ssl
import statistics
import tempfile
import time
from typing import Any

from awsiot_credentialhelper.emulator import Emulator

WARMUP = 50


def client(job: dict[str, Any]) -> list[float]:
    """One client: a kept-alive mTLS connection making ``count`` requests.

    Returns the round-trip time in ms of each request answered with 200.
    """
    context = ssl.create_default_context(cafile=job["ca_file"])
    context.load_cert_chain(job["certificate_file"], job["private_key_file"])
    connection = http.client.HTTPSConnection("127.0.0.1", job["port"], context=context, timeout=30)
    rtts = []
    try:
        for _ in range(job["count"]):
            started = time.perf_counter()
            connection.request("GET", job["path"], headers={"x-amzn-iot-thingname": job["thing"]})
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                rtts.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return rtts


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(emulator: Emulator, jobs: list[dict[str, Any]], pool: Any) -> dict[str, float]:
    emulator.reset()
    started = time.perf_counter()
    rtts = [rtt for per_client in pool.map(client, jobs) for rtt in per_client]
    elapsed = time.perf_counter() - started
    handling = [r.handling_seconds * 1000 for r in emulator.requests()]
    assert len(rtts) == len(handling) == sum(job["count"] for job in jobs), "requests failed"
    return {
        "p50_ms": statistics.median(handling),
        "p99_ms": percentile(handling, 0.99),
        "max_ms": max(handling),
        "rtt_p50_ms": statistics.median(rtts),
        "rtt_p99_ms": percentile(rtts, 0.99),
        "per_second": len(handling) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per concurrency level")
    args = parser.parse_args()
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as directory, Emulator(directory=directory) as emulator:
        device = emulator.provision_device("bench-device")
        base = {
            "ca_file": str(device.ca_file),
            "certificate_file": str(device.certificate_file),
            "private_key_file": str(device.private_key_file),
            "port": emulator.port,
            "path": f"/role-aliases/{device.role_alias}/credentials",
            "thing": device.thing_name,
        }
        print(f"emulator {emulator.endpoint}; {args.requests} requests per row")
        print("handling = server-side, after handshake and request head; rtt = client round trip")
        header = ("clients", "p50 ms", "p99 ms", "max ms", "rtt p50", "rtt p99", "req/s")
        print(" ".join(f"{h:>8}" for h in header))
        for clients in (1, 16):
            with spawn.Pool(clients) as pool:
                pool.map(client, [dict(base, count=WARMUP // clients + 1)] * clients)
                per_client = max(1, args.requests // clients)
                row = run(emulator, [dict(base, count=per_client)] * clients, pool)
            keys = ("p50_ms", "p99_ms", "max_ms", "rtt_p50_ms", "rtt_p99_ms")
            figures = " ".join(f"{row[key]:>8.2f}" for key in keys)
            print(f"{clients:>8} {figures} {row['per_second']:>8.0f}")


if __name__ == "__main__":
    main()
