"""Loopback mTLS credentials servers for the benchmarks: in a child process (so the client's CPU
figures are its own) or in this process, with a device identity and a CA file beside it.

Run as ``python -m bench._loopback DIR PORT TLS12``: writes DIR/ready.json with the endpoint and the
paths of the CA, client certificate and key, then serves until its stdin closes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trustme
from tests.servers import DeviceFiles, Reply, TlsServer, credentials_body, issue_device


@dataclasses.dataclass(frozen=True)
class LocalSetup:
    """A running in-process server and everything a client needs to reach it."""

    server: TlsServer
    directory: str
    ca_file: str
    device: DeviceFiles

    def flags(self) -> list[str]:
        """The CLI's connection flags for this server and device."""
        return [
            f"--endpoint={self.server.endpoint}",
            f"--certificate={self.device.certificate_file}",
            f"--private-key={self.device.private_key_file}",
            f"--ca={self.ca_file}",
        ]


@contextmanager
def in_process_server() -> Iterator[LocalSetup]:
    """A credentials server in this process, a device it trusts, and a temporary directory."""
    ca = trustme.CA()
    server = TlsServer(ca, default=Reply(body=credentials_body()))
    with tempfile.TemporaryDirectory() as directory, server:
        ca_file = os.path.join(directory, "ca.pem")
        ca.cert_pem.write_to_path(ca_file)
        yield LocalSetup(server, directory, ca_file, issue_device(ca, directory))


@contextmanager
def loopback_server(
    directory: Path, port: int = 0, *, tls12: bool = False
) -> Iterator[dict[str, str]]:
    """Start the child, yield what ready.json says, stop the child."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench._loopback", str(directory), str(port), str(int(tls12))],
        stdin=subprocess.PIPE,
    )
    ready = directory / "ready.json"
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the loopback server did not start")
            time.sleep(0.05)
        yield json.loads(ready.read_text())
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(10)


def _serve(directory: Path, port: int, tls12: bool) -> None:
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    device = issue_device(ca, str(directory))
    maximum = ssl.TLSVersion.TLSv1_2 if tls12 else None
    server = TlsServer(
        ca, default=Reply(body=credentials_body()), port=port, maximum_version=maximum
    )
    with server:
        temporary = directory / "ready.tmp"
        temporary.write_text(
            json.dumps(
                {
                    "endpoint": server.endpoint,
                    "port": str(server.port),
                    "ca_file": str(ca_file),
                    "certificate_file": device.certificate_file,
                    "private_key_file": device.private_key_file,
                }
            )
        )
        temporary.rename(directory / "ready.json")
        sys.stdin.read()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1")
