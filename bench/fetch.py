"""Per-fetch cost on loopback: our provider vs. stdlib ssl + http.client vs. awscrt's new_x509.

Usage: ``python bench/fetch.py [--fetches N] [--tls12]`` (from the repository root; ``make bench``).

All three fetch from the same mTLS server, which runs in a child process so that the CPU time
measured here is the client's alone (awscrt's event-loop thread included). Each client opens a
new connection per fetch, as a credential refresh does. awscrt's ``new_x509`` always connects to
port 443; when this process cannot bind it, that column is skipped with the reason.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from awscrt import auth, io

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from awsiot_credentialhelper import IotCredentialProvider
from bench._loopback import loopback_server

Fetch = Callable[[], object]


def measure(fetch: Fetch, count: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds per fetch, after a short warm-up."""
    for _ in range(5):
        fetch()
    walls, cpus = [], []
    for _ in range(count):
        wall, cpu = time.perf_counter(), time.process_time()
        fetch()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def ours(settings: dict[str, str]) -> tuple[Fetch, Callable[[], None]]:
    provider = IotCredentialProvider(
        endpoint=settings["endpoint"],
        role_alias="bench",
        thing_name="bench",
        certificate=settings["certificate_file"],
        private_key=settings["private_key_file"],
        ca=settings["ca_file"],
        trust_env=False,
    )
    return provider.fetch, provider.close


def stdlib(settings: dict[str, str], maximum: ssl.TLSVersion) -> tuple[Fetch, Callable[[], None]]:
    context = ssl.create_default_context(cafile=settings["ca_file"])
    context.load_cert_chain(settings["certificate_file"], settings["private_key_file"])
    context.maximum_version = maximum
    host, port = settings["endpoint"].rsplit(":", 1)

    def fetch() -> bytes:
        connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
        try:
            connection.request(
                "GET", "/role-aliases/bench/credentials", headers={"x-amzn-iot-thingname": "b"}
            )
            return connection.getresponse().read()
        finally:
            connection.close()

    return fetch, lambda: None


def new_x509(settings: dict[str, str]) -> tuple[Fetch, Callable[[], None]]:
    options = io.TlsContextOptions.create_client_with_mtls_from_path(
        settings["certificate_file"], settings["private_key_file"]
    )
    options.override_default_trust_store_from_path(ca_filepath=settings["ca_file"])
    provider = auth.AwsCredentialsProvider.new_x509(
        endpoint="localhost",
        thing_name="bench",
        role_alias="bench",
        tls_ctx=io.ClientTlsContext(options),
    )
    return (lambda: provider.get_credentials().result(10)), lambda: None


def port_443_free() -> str | None:
    try:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", 443))
    except OSError as error:
        return f"cannot bind 127.0.0.1:443 ({error.strerror})"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetches", type=int, default=200)
    parser.add_argument("--tls12", action="store_true", help="cap the server at TLS 1.2")
    arguments = parser.parse_args()
    maximum = ssl.TLSVersion.TLSv1_2 if arguments.tls12 else ssl.TLSVersion.MAXIMUM_SUPPORTED
    blocked = port_443_free()
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as directory:
        port = 0 if blocked else 443
        with loopback_server(Path(directory), port, tls12=arguments.tls12) as settings:
            clients = [("awsiot-credentialhelper", ours(settings))]
            clients.append(("stdlib ssl + http.client", stdlib(settings, maximum)))
            if not blocked:
                clients.append(("awscrt new_x509", new_x509(settings)))
            for name, (fetch, close) in clients:
                wall, cpu = measure(fetch, arguments.fetches)
                close()
                rows.append((name, wall, cpu))
    tls = "TLS 1.2" if arguments.tls12 else "TLS 1.3"
    print(f"Per-fetch median over {arguments.fetches} fetches, new connection each, {tls}:")
    print(f"{'client':28} {'wall ms':>8} {'CPU ms':>8}")
    for name, wall, cpu in rows:
        print(f"{name:28} {wall:8.2f} {cpu:8.2f}")
    if blocked:
        print(f"awscrt new_x509: skipped, {blocked}")
    ours_wall, ours_cpu = rows[0][1], rows[0][2]
    print(f"ours / stdlib wall: {ours_wall / rows[1][1]:.2f}x (target <= 1.0x)")
    if not blocked:
        print(f"ours / new_x509 CPU: {ours_cpu / rows[2][2]:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
