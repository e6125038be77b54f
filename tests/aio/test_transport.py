"""CrtTransport.send_async against hostile and absent servers: the same errors as send."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Callable

import pytest
import trustme

from awsiot_credentialhelper import exceptions as errors
from awsiot_credentialhelper._endpoint import parse_endpoint
from awsiot_credentialhelper._keys import PemKey
from awsiot_credentialhelper._transport import MAX_RESPONSE_BYTES, CrtTransport, build_tls_context

from ..core.test_hostile_server import (
    REQUEST,
    HostileTlsServer,
    endless_header_lines,
    finished,
    slow_drip,
)
from ..servers import DeviceFiles, Reply, TlsServer, credentials_body, wait_until
from .test_refreshing import own_sockets

Transports = Callable[[str], CrtTransport]


@pytest.fixture
def async_transport_to(ca: trustme.CA, device: DeviceFiles) -> Iterator[Transports]:
    made: list[CrtTransport] = []
    context = build_tls_context(
        PemKey(device.private_key_pem, device.certificate_pem, origin="test key"),
        device.certificate_pem,
        ca_pem=ca.cert_pem.bytes(),
        verify_peer=True,
    )

    def make(endpoint: str) -> CrtTransport:
        transport = CrtTransport(parse_endpoint(endpoint), context)
        made.append(transport)
        return transport

    yield make
    for transport in made:
        transport.close()


def send_async(transport: CrtTransport, timeout: float = 10.0) -> object:
    return asyncio.run(transport.send_async(REQUEST, timeout=timeout))


def test_an_answer_arrives(ca: trustme.CA, async_transport_to: Transports) -> None:
    with TlsServer(ca, default=Reply(body=credentials_body())) as server:
        response = asyncio.run(async_transport_to(server.endpoint).send_async(REQUEST, timeout=10))
    assert response.status == 200
    assert b"ASIATEST" in response.body


def test_an_endless_answer_is_cut_off_at_the_cap(
    ca: trustme.CA, async_transport_to: Transports
) -> None:
    with HostileTlsServer(ca, endless_header_lines) as server:
        with pytest.raises(errors.ResponseTooLargeError, match=str(MAX_RESPONSE_BYTES)):
            send_async(async_transport_to(server.endpoint), timeout=30)
        assert server.hung_up.wait(10), "the client kept the connection open"
    assert server.bytes_sent < 64 * 1024 * 1024


def test_a_body_over_the_cap_is_refused(ca: trustme.CA, async_transport_to: Transports) -> None:
    with (
        HostileTlsServer(ca, finished(100, MAX_RESPONSE_BYTES)) as server,
        pytest.raises(errors.ResponseTooLargeError),
    ):
        send_async(async_transport_to(server.endpoint))


def test_a_slow_drip_ends_at_the_total_timeout(
    ca: trustme.CA, async_transport_to: Transports
) -> None:
    with HostileTlsServer(ca, slow_drip) as server:
        with pytest.raises(errors.ReadTimeoutError):
            send_async(async_transport_to(server.endpoint), timeout=1.5)
        assert server.hung_up.wait(10), "the client kept the connection open"


def test_a_refused_connection_is_a_connect_error(async_transport_to: Transports) -> None:
    with socket.socket() as placeholder:  # a port that nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with pytest.raises(errors.ConnectError, match="refused"):
        send_async(async_transport_to(f"127.0.0.1:{port}"))


def test_a_closed_transport_refuses_to_send(ca: trustme.CA, async_transport_to: Transports) -> None:
    transport = async_transport_to("127.0.0.1:1")
    transport.close()
    with pytest.raises(RuntimeError, match="closed"):
        send_async(transport)


# --- what runs on the event loop ---------------------------------------------------------------

#: (thread, path) of each directory listing while a test records them (see _record_listings).
_listings: list[tuple[int, str]] = []
_recording = False


def _record_listings(event: str, arguments: tuple[object, ...]) -> None:
    if _recording and event == "os.listdir":
        _listings.append((threading.get_ident(), str(arguments[0])))


sys.addaudithook(_record_listings)  # audit hooks cannot be removed: this one is off by default


def test_the_event_loop_never_scans_the_process_descriptors(
    ca: trustme.CA, async_transport_to: Transports
) -> None:
    """Finding the connection's own socket reads a link per open descriptor of the process
    (7 ms at 500 descriptors): that work runs on awscrt's thread, never on the event loop."""
    global _recording  # noqa: PLW0603 - the audit hook's switch
    loop_threads: list[int] = []

    async def fetch(transport: CrtTransport) -> object:
        loop_threads.append(threading.get_ident())
        return await transport.send_async(REQUEST, timeout=10)

    with TlsServer(ca, default=Reply(body=credentials_body())) as server:
        transport = async_transport_to(server.endpoint)
        _listings.clear()
        _recording = True
        try:
            response = asyncio.run(fetch(transport))
        finally:
            _recording = False
    assert response.status == 200  # type: ignore[attr-defined]
    scans = [thread for thread, path in _listings if path.startswith("/proc/self/fd")]
    assert scans, "the transport no longer looks for its socket: update this test"
    assert loop_threads[0] not in scans


def test_a_connection_that_arrives_after_its_caller_was_cancelled_is_closed(
    ca: trustme.CA, async_transport_to: Transports
) -> None:
    """Cancelled while the TLS handshake is still under way: the connection that completes
    afterwards is closed, not left open with nobody to use it."""
    accepted = threading.Event()
    release = threading.Event()

    def hold_the_handshake() -> None:
        accepted.set()
        release.wait(10)

    with HostileTlsServer(ca, endless_header_lines, on_accept=hold_the_handshake) as server:
        transport = async_transport_to(server.endpoint)
        before = own_sockets()

        async def scenario() -> None:
            caller = asyncio.ensure_future(transport.send_async(REQUEST, timeout=10))
            await asyncio.get_running_loop().run_in_executor(None, accepted.wait, 10)
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller

        asyncio.run(scenario())
        release.set()  # the handshake completes now, for a caller that is gone
        wait_until(
            lambda: not own_sockets() - before, what="both ends of the late connection closed"
        )
        assert not server.hung_up.is_set()  # it never got as far as an answer
