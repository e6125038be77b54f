"""Run by test_server.py in a child process: a TlsHttpServer started with no descriptor left.

The descriptor limit is lowered here, not in pytest's process. start() must fail with an
OSError naming the address, leave no acceptor thread behind, and stop() must still close the
listening socket. The findings go to stdout as one JSON line.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import socket
import sys
import threading
from pathlib import Path

from cryptography import x509

from awsiot_credentialhelper.emulator._http import HttpRequest, HttpResponse, json_response
from awsiot_credentialhelper.emulator._server import TlsHttpServer
from awsiot_credentialhelper.emulator._tls import create_server_pki, server_context

#: Low enough to fill in a moment.
DESCRIPTOR_LIMIT = 128


class _Answer200:
    def handle(self, request: HttpRequest, certificate: x509.Certificate) -> HttpResponse:
        return json_response(200, {"path": request.path}, close=True)

    def reject(self, status: int, message: str) -> HttpResponse:
        return json_response(status, {"message": message}, close=True)


def _take_every_descriptor() -> list[int]:
    taken: list[int] = []
    while True:
        try:
            taken.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as exc:
            if exc.errno != errno.EMFILE:
                raise
            return taken


def _listening(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, 1.0).close()
    except ConnectionRefusedError:
        return False
    return True


def main() -> None:
    pki = create_server_pki(Path(sys.argv[1]))
    server = TlsHttpServer(
        host="127.0.0.1", port=0, context=server_context(pki), handler=_Answer200()
    )
    address = server.address
    findings: dict[str, object] = {"port": address[1]}
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTOR_LIMIT, hard))
    taken = _take_every_descriptor()
    try:
        server.start()
    except OSError as exc:
        findings["error"] = str(exc)
    else:
        findings["error"] = None
    finally:
        for descriptor in taken:
            os.close(descriptor)
    findings["acceptors"] = sum(t.name == "iot-emulator-accept" for t in threading.enumerate())
    server.stop()
    findings["listening"] = _listening(address)
    print(json.dumps(findings))  # the parent test reads it


if __name__ == "__main__":
    main()
