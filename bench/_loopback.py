"""A loopback mTLS credentials server in a child process, so the client's CPU figures are its own.

Run as ``python -m bench._loopback DIR PORT TLS12``: writes DIR/ready.json with the endpoint and the
paths of the CA, client certificate and key, then serves until its stdin closes.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trustme
from tests.servers import Reply, TlsServer, credentials_body, issue_device


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
