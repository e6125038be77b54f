"""A minimal stdlib mTLS client for the emulator's tests: ``ssl`` plus ``http.client``.

The tests use it instead of the library's client, so that the emulator is checked on its own
and the answer's raw status, headers and body are visible.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional, TypeVar, Union

import pytest

from awsiot_credentialhelper.emulator import Device, Emulator

TIMEOUT = 10.0
_T = TypeVar("_T")
StrPath = Union[str, Path]


@dataclasses.dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        return str(self.json()["message"])


def tls_context(
    ca_file: StrPath, certificate: Optional[StrPath], key: Optional[StrPath]
) -> ssl.SSLContext:
    """A strict client context (Python's defaults) trusting only the emulator's CA."""
    context = ssl.create_default_context(cafile=str(ca_file))
    if hasattr(ssl, "VERIFY_X509_STRICT"):
        context.verify_flags |= ssl.VERIFY_X509_STRICT
    if certificate is not None:
        context.load_cert_chain(str(certificate), str(key) if key is not None else None)
    return context


def connect(
    emulator: Emulator,
    certificate: Optional[StrPath],
    key: Optional[StrPath],
    *,
    host: Optional[str] = None,
) -> http.client.HTTPSConnection:
    """An HTTPS connection to the emulator presenting ``certificate`` (or none)."""
    context = tls_context(emulator.ca_file, certificate, key)
    target = host or ("::1" if emulator.host == "::1" else "127.0.0.1")
    return http.client.HTTPSConnection(target, emulator.port, context=context, timeout=TIMEOUT)


def request(
    connection: http.client.HTTPConnection,
    path: str,
    *,
    thing_name: Optional[str] = None,
    method: str = "GET",
    headers: Optional[dict[str, str]] = None,
) -> Answer:
    """Send one request on ``connection`` and read the whole answer."""
    all_headers = dict(headers or {})
    if thing_name is not None:
        all_headers["x-amzn-iot-thingname"] = thing_name
    connection.request(method, path, headers=all_headers)
    response = connection.getresponse()
    body = response.read()
    return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def credentials_path(alias: str) -> str:
    return f"/role-aliases/{alias}/credentials"


def fetch(
    emulator: Emulator,
    device: Device,
    *,
    thing_name: Optional[str] = "",
    role_alias: Optional[str] = None,
    certificate: Optional[StrPath] = None,
    key: Optional[StrPath] = None,
) -> Answer:
    """Ask for ``device``'s credentials on a new connection.

    ``thing_name`` defaults to the device's thing; pass None to send no header.
    """
    connection = connect(
        emulator, certificate or device.certificate_file, key or device.private_key_file
    )
    try:
        return request(
            connection,
            credentials_path(role_alias or device.role_alias),
            thing_name=device.thing_name if thing_name == "" else thing_name,
        )
    finally:
        connection.close()


def call_with_deadline(function: Callable[[], _T], seconds: float = 20.0) -> _T:
    """Run ``function`` in a daemon thread; fail the test if it has not returned in time.

    For calls that used to hang: the test fails instead of blocking the whole run.
    """
    results: list[_T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(function())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-deadline", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s: it hangs")
    if errors:
        raise errors[0]
    return results[0]


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A loopback port that something else is listening on."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield int(busy.getsockname()[1])
