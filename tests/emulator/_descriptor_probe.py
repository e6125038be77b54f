"""Run by test_server.py in a child process: a TlsHttpServer that runs out of file descriptors.

The descriptor limit is lowered here, not in pytest's process. Two scenarios, by argument:

- ``accept``: two episodes. In the first, the process's CPU time is measured while the acceptor
  cannot accept, then descriptors are freed and the waiting client is answered; in the second,
  the server is stopped while it still cannot accept.
- ``start``: start() with no descriptor left must fail with an OSError naming the address,
  leave no acceptor thread behind, and stop() must still close the listening socket.

The findings go to stdout as one JSON line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import resource
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509

from awsiot_credentialhelper.emulator._http import HttpRequest, HttpResponse, json_response
from awsiot_credentialhelper.emulator._server import TlsHttpServer
from awsiot_credentialhelper.emulator._tls import create_server_pki, server_context

#: Seconds of exhaustion over which the process's CPU time is measured.
WINDOW = 0.4
#: Low enough to fill in a moment.
DESCRIPTOR_LIMIT = 128


class _Answer200:
    def handle(self, request: HttpRequest, certificate: x509.Certificate) -> HttpResponse:
        return json_response(200, {"path": request.path}, close=True)

    def reject(self, status: int, message: str) -> HttpResponse:
        return json_response(status, {"message": message}, close=True)


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.getMessage()}")


@contextlib.contextmanager
def _no_descriptors_left() -> Iterator[None]:
    """Take every free descriptor for the duration of the block."""
    taken: list[int] = []
    try:
        while True:
            try:
                taken.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                if exc.errno != errno.EMFILE:
                    raise
                break
        yield
    finally:
        for descriptor in taken:
            os.close(descriptor)


def _get(client: socket.socket, context: ssl.SSLContext) -> str:
    """Send one request on a connected socket; return the answer's status line."""
    with context.wrap_socket(client, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /recovered HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode()


def _wait_for_connection_threads_to_end() -> None:
    deadline = time.monotonic() + 5.0
    while any(thread.name == "iot-emulator-conn" for thread in threading.enumerate()):
        if time.monotonic() > deadline:
            raise RuntimeError("a connection thread did not end")
        time.sleep(0.005)


def _limit_descriptors() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTOR_LIMIT, hard))


def _listening(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, 1.0).close()
    except ConnectionRefusedError:
        return False
    return True


def accept_scenario(directory: Path) -> dict[str, object]:
    log = _Messages()
    logger = logging.getLogger("awsiot_credentialhelper.emulator.server")
    logger.addHandler(log)
    logger.setLevel(logging.INFO)
    pki = create_server_pki(directory)
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    # The server takes any client certificate (its handler decides); its own will do.
    context.load_cert_chain(str(pki.certificate_file), str(pki.private_key_file))
    server = TlsHttpServer(
        host="127.0.0.1", port=0, context=server_context(pki), handler=_Answer200()
    )
    server.start()
    stopped = False
    findings: dict[str, object] = {"window": WINDOW}
    try:
        # One answer first: the server works before its descriptors run out.
        findings["before"] = _get(socket.create_connection(server.address, 5.0), context)
        _wait_for_connection_threads_to_end()  # their files are closed then
        first, second = socket.socket(), socket.socket()
        first.settimeout(5.0)
        _limit_descriptors()
        # Episode 1. The kernel completes the connection; accepting it needs a descriptor.
        with _no_descriptors_left():
            first.connect(server.address)
            cpu = time.process_time()
            time.sleep(WINDOW)
            findings["cpu"] = time.process_time() - cpu
        freed = time.monotonic()
        findings["status"] = _get(first, context)
        findings["recovery"] = time.monotonic() - freed
        # Episode 2: stop() ends the acceptor's wait.
        _wait_for_connection_threads_to_end()
        with second, _no_descriptors_left():
            second.connect(server.address)
            time.sleep(0.7)  # into the 640 ms wait, which starts after 10+20+...+320 ms
            stopping = time.monotonic()
            server.stop()
            stopped = True
            findings["stop"] = time.monotonic() - stopping
    finally:
        if not stopped:
            server.stop()
    findings["log"] = log.messages
    return findings


def start_scenario(directory: Path) -> dict[str, object]:
    pki = create_server_pki(directory)
    server = TlsHttpServer(
        host="127.0.0.1", port=0, context=server_context(pki), handler=_Answer200()
    )
    address = server.address
    findings: dict[str, object] = {"port": address[1], "error": None}
    _limit_descriptors()
    with _no_descriptors_left():
        try:
            server.start()
        except OSError as exc:
            findings["error"] = str(exc)
    findings["acceptors"] = sum(t.name == "iot-emulator-accept" for t in threading.enumerate())
    server.stop()
    findings["listening"] = _listening(address)
    return findings


if __name__ == "__main__":
    scenario = {"accept": accept_scenario, "start": start_scenario}[sys.argv[2]]
    print(json.dumps(scenario(Path(sys.argv[1]))))  # the parent test reads it
